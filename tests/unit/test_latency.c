/* test_latency.c - Server-Timing parsing (valid, odd and malformed fields)
 * and the windowed histogram: percentile accuracy against exact nearest-rank
 * percentiles of the same data, window expiry, window changes, merging. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "einlass/latency.h"

/* ---- Server-Timing ---- */

static bool st(const char *field, const char *metric, double *dur)
{
    *dur = -1;
    return el_server_timing_dur(field, strlen(field), metric, strlen(metric), dur);
}

static void expect_dur(const char *field, const char *metric, double want)
{
    double d;
    if (!st(field, metric, &d)) fail_msg("no dur in '%s' for %s", field, metric);
    if (fabs(d - want) > 1e-9) fail_msg("'%s': got %g, want %g", field, d, want);
}

static void expect_none(const char *field, const char *metric)
{
    double d;
    if (st(field, metric, &d)) fail_msg("'%s' for %s: unexpected dur %g", field, metric, d);
}

static void test_st_valid(void **state)
{
    (void)state;
    expect_dur("db;dur=53.2", "db", 53.2);
    expect_dur("db;dur=0", "db", 0);
    expect_dur("db;dur=7.", "db", 7);
    expect_dur("db;dur=.5", "db", 0.5);
    expect_dur("cache;desc=\"x;y\", db;dur=12", "db", 12);
    expect_dur("cache;desc=\"a, b\";dur=1, db;dur=12", "db", 12);
    expect_dur("db;desc=a;dur=7", "db", 7);
    expect_dur("DB;DUR=5", "db", 5);
    expect_dur("db;Dur=5", "DB", 5);
    expect_dur("  db ; dur = 9 ; desc=x  ", "db", 9);
    expect_dur("db\t;\tdur=9", "db", 9);
    expect_dur("db;dur=\"5\"", "db", 5);         /* quoted value is unquoted */
    expect_dur("db;dur=5;dur=7", "db", 5);       /* first dur of the entry wins */
    expect_dur("db;dur=5, db;dur=7", "db", 5);   /* first matching entry wins */
    expect_dur("cache;dur=1,db;dur=2", "db", 2); /* no space after comma */
    expect_dur("cache;dur=1,db;dur=2", "cache", 1);
    expect_dur(",, db;dur=3", "db", 3);          /* empty list elements */
    expect_dur("db;desc;dur=4", "db", 4);        /* param without value */
    expect_dur("miss, db;desc=\"q\\\"uote\";dur=6", "db", 6); /* escaped quote */
    expect_dur("db;dur=000120.250", "db", 120.25);
}

static void test_st_absent_or_malformed(void **state)
{
    (void)state;
    expect_none("", "db");
    expect_none("db", "db");               /* no dur at all */
    expect_none("db;desc=x", "db");
    expect_none("dbx;dur=5", "db");        /* prefix is not a match */
    expect_none("d;dur=5", "db");
    expect_none("cache;dur=5", "db");
    expect_none("db;dur=abc", "db");
    expect_none("db;dur=-5", "db");        /* no sign */
    expect_none("db;dur=+5", "db");
    expect_none("db;dur=1e3", "db");       /* no exponent */
    expect_none("db;dur=inf", "db");
    expect_none("db;dur=nan", "db");
    expect_none("db;dur=.", "db");
    expect_none("db;dur=1.2.3", "db");
    expect_none("db;dur=", "db");
    expect_none("db;dur=\"\"", "db");
    expect_none("db;dur=\"5", "db");       /* unterminated quote */
    expect_none("db;desc=\"x;dur=5", "db");
    expect_none("db;dur=5 x", "db");       /* junk after a param */
    expect_none("db dur=5", "db");
    expect_none(";dur=5", "db");
    expect_none("db;;dur=5", "db");
    expect_none("db;dur=123456789012345678901234567890123", "db"); /* > 32 chars */
}

static void test_st_malformed_entry_skipped(void **state)
{
    (void)state;
    /* a matching entry with a bad dur is skipped; a later good one counts */
    expect_dur("db;dur=abc, db;dur=9", "db", 9);
    expect_dur("db, db;dur=9", "db", 9);
    /* malformed entries elsewhere do not spoil the field */
    expect_dur("cache;desc=\"x\"y, db;dur=8", "db", 8);
    expect_dur("cache desc, db;dur=8", "db", 8);
    expect_dur("cache;dur=oops, db;dur=8", "db", 8);
    expect_dur("=, db;dur=8", "db", 8);
    /* a malformed entry containing a quoted comma is skipped as a whole */
    expect_dur("x;desc=\"a\"z\"db;dur=1,\", db;dur=8", "db", 8);
    /* an unterminated quote swallows the rest of the field */
    expect_none("cache;desc=\"x, db;dur=8", "db");
    /* non-NUL-terminated input: length is honoured */
    double d = -1;
    const char buf[] = {'d', 'b', ';', 'd', 'u', 'r', '=', '4', '2'};
    assert_true(el_server_timing_dur(buf, 8, "db", 2, &d));
    assert_true(fabs(d - 4) < 1e-12);
}

/* ---- histogram ---- */

static uint64_t rng_state = 88172645463325252ull;

static double urand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double exact_rank(const double *sorted, size_t n, double p)
{
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    if (rank < 1) rank = 1;
    return sorted[rank - 1];
}

static void check_accuracy(double *xs, size_t n)
{
    struct el_latency *l = el_latency_new();
    for (size_t i = 0; i < n; i++) el_latency_add(l, 1000 + i % 1000, xs[i]);
    qsort(xs, n, sizeof(double), cmp_double);
    const double ps[] = {0, 1, 10, 50, 90, 95, 99, 99.9, 100};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        struct el_latency_summary s;
        el_latency_merge(&l, 1, 1999, 5000, ps[i], &s);
        assert_int_equal(s.count, n);
        double want = exact_rank(xs, n, ps[i]);
        double err = fabs(s.pctl - want) / want;
        if (err > 0.02) fail_msg("p%g: got %g, exact %g (err %.3f)", ps[i], s.pctl, want, err);
        if (ps[i] == 95) assert_true(s.p95 == s.pctl);
    }
    el_latency_free(l);
}

static void test_hist_accuracy_uniform_log(void **state)
{
    (void)state;
    enum { N = 20000 };
    double *xs = malloc(N * sizeof(double));
    /* log-uniform over 0.01 ms .. 120 s: every octave is exercised */
    for (size_t i = 0; i < N; i++) xs[i] = 0.01 * pow(12e6, urand());
    check_accuracy(xs, N);
    free(xs);
}

static void test_hist_accuracy_skewed(void **state)
{
    (void)state;
    enum { N = 20000 };
    double *xs = malloc(N * sizeof(double));
    /* 90% fast around 5 ms, 10% slow tail (Pareto-like) up to seconds */
    for (size_t i = 0; i < N; i++) {
        if (urand() < 0.9) xs[i] = 4.0 + 2.0 * urand();
        else xs[i] = 50.0 / pow(1.0 - urand() * 0.999, 0.8);
    }
    check_accuracy(xs, N);
    free(xs);
}

static void test_hist_accuracy_edges(void **state)
{
    (void)state;
    /* values exactly on octave edges and sub-bucket edges */
    double xs[] = {0.01, 0.02, 0.04, 1.0, 1.03125, 2.0, 1024.0, 65536.0, 120000.0, 0.015};
    check_accuracy(xs, sizeof(xs) / sizeof(xs[0]));
}

static void test_hist_clamps(void **state)
{
    (void)state;
    struct el_latency *l = el_latency_new();
    struct el_latency_summary s;
    el_latency_add(l, 0, 0.0);
    el_latency_add(l, 0, -3.0);
    el_latency_add(l, 0, NAN); /* ignored */
    el_latency_merge(&l, 1, 0, 1000, 100, &s);
    assert_int_equal(s.count, 2);
    assert_true(s.pctl > 0 && s.pctl < 0.0105);
    el_latency_add(l, 0, 1e9);      /* 11 days: clamps to the top bucket */
    el_latency_add(l, 0, INFINITY);
    el_latency_merge(&l, 1, 0, 1000, 100, &s);
    assert_int_equal(s.count, 4);
    assert_true(s.pctl > 120000.0 && s.pctl < 200000.0);
    el_latency_free(l);
}

static void test_hist_empty(void **state)
{
    (void)state;
    struct el_latency *l = el_latency_new();
    struct el_latency_summary s;
    memset(&s, 0xff, sizeof(s));
    el_latency_merge(&l, 1, 123456, 5000, 95, &s);
    assert_int_equal(s.count, 0);
    assert_true(s.p50 == 0 && s.p95 == 0 && s.p99 == 0 && s.pctl == 0);
    el_latency_free(l);
}

static void test_hist_window_expiry(void **state)
{
    (void)state;
    struct el_latency *l = el_latency_new();
    struct el_latency_summary s;
    uint64_t t0 = 100000;
    for (int i = 0; i < 100; i++) el_latency_add(l, t0, 1000.0); /* slow, old */
    for (int i = 0; i < 100; i++) el_latency_add(l, t0 + 4000, 10.0);
    el_latency_merge(&l, 1, t0 + 4000, 5000, 95, &s);
    assert_int_equal(s.count, 200);
    assert_true(fabs(s.p95 - 1000) / 1000 <= 0.02);
    /* 5.5 s later the slow samples are out of a 5 s window */
    el_latency_merge(&l, 1, t0 + 5500, 5000, 95, &s);
    assert_int_equal(s.count, 100);
    assert_true(fabs(s.p95 - 10) / 10 <= 0.02);
    /* and 10 s later everything is gone */
    el_latency_merge(&l, 1, t0 + 9500, 5000, 95, &s);
    assert_int_equal(s.count, 0);
    /* a slot reused a full ring later starts empty */
    el_latency_add(l, t0 + 64000, 50.0);
    el_latency_merge(&l, 1, t0 + 64000, 1000, 100, &s);
    assert_int_equal(s.count, 1);
    assert_true(fabs(s.pctl - 50) / 50 <= 0.02);
    el_latency_free(l);
}

static void test_hist_window_change_keeps_samples(void **state)
{
    (void)state;
    struct el_latency *l = el_latency_new();
    struct el_latency_summary s;
    uint64_t t0 = 1000000;
    for (int sec = 0; sec < 60; sec++)
        for (int i = 0; i < 10; i++) el_latency_add(l, t0 + (uint64_t)sec * 1000, 20.0 + sec);
    uint64_t now = t0 + 59999;
    el_latency_merge(&l, 1, now, 5000, 50, &s);
    assert_int_equal(s.count, 50);
    /* a reload widens the window to 30 s: older samples are still there */
    el_latency_merge(&l, 1, now, 30000, 50, &s);
    assert_int_equal(s.count, 300);
    el_latency_merge(&l, 1, now, 60000, 0, &s);
    assert_int_equal(s.count, 600);
    assert_true(fabs(s.pctl - 20) / 20 <= 0.02);
    /* a window beyond 60 s is clamped; smaller ones see their slots */
    el_latency_merge(&l, 1, now, 4000000000u, 100, &s);
    assert_int_equal(s.count, 600);
    el_latency_merge(&l, 1, now, 1000, 100, &s);
    assert_int_equal(s.count, 10);
    assert_true(fabs(s.pctl - 79) / 79 <= 0.02);
    el_latency_merge(&l, 1, now, 1, 100, &s); /* only the current 250 ms slot */
    assert_int_equal(s.count, 0);
    el_latency_free(l);
}

static void test_hist_merge_several(void **state)
{
    (void)state;
    enum { W = 4, N = 3000 };
    struct el_latency *ls[W];
    double *xs = malloc(W * N * sizeof(double));
    for (int w = 0; w < W; w++) ls[w] = el_latency_new();
    for (int i = 0; i < W * N; i++) {
        int w = i % W;
        xs[i] = 1.0 + w * 30.0 + 60.0 * urand(); /* each worker sees a different range */
        el_latency_add(ls[w], 5000 + (uint64_t)(i % 3000), xs[i]);
    }
    qsort(xs, W * N, sizeof(double), cmp_double);
    struct el_latency_summary s;
    el_latency_merge(ls, W, 7999, 5000, 99, &s);
    assert_int_equal(s.count, W * N);
    assert_true(fabs(s.p50 - exact_rank(xs, W * N, 50)) / exact_rank(xs, W * N, 50) <= 0.02);
    assert_true(fabs(s.p99 - exact_rank(xs, W * N, 99)) / exact_rank(xs, W * N, 99) <= 0.02);
    /* merging a subset sees only that subset */
    el_latency_merge(ls, 1, 7999, 5000, 99, &s);
    assert_int_equal(s.count, N);
    assert_true(s.p99 < 62.0 * 1.02);
    for (int w = 0; w < W; w++) el_latency_free(ls[w]);
    free(xs);
}

/* The totals the control loop diffs per tick: count and sum over all. */
static void test_totals_count_and_sum(void **state)
{
    (void)state;
    struct el_latency *a = el_latency_new(), *b = el_latency_new();
    struct el_latency *ls[3] = {a, NULL, b};
    uint64_t n, us;
    el_latency_totals(ls, 3, &n, &us);
    assert_int_equal(n, 0);
    el_latency_add(a, 1000, 20);
    el_latency_add(b, 1000, 40.5);
    el_latency_add(b, 900000, 1); /* far later: totals never expire */
    el_latency_add(a, 1000, NAN); /* dropped, as in the histogram */
    el_latency_add(a, 1000, -5);  /* counts, as 0 */
    el_latency_totals(ls, 3, &n, &us);
    assert_int_equal(n, 4);
    assert_int_equal(us, 20000 + 40500 + 1000);
    el_latency_free(a);
    el_latency_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_st_valid),
        cmocka_unit_test(test_st_absent_or_malformed),
        cmocka_unit_test(test_st_malformed_entry_skipped),
        cmocka_unit_test(test_hist_accuracy_uniform_log),
        cmocka_unit_test(test_hist_accuracy_skewed),
        cmocka_unit_test(test_hist_accuracy_edges),
        cmocka_unit_test(test_hist_clamps),
        cmocka_unit_test(test_hist_empty),
        cmocka_unit_test(test_hist_window_expiry),
        cmocka_unit_test(test_hist_window_change_keeps_samples),
        cmocka_unit_test(test_hist_merge_several),
        cmocka_unit_test(test_totals_count_and_sum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
