/* upstream.c - the backend side of an exchange, and the backend connections
 * of one worker (connect and keep-alive pool).
 *
 * Invariants:
 *  - A backend connection is either owned (u->owner == c and c->up == u,
 *    serving c's request), idle in w->idle_up (owner NULL, buffers
 *    returned), or on the free list w->free_up (closed, struct kept for
 *    reuse). Sockets are registered once with EV_ET|EV_PERSIST, with the
 *    worker's w->up_event (conn.c's entry point); an idle pooled one that
 *    becomes readable was closed by the backend (or sent garbage) and is
 *    closed.
 *  - Nothing here acts on the client side: no write to the client socket,
 *    no answer, no close. A step leaves bytes for the client in c->out and
 *    returns what the client side must do (struct el_up_step); conn.c does
 *    it. The only client fields written here are the exchange's own (timer,
 *    in_paused, the req_ and resp_ state, c->out's contents).
 *  - A connection is pooled only when the response was complete and well
 *    framed and the request went out whole (read from the client and
 *    written to the backend), with nothing unread after the response.
 *  - The request is counted in flight (metrics) from el_upstream_start to
 *    the step that releases its backend connection.
 *  - Admission: a forwarded request holds a slot of the process's limiter
 *    (c->slot_held) from el_upstream_admit to that same step (inflight_done
 *    gives both back), and takes a backend connection only while it holds
 *    one. A request that has to wait (c->slot_waiting) sits in the limiter's
 *    queue; the release that hands it a slot moves it, under the limiter's
 *    lock, to its own worker's ready list (any thread) and nudges the
 *    worker's wake_fd when that list was empty; the worker takes it from
 *    there (el_upstream_ready_pop) and goes on. A wait ends exactly once:
 *    granted (popped from the ready list), cancelled while still queued, or
 *    taken out of the ready list and released by el_upstream_abort.
 *  - A WebSocket: a handshake (el_rewrite_upgrade) goes out with its
 *    upgrade fields; a 101 naming websocket for it turns the exchange into
 *    a tunnel (EL_UP_TUNNEL). The tunnel gives the slot and the in-flight
 *    count back at once (a socket held open for hours is no backend load),
 *    is counted in einlass_tunnels until the client connection ends, and
 *    its backend connection is never pooled. A 101 for any other request,
 *    or naming another protocol, is a 502. */
#include "einlass/upstream.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "einlass/common.h"
#include "einlass/config.h"
#include "einlass/conn-t.h"
#include "einlass/gate.h"
#include "einlass/http.h"
#include "einlass/journal.h"
#include "einlass/latency.h"
#include "einlass/limiter.h"
#include "einlass/metrics.h"
#include "einlass/rewrite.h"
#include "einlass/worker-t.h"

static _Thread_local struct el_http_msg resp_msg; /* response head being parsed */

static const struct el_up_step wait_step = {EL_UP_WAIT, false, 0, NULL};

static inline const struct el_config *conn_cfg(const struct el_conn *c)
{
    return c->gen->cfg;
}

static void timer_set(struct el_conn *c, const struct timeval *tv)
{
    event_add(&c->timer, tv);
}

static bool aborted(const struct el_conn *c)
{
    return c->state == EL_CONN_CLOSED;
}

/* ---- connections and the pool ---- */

static void upconn_close(struct el_upconn *u)
{
    struct el_worker *w = u->w;
    event_del(&u->ev);
    close(u->fd);
    el_buf_release(&w->bufs, &u->in);
    el_buf_release(&w->bufs, &u->out);
    u->owner = NULL;
    u->next = w->free_up;
    w->free_up = u;
}

static void pool_remove(struct el_upconn *u)
{
    struct el_worker *w = u->w;
    for (struct el_upconn **pp = &w->idle_up; *pp; pp = &(*pp)->next) {
        if (*pp == u) {
            *pp = u->next;
            w->nidle_up--;
            return;
        }
    }
}

/* Always a new connection (connect in progress: u->connecting); NULL if no
 * socket could be made or the connect failed at once. */
static struct el_upconn *upconn_connect(struct el_worker *w, struct el_conn *owner)
{
    const struct el_generation *g = w->gen;
    int fd = socket(g->backend.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) return NULL;
    if (g->backend.ss_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    bool connecting = false;
    if (connect(fd, (const struct sockaddr *)&g->backend, g->backend_len) == -1) {
        if (errno != EINPROGRESS) {
            close(fd);
            return NULL;
        }
        connecting = true;
    }
    struct el_upconn *u = w->free_up;
    if (u) w->free_up = u->next;
    else u = el_malloc(sizeof(*u));
    memset(u, 0, sizeof(*u));
    u->fd = fd;
    u->w = w;
    u->owner = owner;
    u->gen_id = g->id;
    u->connecting = connecting;
    event_assign(&u->ev, w->base, fd, EV_READ | EV_WRITE | EV_ET | EV_PERSIST | EV_CLOSED,
                 w->up_event, u);
    event_add(&u->ev, NULL);
    return u;
}

/* An idle pooled connection for owner, else a new one. */
static struct el_upconn *upconn_acquire(struct el_worker *w, struct el_conn *owner)
{
    while (w->idle_up) {
        struct el_upconn *u = w->idle_up;
        w->idle_up = u->next;
        w->nidle_up--;
        if (u->gen_id != w->gen->id) { /* reaches the backend of an older config */
            upconn_close(u);
            continue;
        }
        u->owner = owner;
        return u;
    }
    return upconn_connect(w, owner);
}

/* Done with u: back to the pool if keep, there is room, and u is clean in
 * both directions (nothing unread from the backend, nothing unsent to it),
 * else closed. The caller passes keep only when the response was complete
 * and well framed and the request was completely read and written. */
static void upconn_release(struct el_upconn *u, bool keep)
{
    struct el_worker *w = u->w;
    u->owner = NULL;
    if (keep && !w->draining && u->gen_id == w->gen->id && el_buf_used(&u->in) == 0 &&
        el_buf_used(&u->out) == 0 && !u->connecting && w->nidle_up < w->gen->cfg->keepalive) {
        el_buf_release(&w->bufs, &u->in);
        el_buf_release(&w->bufs, &u->out);
        u->reused = true;
        u->next = w->idle_up;
        w->idle_up = u;
        w->nidle_up++;
        return;
    }
    upconn_close(u);
}

void el_upstream_idle_event(struct el_upconn *u)
{
    pool_remove(u);
    upconn_close(u);
}

void el_upstream_pool_drain(struct el_worker *w)
{
    while (w->idle_up) {
        struct el_upconn *u = w->idle_up;
        w->idle_up = u->next;
        w->nidle_up--;
        upconn_close(u);
    }
}

void el_upstream_pool_free(struct el_worker *w)
{
    el_upstream_pool_drain(w);
    while (w->free_up) {
        struct el_upconn *u = w->free_up;
        w->free_up = u->next;
        free(u);
    }
}

/* ---- the exchange ---- */

static void up_release(struct el_conn *c, bool keep)
{
    struct el_upconn *u = c->up;
    if (u == NULL) return;
    c->up = NULL;
    upconn_release(u, keep);
}

static void inflight_done(struct el_conn *c)
{
    if (c->counted_inflight) {
        c->counted_inflight = false;
        atomic_fetch_sub_explicit(&el_metrics_workers[c->w->id].inflight, 1,
                                  memory_order_relaxed);
    }
    if (c->slot_held) {
        c->slot_held = false;
        el_limiter_release(c->w->limiter);
    }
}

/* ---- the journal of uncertain writes ---- */

/* The outcome of c's write is unknown (status: the backend's, 0 if none
 * came): journal it, once per request, and only if it may have reached the
 * backend (connected, or answered): one that never left einlass is no
 * uncertainty. Call before the backend connection is released. */
void el_upstream_journal(struct el_conn *c, int status, const char *reason)
{
    struct el_journal_req *jr = &c->jr;
    if (!jr->armed || jr->noted) return;
    if (!c->resp_head_done && (c->up == NULL || c->up->connecting)) return;
    jr->noted = true;
    char why[32];
    if (reason == NULL) {
        snprintf(why, sizeof(why), "backend %d", status);
        reason = why;
    }
    uint64_t us = c->resp_head_done ? c->upstream_us : el_now_us() - c->t_sent_us;
    struct el_journal_entry e = {
        .method = jr->method, .method_len = jr->method_len,
        .path = jr->path, .path_len = jr->path_len, .path_cut = jr->path_cut,
        .route = jr->route, .client = c->peer_ip, .pass = c->gate.pass_id,
        .has_ticket = c->gate.had_ticket, .ticket_lane = c->gate.ticket_lane,
        .ticket = c->gate.ticket, .status = status, .reason = reason,
        .upstream_ms = (double)us / 1000.0,
    };
    el_journal_record(&e);
}

/* ---- admission: a slot under the backend limit ---- */

static struct el_conn *wait_conn(struct el_limiter_wait *wt)
{
    return (struct el_conn *)(void *)((char *)wt - offsetof(struct el_conn, slot_wait));
}

/* The limiter handed wt a slot: under its lock, on any thread. Queue the
 * request on its own worker, and wake that worker if nothing was queued. */
static void slot_granted(struct el_limiter_wait *wt)
{
    struct el_worker *w = wait_conn(wt)->w;
    pthread_mutex_lock(&w->ready_mu);
    bool was_empty = w->ready_head == NULL;
    wt->next = NULL;
    wt->prev = w->ready_tail;
    if (w->ready_tail) w->ready_tail->next = wt;
    else w->ready_head = wt;
    w->ready_tail = wt;
    pthread_mutex_unlock(&w->ready_mu);
    if (was_empty) {
        uint64_t one = 1;
        if (write(w->wake_fd, &one, sizeof(one)) != sizeof(one)) {
            /* the counter is not full before 2^64-2: nothing to do */
        }
    }
}

/* Under w->ready_mu: take wt out of the ready list. */
static void ready_unlink(struct el_worker *w, struct el_limiter_wait *wt)
{
    if (wt->prev) wt->prev->next = wt->next;
    else w->ready_head = wt->next;
    if (wt->next) wt->next->prev = wt->prev;
    else w->ready_tail = wt->prev;
    wt->next = wt->prev = NULL;
}

bool el_upstream_admit(struct el_conn *c)
{
    struct el_worker *w = c->w;
    enum el_limiter_lane lane = c->gate.decision == EL_DECISION_BYPASS || c->gate.lane == 1
                                    ? EL_LIMITER_PRIO
                                    : EL_LIMITER_NORMAL;
    c->slot_wait.grant = slot_granted;
    if (el_limiter_acquire(w->limiter, &c->slot_wait, lane) == EL_LIMITER_GRANTED) {
        c->slot_held = true;
        return true;
    }
    /* The limit is reached. If the queue this request joins is long enough
     * to cost a patient noticeable time (el_limit_open_rule), the rooms
     * in mode auto open now, on this request, not on the control loop's
     * next tick (which keeps them so while such a queue lasts): the
     * database behind the limit is every room's. */
    uint32_t open_q = atomic_load_explicit(&w->rooms->open_queue, memory_order_relaxed);
    if (open_q > 0 && (uint32_t)el_limiter_queued(w->limiter) >= open_q)
        for (size_t i = 0; i < EL_MAX_ROOMS; i++) {
            struct el_room_state *rs = &w->rooms->state[i];
            if (atomic_load_explicit(&rs->mode, memory_order_relaxed) == EL_MODE_AUTO)
                atomic_store_explicit(&rs->queueing, true, memory_order_relaxed);
        }
    c->slot_waiting = true;
    c->slot_wait.t_us = el_now_us();
    struct timeval tv = el_tv_ms((uint64_t)conn_cfg(c)->queue_timeout_ms);
    event_add(&c->timer, &tv);
    return false;
}

bool el_upstream_admit_cancel(struct el_conn *c)
{
    if (!c->slot_waiting) return true;
    if (!el_limiter_cancel(c->w->limiter, &c->slot_wait, true)) return false;
    c->slot_waiting = false;
    return true;
}

struct el_conn *el_upstream_ready_pop(struct el_worker *w)
{
    pthread_mutex_lock(&w->ready_mu);
    struct el_limiter_wait *wt = w->ready_head;
    if (wt) ready_unlink(w, wt);
    pthread_mutex_unlock(&w->ready_mu);
    if (wt == NULL) return NULL;
    struct el_conn *c = wait_conn(wt);
    c->slot_waiting = false;
    c->slot_held = true;
    uint64_t us = el_now_us() - wt->t_us;
    el_limiter_waited(w->limiter, us);
    el_metrics_observe_queue_wait(w->id, us);
    return c;
}

/* The client went away while its request waited: give the wait up, or the
 * slot if one was handed to it already. */
static void wait_abort(struct el_conn *c)
{
    struct el_worker *w = c->w;
    c->slot_waiting = false;
    if (el_limiter_cancel(w->limiter, &c->slot_wait, false)) return;
    pthread_mutex_lock(&w->ready_mu); /* granted: it is in the ready list */
    ready_unlink(w, &c->slot_wait);
    pthread_mutex_unlock(&w->ready_mu);
    el_limiter_release(w->limiter);
}

static struct el_up_step fail(struct el_conn *c, int status, const char *reason)
{
    el_upstream_journal(c, c->resp_status, status == 504   ? "backend timed out"
                                           : status == 408 ? "client stalled mid-body"
                                                           : "backend connection broke");
    inflight_done(c);
    up_release(c, false);
    return (struct el_up_step){EL_UP_FAIL, false, (uint16_t)status, reason};
}

struct el_up_step el_upstream_fail(struct el_conn *c, int status, const char *reason)
{
    return fail(c, status, reason);
}

void el_upstream_abort(struct el_conn *c)
{
    if (c->tunnel) { /* a tunnel's end is no uncertain write: its request was a GET */
        c->tunnel = false;
        atomic_fetch_sub_explicit(&el_metrics_workers[c->w->id].tunnels, 1, memory_order_relaxed);
    } else if (c->up) {
        el_upstream_journal(c, c->resp_status, c->w->draining ? "einlass stopped"
                                                              : "client went away");
    }
    if (c->slot_waiting) wait_abort(c);
    inflight_done(c);
    if (c->up) up_release(c, false);
}

/* Send what waits for the backend. Sending the request arms the timers:
 * while it is not completely sent, idle_timeout_ms between bytes if einlass
 * waits for the client (cut: 408), response_timeout_ms if it waits for the
 * backend to take them (cut: 504); once it is completely sent,
 * response_timeout_ms to the response head (cut: 504), not re-armed. */
static struct el_up_step up_flush(struct el_conn *c)
{
    struct el_upconn *u = c->up;
    if (u == NULL || u->connecting || aborted(c)) return wait_step;
    uint32_t before = el_buf_used(&u->out);
    int r = el_buf_write(&u->out, u->fd);
    if (r == -1) {
        /* The backend is gone; the read sees the EOF and decides. */
        return wait_step;
    }
    if (!c->req_sent && r == 0 && c->req_body_done) {
        c->req_sent = true;
        if (!c->resp_head_done) timer_set(c, c->w->tv_response);
    } else if (el_buf_used(&u->out) != before) {
        if (c->resp_head_done) timer_set(c, c->w->tv_idle);
        else if (!c->req_sent) timer_set(c, r == 1 ? c->w->tv_response : c->w->tv_idle);
    }
    if (r == 0 && c->in_paused) {
        c->in_paused = false;
        return (struct el_up_step){EL_UP_RESUME, false, 0, NULL};
    }
    return wait_step;
}

/* ---- request body: client -> backend ---- */

static struct el_up_step pump_request_body(struct el_conn *c)
{
    struct el_upconn *u = c->up;
    if (c->req_body_done || u == NULL || aborted(c)) return wait_step;
    if (c->req.body == EL_BODY_LENGTH) {
        size_t n = EL_MIN((uint64_t)el_buf_used(&c->in), c->req_remaining);
        el_buf_append(&u->out, c->in.data + c->in.off, n);
        el_buf_consume(&c->in, n);
        c->req_remaining -= n;
        if (c->req_remaining == 0) c->req_body_done = true;
    } else {
        for (;;) {
            size_t used = 0, dlen = 0;
            const char *data = NULL;
            int r = el_chunked_decode(&c->req_chunk, c->in.data + c->in.off,
                                      el_buf_used(&c->in), &used, &data, &dlen);
            if (r < 0) {
                up_release(c, false);
                inflight_done(c);
                return (struct el_up_step){EL_UP_ANSWER, false, 400, "malformed chunked body"};
            }
            if (dlen) {
                c->req_body_bytes += dlen;
                if (c->req_body_bytes > conn_cfg(c)->max_body_bytes) {
                    up_release(c, false);
                    inflight_done(c);
                    if (c->resp_head_done) return (struct el_up_step){EL_UP_CUT, false, 0, NULL};
                    return (struct el_up_step){EL_UP_ANSWER, false, 413,
                                               "request body larger than max_body_bytes"};
                }
                char hdr[24];
                size_t hl = el_chunk_header(hdr, dlen);
                el_buf_append(&u->out, hdr, hl);
                el_buf_append(&u->out, data, dlen);
                el_buf_append(&u->out, "\r\n", 2);
            }
            el_buf_consume(&c->in, used);
            if (r == 1) {
                el_buf_append(&u->out, "0\r\n\r\n", 5);
                c->req_body_done = true;
                break;
            }
            if (used == 0) break;
        }
    }
    if (el_buf_used(&u->out) > EL_CONN_HIGH_WATER) c->in_paused = true;
    return wait_step;
}

bool el_upstream_open(struct el_conn *c)
{
    struct el_worker *w = c->w;
    c->up = upconn_acquire(c->w, c);
    if (c->up == NULL) {
        inflight_done(c); /* the slot */
        return false;
    }
    struct el_upconn *u = c->up;
    el_buf_alloc(&w->bufs, &u->out, EL_BUF_SIZE);
    el_buf_alloc(&w->bufs, &u->in, EL_BUF_SIZE);
    c->ws_upgrade = c->req.upgrade && el_rewrite_upgrade(&c->req);
    el_rewrite_request(&c->req, c->hop_ip, c->hop_ip_len, c->peer_trusted, c->gate.secure,
                       conn_cfg(c)->backend_address, &u->out);
    c->sent_head_len = el_buf_used(&u->out);
    el_journal_capture(&c->jr, &c->req, conn_cfg(c));
    return true;
}

struct el_up_step el_upstream_start(struct el_conn *c)
{
    struct el_worker *w = c->w;
    struct el_upconn *u = c->up;
    if (!c->counted_inflight) {
        c->counted_inflight = true;
        atomic_fetch_add_explicit(&el_metrics_workers[w->id].inflight, 1, memory_order_relaxed);
    }
    c->t_sent_us = el_now_us();
    if (u->connecting) timer_set(c, w->tv_connect);
    struct el_up_step s = pump_request_body(c);
    if (s.next != EL_UP_WAIT) return s;
    s = up_flush(c); /* arms the request's timer as bytes go out */
    if (!event_pending(&c->timer, EV_TIMEOUT, NULL)) timer_set(c, w->tv_response);
    return s;
}

struct el_up_step el_upstream_send(struct el_conn *c)
{
    struct el_up_step s = pump_request_body(c);
    if (s.next != EL_UP_WAIT) return s;
    return up_flush(c);
}

/* ---- response: backend -> client ---- */

/* A pooled connection the backend had closed: send the same head on a fresh
 * one, once, and only for an idempotent request without a body. *s is what
 * sending it asks of the client. */
static bool try_retry(struct el_conn *c, struct el_up_step *s)
{
    struct el_upconn *old = c->up;
    if (!old->reused || c->retries > 0 || el_buf_used(&old->in) > 0 ||
        c->req.body != EL_BODY_NONE || !c->idempotent)
        return false;
    c->retries++;
    struct el_upconn *u = upconn_connect(c->w, c);
    if (u == NULL) return false;
    el_buf_alloc(&c->w->bufs, &u->out, EL_BUF_SIZE);
    el_buf_alloc(&c->w->bufs, &u->in, EL_BUF_SIZE);
    /* The head is still at the start of the old buffer: a request without a
     * body appends nothing after it, and sending only moves the indices. */
    el_buf_append(&u->out, old->out.data, c->sent_head_len);
    up_release(c, false);
    c->up = u;
    c->req_sent = false; /* the head goes out again */
    timer_set(c, u->connecting ? c->w->tv_connect : c->w->tv_response);
    *s = up_flush(c);
    return true;
}

static void record_latency(struct el_conn *c, const struct el_http_msg *resp)
{
    c->upstream_us = el_now_us() - c->t_sent_us;
    double ms = el_latency_sample(resp, conn_cfg(c)->latency_metric, (double)c->upstream_us / 1000.0);
    el_latency_add(c->w->latency, el_now_ms(), ms);
    el_metrics_observe(c->w->id, ms);
}

static void forward_response_head(struct el_conn *c, const struct el_http_msg *resp)
{
    el_buf_alloc(&c->w->bufs, &c->out, EL_BUF_SIZE);
    bool close = !c->req.keep_alive || c->w->draining || !c->req_body_done;
    const char *cookie = el_gate_response(c->w->gate, &c->gate, resp);
    enum el_rewrite_framing f =
        el_rewrite_response(resp, c->req.minor_version == 1, &close, cookie, &c->out);
    c->resp_body = (uint8_t)resp->body;
    c->resp_chunk_out = f == EL_REWRITE_CHUNKED;
    if (resp->body == EL_BODY_LENGTH) c->resp_remaining = resp->content_length;
    if (resp->body == EL_BODY_CHUNKED || resp->body == EL_BODY_CLOSE)
        memset(&c->resp_chunk, 0, sizeof(c->resp_chunk));
    if (close) c->req.keep_alive = false;
    c->resp_status = resp->status;
    if (resp->status >= 500) el_upstream_journal(c, resp->status, NULL);
    c->resp_keepalive = resp->keep_alive && resp->body != EL_BODY_CLOSE;
    c->resp_head_done = true;
}

static void body_out(struct el_conn *c, const char *p, size_t n)
{
    c->resp_bytes += n;
    if (c->head_method) return;
    if (c->resp_chunk_out) {
        char hdr[24];
        size_t hl = el_chunk_header(hdr, n);
        el_buf_append(&c->out, hdr, hl);
        el_buf_append(&c->out, p, n);
        el_buf_append(&c->out, "\r\n", 2);
    } else {
        el_buf_append(&c->out, p, n);
    }
}

/* Move response body bytes from the backend buffer to the client buffer.
 * Returns -1 on a malformed body. */
static int pump_response_body(struct el_conn *c, bool eof)
{
    struct el_upconn *u = c->up;
    switch (c->resp_body) {
    case EL_BODY_NONE:
        c->resp_done = true;
        return 0;
    case EL_BODY_LENGTH: {
        size_t n = EL_MIN((uint64_t)el_buf_used(&u->in), c->resp_remaining);
        if (n) body_out(c, u->in.data + u->in.off, n);
        el_buf_consume(&u->in, n);
        c->resp_remaining -= n;
        if (c->resp_remaining == 0) c->resp_done = true;
        return 0;
    }
    case EL_BODY_CHUNKED:
        for (;;) {
            size_t used = 0, dlen = 0;
            const char *data = NULL;
            int r = el_chunked_decode(&c->resp_chunk, u->in.data + u->in.off, el_buf_used(&u->in),
                                      &used, &data, &dlen);
            if (r < 0) return -1;
            if (dlen) body_out(c, data, dlen);
            el_buf_consume(&u->in, used);
            if (r == 1) {
                c->resp_done = true;
                break;
            }
            if (used == 0) break;
        }
        if (c->resp_done && c->resp_chunk_out && !c->head_method)
            el_buf_append(&c->out, "0\r\n\r\n", 5);
        return 0;
    case EL_BODY_CLOSE:
        if (el_buf_used(&u->in)) body_out(c, u->in.data + u->in.off, el_buf_used(&u->in));
        el_buf_consume(&u->in, el_buf_used(&u->in));
        if (eof) {
            c->resp_done = true;
            if (c->resp_chunk_out && !c->head_method) el_buf_append(&c->out, "0\r\n\r\n", 5);
        }
        return 0;
    }
    return -1;
}

/* A 101 (RFC 9110 15.2.2): a tunnel if c asked for a WebSocket and the
 * backend switched to one, else 502. The 101 head goes to c->out, and what
 * the backend sent behind it (its first frames) after it. */
static struct el_up_step switch_protocols(struct el_conn *c, const struct el_http_msg *resp,
                                          size_t head_len)
{
    struct el_upconn *u = c->up;
    if (!c->ws_upgrade) return fail(c, 502, "backend switched protocols unasked");
    if (!el_rewrite_switch_ok(resp))
        return fail(c, 502, "backend switched to a protocol other than websocket");
    record_latency(c, resp);
    el_buf_alloc(&c->w->bufs, &c->out, EL_BUF_SIZE);
    el_rewrite_switch(resp, el_gate_response(c->w->gate, &c->gate, resp), &c->out);
    el_buf_consume(&u->in, head_len);
    el_buf_append(&c->out, u->in.data + u->in.off, el_buf_used(&u->in));
    c->resp_bytes = el_buf_used(&u->in);
    el_buf_release(&c->w->bufs, &u->in); /* backend bytes are read into c->out from now */
    c->resp_status = 101;
    c->resp_head_done = c->resp_done = true; /* no HTTP response follows */
    c->resp_keepalive = false;
    c->req.keep_alive = false;
    c->in_paused = c->up_paused = false;
    c->up_eof = c->up_shut = false;
    c->tun_up_bytes = 0;
    inflight_done(c);
    c->tunnel = true;
    atomic_fetch_add_explicit(&el_metrics_workers[c->w->id].tunnels, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&el_metrics_workers[c->w->id].tunnels_total, 1,
                              memory_order_relaxed);
    timer_set(c, c->w->tv_idle);
    return (struct el_up_step){EL_UP_TUNNEL, false, 0, NULL};
}

struct el_up_step el_upstream_read(struct el_conn *c, bool drain)
{
    struct el_upconn *u = c->up;
    struct el_up_step s = wait_step;
    bool eof = false;
    ssize_t n = el_buf_read(&u->in, u->fd, drain, &eof);
    if (n == -2 && !eof) return wait_step;
    if (n == -1 && !c->resp_head_done && el_buf_used(&u->in) == 0) {
        if (!try_retry(c, &s)) return fail(c, 502, "backend connection failed");
        return s;
    }
    if (n == -1) eof = true;
    bool full = u->in.len == u->in.cap;
    bool had_head = c->resp_head_done;
    while (!c->resp_head_done) {
        int r = el_http_parse_response(u->in.data + u->in.off, el_buf_used(&u->in),
                                       conn_cfg(c)->max_header_bytes, c->head_method,
                                       &resp_msg);
        if (r == EL_HTTP_INCOMPLETE) {
            if (!eof && !(n == -3)) break;
            if (eof && el_buf_used(&u->in) == 0 && try_retry(c, &s)) return s;
            return fail(c, 502, eof ? "backend closed the connection" : "backend head too large");
        }
        if (r < 0) return fail(c, 502, "malformed backend response");
        if (resp_msg.status < 200) {
            if (resp_msg.status == 101) return switch_protocols(c, &resp_msg, (size_t)r);
            el_buf_consume(&u->in, (size_t)r); /* interim: not forwarded */
            continue;
        }
        record_latency(c, &resp_msg);
        forward_response_head(c, &resp_msg);
        el_buf_consume(&u->in, (size_t)r);
    }
    if (!c->resp_head_done) return wait_step;
    if (pump_response_body(c, eof) < 0) {
        c->resp_keepalive = false;
        return (struct el_up_step){EL_UP_FLUSH, false, 502, "malformed backend body"};
    }
    if (eof && !c->resp_done) /* truncated by the backend */
        return (struct el_up_step){EL_UP_FLUSH, false, 502, "backend closed mid-body"};
    if (!c->resp_done && (n > 0 || !had_head))
        timer_set(c, c->w->tv_idle); /* response body: idle_timeout_ms between bytes */
    if (c->resp_done && (eof || el_buf_used(&u->in) > 0)) c->resp_keepalive = false;
    return (struct el_up_step){EL_UP_FLUSH, full, 0, NULL};
}

/* The response is complete. The backend connection may serve another
 * request only if the request went out whole too: its body completely read
 * from the client and completely written to the backend. A backend that
 * answered early (before the body) is closed, never pooled: the bytes it
 * still expects would otherwise be taken from the next client's request.
 * A client whose body is not completely read is closed after its answer
 * (req.keep_alive cleared here); the rest of its body is read and dropped
 * by the lingering close (bounded by header_timeout_ms). */
struct el_up_step el_upstream_done(struct el_conn *c)
{
    if (aborted(c) || c->up == NULL) return wait_step;
    bool sent = c->req_body_done && el_buf_used(&c->up->out) == 0;
    if (!c->req_body_done) c->req.keep_alive = false;
    inflight_done(c);
    up_release(c, c->resp_keepalive && sent);
    return (struct el_up_step){EL_UP_DONE, false, 0, NULL};
}

struct el_up_step el_upstream_event(struct el_upconn *u, short what)
{
    struct el_conn *c = u->owner;
    struct el_up_step s = wait_step;
    if (u->connecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(u->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) err = errno;
        if (err == EINPROGRESS) return (struct el_up_step){EL_UP_PENDING, false, 0, NULL};
        if (err != 0) return fail(c, 502, "backend unreachable");
        u->connecting = false;
        timer_set(c, c->w->tv_response);
        s = up_flush(c);
    } else if (what & EV_WRITE) {
        s = up_flush(c);
    }
    return s;
}

/* Which timeout, and why; this is never the hot path. */
struct el_up_step el_upstream_timeout(struct el_conn *c)
{
    int status = 504;
    const char *why = "backend response timed out", *key = "response_timeout_ms";
    if (c->up->connecting) {
        status = 502;
        why = "backend connect timed out";
        key = "connect_timeout_ms";
    } else if (c->req_sent) {
        why = "no response head from the backend";
    } else if (el_buf_used(&c->up->out) > 0) {
        why = "backend stopped reading the request body";
    } else {
        status = 408;
        why = "request body timed out";
        key = "idle_timeout_ms";
    }
    el_warn("timeout: %s: %s (%s), answered %d", c->peer_ip, why, key, status);
    return fail(c, status, why);
}

/* ---- the tunnel ---- */

struct el_up_step el_upstream_tunnel_send(struct el_conn *c)
{
    struct el_upconn *u = c->up;
    struct el_up_step s = wait_step;
    if (u == NULL || aborted(c) || c->up_shut) return s;
    if (el_buf_used(&u->out)) { /* the head's rest: rare */
        uint32_t before = el_buf_used(&u->out);
        int r = el_buf_write(&u->out, u->fd);
        if (r == -1) return (struct el_up_step){EL_UP_CUT, false, 0, "backend write failed"};
        s.more = el_buf_used(&u->out) != before;
        if (r == 1) return s;
        el_buf_release(&c->w->bufs, &u->out);
    }
    uint32_t before = el_buf_used(&c->in);
    if (before) {
        int r = el_buf_write(&c->in, u->fd);
        if (r == -1) return (struct el_up_step){EL_UP_CUT, false, 0, "backend write failed"};
        c->tun_up_bytes += before - el_buf_used(&c->in);
        if (el_buf_used(&c->in) != before) s.more = true;
    }
    if (c->client_eof && el_buf_used(&c->in) == 0) { /* pass the half-close on */
        shutdown(u->fd, SHUT_WR);
        c->up_shut = true;
        s.more = true;
    }
    return s;
}

struct el_up_step el_upstream_tunnel_read(struct el_conn *c)
{
    struct el_upconn *u = c->up;
    struct el_up_step s = wait_step;
    if (u == NULL || aborted(c) || c->up_eof) return s;
    el_buf_alloc(&c->w->bufs, &c->out, EL_BUF_SIZE);
    bool eof = false;
    ssize_t n = el_buf_read(&c->out, u->fd, false, &eof);
    if (n == -1) return (struct el_up_step){EL_UP_CUT, false, 0, "backend read failed"};
    if (n > 0) {
        c->resp_bytes += (uint64_t)n;
        s.more = true;
    }
    if (eof) {
        c->up_eof = true;
        s.more = true;
    }
    return s;
}
