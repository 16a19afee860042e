/* test_rewrite.c - the heads einlass forwards: hop-by-hop fields removed,
 * X-Forwarded-For appended (a trusted proxy's) or replaced (anyone else's),
 * X-Forwarded-Proto and Via set, framing redone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "einlass/buf.h"
#include "einlass/http.h"
#include "einlass/rewrite.h"

static struct el_buf_pool pool = {.max = 4};

static bool keep_xff = true; /* the peer is a trusted proxy */

static char *rewrite_req(const char *raw, const char *ip, bool https)
{
    static struct el_http_msg m;
    assert_true(el_http_parse_request(raw, strlen(raw), 16384, &m) > 0);
    struct el_buf o = {0};
    el_buf_alloc(&pool, &o, EL_BUF_SIZE);
    el_rewrite_request(&m, ip, strlen(ip), keep_xff, https, "backend:3000", &o);
    char *s = strndup(o.data + o.off, el_buf_used(&o));
    el_buf_release(&pool, &o);
    return s;
}

static char *rewrite_resp(const char *raw, bool head, bool client11, bool *close,
                          const char *cookie, enum el_rewrite_framing *f)
{
    static struct el_http_msg m;
    assert_true(el_http_parse_response(raw, strlen(raw), 16384, head, &m) > 0);
    struct el_buf o = {0};
    el_buf_alloc(&pool, &o, EL_BUF_SIZE);
    *f = el_rewrite_response(&m, client11, close, cookie, &o);
    char *s = strndup(o.data + o.off, el_buf_used(&o));
    el_buf_release(&pool, &o);
    return s;
}

static void request_hop_by_hop_and_forwarding(void **state)
{
    char *s = rewrite_req("GET /a?b=1 HTTP/1.1\r\nHost: portal\r\nConnection: keep-alive, X-Drop\r\n"
                          "X-Drop: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\nUpgrade: h2c\r\n"
                          "Proxy-Connection: x\r\nX-Forwarded-For: 10.0.0.1\r\n"
                          "X-Forwarded-Proto: https\r\nCookie: a=1\r\n\r\n",
                          "192.0.2.7", false);
    assert_string_equal(s, "GET /a?b=1 HTTP/1.1\r\nHost: portal\r\nCookie: a=1\r\n"
                           "X-Forwarded-For: 10.0.0.1, 192.0.2.7\r\nX-Forwarded-Proto: http\r\n"
                           "Via: 1.1 einlass\r\n\r\n");
    free(s);
}

static void request_several_xff_fields_merge(void **state)
{
    char *s = rewrite_req("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\n"
                          "X-Forwarded-For: 2.2.2.2, 3.3.3.3\r\n\r\n",
                          "::1", true);
    assert_non_null(strstr(s, "X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, ::1\r\n"));
    assert_non_null(strstr(s, "X-Forwarded-Proto: https\r\n"));
    free(s);
}

static void request_xff_from_untrusted_peer_replaced(void **state)
{
    keep_xff = false;
    char *s = rewrite_req("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.20.1.2\r\n"
                          "x-forwarded-for: 1.1.1.1\r\nA: b\r\n\r\n",
                          "203.0.113.5", false);
    keep_xff = true;
    assert_string_equal(s, "GET / HTTP/1.1\r\nHost: h\r\nA: b\r\n"
                           "X-Forwarded-For: 203.0.113.5\r\nX-Forwarded-Proto: http\r\n"
                           "Via: 1.1 einlass\r\n\r\n");
    free(s);
}

static void request_many_xff_fields_from_trusted_peer_all_kept(void **state)
{
    char raw[2048] = "GET / HTTP/1.1\r\nHost: h\r\n", want[1024] = "X-Forwarded-For: ";
    for (int i = 1; i <= 12; i++) { /* once, only 8 were kept */
        char line[64];
        snprintf(line, sizeof(line), "X-Forwarded-For: 10.0.0.%d\r\n", i);
        strcat(raw, line);
        snprintf(line, sizeof(line), "10.0.0.%d, ", i);
        strcat(want, line);
    }
    strcat(raw, "X-Forwarded-For:\r\n\r\n"); /* empty: nothing to add */
    strcat(want, "127.0.0.1\r\n");
    char *s = rewrite_req(raw, "127.0.0.1", false);
    assert_non_null(strstr(s, want));
    free(s);
}

static void request_reframed(void **state)
{
    char *s = rewrite_req("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                          "Expect: 100-continue\r\n\r\n", "1.2.3.4", false);
    assert_null(strstr(s, "Expect"));
    assert_non_null(strstr(s, "\r\nContent-Length: 5\r\n\r\n"));
    free(s);
    s = rewrite_req("POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", "1.2.3.4",
                    false);
    assert_non_null(strstr(s, "\r\nTransfer-Encoding: chunked\r\n\r\n"));
    free(s);
    /* HTTP/1.0 in, HTTP/1.1 to the backend, and Via names what was received */
    s = rewrite_req("GET / HTTP/1.0\r\n\r\n", "1.2.3.4", false);
    assert_true(strncmp(s, "GET / HTTP/1.1\r\n", 16) == 0);
    assert_non_null(strstr(s, "Via: 1.0 einlass\r\n"));
    free(s);
}

/* Routes match the path in normal form: the backend gets that same path, so
 * the two never disagree on what was asked for; the query is untouched. */
static void request_target_in_normal_form(void **state)
{
    char *s = rewrite_req("GET /static/../booking/%7e%41//x/.?q=/../%2e HTTP/1.1\r\nHost: h\r\n\r\n",
                          "1.2.3.4", false);
    assert_true(strncmp(s, "GET /booking/~A/x/?q=/../%2e HTTP/1.1\r\n", 39) == 0);
    free(s);
    s = rewrite_req("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", "1.2.3.4", false);
    assert_true(strncmp(s, "OPTIONS * HTTP/1.1\r\n", 20) == 0);
    free(s);
}

/* RFC 9112 3.2.2: an absolute-form target goes on in origin-form, and its
 * authority replaces whatever Host the client sent. */
static void test_absolute_form_host_replaces_client_host(void **state)
{
    char *s = rewrite_req("GET http://portal/a/./b?x=1 HTTP/1.1\r\nHost: evil.example\r\n"
                          "X-A: 1\r\n\r\n", "1.2.3.4", false);
    assert_string_equal(s, "GET /a/b?x=1 HTTP/1.1\r\nHost: portal\r\nX-A: 1\r\n"
                           "X-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Proto: http\r\n"
                           "Via: 1.1 einlass\r\n\r\n");
    free(s);
    s = rewrite_req("GET https://portal:8443?x HTTP/1.0\r\n\r\n", "1.2.3.4", false);
    assert_true(strncmp(s, "GET /?x HTTP/1.1\r\nHost: portal:8443\r\n", 37) == 0);
    assert_null(strstr(s, "backend:3000"));
    free(s);
}

/* An HTTP/1.0 request without Host gets one toward the backend (HTTP/1.1
 * requires it): the backend address. One that has a Host keeps it. */
static void test_http10_without_host_gets_default_host(void **state)
{
    char *s = rewrite_req("GET /x HTTP/1.0\r\n\r\n", "1.2.3.4", false);
    assert_true(strncmp(s, "GET /x HTTP/1.1\r\nHost: backend:3000\r\n", 37) == 0);
    free(s);
    s = rewrite_req("GET /x HTTP/1.0\r\nHost: mine\r\n\r\n", "1.2.3.4", false);
    assert_non_null(strstr(s, "\r\nHost: mine\r\n"));
    assert_null(strstr(s, "backend:3000"));
    free(s);
    s = rewrite_req("GET /x HTTP/1.1\r\nHost: mine\r\n\r\n", "1.2.3.4", false);
    assert_string_equal(s, "GET /x HTTP/1.1\r\nHost: mine\r\nX-Forwarded-For: 1.2.3.4\r\n"
                           "X-Forwarded-Proto: http\r\nVia: 1.1 einlass\r\n\r\n");
    free(s);
}

static void response_fields_cookie_and_length(void **state)
{
    bool close = false;
    enum el_rewrite_framing f;
    char *s = rewrite_resp("HTTP/1.1 200 OK\r\nServer-Timing: db;dur=3\r\nConnection: x-hop\r\n"
                           "X-Hop: 1\r\nContent-Length: 12\r\n\r\n",
                           false, true, &close, "einlass_pass=abc; Path=/", &f);
    assert_string_equal(s, "HTTP/1.1 200 OK\r\nServer-Timing: db;dur=3\r\nVia: 1.1 einlass\r\n"
                           "Set-Cookie: einlass_pass=abc; Path=/\r\nContent-Length: 12\r\n\r\n");
    assert_int_equal(f, EL_REWRITE_AS_IS);
    assert_false(close);
    free(s);
}

static void response_chunked_and_close_delimited(void **state)
{
    bool close = false;
    enum el_rewrite_framing f;
    char *s = rewrite_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, true,
                           &close, "", &f);
    assert_int_equal(f, EL_REWRITE_CHUNKED);
    assert_non_null(strstr(s, "Transfer-Encoding: chunked\r\n"));
    assert_false(close);
    free(s);
    /* a close-delimited body becomes chunked for a 1.1 client: keep-alive survives */
    s = rewrite_resp("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", false, true, &close, "", &f);
    assert_int_equal(f, EL_REWRITE_CHUNKED);
    assert_false(close);
    free(s);
    /* ... and is read to the close by a 1.0 client */
    close = false;
    s = rewrite_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", false, false, &close,
                     "", &f);
    assert_int_equal(f, EL_REWRITE_TO_CLOSE);
    assert_true(close);
    assert_non_null(strstr(s, "Connection: close\r\n"));
    assert_null(strstr(s, "Transfer-Encoding"));
    free(s);
}

static void response_head_304_204_keep_announced_length(void **state)
{
    bool close = false;
    enum el_rewrite_framing f;
    char *s = rewrite_resp("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", true, true, &close, "",
                           &f);
    assert_non_null(strstr(s, "Content-Length: 99\r\n")); /* HEAD: what GET would send */
    free(s);
    s = rewrite_resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", false, true,
                     &close, "", &f);
    assert_non_null(strstr(s, "Content-Length: 99\r\n"));
    free(s);
    s = rewrite_resp("HTTP/1.1 204 No Content\r\n\r\n", false, true, &close, "", &f);
    assert_null(strstr(s, "Content-Length"));
    free(s);
    /* a 1.0 client that keeps alive is told so */
    s = rewrite_resp("HTTP/1.1 204 No Content\r\n\r\n", false, false, &close, "", &f);
    assert_non_null(strstr(s, "Connection: keep-alive\r\n"));
    free(s);
}

static bool upgrade_of(const char *raw)
{
    static struct el_http_msg m;
    assert_true(el_http_parse_request(raw, strlen(raw), 16384, &m) > 0);
    return el_rewrite_upgrade(&m);
}

#define WS_KEY "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"

/* Issue 13: the handshake lost its Upgrade, so the backend never switched. */
static void request_websocket_upgrade_keeps_upgrade_fields(void **state)
{
    char *s = rewrite_req("GET /live HTTP/1.1\r\nHost: portal\r\nUpgrade: WebSocket\r\n"
                          "Connection: keep-alive, Upgrade\r\nKeep-Alive: 5\r\n" WS_KEY "\r\n",
                          "192.0.2.7", false);
    assert_string_equal(s, "GET /live HTTP/1.1\r\nHost: portal\r\n" WS_KEY
                           "Upgrade: websocket\r\nConnection: upgrade\r\n"
                           "X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n"
                           "Via: 1.1 einlass\r\n\r\n");
    free(s);
    /* several protocols offered: only websocket goes on */
    s = rewrite_req("GET /live HTTP/1.1\r\nHost: p\r\nUpgrade: foo/2, websocket\r\n"
                    "Connection: upgrade\r\n\r\n", "::1", false);
    assert_non_null(strstr(s, "\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"));
    assert_null(strstr(s, "foo"));
    free(s);
}

static void request_upgrade_only_for_websocket_get_11_without_body(void **state)
{
    assert_true(upgrade_of("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\n\r\n"));
    assert_true(upgrade_of("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nContent-Length: 0\r\n\r\n"));
    /* Connection must name it, and Upgrade must be there */
    assert_false(upgrade_of("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n"));
    assert_false(upgrade_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n\r\n"));
    /* another protocol (h2c smuggling), method, version, or a body */
    assert_false(upgrade_of("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\n"
                            "Connection: Upgrade, HTTP2-Settings\r\n\r\n"));
    assert_false(upgrade_of("POST / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\n\r\n"));
    assert_false(upgrade_of("GET / HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\n\r\n"));
    assert_false(upgrade_of("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nContent-Length: 3\r\n\r\nabc"));
    assert_false(upgrade_of("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nTransfer-Encoding: chunked\r\n\r\n"));
    /* not forwarded: the request goes on as plain HTTP/1.1 */
    char *s = rewrite_req("POST / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nContent-Length: 0\r\n\r\n", "::1", false);
    assert_null(strstr(s, "Upgrade"));
    assert_null(strstr(s, "Connection"));
    free(s);
}

static bool switch_ok(const char *raw)
{
    static struct el_http_msg m;
    assert_true(el_http_parse_response(raw, strlen(raw), 16384, false, &m) > 0);
    return el_rewrite_switch_ok(&m);
}

static void response_101_websocket_head(void **state)
{
    const char *raw = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: WebSocket\r\n"
                      "Connection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                      "Keep-Alive: 5\r\nContent-Length: 7\r\n\r\n";
    static struct el_http_msg m;
    assert_true(el_http_parse_response(raw, strlen(raw), 16384, false, &m) > 0);
    assert_true(m.upgrade && m.body == EL_BODY_NONE);
    assert_true(el_rewrite_switch_ok(&m));
    struct el_buf o = {0};
    el_buf_alloc(&pool, &o, EL_BUF_SIZE);
    el_rewrite_switch(&m, "einlass_pass=x; Path=/", &o);
    char *s = strndup(o.data + o.off, el_buf_used(&o));
    el_buf_release(&pool, &o);
    assert_string_equal(s, "HTTP/1.1 101 Switching Protocols\r\n"
                           "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                           "Upgrade: websocket\r\nConnection: upgrade\r\nVia: 1.1 einlass\r\n"
                           "Set-Cookie: einlass_pass=x; Path=/\r\n\r\n");
    free(s);
    /* the protocol switched to must be the one asked for, and only it */
    assert_false(switch_ok("HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n"
                           "Connection: Upgrade\r\n\r\n"));
    assert_false(switch_ok("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket, h2c\r\n"
                           "Connection: Upgrade\r\n\r\n"));
    assert_false(switch_ok("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n"));
    assert_false(switch_ok("HTTP/1.1 200 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Content-Length: 0\r\n\r\n"));
}

static void buf_numbers_and_growth(void **state)
{
    struct el_buf b = {0};
    el_buf_alloc(&pool, &b, EL_BUF_SIZE);
    el_buf_append_u64(&b, 0);
    el_buf_append_str(&b, " ");
    el_buf_append_u64(&b, UINT64_MAX);
    assert_int_equal(el_buf_used(&b), 22);
    assert_memory_equal(b.data, "0 18446744073709551615", 22);
    char big[40000];
    memset(big, 'x', sizeof(big));
    el_buf_append(&b, big, sizeof(big)); /* grows past the pooled size */
    assert_int_equal(el_buf_used(&b), 22 + sizeof(big));
    el_buf_consume(&b, el_buf_used(&b));
    assert_int_equal(b.off, 0);
    assert_int_equal(b.len, 0);
    el_buf_release(&pool, &b);
    el_buf_pool_clear(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(request_hop_by_hop_and_forwarding),
        cmocka_unit_test(request_several_xff_fields_merge),
        cmocka_unit_test(request_xff_from_untrusted_peer_replaced),
        cmocka_unit_test(request_many_xff_fields_from_trusted_peer_all_kept),
        cmocka_unit_test(request_reframed),
        cmocka_unit_test(request_target_in_normal_form),
        cmocka_unit_test(test_absolute_form_host_replaces_client_host),
        cmocka_unit_test(test_http10_without_host_gets_default_host),
        cmocka_unit_test(response_fields_cookie_and_length),
        cmocka_unit_test(response_chunked_and_close_delimited),
        cmocka_unit_test(response_head_304_204_keep_announced_length),
        cmocka_unit_test(request_websocket_upgrade_keeps_upgrade_fields),
        cmocka_unit_test(request_upgrade_only_for_websocket_get_11_without_body),
        cmocka_unit_test(response_101_websocket_head),
        cmocka_unit_test(buf_numbers_and_growth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
