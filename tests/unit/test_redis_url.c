/* test_redis_url.c - the [room] redis address parser and its display form
 * (redis_conn.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "einlass/redis_conn.h"

static struct el_redis_url u;

static void ok(const char *s)
{
    const char *why = NULL;
    if (el_redis_url_parse(s, &u, &why) != 0) fail_msg("%s: %s", s, why);
}

static void bad(const char *s, const char *want)
{
    const char *why = NULL;
    assert_int_equal(el_redis_url_parse(s, &u, &why), -1);
    assert_non_null(why);
    if (strstr(why, want) == NULL) fail_msg("%s: got '%s', want '%s'", s, why, want);
}

static const char *shown(void)
{
    static char buf[1024];
    el_redis_url_display(&u, buf, sizeof(buf));
    return buf;
}

static void plain_forms_stay(void **state)
{
    ok("127.0.0.1:6379");
    assert_int_equal(u.kind, EL_REDIS_TCP);
    assert_string_equal(u.addr.host, "127.0.0.1");
    assert_int_equal(u.addr.port, 6379);
    assert_string_equal(u.password, "");
    assert_int_equal(u.db, 0);
    assert_string_equal(shown(), "127.0.0.1:6379");
    ok("[::1]:7000");
    assert_string_equal(u.addr.host, "::1");
    assert_int_equal(u.addr.port, 7000);
    assert_string_equal(shown(), "[::1]:7000");
    ok("redis.internal:6380");
    assert_string_equal(u.addr.host, "redis.internal");
    ok("unix:/run/redis/redis.sock");
    assert_int_equal(u.kind, EL_REDIS_UNIX);
    assert_string_equal(u.path, "/run/redis/redis.sock");
    assert_string_equal(shown(), "unix:/run/redis/redis.sock");
}

static void redis_urls(void **state)
{
    ok("redis://localhost");
    assert_string_equal(u.addr.host, "localhost");
    assert_int_equal(u.addr.port, 6379);
    ok("redis://einlass:s%40cret%3a1@10.0.0.5:6380/3");
    assert_string_equal(u.user, "einlass");
    assert_string_equal(u.password, "s@cret:1");
    assert_string_equal(u.addr.host, "10.0.0.5");
    assert_int_equal(u.addr.port, 6380);
    assert_int_equal(u.db, 3);
    assert_string_equal(shown(), "redis://einlass@10.0.0.5:6380/3"); /* never the password */
    ok("redis://:pw@[2001:db8::1]/");
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "pw");
    assert_string_equal(u.addr.host, "2001:db8::1");
    assert_int_equal(u.db, 0);
    assert_string_equal(shown(), "redis://[2001:db8::1]:6379");
}

static void sentinel_urls(void **state)
{
    ok("sentinel://h1:26379,h2,[::1]:26380/mymaster");
    assert_int_equal(u.kind, EL_REDIS_SENTINEL);
    assert_int_equal(u.nsentinels, 3);
    assert_string_equal(u.sentinel[0].host, "h1");
    assert_int_equal(u.sentinel[0].port, 26379);
    assert_string_equal(u.sentinel[1].host, "h2");
    assert_int_equal(u.sentinel[1].port, 26379);
    assert_string_equal(u.sentinel[2].host, "::1");
    assert_int_equal(u.sentinel[2].port, 26380);
    assert_string_equal(u.master, "mymaster");
    assert_string_equal(shown(), "sentinel://h1:26379,h2:26379,[::1]:26380/mymaster");
    ok("sentinel://app:pw@127.0.0.1:1/m/2");
    assert_string_equal(u.user, "app");
    assert_string_equal(u.password, "pw");
    assert_string_equal(u.master, "m");
    assert_int_equal(u.db, 2);
    assert_string_equal(shown(), "sentinel://app@127.0.0.1:1/m/2");
}

static void bad_addresses(void **state)
{
    bad("", "empty host");
    bad("127.0.0.1", "expected host:port");
    bad("127.0.0.1:0", "port must be");
    bad("127.0.0.1:65536", "port must be");
    bad("127.0.0.1:6x", "port must be");
    bad("::1:6379", "brackets");
    bad("[::1", "missing ']'");
    bad("unix:", "empty or too long");
    bad("unix:run/redis.sock", "absolute path");
    bad("rediss://h:6379", "unknown scheme");
    bad("redis://", "empty host");
    bad("redis://h:6379/x", "database must be a number");
    bad("redis://a%zz@h", "percent-encode");
    bad("sentinel://h1,h2", "master's name");
    bad("sentinel://h1,h2/", "master's name");
    bad("sentinel://h1,/m", "empty host");
    bad("sentinel://a,b,c,d,e,f,g,h,i/m", "too many");
    bad("redis://h o:1", "bad character");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_forms_stay),
        cmocka_unit_test(redis_urls),
        cmocka_unit_test(sentinel_urls),
        cmocka_unit_test(bad_addresses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
