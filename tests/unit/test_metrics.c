/* test_metrics.c - counters, the latency histogram and their Prometheus text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include "einlass/common.h"
#include "einlass/config.h"
#include "einlass/metrics.h"

#include <event2/buffer.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void reset(void)
{
    for (int w = 0; w < EL_MAX_WORKERS; w++) {
        struct el_metrics_worker *mw = &el_metrics_workers[w];
        for (int d = 0; d < EL_DECISION__COUNT; d++)
            atomic_store(&mw->requests[d], 0);
        for (int i = 0; i <= EL_LATENCY_BUCKETS; i++)
            atomic_store(&mw->latency_bucket[i], 0);
        atomic_store(&mw->latency_sum_us, 0);
        atomic_store(&mw->inflight, 0);
        atomic_store(&mw->connections, 0);
    }
    atomic_store(&el_metrics_global.reloads_ok, 0);
    atomic_store(&el_metrics_global.reloads_failed, 0);
    atomic_store(&el_metrics_global.room_state_changes, 0);
}

/* Render into a NUL-terminated string the caller frees. */
static char *render(const struct el_status *st)
{
    struct evbuffer *b = evbuffer_new();
    el_metrics_render(b, st);
    size_t n = evbuffer_get_length(b);
    char *s = el_malloc(n + 1);
    evbuffer_remove(b, s, n);
    s[n] = '\0';
    evbuffer_free(b);
    return s;
}

/* The value of the sample line that starts with "name{labels} " (exactly). */
static const char *value_of(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') return p + n + 1;
    }
    return NULL;
}

static double num_of(const char *text, const char *series)
{
    const char *v = value_of(text, series);
    if (v == NULL) fail_msg("no sample line for %s", series);
    return strtod(v, NULL);
}

static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0')) return 1;
    return 0;
}

/* Every line of the NULL-terminated list stands whole in text. */
#define expect_lines(text, ...) expect_lines_((text), (const char *const[]){__VA_ARGS__, NULL})
static void expect_lines_(const char *text, const char *const *lines)
{
    for (; *lines != NULL; lines++)
        if (!has_line(text, *lines)) fail_msg("missing line '%s' in:\n%s", *lines, text);
}

static struct el_status sample_status(void)
{
    struct el_status st = {
        .mode = EL_MODE_ON,
        .queueing = true,
        .waiting = 42,
        .admitted_total = 1234,
        .admit_per_s = 12.5,
        .p50_ms = 80,
        .p95_ms = 350,
        .p99_ms = 910,
        .samples = 77,
        .inflight = 9,
        .store = "redis",
        .store_up = true,
    };
    return st;
}

static void test_contract_names(void **state)
{
    (void)state;
    reset();
    struct el_status st = sample_status();
    char *t = render(&st);
    static const char *const families[][2] = {
        {"einlass_requests_total", "counter"},
        {"einlass_queueing", "gauge"},
        {"einlass_waiting", "gauge"},
        {"einlass_admitted_total", "counter"},
        {"einlass_admit_per_second", "gauge"},
        {"einlass_inflight", "gauge"},
        {"einlass_backend_latency_seconds", "histogram"},
        {"einlass_store_up", "gauge"},
        {"einlass_config_reloads_total", "counter"},
        {"einlass_room_state_changes_total", "counter"},
        {"einlass_connections", "gauge"},
        {"einlass_backend_latency_window_seconds", "gauge"},
        {"einlass_mode", "gauge"},
        {"einlass_build_info", "gauge"},
    };
    for (size_t i = 0; i < EL_ARRAY_LEN(families); i++) {
        char line[160];
        snprintf(line, sizeof(line), "# TYPE %s %s", families[i][0], families[i][1]);
        if (!has_line(t, line)) fail_msg("missing '%s'", line);
        snprintf(line, sizeof(line), "# HELP %s ", families[i][0]);
        assert_non_null(strstr(t, line));
    }
    static const char *const decisions[] = {"forward", "wait", "bypass", "reject", "error"};
    for (size_t i = 0; i < EL_ARRAY_LEN(decisions); i++) {
        char series[80];
        snprintf(series, sizeof(series), "einlass_requests_total{decision=\"%s\"}", decisions[i]);
        assert_int_equal(num_of(t, series), 0);
    }
    expect_lines(
        t, "einlass_queueing 1", "einlass_waiting 42", "einlass_admitted_total 1234",
        "einlass_admit_per_second 12.5", "einlass_inflight 9", "einlass_store_up 1",
        "einlass_store_info{store=\"redis\"} 1", "einlass_config_reloads_total{result=\"ok\"} 0",
        "einlass_config_reloads_total{result=\"failed\"} 0", "einlass_mode{mode=\"auto\"} 0",
        "einlass_mode{mode=\"on\"} 1", "einlass_mode{mode=\"off\"} 0",
        "einlass_build_info{version=\"" EL_VERSION "\"} 1",
        "einlass_backend_latency_window_seconds{percentile=\"50\"} 0.08",
        "einlass_backend_latency_window_seconds{percentile=\"95\"} 0.35",
        "einlass_backend_latency_window_seconds{percentile=\"99\"} 0.91",
        "einlass_backend_latency_seconds_bucket{le=\"+Inf\"} 0",
        "einlass_backend_latency_seconds_count 0", "einlass_backend_latency_seconds_sum 0");
    /* Every non-comment line is "name[{labels}] value": one space, no blanks. */
    for (const char *p = t; *p;) {
        const char *nl = strchr(p, '\n');
        assert_non_null(nl);
        assert_true(nl > p);
        if (*p != '#') {
            const char *sp = memchr(p, ' ', (size_t)(nl - p));
            assert_non_null(sp);
            assert_null(memchr(sp + 1, ' ', (size_t)(nl - sp - 1)));
        }
        p = nl + 1;
    }
    free(t);
}

static void test_status_off_and_null(void **state)
{
    (void)state;
    reset();
    struct el_status st = sample_status();
    st.mode = EL_MODE_OFF;
    st.queueing = false;
    st.store_up = false;
    st.store = "fallback";
    char *t = render(&st);
    expect_lines(t, "einlass_mode{mode=\"off\"} 1", "einlass_mode{mode=\"on\"} 0",
                 "einlass_queueing 0", "einlass_store_up 0",
                 "einlass_store_info{store=\"fallback\"} 1");
    free(t);

    atomic_store(&el_metrics_workers[1].inflight, 3);
    atomic_store(&el_metrics_workers[5].inflight, 4);
    assert_int_equal(el_metrics_inflight(), 7);
    t = render(NULL);
    expect_lines(t, "einlass_inflight 7", "einlass_mode{mode=\"auto\"} 1",
                 "einlass_store_info{store=\"memory\"} 1");
    free(t);
}

static void test_counters_summed_over_workers(void **state)
{
    (void)state;
    reset();
    for (int i = 0; i < 3; i++)
        el_metrics_count(0, EL_DECISION_FORWARD);
    for (int i = 0; i < 4; i++)
        el_metrics_count(7, EL_DECISION_FORWARD);
    el_metrics_count(EL_MAX_WORKERS - 1, EL_DECISION_FORWARD);
    el_metrics_count(2, EL_DECISION_WAIT);
    el_metrics_count(3, EL_DECISION_WAIT);
    el_metrics_count(1, EL_DECISION_REJECT);
    for (int i = 0; i < 5; i++)
        el_metrics_count(i, EL_DECISION_ERROR);
    atomic_store(&el_metrics_workers[0].connections, 2);
    atomic_store(&el_metrics_workers[9].connections, 5);
    atomic_store(&el_metrics_global.reloads_ok, 3);
    atomic_store(&el_metrics_global.reloads_failed, 1);
    atomic_store(&el_metrics_global.room_state_changes, 6);
    char *t = render(NULL);
    expect_lines(t, "einlass_requests_total{decision=\"forward\"} 8",
                 "einlass_requests_total{decision=\"wait\"} 2",
                 "einlass_requests_total{decision=\"bypass\"} 0",
                 "einlass_requests_total{decision=\"reject\"} 1",
                 "einlass_requests_total{decision=\"error\"} 5", "einlass_connections 7",
                 "einlass_config_reloads_total{result=\"ok\"} 3",
                 "einlass_config_reloads_total{result=\"failed\"} 1",
                 "einlass_room_state_changes_total 6");
    free(t);
}

static void test_histogram_cumulative(void **state)
{
    (void)state;
    reset();
    /* ms samples: 3 (<=5ms), 5 (exactly the 5ms bound), 40 (<=50ms),
     * 250 (<=300ms), 250 on another worker, 4000 (<=5s), 60000 (+Inf). */
    el_metrics_observe(0, 3);
    el_metrics_observe(0, 5);
    el_metrics_observe(1, 40);
    el_metrics_observe(1, 250);
    el_metrics_observe(2, 250);
    el_metrics_observe(3, 4000);
    el_metrics_observe(3, 60000);
    el_metrics_observe(3, NAN); /* ignored */
    el_metrics_observe(-1, 10); /* ignored: no such worker */
    el_metrics_observe(EL_MAX_WORKERS, 10);
    el_metrics_observe(4, -2); /* clamped to 0: first bucket, adds 0 to the sum */
    char *t = render(NULL);
    static const struct {
        const char *le;
        unsigned n;
    } want[] = {
        {"0.005", 3}, {"0.01", 3}, {"0.025", 3}, {"0.05", 4}, {"0.1", 4},
        {"0.2", 4},   {"0.3", 6},  {"0.5", 6},   {"0.75", 6}, {"1", 6},
        {"2.5", 6},   {"5", 7},    {"10", 7},    {"30", 7},   {"+Inf", 8},
    };
    assert_int_equal(EL_ARRAY_LEN(want), EL_LATENCY_BUCKETS + 1);
    for (size_t i = 0; i < EL_ARRAY_LEN(want); i++) {
        char series[96];
        snprintf(series, sizeof(series), "einlass_backend_latency_seconds_bucket{le=\"%s\"}",
                 want[i].le);
        double v = num_of(t, series);
        if (v != want[i].n) fail_msg("%s: got %g want %u", series, v, want[i].n);
    }
    assert_int_equal(num_of(t, "einlass_backend_latency_seconds_count"), 8);
    double sum = num_of(t, "einlass_backend_latency_seconds_sum");
    assert_true(fabs(sum - (3 + 5 + 40 + 250 + 250 + 4000 + 60000) / 1000.0) < 1e-9);
    /* Buckets are in increasing le order and never decrease. */
    const char *p = t;
    double prev_le = -1, prev_n = -1;
    while ((p = strstr(p, "einlass_backend_latency_seconds_bucket{le=\"")) != NULL) {
        p += strlen("einlass_backend_latency_seconds_bucket{le=\"");
        double le = strncmp(p, "+Inf", 4) == 0 ? INFINITY : strtod(p, NULL);
        double n = strtod(strchr(p, ' ') + 1, NULL);
        assert_true(le > prev_le);
        assert_true(n >= prev_n);
        prev_le = le;
        prev_n = n;
    }
    assert_true(isinf(prev_le));
    free(t);
}

static void test_fmt_num(void **state)
{
    (void)state;
    char b[EL_METRICS_NUM_LEN];
    assert_string_equal(el_metrics_fmt_num(b, 0), "0");
    assert_string_equal(el_metrics_fmt_num(b, -0.0), "0");
    assert_string_equal(el_metrics_fmt_num(b, 10), "10");
    assert_string_equal(el_metrics_fmt_num(b, -3), "-3");
    assert_string_equal(el_metrics_fmt_num(b, 1234567890123.0), "1234567890123");
    assert_string_equal(el_metrics_fmt_num(b, 0.1), "0.1");
    assert_string_equal(el_metrics_fmt_num(b, 12.5), "12.5");
    assert_string_equal(el_metrics_fmt_num(b, 0.005), "0.005");
    assert_string_equal(el_metrics_fmt_num(b, NAN), "NaN");
    assert_string_equal(el_metrics_fmt_num(b, INFINITY), "+Inf");
    assert_string_equal(el_metrics_fmt_num(b, -INFINITY), "-Inf");
    assert_true(strtod(el_metrics_fmt_num(b, 0.1 + 0.2), NULL) == 0.1 + 0.2);
    assert_true(strtod(el_metrics_fmt_num(b, 1e300), NULL) == 1e300);
    assert_true(strtod(el_metrics_fmt_num(b, 1.0 / 3), NULL) == 1.0 / 3);
    /* A decimal-comma locale (if installed) must not leak into the output. */
    if (setlocale(LC_NUMERIC, "de_DE.UTF-8") != NULL) {
        assert_string_equal(el_metrics_fmt_num(b, 12.5), "12.5");
        setlocale(LC_NUMERIC, "C");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contract_names),
        cmocka_unit_test(test_status_off_and_null),
        cmocka_unit_test(test_counters_summed_over_workers),
        cmocka_unit_test(test_histogram_cumulative),
        cmocka_unit_test(test_fmt_num),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
