/* test_journal.c - the journal's pure half: which methods count, the JSON
 * line (fields, escaping, cuts), and reading a line's time back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "einlass/journal.h"

static void test_wants_every_method_but_the_safe_ones(void **state)
{
    (void)state;
    assert_true(el_journal_wants("POST", 4));
    assert_true(el_journal_wants("PUT", 3));
    assert_true(el_journal_wants("PATCH", 5));
    assert_true(el_journal_wants("DELETE", 6));
    assert_true(el_journal_wants("PROPPATCH", 9));
    assert_false(el_journal_wants("GET", 3));
    assert_false(el_journal_wants("HEAD", 4));
    assert_false(el_journal_wants("OPTIONS", 7));
    assert_false(el_journal_wants("TRACE", 5));
    assert_true(el_journal_wants("GETX", 4)); /* not a prefix match */
}

static struct el_journal_entry entry(void)
{
    struct el_journal_entry e = {
        .time_ms = 1712345678123ULL,
        .method = "POST",
        .method_len = 4,
        .path = "/appointments/7/cancel",
        .path_len = 22,
        .route = "cancel",
        .client = "192.0.2.7",
        .pass = 0x9f0c,
        .status = 0,
        .reason = "backend connection broke",
        .upstream_ms = 12.54,
    };
    return e;
}

static void test_format_writes_every_field_time_first(void **state)
{
    (void)state;
    char buf[EL_JOURNAL_LINE_MAX];
    struct el_journal_entry e = entry();
    size_t n = el_journal_format(buf, sizeof(buf), &e);
    buf[n] = '\0';
    assert_string_equal(buf, "{\"time\":1712345678.123,\"method\":\"POST\","
                             "\"path\":\"/appointments/7/cancel\",\"route\":\"cancel\","
                             "\"client\":\"192.0.2.7\",\"pass\":\"0000000000009f0c\","
                             "\"ticket\":\"\",\"status\":0,"
                             "\"reason\":\"backend connection broke\",\"upstream_ms\":12.5}\n");
    e.pass = 0;
    e.route = NULL;
    e.has_ticket = true;
    e.ticket_lane = 1;
    e.ticket = 42;
    e.status = 503;
    e.reason = "backend 503";
    e.time_ms = 5;
    n = el_journal_format(buf, sizeof(buf), &e);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "{\"time\":0.005,"));
    assert_non_null(strstr(buf, "\"route\":\"\",\"client\""));
    assert_non_null(strstr(buf, "\"pass\":\"\",\"ticket\":\"1:42\",\"status\":503,"));
}

/* Any byte the parser accepted may be in a path: the line stays ASCII JSON
 * and \u00XX gives back each byte. */
static void test_format_escapes_every_byte_outside_printable_ascii(void **state)
{
    (void)state;
    char buf[EL_JOURNAL_LINE_MAX];
    struct el_journal_entry e = entry();
    static const char path[] = "/a\"b\\c\x01\x7f\xc3\xa9\n";
    e.path = path;
    e.path_len = sizeof(path) - 1;
    e.client = "x\"y";
    size_t n = el_journal_format(buf, sizeof(buf), &e);
    buf[n] = '\0';
    assert_non_null(
        strstr(buf, "\"path\":\"/a\\\"b\\\\c\\u0001\\u007f\\u00c3\\u00a9\\u000a\","));
    assert_non_null(strstr(buf, "\"client\":\"x\\\"y\""));
    assert_null(strstr(buf, "path_cut"));
    for (size_t i = 0; i + 1 < n; i++)
        assert_true((unsigned char)buf[i] >= 0x20 && (unsigned char)buf[i] < 0x7f);
    assert_int_equal(buf[n - 1], '\n');
}

/* The longest path, all of it escaped six times over, and the longest other
 * strings: the line is cut, says so, fits, and ends with its newline. */
static void test_format_cuts_long_strings_and_always_fits(void **state)
{
    (void)state;
    static char path[EL_JOURNAL_PATH_MAX], route[300];
    memset(path, '\x01', sizeof(path));
    memset(route, '"', sizeof(route) - 1);
    char buf[EL_JOURNAL_LINE_MAX];
    struct el_journal_entry e = entry();
    e.path = path;
    e.path_len = sizeof(path);
    e.route = route;
    e.client = route;
    e.reason = route;
    e.method = route;
    e.method_len = 16;
    e.pass = UINT64_MAX;
    e.has_ticket = true;
    e.ticket = UINT64_MAX;
    e.status = -2147483647;
    e.upstream_ms = 1e300;
    e.time_ms = UINT64_MAX;
    size_t n = el_journal_format(buf, sizeof(buf), &e);
    assert_true(n <= sizeof(buf));
    assert_int_equal(buf[n - 1], '\n');
    assert_non_null(memmem(buf, n, "\"path_cut\":true", 15));
    assert_non_null(memmem(buf, n, "\"upstream_ms\":0.0}\n", 19));
    /* a path the capture already cut says so too */
    e = entry();
    e.path_cut = true;
    n = el_journal_format(buf, sizeof(buf), &e);
    assert_non_null(memmem(buf, n, "\"path_cut\":true", 15));
}

static void test_line_time_reads_the_leading_field(void **state)
{
    (void)state;
    uint64_t ms = 0;
    char buf[EL_JOURNAL_LINE_MAX];
    struct el_journal_entry e = entry();
    size_t n = el_journal_format(buf, sizeof(buf), &e);
    assert_int_equal(el_journal_line_ms(buf, n, &ms), 0);
    assert_true(ms == 1712345678123ULL);
    assert_int_equal(el_journal_line_ms("{\"time\":17}", 11, &ms), 0);
    assert_true(ms == 17000);
    assert_int_equal(el_journal_line_ms("{\"time\":1.5,", 12, &ms), 0);
    assert_true(ms == 1500);
    assert_int_equal(el_journal_line_ms("{\"time\":x}", 10, &ms), -1);
    assert_int_equal(el_journal_line_ms("{\"tim", 5, &ms), -1);
    assert_int_equal(el_journal_line_ms("garbage line\n", 13, &ms), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wants_every_method_but_the_safe_ones),
        cmocka_unit_test(test_format_writes_every_field_time_first),
        cmocka_unit_test(test_format_escapes_every_byte_outside_printable_ascii),
        cmocka_unit_test(test_format_cuts_long_strings_and_always_fits),
        cmocka_unit_test(test_line_time_reads_the_leading_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
