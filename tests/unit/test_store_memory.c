/* test_store_memory.c - the memory store on virtual time: the shared
 * behavioural cases (store_cases.h) plus metering, liveness generations and
 * abandonment driven by now_ms numbers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "einlass/store.h"

static uint64_t drv_now = 1000000;

static struct el_store *drv_open_keep(int poll_s, int keep_ms, int claim_ms)
{
    struct el_store_params p = {.room = "t", .poll_s = poll_s, .keep_ms = keep_ms,
                                .claim_ms = claim_ms};
    return el_store_memory_new(&p);
}

static struct el_store *drv_open(int poll_s)
{
    return drv_open_keep(poll_s, 0, 0);
}

static void drv_wait(bool *done)
{
    assert_true(*done); /* the memory store calls back before the op returns */
}

static void drv_sleep(unsigned ms)
{
    drv_now += ms;
}

#include "store_cases.h"

/* Admit by advancing every 100 ms for ms at rate; returns admissions. */
static uint64_t meter_for(struct el_store *s, double rate, uint64_t ms)
{
    uint64_t before = advance_ok(s, rate).waiting;
    for (uint64_t t = 0; t < ms; t += 100) {
        drv_now += 100;
        advance_ok(s, rate);
    }
    return before - advance_ok(s, rate).waiting;
}

static void test_rate_keeps_fraction(void **state)
{
    struct el_store *s = drv_open(60);
    for (int i = 0; i < 100; i++) join_ok(s, 0);
    /* 2.5/s in 100 ms steps is 0.25 a step: only the kept fraction admits */
    assert_int_equal(meter_for(s, 2.5, 4000), 10);
    assert_int_equal(meter_for(s, 10, 2000), 20);
    s->ops->free(s);
}

static void test_long_pause_no_burst(void **state)
{
    struct el_store *s = drv_open(3600);
    for (int i = 0; i < 1000; i++) join_ok(s, 0);
    advance_ok(s, 10);
    drv_now += 60000;
    struct el_store_stats st = advance_ok(s, 10);
    assert_int_equal(st.waiting, 1000 - 20); /* 2 s at most, not 60 */
    s->ops->free(s);
}

static void test_no_banking_while_empty(void **state)
{
    struct el_store *s = drv_open(60);
    advance_ok(s, 10);
    for (int i = 0; i < 50; i++) {
        drv_now += 100;
        advance_ok(s, 10);
    }
    for (int i = 0; i < 5; i++) join_ok(s, 0);
    drv_now += 100;
    assert_int_equal(advance_ok(s, 10).waiting, 4);
    s->ops->free(s);
}

static void test_measured_rate(void **state)
{
    struct el_store *s = drv_open(3600);
    for (int i = 0; i < 500; i++) join_ok(s, 0);
    assert_true(advance_ok(s, 10).rate == 0);
    meter_for(s, 10, 10000);
    double r = advance_ok(s, 10).rate;
    assert_true(r > 9.5 && r < 10.5);
    struct el_place p = join_ok(s, 0);
    assert_true(p.rate > 9.5 && p.rate < 10.5);
    s->ops->free(s);
}

static void test_live_within_generation(void **state)
{
    struct el_store *s = drv_open(1);
    advance_ok(s, 0);
    struct el_place a = join_ok(s, 0);
    drv_now += 5900; /* one roll at 3 s: still in prev */
    assert_int_equal(check_ok(s, 0, a.num).state, EL_PLACE_WAITING);
    drv_now += 2900; /* checked in the last generation: still live */
    assert_int_equal(check_ok(s, 0, a.num).state, EL_PLACE_WAITING);
    drv_now += 6100; /* two generations without a check */
    assert_int_equal(check_ok(s, 0, a.num).state, EL_PLACE_GONE);
    s->ops->free(s);
}

static void test_admitted_survives_roll(void **state)
{
    struct el_store *s = drv_open(1);
    advance_ok(s, 0);
    struct el_place a = join_ok(s, 0);
    drv_now += 2900;
    check_ok(s, 0, a.num);
    drv_now += 3000; /* a is reached just before it would fall out */
    admit(s, 1);
    drv_now += 2000; /* a roll later it comes for its pass */
    assert_int_equal(check_ok(s, 0, a.num).state, EL_PLACE_ADMITTED);
    s->ops->free(s);
}

static void test_configure_generation(void **state)
{
    struct el_store *s = drv_open(1);
    struct el_store_params p = {.room = "t", .poll_s = 10}; /* L = 30 s */
    el_store_memory_configure(s, &p);
    struct el_place a = join_ok(s, 0);
    drv_now += 20000;
    assert_int_equal(check_ok(s, 0, a.num).state, EL_PLACE_WAITING);
    s->ops->free(s);
}

static void test_release_credit(void **state)
{
    struct el_store *s = drv_open(60);
    for (int i = 0; i < 10; i++) join_ok(s, 0);
    advance_ok(s, 1);
    s->ops->release(s, fresh_id(), 600, drv_now);
    s->ops->release(s, fresh_id(), 600, drv_now);
    drv_now += 1000; /* 1 by rate + 2 credits */
    assert_int_equal(advance_ok(s, 1).waiting, 7);
    s->ops->free(s);
}

static void test_many_positions(void **state)
{
    struct el_store *s = drv_open(3600);
    uint64_t first = join_ok(s, 0).num;
    for (int i = 1; i < 200000; i++) join_ok(s, 0);
    for (int i = 0; i < 1000; i++) s->ops->release(s, fresh_id(), 600, drv_now);
    assert_int_equal(advance_ok(s, 0).waiting, 199000);
    assert_int_equal(check_ok(s, 0, first + 150000).position, 149001);
    assert_int_equal(check_ok(s, 0, first + 999).state, EL_PLACE_ADMITTED);
    s->ops->free(s);
}

/* Tickets carry the store's epoch; a ticket of another epoch (another
 * process's memory store, or Redis's before a switch back to memory) is not
 * this store's number: GONE, never somebody else's place. Epoch 0 (a cookie
 * from before epochs) is taken as this store's. */
static void test_ticket_of_another_epoch_is_gone(void **state)
{
    struct el_store *s = drv_open(60), *t = drv_open(60);
    struct el_place a = join_ok(s, 0), b = join_ok(s, 0);
    assert_true(a.epoch != 0 && a.epoch == b.epoch);
    assert_true(el_store_memory_epoch(s) == a.epoch);
    assert_true(el_store_memory_epoch(t) != a.epoch);
    struct result r = {0};
    s->ops->check(s, 0, b.num, a.epoch ^ 1, drv_now, place_cb, &r);
    assert_int_equal(r.place.state, EL_PLACE_GONE);
    r = (struct result){0};
    s->ops->check(s, 0, b.num, a.epoch, drv_now, place_cb, &r);
    assert_int_equal(r.place.position, 2);
    assert_int_equal(check_ok(s, 0, b.num).position, 2); /* epoch 0 */
    s->ops->free(s);
    t->ops->free(t);
}

/* The bitmaps follow the waiting span: once 8.4 million numbers were handed
 * out and reached, they are cut below the head, and a newcomer far up the
 * number line costs a few words, not a bitmap from 0 (before: 3 bits per
 * number ever handed out, 1.5 GB of process memory at 2^32). */
static void test_bitmaps_stay_small_however_many_numbers_were_used(void **state)
{
    struct el_store *s = drv_open(1);
    enum { N = (1 << 23) + 100000 };
    advance_ok(s, 0);
    for (int i = 0; i < N; i++) join_ok(s, 0);
    assert_true(el_store_memory_bitmap_bytes(s) >= 3 * (N / 8));
    drv_now += 1000;
    assert_int_equal(advance_ok(s, 1e8).waiting, 0); /* everyone reached */
    for (int i = 0; i < 3; i++) { /* the held admissions expire: claim_from = head */
        drv_now += 2000;
        advance_ok(s, 0);
    }
    assert_true(el_store_memory_bitmap_bytes(s) <= 65536);
    struct el_place p = join_ok(s, 0);
    assert_true(p.num == N);
    assert_int_equal(p.position, 1);
    assert_int_equal(check_ok(s, 0, N - 1).state, EL_PLACE_GONE); /* reached, never claimed */
    assert_int_equal(check_ok(s, 0, p.num).position, 1);
    assert_true(el_store_memory_bitmap_bytes(s) <= 65536);
    assert_int_equal(admit(s, 1).waiting, 0);
    assert_int_equal(check_ok(s, 0, p.num).state, EL_PLACE_ADMITTED);
    s->ops->free(s);
}

/* A release is forgotten after its ttl (the pass it names has expired by
 * then), and the memory store has no other instance to tell. */
static void test_release_once_within_ttl(void **state)
{
    struct el_store *s = drv_open(3600);
    for (int i = 0; i < 5; i++) join_ok(s, 0);
    advance_ok(s, 0);
    s->ops->release(s, 77, 10, drv_now);
    s->ops->release(s, 77, 10, drv_now + 9000);
    assert_int_equal(advance_ok(s, 0).waiting, 4);
    drv_now += 20000; /* the second release kept it until 19 s */
    s->ops->release(s, 77, 10, drv_now);
    assert_int_equal(advance_ok(s, 0).waiting, 3);
    struct result r = {0};
    s->ops->revoked(s, 0, revoked_cb, &r);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, 0);
    s->ops->free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_CASES,
        cmocka_unit_test(test_release_once_within_ttl),
        cmocka_unit_test(test_ticket_of_another_epoch_is_gone),
        cmocka_unit_test(test_bitmaps_stay_small_however_many_numbers_were_used),
        cmocka_unit_test(test_rate_keeps_fraction),
        cmocka_unit_test(test_long_pause_no_burst),
        cmocka_unit_test(test_no_banking_while_empty),
        cmocka_unit_test(test_measured_rate),
        cmocka_unit_test(test_live_within_generation),
        cmocka_unit_test(test_admitted_survives_roll),
        cmocka_unit_test(test_configure_generation),
        cmocka_unit_test(test_release_credit),
        cmocka_unit_test(test_many_positions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
