/* store_cases.h - behavioural cases every store must pass, included by
 * test_store_memory.c and test_store_redis.c. The includer defines
 *   static struct el_store *drv_open(int poll_s);   a new, empty room
 *   static struct el_store *drv_open_keep(int poll_s, int keep_ms, int claim_ms);
 *                                                   ... keeping places keep_ms, holding
 *                                                   admissions claim_ms
 *   static void drv_wait(bool *done);               run until *done
 *   static uint64_t drv_now;                        now_ms passed to ops
 *   static void drv_sleep(unsigned ms);             let ms pass on the store's clock
 * The cases meter by release credits at rate 0, so they hold on any clock. */
#ifndef EL_TEST_STORE_CASES_H
#define EL_TEST_STORE_CASES_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "einlass/common.h"
#include "einlass/store.h"

struct result {
    bool done;               /* the callback ran */
    int calls;               /* how often it ran: must be 1 */
    int err;                 /* its err */
    struct el_place place;   /* join / check */
    struct el_store_stats st; /* advance */
    uint64_t ids[16];         /* revoked: the first ids */
    size_t nids;              /* ... how many */
    uint64_t next;            /* revoked: the next cursor */
};

static void place_cb(void *arg, int err, const struct el_place *p)
{
    struct result *r = arg;
    r->calls++;
    r->done = true;
    r->err = err;
    if (p) r->place = *p;
}

static void stats_cb(void *arg, int err, const struct el_store_stats *st)
{
    struct result *r = arg;
    r->calls++;
    r->done = true;
    r->err = err;
    if (st) r->st = *st;
}

static void revoked_cb(void *arg, int err, const uint64_t *ids, size_t n, uint64_t next)
{
    struct result *r = arg;
    r->calls++;
    r->done = true;
    r->err = err;
    r->nids = 0;
    for (size_t i = 0; i < n && r->nids < EL_ARRAY_LEN(r->ids); i++) r->ids[r->nids++] = ids[i];
    r->next = next;
}

static struct el_place join_ok(struct el_store *s, uint8_t lane)
{
    struct result r = {0};
    s->ops->join(s, lane, drv_now, place_cb, &r);
    drv_wait(&r.done);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.place.state, EL_PLACE_WAITING);
    return r.place;
}

static struct el_place check_ok(struct el_store *s, uint8_t lane, uint64_t num)
{
    struct result r = {0};
    s->ops->check(s, lane, num, 0, drv_now, place_cb, &r);
    drv_wait(&r.done);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.place.num, num);
    return r.place;
}

/* A pass id no case has released yet. */
static uint64_t fresh_id(void)
{
    static uint64_t next = 0x5eed0000;
    return next++;
}

static struct el_store_stats advance_in(struct el_store *s, struct el_meter_in in)
{
    struct result r = {0};
    s->ops->advance(s, &in, drv_now, stats_cb, &r);
    drv_wait(&r.done);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, 0);
    return r.st;
}

static struct el_store_stats advance_ok(struct el_store *s, double rate)
{
    return advance_in(s, (struct el_meter_in){.rate = rate});
}

/* The meter held (pause). */
static struct el_store_stats hold_ok(struct el_store *s)
{
    return advance_in(s, (struct el_meter_in){.hold = true});
}

/* One advance at rate 0 cancelling n release credits. */
static struct el_store_stats cancel_ok(struct el_store *s, double n)
{
    return advance_in(s, (struct el_meter_in){.cancel_credits = n});
}

static void release_n(struct el_store *s, int n)
{
    for (int i = 0; i < n; i++) s->ops->release(s, fresh_id(), 600, drv_now);
}

/* n release credits (n passes released), then one advance at rate 0: admits
 * exactly n if there are. */
static struct el_store_stats admit(struct el_store *s, int n)
{
    for (int i = 0; i < n; i++) s->ops->release(s, fresh_id(), 600, drv_now);
    return advance_ok(s, 0);
}

static void case_fifo_25(void **state)
{
    struct el_store *s = drv_open(60);
    uint64_t nums[25];
    advance_ok(s, 0); /* starts the meter's clock */
    for (int i = 0; i < 25; i++) {
        struct el_place p = join_ok(s, 0);
        nums[i] = p.num;
        assert_int_equal(p.position, (uint64_t)i + 1);
        assert_int_equal(p.waiting, (uint64_t)i + 1);
        if (i > 0) assert_int_equal(nums[i], nums[i - 1] + 1);
    }
    assert_int_equal(check_ok(s, 0, nums[24]).position, 25);
    assert_int_equal(check_ok(s, 0, nums[9]).position, 10);
    for (int i = 0; i < 25; i++) {
        struct el_store_stats st = admit(s, 1);
        assert_int_equal(st.waiting, 24 - (uint64_t)i);
        assert_int_equal(check_ok(s, 0, nums[i]).state, EL_PLACE_ADMITTED);
        if (i + 1 < 25) {
            struct el_place p = check_ok(s, 0, nums[i + 1]);
            assert_int_equal(p.state, EL_PLACE_WAITING);
            assert_int_equal(p.position, 1);
        }
        assert_int_equal(advance_ok(s, 0).admitted_total, (uint64_t)i + 1);
    }
    s->ops->free(s);
}

static void case_copied_ticket(void **state)
{
    struct el_store *s = drv_open(60);
    advance_ok(s, 0);
    struct el_place p = join_ok(s, 0);
    admit(s, 1);
    assert_int_equal(check_ok(s, 0, p.num).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ok(s, 0, p.num).state, EL_PLACE_USED);
    assert_int_equal(check_ok(s, 0, p.num).state, EL_PLACE_USED);
    assert_int_equal(advance_ok(s, 0).admitted_total, 1);
    s->ops->free(s);
}

static void case_priority_first(void **state)
{
    struct el_store *s = drv_open(60);
    advance_ok(s, 0);
    struct el_place a = join_ok(s, 0);
    struct el_place b = join_ok(s, 0);
    struct el_place v = join_ok(s, 1);
    assert_int_equal(v.lane, 1);
    assert_int_equal(v.position, 1);
    assert_int_equal(v.waiting, 3);
    assert_int_equal(check_ok(s, 0, a.num).position, 2);
    assert_int_equal(check_ok(s, 0, b.num).position, 3);
    assert_int_equal(check_ok(s, 1, v.num).position, 1);
    admit(s, 1);
    assert_int_equal(check_ok(s, 1, v.num).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ok(s, 0, a.num).position, 1);
    admit(s, 2);
    assert_int_equal(check_ok(s, 0, a.num).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ok(s, 0, b.num).state, EL_PLACE_ADMITTED);
    s->ops->free(s);
}

static void case_unknown_ticket(void **state)
{
    struct el_store *s = drv_open(60);
    struct el_place p = join_ok(s, 0);
    assert_int_equal(check_ok(s, 0, p.num + 1).state, EL_PLACE_GONE);
    assert_int_equal(check_ok(s, 1, p.num).state, EL_PLACE_GONE);
    assert_int_equal(check_ok(s, 0, 1000000).state, EL_PLACE_GONE);
    s->ops->free(s);
}

static void case_no_banking(void **state)
{
    struct el_store *s = drv_open(60);
    advance_ok(s, 0);
    struct el_store_stats st = admit(s, 5); /* nobody waits: the credits drop */
    assert_int_equal(st.waiting, 0);
    struct el_place a = join_ok(s, 0);
    struct el_place b = join_ok(s, 0);
    advance_ok(s, 0);
    assert_int_equal(check_ok(s, 0, a.num).state, EL_PLACE_WAITING);
    admit(s, 1);
    assert_int_equal(check_ok(s, 0, a.num).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ok(s, 0, b.num).position, 1);
    s->ops->free(s);
}

/* A ticket not seen for two generations is stepped over without taking an
 * admission. poll_s = 1: L = 3 s (real seconds on Redis: about 7 s). */
static void case_abandoned_skipped(void **state)
{
    struct el_store *s = drv_open(1);
    advance_ok(s, 0);
    struct el_place a = join_ok(s, 0), b = join_ok(s, 0), c = join_ok(s, 0);
    assert_int_equal(c.position, 3);
    for (int i = 0; i < 7; i++) { /* b and c come back every second, a never */
        drv_sleep(1000);
        assert_int_equal(check_ok(s, 0, b.num).state, EL_PLACE_WAITING);
        assert_int_equal(check_ok(s, 0, c.num).state, EL_PLACE_WAITING);
        advance_ok(s, 0);
    }
    assert_int_equal(check_ok(s, 0, c.num).position, 2);
    struct el_store_stats st = admit(s, 1);
    assert_int_equal(st.waiting, 1);
    assert_int_equal(check_ok(s, 0, b.num).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ok(s, 0, a.num).state, EL_PLACE_GONE);
    assert_int_equal(check_ok(s, 0, c.num).position, 1);
    s->ops->free(s);
}

/* Einlass-Release replayed (the issue: 6 admitted at once at 0.01/s): a pass
 * releases once; only another pass adds another credit. */
static void case_replayed_release_gets_no_credit(void **state)
{
    struct el_store *s = drv_open(60);
    advance_ok(s, 0);
    struct el_place p[4];
    for (int i = 0; i < 4; i++) p[i] = join_ok(s, 0);
    uint64_t id = fresh_id();
    for (int i = 0; i < 6; i++) s->ops->release(s, id, 600, drv_now);
    assert_int_equal(advance_ok(s, 0).waiting, 3);
    assert_int_equal(check_ok(s, 0, p[0].num).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ok(s, 0, p[1].num).state, EL_PLACE_WAITING);
    s->ops->release(s, id, 600, drv_now); /* later still: nothing */
    assert_int_equal(advance_ok(s, 0).waiting, 3);
    s->ops->release(s, fresh_id(), 600, drv_now); /* another pass: one more */
    assert_int_equal(advance_ok(s, 0).waiting, 2);
    assert_int_equal(check_ok(s, 0, p[1].num).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ok(s, 0, p[2].num).state, EL_PLACE_WAITING);
    s->ops->free(s);
}

/* The trial (poll_s 5, four in line): the second patient stopped
 * polling for 40 s and came back at position 4 of 4. Here poll_s = 1 (the
 * old generation, 3 s, dropped a ticket after 3..6 s), an absence of 7 s,
 * places kept 8 s: the patient is where they would have been. */
static void case_place_kept_across_long_absence(void **state)
{
    struct el_store *s = drv_open_keep(1, 8000, 8000);
    advance_ok(s, 0);
    struct el_place a = join_ok(s, 0), b = join_ok(s, 0), c = join_ok(s, 0);
    for (int i = 0; i < 7; i++) { /* a and c poll every second, b is in a pocket */
        drv_sleep(1000);
        assert_int_equal(check_ok(s, 0, a.num).state, EL_PLACE_WAITING);
        assert_int_equal(check_ok(s, 0, c.num).state, EL_PLACE_WAITING);
        advance_ok(s, 0);
    }
    struct el_place back = check_ok(s, 0, b.num);
    assert_int_equal(back.state, EL_PLACE_WAITING);
    assert_int_equal(back.position, 2);
    assert_int_equal(back.waiting, 3);
    assert_int_equal(check_ok(s, 0, c.num).position, 3);
    s->ops->free(s);
}

/* Past keep_place_s (at most twice it) the place is gone: a returns GONE and
 * b, who polled, moves up. keep 1 s: dropped by 2 s. */
static void case_place_lost_after_keep(void **state)
{
    struct el_store *s = drv_open_keep(1, 1000, 1000);
    advance_ok(s, 0);
    struct el_place a = join_ok(s, 0), b = join_ok(s, 0);
    for (int i = 0; i < 5; i++) {
        drv_sleep(500);
        assert_int_equal(check_ok(s, 0, b.num).state, EL_PLACE_WAITING);
        advance_ok(s, 0);
    }
    assert_int_equal(check_ok(s, 0, a.num).state, EL_PLACE_GONE);
    assert_int_equal(check_ok(s, 0, b.num).position, 1);
    assert_int_equal(advance_ok(s, 0).waiting, 1);
    s->ops->free(s);
}

/* "A patient whose turn came while away for 60-300 s lost the admission":
 * the meter reaches a, who is away; the admission is held claim_s, nobody
 * else takes it meanwhile, and a claims it on return. Claimed later than
 * 3 x poll_s after it was made: counted as a place kept. */
static void case_held_admission_claimed_within_claim(void **state)
{
    struct el_store *s = drv_open_keep(1, 8000, 6000);
    advance_ok(s, 0);
    struct el_place a = join_ok(s, 0), b = join_ok(s, 0);
    assert_int_equal(admit(s, 1).waiting, 1); /* a's turn, a is away */
    for (int i = 0; i < 7; i++) {
        drv_sleep(500);
        assert_int_equal(check_ok(s, 0, b.num).position, 1);
        advance_ok(s, 0);
    }
    assert_int_equal(check_ok(s, 0, a.num).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ok(s, 0, a.num).state, EL_PLACE_USED);
    struct el_store_stats st = advance_ok(s, 0);
    assert_int_equal(st.admitted_total, 1);
    assert_int_equal(st.kept_total, 1);
    assert_int_equal(st.unclaimed_total, 0);
    drv_sleep(3000); /* past claim_s: a claimed it, so no credit */
    assert_int_equal(check_ok(s, 0, b.num).state, EL_PLACE_WAITING);
    st = advance_ok(s, 0);
    assert_int_equal(st.unclaimed_total, 0);
    assert_int_equal(st.waiting, 1);
    s->ops->free(s);
}

/* Abandoned places cost nothing: a's admission, unclaimed after claim_s,
 * returns as credit and admits b, the next in line; a is GONE after it. */
static void case_unclaimed_admission_returns_as_credit(void **state)
{
    struct el_store *s = drv_open_keep(1, 4000, 2000);
    advance_ok(s, 0);
    struct el_place a = join_ok(s, 0), b = join_ok(s, 0), c = join_ok(s, 0);
    assert_int_equal(admit(s, 1).waiting, 2);
    drv_sleep(500);
    assert_int_equal(check_ok(s, 0, b.num).position, 1);
    assert_int_equal(check_ok(s, 0, c.num).position, 2);
    assert_int_equal(advance_ok(s, 0).waiting, 2); /* still held for a */
    drv_sleep(2000);
    struct el_store_stats st = advance_ok(s, 0); /* a's hold ends: b gets it */
    assert_int_equal(st.unclaimed_total, 1);
    assert_int_equal(st.waiting, 1);
    assert_int_equal(check_ok(s, 0, a.num).state, EL_PLACE_GONE);
    assert_int_equal(check_ok(s, 0, b.num).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ok(s, 0, c.num).position, 1);
    st = advance_ok(s, 0);
    assert_int_equal(st.admitted_total, 1);
    assert_int_equal(st.unclaimed_total, 1);
    s->ops->free(s);
}

/* A hold (pause): nobody is admitted, not even by release credits, which
 * wait for the next advance without hold. */
static void case_hold_keeps_credits(void **state)
{
    struct el_store *s = drv_open(60);
    advance_ok(s, 0);
    struct el_place a = join_ok(s, 0), b = join_ok(s, 0);
    for (int i = 0; i < 2; i++) s->ops->release(s, fresh_id(), 600, drv_now);
    struct el_store_stats st = hold_ok(s);
    assert_int_equal(st.waiting, 2);
    assert_int_equal(st.admitted_total, 0);
    assert_int_equal(check_ok(s, 0, a.num).state, EL_PLACE_WAITING);
    st = hold_ok(s);
    assert_int_equal(st.waiting, 2);
    st = advance_ok(s, 0); /* resumed: the two credits admit two */
    assert_int_equal(st.waiting, 0);
    assert_int_equal(check_ok(s, 0, a.num).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ok(s, 0, b.num).state, EL_PLACE_ADMITTED);
    s->ops->free(s);
}

/* A hold does not expire held admissions: a and b, reached before the pause
 * and away past claim_s, keep their admissions while the room is paused (a
 * claims its pass); the first advance after the resume expires b's, whose
 * credit lets c in. */
static void case_hold_keeps_held_admission_claimable(void **state)
{
    struct el_store *s = drv_open_keep(1, 8000, 1000);
    advance_ok(s, 0);
    struct el_place a = join_ok(s, 0), b = join_ok(s, 0), c = join_ok(s, 0);
    assert_int_equal(admit(s, 2).waiting, 1); /* a's and b's turn, both away */
    drv_sleep(1500);                          /* past claim_s, while paused */
    struct el_store_stats st = hold_ok(s);
    assert_int_equal(st.unclaimed_total, 0);
    assert_int_equal(st.waiting, 1);
    assert_int_equal(check_ok(s, 0, a.num).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ok(s, 0, c.num).position, 1);
    st = advance_ok(s, 0); /* resumed: b's admission returns as credit */
    assert_int_equal(st.unclaimed_total, 1);
    assert_int_equal(st.waiting, 0);
    assert_int_equal(check_ok(s, 0, b.num).state, EL_PLACE_GONE);
    assert_int_equal(check_ok(s, 0, c.num).state, EL_PLACE_ADMITTED);
    s->ops->free(s);
}

/* Credits to cancel consume release credits: 3 credits less 2 admit one;
 * 2 credits less 3 admit nobody and leave a debt of 1, which the next 2
 * credits pay before admitting one. A negative rate is no hold: it counts
 * as 0 and the credits admit. */
static void case_cancel_consumes_release_credits(void **state)
{
    struct el_store *s = drv_open(60);
    advance_ok(s, 0);
    struct el_place p[5];
    for (int i = 0; i < 5; i++) p[i] = join_ok(s, 0);
    release_n(s, 3);
    struct el_store_stats st = cancel_ok(s, 2);
    assert_int_equal(st.waiting, 4);
    assert_int_equal(check_ok(s, 0, p[0].num).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ok(s, 0, p[1].num).position, 1);
    release_n(s, 2);
    st = cancel_ok(s, 3);
    assert_int_equal(st.waiting, 4); /* in debt by 1 */
    assert_true(st.frac < -0.99 && st.frac > -1.01);
    st = advance_ok(s, 0); /* the debt stays without credits */
    assert_int_equal(st.waiting, 4);
    release_n(s, 2);
    st = advance_ok(s, 0); /* 2 credits: one pays the debt, one admits */
    assert_int_equal(st.waiting, 3);
    assert_int_equal(check_ok(s, 0, p[1].num).state, EL_PLACE_ADMITTED);
    release_n(s, 1);
    st = advance_ok(s, -5);
    assert_int_equal(st.waiting, 2);
    assert_int_equal(check_ok(s, 0, p[2].num).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ok(s, 0, p[3].num).position, 1);
    s->ops->free(s);
}

/* The debt is capped at EL_METER_MAX_DEBT (50): cancelling 1000 credits
 * with none at hand costs 50 credits later, not 1000. */
static void case_cancel_debt_is_capped(void **state)
{
    struct el_store *s = drv_open(60);
    advance_ok(s, 0);
    struct el_place a = join_ok(s, 0), b = join_ok(s, 0);
    struct el_store_stats st = cancel_ok(s, 1000);
    assert_int_equal(st.waiting, 2);
    assert_true(st.frac > -50.01 && st.frac < -49.99);
    release_n(s, 50);
    st = advance_ok(s, 0); /* the debt paid, nobody admitted */
    assert_int_equal(st.waiting, 2);
    release_n(s, 1);
    st = advance_ok(s, 0);
    assert_int_equal(st.waiting, 1);
    assert_int_equal(check_ok(s, 0, a.num).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ok(s, 0, b.num).position, 1);
    s->ops->free(s);
}

/* Hold comes first: a held advance with credits to cancel admits nobody,
 * keeps the release credits and the debt, and cancels nothing; on the
 * resume the debt of 1 takes one of the 3 credits, two are admitted. */
static void case_hold_with_cancel_keeps_credits(void **state)
{
    struct el_store *s = drv_open(60);
    advance_ok(s, 0);
    struct el_place p[3];
    for (int i = 0; i < 3; i++) p[i] = join_ok(s, 0);
    assert_int_equal(cancel_ok(s, 1).waiting, 3); /* a debt of 1 */
    release_n(s, 3);
    struct el_store_stats st = advance_in(s, (struct el_meter_in){.rate = 1000,
                                                                  .cancel_credits = 5,
                                                                  .hold = true});
    assert_int_equal(st.waiting, 3);
    assert_int_equal(st.admitted_total, 0);
    assert_true(st.frac < -0.99 && st.frac > -1.01);
    assert_int_equal(check_ok(s, 0, p[0].num).state, EL_PLACE_WAITING);
    st = advance_ok(s, 0); /* resumed */
    assert_int_equal(st.waiting, 1);
    assert_int_equal(check_ok(s, 0, p[0].num).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ok(s, 0, p[1].num).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ok(s, 0, p[2].num).position, 1);
    s->ops->free(s);
}

struct pre_result {
    bool done;
    int calls;
    int err;
    struct el_pre p;
};

static void pre_cb(void *arg, int err, const struct el_pre *p)
{
    struct pre_result *r = arg;
    r->calls++;
    r->done = true;
    r->err = err;
    if (p) r->p = *p;
}

static struct el_pre pre_ok(struct el_store *s, uint32_t ev, enum el_pre_op op, const uint8_t *seed)
{
    struct pre_result r = {0};
    s->ops->pre(s, ev, op, seed, 0, drv_now, pre_cb, &r);
    drv_wait(&r.done);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, 0);
    return r.p;
}

/* A pre-queue of 100 behind 3 waiting tickets (from n0, the room's first
 * number): numbered 0..99 before the draw; the draw reserves n0 + 3..102 (an unaligned block: bit by bit and whole
 * bytes), keeps the first seed against a second draw, joins after it come
 * behind, and the meter serves the 3, the block, then the later ones. */
static void case_prequeue_draw_reserves_a_block(void **state)
{
    struct el_store *s = drv_open(60);
    uint64_t n0 = advance_ok(s, 0).tail[0]; /* Redis numbers a new room from its clock */
    for (int i = 0; i < 3; i++) join_ok(s, 0);
    for (uint64_t i = 0; i < 100; i++) {
        struct el_pre p = pre_ok(s, 7, EL_PRE_JOIN, NULL);
        assert_false(p.drawn);
        assert_int_equal(p.i, i);
        assert_int_equal(p.n, i + 1);
    }
    assert_int_equal(pre_ok(s, 8, EL_PRE_READ, NULL).n, 0); /* another event: its own */
    struct el_pre r = pre_ok(s, 7, EL_PRE_READ, NULL);
    assert_false(r.drawn);
    assert_int_equal(r.n, 100);
    uint8_t seed[EL_PRE_SEED_LEN], other[EL_PRE_SEED_LEN];
    for (int i = 0; i < EL_PRE_SEED_LEN; i++) {
        seed[i] = (uint8_t)(i * 5 + 1);
        other[i] = (uint8_t)(255 - i);
    }
    struct el_pre d = pre_ok(s, 7, EL_PRE_DRAW, seed);
    assert_true(d.drawn);
    assert_true(d.shuffled);
    assert_int_equal(d.base, n0 + 3);
    assert_int_equal(d.n, 100);
    assert_memory_equal(d.seed, seed, EL_PRE_SEED_LEN);
    struct el_pre d2 = pre_ok(s, 7, EL_PRE_DRAW, other); /* another instance: the first wins */
    assert_int_equal(d2.base, n0 + 3);
    assert_int_equal(d2.n, 100);
    assert_memory_equal(d2.seed, seed, EL_PRE_SEED_LEN);
    struct el_pre late = pre_ok(s, 7, EL_PRE_JOIN, NULL); /* after the draw: no number */
    assert_true(late.drawn);
    assert_int_equal(late.n, 100);
    for (uint64_t k = 0; k < 100; k++) {
        struct el_place p = check_ok(s, 0, n0 + 3 + k);
        assert_int_equal(p.state, EL_PLACE_WAITING);
        assert_int_equal(p.position, 4 + k);
    }
    struct el_place after = join_ok(s, 0);
    assert_int_equal(after.num, n0 + 103);
    assert_int_equal(after.position, 104);
    struct el_store_stats st = admit(s, 3);
    assert_int_equal(st.head[0], n0 + 3);
    assert_int_equal(pre_ok(s, 7, EL_PRE_READ, NULL).head, n0 + 3);
    st = admit(s, 100);
    assert_int_equal(st.head[0], n0 + 103);
    assert_int_equal(st.waiting, 1);
    assert_int_equal(check_ok(s, 0, n0 + 50).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ok(s, 0, n0 + 103).state, EL_PLACE_WAITING);
    assert_true(pre_ok(s, 7, EL_PRE_READ, NULL).head >= n0 + 103); /* drained */
    s->ops->free(s);
}

/* A draw without a seed (a cancelled event) keeps arrival order; an empty
 * pre-queue reserves nothing. */
static void case_prequeue_unseeded_and_empty(void **state)
{
    struct el_store *s = drv_open(60);
    uint64_t n0 = advance_ok(s, 0).tail[0];
    pre_ok(s, 1, EL_PRE_JOIN, NULL);
    struct el_pre d = pre_ok(s, 1, EL_PRE_DRAW, NULL);
    assert_true(d.drawn);
    assert_false(d.shuffled);
    assert_int_equal(d.n, 1);
    assert_int_equal(d.base, n0);
    struct el_pre e = pre_ok(s, 2, EL_PRE_DRAW, NULL);
    assert_true(e.drawn);
    assert_int_equal(e.n, 0);
    assert_int_equal(e.base, n0 + 1);
    assert_int_equal(join_ok(s, 0).num, n0 + 1);
    s->ops->free(s);
}

#define STORE_CASES                                                                                \
    cmocka_unit_test(case_fifo_25), cmocka_unit_test(case_copied_ticket),                         \
        cmocka_unit_test(case_priority_first), cmocka_unit_test(case_unknown_ticket),             \
        cmocka_unit_test(case_no_banking), cmocka_unit_test(case_abandoned_skipped),              \
        cmocka_unit_test(case_replayed_release_gets_no_credit),                                   \
        cmocka_unit_test(case_place_kept_across_long_absence),                                    \
        cmocka_unit_test(case_place_lost_after_keep),                                             \
        cmocka_unit_test(case_held_admission_claimed_within_claim),                               \
        cmocka_unit_test(case_unclaimed_admission_returns_as_credit),                             \
        cmocka_unit_test(case_hold_keeps_credits),                                                \
        cmocka_unit_test(case_hold_keeps_held_admission_claimable),                               \
        cmocka_unit_test(case_cancel_consumes_release_credits),                                   \
        cmocka_unit_test(case_cancel_debt_is_capped),                                             \
        cmocka_unit_test(case_hold_with_cancel_keeps_credits),                                    \
        cmocka_unit_test(case_prequeue_draw_reserves_a_block),                                    \
        cmocka_unit_test(case_prequeue_unseeded_and_empty)

#endif
