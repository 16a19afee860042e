/* upstream.h - the backend side of an exchange: connect (or take a pooled
 * connection), send the re-framed request, parse the response head, stream
 * the body into the client's output buffer, and finish (pool or close the
 * backend connection). Worker thread only.
 *
 * Each function takes the client connection (struct el_conn, conn-t.h) and
 * works on it and on its backend connection c->up directly. What only the
 * client side can do (flush c->out, answer an error, go on with the next
 * request, read the client again) is not called from here: every step
 * returns it as a struct el_up_step, and the caller (conn.c, which owns the
 * event entry points) does it. A step that releases the backend connection
 * says so; after it c->up is NULL.
 *
 * The keep-alive pool holds at most [backend] keepalive idle connections,
 * LIFO, so the warmest is reused first. A pooled connection belongs to the
 * generation whose backend address it reaches; after a reload to another
 * address the old ones are closed as they come up. */
#ifndef EL_UPSTREAM_H
#define EL_UPSTREAM_H

#include <stdbool.h>
#include <stdint.h>

struct el_worker;
struct el_conn;
struct el_upconn;

/* What the client side must do after a step. */
enum el_up_next {
    EL_UP_WAIT,    /* nothing: wait for the next event */
    EL_UP_PENDING, /* the backend connect is still in progress: nothing else this event */
    EL_UP_RESUME,  /* the backend took what waited: read the client again (it was paused) */
    EL_UP_FLUSH,   /* el_upstream_read only: response bytes wait in c->out */
    EL_UP_DONE,    /* the exchange is over, backend released: log it, next request */
    EL_UP_ANSWER,  /* backend released: answer error status with reason */
    EL_UP_FAIL,    /* backend released: answer status (access log "error"),
                      or cut if the response head is already out */
    EL_UP_CUT,     /* backend released: close the client connection */
};

struct el_up_step {
    uint8_t next;          /* enum el_up_next */
    bool more;             /* EL_UP_FLUSH: the read filled the buffer, more may wait */
    uint16_t status;       /* EL_UP_ANSWER, EL_UP_FAIL; EL_UP_FLUSH: if not 0,
                              el_upstream_fail(status, reason) after the flush */
    const char *reason;
};

/* Admission, before el_upstream_open: take a slot of the backend limit
 * (w->limiter) for c's request. Returns true if c holds one (c->slot_held;
 * given back by the step that releases the backend connection, or by
 * el_upstream_abort). Returns false if the limit is reached: c waits
 * (c->slot_waiting) in the limiter's queue, in the priority lane for bypass
 * and priority routes; in mode auto the room queues newcomers from now on;
 * c's timer is armed for queue_timeout_ms. The worker's wake_fd is nudged
 * when it is granted a slot: el_upstream_ready_pop() then returns it. */
bool el_upstream_admit(struct el_conn *c);
/* c's queue timer fired: true if its wait is over without a slot (counted
 * in timeouts_total; the client side answers), false if a slot was handed
 * to it meanwhile (el_upstream_ready_pop returns it soon). */
bool el_upstream_admit_cancel(struct el_conn *c);
/* The next request of w that was granted a slot while waiting (it holds it
 * now, its wait is recorded), or NULL. Worker thread of w. */
struct el_conn *el_upstream_ready_pop(struct el_worker *w);

/* Start forwarding c's request (its head parsed, still in c->in): take a
 * backend connection and write the rewritten head into its output buffer.
 * Returns false if no connection could be had (c->up NULL): the client
 * answers 502. */
bool el_upstream_open(struct el_conn *c);
/* After the client side consumed the head from c->in: count the request in
 * flight, copy what body is there, send, and arm c's timer for the request
 * (connect_timeout_ms while connecting, else as el_upstream_send). */
struct el_up_step el_upstream_start(struct el_conn *c);
/* More request body arrived from the client: copy it to the backend and
 * send. Above EL_CONN_HIGH_WATER unsent bytes c->in_paused is set; the step
 * that drains them returns EL_UP_RESUME. A malformed or too large body
 * answers 400 / 413 (EL_UP_ANSWER; EL_UP_CUT once the response head is
 * out). Timers while the request is not completely sent: idle_timeout_ms
 * between bytes if einlass waits for the client, response_timeout_ms if it
 * waits for the backend to take them; once it is sent, response_timeout_ms
 * to the response head, not re-armed. */
struct el_up_step el_upstream_send(struct el_conn *c);
/* The backend socket u (owned by a request) is writable or its connect
 * finished (what: the libevent event bits). A failed connect releases it
 * (EL_UP_FAIL 502). The caller then reads if what has EV_READ|EV_CLOSED and
 * u is still c->up. */
struct el_up_step el_upstream_event(struct el_upconn *u, short what);
/* One round of reading the backend (drain: read until EAGAIN): the response
 * head (1xx skipped, latency recorded, head rewritten into c->out), then
 * body bytes into c->out. A pooled connection the backend had closed is
 * replaced once for an idempotent request without a body. Returns
 * EL_UP_FLUSH when bytes for the client are in c->out; the caller flushes
 * them, then calls el_upstream_fail if status is set, el_upstream_done if
 * c->resp_done, another round if more. */
struct el_up_step el_upstream_read(struct el_conn *c, bool drain);
/* The response is complete: pool the backend connection if both directions
 * are complete, else close it. EL_UP_DONE, or EL_UP_WAIT if c was already
 * aborted or has no backend connection. */
struct el_up_step el_upstream_done(struct el_conn *c);
/* The exchange failed: release the backend connection (closed). EL_UP_FAIL. */
struct el_up_step el_upstream_fail(struct el_conn *c, int status, const char *reason);
/* c's timer fired before the response head: log which timeout and why,
 * release the backend connection. EL_UP_FAIL with 502 (connect), 408 (the
 * client's body stalled) or 504. */
struct el_up_step el_upstream_timeout(struct el_conn *c);
/* The client connection goes away: release its backend connection, if any
 * (closed), its in-flight count and its backend slot, or end its wait. */
void el_upstream_abort(struct el_conn *c);

/* An event on an idle pooled connection u: the backend closed it (or sent
 * garbage); it is closed. */
void el_upstream_idle_event(struct el_upconn *u);
/* Close every idle pooled connection of w (drain, thread exit). */
void el_upstream_pool_drain(struct el_worker *w);
/* At thread exit, after every client connection is gone: close what is
 * still pooled and free the recycled connection structs. */
void el_upstream_pool_free(struct el_worker *w);

#endif
