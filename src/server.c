/* server.c - worker threads, listeners, generations, the control loop,
 * the probe, reload and drain.
 *
 * Invariants:
 *  - srv->gen is the current generation; the main thread holds one
 *    reference to it, each worker one to the generation it runs on, each
 *    request one to the generation it started on.
 *  - A worker adopts a new generation only on its own thread, when the main
 *    thread nudges its eventfd; so nothing on the hot path reads shared
 *    pointers.
 *  - A worker owns its listener fd; when a reload changes the listen
 *    address, the worker closes its old fd as it adopts the new one.
 *  - The control loop is the only writer of srv->state. */
#include "einlass/server.h"

#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#ifdef EL_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "einlass/admin.h"
#include "einlass/common.h"
#include "einlass/config.h"
#include "einlass/conn.h"
#include "einlass/control.h"
#include "einlass/gate.h"
#include "einlass/http.h"
#include "einlass/latency.h"
#include "einlass/limiter.h"
#include "einlass/metrics.h"
#include "einlass/page.h"
#include "einlass/room.h"

#define CONTROL_PERIOD_MS 100

static void notify(const char *state)
{
#ifdef EL_HAVE_SYSTEMD
    sd_notify(0, state);
#else
    (void)state;
#endif
}

/* ---- generations ---- */

void el_generation_hold(struct el_generation *g)
{
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
}

void el_generation_drop(struct el_generation *g)
{
    if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1) return;
    el_page_free(g->page);
    el_config_free(g->cfg);
    free(g);
}

static int open_listener(const struct sockaddr_storage *ss, unsigned len, char **err)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) goto fail;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1) goto fail;
    if (bind(fd, (const struct sockaddr *)ss, len) == -1) goto fail;
    if (listen(fd, 4096) == -1) goto fail;
    int defer = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer));
    return fd;
fail:
    *err = el_sprintf("cannot listen: %s", strerror(errno));
    if (fd != -1) close(fd);
    return -1;
}

/* Whether another process listens on ss already. SO_REUSEPORT would let our
 * sockets join its group and split the traffic with it, so ask the kernel
 * first with a plain socket: with SO_REUSEADDR (closed connections in
 * TIME_WAIT do not count) but not SO_REUSEPORT, bind fails with EADDRINUSE
 * exactly when someone listens on the address (or on the wildcard address
 * of its port). The probe never listens, so it takes no connection. A
 * second instance starting in the same instant can slip past it; a lock
 * would be needed for that. */
static bool someone_listens(const struct sockaddr_storage *ss, unsigned len)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) return false; /* the real bind will say what is wrong */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    bool busy = bind(fd, (const struct sockaddr *)ss, len) == -1 && errno == EADDRINUSE;
    close(fd);
    return busy;
}

/* Open one SO_REUSEPORT socket per worker on cfg->listen (port 0: the first
 * socket picks the port, the others join it). own: the sockets this process
 * listens on now (NULL at start): a reload that moves between addresses of
 * the same port (0.0.0.0 <-> 127.0.0.1) overlaps them, so it skips the
 * probe rather than mistake itself for another process. */
static int open_listeners(struct el_server *s, const struct el_config *cfg, const int *own,
                          int *fds, char **err)
{
    struct sockaddr_storage ss;
    unsigned len;
    const char *why;
    if (el_parse_addr(cfg->listen, &ss, &len, &why) == -1) {
        *err = el_sprintf("listen %s: %s", cfg->listen, why);
        return -1;
    }
    bool probe = !cfg->listen_shared && el_addr_port(&ss) != 0;
    if (probe && own != NULL) {
        struct sockaddr_storage have;
        socklen_t hl = sizeof(have);
        if (getsockname(own[0], (struct sockaddr *)&have, &hl) == 0 &&
            have.ss_family == ss.ss_family && el_addr_port(&have) == el_addr_port(&ss))
            probe = false;
    }
    if (probe && someone_listens(&ss, len)) {
        *err = el_sprintf("listen %s: another process listens there already (is einlass "
                          "running?); stop it, or set [server] listen_shared = on to share "
                          "the port with it",
                          cfg->listen);
        return -1;
    }
    for (int i = 0; i < s->nworkers; i++) {
        fds[i] = open_listener(&ss, len, err);
        if (fds[i] == -1) {
            while (i-- > 0) close(fds[i]);
            char *e = *err;
            *err = el_sprintf("listen %s: %s", cfg->listen, e);
            free(e);
            return -1;
        }
        if (i == 0) {
            socklen_t sl = sizeof(ss);
            getsockname(fds[0], (struct sockaddr *)&ss, &sl);
        }
    }
    char text[96];
    el_addr_text(&ss, true, text, sizeof(text));
    el_notice("listening on %s (%d workers)", text, s->nworkers);
    return 0;
}

/* Does cfg->listen name the address old's sockets are bound to? Port 0
 * ("any") matches whatever port they have, so a reload never moves them. */
static bool same_listener(const struct el_generation *old, const struct el_config *cfg)
{
    struct sockaddr_storage want, have;
    unsigned len;
    socklen_t hl = sizeof(have);
    const char *why;
    if (strcmp(old->cfg->listen, cfg->listen) == 0) return true;
    if (el_parse_addr(cfg->listen, &want, &len, &why) == -1) return false;
    if (getsockname(old->listen_fds[0], (struct sockaddr *)&have, &hl) == -1) return false;
    if (want.ss_family != have.ss_family) return false;
    if (want.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)&want, *b = (const void *)&have;
        return a->sin_addr.s_addr == b->sin_addr.s_addr &&
               (a->sin_port == 0 || a->sin_port == b->sin_port);
    }
    if (want.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)&want, *b = (const void *)&have;
        return memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) == 0 &&
               (a->sin6_port == 0 || a->sin6_port == b->sin6_port);
    }
    return false;
}

static struct el_generation *generation_new(struct el_server *s, struct el_config *cfg,
                                            const struct el_generation *old, char **err)
{
    struct el_generation *g = el_calloc(1, sizeof(*g));
    const char *why;
    atomic_init(&g->refs, 1);
    g->cfg = cfg;
    if (el_parse_addr(cfg->backend_address, &g->backend, &g->backend_len, &why) == -1) {
        *err = el_sprintf("%s:0: [backend] address %s: %s", cfg->path, cfg->backend_address, why);
        goto fail;
    }
    char *perr = NULL;
    g->page = el_page_load(cfg->template_path, &perr);
    if (g->page == NULL) {
        *err = el_sprintf("%s:0: [room] template: %s", cfg->path, perr);
        free(perr);
        goto fail;
    }
    if (old && same_listener(old, cfg)) {
        memcpy(g->listen_fds, old->listen_fds, sizeof(g->listen_fds));
    } else {
        char *lerr = NULL;
        if (open_listeners(s, cfg, old ? old->listen_fds : NULL, g->listen_fds, &lerr) == -1) {
            *err = el_sprintf("%s:0: %s", cfg->path, lerr);
            free(lerr);
            goto fail;
        }
    }
    g->id = ++s->next_gen_id;
    return g;
fail:
    el_page_free(g->page);
    free(g);
    return NULL;
}

/* ---- workers ---- */

static void worker_adopt(struct el_worker *w, struct el_generation *g)
{
    if (w->gen == g) return;
    el_generation_hold(g);
    struct el_generation *old = w->gen;
    w->gen = g;
    el_gate_set_generation(w->gate, g->cfg, g->page, g->id);
    const struct el_config *cfg = g->cfg;
    struct timeval tv;
#define COMMON(field, ms)                                                                          \
    tv = el_tv_ms((uint64_t)(ms));                                                                 \
    w->field = event_base_init_common_timeout(w->base, &tv)
    COMMON(tv_header, cfg->header_timeout_ms);
    COMMON(tv_idle, cfg->idle_timeout_ms);
    COMMON(tv_response, cfg->response_timeout_ms);
    COMMON(tv_connect, cfg->connect_timeout_ms);
#undef COMMON
    int fd = g->listen_fds[w->id];
    if (!w->draining && fd != w->listen_fd) {
        if (w->listen_fd >= 0) {
            /* Take in what waits in the old queue before closing it. */
            el_conn_accept(w->listen_fd, EV_READ, w);
            event_del(&w->listen_ev);
            close(w->listen_fd);
        }
        w->listen_fd = fd;
        event_assign(&w->listen_ev, w->base, fd, EV_READ | EV_PERSIST, el_conn_accept, w);
        event_add(&w->listen_ev, NULL);
    }
    if (old) el_generation_drop(old);
}

static void worker_check_drained(struct el_worker *w)
{
    if (el_conn_drain(w) == 0) event_base_loopexit(w->base, NULL);
}

static void worker_drain_tick(evutil_socket_t fd, short what, void *arg)
{
    worker_check_drained(arg);
}

static void worker_wake(evutil_socket_t fd, short what, void *arg)
{
    struct el_worker *w = arg;
    uint64_t v;
    if (read(fd, &v, sizeof(v)) != sizeof(v)) return;
    el_conn_ready(w); /* requests granted a backend slot meanwhile */
    struct el_server *s = w->srv;
    if (v >= (1u << 20)) { /* forced stop: the drain timeout passed */
        event_base_loopbreak(w->base);
        return;
    }
    struct el_generation *g = atomic_load_explicit(&s->gen, memory_order_acquire);
    worker_adopt(w, g);
    if (atomic_load(&s->stopping) && !w->draining) {
        w->draining = true;
        if (w->listen_fd >= 0) {
            event_del(&w->listen_ev);
            w->listen_fd = -1; /* the main thread closes listener fds at exit */
        }
        struct timeval tv = {0, 50 * 1000};
        event_assign(&w->drain_ev, w->base, -1, EV_PERSIST, worker_drain_tick, w);
        event_add(&w->drain_ev, &tv);
        worker_check_drained(w);
    }
}

static void *worker_main(void *arg)
{
    struct el_worker *w = arg;
    event_base_dispatch(w->base);
    /* Connections first, then the room: freeing it answers every pending
     * store op, which frees the connections that were waiting for one. */
    el_conn_close_all(w);
    el_room_free(w->room);
    w->room = NULL;
    el_gate_free(w->gate);
    w->gate = NULL;
    el_conn_worker_free(w);
    return NULL;
}

static void wake_workers(struct el_server *s, uint64_t v)
{
    for (int i = 0; i < s->nworkers; i++) {
        if (write(s->workers[i].wake_fd, &v, sizeof(v)) != sizeof(v))
            el_warn("worker %d: cannot wake: %s", i, strerror(errno));
    }
}

static struct event_base *new_base(void)
{
    struct event_config *ec = event_config_new();
    event_config_set_flag(ec, EVENT_BASE_FLAG_NOLOCK);
    event_config_require_features(ec, EV_FEATURE_ET | EV_FEATURE_EARLY_CLOSE);
    struct event_base *b = event_base_new_with_config(ec);
    event_config_free(ec);
    if (b == NULL) {
        el_err("libevent: no backend with edge-triggered and early-close events");
        abort();
    }
    return b;
}

static void start_workers(struct el_server *s, struct el_generation *g)
{
    s->workers = el_calloc((size_t)s->nworkers, sizeof(struct el_worker));
    for (int i = 0; i < s->nworkers; i++) {
        struct el_worker *w = &s->workers[i];
        w->id = i;
        w->srv = s;
        w->state = &s->state;
        w->limiter = s->limiter;
        pthread_mutex_init(&w->ready_mu, NULL);
        w->base = new_base();
        w->listen_fd = -1;
        w->bufs.max = 1024;
        w->up_event = el_conn_upstream_event;
        w->latency = el_latency_new();
        w->room = el_room_new(s->room_shared, w->base);
        w->gate = el_gate_new(w->id, w->room);
        w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (w->wake_fd == -1) {
            el_err("eventfd: %s", strerror(errno));
            abort();
        }
        event_assign(&w->wake_ev, w->base, w->wake_fd, EV_READ | EV_PERSIST, worker_wake, w);
        event_add(&w->wake_ev, NULL);
        worker_adopt(w, g);
    }
    for (int i = 0; i < s->nworkers; i++) {
        struct el_worker *w = &s->workers[i];
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            el_err("pthread_create: %s", strerror(rc));
            abort();
        }
    }
}

/* ---- control loop ---- */

struct control {
    struct event timer;
    struct el_trigger trig;          /* latency trigger with hysteresis */
    struct el_rate_ctl rate;         /* adaptive admission rate */
    int mode_override;               /* -1, or a mode set by POST /mode */
    double rate_override;            /* 0, or a rate set by POST /rate */
    double rate_now;                 /* the rate the meter runs at */
    bool queueing;                   /* published state */
    struct el_latency_summary lat;   /* the last merged window */
    struct el_latency **lats;        /* workers' histograms and the probe's */
    struct el_limit_ctl lim;         /* adaptive backend limit (max_concurrency = auto) */
    struct el_admit_ctl adm;         /* admission rate by headroom (a backend limit in force) */
    struct el_limiter_stats prev;    /* the limiter's counters at the previous tick */
    uint64_t prev_n, prev_us;        /* the workers' latency totals at the previous tick */
    uint64_t prev_ms;                /* time of the previous tick */
    double credit_ps;                /* admissions/s the store adds for releases (estimate) */
};

static const struct el_config *cur_cfg(struct el_server *s)
{
    return atomic_load_explicit(&s->gen, memory_order_relaxed)->cfg;
}

static struct el_rate_params rate_params(const struct el_config *cfg)
{
    struct el_rate_params rp = {.min_per_s = cfg->min_admit_per_s,
                                .max_per_s = cfg->max_admit_per_s,
                                .target_ms = cfg->queue_above_ms,
                                .low_ms = cfg->release_below_ms};
    return rp;
}

static struct el_limit_params limit_params(const struct el_config *cfg)
{
    struct el_limit_params lp = {.min = cfg->min_concurrency, .max = cfg->max_concurrency_cap,
                                 .initial = cfg->min_concurrency,
                                 .ceiling_ms = cfg->queue_above_ms};
    return lp;
}

static struct el_admit_params admit_params(const struct el_config *cfg)
{
    struct el_admit_params ap = {.min_per_s = cfg->min_admit_per_s,
                                 .max_per_s = cfg->max_admit_per_s,
                                 .wait_ms = cfg->queue_above_ms,
                                 .settle_ms = cfg->settle_ms > 0 ? (uint32_t)cfg->settle_ms
                                                                 : (uint32_t)cfg->poll_s * 1000u + 2000u};
    return ap;
}

/* The backend's tick, from the limiter's counters and the workers' latency
 * totals: sets the adaptive limit, returns the admission obs for the rate. */
static struct el_admit_obs backend_tick(struct el_server *s, const struct el_config *cfg,
                                        uint64_t now, const struct el_limiter_stats *ls)
{
    struct control *ct = s->control;
    uint64_t n, us;
    el_latency_totals(ct->lats, (size_t)s->nworkers, &n, &us); /* not the probe's */
    uint64_t dt = ct->prev_ms && now > ct->prev_ms ? now - ct->prev_ms : CONTROL_PERIOD_MS;
    uint64_t dn = n - ct->prev_n, dus = us - ct->prev_us;
    uint64_t waited = ls->queued_total - ct->prev.queued_total;
    uint64_t granted = ls->granted_total - ct->prev.granted_total;
    uint64_t wait_us = ls->wait_us_total - ct->prev.wait_us_total;
    ct->prev_n = n;
    ct->prev_us = us;
    ct->prev_ms = now;
    ct->prev = *ls;
    if (dt > UINT32_MAX) dt = UINT32_MAX;
    struct el_limit_obs o = {.dt_ms = (uint32_t)dt, .done = dn,
                             .lat_ms = dn ? (double)dus / 1000.0 / (double)dn : 0,
                             .inflight = ls->inflight, .queued = ls->queued, .waited = waited};
    int limit = ls->limit;
    if (cfg->max_concurrency < 0) {
        struct el_limit_params lp = limit_params(cfg);
        limit = el_limit_update(&ct->lim, &lp, &o);
        if (limit != ls->limit) el_limiter_set_limit(s->limiter, limit);
    }
    struct el_admit_obs ao = {.dt_ms = (uint32_t)dt, .limit = limit,
                              .busy = (double)dus / 1000.0 / (double)dt,
                              .queued = ls->queued, .done = dn,
                              .wait_ms = granted ? (double)wait_us / 1000.0 / (double)granted : 0,
                              .probing = cfg->max_concurrency < 0 && el_limit_probing(&ct->lim)};
    return ao;
}

static void control_tick(evutil_socket_t fd, short what, void *arg)
{
    struct el_server *s = arg;
    struct control *ct = s->control;
    const struct el_config *cfg = cur_cfg(s);
    uint64_t now = el_now_ms();
    el_latency_merge(ct->lats, (size_t)s->nworkers + 1, now, (uint32_t)cfg->window_ms,
                     cfg->percentile, &ct->lat);
    int64_t inflight = el_metrics_inflight();
    uint64_t waiting = el_room_waiting(s->room_shared);
    int mode = ct->mode_override >= 0 ? ct->mode_override : (int)cfg->mode;

    struct el_trigger_params tp = {
        .queue_above_ms = cfg->queue_above_ms,
        .release_below_ms = cfg->release_below_ms,
        .release_hold_ms = (uint32_t)cfg->release_hold_ms,
        .min_samples = (uint32_t)cfg->min_samples,
        .max_inflight = (uint32_t)cfg->max_inflight,
    };
    if (mode == EL_MODE_AUTO &&
        el_trigger_update(&ct->trig, &tp, now, ct->lat.pctl, ct->lat.count,
                          inflight > 0 ? (uint64_t)inflight : 0, waiting)) {
        el_notice("trigger: %s (%s)", ct->trig.queueing ? "queueing" : "released",
                  ct->trig.reason ? ct->trig.reason : "");
    }
    struct el_limiter_stats ls;
    el_limiter_stats(s->limiter, &ls); /* requests waiting for a backend slot keep it queueing */
    uint64_t waited = ls.queued_total - ct->prev.queued_total;
    struct el_admit_obs ao = backend_tick(s, cfg, now, &ls);
    /* The path opened the room on the request that found the limit reached;
     * keep it queueing while requests wait or the limit was reached in the
     * tick, and let only the hysteresis release it (the hold restarts). */
    if (mode == EL_MODE_AUTO && ls.limit > 0 && (ls.queued > 0 || waited > 0)) {
        char why[96];
        snprintf(why, sizeof(why), "backend limit %d reached: %d waiting, %llu waited in the tick",
                 ls.limit, ls.queued, (unsigned long long)waited);
        if (!ao.probing && el_trigger_hold(&ct->trig, why))
            el_notice("trigger: queueing (%s)", ct->trig.reason);
    }
    bool queueing = mode == EL_MODE_ON ||
                    (mode == EL_MODE_AUTO && (ct->trig.queueing || waiting > 0 || ls.queued > 0));
    if (queueing != ct->queueing) {
        atomic_fetch_add(&el_metrics_global.room_state_changes, 1);
        el_notice("room: %s (mode %s, p%g %.1f ms over %llu samples, %lld in flight, %llu waiting)",
                  queueing ? "queueing newcomers" : "open",
                  el_mode_name(mode),
                  cfg->percentile, ct->lat.pctl, (unsigned long long)ct->lat.count,
                  (long long)inflight, (unsigned long long)waiting);
        ct->queueing = queueing;
    }

    struct el_rate_params rp = rate_params(cfg);
    if (ct->rate_override > 0) {
        ct->rate_now = ct->rate_override;
    } else if (cfg->adapt) {
        /* The controller steers only while the room queues, and keeps what
         * it learned (the rate, the knee) from one episode to the next. */
        if (ao.limit > 0) { /* a backend limit: admit by its headroom */
            struct el_admit_params ap = admit_params(cfg);
            if (queueing) el_admit_update(&ct->adm, &ap, &ao);
            /* Every Einlass-Release admits one more on top of the meter's
             * rate: the headroom rate is for all admissions, so the meter
             * gets it less the release credits (measured rate minus what
             * the meter was given, smoothed over seconds). */
            double measured = el_room_measured_rate(s->room_shared);
            double extra = waiting > 0 && measured > ct->rate_now ? measured - ct->rate_now : 0;
            ct->credit_ps += 0.05 * (extra - ct->credit_ps);
            ct->rate_now = EL_MAX(cfg->min_admit_per_s, ct->adm.rate - ct->credit_ps);
        } else { /* no limit: by latency alone */
            if (queueing) el_rate_update(&ct->rate, &rp, now, ct->lat.pctl, ct->lat.count);
            ct->rate_now = ct->rate.rate;
        }
    } else {
        ct->rate_now = cfg->admit_per_s;
    }
    atomic_store_explicit(&s->state.mode, mode, memory_order_relaxed);
    atomic_store_explicit(&s->state.queueing, queueing, memory_order_relaxed);
    if (mode != EL_MODE_OFF) el_room_tick(s->room, ct->rate_now);
}

static void admin_status(void *ctx, struct el_status *st)
{
    struct el_server *s = ctx;
    struct control *ct = s->control;
    memset(st, 0, sizeof(*st));
    st->mode = atomic_load(&s->state.mode);
    st->queueing = ct->queueing;
    st->waiting = el_room_waiting(s->room_shared);
    st->admitted_total = el_room_admitted_total(s->room_shared);
    st->admit_per_s = ct->rate_now;
    st->p50_ms = ct->lat.p50;
    st->p95_ms = ct->lat.p95;
    st->p99_ms = ct->lat.p99;
    st->samples = ct->lat.count;
    st->inflight = el_metrics_inflight();
    enum el_store_state store = el_room_store_state(s->room_shared);
    st->store = el_store_state_name(store);
    st->store_up = store != EL_STORE_STATE_FALLBACK;
    el_limiter_stats(s->limiter, &st->backend);
}

static void admin_set_mode(void *ctx, int mode)
{
    struct el_server *s = ctx;
    struct control *ct = s->control;
    ct->mode_override = mode; /* admin.c logs the change */
    control_tick(-1, 0, s);
}

static void admin_set_rate(void *ctx, double per_s)
{
    struct el_server *s = ctx;
    struct control *ct = s->control;
    ct->rate_override = EL_MIN(per_s, 1e6); /* admin.c logs the change */
    control_tick(-1, 0, s);
}

static const struct el_admin_ops admin_ops = {admin_status, admin_set_mode, admin_set_rate};

/* ---- probe: GET probe_path every probe_interval_ms ---- */

struct probe {
    struct event timer;       /* period */
    struct event io;          /* the probe's socket */
    int fd;                   /* -1 when idle */
    uint64_t t_sent_us;       /* request written */
    uint64_t deadline_ms;     /* give up after response_timeout_ms */
    struct el_buf in;         /* response head */
    struct el_buf_pool pool;  /* for in */
    char req[512];            /* the request, until sent */
    size_t req_len;           /* bytes of req still to send (0: sent) */
};

static void probe_close(struct probe *p)
{
    if (p->fd < 0) return;
    event_del(&p->io);
    close(p->fd);
    p->fd = -1;
    el_buf_release(&p->pool, &p->in);
}

static void probe_io(evutil_socket_t fd, short what, void *arg)
{
    struct el_server *s = arg;
    struct probe *p = s->probe;
    const struct el_config *cfg = cur_cfg(s);
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
        el_latency_add(s->probe_latency, el_now_ms(), ms);
        el_metrics_observe(EL_METRICS_MAIN, ms);
        probe_close(p);
    } else if (r < 0 || eof || n == -1 || n == -3) {
        el_debug("probe: no usable answer from the backend");
        probe_close(p);
    }
}

static void probe_tick(evutil_socket_t fd, short what, void *arg)
{
    struct el_server *s = arg;
    struct probe *p = s->probe;
    const struct el_generation *g = atomic_load(&s->gen);
    const struct el_config *cfg = g->cfg;
    if (p->fd >= 0) {
        if (el_now_ms() < p->deadline_ms) goto rearm;
        /* No answer within response_timeout_ms: that is a sample too. */
        el_latency_add(s->probe_latency, el_now_ms(), (double)cfg->response_timeout_ms);
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
    event_assign(&p->io, s->base, p->fd, EV_READ | EV_WRITE | EV_PERSIST | EV_ET, probe_io, s);
    event_add(&p->io, NULL);
rearm:;
    struct timeval tv = el_tv_ms((uint64_t)cfg->probe_interval_ms);
    event_add(&p->timer, &tv);
}

/* ---- signals, reload, stop ---- */

/* An admin API others can reach, without a token: say so (start, reload). */
static void warn_exposure(const struct el_config *cfg)
{
    char *w = el_admin_exposure_warning(cfg->admin_listen, cfg->admin_token);
    if (w != NULL) el_warn("%s", w);
    free(w);
}

static void reload(struct el_server *s)
{
    notify("RELOADING=1");
    struct el_generation *old = atomic_load(&s->gen);
    struct el_config *cfg = NULL;
    char *err = NULL;
    if (el_config_load(s->conf_path, &cfg, &err) == -1) goto fail;
    const char *restart = el_config_restart_key(old->cfg, cfg);
    if (restart != NULL) /* only workers today: the threads exist */
        el_warn("reload: a change of [server] %s takes effect on restart; keeping the running one",
                restart);
    cfg->workers = s->nworkers;
    /* A new secret keeps the old one for verification (key rotation). */
    if (memcmp(cfg->secret, old->cfg->secret, EL_SECRET_LEN) != 0 && !cfg->has_previous_secret) {
        memcpy(cfg->previous_secret, old->cfg->secret, EL_SECRET_LEN);
        cfg->has_previous_secret = true;
    }
    struct el_generation *g = generation_new(s, cfg, old, &err);
    if (g == NULL) goto fail;
    cfg = NULL; /* g owns it */
    if (strcmp(g->cfg->admin_listen, old->cfg->admin_listen) != 0) {
        struct el_admin *a = el_admin_new(s->base, g->cfg->admin_listen, g->cfg->admin_token,
                                          &admin_ops, s, &err);
        if (a == NULL) { /* all or nothing: undo the new generation */
            char *e = el_sprintf("%s:0: [server] admin_listen: %s", g->cfg->path, err);
            free(err);
            err = e;
            if (g->listen_fds[0] != old->listen_fds[0])
                for (int i = 0; i < s->nworkers; i++) close(g->listen_fds[i]);
            el_generation_drop(g);
            goto fail;
        }
        el_admin_free(s->admin);
        s->admin = a;
        el_notice("admin API on %s", el_admin_address(a));
    } else {
        el_admin_set_token(s->admin, g->cfg->admin_token);
    }
    warn_exposure(g->cfg);
    el_room_shared_configure(s->room_shared, g->cfg);
    struct control *ct = s->control;
    ct->mode_override = -1;
    ct->rate_override = 0;
    const struct el_config *oc = old->cfg, *nc = g->cfg;
    if (oc->admit_per_s != nc->admit_per_s || oc->min_admit_per_s != nc->min_admit_per_s ||
        oc->max_admit_per_s != nc->max_admit_per_s) {
        struct el_rate_params rp = rate_params(nc);
        el_rate_init(&ct->rate, &rp, nc->admit_per_s);
        struct el_admit_params ap = admit_params(nc);
        el_admit_init(&ct->adm, &ap, nc->admit_per_s);
    }
    if (nc->max_concurrency < 0 &&
        (oc->max_concurrency >= 0 || oc->min_concurrency != nc->min_concurrency ||
         oc->max_concurrency_cap != nc->max_concurrency_cap)) {
        struct el_limit_params lp = limit_params(nc);
        el_limit_init(&ct->lim, &lp); /* from the floor again: the knee is learned in a second */
        el_limiter_set_limit(s->limiter, (int)lround(ct->lim.limit));
    }
    if (nc->max_concurrency != oc->max_concurrency && nc->max_concurrency >= 0)
        el_limiter_set_limit(s->limiter, el_limiter_configured(nc->max_concurrency));
    el_log_level = el_config_log_level(g->cfg);
    atomic_store_explicit(&s->gen, g, memory_order_release);
    wake_workers(s, 1);
    el_generation_drop(old);
    atomic_fetch_add(&el_metrics_global.reloads_ok, 1);
    el_notice("reload: %s is in effect for new requests", s->conf_path);
    control_tick(-1, 0, s);
    notify("READY=1");
    return;
fail:
    el_config_free(cfg);
    atomic_fetch_add(&el_metrics_global.reloads_failed, 1);
    el_err("reload failed, the running configuration stays: %s", err ? err : "?");
    free(err);
    notify("READY=1");
}

static void drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct el_server *s = arg;
    el_warn("drain: timeout passed with requests in flight; stopping them");
    wake_workers(s, 1u << 20);
}

/* The main loop runs until every worker has exited: a thread that joins
 * them without blocking the loop would need more machinery than this poll. */
static void join_poll(evutil_socket_t fd, short what, void *arg)
{
    struct el_server *s = arg;
    for (int i = 0; i < s->nworkers; i++) {
        struct el_worker *w = &s->workers[i];
        if (w->joined) continue;
        if (pthread_tryjoin_np(w->thread, NULL) != 0) return;
        w->joined = true;
    }
    event_base_loopexit(s->base, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct el_server *s = arg;
    if (sig == SIGHUP) {
        if (!atomic_load(&s->stopping)) reload(s);
        return;
    }
    if (atomic_exchange(&s->stopping, true)) return;
    notify("STOPPING=1");
    el_notice("stopping: no new connections; draining requests in flight (up to %d ms)",
              cur_cfg(s)->drain_timeout_ms);
    wake_workers(s, 1);
    int ms = cur_cfg(s)->drain_timeout_ms;
    struct timeval tv = el_tv_ms((uint64_t)ms);
    event_base_once(s->base, -1, EV_TIMEOUT, drain_timeout, s, &tv);
    struct timeval jtv = {0, 20 * 1000};
    event_add(&s->join_ev, &jtv);
}

/* HUP, TERM and INT: blocked from the first line of el_server_start, so one
 * that comes while we start waits (the worker threads inherit the mask, so
 * they never take one); unblocked on the main thread once libevent catches
 * them. The mask from our parent is overridden either way. */
static void signals_block(int how)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(how, &set, NULL);
}

int el_server_start(struct el_server *s, const char *conf_path)
{
    struct el_config *cfg = NULL;
    char *err = NULL;
    signals_block(SIG_BLOCK);
    s->conf_path = conf_path;
    s->exit_code = 0;
    if (el_config_load(conf_path, &cfg, &err) == -1) {
        fprintf(stderr, "%s\n", err);
        free(err);
        return -1;
    }
    el_log_level = el_config_log_level(cfg);
    signal(SIGPIPE, SIG_IGN);
    s->base = new_base();
    s->nworkers = cfg->workers; /* the key table caps it at EL_WORKERS_MAX */
    struct el_generation *g = generation_new(s, cfg, NULL, &err);
    if (g == NULL) {
        fprintf(stderr, "%s\n", err);
        free(err);
        el_config_free(cfg);
        return -1;
    }
    atomic_init(&s->gen, g);
    s->admin = el_admin_new(s->base, cfg->admin_listen, cfg->admin_token, &admin_ops, s, &err);
    if (s->admin == NULL) {
        fprintf(stderr, "%s:0: [server] admin_listen %s: %s\n", cfg->path, cfg->admin_listen, err);
        free(err);
        return -1;
    }
    el_notice("admin API on %s", el_admin_address(s->admin));
    warn_exposure(cfg);

    s->room_shared = el_room_shared_new(cfg);
    s->room = el_room_new(s->room_shared, s->base);
    s->probe_latency = el_latency_new();
    atomic_init(&s->state.mode, (int)cfg->mode);
    atomic_init(&s->state.queueing, cfg->mode == EL_MODE_ON);
    s->limiter = el_limiter_new(el_limiter_configured(cfg->max_concurrency));

    struct control *ct = el_calloc(1, sizeof(*ct));
    ct->mode_override = -1;
    ct->rate_now = cfg->admit_per_s;
    struct el_rate_params rp = rate_params(cfg);
    el_rate_init(&ct->rate, &rp, cfg->admit_per_s);
    struct el_admit_params ap = admit_params(cfg);
    el_admit_init(&ct->adm, &ap, cfg->admit_per_s);
    struct el_limit_params lp = limit_params(cfg);
    el_limit_init(&ct->lim, &lp);
    if (cfg->max_concurrency < 0) /* cold start at the floor: the first second of a rush is held */
        el_limiter_set_limit(s->limiter, (int)lround(ct->lim.limit));
    ct->queueing = cfg->mode == EL_MODE_ON;
    s->control = ct;
    start_workers(s, g);
    ct->lats = el_calloc((size_t)s->nworkers + 1, sizeof(*ct->lats));
    for (int i = 0; i < s->nworkers; i++) ct->lats[i] = s->workers[i].latency;
    ct->lats[s->nworkers] = s->probe_latency;
    event_assign(&ct->timer, s->base, -1, EV_PERSIST, control_tick, s);
    struct timeval tv = {0, CONTROL_PERIOD_MS * 1000};
    event_add(&ct->timer, &tv);

    struct probe *p = el_calloc(1, sizeof(*p));
    p->fd = -1;
    p->pool.max = 1;
    s->probe = p;
    evtimer_assign(&p->timer, s->base, probe_tick, s);
    struct timeval ptv = {0, 1000};
    event_add(&p->timer, &ptv);

    static const int sigs[] = {SIGHUP, SIGTERM, SIGINT};
    for (size_t i = 0; i < EL_ARRAY_LEN(sigs); i++) {
        evsignal_assign(&s->signal_ev[i], s->base, sigs[i], on_signal, s);
        event_add(&s->signal_ev[i], NULL);
    }
    event_assign(&s->join_ev, s->base, -1, EV_PERSIST, join_poll, s); /* armed at stop */
    /* One that came while we started is delivered now, and acted on once
     * the loop runs: a reload, or a clean stop. */
    signals_block(SIG_UNBLOCK);
    el_notice("einlass %s started: backend %s, mode %s, store %s", EL_VERSION,
              cfg->backend_address,
              el_mode_name(cfg->mode),
              el_word_name(el_store_kind_words, cfg->store));
    notify("READY=1");
    return 0;
}

int el_server_run(struct el_server *s)
{
    event_base_dispatch(s->base);
    struct control *ct = s->control;
    struct probe *p = s->probe;
    for (size_t i = 0; i < EL_ARRAY_LEN(s->signal_ev); i++) event_del(&s->signal_ev[i]);
    event_del(&s->join_ev);
    event_del(&ct->timer);
    event_del(&p->timer);
    struct el_generation *g = atomic_load(&s->gen);
    for (int i = 0; i < s->nworkers; i++) {
        struct el_worker *w = &s->workers[i];
        if (!w->joined) pthread_join(w->thread, NULL);
        if (w->draining) event_del(&w->drain_ev);
        el_latency_free(w->latency);
        if (w->gen) el_generation_drop(w->gen);
        close(w->wake_fd);
        pthread_mutex_destroy(&w->ready_mu);
        close(g->listen_fds[i]);
        event_base_free(w->base);
    }
    probe_close(p);
    el_buf_pool_clear(&p->pool);
    free(p);
    el_admin_free(s->admin);
    el_room_free(s->room);
    el_room_shared_free(s->room_shared);
    el_latency_free(s->probe_latency);
    el_limiter_free(s->limiter);
    free(ct->lats);
    free(ct);
    free(s->workers);
    el_generation_drop(g);
    event_base_free(s->base);
    el_notice("stopped");
    return s->exit_code;
}
