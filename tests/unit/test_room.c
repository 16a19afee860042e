/* test_room.c - the room over the memory store, the eta arithmetic, and the
 * local fallback when the configured Redis cannot be reached (a closed
 * port: no server is needed). Admissions are driven by release credits, so
 * nothing depends on the wall clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "einlass/config.h"
#include "einlass/ratelimit.h"
#include "einlass/room.h"

struct got {
    int calls;                /* must end at 1 */
    struct el_room_answer a;  /* the answer */
};

static void got_cb(void *arg, const struct el_room_answer *a)
{
    struct got *g = arg;
    g->calls++;
    g->a = *a;
}

static struct el_room_answer join(struct el_room *r, uint8_t lane)
{
    struct got g = {0};
    el_room_join(r, lane, got_cb, &g);
    assert_int_equal(g.calls, 1);
    return g.a;
}

static struct el_room_answer check(struct el_room *r, uint8_t lane, uint64_t num, bool local)
{
    struct got g = {0};
    el_room_check(r, lane, num, 0, local, got_cb, &g);
    assert_int_equal(g.calls, 1);
    return g.a;
}

static struct el_config memory_cfg(void)
{
    struct el_config c;
    memset(&c, 0, sizeof(c));
    c.store = EL_STORE_MEMORY;
    c.redis = "127.0.0.1:6379";
    c.room_name = "portal";
    c.poll_s = 60;
    c.admit_per_s = 2;
    return c;
}

static void test_eta(void **state)
{
    assert_int_equal(el_room_eta(10, 2, 5), 5);
    assert_int_equal(el_room_eta(11, 2, 5), 6);
    assert_int_equal(el_room_eta(1, 2, 5), 1);
    assert_int_equal(el_room_eta(10, 0, 5), 2);  /* not measured: the configured rate */
    assert_int_equal(el_room_eta(10, -1, 4), 3);
    assert_int_equal(el_room_eta(10, 0, 0), 10); /* nothing known: one a second */
    assert_int_equal(el_room_eta(0, 3, 3), 0);
    assert_int_equal(el_room_eta(10, 0.1, 1), 100);
    assert_int_equal(el_room_eta(3, 1.5, 1), 2);
    assert_int_equal(el_room_eta(7, 100, 1), 1);
}

static void test_memory_room(void **state)
{
    struct el_config c = memory_cfg();
    struct el_room_shared *sh = el_room_shared_new(&c);
    struct el_room *r = el_room_new(sh, NULL);
    el_room_tick(r, &(struct el_meter_in){.rate = 0});
    struct el_room_answer a = join(r, 0), b = join(r, 0), v = join(r, 1);
    assert_false(a.local);
    assert_int_equal(a.place.state, EL_PLACE_WAITING);
    assert_int_equal(a.place.position, 1);
    assert_int_equal(a.eta_s, 1);  /* 1 at 2/s */
    assert_true(a.eta_low_s <= a.eta_s && a.eta_s <= a.eta_high_s); /* eta.h's range */
    assert_int_equal(b.place.position, 2);
    assert_int_equal(v.place.position, 1);
    assert_int_equal(check(r, 0, b.place.num, false).place.position, 3);
    assert_int_equal(check(r, 0, b.place.num, false).eta_s, 2); /* 3 at 2/s */
    el_room_tick(r, &(struct el_meter_in){.rate = 0});
    assert_int_equal(el_room_waiting(sh), 3);
    assert_string_equal(el_store_state_name(el_room_store_state(sh)), "memory");
    el_room_release(r, 1001);
    el_room_release(r, 1002);
    el_room_tick(r, &(struct el_meter_in){.rate = 0});
    assert_int_equal(check(r, 1, v.place.num, false).place.state, EL_PLACE_ADMITTED);
    assert_int_equal(check(r, 0, a.place.num, false).place.state, EL_PLACE_ADMITTED);
    assert_int_equal(check(r, 0, a.place.num, false).place.state, EL_PLACE_USED);
    struct el_room_answer bb = check(r, 0, b.place.num, false);
    assert_int_equal(bb.place.position, 1);
    el_room_tick(r, &(struct el_meter_in){.rate = 3});
    assert_int_equal(el_room_waiting(sh), 1);
    assert_int_equal(el_room_admitted_total(sh), 2);
    assert_true(el_room_measured_rate(sh) == 0); /* not measured yet */
    el_room_free(r);
    el_room_shared_free(sh);
}

/* Einlass-Release of one pass: revoked at once, one credit however often. */
static void test_release_revokes_once(void **state)
{
    struct el_config c = memory_cfg();
    c.session_s = 600;
    struct el_room_shared *sh = el_room_shared_new(&c);
    struct el_room *r = el_room_new(sh, NULL);
    el_room_tick(r, &(struct el_meter_in){.rate = 0});
    struct el_room_answer a = join(r, 0), b = join(r, 0);
    uint64_t now = (uint64_t)time(NULL);
    assert_false(el_room_revoked(r, 77, now));
    for (int i = 0; i < 6; i++) el_room_release(r, 77);
    assert_true(el_room_revoked(r, 77, now));
    assert_true(el_room_revoked(r, 77, now + 600)); /* outlives any pass with that id */
    assert_false(el_room_revoked(r, 78, now));
    el_room_tick(r, &(struct el_meter_in){.rate = 0});
    assert_int_equal(check(r, 0, a.place.num, false).place.state, EL_PLACE_ADMITTED);
    assert_int_equal(check(r, 0, b.place.num, false).place.state, EL_PLACE_WAITING);
    el_room_free(r);
    el_room_shared_free(sh);
}

/* The join limit is per instance (one table for every thread's room). */
static void test_join_limit_per_address(void **state)
{
    struct el_config c = memory_cfg();
    c.max_joins_per_ip_per_min = 3;
    struct el_room_shared *sh = el_room_shared_new(&c);
    struct el_room *r1 = el_room_new(sh, NULL), *r2 = el_room_new(sh, NULL);
    struct sockaddr_in a = {.sin_family = AF_INET}, b = a;
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    inet_pton(AF_INET, "127.0.0.2", &b.sin_addr);
    uint64_t ka, kb;
    uint8_t fa, fb;
    assert_true(el_ratelimit_key((struct sockaddr *)&a, &ka, &fa));
    assert_true(el_ratelimit_key((struct sockaddr *)&b, &kb, &fb));
    int ok = 0;
    for (int i = 0; i < 20; i++) ok += el_room_join_allowed(i % 2 ? r1 : r2, ka, fa) == 0;
    assert_int_equal(ok, 3);
    assert_true(el_room_join_allowed(r1, ka, fa) >= 1);
    assert_int_equal(el_room_join_allowed(r1, kb, fb), 0);
    assert_int_equal(el_room_join_allowed(r1, 0, 0), 0); /* a unix socket: not limited */
    c.max_joins_per_ip_per_min = 0; /* reload: no limit */
    el_room_shared_configure(sh, &c);
    assert_int_equal(el_room_join_allowed(r2, ka, fa), 0);
    el_room_free(r1);
    el_room_free(r2);
    el_room_shared_free(sh);
}

static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void test_fallback_when_redis_down(void **state)
{
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", closed_port());
    struct el_config c = memory_cfg();
    c.store = EL_STORE_REDIS;
    c.redis = addr;
    struct event_base *base = event_base_new();
    struct el_room_shared *sh = el_room_shared_new(&c);
    struct el_room *r = el_room_new(sh, base);
    for (int i = 0; i < 3; i++) event_base_loop(base, EVLOOP_NONBLOCK);
    struct el_room_answer a = join(r, 0);
    assert_true(a.local);
    assert_int_equal(a.place.state, EL_PLACE_WAITING);
    assert_int_equal(a.place.position, 1);
    /* a Redis ticket while Redis is down: its own number, no local place
     * (nothing learnt from Redis: the first Redis ticket seen starts H) */
    struct el_room_answer b = check(r, 0, 12345, false);
    assert_false(b.local);
    assert_int_equal(b.place.num, 12345);
    assert_int_equal(b.place.state, EL_PLACE_WAITING);
    assert_int_equal(b.place.position, 1);
    /* local tickets are checked locally */
    struct el_room_answer aa = check(r, 0, a.place.num, true);
    assert_true(aa.local);
    assert_int_equal(aa.place.position, 2); /* behind the Redis ticket */
    el_room_tick(r, &(struct el_meter_in){.rate = 0});
    assert_string_equal(el_store_state_name(el_room_store_state(sh)), "fallback");
    assert_int_equal(el_room_waiting(sh), 1); /* the local queue; Redis figures unknown */
    el_room_release(r, 1003); /* Redis down: the credit goes to the local queue */
    el_room_tick(r, &(struct el_meter_in){.rate = 0});
    assert_int_equal(check(r, 0, a.place.num, true).place.state, EL_PLACE_ADMITTED);
    el_room_free(r);
    el_room_shared_free(sh);
    event_base_free(base);
}

/* While Redis is down, every check of a Redis ticket used to make a new
 * place in the local queue: one replayed ticket flooded it (unseen by the
 * join limit). Now it keeps its own number and takes at most one place. */
static void test_replayed_redis_ticket_during_outage_takes_one_place(void **state)
{
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", closed_port());
    struct el_config c = memory_cfg();
    c.store = EL_STORE_REDIS;
    c.redis = addr;
    struct event_base *base = event_base_new();
    struct el_room_shared *sh = el_room_shared_new(&c);
    struct el_room *r = el_room_new(sh, base);
    for (int i = 0; i < 3; i++) event_base_loop(base, EVLOOP_NONBLOCK);
    struct el_room_answer b;
    for (int i = 0; i < 20; i++) b = check(r, 0, 777, false);
    struct el_room_answer a = join(r, 0);
    assert_int_equal(a.place.state, EL_PLACE_WAITING);
    assert_int_equal(a.place.position, 2); /* behind the one Redis ticket, not 20 */
    el_room_tick(r, &(struct el_meter_in){.rate = 0});
    assert_true(el_room_waiting(sh) <= 2);
    assert_false(b.local);
    assert_int_equal(b.place.num, 777);
    assert_int_equal(b.place.state, EL_PLACE_WAITING);
    assert_int_equal(b.place.position, 1);
    el_room_free(r);
    el_room_shared_free(sh);
    event_base_free(base);
}

static void test_configure_switches_store(void **state)
{
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", closed_port());
    struct el_config c = memory_cfg();
    struct event_base *base = event_base_new();
    struct el_room_shared *sh = el_room_shared_new(&c);
    struct el_room *r = el_room_new(sh, base);
    assert_false(join(r, 0).local);
    el_room_tick(r, &(struct el_meter_in){.rate = 1});
    assert_string_equal(el_store_state_name(el_room_store_state(sh)), "memory");
    c.store = EL_STORE_REDIS;
    c.redis = addr;
    el_room_shared_configure(sh, &c);
    /* makes the Redis store: its first connect is refused */
    el_room_tick(r, &(struct el_meter_in){.rate = 1});
    for (int i = 0; i < 3; i++) event_base_loop(base, EVLOOP_NONBLOCK);
    struct el_room_answer a = join(r, 0);
    assert_true(a.local);
    assert_int_equal(a.place.position, 2); /* the queue survived the reload */
    el_room_tick(r, &(struct el_meter_in){.rate = 1});
    assert_string_equal(el_store_state_name(el_room_store_state(sh)), "fallback");
    c.store = EL_STORE_MEMORY;
    c.admit_per_s = 4;
    el_room_shared_configure(sh, &c);
    struct el_room_answer b = join(r, 0);
    assert_false(b.local);
    assert_int_equal(b.place.position, 3);
    el_room_tick(r, &(struct el_meter_in){.rate = 0});
    assert_string_equal(el_store_state_name(el_room_store_state(sh)), "memory");
    assert_int_equal(check(r, 0, b.place.num, false).eta_s, 1); /* 3 at 4/s: rate 0 ticked */
    el_room_free(r);
    el_room_shared_free(sh);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eta),
        cmocka_unit_test(test_memory_room),
        cmocka_unit_test(test_release_revokes_once),
        cmocka_unit_test(test_join_limit_per_address),
        cmocka_unit_test(test_fallback_when_redis_down),
        cmocka_unit_test(test_replayed_redis_ticket_during_outage_takes_one_place),
        cmocka_unit_test(test_configure_switches_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
