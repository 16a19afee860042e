/* test_fallback.c - the fallback's virtual head, driven by numbers: it moves
 * at the rate in ticket-number space from the figures Redis taught it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "einlass/fallback.h"

/* A fallback that learnt lane 0 at head with n waiting (of instances), and
 * began at now. */
static struct el_fallback *started(uint64_t head, uint64_t n, unsigned instances, uint64_t now)
{
    struct el_fallback *f = el_fallback_new();
    struct el_store_stats st = {.head = {head, head}, .tail = {head + n, head},
                                .claim = {head, head}, .lane_waiting = {n, 0},
                                .instances = instances};
    el_fallback_learn(f, &st, now);
    el_fallback_begin(f, now);
    return f;
}

/* A room numbered from Redis time x 1024 (about 1.8e15, above 2^50): H was
 * a double holding the ticket number itself, whose steps there are 0.25, so
 * 0.4 admissions a tick became 0.5 (the SIGSTOP fault test measured 6.2/s
 * at a configured 4/s). H must move exactly rate x time however large the
 * numbers. */
static void test_head_moves_at_the_rate_at_large_ticket_numbers(void **state)
{
    const uint64_t head = 1845000000000123ull;
    uint64_t now = 1000000;
    struct el_fallback *f = started(head, 100, 2, now);
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
    assert_int_equal(p.position, 6); /* head + 4 .. head + 8 ahead of it */
    uint64_t skip[2];
    el_fallback_skip(f, skip);
    assert_true(skip[0] == head + 4);
    assert_true(el_fallback_ahead(f) == 96);
    el_fallback_free(f);
}

/* While the virtual head stands between two tickets (a rate of 0.01/s moves
 * it by a twentieth in 5 s), the next ticket is at position 1 and the one
 * after it at 2: positions were counted from the fractional head, and both
 * showed 1 (found by test_readonly_answer_makes_einlass_ask_the_sentinels_again). */
static void test_positions_stay_distinct_while_the_head_is_between_tickets(void **state)
{
    (void)state;
    const uint64_t head = 1845000000000000ull;
    uint64_t now = 1000000;
    struct el_fallback *f = started(head, 2, 1, now);
    for (int i = 0; i < 50; i++) el_fallback_tick(f, 0.01, now += 100);
    struct el_place p0, p1;
    el_fallback_check(f, 0, head, now, &p0);
    el_fallback_check(f, 0, head + 1, now, &p1);
    assert_int_equal(p0.state, EL_PLACE_WAITING);
    assert_int_equal(p0.position, 1);
    assert_int_equal(p1.position, 2);
    el_fallback_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_head_moves_at_the_rate_at_large_ticket_numbers),
        cmocka_unit_test(test_positions_stay_distinct_while_the_head_is_between_tickets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
