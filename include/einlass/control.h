/* control.h - when the room queues (trigger with hysteresis) and how fast it
 * admits (adaptive rate controller). Pure: no I/O, no clock; callers pass the
 * time and the measurements, tests drive it with numbers. One thread (the
 * main loop) owns each struct. docs/controller.md explains the algorithm. */
#ifndef EL_CONTROL_H
#define EL_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct el_trigger_params {
    double queue_above_ms;    /* start queueing above this percentile latency */
    double release_below_ms;  /* may stop once below this ... */
    uint32_t release_hold_ms; /* ... for this long, with nobody waiting */
    uint32_t min_samples;     /* fewer samples never start queueing */
    uint32_t max_inflight;    /* > 0: also queue above this many in flight */
};

/* Zero-initialise (struct el_trigger t = {0}): not queueing, reason NULL.
 * Do not copy a struct el_trigger: reason may point into its reason_buf. */
struct el_trigger {
    bool queueing;         /* current state */
    bool below;            /* calm (see el_trigger_update) since below_since_ms */
    uint64_t below_since_ms; /* start of the current calm stretch */
    uint64_t changes;      /* state changes so far */
    const char *reason;    /* why the last change happened: reason_buf, or NULL before any */
    char reason_buf[96];   /* e.g. "latency 412 ms above 300 ms" */
};

/* Feed one observation at now_ms: pctl_ms over samples in the window,
 * backend requests in flight, people waiting. Returns true if the state
 * changed (t->reason says why).
 * Start queueing when (samples >= min_samples and pctl_ms > queue_above_ms)
 * or (max_inflight > 0 and inflight > max_inflight). Stop once it has been
 * calm without a break for release_hold_ms: calm = waiting == 0 and
 * (samples == 0 or pctl_ms < release_below_ms) and (max_inflight == 0 or
 * inflight <= max_inflight). Any observation that is not calm restarts the
 * hold. Call it on every tick (about every 100 ms), queueing or not. */
bool el_trigger_update(struct el_trigger *t, const struct el_trigger_params *p, uint64_t now_ms,
                       double pctl_ms, uint64_t samples, uint64_t inflight, uint64_t waiting);

struct el_rate_params {
    double min_per_s;     /* floor */
    double max_per_s;     /* ceiling */
    double target_ms;     /* latency the controller steers below (queue_above_ms) */
    double low_ms;        /* latency considered healthy (release_below_ms) */
    uint32_t settle_ms;   /* how long until a rate change fully shows in latency,
                             about one visitor session; 0 = 30000 */
};

struct el_rate_ctl {
    double rate;           /* current admissions per second */
    uint64_t last_ms;      /* time of the last decision */
    double baseline_ms;    /* private: healthy-latency estimate, never above 0.8 * low_ms */
    double smooth_ms;      /* private: smoothed latency (EWMA of pctl_ms) */
    double cut_smooth_ms;  /* private: smooth_ms at the last decrease */
    uint64_t cut_ms;       /* private: time of the last decrease */
    bool have_cut;         /* private: cut_ms is valid */
    double knee_per_s;     /* private: rate at the last overload we caused; 0 = unknown */
    uint64_t inc_ms;       /* private: time of the last increase */
    bool have_inc;         /* private: inc_ms is valid */
    bool started;          /* private: last_ms and smooth_ms are valid */
};

/* Start at rate start_per_s (clamped to the bounds). Also resets the
 * controller's memory (smoothing, baseline, last decrease). */
void el_rate_init(struct el_rate_ctl *c, const struct el_rate_params *p, double start_per_s);

/* One controller step at now_ms with the window's percentile latency over
 * samples. Call about every 100 ms-1 s while queueing, and not while the room
 * is open (low latency then would only push the rate up to max_per_s); the
 * rate is kept between queueing episodes. samples == 0 holds the rate.
 * Above target_ms it cuts the rate multiplicatively (at most once per
 * settle_ms / 2, and not while latency is already falling); below low_ms it
 * raises it by up to 25% per settle_ms; in between it holds. Returns the new
 * rate, always within [min_per_s, max_per_s]. */
double el_rate_update(struct el_rate_ctl *c, const struct el_rate_params *p, uint64_t now_ms,
                      double pctl_ms, uint64_t samples);

/* ---- the adaptive concurrency limit toward the backend ---- */

struct el_limit_params {
    int min;             /* never below this (>= 1) */
    int max;             /* never above this */
    int initial;         /* cold start (clamped to [min, max]) */
    double ceiling_ms;   /* queue_above_ms: a tick's mean latency above it cuts at once */
};

/* One control tick's view of the backend, from el_limiter_stats deltas and
 * the latency totals of the completions in the tick. */
struct el_limit_obs {
    uint32_t dt_ms;      /* time since the previous tick (about 100) */
    uint64_t done;       /* backend requests completed in the tick */
    double lat_ms;       /* their mean latency (database time), ignored when done == 0 */
    int inflight;        /* holding a slot now */
    int queued;          /* waiting for a slot now */
    uint64_t waited;     /* requests that had to wait for a slot during the tick */
};

struct el_limit_ctl {
    double limit;        /* current limit (the limiter gets lround(limit)) */
    double base_ms;      /* no-load latency estimate (minimum, re-measured by probes) */
    double x_per_s;      /* smoothed throughput */
    double lat_ms;       /* smoothed latency */
    double knee;         /* largest concurrency served at base latency lately (fades) */
    bool slow_start;     /* still doubling: no sign of a queue at the backend yet */
    int probe;           /* 0 none; 1 draining; 2 measuring */
    double probe_saved;  /* limit to return to after the probe */
    uint32_t since_probe_ms; /* time since the last base measurement */
    uint32_t probe_ms;   /* time in the current probe */
    uint32_t drained_ms; /* time in the current probe with inflight at the probe limit */
    uint32_t ss_hold_ms; /* slow start: time until the next doubling may happen */
    int stale_ticks;     /* consecutive saturated ticks well above base */
    uint64_t cuts;       /* ceiling cuts so far */
    uint64_t probes;     /* base probes so far */
};

/* Start cold: limit = initial, slow start on, no baseline. */
void el_limit_init(struct el_limit_ctl *c, const struct el_limit_params *p);

/* One tick. Returns the integer limit to hand to the limiter, always within
 * [min, max]. The rule (docs/controller.md): Little's law, limit = throughput
 * x no-load latency x (1 + headroom) + 1, while the limit is used; doubling
 * per tick while latency stays at the no-load value (slow start); a tick
 * mean above ceiling_ms cuts at once, multiplicatively; the no-load latency
 * is the minimum seen, re-measured by a two-tick probe at half the limit
 * every few seconds while the limit binds (sooner when latency stays well
 * above it), so it can rise after the database slows down. */
int el_limit_update(struct el_limit_ctl *c, const struct el_limit_params *p,
                    const struct el_limit_obs *o);

/* Which backend queue opens the room (and keeps it queueing): one of
 * queue requests or more, or a tick whose mean wait for a slot reached
 * wait_ms. queue 0 = none does. */
struct el_open_rule {
    uint32_t queue;
    double wait_ms;
};

/* The rule for the limit in force: with a fixed limit (adaptive false) the
 * operator named the knee, so any wait. With auto, a queue whose delay
 * (queued x no-load latency / limit) passes a tenth of the ceiling, since
 * a shorter one costs a patient less than that; and none while the limit
 * is in slow start: its queue is the limit learning (it doubles per round
 * trip until the latency shows a queue at the backend), not a rush, and
 * only the latency trigger opens the room meanwhile. A rush ends slow
 * start within a round trip or two (the latency rises). No limit (limit <=
 * 0): none. */
struct el_open_rule el_limit_open_rule(const struct el_limit_ctl *c, const struct el_limit_params *p,
                                       int limit, bool adaptive);

/* Whether the backend's queue now (queued waiting, waited of the tick's
 * requests had to, their mean wait wait_ms) meets the rule. */
static inline bool el_open_rule_met(const struct el_open_rule *r, int queued, uint64_t waited,
                                    double wait_ms)
{
    return r->queue > 0 &&
           ((queued > 0 && (uint32_t)queued >= r->queue) || (waited > 0 && wait_ms >= r->wait_ms));
}

/* True while a probe holds the limit down on purpose (the admission rate
 * should not react to the queue it makes). */
static inline bool el_limit_probing(const struct el_limit_ctl *c) { return c->probe != 0; }

/* ---- the admission rate by headroom ---- */

struct el_admit_params {
    double min_per_s;    /* floor */
    double max_per_s;    /* ceiling */
    double wait_ms;      /* queue delay in einlass that counts as pressure 1 (0 = 50) */
    uint32_t settle_ms;  /* how long an admission takes to show as load: the
                            poll interval plus a few requests (0 = 7000) */
};

struct el_admit_ctl {
    double rate;         /* learnt new sessions per second */
    double meter;        /* what the meter gets now: rate, throttled while the queue lasts */
    double pressure;     /* last tick's queue pressure (for /status and tests) */
    double spare;        /* last tick's spare share of the limit */
    uint32_t since_cut_ms; /* private: time since the last cut */
    double cut_pressure; /* private: pressure at the last cut */
    bool have_cut;       /* private */
};

struct el_admit_obs {
    uint32_t dt_ms;      /* time since the previous tick */
    int limit;           /* the backend limit in force (> 0) */
    double busy;         /* mean requests at the backend over the tick: done x mean latency / dt */
    int queued;          /* waiting for a slot now */
    uint64_t done;       /* completed during the tick */
    double wait_ms;      /* mean wait for a slot of the requests granted in the tick (0 if none waited) */
    bool probing;        /* the limit is held down on purpose: hold */
    /* Sessions, for the fill (all 0: no fill): */
    double x_cap;        /* requests/s the backend serves at its knee (0 = not known) */
    double seen;         /* passes that sent a request in the last second */
    double pass_x;       /* their requests in that second */
    double pending;      /* admitted, not yet come back for their pass */
};

void el_admit_init(struct el_admit_ctl *c, const struct el_admit_params *p, double start_per_s);

/* One tick while the room queues. pressure = the backend queue's delay
 * (queued / throughput, or the tick's mean wait if larger) / wait_ms. Above
 * 1 the rate falls at once, by up to ADMIT_DOWN per second (a quarter per
 * tick at pressure 2); below ADMIT_CALM, with a spare share
 * (limit - busy) / limit above ADMIT_BAND, it rises by ADMIT_UP x spare per
 * second; otherwise it holds. Returns the rate, within [min_per_s,
 * max_per_s]. */
double el_admit_update(struct el_admit_ctl *c, const struct el_admit_params *p,
                       const struct el_admit_obs *o);

/* Keep the room queueing on the control loop's own evidence (the backend
 * queue is non-empty, or the limit was reached in the last tick): starts
 * queueing if it was not, with reason, and breaks any calm stretch so the
 * release hold starts over. Returns true if the state changed. */
bool el_trigger_hold(struct el_trigger *t, const char *reason);

/* Several rooms, one adaptive rate: room i's share of total among the n
 * rooms whose adaptive[k] is set, in proportion to waiting[k] (with nobody
 * waiting in any, equal), kept within [min_per_s, max_per_s] (the room's
 * own bounds; the floors may make the shares add up to more than total).
 * With one adaptive room, total within its bounds. Pure. */
double el_rate_share(double total, const uint64_t *waiting, const bool *adaptive, size_t n,
                     size_t i, double min_per_s, double max_per_s);

#endif
