/* eta.c - the promised wait and its range (eta.h).
 *
 * Invariants:
 *   - pure arithmetic on the numbers given: no clock, no I/O, no allocation.
 *   - el_eta_estimate never returns a range that leaves out its estimate,
 *     never a number above EL_ETA_CAP_S, and a position of 0 waits 0 s.
 *   - the meter's smoothing weight depends on the time since the last tick
 *     (1 - e^(-dt / tau)), so the expected pace does not depend on how
 *     often the control loop ticks. */
#include "einlass/eta.h"

#include <math.h>

#define MAX_GAP_MS 2000 /* a longer gap between ticks counts as this long */

static bool known(double v)
{
    return v > 0 && isfinite(v);
}

static uint64_t since(uint64_t now, uint64_t then)
{
    return now >= then ? now - then : 0;
}

void el_eta_meter_tick(struct el_eta_meter *m, uint64_t now_ms, const struct el_eta_tick *t)
{
    bool first = !m->has_last;
    if (!first && now_ms < m->last_ms) now_ms = m->last_ms; /* the clock never goes back */
    uint64_t dt = first ? 0 : now_ms - m->last_ms;
    if (dt > MAX_GAP_MS) dt = MAX_GAP_MS;
    double credits = first || t->restart ? 0
                           : (double)since(t->released_total, m->last_released) *
                                     (t->instances ? t->instances : 1) +
                                 (double)since(t->unclaimed_total, m->last_unclaimed);
    m->has_last = true;
    m->last_ms = now_ms;
    m->last_released = t->released_total;
    m->last_unclaimed = t->unclaimed_total;
    if (t->hold) return; /* paused: nobody's turn comes; keep the pace for the resume */
    double r = known(t->rate) ? t->rate : 0;
    m->last_rate = r;
    if (first) {
        m->meter_ps = r;
        return;
    }
    if (dt == 0) return;
    double sec = (double)dt / 1000.0;
    double wr = 1 - exp(-(double)dt / EL_ETA_RATE_TAU_MS);
    double wc = 1 - exp(-(double)dt / EL_ETA_CREDIT_TAU_MS);
    double cancel = known(t->cancel_credits) ? t->cancel_credits / sec : 0;
    m->meter_ps += wr * (r - m->meter_ps);
    m->credit_ps += wc * (credits / sec - m->credit_ps);
    m->cancel_ps += wc * (cancel - m->cancel_ps);
}

double el_eta_meter_pace(const struct el_eta_meter *m)
{
    if (!(m->last_rate > 0)) return 0;
    double net = m->credit_ps - m->cancel_ps;
    return m->meter_ps + (net > 0 ? net : 0);
}

/* position / pace in whole seconds (rounded up), at most the cap. */
static uint64_t wait_s(uint64_t position, double pace)
{
    double s = ceil((double)position / pace - 1e-9);
    if (!(s > 0)) return 0;
    return s >= EL_ETA_CAP_S ? EL_ETA_CAP_S : (uint64_t)s;
}

struct el_eta el_eta_estimate(uint64_t position, double expected, double measured,
                              double fallback_rate)
{
    if (position == 0) return (struct el_eta){0, 0, 0};
    double pace = known(expected)        ? expected
                  : known(measured)      ? measured
                  : known(fallback_rate) ? fallback_rate
                                         : 1; /* nothing known: one a second */
    double fast = known(measured) && measured > pace ? measured : pace;
    double slow = known(measured) && measured < pace ? measured : pace;
    struct el_eta e = {.s = wait_s(position, pace)};
    e.low_s = wait_s(position, fast * 1.25);
    e.high_s = wait_s(position, slow * 0.8);
    if (e.low_s > e.s) e.low_s = e.s;
    if (e.high_s < e.s) e.high_s = e.s;
    if (e.high_s > 2 * e.s) e.high_s = 2 * e.s; /* a pace below half the expected is stale */
    return e;
}
