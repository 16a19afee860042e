/* test_revoke.c - the released-pass set on given times: add once, expiry,
 * a later time extends, and a full set dropping the entry that expires first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "einlass/revoke.h"

static void test_add_once_and_expire(void **state)
{
    struct el_revoke *v = el_revoke_new(1024, 5);
    assert_false(el_revoke_has(v, 42, 100));
    assert_true(el_revoke_add(v, 42, 200, 100));
    assert_false(el_revoke_add(v, 42, 150, 120)); /* released before: not fresh */
    assert_true(el_revoke_has(v, 42, 199));
    assert_false(el_revoke_has(v, 42, 200)); /* expired */
    assert_false(el_revoke_has(v, 43, 150));
    assert_true(el_revoke_add(v, 42, 300, 200)); /* after expiry: fresh again */
    assert_false(el_revoke_add(v, 42, 400, 250)); /* extends */
    assert_true(el_revoke_has(v, 42, 399));
    assert_true(el_revoke_add(v, 0, 500, 250)); /* id 0 is an id like any */
    assert_true(el_revoke_has(v, 0, 260));
    el_revoke_free(v);
}

static void test_full_set_drops_soonest_expiry(void **state)
{
    struct el_revoke *v = el_revoke_new(EL_REVOKE_WAYS, 1); /* one set */
    for (uint64_t i = 0; i < EL_REVOKE_WAYS; i++)
        assert_true(el_revoke_add(v, 100 + i, (uint32_t)(1000 + i), 10));
    assert_true(el_revoke_add(v, 999, 5000, 10));
    assert_false(el_revoke_has(v, 100, 11)); /* expired first: dropped */
    for (uint64_t i = 1; i < EL_REVOKE_WAYS; i++) assert_true(el_revoke_has(v, 100 + i, 11));
    assert_true(el_revoke_has(v, 999, 11));
    el_revoke_free(v);
}

static void test_many_ids_bounded(void **state)
{
    struct el_revoke *v = el_revoke_new(1 << 12, 7);
    int kept = 0;
    for (uint64_t i = 0; i < 2048; i++) el_revoke_add(v, i * 0x9E3779B97F4A7C15ULL, 1000, 1);
    for (uint64_t i = 0; i < 2048; i++) kept += el_revoke_has(v, i * 0x9E3779B97F4A7C15ULL, 2);
    assert_true(kept >= 2040); /* half full: an unlucky set of 8 may drop one or two */
    assert_true(kept <= 2048);
    el_revoke_free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_once_and_expire),
        cmocka_unit_test(test_full_set_drops_soonest_expiry),
        cmocka_unit_test(test_many_ids_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
