/* probe.c - the active latency probe: every probe_interval_ms (when
 * [backend] probe_path is set) a plain GET of probe_path on a new
 * connection to the backend, its latency (Server-Timing, or the time to
 * the response head) added to a window the control loop merges with the
 * workers'. So the trigger sees the backend slow down even while the room
 * lets few requests through.
 *
 * Invariants:
 *  - Main thread only; one probe in flight at most. A probe that has not
 *    answered within response_timeout_ms counts as a sample of that many
 *    milliseconds, and the next one starts.
 *  - Each tick reads the current generation, so a reload changes the path,
 *    the period and the backend from the next probe on. */
#include "einlass/probe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "einlass/buf.h"
#include "einlass/common.h"
#include "einlass/config.h"
#include "einlass/generation.h"
#include "einlass/http.h"
#include "einlass/latency.h"
#include "einlass/metrics.h"
#include "einlass/worker-t.h"

struct el_probe {
    struct event timer;       /* period */
    struct event_base *base;  /* the main thread's loop */
    _Atomic(struct el_generation *) *gen; /* the server's current generation */
    struct el_latency *samples; /* where the samples go (the control loop reads it) */
    struct event io;          /* the probe's socket */
    int fd;                   /* -1 when idle */
    uint64_t t_sent_us;       /* request written */
    uint64_t deadline_ms;     /* give up after response_timeout_ms */
    struct el_buf in;         /* response head */
    struct el_buf_pool pool;  /* for in */
    char req[512];            /* the request, until sent */
    size_t req_len;           /* bytes of req still to send (0: sent) */
};

static void probe_close(struct el_probe *p)
{
    if (p->fd < 0) return;
    event_del(&p->io);
    close(p->fd);
    p->fd = -1;
    el_buf_release(&p->pool, &p->in);
}

static void probe_io(evutil_socket_t fd, short what, void *arg)
{
    struct el_probe *p = arg;
    const struct el_config *cfg = el_generation_config(p->gen);
    if ((what & EV_WRITE) && p->req_len > 0) {
        ssize_t n = send(fd, p->req, p->req_len, MSG_NOSIGNAL);
        if (n == (ssize_t)p->req_len) {
            p->req_len = 0;
            p->t_sent_us = el_now_us();
        } else if (n != -1 || (errno != EAGAIN && errno != ENOTCONN)) {
            probe_close(p); /* refused, or a partial write of a tiny request */
            return;
        }
    }
    if (!(what & EV_READ) || p->req_len > 0) return;
    bool eof = false;
    ssize_t n = el_buf_read(&p->in, fd, true, &eof);
    if (n == -2 && !eof) return;
    static struct el_http_msg m;
    int r = el_http_parse_response(p->in.data, p->in.len, p->in.cap, false, &m);
    if (r > 0) {
        double ms = el_latency_sample(&m, cfg->latency_metric,
                                      (double)(el_now_us() - p->t_sent_us) / 1000.0);
        el_latency_add(p->samples, el_now_ms(), ms);
        el_metrics_observe(EL_METRICS_MAIN, ms);
        probe_close(p);
    } else if (r < 0 || eof || n == -1 || n == -3) {
        el_debug("probe: no usable answer from the backend");
        probe_close(p);
    }
}

static void probe_tick(evutil_socket_t fd, short what, void *arg)
{
    struct el_probe *p = arg;
    const struct el_generation *g = atomic_load(p->gen);
    const struct el_config *cfg = g->cfg;
    if (p->fd >= 0) {
        if (el_now_ms() < p->deadline_ms) goto rearm;
        /* No answer within response_timeout_ms: that is a sample too. */
        el_latency_add(p->samples, el_now_ms(), (double)cfg->response_timeout_ms);
        probe_close(p);
    }
    if (cfg->probe_path[0] == '\0') goto rearm;
    p->fd = socket(g->backend.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd == -1) goto rearm;
    if (connect(p->fd, (const struct sockaddr *)&g->backend, g->backend_len) == -1 &&
        errno != EINPROGRESS) {
        close(p->fd);
        p->fd = -1;
        goto rearm;
    }
    el_buf_alloc(&p->pool, &p->in, 8192);
    int n = snprintf(p->req, sizeof(p->req),
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: einlass-probe\r\n"
                     "Connection: close\r\n\r\n",
                     cfg->probe_path, cfg->backend_address);
    p->req_len = (size_t)EL_MIN(n, (int)sizeof(p->req) - 1);
    p->t_sent_us = el_now_us();
    p->deadline_ms = el_now_ms() + (uint64_t)cfg->response_timeout_ms;
    event_assign(&p->io, p->base, p->fd, EV_READ | EV_WRITE | EV_PERSIST | EV_ET, probe_io, p);
    event_add(&p->io, NULL);
rearm:;
    struct timeval tv = el_tv_ms((uint64_t)cfg->probe_interval_ms);
    event_add(&p->timer, &tv);
}

struct el_probe *el_probe_new(struct event_base *base, _Atomic(struct el_generation *) *gen,
                              struct el_latency *samples)
{
    struct el_probe *p = el_calloc(1, sizeof(*p));
    p->base = base;
    p->gen = gen;
    p->samples = samples;
    p->fd = -1;
    p->pool.max = 1;
    evtimer_assign(&p->timer, base, probe_tick, p);
    struct timeval ptv = {0, 1000};
    event_add(&p->timer, &ptv);
    return p;
}

void el_probe_stop(struct el_probe *p)
{
    event_del(&p->timer);
}

void el_probe_free(struct el_probe *p)
{
    if (p == NULL) return;
    probe_close(p);
    el_buf_pool_clear(&p->pool);
    free(p);
}
