/* test_route.c - glob matching and first-match-wins route lookup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>
#include <string.h>

#include "einlass/http.h"
#include "einlass/route.h"

#include "../nginx_ref.h"

static bool glob(const char *g, const char *p)
{
    return el_route_glob(g, p, strlen(p));
}

/* A plainly recursive matcher, slow but obviously right, to check the
 * iterative one against. */
static bool ref_match(const char *g, const char *p, size_t n)
{
    if (*g == '\0') return n == 0;
    if (g[0] == '*') {
        size_t run = 0;
        while (g[run] == '*')
            run++;
        for (size_t k = 0; k <= n; k++) {
            if (ref_match(g + run, p + k, n - k)) return true;
            if (k < n && run == 1 && p[k] == '/') return false;
        }
        return false;
    }
    return n > 0 && *g == *p && ref_match(g + 1, p + 1, n - 1);
}

static void test_literal(void **state)
{
    (void)state;
    assert_true(glob("/healthz", "/healthz"));
    assert_false(glob("/healthz", "/healthz/"));
    assert_false(glob("/healthz", "/health"));
    assert_false(glob("/healthz", "/HEALTHZ"));
    assert_true(glob("/", "/"));
    assert_false(glob("/", ""));
    /* '?', '[' and '.' are plain bytes, not glob syntax */
    assert_true(glob("/a?b[1].c", "/a?b[1].c"));
    assert_false(glob("/a?b", "/axb"));
    assert_false(glob("/a.c", "/abc"));
}

static void test_single_star(void **state)
{
    (void)state;
    assert_true(glob("/a/*/c", "/a/b/c"));
    assert_true(glob("/a/*/c", "/a/bbb/c"));
    assert_true(glob("/a/*/c", "/a//c")); /* '*' may match an empty segment */
    assert_false(glob("/a/*/c", "/a/b/x/c"));
    assert_false(glob("/a/*/c", "/a/b/c/"));
    assert_true(glob("/appointments/*/cancel", "/appointments/42/cancel"));
    assert_false(glob("/appointments/*/cancel", "/appointments/42/x/cancel"));
    assert_true(glob("/static/*.css", "/static/site.css"));
    assert_false(glob("/static/*.css", "/static/css/site.css"));
    assert_true(glob("/a*", "/abc"));
    assert_false(glob("/a*", "/abc/d"));
    assert_true(glob("/*x*y", "/axbxcy"));
    assert_false(glob("*", "/"));
    assert_true(glob("*", ""));
}

static void test_double_star(void **state)
{
    (void)state;
    assert_true(glob("/a/**", "/a/"));
    assert_true(glob("/a/**", "/a/b"));
    assert_true(glob("/a/**", "/a/b/c/d"));
    assert_false(glob("/a/**", "/a"));
    assert_false(glob("/a/**", "/ab"));
    assert_true(glob("/**/x", "/a/x"));
    assert_true(glob("/**/x", "/a/b/c/x"));
    assert_true(glob("/**/x", "//x"));
    assert_false(glob("/**/x", "/x"));
    assert_false(glob("/**/x", "/a/x/y"));
    assert_true(glob("/**", "/"));
    assert_true(glob("**", ""));
    assert_true(glob("/staff/***", "/staff/a/b")); /* three stars act as two */
    assert_true(glob("/**/*.js", "/a/b/app.js"));
    assert_false(glob("/**/*.js", "/a/b.js/c"));
    assert_true(glob("/a/**/b/*/c", "/a/x/b/y/b/z/c"));
    assert_false(glob("/a/**/b/*/c", "/a/x/b/y/z/c"));
}

static void test_trailing_slash_and_empty_segments(void **state)
{
    (void)state;
    assert_true(glob("/a/", "/a/"));
    assert_false(glob("/a/", "/a"));
    assert_false(glob("/a", "/a/"));
    assert_true(glob("/a//b", "/a//b"));
    assert_false(glob("/a//b", "/a/b"));
    assert_true(glob("/a/*", "/a/"));
}

static void test_path_is_a_byte_range(void **state)
{
    (void)state;
    /* The caller cuts the query; bytes past path_len are never looked at. */
    const char *target = "/appointments/7/cancel?x=1";
    size_t len = (size_t)(strchr(target, '?') - target);
    assert_true(el_route_glob("/appointments/*/cancel", target, len));
    assert_false(el_route_glob("/appointments/*/cancel", target, strlen(target)));
    assert_true(el_route_glob("/a/*", "/a/b/c", 4));
}

/* Every glob over {a, /, *} up to 6 long against every path over {a, b, /}
 * up to 6 long: the iterative matcher agrees with the recursive one. */
static void test_agrees_with_reference(void **state)
{
    (void)state;
    const char galpha[] = "a/*", palpha[] = "ab/";
    char g[8], p[8];
    unsigned checked = 0, matched = 0;
    for (int gl = 0; gl <= 6; gl++) {
        int gcount = 1;
        for (int i = 0; i < gl; i++)
            gcount *= 3;
        for (int gi = 0; gi < gcount; gi++) {
            for (int i = 0, v = gi; i < gl; i++, v /= 3)
                g[i] = galpha[v % 3];
            g[gl] = '\0';
            for (int pl = 0; pl <= 6; pl++) {
                int pcount = 1;
                for (int i = 0; i < pl; i++)
                    pcount *= 3;
                for (int pi = 0; pi < pcount; pi++) {
                    for (int i = 0, v = pi; i < pl; i++, v /= 3)
                        p[i] = palpha[v % 3];
                    p[pl] = '\0';
                    bool want = ref_match(g, p, (size_t)pl);
                    if (el_route_glob(g, p, (size_t)pl) != want)
                        fail_msg("glob '%s' path '%s': want %d", g, p, want);
                    checked++;
                    matched += want;
                }
            }
        }
    }
    assert_true(checked > 1000000u);
    assert_true(matched > 1000u);
}

static void test_long_path_does_not_blow_up(void **state)
{
    (void)state;
    char path[4097];
    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    /* A classic exponential case for naive recursive matchers. */
    assert_false(glob("/**a**a**a**a**a**a**a**b", path));
    assert_true(glob("/**a**a**a**a**a**a**a", path));
}

/* ---- property: no target that nginx resolves to a queued path matches a
 * bypass route ---- */

static struct el_config *bypass_cfg(void)
{
    static struct el_config cfg;
    static char names[4][12] = {"static", "cancel", "book", "appts"};
    static char methods[4][8] = {"GET", "POST", "*", "*"};
    static char globs[4][32] = {"/static/**", "/appointments/*/cancel", "/book*/**",
                                "/appointments/**"};
    enum el_route_action acts[4] = {EL_ROUTE_BYPASS, EL_ROUTE_BYPASS, EL_ROUTE_QUEUE,
                                    EL_ROUTE_PRIORITY};
    memset(&cfg, 0, sizeof(cfg));
    for (size_t i = 0; i < 4; i++) {
        cfg.routes[i].name = names[i];
        cfg.routes[i].method = methods[i];
        cfg.routes[i].glob = globs[i];
        cfg.routes[i].action = acts[i];
    }
    cfg.nroutes = 4;
    return &cfg;
}

static const char *route_name(const struct el_config *cfg, const char *method, const char *p,
                              size_t n)
{
    const struct el_route *r = el_route_find(cfg, method, strlen(method), p, n);
    return r ? r->name : "none";
}

/* Random targets made of the pieces attackers use; for every one einlass
 * accepts, the route it matches on its normal form is the route nginx's
 * resolution matches (refused targets are fine). */
static void test_dotdot_path_does_not_bypass_queue(void **state)
{
    (void)state;
    static const char *const piece[] = {
        "static", "booking", "appointments", "cancel", "book", "x", "..", ".", "%2e", "%2E%2e",
        "%2e%2e", ".%2e", "%2f", "%2F", "/", "/", "/", "//", "%5c", "\\", ";", "%3b", "%41",
        "%7e", "%25", "%252e", "a%20b", "...",
    };
    const struct el_config *cfg = bypass_cfg();
    static struct el_http_msg m;
    uint64_t rng = 0x9e3779b97f4a7c15u;
    unsigned accepted = 0, refused = 0, resolved_differently = 0;
    for (int iter = 0; iter < 200000; iter++) {
        char target[256] = "/";
        size_t tl = 1;
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        int npieces = 1 + (int)(rng % 9);
        for (int k = 0; k < npieces; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            const char *pc = piece[rng % (sizeof(piece) / sizeof(piece[0]))];
            memcpy(target + tl, pc, strlen(pc));
            tl += strlen(pc);
        }
        target[tl] = '\0';
        const char *method = (rng >> 32) & 1 ? "POST" : "GET";
        char req[400];
        int rl = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: h\r\n\r\n", method, target);
        int rc = el_http_parse_request(req, (size_t)rl, 16384, &m);
        char ref[512], dec[512];
        int refn = (int)nginx_resolve(target, tl, dec, ref);
        if (rc == EL_HTTP_BAD) {
            assert_int_equal(el_http_path_normalize(target, tl, NULL, NULL), -1);
            refused++;
            continue;
        }
        assert_int_equal(rc, rl);
        accepted++;
        char norm[256];
        size_t nl;
        const char *np = el_http_norm_path(&m, norm, &nl);
        if (refn < 0) continue; /* nginx refuses it: nothing to compare */
        if (!(nl == (size_t)refn && memcmp(np, ref, nl) == 0)) resolved_differently++;
        const char *ours = route_name(cfg, method, np, nl);
        const char *theirs = route_name(cfg, method, ref, (size_t)refn);
        if (strcmp(ours, theirs) != 0)
            fail_msg("%s %s: einlass matches %s on '%.*s', nginx resolves '%.*s' (%s)", method,
                     target, ours, (int)nl, np, refn, ref, theirs);
    }
    /* not vacuous: both sides of the line are well populated */
    assert_true(accepted > 20000u);
    assert_true(refused > 20000u);
    (void)resolved_differently; /* "%25" and non-unreserved escapes stay encoded */
}

static struct el_config *make_cfg(void)
{
    static struct el_config cfg;
    static char names[4][8] = {"cancel", "health", "staff", "all"};
    static char methods[4][8] = {"POST", "GET", "*", "*"};
    static char globs[4][32] = {"/appointments/*/cancel", "/healthz", "/staff/**", "/**"};
    enum el_route_action acts[4] = {EL_ROUTE_BYPASS, EL_ROUTE_BYPASS, EL_ROUTE_PRIORITY,
                                    EL_ROUTE_REJECT};
    memset(&cfg, 0, sizeof(cfg));
    for (size_t i = 0; i < 4; i++) {
        cfg.routes[i].name = names[i];
        cfg.routes[i].method = methods[i];
        cfg.routes[i].glob = globs[i];
        cfg.routes[i].action = acts[i];
    }
    cfg.nroutes = 4;
    return &cfg;
}

static const char *find(const struct el_config *cfg, const char *method, const char *path)
{
    const struct el_route *r = el_route_find(cfg, method, strlen(method), path, strlen(path));
    return r ? r->name : "none";
}

static void test_find_first_match_wins(void **state)
{
    (void)state;
    struct el_config *cfg = make_cfg();
    assert_string_equal(find(cfg, "POST", "/appointments/9/cancel"), "cancel");
    assert_string_equal(find(cfg, "GET", "/appointments/9/cancel"), "all");
    assert_string_equal(find(cfg, "GET", "/healthz"), "health");
    assert_string_equal(find(cfg, "HEAD", "/healthz"), "all");
    assert_string_equal(find(cfg, "DELETE", "/staff/x"), "staff");
    assert_string_equal(find(cfg, "GET", "/staff"), "all");
    /* methods compare case-sensitively and by length */
    assert_string_equal(find(cfg, "post", "/appointments/9/cancel"), "all");
    assert_string_equal(find(cfg, "POSTX", "/appointments/9/cancel"), "all");
    assert_string_equal(find(cfg, "POS", "/appointments/9/cancel"), "all");
    assert_int_equal(el_route_find(cfg, "POST", 2, "/healthz", 8)->action, EL_ROUTE_REJECT);
    cfg->nroutes = 3;
    assert_string_equal(find(cfg, "GET", "/"), "none");
    cfg->nroutes = 0;
    assert_string_equal(find(cfg, "GET", "/healthz"), "none");
}

/* ---- el_route_room: [room NAME] selection ---- */

/* rooms[1]: book.example.org; rooms[2]: *.example.org, paths below
 * /campaign/; rooms[3]: any host, paths below /api/; rooms[4]: 10.0.0.1 and
 * book.example.org (never reached for that host: rooms[1] comes first). */
static struct el_config *rooms_cfg(void)
{
    static struct el_config cfg;
    static char h_exact[] = "book.example.org", h_wild[] = "*.example.org", h_ip[] = "10.0.0.1";
    static char p_campaign[] = "/campaign/**", p_api[] = "/api/**";
    memset(&cfg, 0, sizeof(cfg));
    cfg.nrooms = 5;
    cfg.rooms[1].hosts[0] = h_exact;
    cfg.rooms[1].nhosts = 1;
    cfg.rooms[2].hosts[0] = h_wild;
    cfg.rooms[2].nhosts = 1;
    cfg.rooms[2].path = p_campaign;
    cfg.rooms[3].path = p_api;
    cfg.rooms[4].hosts[0] = h_ip;
    cfg.rooms[4].hosts[1] = h_exact;
    cfg.rooms[4].nhosts = 2;
    return &cfg;
}

static size_t room(const struct el_config *cfg, const char *host, const char *path)
{
    return el_route_room(cfg, host, strlen(host), path, strlen(path));
}

static void test_room_host_exact_port_dot_and_case(void **state)
{
    (void)state;
    const struct el_config *cfg = rooms_cfg();
    assert_int_equal(room(cfg, "book.example.org", "/"), 1);
    assert_int_equal(room(cfg, "book.example.org:8443", "/x"), 1);
    assert_int_equal(room(cfg, "book.example.org.", "/"), 1);
    assert_int_equal(room(cfg, "book.example.org.:80", "/"), 1);
    assert_int_equal(room(cfg, "BOOK.Example.ORG", "/"), 1);
    assert_int_equal(room(cfg, "book.example.org..", "/"), 0); /* one dot only */
    assert_int_equal(room(cfg, "xbook.example.org", "/"), 0);
    assert_int_equal(room(cfg, "book.example.or", "/"), 0);
    assert_int_equal(room(cfg, "10.0.0.1", "/"), 4);
    assert_int_equal(room(cfg, "10.0.0.1:8080", "/"), 4);
    assert_int_equal(room(cfg, "10.0.0.10", "/"), 0);
    /* the host is a byte range: nothing after host_len counts */
    assert_int_equal(el_route_room(cfg, "book.example.org.evil", 16, "/", 1), 1);
}

static void test_room_wildcard_needs_a_label_before_the_suffix(void **state)
{
    (void)state;
    const struct el_config *cfg = rooms_cfg();
    assert_int_equal(room(cfg, "a.example.org", "/campaign/1"), 2);
    assert_int_equal(room(cfg, "a.b.example.org", "/campaign/1"), 2);
    assert_int_equal(room(cfg, "A.B.EXAMPLE.org:81", "/campaign/"), 2);
    assert_int_equal(room(cfg, "a.example.org.", "/campaign/x"), 2);
    assert_int_equal(room(cfg, "example.org", "/campaign/1"), 0);
    assert_int_equal(room(cfg, ".example.org", "/campaign/1"), 0);
    assert_int_equal(room(cfg, "aexample.org", "/campaign/1"), 0);
    assert_int_equal(room(cfg, "a.example.org.x", "/campaign/1"), 0);
}

static void test_room_host_and_path_both_required(void **state)
{
    (void)state;
    const struct el_config *cfg = rooms_cfg();
    assert_int_equal(room(cfg, "a.example.org", "/campaign/1"), 2);
    assert_int_equal(room(cfg, "a.example.org", "/campaign"), 0); /* host yes, path no */
    assert_int_equal(room(cfg, "other.test", "/campaign/1"), 0);  /* path yes, host no */
    assert_int_equal(room(cfg, "", "/campaign/1"), 0);            /* no host: host rooms never */
    /* a room without host patterns takes any host, and none */
    assert_int_equal(room(cfg, "other.test", "/api/v1"), 3);
    assert_int_equal(room(cfg, "", "/api/v1"), 3);
    assert_int_equal(room(cfg, "other.test", "/api"), 0);
}

static void test_room_v6_literal_matches_only_rooms_without_host(void **state)
{
    (void)state;
    const struct el_config *cfg = rooms_cfg();
    assert_int_equal(room(cfg, "[::1]:8080", "/api/x"), 3);
    assert_int_equal(room(cfg, "[::1]", "/api/x"), 3);
    assert_int_equal(room(cfg, "[2001:db8::1]:443", "/campaign/x"), 0);
    assert_int_equal(room(cfg, "[book.example.org]", "/"), 0);
}

static void test_room_first_match_wins_and_falls_back_to_zero(void **state)
{
    (void)state;
    struct el_config *cfg = rooms_cfg();
    /* book.example.org is in rooms 1 and 4; the earlier wins */
    assert_int_equal(room(cfg, "book.example.org", "/api/x"), 1);
    /* rooms 2 and 3 both match: 2 comes first */
    cfg->rooms[2].path = cfg->rooms[3].path;
    assert_int_equal(room(cfg, "a.example.org", "/api/x"), 2);
    assert_int_equal(room(cfg, "nowhere.test", "/"), 0);
    cfg->nrooms = 1; /* [room] alone */
    assert_int_equal(room(cfg, "book.example.org", "/api/x"), 0);
    cfg->nrooms = 0; /* a room's view */
    assert_int_equal(room(cfg, "book.example.org", "/api/x"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal),
        cmocka_unit_test(test_single_star),
        cmocka_unit_test(test_double_star),
        cmocka_unit_test(test_trailing_slash_and_empty_segments),
        cmocka_unit_test(test_path_is_a_byte_range),
        cmocka_unit_test(test_agrees_with_reference),
        cmocka_unit_test(test_long_path_does_not_blow_up),
        cmocka_unit_test(test_find_first_match_wins),
        cmocka_unit_test(test_dotdot_path_does_not_bypass_queue),
        cmocka_unit_test(test_room_host_exact_port_dot_and_case),
        cmocka_unit_test(test_room_wildcard_needs_a_label_before_the_suffix),
        cmocka_unit_test(test_room_host_and_path_both_required),
        cmocka_unit_test(test_room_v6_literal_matches_only_rooms_without_host),
        cmocka_unit_test(test_room_first_match_wins_and_falls_back_to_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
