/* test_eta.c - the promised wait on numbers: the estimate at the expected
 * pace, the range out to the measured one, the cap, the fallbacks, and the
 * expected pace the meter ticks build (the meter's rate and the credits not
 * cancelled, each smoothed over its time constant). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>

#include "einlass/eta.h"

static void expect(uint64_t position, double measured, double expected, double fallback,
                   uint64_t s, uint64_t low, uint64_t high)
{
    struct el_eta e = el_eta_estimate(position, measured, expected, fallback);
    assert_int_equal(e.s, s);
    assert_int_equal(e.low_s, low);
    assert_int_equal(e.high_s, high);
}

static void test_steady_pace_gives_four_fifths_to_five_fourths(void **state)
{
    (void)state;
    expect(200, 10, 10, 1, 20, 16, 25);
    expect(201, 10, 10, 1, 21, 17, 26); /* rounded up */
    expect(1, 2, 2, 1, 1, 1, 1);
    expect(0, 10, 10, 1, 0, 0, 0); /* nobody ahead */
}

static void test_estimate_at_expected_pace_range_out_to_measured(void **state)
{
    (void)state;
    /* a rush begins: the measured rate still shows the quiet time */
    expect(600, 12, 8, 1, 50, 40, 94);
    /* the measured pace runs ahead (returned holds the model missed) */
    expect(600, 12, 20, 1, 50, 24, 63);
    /* a measured pace under half the expected is stale: at most twice the estimate */
    expect(600, 12, 1, 1, 50, 40, 100);
}

static void test_one_pace_known_or_none(void **state)
{
    (void)state;
    expect(100, 10, 0, 4, 10, 8, 13);          /* not measured yet: the meter's pace */
    expect(100, -1, 10, 4, 10, 8, 13);         /* no expectation (meter stopped): measured */
    expect(100, INFINITY, NAN, 4, 25, 20, 32); /* neither: the configured rate */
    expect(10, 0, 0, 0, 10, 8, 13);            /* nothing at all: one a second */
}

static void test_capped_at_a_day(void **state)
{
    (void)state;
    struct el_eta e = el_eta_estimate(UINT64_MAX, 0.01, 0.001, 1);
    assert_int_equal(e.s, EL_ETA_CAP_S);
    assert_int_equal(e.high_s, EL_ETA_CAP_S);
    assert_true(e.low_s <= e.s);
    for (uint64_t pos = 1; pos < 2000000; pos = pos * 3 + 1) {
        for (double m = 0.01; m < 500; m *= 2.7) {
            e = el_eta_estimate(pos, 12.3, m, 1);
            assert_true(e.low_s <= e.s);
            assert_true(e.s <= e.high_s);
            assert_true(e.high_s <= EL_ETA_CAP_S);
            assert_true(e.high_s <= 2 * e.s);
        }
    }
}

struct sim {
    struct el_eta_meter m;
    uint64_t now;     /* ms */
    uint64_t released; /* this instance's releases so far */
    uint64_t unclaimed; /* returned holds so far */
};

/* Ticks every 100 ms for ms milliseconds: the meter at rate, releases and
 * returned holds arriving evenly at releases_ps and unclaimed_ps, cancel_ps
 * release credits cancelled a second. */
static void run(struct sim *s, uint64_t ms, double rate, double cancel_ps, double releases_ps,
                double unclaimed_ps, unsigned instances)
{
    double owed = 0, owed_u = 0;
    for (uint64_t t = 0; t < ms; t += 100) {
        s->now += 100;
        for (owed += releases_ps / 10; owed >= 1; owed -= 1) s->released++;
        for (owed_u += unclaimed_ps / 10; owed_u >= 1; owed_u -= 1) s->unclaimed++;
        struct el_eta_tick tk = {.rate = rate,
                                 .cancel_credits = cancel_ps / 10,
                                 .released_total = s->released,
                                 .instances = instances,
                                 .unclaimed_total = s->unclaimed};
        el_eta_meter_tick(&s->m, s->now, &tk);
    }
}

static double pace(const struct sim *s)
{
    return el_eta_meter_pace(&s->m);
}

static void test_meter_pace_follows_rate_within_tau(void **state)
{
    (void)state;
    struct sim s = {.now = 1000};
    assert_true(pace(&s) == 0); /* no tick yet */
    run(&s, 100, 10, 0, 0, 0, 1);
    assert_true(fabs(pace(&s) - 10) < 1e-9); /* the first tick: its rate */
    run(&s, EL_ETA_RATE_TAU_MS, 20, 0, 0, 0, 1);
    /* one time constant: 1 - 1/e of the way, whatever the tick length */
    assert_true(fabs(pace(&s) - (20 - 10 / M_E)) < 0.05);
    run(&s, 10 * EL_ETA_RATE_TAU_MS, 20, 0, 0, 0, 1);
    assert_true(fabs(pace(&s) - 20) < 0.01);
    run(&s, 100, 0, 0, 0, 0, 1);
    assert_true(pace(&s) == 0); /* a stopped meter promises nothing */
}

static void test_meter_pace_adds_credits_not_cancelled(void **state)
{
    (void)state;
    struct sim s = {.now = 1000};
    uint64_t settle = 20 * EL_ETA_CREDIT_TAU_MS;
    /* fixed rate: every release admits one more */
    run(&s, settle, 12, 0, 8, 0, 1);
    assert_true(fabs(pace(&s) - 20) < 0.5);
    /* the headroom controller cancels what it counts in its rate */
    run(&s, settle, 12, 8, 8, 0, 1);
    assert_true(fabs(pace(&s) - 12) < 0.5);
    /* more cancelled than released: never below the meter's rate */
    run(&s, settle, 12, 20, 8, 0, 1);
    assert_true(fabs(pace(&s) - 12) < 1e-6);
    /* three instances share the room: each sees a third of the releases */
    run(&s, settle, 12, 0, 2, 0, 3);
    assert_true(fabs(pace(&s) - 18) < 1.2); /* one release in 5 ticks: a ripple */
    /* held admissions returned unclaimed admit one more each, never cancelled */
    run(&s, settle, 12, 5, 5, 4, 1);
    assert_true(fabs(pace(&s) - 16) < 0.5);
}

static void test_meter_restart_is_a_new_baseline(void **state)
{
    (void)state;
    struct sim s = {.now = 1000};
    run(&s, 10 * EL_ETA_RATE_TAU_MS, 10, 0, 0, 0, 1);
    /* Redis answers: its room's total of returned holds joins the sum */
    struct el_eta_tick tk = {.rate = 10, .unclaimed_total = 100000, .restart = true};
    el_eta_meter_tick(&s.m, s.now += 100, &tk);
    tk.restart = false;
    el_eta_meter_tick(&s.m, s.now += 100, &tk);
    assert_true(fabs(pace(&s) - 10) < 1e-6); /* not 100000 credits in a tick */
}

static void test_meter_hold_keeps_pace_and_gap_is_capped(void **state)
{
    (void)state;
    struct sim s = {.now = 1000};
    run(&s, 10 * EL_ETA_RATE_TAU_MS, 10, 0, 0, 0, 1);
    double before = pace(&s);
    struct el_eta_tick held = {.hold = true};
    for (int i = 0; i < 50; i++) el_eta_meter_tick(&s.m, s.now += 100, &held);
    assert_true(pace(&s) == before); /* paused: kept for the resume */
    /* a stalled loop (10 s between ticks) counts as 2 s: no jump to the new rate */
    struct el_eta_tick tk = {.rate = 30};
    el_eta_meter_tick(&s.m, s.now += 10000, &tk);
    double w = 1 - exp(-2000.0 / EL_ETA_RATE_TAU_MS);
    assert_true(fabs(pace(&s) - (before + w * (30 - before))) < 1e-6);
    /* time going backwards changes nothing, and the next tick counts from
     * the latest time seen */
    double p = pace(&s);
    tk.rate = 50;
    el_eta_meter_tick(&s.m, s.now - 500, &tk);
    assert_true(pace(&s) == p);
    el_eta_meter_tick(&s.m, s.now + 100, &tk);
    w = 1 - exp(-100.0 / EL_ETA_RATE_TAU_MS);
    assert_true(fabs(pace(&s) - (p + w * (50 - p))) < 1e-6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steady_pace_gives_four_fifths_to_five_fourths),
        cmocka_unit_test(test_estimate_at_expected_pace_range_out_to_measured),
        cmocka_unit_test(test_one_pace_known_or_none),
        cmocka_unit_test(test_capped_at_a_day),
        cmocka_unit_test(test_meter_pace_follows_rate_within_tau),
        cmocka_unit_test(test_meter_pace_adds_credits_not_cancelled),
        cmocka_unit_test(test_meter_restart_is_a_new_baseline),
        cmocka_unit_test(test_meter_hold_keeps_pace_and_gap_is_capped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
