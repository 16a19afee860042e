/* control.c - the trigger (when the room queues) and the admission-rate
 * controller (how fast it lets people in). Pure: no I/O, no clock, no
 * allocation; the main loop passes the time and the measurements.
 *
 * Invariants. The trigger only changes state through el_trigger_update():
 * it starts on the first hot observation and stops only after release_hold_ms
 * of uninterrupted calm observations (below/below_since_ms track the calm
 * stretch; any other observation clears below). The rate controller keeps
 * rate within [min_per_s, max_per_s] after every call; baseline_ms stays at
 * or below 0.8 * low, so a database that has been slow for a long time cannot
 * drag the controller's idea of "healthy" up to the overloaded latency (the
 * drift that gradient limiters suffer from). docs/controller.md gives the
 * reasoning and the simulated convergence. */
#include "einlass/control.h"

#include <math.h>
#include <stdio.h>

/* ---- trigger ---- */

bool el_trigger_update(struct el_trigger *t, const struct el_trigger_params *p, uint64_t now_ms,
                       double pctl_ms, uint64_t samples, uint64_t inflight, uint64_t waiting)
{
    if (!t->queueing) {
        bool hot_latency = samples >= p->min_samples && pctl_ms > p->queue_above_ms;
        bool hot_inflight = p->max_inflight > 0 && inflight > p->max_inflight;
        if (!hot_latency && !hot_inflight) return false;
        if (hot_latency)
            snprintf(t->reason_buf, sizeof(t->reason_buf),
                     "latency %.0f ms above %.0f ms over %llu samples", pctl_ms, p->queue_above_ms,
                     (unsigned long long)samples);
        else
            snprintf(t->reason_buf, sizeof(t->reason_buf), "%llu requests in flight above %u",
                     (unsigned long long)inflight, p->max_inflight);
        t->queueing = true;
        t->below = false;
        t->changes++;
        t->reason = t->reason_buf;
        return true;
    }

    /* No samples at all while nobody waits means no backend traffic in the
     * window: nothing is being held back and the database is not loaded by
     * us, so that counts as calm. A few slow samples do not. */
    bool calm = waiting == 0 && (samples == 0 || pctl_ms < p->release_below_ms) &&
                (p->max_inflight == 0 || inflight <= p->max_inflight);
    if (!calm) {
        t->below = false;
        return false;
    }
    if (!t->below || now_ms < t->below_since_ms) {
        t->below = true;
        t->below_since_ms = now_ms;
    }
    if (now_ms - t->below_since_ms < p->release_hold_ms) return false;
    snprintf(t->reason_buf, sizeof(t->reason_buf),
             "latency below %.0f ms for %u ms with nobody waiting", p->release_below_ms,
             p->release_hold_ms);
    t->queueing = false;
    t->below = false;
    t->changes++;
    t->reason = t->reason_buf;
    return true;
}

/* ---- rate controller ---- */

#define SMOOTH_TAU_MS 1000.0    /* EWMA time constant on top of the window percentile */
#define BASELINE_TAU_MS 300000.0 /* how slowly the healthy-latency estimate may rise */
#define BASELINE_CAP 0.8        /* baseline_ms <= BASELINE_CAP * low */
#define INC_PER_SETTLE 0.25     /* largest relative increase per settle_ms ... */
#define INC_NEAR_KNEE 0.08      /* ... and once above KNEE_SHARE of the known knee */
#define KNEE_SHARE 0.9
#define CUT_MIN 0.5             /* a decrease keeps at least half the rate ... */
#define CUT_MAX 0.85            /* ... and removes at least 15% */
#define IMPROVING 0.9           /* smooth below this share of the last cut's: falling */
#define MAX_STEP_MS 1000        /* a longer gap between calls counts as this */
#define DEFAULT_SETTLE_MS 30000

static double clamp_rate(const struct el_rate_params *p, double r)
{
    if (!(r >= p->min_per_s)) r = p->min_per_s; /* also NaN */
    if (r > p->max_per_s) r = p->max_per_s;
    return r;
}

void el_rate_init(struct el_rate_ctl *c, const struct el_rate_params *p, double start_per_s)
{
    c->rate = clamp_rate(p, start_per_s);
    c->last_ms = 0;
    c->baseline_ms = 0;
    c->smooth_ms = 0;
    c->cut_smooth_ms = 0;
    c->cut_ms = 0;
    c->have_cut = false;
    c->knee_per_s = 0;
    c->inc_ms = 0;
    c->have_inc = false;
    c->started = false;
}

/* low as the controller uses it: strictly between 0 and target. */
static double effective_low(const struct el_rate_params *p)
{
    if (p->low_ms > 0 && p->low_ms < p->target_ms) return p->low_ms;
    return p->target_ms / 2;
}

static bool may_cut(const struct el_rate_ctl *c, uint64_t now_ms, double settle_ms)
{
    if (!c->have_cut || now_ms < c->cut_ms) return true;
    double since = (double)(now_ms - c->cut_ms);
    if (since >= settle_ms) return true; /* the last cut has fully shown: still too slow */
    if (since < settle_ms / 2) return false;
    return c->smooth_ms >= IMPROVING * c->cut_smooth_ms; /* not falling on its own */
}

double el_rate_update(struct el_rate_ctl *c, const struct el_rate_params *p, uint64_t now_ms,
                      double pctl_ms, uint64_t samples)
{
    double settle_ms = p->settle_ms ? p->settle_ms : DEFAULT_SETTLE_MS;
    double low = effective_low(p);

    c->rate = clamp_rate(p, c->rate);
    if (!(pctl_ms >= 0) || isinf(pctl_ms)) samples = 0; /* garbage in: hold */
    if (!c->started) {
        c->started = true;
        c->last_ms = now_ms;
        if (samples == 0) return c->rate;
        c->smooth_ms = pctl_ms;
        c->baseline_ms = fmin(pctl_ms, BASELINE_CAP * low);
        return c->rate;
    }
    double dt = now_ms > c->last_ms ? (double)(now_ms - c->last_ms) : 0;
    if (dt > MAX_STEP_MS) dt = MAX_STEP_MS;
    c->last_ms = now_ms;
    if (samples == 0 || dt == 0) return c->rate; /* no news: hold */

    c->smooth_ms += (1 - exp(-dt / SMOOTH_TAU_MS)) * (pctl_ms - c->smooth_ms);
    if (c->smooth_ms < c->baseline_ms || c->baseline_ms <= 0)
        c->baseline_ms = c->smooth_ms;
    else /* rises by at most a factor e per BASELINE_TAU_MS, never past smooth */
        c->baseline_ms = fmin(c->smooth_ms, c->baseline_ms * exp(dt / BASELINE_TAU_MS));
    c->baseline_ms = fmin(c->baseline_ms, BASELINE_CAP * low);

    if (c->smooth_ms > p->target_ms) {
        if (may_cut(c, now_ms, settle_ms)) {
            /* We raised the rate within the last settle period, so this
             * overload is (at least partly) ours: remember where it began. */
            if (c->have_inc && now_ms - c->inc_ms < settle_ms) c->knee_per_s = c->rate;
            double f = p->target_ms / c->smooth_ms;
            c->rate *= fmin(CUT_MAX, fmax(CUT_MIN, f));
            c->cut_ms = now_ms;
            c->cut_smooth_ms = c->smooth_ms;
            c->have_cut = true;
        }
    } else if (c->smooth_ms < low) {
        /* Headroom g: 1 at the healthy baseline, 0 at low. The increase is
         * at most INC_PER_SETTLE per settle_ms, so the change still in the
         * pipe when latency starts to rise is bounded. */
        double g = (low - c->smooth_ms) / (low - c->baseline_ms);
        g = fmin(1, fmax(0, g));
        double step = g * dt / settle_ms;
        double inc = c->knee_per_s > 0 && c->rate >= KNEE_SHARE * c->knee_per_s ? INC_NEAR_KNEE
                                                                                 : INC_PER_SETTLE;
        c->rate *= exp(log1p(inc) * step);
        c->rate += inc * fmax(p->min_per_s, 1.0) * step; /* climb off a zero floor */
        if (g > 0) {
            c->inc_ms = now_ms;
            c->have_inc = true;
        }
    }
    c->rate = clamp_rate(p, c->rate);
    return c->rate;
}
