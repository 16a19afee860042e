/* test_common.c - the {word, value} tables, address text and ms timevals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "einlass/common.h"
#include "einlass/config.h"
#include "einlass/metrics.h"
#include "einlass/room.h"

static void word_find_and_name(void **state)
{
    (void)state;
    static const struct el_word t[] = {{"alpha", 3}, {"beta", 5}, {"Gamma", 5}, {NULL, 0}};
    assert_ptr_equal(el_word_find(t, "alpha", 5), &t[0]);
    assert_ptr_equal(el_word_find(t, "ALPHA", 5), &t[0]);
    assert_ptr_equal(el_word_find(t, "gamma", 5), &t[2]);
    assert_null(el_word_find(t, "alph", 4));
    assert_null(el_word_find(t, "alphas", 6));
    assert_null(el_word_find(t, "alpha", 4)); /* the length counts, not a NUL */
    assert_null(el_word_find(t, "", 0));
    assert_string_equal(el_word_name(t, 3), "alpha");
    assert_string_equal(el_word_name(t, 5), "beta"); /* the first word of a value */
    assert_null(el_word_name(t, 4));
}

/* Every table names each value of its enum once, and its words parse back. */
static void check_table(const struct el_word *t, int first, int last)
{
    for (int v = first; v <= last; v++) {
        const char *w = el_word_name(t, v);
        assert_non_null(w);
        const struct el_word *e = el_word_find(t, w, strlen(w));
        assert_non_null(e);
        assert_int_equal(e->value, v);
    }
    int n = 0;
    for (const struct el_word *e = t; e->word != NULL; e++)
        n++;
    assert_int_equal(n, last - first + 1);
}

static void enum_tables(void **state)
{
    (void)state;
    check_table(el_mode_words, EL_MODE_AUTO, EL_MODE_OFF);
    check_table(el_store_kind_words, EL_STORE_MEMORY, EL_STORE_REDIS);
    check_table(el_store_state_words, EL_STORE_STATE_MEMORY, EL_STORE_STATE_FALLBACK);
    check_table(el_decision_words, EL_DECISION_FORWARD, EL_DECISION__COUNT - 1);
    check_table(el_log_level_words, EL_LOG_ERR, EL_LOG_DEBUG);
    /* the words the config, /status, /metrics and the logs have always used */
    assert_string_equal(el_store_state_name(EL_STORE_STATE_MEMORY), "memory");
    assert_string_equal(el_store_state_name(EL_STORE_STATE_REDIS), "redis");
    assert_string_equal(el_store_state_name(EL_STORE_STATE_FALLBACK), "fallback");
    assert_string_equal(el_decision_name(EL_DECISION_FORWARD), "forward");
    assert_string_equal(el_decision_name(EL_DECISION_WAIT), "wait");
    assert_string_equal(el_decision_name(EL_DECISION_BYPASS), "bypass");
    assert_string_equal(el_decision_name(EL_DECISION_REJECT), "reject");
    assert_string_equal(el_decision_name(EL_DECISION_ERROR), "error");
    assert_string_equal(el_word_name(el_log_level_words, EL_LOG_ERR), "err");
    assert_string_equal(el_word_name(el_log_level_words, EL_LOG_WARN), "warn");
    assert_string_equal(el_word_name(el_log_level_words, EL_LOG_NOTICE), "notice");
    assert_string_equal(el_word_name(el_log_level_words, EL_LOG_INFO), "info");
    assert_string_equal(el_word_name(el_log_level_words, EL_LOG_DEBUG), "debug");
    assert_string_equal(el_word_name(el_store_kind_words, EL_STORE_REDIS), "redis");
}

static void addr_text_forms(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    unsigned len;
    const char *err;
    char out[EL_ADDR_TEXT_MAX];
    assert_int_equal(el_parse_addr("192.0.2.1:8080", &ss, &len, &err), 0);
    assert_int_equal(el_addr_text(&ss, false, out, sizeof(out)), 9);
    assert_string_equal(out, "192.0.2.1");
    el_addr_text(&ss, true, out, sizeof(out));
    assert_string_equal(out, "192.0.2.1:8080");
    assert_int_equal(el_addr_port(&ss), 8080);
    assert_int_equal(el_parse_addr("[2001:db8::1]:443", &ss, &len, &err), 0);
    el_addr_text(&ss, false, out, sizeof(out));
    assert_string_equal(out, "2001:db8::1");
    el_addr_text(&ss, true, out, sizeof(out));
    assert_string_equal(out, "[2001:db8::1]:443");
    assert_int_equal(el_addr_port(&ss), 443);
    /* the longest text inet_ntop writes (an IPv4-mapped address) with the
     * largest port fits */
    assert_int_equal(el_parse_addr("[::ffff:255.255.255.255]:65535", &ss, &len, &err), 0);
    el_addr_text(&ss, true, out, sizeof(out));
    assert_string_equal(out, "[::ffff:255.255.255.255]:65535");
    assert_int_equal(
        el_parse_addr("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535", &ss, &len, &err), 0);
    size_t n = el_addr_text(&ss, true, out, sizeof(out));
    assert_int_equal(n, strlen("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"));
    assert_int_equal(el_parse_addr("localhost:0", &ss, &len, &err), 0);
    el_addr_text(&ss, true, out, sizeof(out));
    assert_string_equal(out, "127.0.0.1:0");
    assert_int_equal(el_parse_addr("unix:/run/x.sock", &ss, &len, &err), 0);
    el_addr_text(&ss, true, out, sizeof(out));
    assert_string_equal(out, "unix:/run/x.sock"); /* as an address: with its path */
    el_addr_text(&ss, false, out, sizeof(out));
    assert_string_equal(out, "unix"); /* as a client: a unix peer has no name */
    assert_int_equal(el_addr_port(&ss), 0);
    /* truncated to the room given, and still a string */
    assert_int_equal(el_parse_addr("192.0.2.1:8080", &ss, &len, &err), 0);
    assert_int_equal(el_addr_text(&ss, true, out, 6), 5);
    assert_string_equal(out, "192.0");
}

static void tv_from_ms(void **state)
{
    (void)state;
    struct timeval tv = el_tv_ms(0);
    assert_int_equal(tv.tv_sec, 0);
    assert_int_equal(tv.tv_usec, 0);
    tv = el_tv_ms(1);
    assert_int_equal(tv.tv_sec, 0);
    assert_int_equal(tv.tv_usec, 1000);
    tv = el_tv_ms(999);
    assert_int_equal(tv.tv_usec, 999000);
    tv = el_tv_ms(1000);
    assert_int_equal(tv.tv_sec, 1);
    assert_int_equal(tv.tv_usec, 0);
    tv = el_tv_ms(3600001);
    assert_int_equal(tv.tv_sec, 3600);
    assert_int_equal(tv.tv_usec, 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(word_find_and_name),
        cmocka_unit_test(enum_tables),
        cmocka_unit_test(addr_text_forms),
        cmocka_unit_test(tv_from_ms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
