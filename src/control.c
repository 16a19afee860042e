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
#include <string.h>

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

/* ---- the adaptive concurrency limit ---- */

#define LIM_HEADROOM 0.2      /* Little's limit x (1 + this) + LIM_SPARE: a small queue keeps it busy */
#define LIM_SPARE 1.0
#define LIM_SS_TOL 1.25       /* slow start ends once latency passes base x this */
#define LIM_CUT_MIN 0.5       /* a ceiling cut keeps at least half */
#define LIM_UP 0.25          /* growth per round trip while bound without a queue, after slow start */
#define LIM_DOWN 0.5          /* share of the way to a lower Little target per tick */
#define LIM_PROBE_MS 3000     /* re-measure base this often while the limit binds ... */
#define LIM_STALE 2.0         /* ... or sooner after LIM_STALE_TICKS ticks above base x this */
#define LIM_STALE_TICKS 3
#define LIM_PROBE_SHARE 0.9   /* probe limit: this share of throughput x base (below the knee) */
#define LIM_PROBE_MAX_MS 2000 /* give a probe up after this long */
#define LIM_MAX_DT_MS 1000
#define LIM_KNEE_TAU_MS 10000.0 /* the knee floor fades with this time constant */
#define LIM_CEIL_SHARE 0.7    /* and at most throughput x this share of the ceiling */
#define LIM_FLOOR_SHARE 0.1   /* a latency below this share of the ceiling is no queue worth
                                 holding back for, nor a backend queue whose delay stays
                                 below it a reason to open the room */

static double limit_clamp(const struct el_limit_params *p, double l)
{
    double mn = p->min < 1 ? 1 : p->min, mx = p->max < mn ? mn : p->max;
    if (!(l >= mn)) l = mn; /* also NaN */
    if (l > mx) l = mx;
    return l;
}

static int limit_int(const struct el_limit_ctl *c, const struct el_limit_params *p)
{
    return (int)lround(limit_clamp(p, c->limit));
}

void el_limit_init(struct el_limit_ctl *c, const struct el_limit_params *p)
{
    memset(c, 0, sizeof(*c));
    c->limit = limit_clamp(p, p->initial);
    c->slow_start = true;
}

/* A tick's latency that shows no queue at the backend: near the no-load
 * latency, or too small against the ceiling to matter (a backend that
 * answers in a millisecond is not at its knee because 40 requests make it
 * two: its latency rises with our own CPU, not with a database queue). */
static bool lim_unqueued(const struct el_limit_ctl *c, const struct el_limit_params *p, double lat)
{
    return lat <= fmax(c->base_ms * LIM_SS_TOL, p->ceiling_ms * LIM_FLOOR_SHARE);
}

struct el_open_rule el_limit_open_rule(const struct el_limit_ctl *c, const struct el_limit_params *p,
                                       int limit, bool adaptive)
{
    struct el_open_rule r = {0, 0};
    if (limit <= 0) return r;
    if (!adaptive) {
        r.queue = 1;
        return r;
    }
    if (c->slow_start || c->base_ms <= 0) return r; /* still learning */
    double q = ceil(limit * p->ceiling_ms * LIM_FLOOR_SHARE / c->base_ms);
    r.queue = q < 1 ? 1 : q > 1e6 ? 1000000u : (uint32_t)q;
    r.wait_ms = p->ceiling_ms * LIM_FLOOR_SHARE;
    return r;
}

static void probe_start(struct el_limit_ctl *c, const struct el_limit_params *p, double x)
{
    double knee = x * c->base_ms / 1000.0;
    double pl = round(LIM_PROBE_SHARE * knee); /* not below the knee: it measures base at full use */
    if (pl > c->limit - 1) pl = c->limit - 1;
    c->probe_saved = c->limit;
    c->limit = limit_clamp(p, pl);
    c->probe = 1;
    c->probe_ms = 0;
    c->drained_ms = 0;
    c->probes++;
    c->stale_ticks = 0;
}

int el_limit_update(struct el_limit_ctl *c, const struct el_limit_params *p,
                    const struct el_limit_obs *o)
{
    double dt = o->dt_ms ? o->dt_ms : 100;
    if (dt > LIM_MAX_DT_MS) dt = LIM_MAX_DT_MS;
    int cur = limit_int(c, p);
    bool bound = o->queued > 0 || o->waited > 0 || o->inflight >= cur;
    bool news = o->done > 0 && o->lat_ms >= 0 && !isinf(o->lat_ms);
    c->since_probe_ms += (uint32_t)dt;

    if (c->probe && news && o->lat_ms > p->ceiling_ms) { /* no time for probing: cut below */
        c->limit = c->probe_saved;
        c->probe = 0;
        c->since_probe_ms = 0;
    }
    if (c->probe) { /* drain to the probe limit, wait one base latency, measure one tick */
        c->probe_ms += (uint32_t)dt;
        if (c->probe_ms > LIM_PROBE_MAX_MS) { /* never drained: keep the old base */
            c->limit = c->probe_saved;
            c->probe = 0;
            c->since_probe_ms = 0;
            return limit_int(c, p);
        }
        if (c->probe == 1) {
            if (o->inflight <= cur) c->drained_ms += (uint32_t)dt;
            if (c->drained_ms > c->base_ms) c->probe = 2;
            return cur;
        }
        if (!news) return cur;
        c->base_ms = fmax(o->lat_ms, 0.01);
        c->limit = c->probe_saved;
        c->probe = 0;
        c->since_probe_ms = 0;
        /* and on with the new base */
    }
    if (!news) return limit_int(c, p); /* no completions: no news, hold */

    double x = (double)o->done * 1000.0 / dt;
    double lat = o->lat_ms;
    c->x_per_s = x;
    c->lat_ms = lat;
    if (c->base_ms <= 0 || lat < c->base_ms) {
        c->base_ms = fmax(lat, 0.01);
        c->since_probe_ms = 0; /* a fresh minimum is as good as a probe */
    }
    /* The largest concurrency the database served at its no-load latency
     * lately: a floor for Little's decreases, so a demand-limited tick
     * (low throughput, a burst queued at a small limit) cannot talk the
     * limit below what the database has shown it can take. */
    double conc = x * lat / 1000.0;
    if (lim_unqueued(c, p, lat) && conc > c->knee) c->knee = conc;
    else c->knee *= exp(-dt / LIM_KNEE_TAU_MS);
    double little = x * c->base_ms / 1000.0 * (1 + LIM_HEADROOM) + LIM_SPARE;
    /* Little's law on the ceiling too: at this concurrency the mean latency
     * of a saturated database is LIM_CEIL_SHARE x ceiling. */
    double lceil = x * LIM_CEIL_SHARE * p->ceiling_ms / 1000.0;
    if (little > lceil) little = fmax(lceil, x * c->base_ms / 1000.0);
    if (c->ss_hold_ms > (uint32_t)dt) c->ss_hold_ms -= (uint32_t)dt;
    else c->ss_hold_ms = 0;

    if (lat > p->ceiling_ms) { /* over the hard ceiling: cut at once */
        double f = fmax(LIM_CUT_MIN, p->ceiling_ms / lat);
        c->limit = fmin(c->limit * f, little);
        c->slow_start = false;
        c->stale_ticks = 0;
        c->cuts++;
    } else if (bound) {
        bool unqueued = lim_unqueued(c, p, lat);
        if (c->slow_start && unqueued) {
            /* Double once per round trip: the next tick's completions were
             * sent under the old limit, so wait a base latency first. */
            if (c->ss_hold_ms == 0) {
                c->limit *= 2;
                c->ss_hold_ms = (uint32_t)(c->base_ms + dt);
            }
        } else {
            c->slow_start = false;
            if (little > c->limit)
                c->limit = fmin(little, c->limit * 2);
            else if (!unqueued) /* only a queue at the database lowers it */
                c->limit = fmax(c->limit + LIM_DOWN * (little - c->limit), c->knee);
            else if (lat <= p->ceiling_ms * LIM_FLOOR_SHARE && c->ss_hold_ms == 0) {
                /* Bound, at a latency too small to matter: Little's law
                 * underestimates (a backend too fast to measure), so probe
                 * upwards, a quarter per round trip: gentler than slow
                 * start, next to a known knee. */
                c->limit += fmax(1, c->limit * LIM_UP);
                c->ss_hold_ms = (uint32_t)(c->base_ms + dt);
            }
        }
        c->stale_ticks = !unqueued && lat > c->base_ms * LIM_STALE ? c->stale_ticks + 1 : 0;
        if (!c->slow_start && !unqueued &&
            (c->since_probe_ms >= LIM_PROBE_MS || c->stale_ticks >= LIM_STALE_TICKS)) {
            c->limit = limit_clamp(p, c->limit);
            probe_start(c, p, x);
        }
    } else {
        c->stale_ticks = 0; /* demand below the limit: no evidence to grow on, hold */
    }
    c->limit = limit_clamp(p, c->limit);
    return limit_int(c, p);
}

/* ---- the admission rate by headroom ---- */

#define ADMIT_CUT 0.8    /* a cut keeps at most this share of the rate ... */
#define ADMIT_CUT_MIN 0.5 /* ... and at least this; the next follows after settle_ms,
                            or after settle_ms / 4 if the pressure doubled since */
#define ADMIT_UP 1.0     /* doublings per settle_ms with the whole limit spare (faster
                            growth, 1.5 or 2, filled the spike's first seconds no
                            better and overshot more: bench/rush, docs/controller.md) */
#define ADMIT_BAND 0.1   /* spare share below this: hold */
#define ADMIT_CALM 0.25  /* pressure below this counts as no queue */
#define ADMIT_SETTLE_MS 7000
#define ADMIT_FILL 0.9  /* the fill aims at this share of the backend's knee ... */
#define ADMIT_FILL_S 1.0 /* ... within this many seconds */
#define ADMIT_STOP 2.0   /* pressure at which the meter stops; from 1 it throttles */

static double admit_clamp(const struct el_admit_params *p, double r)
{
    if (!(r >= p->min_per_s)) r = p->min_per_s;
    if (r > p->max_per_s) r = p->max_per_s;
    return r;
}

void el_admit_init(struct el_admit_ctl *c, const struct el_admit_params *p, double start_per_s)
{
    c->rate = c->meter = admit_clamp(p, start_per_s);
    c->pressure = c->spare = 0;
    c->since_cut_ms = 0;
    c->have_cut = false;
}

double el_admit_update(struct el_admit_ctl *c, const struct el_admit_params *p,
                       const struct el_admit_obs *o)
{
    double dt = o->dt_ms > 1000 ? 1.0 : o->dt_ms / 1000.0;
    c->rate = admit_clamp(p, c->rate);
    c->meter = c->rate;
    if (o->probing || o->limit <= 0) return c->rate;
    /* the queue's delay: what the waiters ahead cost a newcomer (Little:
     * queued / throughput), or what the tick's requests waited on average */
    double x = (double)o->done / dt;
    double qdelay = o->queued > 0 ? (x > 0 ? o->queued / x * 1000.0 : 1e9) : 0;
    double d = fmax(qdelay, o->wait_ms);
    double target = p->wait_ms > 0 ? p->wait_ms : 50;
    double pressure = d / target;
    double spare = (o->limit - o->busy) / o->limit;
    c->pressure = pressure;
    c->spare = spare;
    double settle = p->settle_ms > 0 ? p->settle_ms : ADMIT_SETTLE_MS;
    c->since_cut_ms += o->dt_ms;
    if (pressure > 1) {
        /* Those admitted in the last settle period are still on their way
         * in and will keep the queue up: cut once, at once, then give the
         * cut time to show before cutting again (CoDel's lesson). */
        bool worse = c->since_cut_ms >= settle / 4 && pressure > 2 * c->cut_pressure;
        if (!c->have_cut || c->since_cut_ms >= settle || worse) {
            c->rate *= fmax(ADMIT_CUT_MIN, fmin(ADMIT_CUT, 1 - 0.05 * pressure)); /* deeper for a longer queue */
            c->since_cut_ms = 0;
            c->cut_pressure = pressure;
            c->have_cut = true;
        }
    } else if (pressure < ADMIT_CALM && spare > ADMIT_BAND) {
        /* Spare room, but is anyone coming? An idle backend right after
         * admissions says only that the admitted have not polled yet: grow
         * in proportion to the share of the limit in use too, so growth
         * needs evidence that admitted visitors arrive. */
        double used = fmin(1, fmax(0, 2 * o->busy / o->limit));
        c->rate *= exp(ADMIT_UP * M_LN2 * used * dt * 1000.0 / settle);
    }
    c->rate = admit_clamp(p, c->rate);
    /* The meter's rate: the learnt rate, throttled at once while the queue
     * lasts (nobody more is let in while those inside wait past the target;
     * the learnt rate is what it resumes at). */
    double th = fmin(1, fmax(0, (ADMIT_STOP - pressure) / (ADMIT_STOP - 1)));
    c->meter = fmax(p->min_per_s, c->rate * th);
    /* The fill: the sessions the backend has room for now, beyond those
     * already on their way in, within ADMIT_FILL_S (Little's law for
     * sessions: one active session sends pass_x / seen requests a second).
     * This is what fills the database in the first seconds of a rush,
     * when the learnt rate lags the sessions that end. */
    if (o->seen >= 1 && o->x_cap > 0 && pressure < ADMIT_CALM) {
        double r = o->pass_x / o->seen;
        double need = (ADMIT_FILL * o->x_cap - x) / r - o->pending;
        if (need > 0) c->meter = admit_clamp(p, fmax(c->meter, need / ADMIT_FILL_S));
    }
    return c->meter;
}

bool el_trigger_hold(struct el_trigger *t, const char *reason)
{
    t->below = false;
    if (t->queueing) return false;
    snprintf(t->reason_buf, sizeof(t->reason_buf), "%s", reason);
    t->queueing = true;
    t->changes++;
    t->reason = t->reason_buf;
    return true;
}

double el_rate_share(double total, const uint64_t *waiting, const bool *adaptive, size_t n,
                     size_t i, double min_per_s, double max_per_s)
{
    double w = 0;
    size_t rooms = 0;
    for (size_t k = 0; k < n; k++)
        if (adaptive[k]) {
            w += (double)waiting[k];
            rooms++;
        }
    double share = w > 0 ? total * (double)waiting[i] / w : total / (double)(rooms ? rooms : 1);
    return fmin(fmax(share, min_per_s), max_per_s);
}
