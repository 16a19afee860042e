/* eta.h - the wait a patient is promised: seconds until their turn, and an
 * honest range around it. Pure: no I/O, no clock of its own (callers pass
 * now_ms), no allocation; the room (room.c) is its only user.
 *
 * The line moves at the meter's pace: its rate, plus the credits that admit
 * one more each (first releases, and held admissions returned unclaimed),
 * less the release credits the headroom controller cancels because its rate
 * already counts them (store.h, el_meter_in). The main thread's tick feeds
 * those figures to el_eta_meter, which smooths them: the rate over
 * EL_ETA_RATE_TAU_MS (the adaptive controller probes up and down around its
 * operating point, a cycle every 30-40 s; a promise must not follow each
 * swing), the credits over EL_ETA_CREDIT_TAU_MS (they ramp up within seconds
 * when the first admitted patients finish). That expected pace gives the
 * estimate.
 *
 * The store's measured rate (live tickets reached per second while someone
 * waited, store.h) is what actually happened; it lags each change by a few
 * seconds, and it sees what the model does not (a debt of cancelled credits,
 * a fallback queue's share). It widens the range: the range runs from 4/5 of
 * the estimate, or the wait at 5/4 of the measured pace if shorter, to 5/4
 * of the estimate, or the wait at 4/5 of the measured pace if longer, and
 * never beyond twice the estimate. With no expected pace (before the first
 * tick, while the meter's rate is 0), the measured rate gives the estimate;
 * with neither, the configured rate. */
#ifndef EL_ETA_H
#define EL_ETA_H

#include <stdbool.h>
#include <stdint.h>

/* Waits are at most this (a day): 86400 means "a day or more". */
#define EL_ETA_CAP_S 86400

#define EL_ETA_RATE_TAU_MS 20000  /* the meter's rate: smoothing time constant */
#define EL_ETA_CREDIT_TAU_MS 3000 /* the credits and cancels: smoothing time constant */

/* One meter tick's figures. */
struct el_eta_tick {
    double rate;              /* the meter's rate for this tick (el_meter_in) */
    double cancel_credits;    /* release credits cancelled in this tick */
    bool hold;                /* paused: nothing is updated */
    uint64_t released_total;  /* this instance's first releases so far */
    unsigned instances;       /* live instances sharing the room (0 counts as 1):
                                 each sees about its share of the releases */
    uint64_t unclaimed_total; /* held admissions returned as credit so far (site-wide) */
    bool restart;             /* the totals come from another store now (Redis came or
                                 went): a new baseline, no credits counted this tick */
};

struct el_eta_meter {
    bool has_last;           /* the fields below are set */
    uint64_t last_ms;        /* the latest tick's time (never goes back) */
    uint64_t last_released;  /* released_total then */
    uint64_t last_unclaimed; /* unclaimed_total then */
    double last_rate;        /* the rate of the latest tick not held */
    double meter_ps;         /* the meter's rate, smoothed */
    double credit_ps;        /* credits per second (site-wide estimate), smoothed */
    double cancel_ps;        /* credits cancelled per second, smoothed */
};

/* The main thread's meter tick at now_ms. A gap over 2 s counts as 2 s; a
 * hold changes nothing (the promise waits with the line, and the pace is
 * kept for the resume). */
void el_eta_meter_tick(struct el_eta_meter *m, uint64_t now_ms, const struct el_eta_tick *t);
/* The expected pace, admissions per second: meter_ps plus the credits not
 * cancelled; 0 (unknown) before the first tick and while the latest rate was
 * 0 (a stopped meter promises nothing). */
double el_eta_meter_pace(const struct el_eta_meter *m);

struct el_eta {
    uint64_t s;      /* the estimate, seconds (rounded up), at most EL_ETA_CAP_S */
    uint64_t low_s;  /* low_s <= s <= high_s <= min(2 s, EL_ETA_CAP_S) */
    uint64_t high_s;
};

/* The wait for the place at position (live tickets ahead + 1; 0: none) at
 * the expected pace and the measured one (<= 0, NaN or infinite: unknown).
 * With neither known, fallback_rate (the configured admit_per_s), then one
 * a second. */
struct el_eta el_eta_estimate(uint64_t position, double expected, double measured,
                              double fallback_rate);

#endif
