/* control.h - when the room queues (trigger with hysteresis) and how fast it
 * admits (adaptive rate controller). Pure: no I/O, no clock; callers pass the
 * time and the measurements, tests drive it with numbers. One thread (the
 * main loop) owns each struct. docs/controller.md explains the algorithm. */
#ifndef EL_CONTROL_H
#define EL_CONTROL_H

#include <stdbool.h>
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

#endif
