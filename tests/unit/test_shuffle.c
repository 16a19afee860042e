/* test_shuffle.c - the keyed permutation (shuffle.h): a bijection of [0, n)
 * for every n, unrelated orders for other seeds, roughly uniform places. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "einlass/shuffle.h"

static void seed_of(uint8_t seed[EL_SHUFFLE_SEED_LEN], uint32_t k)
{
    for (int i = 0; i < EL_SHUFFLE_SEED_LEN; i++)
        seed[i] = (uint8_t)(k * 131u + (uint32_t)i * 7u + (k >> 8));
}

/* perm is a bijection of [0, n): every value below n, none twice. */
static void check_bijection(const uint8_t *seed, uint64_t n)
{
    struct el_shuffle s;
    el_shuffle_init(&s, seed, n);
    uint8_t *seen = calloc(n, 1);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t p = el_shuffle_at(&s, i);
        assert_true(p < n);
        assert_int_equal(seen[p], 0);
        seen[p] = 1;
    }
    free(seen);
    el_shuffle_done(&s);
}

static void test_bijection_every_n_to_2000(void **state)
{
    (void)state;
    uint8_t seed[EL_SHUFFLE_SEED_LEN];
    for (uint64_t n = 1; n <= 2000; n++) {
        seed_of(seed, (uint32_t)n);
        check_bijection(seed, n);
    }
}

static void test_bijection_large_n(void **state)
{
    (void)state;
    uint8_t seed[EL_SHUFFLE_SEED_LEN];
    seed_of(seed, 99);
    check_bijection(seed, 1u << 20);       /* a power of two: no walking */
    check_bijection(seed, (1u << 19) + 3); /* just above one: the most walking */
    check_bijection(seed, 1000003);
}

/* Beyond what a table can check: values stay below n, samples differ. */
static void test_huge_n_stays_in_range(void **state)
{
    (void)state;
    uint8_t seed[EL_SHUFFLE_SEED_LEN];
    seed_of(seed, 7);
    uint64_t n = ((uint64_t)1 << 40) + 12345;
    struct el_shuffle s;
    el_shuffle_init(&s, seed, n);
    uint64_t prev = UINT64_MAX;
    int same = 0;
    for (uint64_t i = 0; i < 2000; i++) {
        uint64_t p = el_shuffle_at(&s, n - 1 - i * 977);
        assert_true(p < n);
        if (p == prev) same++;
        prev = p;
    }
    assert_int_equal(same, 0);
    assert_int_equal(el_shuffle_at(&s, n), n); /* out of range: unchanged */
    el_shuffle_done(&s);
}

static void test_identity_without_seed(void **state)
{
    (void)state;
    struct el_shuffle s;
    el_shuffle_init(&s, NULL, 100);
    for (uint64_t i = 0; i < 100; i++)
        assert_int_equal(el_shuffle_at(&s, i), i);
    el_shuffle_done(&s);
    uint8_t seed[EL_SHUFFLE_SEED_LEN] = {1};
    el_shuffle_init(&s, seed, 1); /* one ticket: place 0 */
    assert_int_equal(el_shuffle_at(&s, 0), 0);
    el_shuffle_done(&s);
}

/* Same seed and n: the same order (every instance computes it alike);
 * another seed: another order; the order is not the arrival order. */
static void test_same_seed_same_order_other_seed_other(void **state)
{
    (void)state;
    uint8_t a[EL_SHUFFLE_SEED_LEN], b[EL_SHUFFLE_SEED_LEN];
    seed_of(a, 1);
    seed_of(b, 2);
    struct el_shuffle s1, s2, s3;
    el_shuffle_init(&s1, a, 30);
    el_shuffle_init(&s2, a, 30);
    el_shuffle_init(&s3, b, 30);
    int diff = 0, fixed = 0;
    for (uint64_t i = 0; i < 30; i++) {
        assert_int_equal(el_shuffle_at(&s1, i), el_shuffle_at(&s2, i));
        if (el_shuffle_at(&s1, i) != el_shuffle_at(&s3, i)) diff++;
        if (el_shuffle_at(&s1, i) == i) fixed++;
    }
    assert_true(diff > 10);
    assert_true(fixed < 10);
    el_shuffle_done(&s1);
    el_shuffle_done(&s2);
    el_shuffle_done(&s3);
}

/* Over many seeds, who gets place 0 is about uniform (chi-square, 9 degrees
 * of freedom: 45 is far beyond p = 1e-6), and so is where ticket 0 lands. */
static void test_first_place_roughly_uniform(void **state)
{
    (void)state;
    enum { N = 10, SEEDS = 20000 };
    unsigned first[N] = {0}, where0[N] = {0};
    uint8_t seed[EL_SHUFFLE_SEED_LEN];
    for (uint32_t k = 0; k < SEEDS; k++) {
        memset(seed, 0, sizeof(seed));
        memcpy(seed, &k, sizeof(k));
        struct el_shuffle s;
        el_shuffle_init(&s, seed, N);
        for (uint64_t i = 0; i < N; i++)
            if (el_shuffle_at(&s, i) == 0) first[i]++;
        where0[el_shuffle_at(&s, 0)]++;
        el_shuffle_done(&s);
    }
    double e = (double)SEEDS / N, c1 = 0, c2 = 0;
    for (int i = 0; i < N; i++) {
        c1 += ((double)first[i] - e) * ((double)first[i] - e) / e;
        c2 += ((double)where0[i] - e) * ((double)where0[i] - e) / e;
    }
    assert_true(c1 < 45);
    assert_true(c2 < 45);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bijection_every_n_to_2000),
        cmocka_unit_test(test_bijection_large_n),
        cmocka_unit_test(test_huge_n_stays_in_range),
        cmocka_unit_test(test_identity_without_seed),
        cmocka_unit_test(test_same_seed_same_order_other_seed_other),
        cmocka_unit_test(test_first_place_roughly_uniform),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
