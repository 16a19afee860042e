/* test_gate.c - the per-request decision, rule by rule in the order gate.h
 * gives: the status path, mode off, bypass routes and networks, a valid,
 * expired, foreign, tampered or released pass, reject routes, the open room
 * handing out passes, Einlass-Release, and the queue (join, place, admission
 * once, a copied ticket, the join limit). The room runs over the memory
 * store, which answers synchronously, so every decision completes inside
 * el_gate_decide; admissions are driven by release credits and the gate's
 * clock is the test's (struct el_gate_input.now). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "einlass/common.h"
#include "einlass/config.h"
#include "einlass/event.h"
#include "einlass/gate.h"
#include "einlass/http.h"
#include "einlass/metrics.h"
#include "einlass/page.h"
#include "einlass/room.h"
#include "einlass/token.h"

#define HEX "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define SESSION_S 600
#define POLL_S 7
#define JOINS_PER_MIN 3

static const char conf_text[] =
    "[room]\n"
    "secret = " HEX "\n"
    "session_s = 600\n"
    "poll_s = 7\n"
    "max_joins_per_ip_per_min = 3\n"
    "bypass_from = 10.20.0.0/16\n"
    "[route health]\n"
    "match = GET /healthz\n"
    "action = bypass\n"
    "[route admin]\n"
    "match = * /admin/**\n"
    "action = reject\n"
    "[route staff]\n"
    "match = * /staff/**\n"
    "action = priority\n";

/* One fixture per test: a fresh room (queue, revocations, join table). */
struct fx {
    struct el_config *cfg;
    struct el_page *page;
    struct el_room_shared *sh;
    struct el_room *room;
    struct el_room *rooms[EL_MAX_ROOMS]; /* the gate's handles by slot: rooms[0] = room */
    struct el_page *pages[EL_MAX_ROOMS]; /* by room: pages[0] = page */
    uint8_t slots[EL_MAX_ROOMS];         /* every room in slot 0 */
    struct el_room_state st[EL_MAX_ROOMS]; /* the states the gate reads */
    struct el_gate *gate;
    struct el_token_keys *keys; /* the gate's keys, to read and mint tokens */
    uint64_t now;               /* the gate's clock */
    int done_calls;             /* asynchronous completions (must stay 0) */
    int clients;                /* decide() gives each request its own address */
};

/* A request head and the message parsed from it (which points into buf). */
struct req {
    char buf[4096];
    struct el_http_msg m;
};

static int setup(void **state)
{
    struct fx *f = el_calloc(1, sizeof(*f));
    char path[] = "/tmp/einlass-test-gate-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    FILE *fp = fdopen(fd, "w");
    fputs(conf_text, fp);
    fclose(fp);
    char *err = NULL;
    int rc = el_config_load(path, &f->cfg, &err);
    unlink(path);
    if (rc != 0) {
        fprintf(stderr, "config: %s\n", err);
        free(err);
        return -1;
    }
    f->page = el_page_load("", &err);
    if (f->page == NULL) return -1;
    f->sh = el_room_shared_new(f->cfg);
    f->room = el_room_new(f->sh, NULL);
    el_room_tick(f->room, &(struct el_meter_in){.rate = 0});
    f->rooms[0] = f->room;
    f->pages[0] = f->page;
    f->gate = el_gate_new(0, f->rooms);
    el_gate_set_generation(f->gate, f->cfg, f->pages, f->slots, 1);
    f->keys = el_token_keys_new(f->cfg->room_name, f->cfg->secret, NULL);
    f->now = (uint64_t)time(NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    el_gate_free(f->gate);
    el_room_free(f->room);
    el_room_shared_free(f->sh);
    el_token_keys_free(f->keys);
    el_page_free(f->page);
    el_config_free(f->cfg);
    free(f);
    return 0;
}

/* method path, then extra header lines (each ending in \r\n, or NULL). */
static struct req *make_req(const char *method, const char *path, const char *headers)
{
    struct req *r = el_calloc(1, sizeof(*r));
    int n = snprintf(r->buf, sizeof(r->buf), "%s %s HTTP/1.1\r\nHost: portal\r\n%s\r\n", method,
                     path, headers ? headers : "");
    assert_true(n > 0 && (size_t)n < sizeof(r->buf));
    assert_int_equal(el_http_parse_request(r->buf, (size_t)n, sizeof(r->buf), &r->m), n);
    return r;
}

/* A request carrying cookie name=value. */
static struct req *req_with(const char *path, const char *name, const char *value)
{
    char h[512];
    snprintf(h, sizeof(h), "Cookie: theme=dark; %s=%s\r\n", name, value);
    return make_req("GET", path, h);
}

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(40000);
    assert_int_equal(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    return a;
}

static void done_cb(void *arg)
{
    ((struct fx *)arg)->done_calls++;
}

/* The room state the gate reads: mode, queueing, paused. */
static const struct el_room_state *states(struct fx *f, int mode, bool queueing, bool paused)
{
    atomic_store(&f->st[0].mode, mode);
    atomic_store(&f->st[0].queueing, queueing);
    atomic_store(&f->st[0].paused, paused);
    return f->st;
}

/* Decide req from ip in mode/queueing at f->now; the memory store answers
 * at once, so the decision is always synchronous. */
static void decide_from(struct fx *f, struct el_gate_ctx *ctx, struct req *r, const char *ip,
                        int mode, bool queueing)
{
    struct sockaddr_in peer = v4(ip);
    struct el_gate_input in = {.states = states(f, mode, queueing, false), .now = f->now};
    assert_int_equal(el_gate_decide(f->gate, ctx, &r->m, (const struct sockaddr *)&peer, &in,
                                    done_cb, f),
                     1);
    assert_int_equal(f->done_calls, 0);
    assert_true(ctx->completed);
}

/* Decide req from a client address of its own (no join limit in the way). */
static void decide(struct fx *f, struct el_gate_ctx *ctx, struct req *r, bool queueing)
{
    char ip[32];
    f->clients++;
    snprintf(ip, sizeof(ip), "198.18.%d.%d", f->clients / 250, 1 + f->clients % 250);
    decide_from(f, ctx, r, ip, EL_MODE_AUTO, queueing);
}

/* The token value of Set-Cookie value cookie for name, copied into out;
 * fails unless the cookie sets name. */
static void cookie_value(const char *cookie, const char *name, char out[EL_TOKEN_TEXT_MAX])
{
    size_t n = strlen(name);
    if (strncmp(cookie, name, n) != 0 || cookie[n] != '=')
        fail_msg("cookie '%s' does not set %s", cookie, name);
    const char *v = cookie + n + 1;
    size_t len = strcspn(v, ";");
    assert_true(len > 0 && len < EL_TOKEN_TEXT_MAX);
    memcpy(out, v, len);
    out[len] = '\0';
    assert_non_null(strstr(cookie, "; Path=/; HttpOnly; SameSite=Lax"));
}

/* Decode the token the cookie sets (signed with the gate's keys). */
static struct el_token cookie_token(struct fx *f, const char *cookie, const char *name,
                                    uint8_t kind)
{
    char v[EL_TOKEN_TEXT_MAX];
    cookie_value(cookie, name, v);
    struct el_token t;
    assert_int_equal(el_token_decode(f->keys, v, strlen(v), f->now, &t), 0);
    assert_int_equal(t.kind, kind);
    return t;
}

static void mint(struct el_token_keys *k, const struct el_token *t, char out[EL_TOKEN_TEXT_MAX])
{
    el_token_encode(k, t, out);
}

static struct el_token pass_token(uint64_t id, uint64_t issued, uint64_t expires)
{
    return (struct el_token){.kind = EL_TOKEN_PASS, .num = id, .issued = (uint32_t)issued,
                             .expires = (uint32_t)expires};
}

static void assert_body(const struct el_gate_ctx *ctx, const char *want)
{
    assert_int_equal(ctx->body_len, strlen(want));
    assert_memory_equal(ctx->body, want, ctx->body_len);
}

static void assert_body_has(const struct el_gate_ctx *ctx, const char *part)
{
    char *b = el_calloc(1, ctx->body_len + 1);
    memcpy(b, ctx->body, ctx->body_len);
    if (strstr(b, part) == NULL) fail_msg("body '%s' lacks '%s'", b, part);
    free(b);
}

/* A backend response head with extra header lines. */
static struct el_http_msg *response(char *buf, size_t cap, const char *headers)
{
    struct el_http_msg *m = el_calloc(1, sizeof(*m));
    int n = snprintf(buf, cap, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n%s\r\n",
                     headers ? headers : "");
    assert_int_equal(el_http_parse_response(buf, (size_t)n, cap, false, m), n);
    return m;
}

/* The Set-Cookie the gate adds to a plain response, or to one with
 * Einlass-Release: 1. */
static const char *respond(struct fx *f, struct el_gate_ctx *ctx, bool release)
{
    char buf[256];
    struct el_http_msg *m = response(buf, sizeof(buf), release ? "Einlass-Release: 1\r\n" : NULL);
    const char *cookie = el_gate_response(f->gate, ctx, m);
    free(m);
    return cookie;
}

/* Open room: a pass for a plain request; its token value into out. */
static struct el_token open_pass(struct fx *f, char out[EL_TOKEN_TEXT_MAX])
{
    struct el_gate_ctx ctx = {0};
    struct req *r = make_req("GET", "/book", NULL);
    decide(f, &ctx, r, false);
    assert_true(ctx.forward);
    cookie_value(ctx.cookie, "einlass_pass", out);
    struct el_token t = cookie_token(f, ctx.cookie, "einlass_pass", EL_TOKEN_PASS);
    free(r);
    return t;
}

/* Queueing: a newcomer from ip joins; its ticket value into out. */
static struct el_token join_from(struct fx *f, const char *ip, char out[EL_TOKEN_TEXT_MAX],
                                 uint64_t want_position)
{
    struct el_gate_ctx ctx = {0};
    struct req *r = make_req("GET", "/book", NULL);
    decide_from(f, &ctx, r, ip, EL_MODE_AUTO, true);
    assert_false(ctx.forward);
    assert_int_equal(ctx.decision, EL_DECISION_WAIT);
    assert_int_equal(ctx.status, 503);
    assert_true(ctx.retry_after >= 1 && ctx.retry_after <= POLL_S); /* the ETA, at most poll_s */
    assert_true(ctx.joined);
    char want[64];
    snprintf(want, sizeof(want), "\"position\":%llu,", (unsigned long long)want_position);
    assert_body_has(&ctx, want);
    cookie_value(ctx.cookie, "einlass_ticket", out);
    struct el_token t = cookie_token(f, ctx.cookie, "einlass_ticket", EL_TOKEN_TICKET);
    free(r);
    return t;
}

/* One admission credit: a release of a pass nobody holds, then a tick. */
static void admit_one(struct fx *f, uint64_t id)
{
    el_room_release(f->room, id);
    el_room_tick(f->room, &(struct el_meter_in){.rate = 0});
}

/* ---- the status path -------------------------------------------------- */

static void test_status_path_is_answered_never_forwarded(void **state)
{
    struct fx *f = *state;
    struct el_gate_ctx ctx = {0};
    struct req *r = make_req("GET", "/_einlass/status", NULL);

    decide_from(f, &ctx, r, "192.0.2.10", EL_MODE_OFF, true); /* mode off: open */
    assert_false(ctx.forward);
    assert_int_equal(ctx.status, 200);
    assert_string_equal(ctx.ctype, "application/json");
    assert_body(&ctx, "{\"state\":\"open\"}");
    assert_string_equal(ctx.cookie, "");

    decide(f, &ctx, r, false); /* open room: open, and a pass */
    assert_false(ctx.forward);
    assert_int_equal(ctx.status, 200);
    assert_body(&ctx, "{\"state\":\"open\"}");
    cookie_token(f, ctx.cookie, "einlass_pass", EL_TOKEN_PASS);

    /* a bypass network asking for its status is answered too */
    decide_from(f, &ctx, r, "10.20.1.1", EL_MODE_AUTO, false);
    assert_false(ctx.forward);
    assert_body(&ctx, "{\"state\":\"open\"}");

    /* queueing, no ticket: told so with 200, and no place is taken */
    decide(f, &ctx, r, true);
    assert_false(ctx.forward);
    assert_int_equal(ctx.decision, EL_DECISION_WAIT);
    assert_int_equal(ctx.status, 200);
    assert_string_equal(ctx.ctype, "application/json");
    assert_int_equal(ctx.retry_after, POLL_S);
    assert_body(&ctx, "{\"state\":\"queueing\",\"poll_s\":7}");
    assert_string_equal(ctx.cookie, "");
    free(r);

    /* with a ticket: its place, with 200, in words for the page's script */
    r = make_req("GET", "/book", NULL);
    decide(f, &ctx, r, true);
    char ticket[EL_TOKEN_TEXT_MAX];
    cookie_value(ctx.cookie, "einlass_ticket", ticket);
    free(r);
    r = req_with("/_einlass/status", "einlass_ticket", ticket);
    decide(f, &ctx, r, true);
    assert_int_equal(ctx.status, 200);
    assert_body(&ctx, "{\"state\":\"waiting\",\"position\":1,\"eta_s\":1,\"eta_low_s\":0,"
                      "\"eta_high_s\":60,\"poll_s\":7,\"lang\":\"en\",\"place_text\":\"1\","
                      "\"eta_text\":\"less than a minute\"}");
    assert_int_equal(ctx.retry_after, 1); /* the ETA (1 s), not poll_s */
    free(r);

    /* with a pass: admitted */
    char pass[EL_TOKEN_TEXT_MAX];
    open_pass(f, pass);
    r = req_with("/_einlass/status", "einlass_pass", pass);
    decide(f, &ctx, r, true);
    assert_false(ctx.forward);
    assert_int_equal(ctx.status, 200);
    assert_body(&ctx, "{\"state\":\"admitted\"}");
    assert_true(ctx.had_pass);
    free(r);
}

static void test_cookieless_status_does_not_join_the_queue(void **state)
{
    struct fx *f = *state;
    struct el_gate_ctx ctx = {0};
    struct req *r = make_req("GET", "/_einlass/status", NULL);
    for (int i = 0; i < 3; i++) {
        decide(f, &ctx, r, true);
        assert_int_equal(ctx.status, 200);
        assert_string_equal(ctx.cookie, "");
    }
    free(r);
    /* the next page load is first in line: the polls took no place */
    r = make_req("GET", "/book", NULL);
    decide(f, &ctx, r, true);
    assert_body_has(&ctx, "\"position\":1,");
    free(r);
}

static void test_health_path_is_answered_and_never_joins(void **state)
{
    struct fx *f = *state;
    struct el_gate_ctx ctx = {0};
    struct req *r = make_req("GET", "/_einlass/health", NULL);
    decide(f, &ctx, r, true);
    assert_false(ctx.forward);
    assert_int_equal(ctx.status, 200);
    assert_body(&ctx, "{\"state\":\"ok\",\"queueing\":true}");
    assert_string_equal(ctx.cookie, "");
    decide_from(f, &ctx, r, "192.0.2.10", EL_MODE_OFF, false);
    assert_false(ctx.forward);
    assert_body(&ctx, "{\"state\":\"ok\",\"queueing\":false}");
    free(r);
    r = make_req("GET", "/book", NULL);
    decide(f, &ctx, r, true);
    assert_body_has(&ctx, "\"position\":1,");
    free(r);
}

static void test_paused_page_says_so_and_keeps_the_place(void **state)
{
    struct fx *f = *state;
    struct el_gate_ctx ctx = {0};
    struct req *r = make_req("GET", "/book", "Accept: text/html\r\nAccept-Language: de\r\n");
    struct sockaddr_in peer = v4("198.18.200.1");
    struct el_gate_input in = {.states = states(f, EL_MODE_AUTO, true, true), .now = f->now};
    assert_int_equal(el_gate_decide(f->gate, &ctx, &r->m, (const struct sockaddr *)&peer, &in,
                                    done_cb, f),
                     1);
    assert_int_equal(ctx.status, 503);
    assert_body_has(&ctx, "data-paused=\"Der Einlass ist kurz angehalten. Ihr Platz bleibt "
                          "erhalten.\">Der Einlass ist kurz angehalten. Ihr Platz bleibt "
                          "erhalten.</span>");
    free(r);
    r = make_req("GET", "/book", NULL);
    assert_int_equal(el_gate_decide(f->gate, &ctx, &r->m, (const struct sockaddr *)&peer, &in,
                                    done_cb, f),
                     1);
    assert_body_has(&ctx, "\"position\":2,");
    assert_body_has(&ctx, "\"paused\":true}");
    free(r);
}

/* ---- mode off --------------------------------------------------------- */

static void test_mode_off_forwards_without_cookies(void **state)
{
    struct fx *f = *state;
    struct el_gate_ctx ctx = {0};
    struct req *r = make_req("GET", "/book", NULL);
    decide_from(f, &ctx, r, "192.0.2.10", EL_MODE_OFF, true);
    assert_true(ctx.forward);
    assert_int_equal(ctx.decision, EL_DECISION_FORWARD);
    assert_string_equal(ctx.cookie, "");
    assert_string_equal(respond(f, &ctx, false), "");
    free(r);

    /* a reject route is a plain path then too */
    r = make_req("GET", "/admin/users", NULL);
    decide_from(f, &ctx, r, "192.0.2.10", EL_MODE_OFF, true);
    assert_true(ctx.forward);
    assert_string_equal(ctx.cookie, "");
    free(r);
}

/* ---- bypass ----------------------------------------------------------- */

static void test_bypass_route_forwards_without_pass(void **state)
{
    struct fx *f = *state;
    struct el_gate_ctx ctx = {0};
    struct req *r = make_req("GET", "/healthz", NULL);
    decide(f, &ctx, r, true);
    assert_true(ctx.forward);
    assert_int_equal(ctx.decision, EL_DECISION_BYPASS);
    assert_string_equal(ctx.cookie, "");
    assert_false(ctx.joined);
    /* Einlass-Release on a bypass answer to a request without a pass: nothing */
    assert_string_equal(respond(f, &ctx, true), "");
    free(r);

    /* the route matches the path in normal form */
    r = make_req("GET", "//healthz", NULL);
    decide(f, &ctx, r, true);
    assert_int_equal(ctx.decision, EL_DECISION_BYPASS);
    free(r);

    /* another method is not the route: it queues */
    r = make_req("POST", "/healthz", NULL);
    decide(f, &ctx, r, true);
    assert_int_equal(ctx.decision, EL_DECISION_WAIT);
    free(r);
}

static void test_bypass_network_forwards_without_pass(void **state)
{
    struct fx *f = *state;
    struct el_gate_ctx ctx = {0};
    struct req *r = make_req("GET", "/book", NULL);
    decide_from(f, &ctx, r, "10.20.3.4", EL_MODE_AUTO, true);
    assert_true(ctx.forward);
    assert_int_equal(ctx.decision, EL_DECISION_BYPASS);
    assert_string_equal(ctx.cookie, "");

    decide_from(f, &ctx, r, "10.21.0.1", EL_MODE_AUTO, true); /* outside 10.20/16 */
    assert_false(ctx.forward);
    assert_int_equal(ctx.decision, EL_DECISION_WAIT);
    free(r);
}

/* ---- passes ------------------------------------------------------------ */

static void test_valid_pass_forwards_and_expiry_slides(void **state)
{
    struct fx *f = *state;
    struct el_gate_ctx ctx = {0};
    char pass[EL_TOKEN_TEXT_MAX];
    struct el_token first = open_pass(f, pass);
    assert_int_equal(first.issued, (uint32_t)f->now);
    assert_int_equal(first.expires, (uint32_t)(f->now + SESSION_S));

    struct req *r = req_with("/book", "einlass_pass", pass);
    decide(f, &ctx, r, true); /* queueing: the pass goes in all the same */
    assert_true(ctx.forward);
    assert_int_equal(ctx.decision, EL_DECISION_FORWARD);
    assert_true(ctx.had_pass);
    assert_int_equal(ctx.pass_id, first.num);
    assert_string_equal(ctx.cookie, ""); /* too fresh to slide (session_s / 10) */
    assert_string_equal(respond(f, &ctx, false), "");

    f->now += SESSION_S / 10; /* a step later: a fresh pass with the same id */
    decide(f, &ctx, r, true);
    assert_true(ctx.forward);
    struct el_token slid = cookie_token(f, ctx.cookie, "einlass_pass", EL_TOKEN_PASS);
    assert_int_equal(slid.num, first.num);
    assert_int_equal(slid.issued, (uint32_t)f->now);
    assert_int_equal(slid.expires, (uint32_t)(f->now + SESSION_S));
    assert_string_equal(respond(f, &ctx, false), ctx.cookie);
    free(r);
}

static void test_expired_pass_counts_as_none(void **state)
{
    struct fx *f = *state;
    struct el_gate_ctx ctx = {0};
    char pass[EL_TOKEN_TEXT_MAX];
    struct el_token t = open_pass(f, pass);
    struct req *r = req_with("/book", "einlass_pass", pass);
    f->now += SESSION_S; /* expires is exclusive */
    decide(f, &ctx, r, false);
    assert_true(ctx.forward);
    assert_false(ctx.had_pass);
    struct el_token fresh = cookie_token(f, ctx.cookie, "einlass_pass", EL_TOKEN_PASS);
    assert_true(fresh.num != t.num); /* a new session, not the old one slid */
    decide(f, &ctx, r, true);        /* queueing: a newcomer */
    assert_false(ctx.forward);
    assert_int_equal(ctx.decision, EL_DECISION_WAIT);
    assert_true(ctx.joined);
    free(r);
}

static void test_foreign_pass_counts_as_none(void **state)
{
    struct fx *f = *state;
    struct el_gate_ctx ctx = {0};
    uint8_t other[EL_SECRET_LEN];
    memset(other, 0x5a, sizeof(other));
    char pass[EL_TOKEN_TEXT_MAX];
    struct el_token t = pass_token(42, f->now, f->now + SESSION_S);

    struct el_token_keys *k = el_token_keys_new(f->cfg->room_name, other, NULL);
    mint(k, &t, pass); /* another secret */
    el_token_keys_free(k);
    struct req *r = req_with("/book", "einlass_pass", pass);
    decide(f, &ctx, r, true);
    assert_false(ctx.had_pass);
    assert_int_equal(ctx.decision, EL_DECISION_WAIT);
    free(r);

    k = el_token_keys_new("another-room", f->cfg->secret, NULL);
    mint(k, &t, pass); /* another room, same secret */
    el_token_keys_free(k);
    r = req_with("/book", "einlass_pass", pass);
    decide(f, &ctx, r, true);
    assert_false(ctx.had_pass);
    assert_int_equal(ctx.decision, EL_DECISION_WAIT);
    free(r);

    /* a ticket is not a pass */
    struct el_token tk = {.kind = EL_TOKEN_TICKET, .num = 42, .issued = (uint32_t)f->now,
                          .expires = (uint32_t)(f->now + SESSION_S)};
    mint(f->keys, &tk, pass);
    r = req_with("/book", "einlass_pass", pass);
    decide(f, &ctx, r, false);
    assert_false(ctx.had_pass);
    free(r);

    /* the same token with the gate's keys is a pass */
    mint(f->keys, &t, pass);
    r = req_with("/book", "einlass_pass", pass);
    decide(f, &ctx, r, true);
    assert_true(ctx.had_pass);
    assert_int_equal(ctx.pass_id, 42);
    assert_true(ctx.forward);
    free(r);
}

static void test_tampered_pass_counts_as_none(void **state)
{
    struct fx *f = *state;
    struct el_gate_ctx ctx = {0};
    char pass[EL_TOKEN_TEXT_MAX];
    open_pass(f, pass);
    size_t n = strlen(pass);
    for (size_t i = 0; i < n; i += n / 4) {
        char bad[EL_TOKEN_TEXT_MAX];
        memcpy(bad, pass, n + 1);
        bad[i] = bad[i] == 'A' ? 'B' : 'A';
        struct req *r = req_with("/book", "einlass_pass", bad);
        decide(f, &ctx, r, true);
        assert_false(ctx.had_pass);
        assert_false(ctx.forward);
        free(r);
    }
    pass[n - 1] = '\0'; /* truncated */
    struct req *r = req_with("/book", "einlass_pass", pass);
    decide(f, &ctx, r, true);
    assert_false(ctx.had_pass);
    free(r);
}

/* ---- release ----------------------------------------------------------- */

static void test_release_clears_pass_and_revokes_it(void **state)
{
    struct fx *f = *state;
    struct el_gate_ctx ctx = {0};
    char pass[EL_TOKEN_TEXT_MAX];
    struct el_token t = open_pass(f, pass);
    char a_tk[EL_TOKEN_TEXT_MAX], b_tk[EL_TOKEN_TEXT_MAX];
    struct el_token a = join_from(f, "192.0.2.21", a_tk, 1);
    struct el_token b = join_from(f, "192.0.2.22", b_tk, 2);
    (void)a, (void)b;

    struct req *r = req_with("/book", "einlass_pass", pass);
    decide(f, &ctx, r, true);
    assert_true(ctx.had_pass);
    assert_string_equal(respond(f, &ctx, true),
                        "einlass_pass=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
    assert_true(el_room_revoked(f->room, t.num, f->now));

    /* the released pass counts as none: its holder is a newcomer */
    decide(f, &ctx, r, true);
    assert_false(ctx.had_pass);
    assert_false(ctx.forward);
    assert_int_equal(ctx.decision, EL_DECISION_WAIT);
    assert_true(ctx.joined);
    /* while the room is open it gets a new pass, which a release ends
     * without a credit: it held no place */
    decide(f, &ctx, r, false);
    assert_false(ctx.had_pass);
    assert_true(ctx.forward);
    assert_true(cookie_token(f, ctx.cookie, "einlass_pass", EL_TOKEN_PASS).num != t.num);
    assert_string_equal(respond(f, &ctx, true),
                        "einlass_pass=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
    free(r);

    /* one credit in all: a is admitted, b still waits */
    el_room_tick(f->room, &(struct el_meter_in){.rate = 0});
    r = req_with("/book", "einlass_ticket", a_tk);
    decide_from(f, &ctx, r, "192.0.2.21", EL_MODE_AUTO, true);
    assert_true(ctx.forward);
    free(r);
    r = req_with("/book", "einlass_ticket", b_tk);
    decide_from(f, &ctx, r, "192.0.2.22", EL_MODE_AUTO, true);
    assert_false(ctx.forward);
    assert_body_has(&ctx, "\"position\":1,");
    free(r);
}

static void test_release_without_pass_sets_nothing(void **state)
{
    struct fx *f = *state;
    struct el_gate_ctx ctx = {0};
    struct req *r = make_req("GET", "/book", NULL);
    decide_from(f, &ctx, r, "192.0.2.10", EL_MODE_OFF, false);
    assert_string_equal(respond(f, &ctx, true), "");
    free(r);
}

/* ---- reject ------------------------------------------------------------ */

static void test_reject_route_answers_403_unless_pass(void **state)
{
    struct fx *f = *state;
    struct el_gate_ctx ctx = {0};
    struct req *r = make_req("POST", "/admin/users", NULL);
    for (int queueing = 0; queueing < 2; queueing++) {
        decide(f, &ctx, r, queueing);
        assert_false(ctx.forward);
        assert_int_equal(ctx.decision, EL_DECISION_REJECT);
        assert_int_equal(ctx.status, 403);
        assert_string_equal(ctx.ctype, "text/plain; charset=utf-8");
        assert_body(&ctx, "403 Forbidden: this path is closed\n");
        assert_string_equal(ctx.cookie, "");
        assert_int_equal(ctx.retry_after, 0);
        assert_false(ctx.joined);
    }
    free(r);
    /* a valid pass comes first in the order */
    char pass[EL_TOKEN_TEXT_MAX];
    open_pass(f, pass);
    r = req_with("/admin/users", "einlass_pass", pass);
    decide(f, &ctx, r, true);
    assert_true(ctx.forward);
    assert_true(ctx.had_pass);
    free(r);
}

/* ---- the open room ------------------------------------------------------ */

static void test_open_room_hands_out_pass_on_response(void **state)
{
    struct fx *f = *state;
    struct el_gate_ctx ctx = {0};
    struct req *r = make_req("GET", "/book", NULL);
    decide(f, &ctx, r, false);
    assert_true(ctx.forward);
    assert_int_equal(ctx.decision, EL_DECISION_FORWARD);
    assert_false(ctx.had_pass);
    assert_false(ctx.releasable);
    struct el_token t = cookie_token(f, ctx.cookie, "einlass_pass", EL_TOKEN_PASS);
    assert_int_equal(t.num, ctx.pass_id);
    assert_int_equal(t.expires, (uint32_t)(f->now + SESSION_S));
    assert_null(strstr(ctx.cookie, "Secure"));
    char cookie[EL_COOKIE_MAX];
    snprintf(cookie, sizeof(cookie), "%s", ctx.cookie);
    assert_string_equal(respond(f, &ctx, false), cookie);

    /* each newcomer gets its own session id */
    decide(f, &ctx, r, false);
    assert_true(cookie_token(f, ctx.cookie, "einlass_pass", EL_TOKEN_PASS).num != t.num);
    free(r);
}

static void test_secure_cookie_only_behind_local_or_trusted_proxy(void **state)
{
    struct fx *f = *state;
    struct el_gate_ctx ctx = {0};
    struct req *r = make_req("GET", "/book", "X-Forwarded-Proto: https\r\n");
    ctx.proxied = false;
    decide(f, &ctx, r, false);
    assert_false(ctx.secure);
    assert_null(strstr(ctx.cookie, "Secure"));

    ctx.proxied = true; /* set by the connection; the gate leaves it */
    decide(f, &ctx, r, false);
    assert_true(ctx.proxied);
    assert_true(ctx.secure);
    assert_non_null(strstr(ctx.cookie, "; SameSite=Lax; Secure"));
    assert_string_equal(respond(f, &ctx, true),
                        "einlass_pass=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure");
    free(r);

    r = make_req("GET", "/book", "X-Forwarded-Proto: http\r\n");
    decide(f, &ctx, r, false);
    assert_false(ctx.secure);
    free(r);
}

/* ---- the queue ------------------------------------------------------------ */

static void test_newcomer_joins_with_ticket(void **state)
{
    struct fx *f = *state;
    char tk[EL_TOKEN_TEXT_MAX];
    struct el_token t = join_from(f, "192.0.2.30", tk, 1);
    assert_int_equal(t.lane, 0);
    assert_int_equal(t.flags, 0);
    assert_int_equal(t.issued, (uint32_t)f->now);

    /* the HTML page for a browser, in its language */
    struct el_gate_ctx ctx = {0};
    struct req *r = make_req("GET", "/book", "Accept: text/html\r\nAccept-Language: de\r\n");
    decide(f, &ctx, r, true);
    assert_int_equal(ctx.status, 503);
    assert_string_equal(ctx.ctype, "text/html; charset=utf-8");
    assert_true(ctx.retry_after >= 1 && ctx.retry_after <= POLL_S); /* the ETA, at most poll_s */
    assert_int_equal(ctx.lang, EL_LANG_DE);
    assert_body_has(&ctx, "lang=\"de\"");
    cookie_token(f, ctx.cookie, "einlass_ticket", EL_TOKEN_TICKET);
    free(r);

    /* a priority route joins the priority lane */
    r = make_req("GET", "/staff/desk", NULL);
    decide(f, &ctx, r, true);
    assert_int_equal(ctx.status, 503);
    assert_int_equal(cookie_token(f, ctx.cookie, "einlass_ticket", EL_TOKEN_TICKET).lane, 1);
    assert_body_has(&ctx, "\"position\":1,");
    free(r);
}

static void test_ticket_holder_asks_its_place(void **state)
{
    struct fx *f = *state;
    struct el_gate_ctx ctx = {0};
    char a_tk[EL_TOKEN_TEXT_MAX], b_tk[EL_TOKEN_TEXT_MAX];
    join_from(f, "192.0.2.31", a_tk, 1);
    join_from(f, "192.0.2.32", b_tk, 2);
    struct req *r = req_with("/book", "einlass_ticket", b_tk);
    for (int i = 0; i < 3; i++) { /* polling keeps the place, joins nothing */
        decide_from(f, &ctx, r, "192.0.2.32", EL_MODE_AUTO, true);
        assert_false(ctx.forward);
        assert_int_equal(ctx.status, 503);
        assert_true(ctx.retry_after >= 1 && ctx.retry_after <= POLL_S); /* the ETA, at most poll_s */
        assert_false(ctx.joined);
        assert_string_equal(ctx.cookie, ""); /* the ticket it has is still good */
        assert_body_has(&ctx, "\"position\":2,");
    }
    free(r);
    r = req_with("/_einlass/status", "einlass_ticket", b_tk);
    decide_from(f, &ctx, r, "192.0.2.32", EL_MODE_AUTO, true);
    assert_int_equal(ctx.status, 200);
    assert_body(&ctx, "{\"state\":\"waiting\",\"position\":2,\"eta_s\":1,\"eta_low_s\":0,"
                      "\"eta_high_s\":60,\"poll_s\":7,\"lang\":\"en\",\"place_text\":\"2\","
                      "\"eta_text\":\"less than a minute\"}");
    free(r);
}

static void test_reached_ticket_is_admitted_once_with_pass(void **state)
{
    struct fx *f = *state;
    struct el_gate_ctx ctx = {0};
    char a_tk[EL_TOKEN_TEXT_MAX], b_tk[EL_TOKEN_TEXT_MAX];
    join_from(f, "192.0.2.41", a_tk, 1);
    join_from(f, "192.0.2.42", b_tk, 2);
    admit_one(f, 9001);

    struct req *r = req_with("/book", "einlass_ticket", a_tk);
    decide_from(f, &ctx, r, "192.0.2.41", EL_MODE_AUTO, true);
    assert_true(ctx.forward);
    assert_int_equal(ctx.decision, EL_DECISION_FORWARD);
    assert_false(ctx.had_pass);
    assert_true(ctx.releasable);
    struct el_token p = cookie_token(f, ctx.cookie, "einlass_pass", EL_TOKEN_PASS);
    assert_int_equal(p.num, ctx.pass_id);
    assert_int_equal(p.expires, (uint32_t)(f->now + SESSION_S));
    char cookie[EL_COOKIE_MAX];
    snprintf(cookie, sizeof(cookie), "%s", ctx.cookie);
    assert_string_equal(respond(f, &ctx, false), cookie);
    free(r);

    /* b moved up */
    r = req_with("/book", "einlass_ticket", b_tk);
    decide_from(f, &ctx, r, "192.0.2.42", EL_MODE_AUTO, true);
    assert_false(ctx.forward);
    assert_body_has(&ctx, "\"position\":1,");
    free(r);

    /* the pass a ticket gave is releasable: one credit, b goes in */
    char pass[EL_TOKEN_TEXT_MAX];
    cookie_value(cookie, "einlass_pass", pass);
    r = req_with("/book", "einlass_pass", pass);
    decide(f, &ctx, r, true);
    assert_true(ctx.had_pass);
    assert_string_equal(respond(f, &ctx, true),
                        "einlass_pass=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax");
    free(r);
    el_room_tick(f->room, &(struct el_meter_in){.rate = 0});
    r = req_with("/_einlass/status", "einlass_ticket", b_tk);
    decide_from(f, &ctx, r, "192.0.2.42", EL_MODE_AUTO, true);
    assert_false(ctx.forward);
    assert_int_equal(ctx.status, 200);
    assert_body(&ctx, "{\"state\":\"admitted\"}");
    cookie_token(f, ctx.cookie, "einlass_pass", EL_TOKEN_PASS);
    free(r);
}

static void test_copied_ticket_yields_one_pass(void **state)
{
    struct fx *f = *state;
    struct el_gate_ctx ctx = {0};
    char tk[EL_TOKEN_TEXT_MAX];
    join_from(f, "192.0.2.51", tk, 1);
    admit_one(f, 9002);
    struct req *r = req_with("/book", "einlass_ticket", tk);
    decide_from(f, &ctx, r, "192.0.2.51", EL_MODE_AUTO, true);
    assert_true(ctx.forward);
    cookie_token(f, ctx.cookie, "einlass_pass", EL_TOKEN_PASS);

    /* the copy, from elsewhere: counts as none, joins at the back */
    decide_from(f, &ctx, r, "198.51.100.7", EL_MODE_AUTO, true);
    assert_false(ctx.forward);
    assert_int_equal(ctx.decision, EL_DECISION_WAIT);
    assert_int_equal(ctx.status, 503);
    assert_true(ctx.joined);
    assert_false(ctx.releasable);
    cookie_token(f, ctx.cookie, "einlass_ticket", EL_TOKEN_TICKET);
    assert_body_has(&ctx, "\"position\":1,");
    free(r);
}

static void test_join_limit_refuses_with_429(void **state)
{
    struct fx *f = *state;
    struct el_gate_ctx ctx = {0};
    char tk[EL_TOKEN_TEXT_MAX];
    for (int i = 0; i < JOINS_PER_MIN; i++) join_from(f, "203.0.113.9", tk, (uint64_t)i + 1);
    uint64_t refused = atomic_load(&el_metrics_workers[0].joins_refused);

    struct req *r = make_req("GET", "/book", NULL);
    decide_from(f, &ctx, r, "203.0.113.9", EL_MODE_AUTO, true);
    assert_false(ctx.forward);
    assert_int_equal(ctx.decision, EL_DECISION_REJECT);
    assert_int_equal(ctx.status, 429);
    assert_string_equal(ctx.ctype, "application/json");
    assert_string_equal(ctx.cookie, "");
    assert_false(ctx.joined);
    assert_true(ctx.retry_after > 0 && ctx.retry_after <= 60);
    char want[128];
    snprintf(want, sizeof(want),
             "{\"state\":\"refused\",\"reason\":\"too many joins from this address\","
             "\"retry_after_s\":%d}", ctx.retry_after);
    assert_body(&ctx, want);
    assert_int_equal(atomic_load(&el_metrics_workers[0].joins_refused), refused + 1);
    free(r);

    r = make_req("GET", "/book", "Accept: text/html\r\n"); /* a browser reads text */
    decide_from(f, &ctx, r, "203.0.113.9", EL_MODE_AUTO, true);
    assert_int_equal(ctx.status, 429);
    assert_string_equal(ctx.ctype, "text/plain; charset=utf-8");
    assert_body_has(&ctx, "429 Too Many Requests");
    free(r);

    /* a gone ticket's holder joins again: limited too */
    struct el_token t = {.kind = EL_TOKEN_TICKET, .num = 777777, .issued = (uint32_t)f->now,
                         .expires = (uint32_t)(f->now + 3600)};
    mint(f->keys, &t, tk);
    r = req_with("/book", "einlass_ticket", tk);
    decide_from(f, &ctx, r, "203.0.113.9", EL_MODE_AUTO, true);
    assert_int_equal(ctx.status, 429);
    free(r);

    /* no place was taken: the next address is fourth, not sixth */
    join_from(f, "203.0.113.10", tk, JOINS_PER_MIN + 1);
    /* a ticket holder polling is not a join */
    r = req_with("/book", "einlass_ticket", tk);
    decide_from(f, &ctx, r, "203.0.113.9", EL_MODE_AUTO, true);
    assert_int_equal(ctx.status, 503);
    free(r);
}

/* A new generation: its config and keys from the next decision on. */
static void test_new_generation_takes_new_secret(void **state)
{
    struct fx *f = *state;
    struct el_gate_ctx ctx = {0};
    char pass[EL_TOKEN_TEXT_MAX];
    open_pass(f, pass);

    struct el_config next = *f->cfg; /* a shallow copy: same strings and routes */
    memset(next.secret, 0x77, sizeof(next.secret));
    next.has_previous_secret = true;
    memcpy(next.previous_secret, f->cfg->secret, sizeof(next.previous_secret));
    next.session_s = 60;
    next.rooms[0].cfg = &next; /* [room] is the config itself */
    el_gate_set_generation(f->gate, &next, f->pages, f->slots, 2);

    struct req *r = req_with("/book", "einlass_pass", pass);
    decide(f, &ctx, r, true); /* the old secret still verifies */
    assert_true(ctx.had_pass);
    free(r);
    r = make_req("GET", "/book", NULL);
    decide(f, &ctx, r, false); /* new passes: the new secret and session_s */
    char v[EL_TOKEN_TEXT_MAX];
    cookie_value(ctx.cookie, "einlass_pass", v);
    struct el_token t;
    assert_int_equal(el_token_decode(f->keys, v, strlen(v), f->now, &t), -1);
    struct el_token_keys *k = el_token_keys_new(next.room_name, next.secret, NULL);
    assert_int_equal(el_token_decode(k, v, strlen(v), f->now, &t), 0);
    assert_int_equal(t.expires, (uint32_t)(f->now + 60));
    el_token_keys_free(k);
    free(r);
    el_gate_set_generation(f->gate, f->cfg, f->pages, f->slots, 1); /* teardown frees f->cfg */
}

/* ---- scheduled openings ---------------------------------------------- */

/* Decide req from ip while the room queues, with the event table ev. */
static void decide_ev(struct fx *f, struct el_gate_ctx *ctx, struct req *r, const char *ip,
                      struct el_events *ev)
{
    struct sockaddr_in peer = v4(ip);
    struct el_events *by_slot[EL_MAX_ROOMS] = {ev}; /* [room]'s, slot 0 */
    struct el_gate_input in = {.states = states(f, EL_MODE_AUTO, true, false), .now = f->now,
                               .events = by_slot};
    assert_int_equal(el_gate_decide(f->gate, ctx, &r->m, (const struct sockaddr *)&peer, &in,
                                    done_cb, f),
                     1);
    assert_true(ctx->completed);
}

/* During a pre-queue: newcomers get pre-queue tickets and no place, a pass
 * holder and the priority lane are not held; at the draw each pre-queue
 * ticket gets its drawn place (a plain ticket for it), a copy the same
 * place and, once it is reached, no second pass. */
static void test_prequeue_tickets_and_their_drawn_places(void **state)
{
    struct fx *f = *state;
    char pass[EL_TOKEN_TEXT_MAX];
    open_pass(f, pass);
    struct el_config c;
    memset(&c, 0, sizeof(c));
    c.nevents = 1;
    snprintf(c.events[0].name, sizeof(c.events[0].name), "vacc");
    c.events[0].opens_at_ms = (int64_t)(f->now + 100) * 1000;
    c.events[0].prequeue_s = 600;
    c.events[0].has_opens_at = true;
    struct el_events *ev = el_events_new();
    el_events_configure(ev, &c);
    el_events_tick(ev, f->room, (int64_t)f->now * 1000);
    assert_true(el_events_hold_room(ev));

    struct el_gate_ctx ctx = {0};
    char tk[3][EL_TOKEN_TEXT_MAX];
    for (int i = 0; i < 3; i++) {
        struct req *r = make_req("GET", "/book", NULL);
        char ip[32];
        snprintf(ip, sizeof(ip), "192.0.2.%d", 60 + i);
        decide_ev(f, &ctx, r, ip, ev);
        assert_int_equal(ctx.status, 503);
        assert_body_has(&ctx, "{\"state\":\"prequeue\",\"event\":\"vacc\",");
        assert_body_has(&ctx, "\"opens_in_s\":100,");
        assert_int_equal(ctx.retry_after, POLL_S);
        struct el_token t = cookie_token(f, ctx.cookie, "einlass_ticket", EL_TOKEN_TICKET);
        assert_int_equal(t.flags, EL_TOKEN_PREQUEUE);
        assert_int_equal(EL_EVENT_TICKET_I(t.num), (uint64_t)i);
        cookie_value(ctx.cookie, "einlass_ticket", tk[i]);
        free(r);
    }
    struct req *r = req_with("/book", "einlass_pass", pass); /* a pass holder goes on */
    decide_ev(f, &ctx, r, "192.0.2.70", ev);
    assert_true(ctx.forward);
    free(r);
    r = make_req("GET", "/staff/desk", NULL); /* the priority lane: a plain place */
    decide_ev(f, &ctx, r, "192.0.2.71", ev);
    assert_int_equal(cookie_token(f, ctx.cookie, "einlass_ticket", EL_TOKEN_TICKET).flags, 0);
    assert_body_has(&ctx, "\"position\":1,");
    free(r);
    r = req_with("/_einlass/status", "einlass_ticket", tk[1]); /* before the draw: no place */
    decide_ev(f, &ctx, r, "192.0.2.61", ev);
    assert_int_equal(ctx.status, 200);
    assert_body_has(&ctx, "\"state\":\"prequeue\"");
    assert_body_has(&ctx, "\"place_text\":\"drawn at the opening\"");
    assert_string_equal(ctx.cookie, "");
    free(r);

    el_events_tick(ev, f->room, (int64_t)(f->now + 100) * 1000); /* the opening: the draw */
    f->now += 100;
    bool seen[3] = {false};
    uint64_t pos0 = 0;
    for (int i = 0; i < 3; i++) {
        r = req_with("/_einlass/status", "einlass_ticket", tk[i]);
        decide_ev(f, &ctx, r, "192.0.2.80", ev);
        assert_int_equal(ctx.status, 200);
        struct el_token t = cookie_token(f, ctx.cookie, "einlass_ticket", EL_TOKEN_TICKET);
        assert_int_equal(t.flags, 0); /* a plain ticket for the drawn place */
        uint64_t pos = 0;
        const char *at = memmem(ctx.body, ctx.body_len, "\"position\":", 11);
        assert_non_null(at);
        pos = strtoull(at + 11, NULL, 10);
        assert_true(pos >= 2 && pos <= 4); /* behind the priority lane's one */
        assert_false(seen[pos - 2]);
        seen[pos - 2] = true;
        if (i == 0) pos0 = pos;
        free(r);
    }
    r = req_with("/book", "einlass_ticket", tk[0]); /* a copy: the same place */
    decide_ev(f, &ctx, r, "198.51.100.9", ev);
    char want[32];
    snprintf(want, sizeof(want), "\"position\":%llu,", (unsigned long long)pos0);
    assert_body_has(&ctx, want);
    free(r);
    for (int i = 0; i < 4; i++) admit_one(f, 9100 + (uint64_t)i);
    r = req_with("/book", "einlass_ticket", tk[0]);
    decide_ev(f, &ctx, r, "192.0.2.60", ev);
    assert_true(ctx.forward); /* reached: the pass */
    cookie_token(f, ctx.cookie, "einlass_pass", EL_TOKEN_PASS);
    decide_ev(f, &ctx, r, "198.51.100.9", ev); /* the copy: no second pass, a new place */
    assert_false(ctx.forward);
    assert_true(ctx.joined);
    assert_int_equal(cookie_token(f, ctx.cookie, "einlass_ticket", EL_TOKEN_TICKET).flags, 0);
    free(r);
    el_events_free(ev);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_status_path_is_answered_never_forwarded),
        T(test_prequeue_tickets_and_their_drawn_places),
        T(test_cookieless_status_does_not_join_the_queue),
        T(test_health_path_is_answered_and_never_joins),
        T(test_paused_page_says_so_and_keeps_the_place),
        T(test_mode_off_forwards_without_cookies),
        T(test_bypass_route_forwards_without_pass),
        T(test_bypass_network_forwards_without_pass),
        T(test_valid_pass_forwards_and_expiry_slides),
        T(test_expired_pass_counts_as_none),
        T(test_foreign_pass_counts_as_none),
        T(test_tampered_pass_counts_as_none),
        T(test_release_clears_pass_and_revokes_it),
        T(test_release_without_pass_sets_nothing),
        T(test_reject_route_answers_403_unless_pass),
        T(test_open_room_hands_out_pass_on_response),
        T(test_secure_cookie_only_behind_local_or_trusted_proxy),
        T(test_newcomer_joins_with_ticket),
        T(test_ticket_holder_asks_its_place),
        T(test_reached_ticket_is_admitted_once_with_pass),
        T(test_copied_ticket_yields_one_pass),
        T(test_join_limit_refuses_with_429),
        T(test_new_generation_takes_new_secret),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
