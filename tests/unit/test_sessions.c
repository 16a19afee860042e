/* test_sessions.c - the active-pass count (sessions.h): linear counting
 * stays within a few percent of the true number of distinct pass ids up to
 * the bitmap's size, a pass seen by two workers counts once, a take clears
 * what it counted, and claims add up across workers without being cleared. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "einlass/sessions.h"

static void test_estimate_follows_distinct_ids(void **state)
{
    (void)state;
    static struct el_sessions a;
    struct el_sessions *one[] = {&a};
    const unsigned ns[] = {1, 10, 100, 1000, 5000, 8000};
    uint64_t id = 12345;
    for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
        for (unsigned i = 0; i < ns[k]; i++) {
            id += 1 + (uint64_t)(i % 7); /* sequential-ish, as session ids are */
            for (int rep = 0; rep < 3; rep++) el_sessions_seen(&a, id); /* 3 requests each */
        }
        struct el_sessions_count c;
        el_sessions_take(one, 1, &c);
        assert_int_equal(c.reqs, 3u * ns[k]);
        double err = fabs(c.active - ns[k]) / ns[k];
        assert_true(err < (ns[k] < 100 ? 0.1 : 0.05));
        el_sessions_take(one, 1, &c); /* cleared */
        assert_true(c.active == 0 && c.reqs == 0);
    }
}

static void test_a_pass_on_two_workers_counts_once_claims_add_up(void **state)
{
    (void)state;
    static struct el_sessions a, b;
    struct el_sessions *two[] = {&a, &b};
    for (uint64_t id = 1; id <= 200; id++) {
        el_sessions_seen(&a, id);
        el_sessions_seen(&b, id);
    }
    el_sessions_claimed(&a);
    el_sessions_claimed(&b);
    el_sessions_claimed(&b);
    struct el_sessions_count c;
    el_sessions_take(two, 2, &c);
    assert_true(fabs(c.active - 200) < 10);
    assert_int_equal(c.reqs, 400);
    assert_int_equal(c.claims, 3);
    el_sessions_take(two, 2, &c);
    assert_int_equal(c.claims, 3); /* claims are a running total */
    assert_true(el_sessions_estimate(8192, 8192) == 0);
    assert_true(el_sessions_estimate(0, 8192) > 8192); /* saturated: finite */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_estimate_follows_distinct_ids),
        cmocka_unit_test(test_a_pass_on_two_workers_counts_once_claims_add_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
