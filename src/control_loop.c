/* control_loop.c - the main thread's tick: every CONTROL_PERIOD_MS it
 * merges the latency windows (the workers' and the probe's), runs the
 * trigger in mode auto, steers the admission rate, publishes the room state
 * the gates read, and meters the room. It also answers the admin API's
 * status, mode and rate callbacks.
 *
 * Invariants:
 *  - Main thread only: the tick, the admin callbacks and reload all run on
 *    the main event base, so the loop's own fields need no lock.
 *  - The loop is the only writer of the published room state (*state); the
 *    workers read it with relaxed loads.
 *  - An admin override (mode, rate) lasts until the next reload
 *    (el_control_loop_reload clears it); a tick runs at once after each, so
 *    the state the gates read follows without waiting for the period. */
#include "einlass/control_loop.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "einlass/admin.h"
#include "einlass/common.h"
#include "einlass/config.h"
#include "einlass/control.h"
#include "einlass/generation.h"
#include "einlass/journal.h"
#include "einlass/latency.h"
#include "einlass/limiter.h"
#include "einlass/metrics.h"
#include "einlass/room.h"
#include "einlass/worker-t.h"

#define CONTROL_PERIOD_MS 100

struct el_control_loop {
    struct event timer;              /* every CONTROL_PERIOD_MS */
    struct el_trigger trig;          /* latency trigger with hysteresis */
    struct el_rate_ctl rate;         /* adaptive admission rate */
    int mode_override;               /* -1, or a mode set by POST /mode */
    double rate_override;            /* 0, or a rate set by POST /rate */
    double rate_now;                 /* the rate the meter runs at */
    bool paused;                     /* POST /pause until POST /resume (survives reloads) */
    bool queueing;                   /* published state */
    struct el_latency_summary lat;   /* the last merged window */
    struct el_latency **lats;        /* workers' histograms and the probe's */
    size_t nlats;                    /* length of lats */
    _Atomic(struct el_generation *) *gen; /* the server's current generation */
    struct el_room_shared *room_shared; /* waiting count, admitted total, store state */
    struct el_room *room;            /* the main thread's room handle: the meter */
    struct el_room_state *state;     /* published here, read by the gates */
    struct el_limiter *limiter;      /* the backend admission limit: its queue keeps the room */
};

static struct el_rate_params rate_params(const struct el_config *cfg)
{
    struct el_rate_params rp = {.min_per_s = cfg->min_admit_per_s,
                                .max_per_s = cfg->max_admit_per_s,
                                .target_ms = cfg->queue_above_ms,
                                .low_ms = cfg->release_below_ms};
    return rp;
}

static void control_tick(evutil_socket_t fd, short what, void *arg)
{
    struct el_control_loop *ct = arg;
    const struct el_config *cfg = el_generation_config(ct->gen);
    uint64_t now = el_now_ms();
    el_latency_merge(ct->lats, ct->nlats, now, (uint32_t)cfg->window_ms,
                     cfg->percentile, &ct->lat);
    int64_t inflight = el_metrics_inflight();
    uint64_t waiting = el_room_waiting(ct->room_shared);
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
    el_limiter_stats(ct->limiter, &ls); /* requests waiting for a backend slot keep it queueing */
    bool queueing = mode == EL_MODE_ON ||
                    (mode == EL_MODE_AUTO && (ct->trig.queueing || waiting > 0 || ls.queued > 0)) ||
                    (ct->paused && mode != EL_MODE_OFF);
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
        if (queueing) el_rate_update(&ct->rate, &rp, now, ct->lat.pctl, ct->lat.count);
        ct->rate_now = ct->rate.rate;
    } else {
        ct->rate_now = cfg->admit_per_s;
    }
    atomic_store_explicit(&ct->state->mode, mode, memory_order_relaxed);
    atomic_store_explicit(&ct->state->queueing, queueing, memory_order_relaxed);
    atomic_store_explicit(&ct->state->paused, ct->paused, memory_order_relaxed);
    if (mode != EL_MODE_OFF) el_room_tick(ct->room, ct->paused ? -1 : ct->rate_now); /* -1 holds */
    if (fd == -1 && what == 0) return; /* an extra tick (admin, reload): no disk here */
    el_journal_flush(); /* the uncertain writes the workers queued */
}

static void admin_status(void *ctx, struct el_status *st)
{
    struct el_control_loop *ct = ctx;
    memset(st, 0, sizeof(*st));
    st->mode = atomic_load(&ct->state->mode);
    st->queueing = ct->queueing;
    st->waiting = el_room_waiting(ct->room_shared);
    st->admitted_total = el_room_admitted_total(ct->room_shared);
    st->unclaimed_total = el_room_unclaimed_total(ct->room_shared);
    st->places_kept_total = el_room_places_kept_total(ct->room_shared);
    st->admit_per_s = ct->rate_now;
    st->p50_ms = ct->lat.p50;
    st->p95_ms = ct->lat.p95;
    st->p99_ms = ct->lat.p99;
    st->samples = ct->lat.count;
    st->inflight = el_metrics_inflight();
    enum el_store_state store = el_room_store_state(ct->room_shared);
    st->store = el_store_state_name(store);
    st->store_up = store != EL_STORE_STATE_FALLBACK;
    el_limiter_stats(ct->limiter, &st->backend);
    st->paused = ct->paused;
}

static void admin_set_mode(void *ctx, int mode)
{
    struct el_control_loop *ct = ctx;
    ct->mode_override = mode; /* admin.c logs the change */
    control_tick(-1, 0, ct);
}

static void admin_set_rate(void *ctx, double per_s)
{
    struct el_control_loop *ct = ctx;
    ct->rate_override = per_s; /* admin.c checked it (el_config_check_rate) and logs it */
    control_tick(-1, 0, ct);
}

static void admin_set_paused(void *ctx, bool paused)
{
    struct el_control_loop *ct = ctx;
    ct->paused = paused; /* admin.c logs the change */
    control_tick(-1, 0, ct);
}

static const struct el_config *admin_config(void *ctx)
{
    struct el_control_loop *ct = ctx;
    return atomic_load_explicit(ct->gen, memory_order_relaxed)->cfg;
}

const struct el_admin_ops el_control_loop_admin_ops = {admin_status, admin_set_mode, admin_set_rate,
                                                       admin_set_paused, admin_config};

struct el_control_loop *el_control_loop_new(const struct el_config *cfg)
{
    struct el_control_loop *ct = el_calloc(1, sizeof(*ct));
    ct->mode_override = -1;
    ct->rate_now = cfg->admit_per_s;
    struct el_rate_params rp = rate_params(cfg);
    el_rate_init(&ct->rate, &rp, cfg->admit_per_s);
    ct->queueing = cfg->mode == EL_MODE_ON;
    return ct;
}

void el_control_loop_start(struct el_control_loop *ct, struct event_base *base,
                           const struct el_control_inputs *in)
{
    ct->gen = in->gen;
    ct->room_shared = in->room_shared;
    ct->room = in->room;
    ct->state = in->state;
    ct->limiter = in->limiter;
    ct->nlats = in->nwindows;
    ct->lats = el_calloc(in->nwindows, sizeof(*ct->lats));
    memcpy(ct->lats, in->windows, in->nwindows * sizeof(*ct->lats));
    event_assign(&ct->timer, base, -1, EV_PERSIST, control_tick, ct);
    struct timeval tv = {0, CONTROL_PERIOD_MS * 1000};
    event_add(&ct->timer, &tv);
}

void el_control_loop_reload(struct el_control_loop *ct, const struct el_config *oc,
                            const struct el_config *nc)
{
    ct->mode_override = -1;
    ct->rate_override = 0;
    if (oc->admit_per_s != nc->admit_per_s || oc->min_admit_per_s != nc->min_admit_per_s ||
        oc->max_admit_per_s != nc->max_admit_per_s) {
        struct el_rate_params rp = rate_params(nc);
        el_rate_init(&ct->rate, &rp, nc->admit_per_s);
    }
}

void el_control_loop_tick(struct el_control_loop *ct)
{
    control_tick(-1, 0, ct);
}

void el_control_loop_stop(struct el_control_loop *ct)
{
    event_del(&ct->timer);
}

void el_control_loop_free(struct el_control_loop *ct)
{
    if (ct == NULL) return;
    if (ct->lats != NULL) event_del(&ct->timer); /* started */
    free(ct->lats);
    free(ct);
}
