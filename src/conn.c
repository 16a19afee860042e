/* conn.c - client connections: read a head, ask the gate, answer here or
 * have upstream.c forward the request; and the event entry points of every
 * socket and timer of a worker's connections, the backend's included.
 *
 * Invariants:
 *  - One request is in progress per connection; bytes of pipelined requests
 *    wait in c->in until the response before them is complete.
 *  - Every socket is registered once (EV_ET|EV_PERSIST) and read until it is
 *    drained; nothing re-arms I/O events per request.
 *  - Nothing below the event entry points frees a connection: deep code
 *    marks it closed (conn_abort: state EL_CONN_CLOSED) and returns, and the
 *    entry point (client event, backend event, timer, gate callback) frees
 *    it on the way out, in settle().
 *  - Only this file acts on the client: writes to its socket, answers,
 *    closes. upstream.c runs the backend exchange on the same struct and
 *    returns what the client side must do next (struct el_up_step);
 *    up_step() does it.
 *  - The backend sees the request re-framed: the body exactly as einlass
 *    parsed it (Content-Length, or chunks re-encoded), so the two can never
 *    disagree on where a message ends.
 *  - After a 101 (EL_CONN_TUNNEL) no HTTP is parsed on the connection: every
 *    event of either socket runs tunnel_pump(), which moves bytes both ways
 *    until nothing moves, and the connection ends when both directions are
 *    shut, on an error, or after idle_timeout_ms without a byte. */
#include "einlass/conn.h"

#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "einlass/common.h"
#include "einlass/config.h"
#include "einlass/generation.h"
#include "einlass/limiter.h"
#include "einlass/metrics.h"
#include "einlass/proxy.h"
#include "einlass/upstream.h"
#include "einlass/worker-t.h"

static void conn_event(evutil_socket_t fd, short what, void *arg);
static void conn_timeout(evutil_socket_t fd, short what, void *arg);
static void conn_run(struct el_conn *c);
static void conn_read(struct el_conn *c, bool drain);
static void up_read(struct el_conn *c, bool drain);
static void tunnel_pump(struct el_conn *c);
static inline void up_step(struct el_conn *c, struct el_up_step s);

static inline const struct el_config *conn_cfg(const struct el_conn *c)
{
    return c->gen->cfg;
}

/* ---- lifecycle ---- */

static void timer_set(struct el_conn *c, const struct timeval *tv)
{
    event_add(&c->timer, tv);
}

static void conn_free(struct el_conn *c)
{
    struct el_worker *w = c->w;
    if (c->fd >= 0) {
        event_del(&c->ev);
        event_del(&c->timer);
        close(c->fd);
        c->fd = -1;
        atomic_fetch_sub_explicit(&el_metrics_workers[w->id].connections, 1,
                                  memory_order_relaxed);
    }
    el_upstream_abort(c);
    if (c->gate_pending) { /* the room still owes us a callback */
        c->dead = true;
        return;
    }
    el_buf_release(&w->bufs, &c->in);
    el_buf_release(&w->bufs, &c->out);
    if (c->gen) el_generation_drop(c->gen);
    c->gen = NULL;
    if (c->prev) c->prev->next = c->next;
    else w->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->next = w->free_conns;
    c->prev = NULL;
    w->free_conns = c;
}

/* Read and drop input until EAGAIN; the client's EOF (or an error) ends the
 * connection. */
static void linger_read(struct el_conn *c)
{
    char sink[4096];
    ssize_t n;
    while ((n = read(c->fd, sink, sizeof(sink))) > 0) {
    }
    if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) c->client_eof = true;
}

/* Entry points end here: free the connection if something asked for it. */
static void settle(struct el_conn *c)
{
    if (c->state == EL_CONN_CLOSED) conn_free(c);
}

static void conn_abort(struct el_conn *c)
{
    c->state = EL_CONN_CLOSED;
}

static bool aborted(const struct el_conn *c)
{
    return c->state == EL_CONN_CLOSED;
}

static void conn_flush(struct el_conn *c)
{
    if (aborted(c)) return;
    uint32_t before = el_buf_used(&c->out);
    int r = el_buf_write(&c->out, c->fd);
    if (r == -1) {
        conn_abort(c);
        return;
    }
    if (c->state == EL_CONN_PROXY && c->resp_head_done && !c->resp_done &&
        el_buf_used(&c->out) != before)
        timer_set(c, c->w->tv_idle); /* response body: idle_timeout_ms between bytes */
    if (r == 0) {
        if (c->state == EL_CONN_CLOSING) {
            /* Lingering close: stop sending, read and drop what the client
             * still sends until it closes or the timer fires, so a reset
             * does not destroy the answer in flight. */
            if (!c->shut_wr) {
                c->shut_wr = true;
                shutdown(c->fd, SHUT_WR);
                linger_read(c); /* what waits already raised its edge */
            }
            if (c->client_eof) conn_abort(c);
            return;
        }
        if (c->up_paused && c->up) {
            c->up_paused = false;
            up_read(c, true);
        } else if (c->state == EL_CONN_IDLE) {
            el_buf_release(&c->w->bufs, &c->out); /* idle connections hold no buffers */
        }
    } else if (el_buf_used(&c->out) > EL_CONN_HIGH_WATER && c->up) {
        c->up_paused = true;
    }
}

/* ---- answers made here ---- */

static void respond(struct el_conn *c, int status, const char *ctype, const char *body,
                    size_t body_len, const char *cookie, int retry_after, bool close)
{
    struct el_buf *o = &c->out;
    el_buf_alloc(&c->w->bufs, o, EL_BUF_SIZE);
    el_buf_append_str(o, "HTTP/1.1 ");
    el_buf_append_u64(o, (uint64_t)status);
    el_buf_append(o, " ", 1);
    el_buf_append_str(o, el_http_reason(status));
    el_buf_append_str(o, "\r\nServer: einlass\r\nCache-Control: no-store\r\nContent-Type: ");
    el_buf_append_str(o, ctype);
    el_buf_append_str(o, "\r\nContent-Length: ");
    el_buf_append_u64(o, body_len);
    el_buf_append_str(o, "\r\n");
    if (retry_after > 0) {
        el_buf_append_str(o, "Retry-After: ");
        el_buf_append_u64(o, (uint64_t)retry_after);
        el_buf_append_str(o, "\r\n");
    }
    if (cookie && cookie[0]) el_buf_append_header(o, "Set-Cookie", 10, cookie, strlen(cookie));
    if (close) el_buf_append_str(o, "Connection: close\r\n");
    else if (c->req.minor_version == 0) el_buf_append_str(o, "Connection: keep-alive\r\n");
    el_buf_append_str(o, "\r\n");
    if (!c->head_method) el_buf_append(o, body, body_len);
    c->resp_status = status;
    c->resp_bytes = body_len;
    if (close) {
        c->state = EL_CONN_CLOSING;
        c->in_paused = false; /* what the client still sends is read and dropped */
    }
    conn_flush(c);
}

/* An error answered by einlass; the connection closes after it. A request
 * the gate sent on keeps the pass the gate gave it (an admission, a slid
 * expiry): its ticket is spent, so a backend failure must not cost the place. */
static void respond_error(struct el_conn *c, int status, const char *reason)
{
    char body[160];
    int n = snprintf(body, sizeof(body), "%d %s: %s\n", status, el_http_reason(status), reason);
    const char *cookie = c->state == EL_CONN_PROXY && c->gate.forward ? c->gate.cookie : NULL;
    el_metrics_count(c->w->id, EL_DECISION_ERROR);
    respond(c, status, "text/plain; charset=utf-8", body, (size_t)n, cookie, 0, true);
    timer_set(c, c->w->tv_header);
}

static void access_log(struct el_conn *c, const char *decision)
{
    if (!conn_cfg(c)->access_log) return;
    uint64_t us = el_now_us() - c->t_start_us;
    el_log(EL_LOG_INFO, "access %s \"%s\" %d %llu %.3fms upstream %.3fms %s", c->peer_ip,
           c->log_req, c->resp_status, (unsigned long long)c->resp_bytes, (double)us / 1000.0,
           (double)c->upstream_us / 1000.0, decision);
}

/* The current request is over: go on with the next one, or close. */
static void finish_request(struct el_conn *c)
{
    if (aborted(c)) return;
    if (c->state == EL_CONN_CLOSING || !c->req.keep_alive || c->w->draining) {
        if (c->state != EL_CONN_CLOSING) {
            c->state = EL_CONN_CLOSING;
            c->in_paused = false;
            conn_flush(c);
        }
        timer_set(c, c->w->tv_header);
        return;
    }
    c->state = EL_CONN_IDLE;
    timer_set(c, c->w->tv_idle);
    if (c->in_run) return; /* conn_run() goes on with the next request itself */
    if (c->in_more) conn_read(c, false);
    else conn_run(c);
    if (c->state == EL_CONN_IDLE && el_buf_used(&c->in) == 0) {
        el_buf_release(&c->w->bufs, &c->in);
        if (el_buf_used(&c->out) == 0) el_buf_release(&c->w->bufs, &c->out);
    }
}

/* ---- request start ---- */

static void conn_adopt_generation(struct el_conn *c)
{
    struct el_generation *g = c->w->gen;
    if (c->gen == g) return;
    el_generation_hold(g);
    if (c->gen) el_generation_drop(c->gen);
    c->gen = g;
}

static void act(struct el_conn *c);

static void gate_done(void *arg)
{
    struct el_conn *c = arg;
    c->gate_pending = false;
    if (c->dead) {
        c->dead = false;
        conn_free(c);
        return;
    }
    act(c);
    if (c->in_more && !aborted(c)) conn_read(c, false); /* what came while deciding */
    settle(c);
}

static bool idempotent(const struct el_http_msg *r)
{
    static const char *m[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    for (size_t i = 0; i < EL_ARRAY_LEN(m); i++)
        if (r->method_len == strlen(m[i]) && memcmp(r->method, m[i], r->method_len) == 0)
            return true;
    return false;
}

/* The client of the current request: the peer itself, unless the peer is a
 * trusted proxy; then the rightmost X-Forwarded-For hop that is not one (see
 * el_proxy_xff_client; with no usable hop, the peer). Runs per request, as a
 * proxy's kept-alive connection carries many clients. */
static void resolve_client(struct el_conn *c, const struct el_config *cfg)
{
    bool was = c->peer_trusted;
    c->peer_trusted = el_config_trusted_addr(cfg, (const struct sockaddr *)&c->peer);
    if (c->peer_trusted &&
        el_proxy_xff_client(c->req.headers, c->req.nheaders, cfg->trusted_proxies,
                            cfg->ntrusted_proxies, &c->client) != EL_PROXY_XFF_NONE) {
        c->peer_ip_len = (uint8_t)el_addr_text(&c->client, false, c->peer_ip, sizeof(c->peer_ip));
        return;
    }
    if (c->peer_trusted) c->client = c->peer;
    if (c->peer_trusted || was) { /* the peer itself, after a request that named another */
        memcpy(c->peer_ip, c->hop_ip, sizeof(c->peer_ip));
        c->peer_ip_len = c->hop_ip_len;
    }
}

/* Before the first head, with proxy_protocol = v2: the PROXY header from a
 * trusted proxy. Returns true once it is consumed; false while it is
 * incomplete, or after answering 400 to anything else. */
static bool proxy_header(struct el_conn *c)
{
    const struct el_config *cfg = c->w->gen->cfg;
    struct el_proxy_v2 pp;
    const char *why = "expected a PROXY protocol v2 header";
    int r = EL_PROXY_V2_BAD;
    if (!el_config_trusted_addr(cfg, (const struct sockaddr *)&c->peer))
        why = "PROXY header expected from a peer in trusted_proxies only";
    else
        r = el_proxy_v2_parse((const uint8_t *)c->in.data + c->in.off, el_buf_used(&c->in), &pp);
    if (r == EL_PROXY_V2_INCOMPLETE) {
        if (c->client_eof) {
            conn_abort(c);
            return false;
        }
        if (c->in.len < c->in.cap) return false;
        why = "PROXY header larger than the input buffer";
        r = EL_PROXY_V2_BAD;
    }
    if (r <= 0) {
        conn_adopt_generation(c);
        c->req.keep_alive = false;
        c->head_method = false;
        c->t_start_us = el_now_us();
        respond_error(c, 400, why);
        return false;
    }
    el_buf_consume(&c->in, (size_t)r);
    c->proxy_hdr = false;
    c->peer_local = true; /* a trusted proxy speaks for its X-Forwarded-Proto too */
    if (!pp.local) {
        c->peer = pp.src;
        c->peer_ip_len = (uint8_t)el_addr_text(&c->peer, false, c->peer_ip, sizeof(c->peer_ip));
        memcpy(c->hop_ip, c->peer_ip, sizeof(c->hop_ip));
        c->hop_ip_len = c->peer_ip_len;
    }
    return true;
}

static void start_request(struct el_conn *c)
{
    struct el_worker *w = c->w;
    conn_adopt_generation(c);
    const struct el_config *cfg = conn_cfg(c);
    c->t_start_us = el_now_us();
    c->head_method = c->req.method_len == 4 && memcmp(c->req.method, "HEAD", 4) == 0;
    c->idempotent = idempotent(&c->req);
    if (cfg->access_log) /* the head's bytes are reused once it is forwarded */
        snprintf(c->log_req, sizeof(c->log_req), "%.*s %.*s", (int)c->req.method_len,
                 c->req.method, (int)c->req.path_len, c->req.path);
    c->req_remaining = c->req.body == EL_BODY_LENGTH ? c->req.content_length : 0;
    memset(&c->req_chunk, 0, sizeof(c->req_chunk));
    c->req_body_bytes = 0;
    c->req_body_done = c->req.body == EL_BODY_NONE ||
                       (c->req.body == EL_BODY_LENGTH && c->req.content_length == 0);
    c->req_sent = false;
    c->resp_head_done = c->resp_done = false;
    c->resp_status = 0;
    c->resp_bytes = 0;
    c->upstream_us = 0;
    c->retries = 0;
    c->up_paused = c->in_paused = false;
    event_del(&c->timer);

    if (c->req.body == EL_BODY_LENGTH && c->req.content_length > cfg->max_body_bytes) {
        respond_error(c, 413, "request body larger than max_body_bytes");
        return;
    }
    if (cfg->ntrusted_proxies || c->peer_trusted) resolve_client(c, cfg);
    c->state = EL_CONN_GATE;
    c->gate_pending = true;
    c->gate.proxied = c->peer_local || c->peer_trusted;
    const struct sockaddr *client =
        (const struct sockaddr *)(c->peer_trusted ? &c->client : &c->peer);
    struct el_gate_input in = {
        .states = w->rooms->state,
        .now = el_wall_s(),
        .events = w->rooms->events,
    };
    if (el_gate_decide(w->gate, &c->gate, &c->req, client, &in, gate_done, c)) {
        c->gate_pending = false;
        act(c);
    }
}

/* Forward the request: upstream.c takes a backend connection and the
 * rewritten head; what goes to the client (100 Continue) is sent here. */
static void begin_forward(struct el_conn *c)
{
    struct el_worker *w = c->w;
    c->state = EL_CONN_PROXY;
    /* Admission: above the backend limit, the request waits for a slot
     * (no backend connection, no body read); el_conn_ready goes on. */
    if (!c->slot_held && !el_upstream_admit(c)) return;
    if (!el_upstream_open(c)) {
        respond_error(c, 502, "backend unreachable");
        return;
    }
    if (c->req.expect_continue && !c->req_body_done) {
        el_buf_alloc(&w->bufs, &c->out, EL_BUF_SIZE);
        el_buf_append_str(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
        conn_flush(c);
    }
    el_buf_consume(&c->in, c->req.head_len);
    up_step(c, el_upstream_start(c));
}

static void act(struct el_conn *c)
{
    struct el_gate_ctx *g = &c->gate;
    el_metrics_count(c->w->id, g->decision);
    if (g->forward) {
        begin_forward(c);
        return;
    }
    /* Answered here. A request body we did not read makes the connection
     * unusable for another request: close after the answer. */
    bool close = !c->req_body_done || !c->req.keep_alive;
    if (c->req_body_done) el_buf_consume(&c->in, c->req.head_len);
    respond(c, g->status, g->ctype, g->body, g->body_len, g->cookie, g->retry_after, close);
    access_log(c, el_decision_name(g->decision));
    finish_request(c);
}

/* A request waited queue_timeout_ms for a backend slot: a GET or HEAD gets
 * the waiting answer (page or JSON, 503 with Retry-After: try again soon),
 * anything else a plain 503 that says why. A pass the gate gave it goes
 * with the answer, so the retry is not sent to the back of the room. */
static void queue_timeout(struct el_conn *c)
{
    const struct el_config *cfg = conn_cfg(c);
    struct el_limiter_stats st;
    el_limiter_stats(c->w->limiter, &st);
    struct el_gate_ctx *g = &c->gate;
    el_gate_busy(c->w->gate, g, &c->req, (uint64_t)st.queued + 1);
    el_info("queue: %s: \"%s\" waited %d ms for a backend slot (queue_timeout_ms), answered 503",
            c->peer_ip, cfg->access_log ? c->log_req : "", cfg->queue_timeout_ms);
    bool close = !c->req_body_done || !c->req.keep_alive;
    if (c->req_body_done) el_buf_consume(&c->in, c->req.head_len);
    respond(c, g->status, g->ctype, g->body, g->body_len, g->cookie, g->retry_after, close);
    access_log(c, "queue-timeout");
    finish_request(c);
}

void el_conn_ready(struct el_worker *w)
{
    struct el_conn *c;
    while ((c = el_upstream_ready_pop(w)) != NULL) {
        if (aborted(c)) { /* cannot be: abort takes it out of the list */
            settle(c);
            continue;
        }
        event_del(&c->timer);
        begin_forward(c);
        if (c->in_more && !aborted(c)) conn_read(c, false); /* what came while waiting */
        settle(c);
    }
}

/* ---- client input ---- */

static void conn_run_once(struct el_conn *c);

static void conn_run(struct el_conn *c)
{
    if (c->in_run) return;
    c->in_run = true;
    conn_run_once(c);
    c->in_run = false;
}

static void conn_run_once(struct el_conn *c)
{
    while (!aborted(c)) {
        switch (c->state) {
        case EL_CONN_IDLE:
        case EL_CONN_HEAD: {
            if (el_buf_used(&c->in) == 0) {
                if (c->client_eof) conn_abort(c);
                return;
            }
            if (c->proxy_hdr && !proxy_header(c)) return;
            const struct el_config *cfg = c->w->gen->cfg;
            int r = el_http_parse_request(c->in.data + c->in.off, el_buf_used(&c->in),
                                          cfg->max_header_bytes, &c->req);
            if (r == EL_HTTP_INCOMPLETE) {
                if (c->client_eof) {
                    conn_abort(c);
                    return;
                }
                if (c->state == EL_CONN_IDLE) {
                    c->state = EL_CONN_HEAD;
                    timer_set(c, c->w->tv_header);
                }
                return;
            }
            if (r < 0) {
                conn_adopt_generation(c);
                c->req.keep_alive = false;
                c->head_method = false;
                c->t_start_us = el_now_us();
                if (r == EL_HTTP_TOO_LARGE)
                    respond_error(c, 431, "request header fields too large");
                else if (r == EL_HTTP_VERSION)
                    respond_error(c, 505, "only HTTP/1.0 and HTTP/1.1 are served");
                else
                    respond_error(c, 400, "malformed or ambiguous request");
                return;
            }
            start_request(c);
            break; /* a local answer loops to the next pipelined request */
        }
        case EL_CONN_PROXY:
            up_step(c, el_upstream_send(c));
            return;
        case EL_CONN_TUNNEL: /* became one while this read went on */
            tunnel_pump(c);
            return;
        default:
            return;
        }
    }
}

static void conn_read(struct el_conn *c, bool drain)
{
    if (c->in_run) { /* called back from inside conn_run(): the loop below reads on */
        c->in_more = true;
        return;
    }
    if (c->state == EL_CONN_GATE) { /* the head must not move while the room decides */
        c->in_more = true;
        return;
    }
    if (c->slot_waiting) { /* nor while it waits for a backend slot: read nothing */
        c->in_more = true;
        if (drain) conn_abort(c); /* the client closed: give the wait up */
        return;
    }
    for (int round = 0;; round++) {
        if (aborted(c) || c->in_paused) return;
        if (round == 64) { /* fairness: go on in the next loop iteration */
            event_active(&c->ev, EV_READ, 0);
            return;
        }
        if (c->state == EL_CONN_CLOSING) { /* lingering close: discard */
            linger_read(c);
            if (c->client_eof && c->shut_wr) conn_abort(c);
            return;
        }
        size_t max_head = c->w->gen->cfg->max_header_bytes;
        el_buf_alloc(&c->w->bufs, &c->in, (uint32_t)EL_MAX(EL_BUF_SIZE, max_head));
        bool eof = false;
        ssize_t n = el_buf_read(&c->in, c->fd, drain, &eof);
        if (n == -1) {
            conn_abort(c);
            return;
        }
        if (eof) c->client_eof = true;
        c->in_more = n == -3 || c->in.len == c->in.cap;
        uint32_t before = el_buf_used(&c->in);
        conn_run(c);
        if (c->client_eof && c->state == EL_CONN_PROXY && !c->resp_done) /* the answer may */
            el_upstream_journal(c, c->resp_status, "client went away"); /* never reach it */
        if (c->client_eof && c->state == EL_CONN_PROXY && !c->req_body_done) {
            conn_abort(c); /* the client gave up mid-body */
            return;
        }
        if (!c->in_more || eof) return;
        if (el_buf_used(&c->in) == before) return; /* no room now: finish_request reads on */
    }
}

static void conn_event(evutil_socket_t fd, short what, void *arg)
{
    struct el_conn *c = arg;
    if (c->state == EL_CONN_TUNNEL) {
        tunnel_pump(c);
        settle(c);
        return;
    }
    if (what & EV_WRITE) conn_flush(c);
    if (what & (EV_READ | EV_CLOSED)) conn_read(c, (what & EV_CLOSED) != 0);
    settle(c);
}

/* ---- backend side: upstream.c's steps, and what they ask of the client ---- */

/* The exchange failed and upstream.c released the backend connection. */
static void up_fail(struct el_conn *c, int status, const char *reason)
{
    if (c->resp_head_done) {
        conn_abort(c); /* the head is out: the truncation is the message */
        return;
    }
    respond_error(c, status, reason);
    access_log(c, el_decision_name(EL_DECISION_ERROR));
}

/* The response is complete and upstream.c pooled or closed the backend
 * connection: log the request, go on with the next one. */
static void exchange_done(struct el_conn *c)
{
    access_log(c, el_decision_name(c->gate.decision));
    finish_request(c);
}

/* Do what an exchange step asks of the client side (out of line: most
 * steps ask nothing, and up_step() tests that inline). */
static void up_act(struct el_conn *c, struct el_up_step s)
{
    switch ((enum el_up_next)s.next) {
    case EL_UP_WAIT:
    case EL_UP_PENDING:
        return;
    case EL_UP_RESUME:
        conn_read(c, true);
        return;
    case EL_UP_FLUSH:
        conn_flush(c);
        return;
    case EL_UP_DONE:
        exchange_done(c);
        return;
    case EL_UP_ANSWER:
        respond_error(c, s.status, s.reason);
        return;
    case EL_UP_FAIL:
        up_fail(c, s.status, s.reason);
        return;
    case EL_UP_CUT:
        conn_abort(c);
        return;
    case EL_UP_TUNNEL:
        c->state = EL_CONN_TUNNEL;
        access_log(c, el_decision_name(c->gate.decision));
        el_debug("tunnel: %s: websocket open", c->peer_ip);
        tunnel_pump(c);
        return;
    }
}

/* ---- the tunnel: a WebSocket after its 101 ---- */

/* Move bytes both ways until nothing moves: client -> c->in -> backend,
 * backend -> c->out -> client. A buffer that is full stops the read of its
 * side (back-pressure: the next event of the other side goes on), an EOF is
 * passed on as a half-close once what came before it is out, and the
 * connection ends when both sides are shut. Bytes re-arm idle_timeout_ms. */
static void tunnel_pump(struct el_conn *c)
{
    struct el_worker *w = c->w;
    bool moved = false;
    for (int round = 0; !aborted(c); round++) {
        if (round == 64) { /* fairness: go on in the next loop iteration */
            event_active(&c->ev, EV_READ, 0);
            break;
        }
        bool more = false;
        if (!c->client_eof) {
            el_buf_alloc(&w->bufs, &c->in, EL_BUF_SIZE);
            bool eof = false;
            ssize_t n = el_buf_read(&c->in, c->fd, false, &eof);
            if (n == -1) {
                el_debug("tunnel: %s: client read failed, closed", c->peer_ip);
                conn_abort(c);
                break;
            }
            if (eof) c->client_eof = true;
            more |= n > 0 || eof;
        }
        struct el_up_step s = el_upstream_tunnel_send(c);
        if (s.next == EL_UP_CUT) {
            el_debug("tunnel: %s: %s, closed", c->peer_ip, s.reason);
            conn_abort(c);
            break;
        }
        more |= s.more;
        s = el_upstream_tunnel_read(c);
        if (s.next == EL_UP_CUT) {
            el_debug("tunnel: %s: %s, closed", c->peer_ip, s.reason);
            conn_abort(c);
            break;
        }
        more |= s.more;
        uint32_t before = el_buf_used(&c->out);
        if (before && el_buf_write(&c->out, c->fd) == -1) {
            el_debug("tunnel: %s: client write failed, closed", c->peer_ip);
            conn_abort(c);
            break;
        }
        more |= el_buf_used(&c->out) != before;
        if (c->up_eof && el_buf_used(&c->out) == 0 && !c->shut_wr) {
            shutdown(c->fd, SHUT_WR); /* pass the backend's half-close on */
            c->shut_wr = true;
        }
        if (c->up_shut && c->shut_wr) {
            el_debug("tunnel: %s: websocket closed by both sides (%llu bytes up, %llu down)",
                     c->peer_ip, (unsigned long long)c->tun_up_bytes,
                     (unsigned long long)c->resp_bytes);
            conn_abort(c);
            break;
        }
        moved |= more;
        if (!more) break;
    }
    if (moved && !aborted(c)) timer_set(c, w->tv_idle);
}

static inline void up_step(struct el_conn *c, struct el_up_step s)
{
    if (s.next != EL_UP_WAIT) up_act(c, s);
}

/* The backend's read loop: each round (el_upstream_read: read, retry, head,
 * body) leaves the response bytes in c->out, and they are flushed before
 * the next round, so a slow client stops the loop (up_paused) and resumes
 * it from conn_flush(). */
static void up_read(struct el_conn *c, bool drain)
{
    for (int round = 0; c->up && !aborted(c) && !c->resp_done; round++) {
        if (c->up_paused) return;
        if (round == 64) { /* fairness: go on in the next loop iteration */
            event_active(&c->up->ev, EV_READ, 0);
            return;
        }
        struct el_up_step s = el_upstream_read(c, drain);
        if (s.next != EL_UP_FLUSH) {
            up_step(c, s);
            return;
        }
        conn_flush(c);
        if (s.status) {
            up_step(c, el_upstream_fail(c, s.status, s.reason));
            return;
        }
        if (c->resp_done) {
            up_step(c, el_upstream_done(c));
            return;
        }
        if (!s.more) return;
    }
}

void el_conn_upstream_event(evutil_socket_t fd, short what, void *arg)
{
    struct el_upconn *u = arg;
    struct el_conn *c = u->owner;
    if (c == NULL) { /* idle in the pool: the backend closed it, or sent garbage */
        el_upstream_idle_event(u);
        return;
    }
    if (c->state == EL_CONN_TUNNEL) {
        tunnel_pump(c);
        settle(c);
        return;
    }
    struct el_up_step s = el_upstream_event(u, what);
    if (s.next == EL_UP_PENDING) return; /* the connect goes on */
    up_step(c, s);
    if (!aborted(c) && c->up == u && (what & (EV_READ | EV_CLOSED))) up_read(c, (what & EV_CLOSED) != 0);
    settle(c);
}

/* A timer fired: say which one and why in the log (this is never the hot
 * path), then answer if the response head is not out yet, else cut. */
static void conn_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct el_conn *c = arg;
    if (c->slot_waiting) {
        if (el_upstream_admit_cancel(c)) queue_timeout(c);
        /* else a slot came meanwhile: el_conn_ready goes on */
    } else if (c->state == EL_CONN_PROXY && !c->resp_head_done && c->up) {
        up_step(c, el_upstream_timeout(c)); /* logs which timeout */
    } else {
        switch (c->state) {
        case EL_CONN_PROXY:
            el_warn("timeout: %s: %s (idle_timeout_ms), connection cut", c->peer_ip,
                    c->resp_head_done ? "response body stalled" : "exchange stalled");
            el_upstream_journal(c, c->resp_status, c->up_paused ? "client stopped reading"
                                                                : "backend timed out");
            break;
        case EL_CONN_HEAD:
            el_info("timeout: %s: request head not complete (header_timeout_ms), closed",
                    c->peer_ip);
            break;
        case EL_CONN_IDLE:
            el_debug("timeout: %s: idle keep-alive connection (idle_timeout_ms), closed",
                     c->peer_ip);
            break;
        case EL_CONN_TUNNEL:
            el_info("timeout: %s: websocket tunnel idle (idle_timeout_ms), closed "
                    "(%llu bytes up, %llu down)", c->peer_ip,
                    (unsigned long long)c->tun_up_bytes, (unsigned long long)c->resp_bytes);
            break;
        default:
            el_debug("timeout: %s: lingering close ended (header_timeout_ms)", c->peer_ip);
            break;
        }
        conn_abort(c);
    }
    settle(c);
}

/* ---- accept ---- */

static void conn_open(struct el_worker *w, int fd, const struct sockaddr_storage *peer)
{
    struct el_conn *c = w->free_conns;
    if (c) w->free_conns = c->next;
    else c = el_malloc(sizeof(*c));
    memset(c, 0, offsetof(struct el_conn, req));
    memset(&c->gate, 0, sizeof(c->gate));
    c->up = NULL;
    c->counted_inflight = false;
    c->slot_held = c->slot_waiting = false;
    c->jr.armed = false;
    c->fd = fd;
    c->w = w;
    c->peer = *peer;
    c->peer_ip_len = (uint8_t)el_addr_text(peer, false, c->peer_ip, sizeof(c->peer_ip));
    memcpy(c->hop_ip, c->peer_ip, sizeof(c->hop_ip));
    c->hop_ip_len = c->peer_ip_len;
    c->peer_local = el_proxy_is_local((const struct sockaddr *)peer);
    c->proxy_hdr = w->gen->cfg->proxy_protocol == EL_PROXY_PROTOCOL_V2;
    c->state = EL_CONN_HEAD;
    c->next = w->conns;
    c->prev = NULL;
    if (w->conns) w->conns->prev = c;
    w->conns = c;
    atomic_fetch_add_explicit(&el_metrics_workers[w->id].connections, 1, memory_order_relaxed);
    event_assign(&c->ev, w->base, fd, EV_READ | EV_WRITE | EV_ET | EV_PERSIST | EV_CLOSED,
                 conn_event, c);
    event_assign(&c->timer, w->base, -1, 0, conn_timeout, c);
    event_add(&c->ev, NULL);
    timer_set(c, w->tv_header);
    /* TCP_DEFER_ACCEPT: the request is usually here already. */
    conn_read(c, false);
    settle(c);
}

static void accept_resume(evutil_socket_t fd, short what, void *arg)
{
    struct el_worker *w = arg;
    if (w->listen_fd >= 0 && !w->draining) event_add(&w->listen_ev, NULL);
}

void el_conn_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct el_worker *w = arg;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        int fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            /* Out of descriptors or memory: the pending connection stays
             * queued and the listener stays readable, so accepting again at
             * once would spin. Pause accepting for 100 ms. */
            el_warn("worker %d: accept: %s; pausing accepts for 100 ms", w->id, strerror(errno));
            event_del(&w->listen_ev);
            struct timeval tv = {0, 100 * 1000};
            event_base_once(w->base, -1, EV_TIMEOUT, accept_resume, w, &tv);
            return;
        }
        if (peer.ss_family != AF_UNIX) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        }
        conn_open(w, fd, &peer);
    }
}

int el_conn_drain(struct el_worker *w)
{
    int busy = 0;
    struct el_conn *c = w->conns, *next;
    for (; c; c = next) {
        next = c->next;
        if (c->fd < 0) continue;
        if (((c->state == EL_CONN_IDLE || c->state == EL_CONN_HEAD) &&
             el_buf_used(&c->in) == 0) ||
            c->state == EL_CONN_TUNNEL) { /* a WebSocket never finishes: it reconnects */
            conn_abort(c);
            settle(c);
        } else {
            busy++;
        }
    }
    el_upstream_pool_drain(w);
    return busy;
}

void el_conn_close_all(struct el_worker *w)
{
    struct el_conn *c = w->conns, *next;
    for (; c; c = next) {
        next = c->next;
        conn_abort(c);
        conn_free(c); /* one still owed a room answer stays, marked dead */
    }
    el_conn_drain(w);
}

void el_conn_worker_free(struct el_worker *w)
{
    while (w->conns) { /* none should be left: the room answered them all */
        struct el_conn *c = w->conns;
        c->gate_pending = false;
        conn_free(c);
    }
    while (w->free_conns) {
        struct el_conn *c = w->free_conns;
        w->free_conns = c->next;
        free(c);
    }
    el_upstream_pool_free(w);
    el_buf_pool_clear(&w->bufs);
}
