/* conn.h - client connections, and the event entry points of the backend
 * connections serving them.
 *
 * A client connection handles one request at a time: it reads a head, asks
 * the gate, then either answers locally or has upstream.c forward the
 * request (re-framed: Content-Length or chunked as einlass parsed it) and
 * stream the response back. Pipelined requests wait in the input buffer
 * until the response before them is done. Each socket is registered once with
 * EV_READ|EV_WRITE|EV_ET|EV_PERSIST and read until EAGAIN; the only
 * per-request event operations are timer re-arms on libevent's common
 * timeout queues (O(1), no syscall). Worker thread only. */
#ifndef EL_CONN_H
#define EL_CONN_H

#include <event2/util.h>

#include "einlass/conn-t.h"

struct el_worker;

/* Accept handler for a worker's listener (EV_READ|EV_PERSIST). */
void el_conn_accept(evutil_socket_t fd, short what, void *arg);
/* Close idle connections (drain); returns the number still busy. */
int el_conn_drain(struct el_worker *w);
/* At thread exit: close every connection. One still owed a room answer is
 * kept (dead) until el_room_free() answers it. */
void el_conn_close_all(struct el_worker *w);
/* Then free what is left and the worker's pools. */
void el_conn_worker_free(struct el_worker *w);

/* Go on with the requests of w that were granted a backend slot while
 * they waited (the worker's wake_fd was nudged). Worker thread of w. */
void el_conn_ready(struct el_worker *w);

/* The event callback of every backend socket (arg: its struct el_upconn).
 * upstream.c registers new sockets with it; the worker's starter stores it
 * in w->up_event before the worker runs. */
void el_conn_upstream_event(evutil_socket_t fd, short what, void *arg);

#endif
