/* test_http.c - the strict HTTP/1.1 parser, the chunked codec and the lexical
 * kit (tokens, OWS, quoted strings, list elements, cookies). */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "einlass/http.h"

#define MAX_HEAD 8192

static struct el_http_msg M;

/* Parse from an exact-size heap copy, so ASan sees any read past len; the
 * result's pointers are moved back into s for the caller's checks. */
static const char *rebase(const char *p, const char *from, size_t n, const char *to)
{
    uintptr_t u = (uintptr_t)p, f = (uintptr_t)from;
    return u >= f && u < f + n ? to + (u - f) : p;
}

static int req_n(const char *s, size_t n, size_t max_head)
{
    char *b = malloc(n ? n : 1);
    memcpy(b, s, n);
    int rc = el_http_parse_request(b, n, max_head, &M);
    if (rc > 0) {
        M.method = rebase(M.method, b, n, s);
        M.target = rebase(M.target, b, n, s);
        M.path = rebase(M.path, b, n, s);
        M.query = rebase(M.query, b, n, s);
        M.authority = rebase(M.authority, b, n, s);
        for (size_t i = 0; i < M.nheaders; i++) {
            M.headers[i].name = rebase(M.headers[i].name, b, n, s);
            M.headers[i].value = rebase(M.headers[i].value, b, n, s);
        }
    }
    free(b);
    return rc;
}

static int req(const char *s)
{
    return req_n(s, strlen(s), MAX_HEAD);
}

static int resp(const char *s, bool head)
{
    return el_http_parse_response(s, strlen(s), MAX_HEAD, head, &M);
}

static bool eq(const char *p, size_t n, const char *lit)
{
    return n == strlen(lit) && memcmp(p, lit, n) == 0;
}

#define assert_span(p, n, lit) assert_true(eq((p), (n), (lit)))

/* One test function per rejected request. */
#define REQ_REJECT(fn, input, expect)                                                              \
    static void fn(void **state)                                                                   \
    {                                                                                              \
        (void)state;                                                                               \
        assert_int_equal(req(input), (expect));                                                    \
    }

#define H "Host: example.org\r\n"

/* framing */
REQ_REJECT(reject_cl_with_te,
           "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
           EL_HTTP_BAD)
REQ_REJECT(reject_te_with_cl_after,
           "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
           EL_HTTP_BAD)
REQ_REJECT(reject_te_gzip_chunked,
           "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip, chunked\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_te_chunked_chunked,
           "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked, chunked\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_te_duplicate_fields,
           "POST / HTTP/1.1\r\n" H
           "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
           EL_HTTP_BAD)
REQ_REJECT(reject_te_gzip, "POST / HTTP/1.1\r\n" H "Transfer-Encoding: gzip\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_te_empty, "POST / HTTP/1.1\r\n" H "Transfer-Encoding: \r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_te_chunked_param,
           "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked;q=1\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_te_in_http10, "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
           EL_HTTP_BAD)
REQ_REJECT(reject_cl_differing_fields,
           "POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_cl_differing_list, "POST / HTTP/1.1\r\n" H "Content-Length: 5, 6\r\n\r\n",
           EL_HTTP_BAD)
REQ_REJECT(reject_cl_negative, "POST / HTTP/1.1\r\n" H "Content-Length: -5\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_cl_plus, "POST / HTTP/1.1\r\n" H "Content-Length: +5\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_cl_non_numeric, "POST / HTTP/1.1\r\n" H "Content-Length: abc\r\n\r\n",
           EL_HTTP_BAD)
REQ_REJECT(reject_cl_hex, "POST / HTTP/1.1\r\n" H "Content-Length: 0x5\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_cl_inner_space, "POST / HTTP/1.1\r\n" H "Content-Length: 1 2\r\n\r\n",
           EL_HTTP_BAD)
REQ_REJECT(reject_cl_empty, "POST / HTTP/1.1\r\n" H "Content-Length: \r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_cl_empty_list_element, "POST / HTTP/1.1\r\n" H "Content-Length: 5,,5\r\n\r\n",
           EL_HTTP_BAD)
REQ_REJECT(reject_cl_trailing_comma, "POST / HTTP/1.1\r\n" H "Content-Length: 5,\r\n\r\n",
           EL_HTTP_BAD)
REQ_REJECT(reject_cl_overflow_u64,
           "POST / HTTP/1.1\r\n" H "Content-Length: 99999999999999999999\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_cl_above_int64,
           "POST / HTTP/1.1\r\n" H "Content-Length: 9223372036854775808\r\n\r\n", EL_HTTP_BAD)
/* field syntax */
REQ_REJECT(reject_space_before_colon, "GET / HTTP/1.1\r\nHost : example.org\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_tab_before_colon, "GET / HTTP/1.1\r\n" H "X-A\t: 1\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_space_before_colon_cl,
           "POST / HTTP/1.1\r\n" H "Content-Length : 5\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_obs_fold_space, "GET / HTTP/1.1\r\n" H "X-A: 1\r\n 2\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_obs_fold_tab, "GET / HTTP/1.1\r\n" H "X-A: 1\r\n\t2\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_space_before_first_field, "GET / HTTP/1.1\r\n " H "\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_bare_cr_in_value, "GET / HTTP/1.1\r\n" H "X-A: 1\r2\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_bare_cr_line_end, "GET / HTTP/1.1\r\n" H "X-A: 1\rX-B: 2\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_bare_lf_field_end, "GET / HTTP/1.1\r\n" H "X-A: 1\nX-B: 2\r\n\r\n",
           EL_HTTP_BAD)
REQ_REJECT(reject_bare_lf_everywhere, "GET / HTTP/1.1\nHost: example.org\n\n", EL_HTTP_BAD)
REQ_REJECT(reject_bare_lf_request_line, "GET / HTTP/1.1\n" H "\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_bare_lf_final, "GET / HTTP/1.1\r\n" H "\n", EL_HTTP_BAD)
REQ_REJECT(reject_ctl_in_value, "GET / HTTP/1.1\r\n" H "X-A: a\x01z\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_del_in_value, "GET / HTTP/1.1\r\n" H "X-A: a\x7fz\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_esc_in_value, "GET / HTTP/1.1\r\n" H "X-A: a\x1bz\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_invalid_name_char, "GET / HTTP/1.1\r\n" H "X@A: 1\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_name_with_slash, "GET / HTTP/1.1\r\n" H "X/A: 1\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_name_obs_text, "GET / HTTP/1.1\r\n" H "X\xc3\xa4: 1\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_empty_name, "GET / HTTP/1.1\r\n" H ": 1\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_no_colon, "GET / HTTP/1.1\r\n" H "X-A 1\r\n\r\n", EL_HTTP_BAD)
/* request line */
REQ_REJECT(reject_method_bad_char, "G(T / HTTP/1.1\r\n" H "\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_method_empty, " / HTTP/1.1\r\n" H "\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_rl_two_spaces, "GET  / HTTP/1.1\r\n" H "\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_rl_two_spaces_before_version, "GET /  HTTP/1.1\r\n" H "\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_rl_trailing_space, "GET / HTTP/1.1 \r\n" H "\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_rl_tab_separator, "GET\t/ HTTP/1.1\r\n" H "\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_rl_space_in_target, "GET /a b HTTP/1.1\r\n" H "\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_rl_ctl_in_target, "GET /a\x01z HTTP/1.1\r\n" H "\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_rl_no_version, "GET /\r\n" H "\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_rl_lowercase_version, "GET / http/1.1\r\n" H "\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_rl_version_letters, "GET / HTTP/1.x\r\n" H "\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_rl_version_long, "GET / HTTP/1.10\r\n" H "\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_rl_only_method, "GET\r\n" H "\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_version_2, "GET / HTTP/2.0\r\n" H "\r\n", EL_HTTP_VERSION)
REQ_REJECT(reject_version_1_2, "GET / HTTP/1.2\r\n" H "\r\n", EL_HTTP_VERSION)
REQ_REJECT(reject_version_0_9, "GET / HTTP/0.9\r\n" H "\r\n", EL_HTTP_VERSION)
REQ_REJECT(reject_target_relative, "GET foo HTTP/1.1\r\n" H "\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_target_no_authority, "GET http:/// HTTP/1.1\r\n" H "\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_asterisk_with_get, "GET * HTTP/1.1\r\n" H "\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_two_leading_crlf, "\r\n\r\nGET / HTTP/1.1\r\n" H "\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_leading_bare_lf, "\nGET / HTTP/1.1\r\n" H "\r\n", EL_HTTP_BAD)
static void reject_nul_in_value(void **state)
{
    (void)state;
    static const char s[] = "GET / HTTP/1.1\r\n" H "X-A: a\0b\r\n\r\n";
    assert_int_equal(req_n(s, sizeof(s) - 1, MAX_HEAD), EL_HTTP_BAD);
    static const char t[] = "GET /a\0b HTTP/1.1\r\n" H "\r\n";
    assert_int_equal(req_n(t, sizeof(t) - 1, MAX_HEAD), EL_HTTP_BAD);
    static const char m[] = "G\0T / HTTP/1.1\r\n" H "\r\n";
    assert_int_equal(req_n(m, sizeof(m) - 1, MAX_HEAD), EL_HTTP_BAD);
}

/* Host */
REQ_REJECT(reject_http11_without_host, "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_two_hosts, "GET / HTTP/1.1\r\n" H "host: other.org\r\n\r\n", EL_HTTP_BAD)
REQ_REJECT(reject_two_hosts_http10, "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", EL_HTTP_BAD)

static void accept_simple_get(void **state)
{
    (void)state;
    const char *s = "GET /a/b?x=1&y=2 HTTP/1.1\r\nHost: example.org\r\n"
                    "User-Agent:  curl/8 \t\r\nAccept: */*\r\nX-Empty:\r\n\r\nBODY";
    int rc = req(s);
    assert_int_equal(rc, (int)strlen(s) - 4);
    assert_int_equal(M.head_len, (size_t)rc);
    assert_span(M.method, M.method_len, "GET");
    assert_span(M.target, M.target_len, "/a/b?x=1&y=2");
    assert_span(M.path, M.path_len, "/a/b");
    assert_int_equal(M.minor_version, 1);
    assert_true(M.keep_alive);
    assert_true(M.has_host);
    assert_false(M.expect_continue);
    assert_int_equal(M.body, EL_BODY_NONE);
    assert_int_equal(M.nheaders, 4);
    assert_span(M.headers[0].name, M.headers[0].name_len, "Host");
    assert_span(M.headers[0].value, M.headers[0].value_len, "example.org");
    assert_span(M.headers[1].value, M.headers[1].value_len, "curl/8");
    assert_span(M.headers[3].name, M.headers[3].name_len, "X-Empty");
    assert_int_equal(M.headers[3].value_len, 0);
    for (size_t i = 0; i < M.nheaders; i++) assert_int_equal(M.headers[i].flags, 0);
    const struct el_http_header *h = el_http_find(&M, "user-AGENT", 10);
    assert_non_null(h);
    assert_ptr_equal(h, &M.headers[1]);
    assert_null(el_http_find(&M, "Cookie", 6));
    assert_null(el_http_find(&M, "Hos", 3));
}

static void accept_value_chars(void **state)
{
    (void)state;
    assert_true(req("GET / HTTP/1.1\r\n" H "X-A: a\tb \xc3\xa4\xff \"~\"\r\n\r\n") > 0);
    assert_span(M.headers[1].value, M.headers[1].value_len, "a\tb \xc3\xa4\xff \"~\"");
    /* obs-text is allowed in the target, and every tchar in names */
    assert_true(req("GET /\xc3\xa4 HTTP/1.1\r\n" H "!#$%&'*+-.^_`|~09azAZ: 1\r\n\r\n") > 0);
}

static void accept_content_length(void **state)
{
    (void)state;
    assert_true(req("POST /f HTTP/1.1\r\n" H "Content-Length: 42\r\n\r\n") > 0);
    assert_int_equal(M.body, EL_BODY_LENGTH);
    assert_int_equal(M.content_length, 42);
    assert_int_equal(M.headers[1].flags, EL_HDR_FRAMING);
    assert_true(req("POST /f HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n") > 0);
    assert_int_equal(M.body, EL_BODY_LENGTH);
    assert_int_equal(M.content_length, 0);
    assert_true(req("POST /f HTTP/1.1\r\n" H "Content-Length: 9223372036854775807\r\n\r\n") > 0);
    assert_int_equal(M.content_length, INT64_MAX);
}

static void accept_content_length_repeated_same(void **state)
{
    (void)state;
    assert_true(req("POST / HTTP/1.1\r\n" H "Content-Length: 5, 5\r\n\r\n") > 0);
    assert_int_equal(M.body, EL_BODY_LENGTH);
    assert_int_equal(M.content_length, 5);
    assert_true(req("POST / HTTP/1.1\r\n" H "Content-Length: 7\r\ncontent-length: 7\r\n\r\n") > 0);
    assert_int_equal(M.content_length, 7);
    assert_int_equal(M.headers[2].flags, EL_HDR_FRAMING);
}

static void accept_chunked(void **state)
{
    (void)state;
    assert_true(req("POST / HTTP/1.1\r\n" H "Transfer-Encoding: ChUnKeD \r\n\r\n") > 0);
    assert_int_equal(M.body, EL_BODY_CHUNKED);
    assert_int_equal(M.headers[1].flags, EL_HDR_FRAMING);
}

static void keep_alive_rules(void **state)
{
    (void)state;
    assert_true(req("GET / HTTP/1.1\r\n" H "Connection: close\r\n\r\n") > 0);
    assert_false(M.keep_alive);
    assert_true(req("GET / HTTP/1.1\r\n" H "Connection: keep-alive, CLOSE\r\n\r\n") > 0);
    assert_false(M.keep_alive);
    assert_true(req("GET / HTTP/1.1\r\n" H "Connection: upgrade\r\n\r\n") > 0);
    assert_true(M.keep_alive);
    assert_true(req("GET / HTTP/1.0\r\n\r\n") > 0);
    assert_false(M.keep_alive);
    assert_false(M.has_host);
    assert_int_equal(M.minor_version, 0);
    assert_true(req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") > 0);
    assert_true(M.keep_alive);
    assert_true(req("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n") > 0);
    assert_false(M.keep_alive);
}

static void hop_by_hop_flags(void **state)
{
    (void)state;
    const char *s = "GET / HTTP/1.1\r\n" H "Connection: X-Foo, , host, content-length\r\n"
                    "Keep-Alive: 5\r\nTE: trailers\r\nTrailer: X\r\nUpgrade: ws\r\n"
                    "Proxy-Connection: x\r\nx-foo: 1\r\nX-Bar: 2\r\nContent-Length: 0\r\n"
                    "X-Foo-Bar: 3\r\n\r\n";
    assert_true(req(s) > 0);
    assert_int_equal(M.nheaders, 11);
    assert_int_equal(M.headers[0].flags, 0);          /* Host: never stripped */
    for (int i = 1; i <= 7; i++) assert_int_equal(M.headers[i].flags, EL_HDR_HOP);
    assert_int_equal(M.headers[8].flags, 0);          /* X-Bar */
    assert_int_equal(M.headers[9].flags, EL_HDR_FRAMING);
    assert_int_equal(M.headers[10].flags, 0);         /* X-Foo-Bar */
}

static void expect_continue(void **state)
{
    (void)state;
    assert_true(req("POST / HTTP/1.1\r\n" H "Expect: 100-Continue\r\nContent-Length: 3\r\n\r\n") >
                0);
    assert_true(M.expect_continue);
    assert_true(req("POST / HTTP/1.1\r\n" H "Expect: 100-continued\r\n\r\n") > 0);
    assert_false(M.expect_continue);
    assert_true(req("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n") > 0);
    assert_false(M.expect_continue); /* RFC 9110 10.1.1: ignored in HTTP/1.0 */
}

static void upgrade_needs_field_and_connection_token(void **state)
{
    (void)state;
    assert_true(req("GET / HTTP/1.1\r\n" H
                    "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n") > 0);
    assert_true(M.upgrade);
    assert_true(req("GET / HTTP/1.1\r\n" H "Upgrade: websocket\r\n\r\n") > 0);
    assert_false(M.upgrade);
    assert_true(req("GET / HTTP/1.1\r\n" H "Connection: upgrade\r\n\r\n") > 0);
    assert_false(M.upgrade);
    assert_true(req("GET / HTTP/1.1\r\n" H "Upgrade: websocket\r\nConnection: upgraded\r\n\r\n") >
                0);
    assert_false(M.upgrade);
    assert_true(req("GET / HTTP/1.1\r\n" H "\r\n") > 0);
    assert_false(M.upgrade); /* reset between messages */
}

static void target_forms(void **state)
{
    (void)state;
    static const char *const cases[][3] = {
        /* method, target, expected path */
        {"GET", "http://example.org:8080/p/q?z", "/p/q"},
        {"GET", "https://example.org?z", "/"},
        {"GET", "http://example.org", "/"},
        {"OPTIONS", "*", "*"},
        {"CONNECT", "example.org:443", "example.org:443"},
        {"GET", "/only", "/only"},
        {"GET", "/?", "/"},
        {"GET", "/a?b?c", "/a"},
    };
    char buf[256];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(buf, sizeof(buf), "%s %s HTTP/1.1\r\n" H "\r\n", cases[i][0], cases[i][1]);
        assert_int_equal(req(buf), (int)strlen(buf));
        assert_span(M.target, M.target_len, cases[i][1]);
        assert_span(M.path, M.path_len, cases[i][2]);
    }
}

/* The path's normal form: what routes match and what the backend gets. */
static void path_normal_forms(void **state)
{
    (void)state;
    static const char *const cases[][2] = {
        /* received path, normal form */
        {"/", "/"},
        {"/booking", "/booking"},
        {"/static/../booking", "/booking"},
        {"/static/./app.css", "/static/app.css"},
        {"/a/b/../../c", "/c"},
        {"/..", "/"},
        {"/../../x", "/x"}, /* never above the root */
        {"/a/.", "/a/"},
        {"/a/..", "/"},
        {"/a/./", "/a/"},
        {"//a///b//", "/a/b/"}, /* runs of '/' merge, a final one stays */
        {"/static//../booking", "/booking"}, /* merged first, as nginx does */
        {"/%7euser/%41%62%2D%5f%2e", "/~user/Ab-_."},
        {"/file%2ecss", "/file.css"},     /* an encoded dot inside a segment: data */
        {"/%2e%2e%2e", "/..."},           /* three dots are no dot segment */
        {"/a%20b/%c3%a4", "/a%20b/%C3%A4"}, /* other escapes stay, upper case */
        {"/a%25/b", "/a%25/b"},
        {"/.well-known/x", "/.well-known/x"},
        {"/.a/..b/b..", "/.a/..b/b.."},
        {"/a;b/x..;y/...;z", "/a;b/x..;y/...;z"}, /* ';' after more than dots: data */
    };
    char out[64];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *in = cases[i][0], *want = cases[i][1];
        size_t n = 0;
        int rc = el_http_path_normalize(in, strlen(in), out, &n);
        if (rc == -1 || !eq(out, n, want))
            fail_msg("'%s': rc %d, got '%.*s', want '%s'", in, rc, (int)n, out, want);
        assert_int_equal(rc, strcmp(in, want) != 0);
        /* idempotent, and in place gives the same */
        assert_int_equal(el_http_path_normalize(out, n, NULL, NULL), 0);
        char copy[64];
        strcpy(copy, in);
        assert_int_equal(el_http_path_normalize(copy, strlen(copy), copy, &n), rc);
        assert_true(eq(copy, n, want));
    }
}

/* Targets whose meaning differs between decoders are refused (400). */
static void test_ambiguous_target_is_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "/static/%2e%2e/booking", "/static/..%2fbooking", "/static/%2E%2e/booking",
        "/appointments/%2e%2e%2fbook/cancel", "/a/%2e", "/a/.%2E", "/a/%2e./b",
        "/a%2Fb", "/a%2fb", "/a%5cb", "/a%5Cb", "/a%00b", "/a\\b", "/static/..\\booking",
        "/a%", "/a%4", "/a%g0", "/a%0g", "/a%%41", "/a#b", "/static/..;/booking",
        "/static/.;x/booking", "/static/..%3b/booking", "/static/%2e%2e;/booking",
    };
    char buf[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (el_http_path_normalize(bad[i], strlen(bad[i]), NULL, NULL) != -1)
            fail_msg("path '%s' not refused", bad[i]);
        snprintf(buf, sizeof(buf), "GET %s?q HTTP/1.1\r\n" H "\r\n", bad[i]);
        if (req(buf) != EL_HTTP_BAD)
            fail_msg("target '%s' not refused", bad[i]);
        snprintf(buf, sizeof(buf), "GET http://portal%s HTTP/1.1\r\n" H "\r\n", bad[i]);
        if (req(buf) != EL_HTTP_BAD) fail_msg("absolute '%s' not refused", bad[i]);
    }
    /* the query is not the path: nothing in it is refused or changed */
    assert_true(req("GET /a?x=%2e%2e%2f..%5c\\&y=%00 HTTP/1.1\r\n" H "\r\n") > 0);
    assert_true(M.path_normal);
    assert_span(M.query, M.query_len, "?x=%2e%2e%2f..%5c\\&y=%00");
}

static void path_normal_flag_and_norm_path(void **state)
{
    (void)state;
    char buf[64];
    size_t n;
    assert_true(req("GET /static/app.css?v=1 HTTP/1.1\r\n" H "\r\n") > 0);
    assert_true(M.path_normal);
    assert_true(el_http_norm_path(&M, buf, &n) == M.path);
    assert_true(req("GET /.well-known/x HTTP/1.1\r\n" H "\r\n") > 0);
    assert_true(M.path_normal); /* the slow scan, and still its own normal form */
    assert_true(req("GET /static/../booking?v=1 HTTP/1.1\r\n" H "\r\n") > 0);
    assert_false(M.path_normal);
    assert_span(M.path, M.path_len, "/static/../booking");
    const char *p = el_http_norm_path(&M, buf, &n);
    assert_true(p == buf);
    assert_true(eq(p, n, "/booking"));
}

/* RFC 9112 3.2.2: an absolute-form target's authority is the Host. */
static void absolute_form_authority_and_query(void **state)
{
    (void)state;
    assert_true(req("GET http://portal:8080/a/../b?x=1 HTTP/1.1\r\nHost: evil.example\r\n\r\n") >
                0);
    assert_span(M.authority, M.authority_len, "portal:8080");
    assert_span(M.path, M.path_len, "/a/../b");
    assert_false(M.path_normal);
    assert_span(M.query, M.query_len, "?x=1");
    assert_true(req("GET HTTPS://[::1]:8443?x HTTP/1.1\r\n" H "\r\n") > 0);
    assert_span(M.authority, M.authority_len, "[::1]:8443");
    assert_span(M.path, M.path_len, "/");
    assert_span(M.query, M.query_len, "?x");
    assert_true(req("GET http://portal HTTP/1.0\r\n\r\n") > 0); /* 1.0: Host may be absent */
    assert_span(M.authority, M.authority_len, "portal");
    assert_int_equal(M.query_len, 0);
    assert_true(req("GET /a HTTP/1.1\r\n" H "\r\n") > 0);
    assert_null(M.authority);
    assert_int_equal(M.query_len, 0);
    /* userinfo, an empty host, a scheme that is not http(s), a bad byte */
    assert_int_equal(req("GET http://user@portal/ HTTP/1.1\r\n" H "\r\n"), EL_HTTP_BAD);
    assert_int_equal(req("GET http://:80/ HTTP/1.1\r\n" H "\r\n"), EL_HTTP_BAD);
    assert_int_equal(req("GET ftp://portal/ HTTP/1.1\r\n" H "\r\n"), EL_HTTP_BAD);
    assert_int_equal(req("GET http://por\"tal/ HTTP/1.1\r\n" H "\r\n"), EL_HTTP_BAD);
    /* HTTP/1.1 needs a Host even with an absolute-form target */
    assert_int_equal(req("GET http://portal/ HTTP/1.1\r\n\r\n"), EL_HTTP_BAD);
}

static void leading_crlf_skipped(void **state)
{
    (void)state;
    const char *s = "\r\nGET / HTTP/1.1\r\n" H "\r\n";
    assert_int_equal(req(s), (int)strlen(s));
    assert_span(M.method, M.method_len, "GET");
}

static void too_large_head(void **state)
{
    (void)state;
    const char *s = "GET / HTTP/1.1\r\n" H "X-A: 0123456789\r\n\r\n";
    size_t n = strlen(s);
    assert_int_equal(req_n(s, n, n), (int)n);         /* exactly max_head fits */
    assert_int_equal(req_n(s, n, n - 1), EL_HTTP_TOO_LARGE);
    assert_int_equal(req_n(s, n - 2, n - 2), EL_HTTP_TOO_LARGE); /* incomplete at the limit */
    assert_int_equal(req_n(s, n - 2, n - 1), EL_HTTP_INCOMPLETE);
    assert_int_equal(req_n(s, 10, 10), EL_HTTP_TOO_LARGE); /* start line over the limit */
}

static char *many_fields(int n)
{
    size_t cap = 64 + (size_t)n * 16;
    char *b = malloc(cap);
    size_t off = (size_t)snprintf(b, cap, "GET / HTTP/1.1\r\n" H);
    for (int i = 1; i < n; i++) off += (size_t)snprintf(b + off, cap - off, "X-%d: v\r\n", i);
    snprintf(b + off, cap - off, "\r\n");
    return b;
}

static void too_many_fields(void **state)
{
    (void)state;
    char *ok = many_fields(EL_HTTP_MAX_HEADERS);
    assert_int_equal(req_n(ok, strlen(ok), 1 << 20), (int)strlen(ok));
    assert_int_equal(M.nheaders, EL_HTTP_MAX_HEADERS);
    free(ok);
    char *bad = many_fields(EL_HTTP_MAX_HEADERS + 1);
    assert_int_equal(req_n(bad, strlen(bad), 1 << 20), EL_HTTP_TOO_LARGE);
    free(bad);
}

/* Every valid request, cut at every byte, is INCOMPLETE until the whole head
 * is there, and then gives the same result with or without bytes after it. */
static const char *valid_requests[] = {
    "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "\r\nGET /x?y HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    ("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\nExpect: 100-continue\r\n"
     "Cookie: a=b; c=d\r\n\r\n"),
    "PUT http://h/p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nX-A:\r\n\r\n",
    "GET / HTTP/1.0\r\nConnection: keep-alive, X-T\r\nX-T: 1\r\n\r\n",
    "OPTIONS * HTTP/1.1\r\nHost: a\r\nX-Utf8: \xc3\xa4\t\r\n\r\n",
};

static void compare_msgs(const struct el_http_msg *a, const struct el_http_msg *b, ptrdiff_t off)
{
    assert_int_equal(a->method_len, b->method_len);
    assert_ptr_equal(a->method + off, b->method);
    assert_int_equal(a->target_len, b->target_len);
    assert_int_equal(a->path_len, b->path_len);
    assert_int_equal(a->minor_version, b->minor_version);
    assert_int_equal(a->keep_alive, b->keep_alive);
    assert_int_equal(a->expect_continue, b->expect_continue);
    assert_int_equal(a->has_host, b->has_host);
    assert_int_equal(a->body, b->body);
    assert_int_equal(a->content_length, b->content_length);
    assert_int_equal(a->head_len, b->head_len);
    assert_int_equal(a->nheaders, b->nheaders);
    for (size_t i = 0; i < a->nheaders; i++) {
        assert_ptr_equal(a->headers[i].name + off, b->headers[i].name);
        assert_ptr_equal(a->headers[i].value + off, b->headers[i].value);
        assert_int_equal(a->headers[i].name_len, b->headers[i].name_len);
        assert_int_equal(a->headers[i].value_len, b->headers[i].value_len);
        assert_int_equal(a->headers[i].flags, b->headers[i].flags);
    }
}

static void split_at_every_byte(void **state)
{
    (void)state;
    static struct el_http_msg whole, part;
    for (size_t k = 0; k < sizeof(valid_requests) / sizeof(valid_requests[0]); k++) {
        const char *s = valid_requests[k];
        size_t n = strlen(s);
        char *b = malloc(n + 16);
        memcpy(b, s, n);
        memcpy(b + n, "tail-bytes-0123", 16);
        assert_int_equal(el_http_parse_request(b, n + 16, MAX_HEAD, &whole), (int)n);
        for (size_t cut = 0; cut < n; cut++) {
            char *p = malloc(cut ? cut : 1); /* exact size: ASan catches over-reads */
            memcpy(p, s, cut);
            assert_int_equal(el_http_parse_request(p, cut, MAX_HEAD, &part), EL_HTTP_INCOMPLETE);
            free(p);
        }
        char *p = malloc(n);
        memcpy(p, s, n);
        assert_int_equal(el_http_parse_request(p, n, MAX_HEAD, &part), (int)n);
        compare_msgs(&part, &whole, b - p);
        free(p);
        free(b);
    }
}

/* responses */
static void response_content_length(void **state)
{
    (void)state;
    const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nServer-Timing: db;dur=12.5\r\n\r\n";
    assert_int_equal(resp(s, false), (int)strlen(s));
    assert_int_equal(M.status, 200);
    assert_span(M.reason, M.reason_len, "OK");
    assert_int_equal(M.body, EL_BODY_LENGTH);
    assert_int_equal(M.content_length, 12);
    assert_true(M.keep_alive);
    assert_span(M.headers[1].value, M.headers[1].value_len, "db;dur=12.5");
}

static void response_reason_forms(void **state)
{
    (void)state;
    assert_true(resp("HTTP/1.1 204 \r\n\r\n", false) > 0);
    assert_int_equal(M.status, 204);
    assert_int_equal(M.reason_len, 0);
    assert_true(resp("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false) > 0);
    assert_int_equal(M.reason_len, 0);
    assert_true(resp("HTTP/1.1 404 Not  Found \xc3\xa4\r\nContent-Length: 0\r\n\r\n", false) > 0);
    assert_span(M.reason, M.reason_len, "Not  Found \xc3\xa4");
}

static void response_body_none(void **state)
{
    (void)state;
    assert_true(resp("HTTP/1.1 100 Continue\r\n\r\n", false) > 0);
    assert_int_equal(M.body, EL_BODY_NONE);
    assert_true(resp("HTTP/1.1 101 Switching Protocols\r\nUpgrade: ws\r\n\r\n", false) > 0);
    assert_int_equal(M.body, EL_BODY_NONE);
    assert_true(resp("HTTP/1.1 204 No Content\r\n\r\n", false) > 0);
    assert_int_equal(M.body, EL_BODY_NONE);
    assert_true(M.keep_alive);
    assert_true(resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false) > 0);
    assert_int_equal(M.body, EL_BODY_NONE);
    assert_true(resp("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true) > 0);
    assert_int_equal(M.body, EL_BODY_NONE);
    assert_true(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", true) > 0);
    assert_int_equal(M.body, EL_BODY_NONE);
}

static void response_chunked_and_close(void **state)
{
    (void)state;
    assert_true(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false) > 0);
    assert_int_equal(M.body, EL_BODY_CHUNKED);
    assert_true(M.keep_alive);
    assert_true(resp("HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n", false) > 0);
    assert_int_equal(M.body, EL_BODY_CLOSE);
    assert_false(M.keep_alive);
    assert_true(resp("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false) > 0);
    assert_false(M.keep_alive);
    assert_true(resp("HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n",
                     false) > 0);
    assert_true(M.keep_alive);
    assert_true(resp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n", false) >
                0);
    assert_false(M.keep_alive);
}

static void response_rejects(void **state)
{
    (void)state;
    assert_int_equal(resp("HTTP/1.1 20 OK\r\n\r\n", false), EL_HTTP_BAD);
    assert_int_equal(resp("HTTP/1.1 2000 OK\r\n\r\n", false), EL_HTTP_BAD);
    assert_int_equal(resp("HTTP/1.1 099 X\r\n\r\n", false), EL_HTTP_BAD);
    assert_int_equal(resp("HTTP/1.1 abc X\r\n\r\n", false), EL_HTTP_BAD);
    assert_int_equal(resp("HTTP/1.1  200 OK\r\n\r\n", false), EL_HTTP_BAD);
    assert_int_equal(resp("HTTP/1.1 200 O\x01K\r\n\r\n", false), EL_HTTP_BAD);
    assert_int_equal(resp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                          false),
                     EL_HTTP_BAD);
    assert_int_equal(resp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                          false),
                     EL_HTTP_BAD);
    assert_int_equal(resp("HTTP/1.1 200 OK\r\nX: 1\r\n folded\r\n\r\n", false), EL_HTTP_BAD);
    assert_int_equal(resp("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false),
                     EL_HTTP_BAD);
    assert_int_equal(resp("HTTP/2.0 200 OK\r\n\r\n", false), EL_HTTP_VERSION);
    assert_int_equal(resp("\r\nHTTP/1.1 200 OK\r\n\r\n", false), EL_HTTP_BAD);
    assert_int_equal(resp("HTTP/1.1 200 OK\r\n", false), EL_HTTP_INCOMPLETE);
}

/* chunked decoding */

/* Feed in[0..n) as it would arrive in pieces of step bytes (0: all at once),
 * each piece copied to an exact-size buffer so ASan catches over-reads.
 * Appends the data to out; returns the last result and sets *consumed. */
static int decode(const char *in, size_t n, size_t step, char *out, size_t *out_len,
                  size_t *consumed)
{
    struct el_chunked c = {0};
    size_t pos = 0, end = step && step < n ? step : n;
    int rc;
    *out_len = 0;
    for (;;) {
        size_t avail = end - pos, used = 9999, dlen = 9999;
        const char *data = in;
        char *piece = malloc(avail + 1);
        memcpy(piece, in + pos, avail);
        rc = el_chunked_decode(&c, piece, avail, &used, &data, &dlen);
        assert_true(used <= avail);
        if (dlen > 0) {
            assert_true(data >= piece && data + dlen <= piece + used);
            memcpy(out + *out_len, data, dlen);
            *out_len += dlen;
        } else {
            assert_null(data);
        }
        free(piece);
        pos += used;
        if (rc != 0) break;
        if (pos == end) {
            if (end == n) break; /* all input consumed, message not complete */
            end = step && end + step < n ? end + step : n;
        } else {
            assert_true(used > 0);
        }
    }
    *consumed = pos;
    return rc;
}

struct chunk_case {
    const char *in;   /* encoded body, followed by bytes of the next message */
    size_t in_len;    /* length of in (may contain NUL) */
    const char *data; /* decoded data */
    size_t data_len;  /* its length (may contain NUL) */
    size_t body_len;  /* bytes of in that belong to the body */
};

#define CC(body, data, next)                                                                       \
    {body next, sizeof(body next) - 1, data, sizeof(data) - 1, sizeof(body) - 1}

static const struct chunk_case good_chunks[] = {
    CC("5\r\nhello\r\n0\r\n\r\n", "hello", "GET / HTTP/1.1\r\n"),
    CC("0\r\n\r\n", "", ""),
    CC("3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n", "abc0123456789", "X"),
    CC("a\r\n0123456789\r\n00\r\n\r\n", "0123456789", ""),
    CC("000000000000000f\r\n0123456789abcde\r\n0\r\n\r\n", "0123456789abcde", ""),
    CC("5;name\r\nhello\r\n0\r\n\r\n", "hello", ""),
    CC("5;a=b;c=\"d;e\"\r\nhello\r\n0;last\r\n\r\n", "hello", "zz"),
    CC("5 ; a = \"x\\\"y\" \t; b = tok ;c\r\nhello\r\n0\r\n\r\n", "hello", ""),
    CC("2\r\n\r\n\r\n0\r\nX-Trailer: 1\r\nChecksum:  abc \xc3\xa4\r\nE:\r\n\r\n", "\r\n", "G"),
    CC("4\r\na\0b\xff\r\n0\r\n\r\n", "a\0b\xff", ""),
};

static void chunked_good_whole_and_bytewise(void **state)
{
    (void)state;
    char out[256];
    for (size_t k = 0; k < sizeof(good_chunks) / sizeof(good_chunks[0]); k++) {
        const struct chunk_case *t = &good_chunks[k];
        size_t dlen = t->data_len;
        for (size_t step = 0; step <= 3; step++) {
            size_t out_len, consumed;
            int rc = decode(t->in, t->in_len, step, out, &out_len, &consumed);
            assert_int_equal(rc, 1);
            assert_int_equal(consumed, t->body_len);
            assert_int_equal(out_len, dlen);
            assert_memory_equal(out, t->data, dlen);
        }
        /* every prefix short of the end is incomplete */
        for (size_t cut = 0; cut < t->body_len; cut++) {
            size_t out_len, consumed;
            assert_int_equal(decode(t->in, cut, 0, out, &out_len, &consumed), 0);
            assert_int_equal(consumed, cut);
        }
    }
}

static int decode_str(const char *s)
{
    static char out[65536];
    size_t out_len, consumed;
    int whole = decode(s, strlen(s), 0, out, &out_len, &consumed);
    int bytewise = decode(s, strlen(s), 1, out, &out_len, &consumed);
    assert_int_equal(whole, bytewise);
    return whole;
}

#define CHUNK_REJECT(fn, input)                                                                    \
    static void fn(void **state)                                                                   \
    {                                                                                              \
        (void)state;                                                                               \
        assert_int_equal(decode_str(input), -1);                                                   \
    }

CHUNK_REJECT(chunk_reject_empty_size, "\r\nhello\r\n0\r\n\r\n")
CHUNK_REJECT(chunk_reject_non_hex, "g\r\nhello\r\n0\r\n\r\n")
CHUNK_REJECT(chunk_reject_negative, "-5\r\nhello\r\n0\r\n\r\n")
CHUNK_REJECT(chunk_reject_0x_prefix, "0x5\r\nhello\r\n0\r\n\r\n")
CHUNK_REJECT(chunk_reject_17_digits, "00000000000000005\r\nhello\r\n0\r\n\r\n")
CHUNK_REJECT(chunk_reject_leading_space, " 5\r\nhello\r\n0\r\n\r\n")
CHUNK_REJECT(chunk_reject_trailing_space, "5 \r\nhello\r\n0\r\n\r\n")
CHUNK_REJECT(chunk_reject_bare_lf_size, "5\nhello\r\n0\r\n\r\n")
CHUNK_REJECT(chunk_reject_bare_cr_size, "5\rhello\r\n0\r\n\r\n")
CHUNK_REJECT(chunk_reject_missing_data_crlf, "5\r\nhelloX\r\n0\r\n\r\n")
CHUNK_REJECT(chunk_reject_data_bare_lf, "5\r\nhello\n0\r\n\r\n")
CHUNK_REJECT(chunk_reject_data_too_long, "4\r\nhello\r\n0\r\n\r\n")
CHUNK_REJECT(chunk_reject_ext_empty_name, "5;\r\nhello\r\n0\r\n\r\n")
CHUNK_REJECT(chunk_reject_ext_no_name, "5;=x\r\nhello\r\n0\r\n\r\n")
CHUNK_REJECT(chunk_reject_ext_empty_value, "5;a=\r\nhello\r\n0\r\n\r\n")
CHUNK_REJECT(chunk_reject_ext_trailing_space, "5;a \r\nhello\r\n0\r\n\r\n")
CHUNK_REJECT(chunk_reject_ext_two_tokens, "5;a=b c\r\nhello\r\n0\r\n\r\n")
CHUNK_REJECT(chunk_reject_ext_after_quote, "5;a=\"x\"y\r\nhello\r\n0\r\n\r\n")
CHUNK_REJECT(chunk_reject_ext_unterminated_quote, "5;a=\"x\r\nhello\r\n0\r\n\r\n")
CHUNK_REJECT(chunk_reject_ext_ctl, "5;a=\x01\r\nhello\r\n0\r\n\r\n")
CHUNK_REJECT(chunk_reject_ext_ctl_in_quote, "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n")
CHUNK_REJECT(chunk_reject_ext_bad_name_char, "5;a@b\r\nhello\r\n0\r\n\r\n")
CHUNK_REJECT(chunk_reject_trailer_obs_fold, "0\r\nX: 1\r\n 2\r\n\r\n")
CHUNK_REJECT(chunk_reject_trailer_no_colon, "0\r\nX 1\r\n\r\n")
CHUNK_REJECT(chunk_reject_trailer_space_before_colon, "0\r\nX : 1\r\n\r\n")
CHUNK_REJECT(chunk_reject_trailer_empty_name, "0\r\n: 1\r\n\r\n")
CHUNK_REJECT(chunk_reject_trailer_ctl, "0\r\nX: a\x7f\r\n\r\n")
CHUNK_REJECT(chunk_reject_trailer_bare_lf, "0\r\nX: 1\n\r\n")
CHUNK_REJECT(chunk_reject_final_bare_lf, "0\r\n\n")
CHUNK_REJECT(chunk_reject_final_cr_cr, "0\r\n\r\r")

static void chunk_reject_nul(void **state)
{
    (void)state;
    char out[16];
    size_t out_len, consumed;
    static const char size_nul[] = "5\0\r\nhello\r\n0\r\n\r\n";
    static const char trailer_nul[] = "0\r\nX: a\0b\r\n\r\n";
    assert_int_equal(decode(size_nul, sizeof(size_nul) - 1, 0, out, &out_len, &consumed), -1);
    assert_int_equal(decode(trailer_nul, sizeof(trailer_nul) - 1, 1, out, &out_len, &consumed),
                     -1);
}

static void chunk_reject_long_lines(void **state)
{
    (void)state;
    static char buf[16384];
    /* a size line with a 5000-byte extension */
    int n = snprintf(buf, sizeof(buf), "1;x=");
    memset(buf + n, 'a', 5000);
    strcpy(buf + n + 5000, "\r\nZ\r\n0\r\n\r\n");
    assert_int_equal(decode_str(buf), -1);
    /* a 4000-byte extension is fine */
    n = snprintf(buf, sizeof(buf), "1;x=");
    memset(buf + n, 'a', 4000);
    strcpy(buf + n + 4000, "\r\nZ\r\n0\r\n\r\n");
    assert_int_equal(decode_str(buf), 1);
    /* a trailer line of 5000 bytes */
    n = snprintf(buf, sizeof(buf), "0\r\nX: ");
    memset(buf + n, 'b', 5000);
    strcpy(buf + n + 5000, "\r\n\r\n");
    assert_int_equal(decode_str(buf), -1);
}

static void chunk_reject_too_many_trailers(void **state)
{
    (void)state;
    static char buf[4096];
    size_t off = (size_t)snprintf(buf, sizeof(buf), "0\r\n");
    for (int i = 0; i < 64; i++) off += (size_t)snprintf(buf + off, sizeof(buf) - off, "T%d: v\r\n", i);
    strcpy(buf + off, "\r\n");
    assert_int_equal(decode_str(buf), 1);
    strcpy(buf + off, "T: v\r\n\r\n");
    assert_int_equal(decode_str(buf), -1);
}

static void chunk_reject_trailer_section_bytes(void **state)
{
    (void)state;
    static char buf[32768];
    size_t off = (size_t)snprintf(buf, sizeof(buf), "0\r\n");
    for (int i = 0; i < 6; i++) {
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "T%d: ", i);
        memset(buf + off, 'v', 3000);
        off += 3000;
        off += (size_t)snprintf(buf + off, sizeof(buf) - off, "\r\n");
    }
    strcpy(buf + off, "\r\n");
    assert_int_equal(decode_str(buf), -1);
}

static void chunk_state_is_sticky(void **state)
{
    (void)state;
    struct el_chunked c = {0};
    size_t used;
    const char *data;
    size_t dlen;
    assert_int_equal(el_chunked_decode(&c, "z\r\n", 3, &used, &data, &dlen), -1);
    assert_int_equal(el_chunked_decode(&c, "0\r\n\r\n", 5, &used, &data, &dlen), -1);
    struct el_chunked d = {0};
    assert_int_equal(el_chunked_decode(&d, "0\r\n\r\nGET", 8, &used, &data, &dlen), 1);
    assert_int_equal(used, 5);
    assert_int_equal(el_chunked_decode(&d, "GET", 3, &used, &data, &dlen), 1);
    assert_int_equal(used, 0);
    assert_int_equal(dlen, 0);
}

static void chunk_header_writes_hex(void **state)
{
    (void)state;
    char out[32];
    size_t n = el_chunk_header(out, 0);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "0\r\n", 3);
    n = el_chunk_header(out, 255);
    assert_memory_equal(out, "ff\r\n", n);
    assert_int_equal(n, 4);
    n = el_chunk_header(out, 0x1a2b3c);
    assert_memory_equal(out, "1a2b3c\r\n", n);
    n = el_chunk_header(out, UINT64_MAX);
    assert_int_equal(n, 18);
    assert_memory_equal(out, "ffffffffffffffff\r\n", 18);
}

static void chunk_header_round_trip(void **state)
{
    (void)state;
    char enc[8192], out[8192];
    size_t off = 0, total = 0;
    for (size_t len = 1; len <= 300; len += 37) {
        off += el_chunk_header(enc + off, len);
        for (size_t i = 0; i < len; i++) enc[off + i] = (char)('a' + (total + i) % 26);
        off += len;
        total += len;
        memcpy(enc + off, "\r\n", 2);
        off += 2;
    }
    off += el_chunk_header(enc + off, 0);
    memcpy(enc + off, "\r\n", 2);
    off += 2;
    size_t out_len, consumed;
    assert_int_equal(decode(enc, off, 7, out, &out_len, &consumed), 1);
    assert_int_equal(consumed, off);
    assert_int_equal(out_len, total);
    for (size_t i = 0; i < total; i++) assert_int_equal(out[i], 'a' + i % 26);
}

static void reason_phrases(void **state)
{
    (void)state;
    static const int codes[] = {100, 101, 200, 201, 202, 203, 204, 205, 206, 301, 302, 303,
                                304, 307, 308, 400, 401, 403, 404, 405, 408, 409, 410, 411,
                                413, 414, 415, 429, 431, 500, 501, 502, 503, 504, 505};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        assert_true(strlen(el_http_reason(codes[i])) > 0);
    assert_string_equal(el_http_reason(200), "OK");
    assert_string_equal(el_http_reason(404), "Not Found");
    assert_string_equal(el_http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(el_http_reason(503), "Service Unavailable");
    assert_string_equal(el_http_reason(299), "");
    assert_string_equal(el_http_reason(0), "");
}

static void expect_cookie(const char *hdr, const char *name, const char *want)
{
    const char *val = NULL;
    size_t len = 0;
    bool found = el_http_cookie(hdr, strlen(hdr), name, &val, &len);
    if (want == NULL) {
        assert_false(found);
        return;
    }
    assert_true(found);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(val, want, len);
}

static void cookie_lookup(void **state)
{
    expect_cookie("a=1; b=2", "a", "1");
    expect_cookie("a=1; b=2", "b", "2");
    expect_cookie("a=1;b=2", "b", "2");
    expect_cookie("a=1 ;  b=2  ", "a", "1");
    expect_cookie("a=1 ;  b=2  ", "b", "2");
    expect_cookie("\ta=1;\tb=2", "b", "2");
    expect_cookie("a=1; b=2", "c", NULL);
    expect_cookie("", "a", NULL);
    expect_cookie("a=first; a=second", "a", "first");
    expect_cookie("xa=1; a=2", "a", "2"); /* names compared exactly */
    expect_cookie("A=1; a=2", "a", "2");  /* case matters */
    expect_cookie("ab=1; a=2", "a", "2");
    expect_cookie("a; a=3", "a", "3"); /* a bare word is not a pair */
    expect_cookie("a=", "a", "");
    expect_cookie("a=x=y; b=2", "a", "x=y"); /* value may contain '=' */
    expect_cookie(";;; a=1 ;;", "a", "1");
    expect_cookie("einlass_ticket=abc-_; einlass_pass=def", "einlass_pass", "def");

    /* Never reads past hdr_len: the buffer ends exactly at the given length. */
    const char *val;
    size_t len;
    const char full[] = "a=1; b=2; c=3";
    assert_true(el_http_cookie(full, 8, "b", &val, &len));
    assert_int_equal(len, 1);
    assert_false(el_http_cookie(full, 8, "c", &val, &len));
    assert_true(el_http_cookie(full, 7, "b", &val, &len)); /* "a=1; b=" */
    assert_int_equal(len, 0);
    char *exact = malloc(3);
    memcpy(exact, "a=1", 3); /* no NUL: ASan flags any read past it */
    assert_true(el_http_cookie(exact, 3, "a", &val, &len));
    assert_int_equal(len, 1);
    assert_false(el_http_cookie(exact, 3, "b", &val, &len));
    free(exact);
}

/* A query parameter: the first of its name, a leading '?' skipped, the
 * value undecoded; a name without '=' has none; never past the length. */
static void query_param(void **state)
{
    (void)state;
    const char *v;
    size_t len;
    assert_true(el_http_query_param("?room=campaign&x=1", 18, "room", &v, &len));
    assert_int_equal(len, 8);
    assert_memory_equal(v, "campaign", 8);
    assert_true(el_http_query_param("a=1&room=&room=b", 16, "room", &v, &len));
    assert_int_equal(len, 0); /* the first one, empty */
    assert_false(el_http_query_param("room&rooms=1&xroom=2", 20, "room", &v, &len));
    assert_true(el_http_query_param("set=de%20x&to=/a", 16, "set", &v, &len));
    assert_int_equal(len, 6); /* not decoded */
    assert_false(el_http_query_param("", 0, "room", &v, &len));
    assert_false(el_http_query_param("room=ab", 4, "room", &v, &len)); /* "room" only */
}

/* ---- the lexical kit ---- */

static void kit_classes(void **state)
{
    (void)state;
    const char *t = "!#$%&'*+-.^_`|~09azAZ";
    for (const char *p = t; *p; p++) assert_true(el_http_is_tchar((unsigned char)*p));
    const char *not = "\"(),/:;<=>?@[\\]{} \t\x7f";
    for (const char *p = not; *p; p++) assert_false(el_http_is_tchar((unsigned char)*p));
    assert_false(el_http_is_tchar(0));
    assert_false(el_http_is_tchar(0x80));
    assert_false(el_http_is_tchar(0xff));
    assert_true(el_http_is_ows(' '));
    assert_true(el_http_is_ows('\t'));
    assert_false(el_http_is_ows('\r'));
    assert_false(el_http_is_ows('\n'));
    assert_false(el_http_is_ows(0));
}

static void kit_ows_and_tokens(void **state)
{
    (void)state;
    const char *s = " \t a b\t ";
    const char *end = s + strlen(s);
    assert_ptr_equal(el_http_skip_ows(s, end), s + 3);
    assert_ptr_equal(el_http_skip_ows(end, end), end);
    assert_ptr_equal(el_http_skip_ows(s, s + 2), s + 2); /* stops at end */
    assert_ptr_equal(el_http_skip_ows(s + 3, end), s + 3);
    const char *p = s;
    size_t n = strlen(s);
    el_http_trim_ows(&p, &n);
    assert_ptr_equal(p, s + 3);
    assert_int_equal(n, 3); /* "a b" */
    p = " \t ";
    n = 3;
    el_http_trim_ows(&p, &n);
    assert_int_equal(n, 0);
    const char *tok = "dur=1";
    assert_ptr_equal(el_http_skip_token(tok, tok + 5), tok + 3);
    assert_ptr_equal(el_http_skip_token(tok, tok + 2), tok + 2);
    assert_ptr_equal(el_http_skip_token(tok + 3, tok + 5), tok + 3);
}

static void kit_quoted_string(void **state)
{
    (void)state;
    char buf[8];
    size_t len = 99;
    bool ov = true;
    const char *q = "\"a\\\"b,c\" x";
    const char *end = q + strlen(q);
    assert_ptr_equal(el_http_skip_quoted(q, end, buf, sizeof(buf), &len, &ov), q + 8);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "a\"b,c", 5);
    assert_false(ov);
    const char *longer = "\"0123456789\"";
    assert_non_null(el_http_skip_quoted(longer, longer + 12, buf, sizeof(buf), &len, &ov));
    assert_true(ov);
    assert_int_equal(len, 7);
    assert_null(el_http_skip_quoted(q, q + 5, NULL, 0, NULL, NULL)); /* not closed */
    const char *esc_end = "\"ab\\";
    assert_null(el_http_skip_quoted(esc_end, esc_end + 4, NULL, 0, NULL, NULL));
    const char *ctl = "\"a\x01\"";
    assert_null(el_http_skip_quoted(ctl, ctl + 4, NULL, 0, NULL, NULL));
    const char *tab = "\"a\tb\"";
    assert_ptr_equal(el_http_skip_quoted(tab, tab + 5, NULL, 0, NULL, NULL), tab + 5);
}

/* All elements of s with iter, joined as "[a][b]..."; from_right: iter
 * walks from the end (el_http_prev_elem). */
typedef bool (*iter_fn)(const char **, const char *, const char **, size_t *);

static const char *walk(iter_fn iter, const char *s, bool from_right)
{
    static char out[256];
    size_t o = 0;
    size_t n = strlen(s);
    char *copy = malloc(n ? n : 1); /* exact size: ASan sees a read past the end */
    memcpy(copy, s, n);
    const char *p = from_right ? copy + n : copy, *it;
    size_t len;
    while (iter(&p, from_right ? copy : copy + n, &it, &len)) {
        assert_true(it >= copy && it + len <= copy + n);
        o += (size_t)snprintf(out + o, sizeof(out) - o, "[%.*s]", (int)len, it);
    }
    free(copy);
    out[o] = '\0';
    return out;
}

static const char *items(iter_fn iter, const char *s)
{
    return walk(iter, s, false);
}

static const char *prev_items(const char *s)
{
    return walk(el_http_prev_elem, s, true);
}

static void kit_list_items(void **state)
{
    (void)state;
    assert_string_equal(items(el_http_next_item, "a, b ,\tc"), "[a][b][c]");
    assert_string_equal(items(el_http_next_item, ""), "[]");
    assert_string_equal(items(el_http_next_item, " "), "[]");
    assert_string_equal(items(el_http_next_item, "a,,b"), "[a][][b]");
    assert_string_equal(items(el_http_next_item, ",a,"), "[][a][]");
    assert_string_equal(items(el_http_next_item, " , "), "[][]");
    /* a comma inside a quoted string does not split; an escaped quote does
     * not close it */
    assert_string_equal(items(el_http_next_item, "x;d=\"a,b\", y"), "[x;d=\"a,b\"][y]");
    assert_string_equal(items(el_http_next_item, "x;d=\"a\\\",b\", y"),
                        "[x;d=\"a\\\",b\"][y]");
    assert_string_equal(items(el_http_next_item, "\"a\\\\\",b"), "[\"a\\\\\"][b]");
    /* a quoted string that is not closed runs to the end */
    assert_string_equal(items(el_http_next_item, "a, \"b, c"), "[a][\"b, c]");
    assert_string_equal(items(el_http_next_item, "a, \"b\\"), "[a][\"b\\]");
    assert_string_equal(items(el_http_next_item, "a\"b,c\",d"), "[a\"b,c\"][d]");
    /* el_http_next_elem splits at every comma */
    assert_string_equal(items(el_http_next_elem, "x;d=\"a,b\", y"), "[x;d=\"a][b\"][y]");
    assert_string_equal(items(el_http_next_elem, "close, \"x"), "[close][\"x]");
    assert_string_equal(items(el_http_next_elem, "\"x, close"), "[\"x][close]");
    assert_string_equal(items(el_http_next_elem, "5, 5"), "[5][5]");
    assert_string_equal(items(el_http_next_elem, "5,"), "[5][]");
    assert_string_equal(items(el_http_next_elem, ""), "[]");
    /* and el_http_prev_elem from the right */
    assert_string_equal(prev_items("1.1.1.1, 2.2.2.2 ,3.3.3.3"), "[3.3.3.3][2.2.2.2][1.1.1.1]");
    assert_string_equal(prev_items(",a, ,"), "[][][a][]");
    assert_string_equal(prev_items(""), "[]");
    assert_string_equal(prev_items("\"a,b\""), "[b\"][\"a]");
}

static void cookie_tricky(void **state)
{
    (void)state;
    expect_cookie("einlass_pass_old=1; einlass_pass=2", "einlass_pass", "2"); /* prefix */
    expect_cookie("xeinlass_pass=1", "einlass_pass", NULL);
    expect_cookie("einlass_pass=1", "einlass", NULL); /* the name is a prefix of the cookie's */
    expect_cookie("einlass=1", "einlass_pass", NULL);
    expect_cookie("  a  =  1  ", "a", "1");
    expect_cookie("a = x y ", "a", "x y"); /* inner space stays */
    expect_cookie("a=\"q v\"; b=2", "a", "\"q v\""); /* quoted: as it stands */
    expect_cookie("a=\"x;y\"", "a", "\"x"); /* ';' splits, quotes or not */
    expect_cookie("a=\"\"", "a", "\"\"");
    expect_cookie("a=1; a=2; a=3", "a", "1"); /* the first one */
    expect_cookie("b=1; a; a=; a=2", "a", ""); /* the first pair, even empty */
    expect_cookie("=1; a=2", "a", "2");
    expect_cookie("=1", "", "1"); /* an empty name matches an empty name only */
    expect_cookie("a b=1", "b", NULL);
    expect_cookie("a\t=\t1\t;b=2", "a", "1");
    expect_cookie(";", "a", NULL);
    expect_cookie("a=1,b=2", "a", "1,b=2"); /* ',' does not split a Cookie field */
}

#define T(fn) cmocka_unit_test(fn)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(reject_cl_with_te), T(reject_te_with_cl_after), T(reject_te_gzip_chunked),
        T(reject_te_chunked_chunked), T(reject_te_duplicate_fields), T(reject_te_gzip),
        T(reject_te_empty), T(reject_te_chunked_param), T(reject_te_in_http10),
        T(reject_cl_differing_fields), T(reject_cl_differing_list), T(reject_cl_negative),
        T(reject_cl_plus), T(reject_cl_non_numeric), T(reject_cl_hex), T(reject_cl_inner_space),
        T(reject_cl_empty), T(reject_cl_empty_list_element), T(reject_cl_trailing_comma),
        T(reject_cl_overflow_u64), T(reject_cl_above_int64), T(reject_space_before_colon),
        T(reject_tab_before_colon), T(reject_space_before_colon_cl), T(reject_obs_fold_space),
        T(reject_obs_fold_tab), T(reject_space_before_first_field), T(reject_bare_cr_in_value),
        T(reject_bare_cr_line_end), T(reject_bare_lf_field_end), T(reject_bare_lf_everywhere),
        T(reject_bare_lf_request_line), T(reject_bare_lf_final), T(reject_ctl_in_value),
        T(reject_del_in_value), T(reject_esc_in_value), T(reject_invalid_name_char),
        T(reject_name_with_slash), T(reject_name_obs_text), T(reject_empty_name),
        T(reject_no_colon), T(reject_method_bad_char), T(reject_method_empty),
        T(reject_rl_two_spaces), T(reject_rl_two_spaces_before_version),
        T(reject_rl_trailing_space), T(reject_rl_tab_separator), T(reject_rl_space_in_target),
        T(reject_rl_ctl_in_target), T(reject_rl_no_version),
        T(reject_rl_lowercase_version), T(reject_rl_version_letters), T(reject_rl_version_long),
        T(reject_rl_only_method), T(reject_version_2), T(reject_version_1_2),
        T(reject_version_0_9), T(reject_target_relative), T(reject_target_no_authority),
        T(reject_asterisk_with_get), T(reject_two_leading_crlf), T(reject_leading_bare_lf),
        T(reject_http11_without_host), T(reject_two_hosts), T(reject_two_hosts_http10),
        T(reject_nul_in_value), T(accept_simple_get), T(accept_value_chars),
        T(accept_content_length), T(accept_content_length_repeated_same), T(accept_chunked),
        T(keep_alive_rules), T(hop_by_hop_flags), T(expect_continue),
        T(upgrade_needs_field_and_connection_token), T(target_forms),
        T(path_normal_forms), T(test_ambiguous_target_is_refused),
        T(path_normal_flag_and_norm_path), T(absolute_form_authority_and_query),
        T(leading_crlf_skipped), T(too_large_head), T(too_many_fields), T(split_at_every_byte),
        T(response_content_length), T(response_reason_forms), T(response_body_none),
        T(response_chunked_and_close), T(response_rejects), T(chunked_good_whole_and_bytewise),
        T(chunk_reject_empty_size), T(chunk_reject_non_hex), T(chunk_reject_negative),
        T(chunk_reject_0x_prefix), T(chunk_reject_17_digits), T(chunk_reject_leading_space),
        T(chunk_reject_trailing_space), T(chunk_reject_bare_lf_size),
        T(chunk_reject_bare_cr_size), T(chunk_reject_missing_data_crlf),
        T(chunk_reject_data_bare_lf), T(chunk_reject_data_too_long),
        T(chunk_reject_ext_empty_name), T(chunk_reject_ext_no_name),
        T(chunk_reject_ext_empty_value), T(chunk_reject_ext_trailing_space),
        T(chunk_reject_ext_two_tokens), T(chunk_reject_ext_after_quote),
        T(chunk_reject_ext_unterminated_quote), T(chunk_reject_ext_ctl),
        T(chunk_reject_ext_ctl_in_quote), T(chunk_reject_ext_bad_name_char),
        T(chunk_reject_trailer_obs_fold), T(chunk_reject_trailer_no_colon),
        T(chunk_reject_trailer_space_before_colon), T(chunk_reject_trailer_empty_name),
        T(chunk_reject_trailer_ctl), T(chunk_reject_trailer_bare_lf),
        T(chunk_reject_final_bare_lf), T(chunk_reject_final_cr_cr), T(chunk_reject_nul),
        T(chunk_reject_long_lines), T(chunk_reject_too_many_trailers),
        T(chunk_reject_trailer_section_bytes), T(chunk_state_is_sticky),
        T(chunk_header_writes_hex), T(chunk_header_round_trip), T(reason_phrases),
        T(kit_classes), T(kit_ows_and_tokens), T(kit_quoted_string), T(kit_list_items),
        T(cookie_lookup), T(cookie_tricky), T(query_param),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
