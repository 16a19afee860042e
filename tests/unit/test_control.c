/* test_control.c - the trigger's hysteresis, and the admission-rate
 * controller against a simulated database in virtual time (no sleeping).
 *
 * The simulated database has c connections and service time s, so it
 * completes at most c/s requests per second. Requests beyond that pile up
 * in a fluid backlog (latency = s + backlog / capacity); below capacity each
 * request also waits as in an M/M/c queue (Erlang C), so latency rises
 * smoothly as utilisation nears 1. Each admitted visitor makes K requests
 * spread evenly over SESSION_S seconds, so a rate change takes a whole
 * session to show fully. The room, trigger and controller run every 100 ms
 * on the real latency window (el_latency), as the main loop will.
 * Run with EL_CONTROL_TABLE=1 to print the convergence table of
 * docs/controller.md. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "einlass/control.h"
#include "einlass/latency.h"

/* ---- trigger ---- */

static const struct el_trigger_params tp = {
    .queue_above_ms = 300,
    .release_below_ms = 150,
    .release_hold_ms = 10000,
    .min_samples = 20,
    .max_inflight = 0,
};

static void test_trigger_min_samples(void **state)
{
    (void)state;
    struct el_trigger t = {0};
    assert_false(el_trigger_update(&t, &tp, 1000, 5000, 19, 0, 0));
    assert_false(t.queueing);
    assert_false(el_trigger_update(&t, &tp, 1100, 300, 100, 0, 0)); /* equal is not above */
    assert_false(t.queueing);
    assert_null(t.reason);
    assert_true(el_trigger_update(&t, &tp, 1200, 301, 20, 0, 0));
    assert_true(t.queueing);
    assert_int_equal(t.changes, 1);
    assert_non_null(strstr(t.reason, "latency 301 ms above 300 ms"));
    /* already queueing: no further change */
    assert_false(el_trigger_update(&t, &tp, 1300, 900, 200, 0, 0));
    assert_int_equal(t.changes, 1);
}

static void test_trigger_release_needs_hold_and_empty_room(void **state)
{
    (void)state;
    struct el_trigger t = {0};
    assert_true(el_trigger_update(&t, &tp, 0, 400, 50, 0, 0));
    uint64_t now = 100;
    /* calm latency but people waiting: never stops */
    for (; now < 60000; now += 100) assert_false(el_trigger_update(&t, &tp, now, 20, 50, 0, 3));
    assert_true(t.queueing);
    /* nobody waiting now: needs release_hold_ms of calm */
    uint64_t start = now;
    for (; now < start + 10000; now += 100) assert_false(el_trigger_update(&t, &tp, now, 20, 50, 0, 0));
    assert_true(el_trigger_update(&t, &tp, now, 20, 50, 0, 0));
    assert_false(t.queueing);
    assert_int_equal(t.changes, 2);
    assert_non_null(strstr(t.reason, "below 150 ms"));
}

static void test_trigger_blip_resets_hold(void **state)
{
    (void)state;
    struct el_trigger t = {0};
    assert_true(el_trigger_update(&t, &tp, 0, 400, 50, 0, 0));
    uint64_t now;
    for (now = 1000; now <= 9000; now += 100) assert_false(el_trigger_update(&t, &tp, now, 100, 50, 0, 0));
    /* between release_below and queue_above: not calm, restarts the hold */
    assert_false(el_trigger_update(&t, &tp, now, 150, 50, 0, 0));
    now += 100;
    for (uint64_t end = now + 9900; now < end; now += 100)
        assert_false(el_trigger_update(&t, &tp, now, 100, 50, 0, 0));
    assert_true(t.queueing);
    /* someone waiting briefly also restarts it */
    assert_false(el_trigger_update(&t, &tp, now, 100, 50, 0, 1));
    uint64_t calm_from = now + 100;
    for (now = calm_from; now < calm_from + 10000; now += 100)
        assert_false(el_trigger_update(&t, &tp, now, 100, 50, 0, 0));
    assert_true(el_trigger_update(&t, &tp, now, 100, 50, 0, 0));
    assert_false(t.queueing);
}

static void test_trigger_no_samples_is_calm(void **state)
{
    (void)state;
    struct el_trigger t = {0};
    assert_true(el_trigger_update(&t, &tp, 0, 400, 50, 0, 0));
    /* a few slow samples are not calm ... */
    for (uint64_t now = 100; now <= 20000; now += 100)
        assert_false(el_trigger_update(&t, &tp, now, 2000, 3, 0, 0));
    /* ... but an empty window with an empty room is */
    assert_false(el_trigger_update(&t, &tp, 20100, 0, 0, 0, 0));
    assert_true(el_trigger_update(&t, &tp, 30100, 0, 0, 0, 0));
}

static void test_trigger_max_inflight(void **state)
{
    (void)state;
    struct el_trigger_params p = tp;
    p.max_inflight = 50;
    struct el_trigger t = {0};
    assert_false(el_trigger_update(&t, &p, 0, 10, 0, 50, 0));
    assert_true(el_trigger_update(&t, &p, 100, 10, 0, 51, 0)); /* latency fine, no samples */
    assert_non_null(strstr(t.reason, "51 requests in flight above 50"));
    /* latency calm but still too many in flight: no release */
    for (uint64_t now = 200; now < 30000; now += 100) assert_false(el_trigger_update(&t, &p, now, 10, 100, 60, 0));
    assert_true(t.queueing);
    for (uint64_t now = 30000; now < 40000; now += 100) assert_false(el_trigger_update(&t, &p, now, 10, 100, 50, 0));
    assert_true(el_trigger_update(&t, &p, 40000, 10, 100, 50, 0));
    /* max_inflight = 0 ignores inflight */
    struct el_trigger u = {0};
    assert_false(el_trigger_update(&u, &tp, 0, 10, 100, 1000000, 0));
}

static void test_trigger_hold_zero(void **state)
{
    (void)state;
    struct el_trigger_params p = tp;
    p.release_hold_ms = 0;
    struct el_trigger t = {0};
    assert_true(el_trigger_update(&t, &p, 0, 400, 50, 0, 0));
    assert_true(el_trigger_update(&t, &p, 100, 100, 50, 0, 0));
    assert_false(t.queueing);
}

/* ---- rate controller: unit behaviour ---- */

static const struct el_rate_params rp = {
    .min_per_s = 1, .max_per_s = 100, .target_ms = 300, .low_ms = 150, .settle_ms = 30000,
};

static void test_rate_bounds_and_hold(void **state)
{
    (void)state;
    struct el_rate_ctl c;
    el_rate_init(&c, &rp, 1000);
    assert_true(c.rate == 100);
    el_rate_init(&c, &rp, 0);
    assert_true(c.rate == 1);
    el_rate_init(&c, &rp, 10);
    /* between low and target: holds */
    for (uint64_t now = 0; now < 120000; now += 100) el_rate_update(&c, &rp, now, 200, 100);
    assert_true(c.rate == 10);
    /* no samples: holds even at "zero latency" */
    for (uint64_t now = 120000; now < 240000; now += 100) el_rate_update(&c, &rp, now, 0, 0);
    assert_true(c.rate == 10);
    /* very slow forever: the floor, never below */
    for (uint64_t now = 240000; now < 900000; now += 100)
        assert_true(el_rate_update(&c, &rp, now, 5000, 100) >= 1);
    assert_true(c.rate == 1);
    /* healthy forever: the ceiling, never above */
    for (uint64_t now = 900000; now < 3000000; now += 100)
        assert_true(el_rate_update(&c, &rp, now, 20, 100) <= 100);
    assert_true(c.rate == 100);
}

static void test_rate_change_is_limited(void **state)
{
    (void)state;
    struct el_rate_ctl c;
    el_rate_init(&c, &rp, 10);
    uint64_t now = 0;
    for (; now <= 30000; now += 100) el_rate_update(&c, &rp, now, 20, 100);
    /* one settle period at full headroom: +25% and the small additive term */
    if (!(c.rate > 12.4 && c.rate < 13.1)) fail_msg("after one settle period: %g", c.rate);
    /* one decrease per half settle period while latency stays high */
    double before = c.rate;
    while (c.rate == before) el_rate_update(&c, &rp, now += 100, 5000, 100);
    uint64_t cut_at = now;
    assert_true(c.rate >= before * 0.5 - 1e-9 && c.rate <= before * 0.85 + 1e-9);
    double once = c.rate;
    while (now < cut_at + 14900) el_rate_update(&c, &rp, now += 100, 5000, 100);
    assert_true(c.rate == once);
    el_rate_update(&c, &rp, now += 100, 5000, 100); /* 15 s on, still not better */
    assert_true(c.rate < once);
    /* a decrease is skipped while latency falls on its own */
    el_rate_init(&c, &rp, 20);
    now = 0;
    for (; now < 5000; now += 100) el_rate_update(&c, &rp, now, 3000, 100);
    double cut1 = c.rate;
    assert_true(cut1 < 20);
    for (double lat = 3000; now < 5000 + 14000; now += 100, lat -= 10) el_rate_update(&c, &rp, now, lat, 100);
    assert_true(c.rate == cut1);
}

static void test_rate_garbage_input(void **state)
{
    (void)state;
    struct el_rate_ctl c;
    el_rate_init(&c, &rp, 10);
    el_rate_update(&c, &rp, 0, 50, 100);
    assert_true(el_rate_update(&c, &rp, 100, NAN, 100) == 10);
    assert_true(el_rate_update(&c, &rp, 200, INFINITY, 100) == 10);
    assert_true(el_rate_update(&c, &rp, 300, -1, 100) == 10);
    assert_true(el_rate_update(&c, &rp, 50, 20, 100) == 10); /* time going backwards */
}

/* ---- rate controller against a simulated database ---- */

#define DT_MS 100
#define SESSION_S 30
#define K_REQ 10
#define RING (SESSION_S * 1000 / DT_MS)

struct sim {
    int conns;                 /* database connections */
    double service_ms;         /* service time per request */
    double demand_per_s;       /* new visitors per second */
    double backlog;            /* requests queued beyond capacity (fluid) */
    double admitted_ring[RING];/* visitors admitted in each of the last RING steps */
    double active;             /* visitors in session: sum of the ring */
    size_t ring_pos;
    double waiting;            /* visitors in the room */
    double tokens;             /* room's admission budget */
    double req_carry;          /* fractional request left from the last step */
    uint64_t rng;
    uint64_t now;
    struct el_latency *lat;
    struct el_trigger trig;
    struct el_rate_ctl ctl;
    double p95;                /* last window p95 */
    uint64_t samples;
};

static double sim_urand(struct sim *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return ((double)(s->rng >> 11) + 0.5) / 9007199254740992.0;
}

static double capacity(const struct sim *s)
{
    return s->conns * 1000.0 / s->service_ms;
}

/* Erlang C: probability that an arrival waits in an M/M/c queue. */
static double erlang_c(int c, double offered)
{
    double b = 1;
    for (int n = 1; n <= c; n++) b = offered * b / (n + offered * b);
    double rho = offered / c;
    return b / (1 - rho * (1 - b));
}

static void sim_init(struct sim *s, int conns, double service_ms, double demand, double start_rate)
{
    memset(s, 0, sizeof(*s));
    s->conns = conns;
    s->service_ms = service_ms;
    s->demand_per_s = demand;
    s->rng = 0x9e3779b97f4a7c15ull;
    s->now = 1000000;
    s->lat = el_latency_new();
    el_rate_init(&s->ctl, &rp, start_rate);
}

static void sim_step(struct sim *s)
{
    double dt = DT_MS / 1000.0;
    s->now += DT_MS;
    /* the room: open lets everyone in, queueing meters them at the rate */
    s->waiting += s->demand_per_s * dt;
    double admit;
    if (!s->trig.queueing) {
        admit = s->waiting;
    } else {
        s->tokens = fmin(s->tokens + s->ctl.rate * dt, fmax(s->ctl.rate, 1));
        admit = fmin(floor(s->tokens), floor(s->waiting));
        s->tokens -= admit;
    }
    s->waiting -= admit;
    s->active += admit - s->admitted_ring[s->ring_pos];
    s->admitted_ring[s->ring_pos] = admit;
    s->ring_pos = (s->ring_pos + 1) % RING;

    /* the database */
    double mu = capacity(s);
    double lambda = s->active * K_REQ / SESSION_S;
    s->backlog = fmax(0, s->backlog + (lambda - mu) * dt);
    double rho = fmin(lambda / mu, 0.98);
    double per_conn = 1000.0 / s->service_ms;
    double pwait = rho > 0 ? erlang_c(s->conns, rho * s->conns) : 0;
    double drain = s->conns * per_conn - rho * mu; /* exponential wait rate */
    double n = lambda * dt + s->req_carry;
    int reqs = (int)n;
    s->req_carry = n - reqs;
    for (int i = 0; i < reqs; i++) {
        double ms = s->service_ms + s->backlog / mu * 1000.0;
        if (sim_urand(s) < pwait) ms += -log(sim_urand(s)) / drain * 1000.0;
        el_latency_add(s->lat, s->now, ms);
    }

    /* the main loop's 100 ms tick */
    struct el_latency_summary sum;
    el_latency_merge(&s->lat, 1, s->now, 5000, 95, &sum);
    s->p95 = sum.pctl;
    s->samples = sum.count;
    el_trigger_update(&s->trig, &tp, s->now, sum.pctl, sum.count, 0, (uint64_t)s->waiting);
    if (s->trig.queueing) el_rate_update(&s->ctl, &rp, s->now, sum.pctl, sum.count);
}

struct run_stats {
    double settle_s;    /* from the phase start until the rate stays within +-20% */
    double mean_rate;   /* over the steady half */
    double min_rate, max_rate;
    double mean_p95, max_p95;
};

/* Run secs seconds and describe the second half against the sustainable
 * admission rate. */
static void sim_run(struct sim *s, int secs, struct run_stats *st)
{
    double sust = capacity(s) / K_REQ;
    int steps = secs * 1000 / DT_MS;
    int steady_from = steps / 2, last_out = -1, nsteady = 0;
    memset(st, 0, sizeof(*st));
    st->min_rate = INFINITY;
    for (int i = 0; i < steps; i++) {
        sim_step(s);
        double r = s->trig.queueing ? s->ctl.rate : INFINITY;
        if (fabs(r - sust) > 0.2 * sust) last_out = i;
        if (i >= steady_from) {
            nsteady++;
            st->mean_rate += r;
            st->min_rate = fmin(st->min_rate, r);
            st->max_rate = fmax(st->max_rate, r);
            st->mean_p95 += s->p95;
            st->max_p95 = fmax(st->max_p95, s->p95);
        }
    }
    st->mean_rate /= nsteady;
    st->mean_p95 /= nsteady;
    st->settle_s = (last_out + 1) * DT_MS / 1000.0;
}

static bool want_table(void)
{
    const char *e = getenv("EL_CONTROL_TABLE");
    return e && *e && *e != '0';
}

static void report(const char *name, const struct sim *s, const struct run_stats *st)
{
    double sust = capacity(s) / K_REQ;
    if (want_table())
        printf("| %-18s | %5.1f | %6.1f | %+6.1f%% | %+6.1f%% .. %+6.1f%% | %5.0f | %5.0f |\n", name,
               sust, st->settle_s, 100 * (st->mean_rate / sust - 1), 100 * (st->min_rate / sust - 1),
               100 * (st->max_rate / sust - 1), st->mean_p95, st->max_p95);
}

static void check_steady(const struct sim *s, const struct run_stats *st, double settle_limit_s)
{
    double sust = capacity(s) / K_REQ;
    if (!(fabs(st->mean_rate - sust) <= 0.2 * sust))
        fail_msg("mean rate %.2f vs sustainable %.2f", st->mean_rate, sust);
    if (!(st->min_rate >= 0.7 * sust && st->max_rate <= 1.3 * sust))
        fail_msg("rate swings %.2f .. %.2f around %.2f", st->min_rate, st->max_rate, sust);
    if (!(st->max_p95 < tp.queue_above_ms)) fail_msg("steady p95 reached %.0f ms", st->max_p95);
    if (!(st->settle_s <= settle_limit_s)) fail_msg("settled only after %.0f s", st->settle_s);
}

static void print_table_head(void)
{
    if (!want_table()) return;
    printf("| scenario           | sust/s | settle s | mean err | swing (min .. max)   | p95 avg | p95 max |\n");
    printf("|--------------------|-------:|---------:|---------:|----------------------|--------:|--------:|\n");
}

/* 20 connections x 50 ms = 400 req/s; 10 requests per visitor: 40 visitors/s. */
static void test_sim_overload(void **state)
{
    (void)state;
    print_table_head();
    const double factors[] = {3, 10};
    for (size_t i = 0; i < 2; i++) {
        struct sim s;
        struct run_stats st;
        sim_init(&s, 20, 50, factors[i] * 40, 10);
        sim_run(&s, 1200, &st);
        assert_true(s.trig.queueing);
        report(i == 0 ? "3x demand" : "10x demand", &s, &st);
        check_steady(&s, &st, 600);
        el_latency_free(s.lat);
    }
}

/* A database that gets sick (service time doubles) and heals again. */
static void test_sim_sick_and_heal(void **state)
{
    (void)state;
    struct sim s;
    struct run_stats st;
    sim_init(&s, 20, 50, 3 * 40, 10);
    sim_run(&s, 1200, &st);
    report("3x, healthy", &s, &st);
    check_steady(&s, &st, 600);
    s.service_ms = 100; /* 200 req/s: 20 visitors/s */
    sim_run(&s, 1200, &st);
    report("3x, sick (2x slow)", &s, &st);
    check_steady(&s, &st, 600);
    double sick_rate = st.mean_rate;
    s.service_ms = 50;
    sim_run(&s, 1200, &st);
    report("3x, healed", &s, &st);
    check_steady(&s, &st, 600);
    assert_true(st.mean_rate > 1.5 * sick_rate); /* it went back up */
    el_latency_free(s.lat);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trigger_min_samples),
        cmocka_unit_test(test_trigger_release_needs_hold_and_empty_room),
        cmocka_unit_test(test_trigger_blip_resets_hold),
        cmocka_unit_test(test_trigger_no_samples_is_calm),
        cmocka_unit_test(test_trigger_max_inflight),
        cmocka_unit_test(test_trigger_hold_zero),
        cmocka_unit_test(test_rate_bounds_and_hold),
        cmocka_unit_test(test_rate_change_is_limited),
        cmocka_unit_test(test_rate_garbage_input),
        cmocka_unit_test(test_sim_overload),
        cmocka_unit_test(test_sim_sick_and_heal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
