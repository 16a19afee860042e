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

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "einlass/admin.h"
#include "einlass/common.h"
#include "einlass/config.h"
#include "einlass/control.h"
#include "einlass/event.h"
#include "einlass/generation.h"
#include "einlass/journal.h"
#include "einlass/latency.h"
#include "einlass/limiter.h"
#include "einlass/metrics.h"
#include "einlass/room.h"
#include "einlass/sessions.h"
#include "einlass/worker-t.h"

#define CONTROL_PERIOD_MS 100

/* One room's part of the loop, by slot. */
struct room_ctl {
    int mode_override;               /* -1, or a mode set by POST /mode */
    double rate_override;            /* 0, or a rate set by POST /rate */
    double rate_now;                 /* the rate its meter runs at */
    bool paused;                     /* POST /pause until POST /resume (survives reloads) */
    bool queueing;                   /* published state */
    int mode;                        /* the mode in effect at the last tick */
    double credit_ps;                /* admissions/s the store adds for releases (smoothed) */
    uint64_t prev_released;          /* the room's released total at the previous tick */
};

struct el_control_loop {
    struct event timer;              /* every CONTROL_PERIOD_MS */
    struct el_trigger trig;          /* latency trigger with hysteresis */
    struct el_rate_ctl rate;         /* adaptive admission rate (every adaptive room's) */
    struct room_ctl r[EL_MAX_ROOMS]; /* each slot's */
    struct el_latency_summary lat;   /* the last merged window */
    struct el_latency **lats;        /* workers' histograms and the probe's */
    size_t nlats;                    /* length of lats */
    _Atomic(struct el_generation *) *gen; /* the server's current generation */
    struct el_rooms *rooms;          /* every room: figures, meters, published states */
    struct el_limiter *limiter;      /* the backend admission limit: its queue keeps the room */
    struct el_events *events;        /* scheduled openings: a pre-queue keeps the room */
    struct el_limit_ctl lim;         /* adaptive backend limit (max_concurrency = auto) */
    struct el_admit_ctl adm;         /* admission rate by headroom (a backend limit in force) */
    struct el_limiter_stats prev;    /* the limiter's counters at the previous tick */
    uint64_t prev_n, prev_us;        /* the workers' latency totals at the previous tick */
    uint64_t prev_ms;                /* time of the previous tick */
    struct el_sessions **sess;       /* the workers' pass counts */
    size_t nsess;
    struct el_sessions_count sc;     /* the last second's (taken once a second) */
    struct el_open_rule open;        /* which backend queue opens the room (this tick's) */
    unsigned sess_ticks;             /* ticks since the last take */
};

/* The rooms whose rate the controllers steer (adapt = on) share one
 * rate: its start, floor and ceiling are their sums. With one room, that
 * room's. Without any, [room]'s (the controllers then steer nobody). */
struct rate_sums {
    double start, min, max;
};

static struct rate_sums rate_sums(const struct el_config *cfg)
{
    struct rate_sums rs = {0, 0, 0};
    for (size_t i = 0; i < cfg->nrooms; i++) {
        const struct el_config *rc = cfg->rooms[i].cfg;
        if (!rc->adapt) continue;
        rs.start += rc->admit_per_s;
        rs.min += rc->min_admit_per_s;
        rs.max += rc->max_admit_per_s;
    }
    if (rs.max <= 0) rs = (struct rate_sums){cfg->admit_per_s, cfg->min_admit_per_s,
                                              cfg->max_admit_per_s};
    return rs;
}

static struct el_rate_params rate_params(const struct el_config *cfg)
{
    struct rate_sums sum = rate_sums(cfg);
    struct el_rate_params rp = {.min_per_s = sum.min,
                                .max_per_s = sum.max,
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
    struct rate_sums sum = rate_sums(cfg);
    struct el_admit_params ap = {.min_per_s = sum.min,
                                 .max_per_s = sum.max,
                                 .wait_ms = cfg->queue_above_ms,
                                 .settle_ms = cfg->settle_ms > 0 ? (uint32_t)cfg->settle_ms
                                                                 : (uint32_t)cfg->poll_s * 1000u + 2000u};
    return ap;
}

/* The backend's tick, from the limiter's counters and the workers' latency
 * totals (not the probe's: its samples never held a slot): sets the adaptive
 * limit, returns what the admission rate needs. */
static struct el_admit_obs backend_tick(struct el_control_loop *ct, const struct el_config *cfg,
                                        uint64_t now, const struct el_limiter_stats *ls)
{
    uint64_t n, us;
    el_latency_totals(ct->lats, ct->nlats > 0 ? ct->nlats - 1 : 0, &n, &us);
    uint64_t dt = ct->prev_ms && now > ct->prev_ms ? now - ct->prev_ms : CONTROL_PERIOD_MS;
    if (dt > 60000) dt = 60000;
    uint64_t dn = n - ct->prev_n, dus = us - ct->prev_us;
    uint64_t waited = ls->queued_total - ct->prev.queued_total;
    uint64_t granted = ls->granted_total - ct->prev.granted_total;
    uint64_t wait_us = ls->wait_us_total - ct->prev.wait_us_total;
    ct->prev_n = n;
    ct->prev_us = us;
    ct->prev_ms = now;
    ct->prev = *ls;
    struct el_limit_obs o = {.dt_ms = (uint32_t)dt, .done = dn,
                             .lat_ms = dn ? (double)dus / 1000.0 / (double)dn : 0,
                             .inflight = ls->inflight, .queued = ls->queued, .waited = waited};
    int limit = ls->limit;
    struct el_limit_params lp = limit_params(cfg);
    if (cfg->max_concurrency < 0) {
        limit = el_limit_update(&ct->lim, &lp, &o);
        if (limit != ls->limit) el_limiter_set_limit(ct->limiter, limit);
    }
    ct->open = el_limit_open_rule(&ct->lim, &lp, limit, cfg->max_concurrency < 0);
    atomic_store_explicit(&ct->rooms->open_queue, ct->open.queue, memory_order_relaxed);
    struct el_admit_obs ao = {.dt_ms = (uint32_t)dt, .limit = limit,
                              .busy = (double)dus / 1000.0 / (double)dt,
                              .queued = ls->queued, .done = dn,
                              .wait_ms = granted ? (double)wait_us / 1000.0 / (double)granted : 0,
                              .probing = cfg->max_concurrency < 0 && el_limit_probing(&ct->lim)};
    return ao;
}

/* The fill's inputs (el_admit_obs): the passes active in the last second,
 * their requests, the admissions not yet claimed, and the backend's
 * throughput at its knee (auto only: a fixed limit gives no knee). */
static void session_obs(struct el_control_loop *ct, const struct el_generation *g,
                        struct el_admit_obs *ao)
{
    const struct el_config *cfg = g->cfg;
    if (cfg->max_concurrency >= 0 || ct->lim.base_ms <= 0 || ct->sc.active < 1) return;
    ao->x_cap = ct->lim.knee * 1000.0 / ct->lim.base_ms;
    ao->seen = ct->sc.active;
    ao->pass_x = (double)ct->sc.reqs;
    uint64_t adm = 0, gone = ct->sc.claims; /* every room's: the passes are counted so too */
    for (size_t i = 0; i < cfg->nrooms; i++) {
        const struct el_room_shared *sh = ct->rooms->shared[g->room_slot[i]];
        adm += el_room_admitted_total(sh);
        gone += el_room_unclaimed_total(sh);
    }
    ao->pending = adm > gone ? (double)(adm - gone) : 0;
}

static void control_tick(evutil_socket_t fd, short what, void *arg)
{
    struct el_control_loop *ct = arg;
    const struct el_generation *g = atomic_load_explicit(ct->gen, memory_order_relaxed);
    const struct el_config *cfg = g->cfg;
    struct el_rooms *rooms = ct->rooms;
    uint64_t now = el_now_ms();
    if (fd != -1 && ++ct->sess_ticks >= 1000 / CONTROL_PERIOD_MS) { /* once a second */
        ct->sess_ticks = 0;
        el_sessions_take(ct->sess, ct->nsess, &ct->sc);
    }
    el_latency_merge(ct->lats, ct->nlats, now, (uint32_t)cfg->window_ms,
                     cfg->percentile, &ct->lat);
    int64_t inflight = el_metrics_inflight();
    /* Each room's mode and waiting; the trigger (one database) sees the
     * rooms in mode auto together. */
    uint64_t waiting[EL_MAX_ROOMS], auto_waiting = 0;
    bool any_auto = false;
    for (size_t i = 0; i < cfg->nrooms; i++) {
        struct room_ctl *rc = &ct->r[g->room_slot[i]];
        rc->mode = rc->mode_override >= 0 ? rc->mode_override : (int)cfg->rooms[i].cfg->mode;
        waiting[i] = el_room_waiting(rooms->shared[g->room_slot[i]]);
        if (rc->mode == EL_MODE_AUTO) {
            any_auto = true;
            auto_waiting += waiting[i];
        }
    }

    struct el_trigger_params tp = {
        .queue_above_ms = cfg->queue_above_ms,
        .release_below_ms = cfg->release_below_ms,
        .release_hold_ms = (uint32_t)cfg->release_hold_ms,
        .min_samples = (uint32_t)cfg->min_samples,
        .max_inflight = (uint32_t)cfg->max_inflight,
    };
    if (any_auto &&
        el_trigger_update(&ct->trig, &tp, now, ct->lat.pctl, ct->lat.count,
                          inflight > 0 ? (uint64_t)inflight : 0, auto_waiting)) {
        el_notice("trigger: %s (%s)", ct->trig.queueing ? "queueing" : "released",
                  ct->trig.reason ? ct->trig.reason : "");
    }
    struct el_limiter_stats ls;
    el_limiter_stats(ct->limiter, &ls); /* requests waiting for a backend slot keep it queueing */
    uint64_t waited = ls.queued_total - ct->prev.queued_total;
    struct el_admit_obs ao = backend_tick(ct, cfg, now, &ls);
    /* The path opened the rooms on the request that found such a queue;
     * keep them queueing while one lasts, and let only the hysteresis
     * release them (the hold restarts). */
    bool backend_queue = el_open_rule_met(&ct->open, ls.queued, waited, ao.wait_ms);
    if (any_auto && ls.limit > 0 && backend_queue) {
        char why[96];
        snprintf(why, sizeof(why), "backend limit %d reached: %d waiting, %llu waited in the tick",
                 ls.limit, ls.queued, (unsigned long long)waited);
        if (el_trigger_hold(&ct->trig, why)) el_notice("trigger: queueing (%s)", ct->trig.reason);
    }
    for (size_t i = 0; i < cfg->nrooms; i++) { /* a pre-queue holds its room */
        unsigned k = g->room_slot[i];
        if (rooms->events[k] != NULL && ct->r[k].mode != EL_MODE_OFF)
            el_events_tick(rooms->events[k], rooms->main[k], (int64_t)el_wall_ms());
    }

    bool adaptive[EL_MAX_ROOMS], any_adaptive_queueing = false;
    for (size_t i = 0; i < cfg->nrooms; i++) {
        unsigned k = g->room_slot[i];
        struct room_ctl *rc = &ct->r[k];
        int mode = rc->mode;
        bool held = rc->paused || el_events_hold_room(rooms->events[k]);
        bool queueing =
            mode == EL_MODE_ON ||
            (mode == EL_MODE_AUTO && (ct->trig.queueing || waiting[i] > 0 || backend_queue)) ||
            (held && mode != EL_MODE_OFF);
        if (queueing != rc->queueing) {
            atomic_fetch_add(&el_metrics_global.room_state_changes, 1);
            el_notice("room%s%s: %s (mode %s, p%g %.1f ms over %llu samples, %lld in flight, "
                      "%llu waiting)",
                      i ? " " : "", cfg->rooms[i].name, queueing ? "queueing newcomers" : "open",
                      el_mode_name(mode), cfg->percentile, ct->lat.pctl,
                      (unsigned long long)ct->lat.count, (long long)inflight,
                      (unsigned long long)waiting[i]);
            rc->queueing = queueing;
        }
        uint64_t released = el_room_released_total(rooms->shared[k]);
        double credits = (double)(released - rc->prev_released) * 1000.0 / (double)ao.dt_ms;
        rc->prev_released = released;
        rc->credit_ps += (1 - exp(-(double)ao.dt_ms / 1000.0)) * (credits - rc->credit_ps);
        adaptive[i] = rc->rate_override <= 0 && cfg->rooms[i].cfg->adapt && mode != EL_MODE_OFF;
        any_adaptive_queueing = any_adaptive_queueing || (adaptive[i] && queueing);
    }

    /* The adaptive rooms' total: the controller steers only while one of
     * them queues, and keeps what it learned (the rate, the knee) from one
     * episode to the next. */
    bool by_headroom = ao.limit > 0; /* the meters cancel the release credits */
    double total;
    if (by_headroom) { /* a backend limit: admit by its headroom */
        struct el_admit_params ap = admit_params(cfg);
        if (any_adaptive_queueing) {
            session_obs(ct, g, &ao);
            el_admit_update(&ct->adm, &ap, &ao);
        }
        /* Every Einlass-Release admits one more on top of the meter's
         * rate: the headroom rate is for all admissions, so the meter
         * cancels the release credits (counted per room, smoothed over a
         * second; the store carries a debt up to EL_METER_MAX_DEBT). */
        total = ct->adm.meter; /* the learnt rate, throttled while the queue lasts */
    } else { /* no limit: by latency alone */
        struct el_rate_params rp = rate_params(cfg);
        if (any_adaptive_queueing) el_rate_update(&ct->rate, &rp, now, ct->lat.pctl, ct->lat.count);
        total = ct->rate.rate;
    }
    for (size_t i = 0; i < cfg->nrooms; i++) {
        unsigned k = g->room_slot[i];
        struct room_ctl *rc = &ct->r[k];
        const struct el_config *rcfg = cfg->rooms[i].cfg;
        if (rc->rate_override > 0) rc->rate_now = rc->rate_override;
        else if (adaptive[i])
            rc->rate_now = el_rate_share(total, waiting, adaptive, cfg->nrooms, i,
                                         rcfg->min_admit_per_s, rcfg->max_admit_per_s);
        else rc->rate_now = rcfg->admit_per_s;
        struct el_room_state *st = &rooms->state[k];
        atomic_store_explicit(&st->mode, rc->mode, memory_order_relaxed);
        atomic_store_explicit(&st->queueing, rc->queueing, memory_order_relaxed);
        atomic_store_explicit(&st->paused, rc->paused, memory_order_relaxed);
        /* The meter's inputs, each explicit: a pause holds (before the
         * rest); by headroom, the releases' credits of this tick are
         * cancelled. */
        struct el_meter_in in = {.rate = rc->rate_now, .hold = rc->paused};
        if (by_headroom && adaptive[i]) in.cancel_credits = rc->credit_ps * (double)ao.dt_ms / 1000.0;
        if (rc->mode != EL_MODE_OFF) el_room_tick(rooms->main[k], &in);
    }
    if (fd == -1 && what == 0) return; /* an extra tick (admin, reload): no disk here */
    el_journal_flush(); /* the uncertain writes the workers queued */
}

static void admin_status(void *ctx, struct el_status *st)
{
    struct el_control_loop *ct = ctx;
    const struct el_generation *g = atomic_load_explicit(ct->gen, memory_order_relaxed);
    const struct el_config *cfg = g->cfg;
    memset(st, 0, sizeof(*st));
    st->mode = ct->r[0].mode;
    st->nrooms = cfg->nrooms;
    for (size_t i = 0; i < cfg->nrooms; i++) { /* the top level sums the rooms */
        unsigned k = g->room_slot[i];
        const struct el_room_shared *sh = ct->rooms->shared[k];
        struct el_room_status *r = &st->rooms[i];
        r->name = el_config_room_label(cfg, i);
        r->mode = ct->r[k].mode;
        r->queueing = ct->r[k].queueing;
        r->paused = ct->r[k].paused;
        r->waiting = el_room_waiting(sh);
        r->admitted_total = el_room_admitted_total(sh);
        r->unclaimed_total = el_room_unclaimed_total(sh);
        r->places_kept_total = el_room_places_kept_total(sh);
        r->admit_per_s = ct->r[k].rate_now;
        r->store = el_store_state_name(el_room_store_state(sh));
        st->queueing = st->queueing || r->queueing;
        st->paused = st->paused || r->paused;
        st->waiting += r->waiting;
        st->admitted_total += r->admitted_total;
        st->unclaimed_total += r->unclaimed_total;
        st->places_kept_total += r->places_kept_total;
        st->admit_per_s += r->mode != EL_MODE_OFF ? r->admit_per_s : 0;
    }
    if (cfg->nrooms == 1) st->admit_per_s = st->rooms[0].admit_per_s;
    st->p50_ms = ct->lat.p50;
    st->p95_ms = ct->lat.p95;
    st->p99_ms = ct->lat.p99;
    st->samples = ct->lat.count;
    st->inflight = el_metrics_inflight();
    const struct el_room_shared *sh0 = ct->rooms->shared[0];
    enum el_store_state store = el_room_store_state(sh0);
    st->store = el_store_state_name(store);
    st->store_up = store != EL_STORE_STATE_FALLBACK;
    st->store_state = el_room_store_detail(sh0);
    st->store_fallback_s = el_room_fallback_s(sh0);
    for (int i = 0; i < EL_STORE_OP_COUNT; i++)
        st->store_errors[i] = el_store_errors((enum el_store_op)i);
    el_limiter_stats(ct->limiter, &st->backend);
}

/* The slots an admin change reaches: room i's, or every room's (i < 0).
 * Returns how many it wrote into slot. */
static size_t admin_slots(const struct el_control_loop *ct, int room, unsigned *slot)
{
    const struct el_generation *g = atomic_load_explicit(ct->gen, memory_order_relaxed);
    size_t n = 0;
    for (size_t i = 0; i < g->cfg->nrooms; i++)
        if (room < 0 || (size_t)room == i) slot[n++] = g->room_slot[i];
    return n;
}

static void admin_set_mode(void *ctx, int room, int mode)
{
    struct el_control_loop *ct = ctx;
    unsigned slot[EL_MAX_ROOMS];
    for (size_t n = admin_slots(ct, room, slot), i = 0; i < n; i++)
        ct->r[slot[i]].mode_override = mode; /* admin.c logs the change */
    control_tick(-1, 0, ct);
}

static void admin_set_rate(void *ctx, int room, double per_s)
{
    struct el_control_loop *ct = ctx;
    unsigned slot[EL_MAX_ROOMS]; /* admin.c checked it (each room's view) and logs it */
    for (size_t n = admin_slots(ct, room, slot), i = 0; i < n; i++)
        ct->r[slot[i]].rate_override = per_s;
    control_tick(-1, 0, ct);
}

static void admin_set_paused(void *ctx, int room, bool paused)
{
    struct el_control_loop *ct = ctx;
    unsigned slot[EL_MAX_ROOMS];
    for (size_t n = admin_slots(ct, room, slot), i = 0; i < n; i++)
        ct->r[slot[i]].paused = paused; /* admin.c logs the change */
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
    for (size_t k = 0; k < EL_MAX_ROOMS; k++) {
        ct->r[k].mode_override = -1;
        ct->r[k].rate_now = cfg->admit_per_s;
    }
    for (size_t i = 0; i < cfg->nrooms; i++) { /* at start room i has slot i */
        ct->r[i].queueing = cfg->rooms[i].cfg->mode == EL_MODE_ON;
        ct->r[i].mode = (int)cfg->rooms[i].cfg->mode;
        ct->r[i].rate_now = cfg->rooms[i].cfg->admit_per_s;
    }
    struct rate_sums sum = rate_sums(cfg);
    struct el_rate_params rp = rate_params(cfg);
    el_rate_init(&ct->rate, &rp, sum.start);
    struct el_admit_params ap = admit_params(cfg);
    el_admit_init(&ct->adm, &ap, sum.start);
    struct el_limit_params lp = limit_params(cfg);
    el_limit_init(&ct->lim, &lp);
    return ct;
}

void el_control_loop_start(struct el_control_loop *ct, struct event_base *base,
                           const struct el_control_inputs *in)
{
    ct->gen = in->gen;
    ct->rooms = in->rooms;
    ct->limiter = in->limiter;
    const struct el_config *cfg = el_generation_config(ct->gen);
    if (cfg->max_concurrency < 0) /* cold start at the floor: the first second of a rush is held */
        el_limiter_set_limit(ct->limiter, (int)lround(ct->lim.limit));
    ct->nsess = in->nsessions;
    ct->sess = el_calloc(in->nsessions ? in->nsessions : 1, sizeof(*ct->sess));
    if (in->nsessions) memcpy(ct->sess, in->sessions, in->nsessions * sizeof(*ct->sess));
    ct->nlats = in->nwindows;
    ct->lats = el_calloc(in->nwindows, sizeof(*ct->lats));
    memcpy(ct->lats, in->windows, in->nwindows * sizeof(*ct->lats));
    event_assign(&ct->timer, base, -1, EV_PERSIST, control_tick, ct);
    struct timeval tv = {0, CONTROL_PERIOD_MS * 1000};
    event_add(&ct->timer, &tv);
    control_tick(-1, 0, ct); /* the state from the start: a pre-queue already running holds */
}

void el_control_loop_reload(struct el_control_loop *ct, const struct el_config *oc,
                            const struct el_config *nc)
{
    for (size_t k = 0; k < EL_MAX_ROOMS; k++) {
        ct->r[k].mode_override = -1;
        ct->r[k].rate_override = 0;
    }
    struct rate_sums a = rate_sums(oc), b = rate_sums(nc);
    if (a.start != b.start || a.min != b.min || a.max != b.max) {
        struct el_rate_params rp = rate_params(nc);
        el_rate_init(&ct->rate, &rp, b.start);
        struct el_admit_params ap = admit_params(nc);
        el_admit_init(&ct->adm, &ap, b.start);
    }
    if (nc->max_concurrency < 0 &&
        (oc->max_concurrency >= 0 || oc->min_concurrency != nc->min_concurrency ||
         oc->max_concurrency_cap != nc->max_concurrency_cap)) {
        struct el_limit_params lp = limit_params(nc);
        el_limit_init(&ct->lim, &lp); /* from the floor again: the knee is learned in a second */
    }
}

int el_control_loop_limit(const struct el_control_loop *ct)
{
    return (int)lround(ct->lim.limit);
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
    free(ct->sess);
    free(ct);
}
