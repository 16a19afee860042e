/* upstream.h - the backend connections of one worker: non-blocking connect,
 * and the keep-alive pool (at most [backend] keepalive idle connections,
 * LIFO, so the warmest is reused first). A pooled connection belongs to the
 * generation whose backend address it reaches; after a reload to another
 * address the old ones are closed as they come up. Worker thread only.
 * The I/O of a connection in use is driven by conn.c
 * (el_conn_upstream_event), which knows the request it serves. */
#ifndef EL_UPSTREAM_H
#define EL_UPSTREAM_H

#include <stdbool.h>

#include <event2/util.h>

struct el_worker;
struct el_conn;
struct el_upconn;

/* A connection to the backend for owner: an idle pooled one, or a new one
 * (connect in progress: u->connecting). NULL if no socket could be made or
 * the connect failed at once. */
struct el_upconn *el_upstream_acquire(struct el_worker *w, struct el_conn *owner);
/* Always a new connection (a retry after a stale pooled one). */
struct el_upconn *el_upstream_connect(struct el_worker *w, struct el_conn *owner);
/* Done with u: back to the pool if keep, there is room, and u is clean in
 * both directions (nothing unread from the backend, nothing unsent to it),
 * else closed. The caller passes keep only when the response was complete
 * and well framed and the request was completely read and written. */
void el_upstream_release(struct el_upconn *u, bool keep);
/* Close u (its struct is recycled). */
void el_upstream_close(struct el_upconn *u);
/* Take an idle u out of the pool (the backend closed it). */
void el_upstream_pool_remove(struct el_upconn *u);

/* The event callback of every backend socket (conn.c). */
void el_conn_upstream_event(evutil_socket_t fd, short what, void *arg);

#endif
