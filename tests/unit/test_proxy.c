/* test_proxy.c - networks, the client a trusted proxy names in
 * X-Forwarded-For, and the PROXY protocol v2 header. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "einlass/http.h"
#include "einlass/proxy.h"

static void cidr(const char *s, struct el_cidr *c)
{
    if (el_proxy_cidr_parse(s, strlen(s), c) != 0) fail_msg("cidr %s", s);
}

static const char *text(const struct sockaddr_storage *ss)
{
    static char buf[64];
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, sizeof(buf));
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf, sizeof(buf));
    else
        snprintf(buf, sizeof(buf), "family %d", ss->ss_family);
    return buf;
}

static void test_cidr_parse(void **state)
{
    (void)state;
    struct el_cidr c;
    cidr("10.1.2.3/8", &c);
    assert_int_equal(c.family, AF_INET);
    assert_int_equal(c.prefix, 8);
    assert_memory_equal(c.addr, "\x0a\0\0\0", 4); /* host bits cleared */
    cidr("192.168.1.7", &c);
    assert_int_equal(c.prefix, 32);
    cidr("2001:db8::ff/33", &c);
    assert_int_equal(c.family, AF_INET6);
    assert_int_equal(c.prefix, 33);
    assert_int_equal(c.addr[4], 0);
    assert_int_equal(c.addr[15], 0);
    cidr("::/0", &c);
    assert_int_equal(c.prefix, 0);
    /* the length bounds the text: no NUL needed */
    assert_int_equal(el_proxy_cidr_parse("10.0.0.0/8junk", 10, &c), 0);
    assert_int_equal(c.prefix, 8);
    static const char *const bad[] = {"",          "/8",       "10.0.0.0/",  "10.0.0.0/33",
                                      "::/129",    "10.0.0.0/-1", "10.0.0.0/0008",
                                      "10.0.0/8",  "host",     "10.0.0.0/8 ", " 10.0.0.0",
                                      "1.2.3.4/a", "[::1]/128"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (el_proxy_cidr_parse(bad[i], strlen(bad[i]), &c) != -1) fail_msg("accepted '%s'", bad[i]);
}

static void test_cidr_match(void **state)
{
    (void)state;
    struct el_cidr list[3];
    cidr("10.20.0.0/16", &list[0]);
    cidr("172.16.4.0/23", &list[1]);
    cidr("2001:db8:20::/48", &list[2]);
    static const struct {
        const char *a;
        bool want;
    } cases[] = {
        {"10.20.0.1", true},       {"10.21.0.1", false},      {"172.16.5.255", true},
        {"172.16.6.0", false},     {"2001:db8:20:1::", true}, {"2001:db8:21::", false},
        {"::ffff:10.20.9.9", true}, {"::ffff:10.21.9.9", false}, {"::1", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sockaddr_storage ss;
        assert_int_equal(el_proxy_parse_ip(cases[i].a, strlen(cases[i].a), &ss), 0);
        if (el_proxy_addr_match(list, 3, (const struct sockaddr *)&ss) != cases[i].want)
            fail_msg("%s: want %d", cases[i].a, cases[i].want);
    }
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    assert_false(el_proxy_addr_match(list, 3, (const struct sockaddr *)&un));
    struct sockaddr_storage ss;
    el_proxy_parse_ip("10.20.0.1", 9, &ss);
    assert_false(el_proxy_addr_match(list, 0, (const struct sockaddr *)&ss)); /* empty list */
}

static void test_is_local(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    static const char *const local[] = {"127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"};
    static const char *const remote[] = {"128.0.0.1", "10.0.0.1", "::2", "::ffff:10.0.0.1"};
    for (size_t i = 0; i < 4; i++) {
        el_proxy_parse_ip(local[i], strlen(local[i]), &ss);
        if (!el_proxy_is_local((const struct sockaddr *)&ss)) fail_msg("%s is local", local[i]);
        el_proxy_parse_ip(remote[i], strlen(remote[i]), &ss);
        if (el_proxy_is_local((const struct sockaddr *)&ss)) fail_msg("%s is remote", remote[i]);
    }
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    assert_true(el_proxy_is_local((const struct sockaddr *)&un));
}

static void test_parse_ip(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } good[] = {
        {"192.0.2.7", "192.0.2.7"},       {"192.0.2.7:8080", "192.0.2.7"},
        {"2001:db8::1", "2001:db8::1"},   {"[2001:db8::1]", "2001:db8::1"},
        {"[2001:db8::1]:443", "2001:db8::1"}, {"::ffff:1.2.3.4", "::ffff:1.2.3.4"},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        struct sockaddr_storage ss;
        if (el_proxy_parse_ip(good[i].in, strlen(good[i].in), &ss) != 0)
            fail_msg("refused %s", good[i].in);
        assert_string_equal(text(&ss), good[i].want);
    }
    static const char *const bad[] = {
        "",           "unknown",      "_hidden",        "portal.example", "1.2.3.4:",
        "1.2.3.4:x",  "1.2.3.4:123456", "1.2.3.4:80:80", "[1.2.3.4]",      "[::1",
        "[::1]x",     "[::1]:",       "::1:80x",        "1.2.3.4 ",       "1.2.3",
        "0x7f.1.1.1", "[::1]:80:80",  "2001:db8::1%eth0",
        "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa", /* longer than any address */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sockaddr_storage ss;
        if (el_proxy_parse_ip(bad[i], strlen(bad[i]), &ss) != -1) fail_msg("accepted '%s'", bad[i]);
    }
}

/* X-Forwarded-For selection over a parsed request head. */
static enum el_proxy_xff xff(const char *fields, const char *trusted, char *out)
{
    static struct el_http_msg m;
    static char raw[4096];
    snprintf(raw, sizeof(raw), "GET / HTTP/1.1\r\nHost: h\r\n%s\r\n", fields);
    assert_true(el_http_parse_request(raw, strlen(raw), sizeof(raw), &m) > 0);
    struct el_cidr list[8];
    size_t n = 0;
    for (const char *p = trusted; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        assert_int_equal(el_proxy_cidr_parse(p, len, &list[n++]), 0);
        p += len + (comma != NULL);
    }
    struct sockaddr_storage client;
    memset(&client, 0, sizeof(client));
    enum el_proxy_xff r = el_proxy_xff_client(m.headers, m.nheaders, list, n, &client);
    strcpy(out, r == EL_PROXY_XFF_NONE ? "-" : text(&client));
    return r;
}

static void test_xff_rightmost_untrusted_hop(void **state)
{
    (void)state;
    char got[64];
    assert_int_equal(xff("X-Forwarded-For: 10.20.1.2\r\n", "127.0.0.1/32", got),
                     EL_PROXY_XFF_CLIENT);
    assert_string_equal(got, "10.20.1.2");
    /* what the client wrote itself is left of its own address: ignored */
    assert_int_equal(xff("X-Forwarded-For: 10.20.1.2, 203.0.113.5\r\n", "127.0.0.1/32", got),
                     EL_PROXY_XFF_CLIENT);
    assert_string_equal(got, "203.0.113.5");
    /* trusted hops are skipped, across fields, in order; names are case-insensitive */
    assert_int_equal(xff("x-forwarded-for: 1.1.1.1, 198.51.100.9\r\nA: b\r\n"
                         "X-FORWARDED-FOR: 10.0.0.5 ,\t10.0.0.6\r\n",
                         "127.0.0.1/32,10.0.0.0/8", got),
                     EL_PROXY_XFF_CLIENT);
    assert_string_equal(got, "198.51.100.9");
    /* empty elements are nothing; ports and brackets are allowed */
    assert_int_equal(xff("X-Forwarded-For: ,[2001:db8::7]:443, ,\r\n", "10.0.0.0/8", got),
                     EL_PROXY_XFF_CLIENT);
    assert_string_equal(got, "2001:db8::7");
    assert_int_equal(xff("X-Forwarded-For: 192.0.2.1:5555\r\n", "10.0.0.0/8", got),
                     EL_PROXY_XFF_CLIENT);
    assert_string_equal(got, "192.0.2.1");
}

static void test_xff_all_trusted_leftmost(void **state)
{
    (void)state;
    char got[64];
    assert_int_equal(xff("X-Forwarded-For: 10.0.0.1, 10.0.0.2\r\nX-Forwarded-For: 10.0.0.3\r\n",
                         "10.0.0.0/8", got),
                     EL_PROXY_XFF_ALL_TRUSTED);
    assert_string_equal(got, "10.0.0.1");
}

static void test_xff_none_or_malformed_stops_at_last_good_hop(void **state)
{
    (void)state;
    char got[64];
    assert_int_equal(xff("A: b\r\n", "10.0.0.0/8", got), EL_PROXY_XFF_NONE);
    assert_int_equal(xff("X-Forwarded-For:\r\n", "10.0.0.0/8", got), EL_PROXY_XFF_NONE);
    assert_int_equal(xff("X-Forwarded-For: , ,\r\n", "10.0.0.0/8", got), EL_PROXY_XFF_NONE);
    /* the rightmost element is garbage: the peer is the client */
    assert_int_equal(xff("X-Forwarded-For: 10.20.1.2, unknown\r\n", "10.0.0.0/8", got),
                     EL_PROXY_XFF_NONE);
    /* garbage behind a trusted hop: the walk stops at that hop */
    assert_int_equal(xff("X-Forwarded-For: 203.0.113.5, bogus, 10.0.0.7\r\n", "10.0.0.0/8", got),
                     EL_PROXY_XFF_MALFORMED);
    assert_string_equal(got, "10.0.0.7");
    /* garbage left of the untrusted client is never reached */
    assert_int_equal(xff("X-Forwarded-For: bogus, 203.0.113.5, 10.0.0.7\r\n", "10.0.0.0/8", got),
                     EL_PROXY_XFF_CLIENT);
    assert_string_equal(got, "203.0.113.5");
}

static const uint8_t SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static size_t v2(uint8_t *b, uint8_t vc, uint8_t fam, const void *addrs, size_t alen)
{
    memcpy(b, SIG, 12);
    b[12] = vc;
    b[13] = fam;
    b[14] = (uint8_t)(alen >> 8);
    b[15] = (uint8_t)alen;
    memcpy(b + 16, addrs, alen);
    return 16 + alen;
}

static void test_proxy_v2_tcp4_tcp6_and_tlvs(void **state)
{
    (void)state;
    uint8_t b[256];
    struct el_proxy_v2 pp;
    const uint8_t a4[12] = {192, 0, 2, 7, 127, 0, 0, 1, 0x12, 0x67, 0, 80};
    size_t n = v2(b, 0x21, 0x11, a4, sizeof(a4));
    memcpy(b + n, "GET", 3);
    assert_int_equal(el_proxy_v2_parse(b, n + 3, &pp), (int)n);
    assert_false(pp.local);
    assert_string_equal(text(&pp.src), "192.0.2.7");
    assert_int_equal(ntohs(((struct sockaddr_in *)&pp.src)->sin_port), 0x1267);
    /* every prefix is incomplete, never refused */
    for (size_t k = 0; k < n; k++)
        if (el_proxy_v2_parse(b, k, &pp) != EL_PROXY_V2_INCOMPLETE) fail_msg("prefix %zu", k);

    uint8_t a6[36 + 7] = {0x20, 0x01, 0x0d, 0xb8, [15] = 7, [31] = 1, [32] = 0x01, [33] = 0xbb,
                          [36] = 0x04, [37] = 0, [38] = 4, 'a', 'b', 'c', 'd'}; /* + a TLV */
    n = v2(b, 0x21, 0x21, a6, sizeof(a6));
    assert_int_equal(el_proxy_v2_parse(b, n, &pp), (int)n);
    assert_string_equal(text(&pp.src), "2001:db8::7");
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&pp.src)->sin6_port), 443);
}

static void test_proxy_v2_local_and_unspec(void **state)
{
    (void)state;
    uint8_t b[64];
    struct el_proxy_v2 pp;
    size_t n = v2(b, 0x20, 0x00, "", 0); /* LOCAL: a health check */
    assert_int_equal(el_proxy_v2_parse(b, n, &pp), 16);
    assert_true(pp.local);
    const uint8_t a4[12] = {1, 2, 3, 4};
    n = v2(b, 0x20, 0x11, a4, sizeof(a4)); /* LOCAL with addresses: ignored */
    assert_int_equal(el_proxy_v2_parse(b, n, &pp), 28);
    assert_true(pp.local);
    n = v2(b, 0x20, 0x31, "xyz", 3); /* LOCAL over a unix socket: ignored too */
    assert_int_equal(el_proxy_v2_parse(b, n, &pp), 19);
    assert_true(pp.local);
    n = v2(b, 0x21, 0x00, "", 0); /* PROXY, UNSPEC: the connection's own endpoints */
    assert_int_equal(el_proxy_v2_parse(b, n, &pp), 16);
    assert_true(pp.local);
}

static void test_proxy_v2_refuses_v1_garbage_and_bad_fields(void **state)
{
    (void)state;
    static const char *const text_starts[] = {"PROXY TCP4 192.0.2.7 127.0.0.1 1 80\r\n",
                                              "GET / HTTP/1.1\r\n", "\r\n\r\nX", "\r"};
    struct el_proxy_v2 pp;
    for (size_t i = 0; i < 4; i++) {
        const char *t = text_starts[i];
        int r = el_proxy_v2_parse((const uint8_t *)t, strlen(t), &pp);
        if (i == 3 ? r != EL_PROXY_V2_INCOMPLETE : r != EL_PROXY_V2_BAD) fail_msg("%zu: %d", i, r);
    }
    /* refused at the first wrong byte */
    assert_int_equal(el_proxy_v2_parse((const uint8_t *)"G", 1, &pp), EL_PROXY_V2_BAD);
    uint8_t b[64];
    const uint8_t a4[12] = {1, 2, 3, 4};
    v2(b, 0x11, 0x11, a4, 12); /* version 1 in binary form */
    assert_int_equal(el_proxy_v2_parse(b, 13, &pp), EL_PROXY_V2_BAD);
    v2(b, 0x22, 0x11, a4, 12); /* command 2 */
    assert_int_equal(el_proxy_v2_parse(b, 13, &pp), EL_PROXY_V2_BAD);
    static const uint8_t fams[] = {0x12, 0x22, 0x31, 0x32, 0x13, 0x41, 0x01};
    for (size_t i = 0; i < sizeof(fams); i++) { /* UDP, unix sockets, unknown */
        v2(b, 0x21, fams[i], a4, 12);
        if (el_proxy_v2_parse(b, 14, &pp) != EL_PROXY_V2_BAD) fail_msg("family %#x", fams[i]);
    }
    v2(b, 0x21, 0x11, a4, 11); /* too short for TCP over IPv4 */
    assert_int_equal(el_proxy_v2_parse(b, 16, &pp), EL_PROXY_V2_BAD);
    v2(b, 0x21, 0x21, a4, 12); /* too short for TCP over IPv6 */
    assert_int_equal(el_proxy_v2_parse(b, 28, &pp), EL_PROXY_V2_BAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidr_parse),
        cmocka_unit_test(test_cidr_match),
        cmocka_unit_test(test_is_local),
        cmocka_unit_test(test_parse_ip),
        cmocka_unit_test(test_xff_rightmost_untrusted_hop),
        cmocka_unit_test(test_xff_all_trusted_leftmost),
        cmocka_unit_test(test_xff_none_or_malformed_stops_at_last_good_hop),
        cmocka_unit_test(test_proxy_v2_tcp4_tcp6_and_tlvs),
        cmocka_unit_test(test_proxy_v2_local_and_unspec),
        cmocka_unit_test(test_proxy_v2_refuses_v1_garbage_and_bad_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
