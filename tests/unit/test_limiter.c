/* test_limiter.c - the backend admission limit: the fast path, hand-over to
 * waiters in lane and arrival order, cancellation, limit changes, and
 * threads hammering acquire/release (the count never passes the limit, and
 * waiters are granted in arrival order within their lane). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "einlass/limiter.h"

/* A waiter of the single-threaded tests: grant() appends its name to log. */
struct waiter {
    struct el_limiter_wait wt; /* first: the grant callback casts back */
    char name;
    bool granted;
};

static char order[64];
static size_t norder;

static void log_grant(struct el_limiter_wait *wt)
{
    struct waiter *w = (struct waiter *)wt;
    w->granted = true;
    order[norder++] = w->name;
    order[norder] = 0;
}

static void waiter_init(struct waiter *w, char name)
{
    memset(w, 0, sizeof(*w));
    w->name = name;
    w->wt.grant = log_grant;
}

static void reset_log(void)
{
    norder = 0;
    order[0] = 0;
}

static void test_fast_path_counts_and_queues_above_limit(void **state)
{
    (void)state;
    reset_log();
    struct el_limiter *l = el_limiter_new(2);
    struct waiter a, b, c;
    waiter_init(&a, 'a');
    waiter_init(&b, 'b');
    waiter_init(&c, 'c');
    assert_int_equal(el_limiter_acquire(l, &a.wt, EL_LIMITER_NORMAL), EL_LIMITER_GRANTED);
    assert_int_equal(el_limiter_acquire(l, &b.wt, EL_LIMITER_NORMAL), EL_LIMITER_GRANTED);
    assert_int_equal(el_limiter_acquire(l, &c.wt, EL_LIMITER_NORMAL), EL_LIMITER_QUEUED);
    assert_false(c.granted);
    struct el_limiter_stats st;
    el_limiter_stats(l, &st);
    assert_int_equal(st.limit, 2);
    assert_int_equal(st.inflight, 2);
    assert_int_equal(st.queued, 1);
    assert_int_equal(st.granted_total, 2);
    assert_int_equal(st.queued_total, 1);
    el_limiter_release(l); /* hand-over: c holds the slot, inflight stays */
    assert_true(c.granted);
    el_limiter_stats(l, &st);
    assert_int_equal(st.inflight, 2);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.granted_total, 3);
    el_limiter_release(l);
    el_limiter_release(l);
    el_limiter_stats(l, &st);
    assert_int_equal(st.inflight, 0);
    el_limiter_free(l);
}

static void test_priority_lane_first_fifo_within_lane(void **state)
{
    (void)state;
    reset_log();
    struct el_limiter *l = el_limiter_new(1);
    struct waiter hold, w[5];
    const char *names = "ABpCq"; /* capitals normal, small letters priority */
    waiter_init(&hold, 'h');
    assert_int_equal(el_limiter_acquire(l, &hold.wt, EL_LIMITER_NORMAL), EL_LIMITER_GRANTED);
    for (int i = 0; i < 5; i++) {
        waiter_init(&w[i], names[i]);
        enum el_limiter_lane lane =
            names[i] >= 'a' ? EL_LIMITER_PRIO : EL_LIMITER_NORMAL;
        assert_int_equal(el_limiter_acquire(l, &w[i].wt, lane), EL_LIMITER_QUEUED);
    }
    for (int i = 0; i < 5; i++) el_limiter_release(l);
    assert_string_equal(order, "pqABC");
    el_limiter_release(l);
    struct el_limiter_stats st;
    el_limiter_stats(l, &st);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.granted_total, 6);
    el_limiter_free(l);
}

static void test_handover_keeps_the_slot_for_the_head(void **state)
{
    (void)state;
    reset_log();
    struct el_limiter *l = el_limiter_new(1);
    struct waiter a, b, c;
    waiter_init(&a, 'a');
    waiter_init(&b, 'b');
    waiter_init(&c, 'c');
    assert_int_equal(el_limiter_acquire(l, &a.wt, EL_LIMITER_NORMAL), EL_LIMITER_GRANTED);
    assert_int_equal(el_limiter_acquire(l, &b.wt, EL_LIMITER_NORMAL), EL_LIMITER_QUEUED);
    el_limiter_release(l); /* b holds it now */
    assert_int_equal(el_limiter_acquire(l, &c.wt, EL_LIMITER_NORMAL), EL_LIMITER_QUEUED);
    assert_string_equal(order, "b");
    el_limiter_release(l);
    assert_string_equal(order, "bc");
    el_limiter_release(l);
    el_limiter_free(l);
}

static void test_cancel_queued_and_granted(void **state)
{
    (void)state;
    reset_log();
    struct el_limiter *l = el_limiter_new(1);
    struct waiter a, b, c;
    waiter_init(&a, 'a');
    waiter_init(&b, 'b');
    waiter_init(&c, 'c');
    assert_int_equal(el_limiter_acquire(l, &a.wt, EL_LIMITER_NORMAL), EL_LIMITER_GRANTED);
    assert_int_equal(el_limiter_acquire(l, &b.wt, EL_LIMITER_NORMAL), EL_LIMITER_QUEUED);
    assert_int_equal(el_limiter_acquire(l, &c.wt, EL_LIMITER_NORMAL), EL_LIMITER_QUEUED);
    assert_true(el_limiter_cancel(l, &b.wt, true)); /* b timed out: holds nothing */
    assert_false(el_limiter_cancel(l, &b.wt, true)); /* twice is harmless */
    el_limiter_release(l);                           /* goes to c, not b */
    assert_string_equal(order, "c");
    assert_false(el_limiter_cancel(l, &c.wt, false)); /* granted: c holds the slot */
    struct el_limiter_stats st;
    el_limiter_stats(l, &st);
    assert_int_equal(st.inflight, 1);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.timeouts_total, 1);
    el_limiter_release(l);
    el_limiter_stats(l, &st);
    assert_int_equal(st.inflight, 0);
    el_limiter_free(l);
}

static void test_set_limit_raises_at_once_lowers_on_release(void **state)
{
    (void)state;
    reset_log();
    struct el_limiter *l = el_limiter_new(1);
    struct waiter h, w[4];
    waiter_init(&h, 'h');
    assert_int_equal(el_limiter_acquire(l, &h.wt, EL_LIMITER_NORMAL), EL_LIMITER_GRANTED);
    for (int i = 0; i < 4; i++) {
        waiter_init(&w[i], (char)('A' + i));
        assert_int_equal(el_limiter_acquire(l, &w[i].wt, EL_LIMITER_NORMAL), EL_LIMITER_QUEUED);
    }
    el_limiter_set_limit(l, 4); /* three new slots, one kept for priority: A and B at once */
    assert_string_equal(order, "AB");
    struct el_limiter_stats st;
    el_limiter_stats(l, &st);
    assert_int_equal(st.inflight, 3);
    assert_int_equal(st.queued, 2);
    el_limiter_set_limit(l, 1); /* lowered: nothing taken back, nothing handed on */
    el_limiter_release(l);
    el_limiter_release(l);
    assert_string_equal(order, "AB");
    el_limiter_stats(l, &st);
    assert_int_equal(st.inflight, 1);
    el_limiter_release(l); /* now at the limit again: hand-over */
    assert_string_equal(order, "ABC");
    el_limiter_set_limit(l, 0); /* unlimited: everyone goes */
    assert_string_equal(order, "ABCD");
    el_limiter_stats(l, &st);
    assert_int_equal(st.inflight, 2);
    assert_int_equal(st.queued, 0);
    struct waiter x;
    waiter_init(&x, 'x');
    assert_int_equal(el_limiter_acquire(l, &x.wt, EL_LIMITER_NORMAL), EL_LIMITER_GRANTED);
    for (int i = 0; i < 3; i++) el_limiter_release(l);
    el_limiter_stats(l, &st);
    assert_int_equal(st.inflight, 0);
    el_limiter_free(l);
}

/* From EL_LIMITER_RESERVE_FROM slots on, the normal lane leaves one for the
 * priority lane: a cancellation finds it free with normal requests queued. */
static void test_normal_lane_leaves_a_slot_for_priority(void **state)
{
    (void)state;
    reset_log();
    struct el_limiter *l = el_limiter_new(EL_LIMITER_RESERVE_FROM);
    int cap = EL_LIMITER_RESERVE_FROM - EL_LIMITER_RESERVED;
    struct waiter n[8], p1, p2;
    for (int i = 0; i < cap; i++) {
        waiter_init(&n[i], 'n');
        assert_int_equal(el_limiter_acquire(l, &n[i].wt, EL_LIMITER_NORMAL), EL_LIMITER_GRANTED);
    }
    waiter_init(&n[cap], 'N');
    assert_int_equal(el_limiter_acquire(l, &n[cap].wt, EL_LIMITER_NORMAL), EL_LIMITER_QUEUED);
    waiter_init(&p1, 'p');
    assert_int_equal(el_limiter_acquire(l, &p1.wt, EL_LIMITER_PRIO), EL_LIMITER_GRANTED);
    waiter_init(&p2, 'P');
    assert_int_equal(el_limiter_acquire(l, &p2.wt, EL_LIMITER_PRIO), EL_LIMITER_QUEUED);
    struct el_limiter_stats st;
    el_limiter_stats(l, &st);
    assert_int_equal(st.inflight, EL_LIMITER_RESERVE_FROM);
    el_limiter_release(l); /* the priority lane first, to the full limit */
    assert_string_equal(order, "P");
    el_limiter_release(l); /* the normal lane only below its cap */
    assert_string_equal(order, "P");
    el_limiter_release(l);
    assert_string_equal(order, "PN");
    el_limiter_stats(l, &st);
    assert_int_equal(st.inflight, cap);
    assert_int_equal(st.queued, 0);
    for (int i = 0; i < cap; i++) el_limiter_release(l);
    el_limiter_stats(l, &st);
    assert_int_equal(st.inflight, 0);
    /* below EL_LIMITER_RESERVE_FROM nothing is kept back */
    el_limiter_set_limit(l, EL_LIMITER_RESERVE_FROM - 1);
    for (int i = 0; i < EL_LIMITER_RESERVE_FROM - 1; i++)
        assert_int_equal(el_limiter_acquire(l, &n[i].wt, EL_LIMITER_NORMAL), EL_LIMITER_GRANTED);
    for (int i = 0; i < EL_LIMITER_RESERVE_FROM - 1; i++) el_limiter_release(l);
    el_limiter_free(l);
}

/* ---- threads ---- */

struct hammer {
    struct el_limiter *l;
    int limit;
    int rounds;
    int id;
};

struct tnode {
    struct el_limiter_wait wt;
    _Atomic bool granted;
};

static _Atomic int holding;     /* slots held by the hammering threads now */
static _Atomic int max_holding; /* the most ever held at once */
static _Atomic int fifo_breaks; /* a lane granted out of arrival order */
static uint64_t last_seq[2];    /* per lane, written under the limiter's lock */
static bool seen[2];

static void thread_grant(struct el_limiter_wait *wt)
{
    /* Under the limiter's lock: arrival order within the lane. */
    if (seen[wt->lane] && wt->seq <= last_seq[wt->lane]) atomic_fetch_add(&fifo_breaks, 1);
    seen[wt->lane] = true;
    last_seq[wt->lane] = wt->seq;
    atomic_store_explicit(&((struct tnode *)wt)->granted, true, memory_order_release);
}

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    struct tnode n;
    memset(&n, 0, sizeof(n));
    n.wt.grant = thread_grant;
    for (int i = 0; i < h->rounds; i++) {
        atomic_store(&n.granted, false);
        enum el_limiter_lane lane = (i + h->id) % 3 == 0 ? EL_LIMITER_PRIO : EL_LIMITER_NORMAL;
        if (el_limiter_acquire(h->l, &n.wt, lane) == EL_LIMITER_QUEUED) {
            while (!atomic_load_explicit(&n.granted, memory_order_acquire)) sched_yield();
        }
        int now = atomic_fetch_add(&holding, 1) + 1;
        int m = atomic_load(&max_holding);
        while (now > m && !atomic_compare_exchange_weak(&max_holding, &m, now)) {
        }
        if (i % 7 == 0) sched_yield(); /* hold it a while now and then */
        atomic_fetch_sub(&holding, 1);
        el_limiter_release(h->l);
    }
    return NULL;
}

static void hammer(int nthreads, int limit, int rounds)
{
    struct el_limiter *l = el_limiter_new(limit);
    atomic_store(&holding, 0);
    atomic_store(&max_holding, 0);
    atomic_store(&fifo_breaks, 0);
    memset(seen, 0, sizeof(seen));
    pthread_t t[8];
    struct hammer h[8];
    for (int i = 0; i < nthreads; i++) {
        h[i] = (struct hammer){l, limit, rounds, i};
        assert_int_equal(pthread_create(&t[i], NULL, hammer_main, &h[i]), 0);
    }
    for (int i = 0; i < nthreads; i++) pthread_join(t[i], NULL);
    struct el_limiter_stats st;
    el_limiter_stats(l, &st);
    assert_int_equal(st.inflight, 0);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.granted_total, (uint64_t)nthreads * (uint64_t)rounds);
    assert_true(atomic_load(&max_holding) <= limit);
    assert_true(atomic_load(&max_holding) >= 1);
    assert_true(st.queued_total > 0); /* the slow path ran too */
    assert_int_equal(atomic_load(&fifo_breaks), 0);
    el_limiter_free(l);
}

static void test_two_threads_never_exceed_limit_one(void **state)
{
    (void)state;
    hammer(2, 1, 200000);
}

static void test_four_threads_never_exceed_limit_two(void **state)
{
    (void)state;
    hammer(4, 2, 100000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fast_path_counts_and_queues_above_limit),
        cmocka_unit_test(test_priority_lane_first_fifo_within_lane),
        cmocka_unit_test(test_handover_keeps_the_slot_for_the_head),
        cmocka_unit_test(test_cancel_queued_and_granted),
        cmocka_unit_test(test_set_limit_raises_at_once_lowers_on_release),
        cmocka_unit_test(test_normal_lane_leaves_a_slot_for_priority),
        cmocka_unit_test(test_two_threads_never_exceed_limit_one),
        cmocka_unit_test(test_four_threads_never_exceed_limit_two),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
