/* test_event.c - scheduled openings on numbers: the state machine on a
 * virtual clock, the drawn places as a permutation of the reserved block,
 * and the table driven by ticks over a memory room. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "einlass/config.h"
#include "einlass/event.h"
#include "einlass/room.h"

#define OPENS 1803888000000LL /* 2027-03-01T08:00:00Z */

static struct el_event_def def(const char *name, int prequeue_s, int64_t ends)
{
    struct el_event_def d;
    memset(&d, 0, sizeof(d));
    snprintf(d.name, sizeof(d.name), "%s", name);
    d.opens_at_ms = OPENS;
    d.prequeue_s = prequeue_s;
    d.ends_at_ms = ends;
    d.has_opens_at = true;
    return d;
}

static void test_states_on_a_virtual_clock(void **state)
{
    (void)state;
    struct el_event_def d = def("v", 600, 0);
    struct el_event_run r = {0};
    assert_int_equal(el_event_state(&d, &r, OPENS - 600001), EL_EVENT_SCHEDULED);
    assert_int_equal(el_event_next_op(&d, &r, OPENS - 600001), -1);
    assert_false(el_event_takes_arrivals(&d, &r, OPENS - 600001));
    assert_int_equal(el_event_state(&d, &r, OPENS - 600000), EL_EVENT_PREQUEUE);
    assert_int_equal(el_event_next_op(&d, &r, OPENS - 600000), EL_PRE_READ);
    assert_true(el_event_takes_arrivals(&d, &r, OPENS - 1));
    /* Opened, the draw not known yet: draining, draw, arrivals still go to
     * the store (which answers drawn once any instance drew). */
    assert_int_equal(el_event_state(&d, &r, OPENS), EL_EVENT_DRAINING);
    assert_int_equal(el_event_next_op(&d, &r, OPENS), EL_PRE_DRAW);
    assert_true(el_event_takes_arrivals(&d, &r, OPENS + 5));
    r.pre = (struct el_pre){.drawn = true, .shuffled = true, .n = 5, .base = 10, .head = 12};
    assert_int_equal(el_event_state(&d, &r, OPENS + 100), EL_EVENT_DRAINING);
    assert_int_equal(el_event_next_op(&d, &r, OPENS + 100), EL_PRE_READ);
    assert_false(el_event_takes_arrivals(&d, &r, OPENS + 100));
    r.pre.head = 15;
    assert_int_equal(el_event_state(&d, &r, OPENS + 200), EL_EVENT_OVER);
    assert_int_equal(el_event_next_op(&d, &r, OPENS + 200), -1);
    /* ends_at ends it whatever is left. */
    struct el_event_def e = def("w", 60, OPENS + 1000);
    struct el_event_run re = {.pre = {.drawn = true, .n = 5, .base = 0, .head = 0}};
    assert_int_equal(el_event_state(&e, &re, OPENS + 999), EL_EVENT_DRAINING);
    assert_int_equal(el_event_state(&e, &re, OPENS + 1000), EL_EVENT_OVER);
    assert_int_equal(el_event_next_op(&e, &re, OPENS + 1000), -1);
    /* A prequeue of 0 s: straight from scheduled to draining. */
    struct el_event_def z = def("z", 0, 0);
    struct el_event_run rz = {0};
    assert_int_equal(el_event_state(&z, &rz, OPENS - 1), EL_EVENT_SCHEDULED);
    assert_int_equal(el_event_state(&z, &rz, OPENS), EL_EVENT_DRAINING);
}

static void test_cancel_draws_in_arrival_order(void **state)
{
    (void)state;
    struct el_event_def d = def("v", 600, 0);
    struct el_event_run r = {.cancelled = true, .pre = {.n = 3}};
    assert_int_equal(el_event_next_op(&d, &r, OPENS - 100000), EL_PRE_DRAW);
    assert_int_equal(el_event_state(&d, &r, OPENS - 100000), EL_EVENT_DRAINING); /* held */
    assert_true(el_event_takes_arrivals(&d, &r, OPENS - 100000)); /* until the draw */
    r.pre = (struct el_pre){.drawn = true, .shuffled = false, .n = 3, .base = 7, .head = 7};
    assert_int_equal(el_event_state(&d, &r, OPENS - 100000), EL_EVENT_DRAINING);
    assert_false(el_event_takes_arrivals(&d, &r, OPENS - 100000));
    for (uint64_t i = 0; i < 3; i++) {
        uint64_t num;
        assert_int_equal(el_event_place(&r, i, &num), 0);
        assert_int_equal(num, 7 + i); /* arrival order */
    }
    r.pre.head = 10;
    assert_int_equal(el_event_state(&d, &r, OPENS - 100000), EL_EVENT_OVER);
}

/* The drawn places are the reserved block, each once, not in arrival order. */
static void test_places_are_a_permutation_of_the_block(void **state)
{
    (void)state;
    struct el_event_run r = {.pre = {.drawn = true, .shuffled = true, .n = 30, .base = 100}};
    for (int i = 0; i < EL_PRE_SEED_LEN; i++)
        r.pre.seed[i] = (uint8_t)(i * 37 + 11);
    bool seen[30] = {false};
    int in_order = 0;
    for (uint64_t i = 0; i < 30; i++) {
        uint64_t num;
        assert_int_equal(el_event_place(&r, i, &num), 0);
        assert_true(num >= 100 && num < 130);
        assert_false(seen[num - 100]);
        seen[num - 100] = true;
        if (num == 100 + i) in_order++;
    }
    assert_true(in_order < 30);
    uint64_t num;
    assert_int_equal(el_event_place(&r, 30, &num), -1); /* not a ticket of the draw */
    r.pre.drawn = false;
    assert_int_equal(el_event_place(&r, 0, &num), -1);
}

static void test_time_text(void **state)
{
    (void)state;
    char b[40];
    el_time_rfc3339(OPENS, 0, b, sizeof(b));
    assert_string_equal(b, "2027-03-01T08:00:00Z");
    el_time_rfc3339(OPENS, 60, b, sizeof(b));
    assert_string_equal(b, "2027-03-01T09:00:00+01:00");
    el_time_rfc3339(OPENS, -270, b, sizeof(b));
    assert_string_equal(b, "2027-03-01T03:30:00-04:30");
    int64_t ms;
    int off;
    char why[100];
    assert_int_equal(el_config_parse_time(b, strlen(b), &ms, &off, why, sizeof(why)), 0);
    assert_int_equal(ms, OPENS);
    assert_int_equal(off, -270);
}

struct pre_res {
    bool done;
    int err;
    struct el_pre p;
};

static void pre_cb(void *arg, int err, const struct el_pre *p)
{
    struct pre_res *r = arg;
    r->done = true;
    r->err = err;
    if (p) r->p = *p;
}

/* The table over a memory room: the file's events, ticks on a virtual
 * clock, 30 arrivals, the draw, a later arrival behind, add and cancel. */
static void test_table_over_a_memory_room(void **state)
{
    (void)state;
    struct el_config c;
    memset(&c, 0, sizeof(c));
    c.store = EL_STORE_MEMORY;
    c.room_name = "portal";
    c.poll_s = 60;
    c.admit_per_s = 2;
    c.nevents = 1;
    c.events[0] = def("vacc", 600, 0);
    struct el_room_shared *sh = el_room_shared_new(&c);
    struct el_room *room = el_room_new(sh, NULL);
    struct el_events *ev = el_events_new();
    el_events_configure(ev, &c);
    struct el_event_view v;
    el_events_tick(ev, room, OPENS - 700000);
    assert_false(el_events_hold_room(ev));
    assert_int_equal(el_events_arrivals(ev, OPENS - 700000, &v), -1);
    el_events_tick(ev, room, OPENS - 500000);
    assert_true(el_events_hold_room(ev)); /* the pre-queue holds the room */
    assert_int_equal(el_events_arrivals(ev, OPENS - 500000, &v), 0);
    assert_string_equal(v.def.name, "vacc");
    uint32_t id = v.id;
    for (uint64_t i = 0; i < 30; i++) {
        struct pre_res r = {0};
        el_room_pre(room, id, EL_PRE_JOIN, NULL, 0, pre_cb, &r);
        assert_true(r.done);
        assert_int_equal(r.err, 0);
        assert_int_equal(r.p.i, i);
    }
    el_events_tick(ev, room, OPENS - 1000);
    assert_int_equal(el_events_find(ev, id, OPENS - 1000, &v), 0);
    assert_int_equal(v.run.pre.n, 30);
    assert_int_equal(v.state, EL_EVENT_PREQUEUE);
    el_events_tick(ev, room, OPENS); /* the draw */
    assert_int_equal(el_events_find(ev, id, OPENS, &v), 0);
    assert_true(v.run.pre.drawn);
    assert_true(v.run.pre.shuffled);
    assert_int_equal(v.run.pre.n, 30);
    assert_int_equal(v.state, EL_EVENT_DRAINING);
    assert_int_equal(el_events_arrivals(ev, OPENS, &v), -1); /* later arrivals: lane 0 */
    struct pre_res late = {0};
    el_room_pre(room, id, EL_PRE_JOIN, NULL, 0, pre_cb, &late);
    assert_true(late.p.drawn);
    el_events_tick(ev, room, OPENS + 100);
    assert_true(el_events_hold_room(ev)); /* draining */
    /* Reload with the same event keeps what the store said. */
    el_events_configure(ev, &c);
    assert_int_equal(el_events_find(ev, id, OPENS + 100, &v), 0);
    assert_true(v.run.pre.drawn);
    /* API: add, a name in use, cancel. */
    struct el_event_def a = def("api", 60, 0);
    a.opens_at_ms = OPENS + 3600000;
    bool conflict;
    char why[200];
    assert_int_equal(el_events_add(ev, &a, &conflict, why, sizeof(why)), 0);
    assert_int_equal(el_events_add(ev, &a, &conflict, why, sizeof(why)), -1);
    assert_true(conflict);
    struct el_event_def bad = def("bad name", 60, 0);
    assert_int_equal(el_events_add(ev, &bad, &conflict, why, sizeof(why)), -1);
    assert_false(conflict);
    assert_int_equal(el_events_count(ev), 2);
    el_events_configure(ev, &c); /* the API's event stays over a reload */
    assert_int_equal(el_events_count(ev), 2);
    assert_int_equal(el_events_cancel(ev, "nope"), -1);
    assert_int_equal(el_events_cancel(ev, "api"), 0);
    assert_int_equal(el_events_get(ev, 1, OPENS + 100, &v), 0);
    assert_true(v.run.cancelled);
    el_events_free(ev);
    el_room_free(room);
    el_room_shared_free(sh);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_states_on_a_virtual_clock),
        cmocka_unit_test(test_cancel_draws_in_arrival_order),
        cmocka_unit_test(test_places_are_a_permutation_of_the_block),
        cmocka_unit_test(test_time_text),
        cmocka_unit_test(test_table_over_a_memory_room),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
