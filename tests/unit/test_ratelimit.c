/* test_ratelimit.c - the per-client join limit on virtual time: the bucket's
 * burst and refill, Retry-After, addresses kept apart (IPv4, IPv6 by /64),
 * and a full table evicting the longest idle entry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "einlass/ratelimit.h"

static int take_n(struct el_ratelimit *rl, uint64_t key, uint64_t now, int per_min, int n)
{
    int ok = 0;
    for (int i = 0; i < n; i++) ok += el_ratelimit_take(rl, key, AF_INET, now, per_min) == 0;
    return ok;
}

static void test_burst_then_refused_with_retry_after(void **state)
{
    struct el_ratelimit *rl = el_ratelimit_new(1024, 42);
    uint64_t t = 1000000;
    assert_int_equal(take_n(rl, 7, t, 30, 200), 30); /* the burst is per_min */
    int wait = el_ratelimit_take(rl, 7, AF_INET, t, 30);
    assert_int_equal(wait, 2); /* 30 a minute: one token every 2 s */
    assert_int_equal(take_n(rl, 7, t + 1999, 30, 1), 0);
    assert_int_equal(take_n(rl, 7, t + 2000, 30, 5), 1);
    /* another address is not affected */
    assert_int_equal(take_n(rl, 8, t, 30, 3), 3);
    el_ratelimit_free(rl);
}

static void test_refill_not_lost_to_frequent_calls(void **state)
{
    struct el_ratelimit *rl = el_ratelimit_new(64, 1);
    uint64_t t = 5000;
    assert_int_equal(take_n(rl, 1, t, 60, 60), 60);
    int ok = 0;
    for (int ms = 1; ms <= 10000; ms++) ok += take_n(rl, 1, t + (uint64_t)ms, 60, 1);
    assert_int_equal(ok, 10); /* one a second for 10 s, polled every millisecond */
    el_ratelimit_free(rl);
}

static void test_unlimited(void **state)
{
    struct el_ratelimit *rl = el_ratelimit_new(8, 1);
    assert_int_equal(take_n(rl, 1, 0, 0, 1000), 1000);
    el_ratelimit_free(rl);
}

static void test_keys_ipv4_ipv6_64(void **state)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    struct sockaddr_in6 b = {.sin6_family = AF_INET6}, c = b, m = b;
    inet_pton(AF_INET, "192.0.2.7", &a.sin_addr);
    inet_pton(AF_INET6, "2001:db8:1:2::1", &b.sin6_addr);
    inet_pton(AF_INET6, "2001:db8:1:2:ffff::9", &c.sin6_addr);
    inet_pton(AF_INET6, "::ffff:192.0.2.7", &m.sin6_addr);
    uint64_t ka, kb, kc, km;
    uint8_t fa, fb, fc, fm;
    assert_true(el_ratelimit_key((struct sockaddr *)&a, &ka, &fa));
    assert_true(el_ratelimit_key((struct sockaddr *)&b, &kb, &fb));
    assert_true(el_ratelimit_key((struct sockaddr *)&c, &kc, &fc));
    assert_true(el_ratelimit_key((struct sockaddr *)&m, &km, &fm));
    assert_int_equal(fa, AF_INET);
    assert_int_equal(ka, 0xc0000207);
    assert_true(ka == km && fa == fm); /* IPv4-mapped is the IPv4 address */
    assert_true(kb == kc && fb == AF_INET6); /* one /64 is one client */
    inet_pton(AF_INET6, "2001:db8:1:3::1", &c.sin6_addr);
    assert_true(el_ratelimit_key((struct sockaddr *)&c, &kc, &fc));
    assert_true(kb != kc);
    struct sockaddr u = {.sa_family = AF_UNIX};
    assert_false(el_ratelimit_key(&u, &ka, &fa));
    /* the same 64 bits in the two families are two clients */
    struct el_ratelimit *rl = el_ratelimit_new(64, 3);
    assert_int_equal(el_ratelimit_take(rl, 5, AF_INET, 0, 1), 0);
    assert_int_equal(el_ratelimit_take(rl, 5, AF_INET6, 0, 1), 0);
    assert_true(el_ratelimit_take(rl, 5, AF_INET, 0, 1) > 0);
    el_ratelimit_free(rl);
}

static void test_full_table_evicts_fullest_bucket_keeps_flooder(void **state)
{
    struct el_ratelimit *rl = el_ratelimit_new(EL_RATELIMIT_WAYS, 9); /* one set */
    assert_int_equal(take_n(rl, 1000, 0, 2, 5), 2); /* the flooder, spent */
    for (uint64_t k = 1; k < EL_RATELIMIT_WAYS; k++) /* fill the set: one join each */
        assert_int_equal(el_ratelimit_take(rl, k, AF_INET, 10, 2), 0);
    assert_true(el_ratelimit_take(rl, 1000, AF_INET, 20, 2) > 0);
    /* new addresses take the fullest buckets, never the flooder's empty one */
    for (uint64_t k = 2000; k < 2100; k++)
        assert_int_equal(el_ratelimit_take(rl, k, AF_INET, 30, 2), 0);
    assert_true(el_ratelimit_take(rl, 1000, AF_INET, 31, 2) > 0);
    for (int i = 0; i < 100000; i++) /* many addresses: memory stays the table */
        el_ratelimit_take(rl, 10000 + (uint64_t)i, AF_INET, 40 + (uint64_t)i, 2);
    el_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refused_with_retry_after),
        cmocka_unit_test(test_refill_not_lost_to_frequent_calls),
        cmocka_unit_test(test_unlimited),
        cmocka_unit_test(test_keys_ipv4_ipv6_64),
        cmocka_unit_test(test_full_table_evicts_fullest_bucket_keeps_flooder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
