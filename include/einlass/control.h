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

struct el_trigger {
    bool queueing;         /* current state */
    bool below;            /* latency is below release_below_ms since below_since_ms */
    uint64_t below_since_ms;
    uint64_t changes;      /* state changes so far */
    const char *reason;    /* static text: why the last change happened */
};

/* Feed one observation at now_ms: pctl_ms over samples in the window,
 * backend requests in flight, people waiting. Returns true if the state
 * changed (t->reason says why). */
bool el_trigger_update(struct el_trigger *t, const struct el_trigger_params *p, uint64_t now_ms,
                       double pctl_ms, uint64_t samples, uint64_t inflight, uint64_t waiting);

struct el_rate_params {
    double min_per_s;     /* floor */
    double max_per_s;     /* ceiling */
    double target_ms;     /* latency the controller steers below (queue_above_ms) */
    double low_ms;        /* latency considered healthy (release_below_ms) */
};

struct el_rate_ctl {
    double rate;           /* current admissions per second */
    uint64_t last_ms;      /* time of the last decision */
    double baseline_ms;    /* private: healthy-latency estimate */
    double smooth_ms;      /* private: smoothed latency */
    double integral;       /* private: controller state */
    uint32_t phase;        /* private: controller state */
};

/* Start at rate start_per_s (clamped to the bounds). */
void el_rate_init(struct el_rate_ctl *c, const struct el_rate_params *p, double start_per_s);

/* One controller step at now_ms with the window's percentile latency over
 * samples. Call about every 100 ms-1 s while queueing. Returns the new rate,
 * always within [min_per_s, max_per_s]. */
double el_rate_update(struct el_rate_ctl *c, const struct el_rate_params *p, uint64_t now_ms,
                      double pctl_ms, uint64_t samples);

#endif
