/* server.c - worker threads, signals, the reload swap and the drain. The
 * generations it swaps are built in generation.c, the main thread's tick
 * and the admin callbacks are control_loop.c's, the probe is probe.c's.
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
 *  - The control loop is the only writer of srv->state (it holds a pointer
 *    to it; server.c only initialises it). */
#include "einlass/server.h"

#include <errno.h>
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
#include "einlass/event.h"
#include "einlass/control_loop.h"
#include "einlass/generation.h"
#include "einlass/gate.h"
#include "einlass/journal.h"
#include "einlass/latency.h"
#include "einlass/limiter.h"
#include "einlass/metrics.h"
#include "einlass/probe.h"
#include "einlass/room.h"

static void notify(const char *state)
{
#ifdef EL_HAVE_SYSTEMD
    sd_notify(0, state);
#else
    (void)state;
#endif
}

/* ---- workers ---- */

static void worker_adopt(struct el_worker *w, struct el_generation *g)
{
    if (w->gen == g) return;
    el_generation_hold(g);
    struct el_generation *old = w->gen;
    w->gen = g;
    const struct el_config *cfg = g->cfg;
    for (size_t i = 0; i < cfg->nrooms; i++) { /* a room new to this thread: its handle */
        unsigned k = g->room_slot[i];
        if (w->room[k] == NULL) w->room[k] = el_room_new(w->rooms->shared[k], w->base);
    }
    el_gate_set_generation(w->gate, cfg, g->pages, g->room_slot, g->id);
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
    for (size_t k = 0; k < EL_MAX_ROOMS; k++) {
        el_room_free(w->room[k]);
        w->room[k] = NULL;
    }
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
        w->rooms = &s->rooms;
        w->limiter = s->limiter;
        pthread_mutex_init(&w->ready_mu, NULL);
        w->base = new_base();
        w->listen_fd = -1;
        w->bufs.max = 1024;
        w->up_event = el_conn_upstream_event;
        w->latency = el_latency_new();
        w->gate = el_gate_new(w->id, w->room); /* the handles: made by worker_adopt */
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

/* Each room's scheduled openings: a table for every slot that has none
 * yet, and each of g's rooms takes its view's [event NAME] sections
 * (el_events_configure). Main thread, before g is published. */
static void room_events(struct el_server *s, const struct el_generation *g)
{
    for (unsigned k = 0; k < s->rooms.nslots; k++)
        if (s->rooms.events[k] == NULL) s->rooms.events[k] = el_events_new();
    for (size_t i = 0; i < g->cfg->nrooms; i++)
        el_events_configure(s->rooms.events[g->room_slot[i]], g->cfg->rooms[i].cfg);
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
    el_config_inherit(cfg, old->cfg); /* the secret, for key rotation */
    struct el_generation *g = el_generation_new(cfg, old, s->nworkers, &err);
    if (g == NULL) goto fail;
    g->id = ++s->next_gen_id;
    cfg = NULL; /* g owns it */
    if (el_room_slots_map(&s->rooms, g->cfg, s->base, g->room_slot, &err) == -1) {
        if (g->listen_fds[0] != old->listen_fds[0])
            for (int i = 0; i < s->nworkers; i++) close(g->listen_fds[i]);
        el_generation_drop(g);
        goto fail;
    }
    if (el_journal_configure(g->cfg->journal_file, g->cfg->journal_max_bytes, &err) == -1) {
        char *e = el_sprintf("%s:0: %s", g->cfg->path, err); /* the old journal stays */
        free(err);
        err = e;
        if (g->listen_fds[0] != old->listen_fds[0])
            for (int i = 0; i < s->nworkers; i++) close(g->listen_fds[i]);
        el_generation_drop(g);
        goto fail;
    }
    if (strcmp(g->cfg->admin_listen, old->cfg->admin_listen) != 0) {
        struct el_admin *a = el_admin_new(s->base, g->cfg->admin_listen, g->cfg->admin_token,
                                          &el_control_loop_admin_ops, s->control, &err);
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
        el_admin_set_rooms(a, &s->rooms);
        el_notice("admin API on %s", el_admin_address(a));
    } else {
        el_admin_set_token(s->admin, g->cfg->admin_token);
    }
    warn_exposure(g->cfg);
    el_room_slots_configure(&s->rooms, g->cfg, g->room_slot);
    room_events(s, g);
    el_control_loop_reload(s->control, old->cfg, g->cfg);
    if (g->cfg->max_concurrency >= 0 && g->cfg->max_concurrency != old->cfg->max_concurrency)
        el_limiter_set_limit(s->limiter, g->cfg->max_concurrency);
    else if (g->cfg->max_concurrency < 0)
        el_limiter_set_limit(s->limiter, el_control_loop_limit(s->control));
    el_log_level = el_config_log_level(g->cfg);
    atomic_store_explicit(&s->gen, g, memory_order_release);
    wake_workers(s, 1);
    el_generation_drop(old);
    atomic_fetch_add(&el_metrics_global.reloads_ok, 1);
    el_notice("reload: %s is in effect for new requests", s->conf_path);
    el_control_loop_tick(s->control);
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
        el_journal_reopen(); /* logrotate: mv, then HUP */
        if (!atomic_load(&s->stopping)) reload(s);
        return;
    }
    if (atomic_exchange(&s->stopping, true)) return;
    notify("STOPPING=1");
    el_admin_set_draining(s->admin); /* /healthz answers 503 from now on */
    el_notice("stopping: no new connections; draining requests in flight (up to %d ms)",
              el_generation_config(&s->gen)->drain_timeout_ms);
    wake_workers(s, 1);
    int ms = el_generation_config(&s->gen)->drain_timeout_ms;
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
    struct el_generation *g = el_generation_new(cfg, NULL, s->nworkers, &err);
    if (g == NULL) {
        fprintf(stderr, "%s\n", err);
        free(err);
        el_config_free(cfg);
        return -1;
    }
    g->id = ++s->next_gen_id;
    atomic_init(&s->gen, g);
    if (el_journal_configure(cfg->journal_file, cfg->journal_max_bytes, &err) == -1) {
        fprintf(stderr, "%s:0: %s\n", cfg->path, err);
        free(err);
        return -1;
    }
    s->control = el_control_loop_new(cfg);
    s->admin = el_admin_new(s->base, cfg->admin_listen, cfg->admin_token,
                            &el_control_loop_admin_ops, s->control, &err);
    if (s->admin == NULL) {
        fprintf(stderr, "%s:0: [server] admin_listen %s: %s\n", cfg->path, cfg->admin_listen, err);
        free(err);
        return -1;
    }
    el_notice("admin API on %s", el_admin_address(s->admin));
    warn_exposure(cfg);

    if (el_room_slots_map(&s->rooms, cfg, s->base, g->room_slot, &err) == -1) {
        fprintf(stderr, "%s\n", err); /* cannot happen at start: a config has few enough */
        free(err);
        return -1;
    }
    room_events(s, g);
    el_admin_set_rooms(s->admin, &s->rooms);
    s->probe_latency = el_latency_new();
    s->limiter = el_limiter_new(el_limiter_configured(cfg->max_concurrency));

    start_workers(s, g);
    struct el_latency **lats = el_calloc((size_t)s->nworkers + 1, sizeof(*lats));
    for (int i = 0; i < s->nworkers; i++) lats[i] = s->workers[i].latency;
    lats[s->nworkers] = s->probe_latency;
    struct el_sessions **sess = el_calloc((size_t)s->nworkers, sizeof(*sess));
    for (int i = 0; i < s->nworkers; i++) sess[i] = el_gate_sessions(s->workers[i].gate);
    struct el_control_inputs in = {.gen = &s->gen,
                                   .sessions = sess,
                                   .nsessions = (size_t)s->nworkers,
                                   .windows = lats,
                                   .nwindows = (size_t)s->nworkers + 1,
                                   .rooms = &s->rooms,
                                   .limiter = s->limiter};
    el_control_loop_start(s->control, s->base, &in);
    free(lats);
    free(sess);

    s->probe = el_probe_new(s->base, &s->gen, s->probe_latency);

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
    for (size_t i = 0; i < EL_ARRAY_LEN(s->signal_ev); i++) event_del(&s->signal_ev[i]);
    event_del(&s->join_ev);
    el_control_loop_stop(s->control);
    el_probe_stop(s->probe);
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
    el_probe_free(s->probe);
    el_admin_free(s->admin);
    unsigned nslots = s->rooms.nslots;
    el_room_slots_free(&s->rooms);
    for (unsigned k = 0; k < nslots; k++) /* after the rooms: their last store answers reach it */
        el_events_free(s->rooms.events[k]);
    el_latency_free(s->probe_latency);
    el_control_loop_free(s->control);
    el_limiter_free(s->limiter);
    el_journal_close(); /* the workers are gone: what they queued is written */
    free(s->workers);
    el_generation_drop(g);
    event_base_free(s->base);
    el_notice("stopped");
    return s->exit_code;
}
