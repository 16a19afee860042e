/* test_fallback.c - the fallback's virtual head, driven by numbers: it moves
 * at the rate in ticket-number space from the figures Redis taught it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "einlass/fallback.h"

/* A room numbered from Redis time x 1024 (about 1.8e15, above 2^50): H was
 * a double holding the ticket number itself, whose steps there are 0.25, so
 * 0.4 admissions a tick became 0.5 (the SIGSTOP fault test measured 6.2/s
 * at a configured 4/s). H must move exactly rate x time however large the
 * numbers. */
static void test_head_moves_at_the_rate_at_large_ticket_numbers(void **state)
{
    const uint64_t head = 1845000000000123ull;
    struct el_fallback *f = el_fallback_new();
    struct el_store_stats st = {.head = {head, head}, .tail = {head + 100, head},
                                .claim = {head, head}, .lane_waiting = {100, 0},
                                .instances = 2};
    uint64_t now = 1000000;
    el_fallback_learn(f, &st, now);
    el_fallback_begin(f, now);
    for (int i = 0; i < 11; i++) { /* 1.1 s at 4/s, a tick every 100 ms: H = head + 4.4 */
        now += 100;
        el_fallback_tick(f, 4.0, now);
    }
    struct el_place p;
    el_fallback_check(f, 0, head + 3, now, &p);
    assert_int_equal(p.state, EL_PLACE_ADMITTED);
    el_fallback_check(f, 0, head + 4, now, &p);
    assert_int_equal(p.state, EL_PLACE_WAITING);
    assert_int_equal(p.position, 1);
    el_fallback_check(f, 0, head + 9, now, &p);
    assert_int_equal(p.position, 5); /* 4.6 live numbers ahead, rounded down, + 1 */
    uint64_t skip[2];
    el_fallback_skip(f, skip);
    assert_true(skip[0] == head + 4);
    assert_true(el_fallback_ahead(f) == 96);
    el_fallback_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_moves_at_the_rate_at_large_ticket_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
