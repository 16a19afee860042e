/* test_admin.c - the admin API over real TCP on 127.0.0.1: the event base
 * runs in its own thread, the test speaks HTTP/1.1 with plain sockets, and
 * fake ops record what the API asked the main loop to do. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs */

#include "einlass/admin.h"
#include "einlass/common.h"
#include "einlass/config.h"
#include "einlass/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* What the fake main loop was asked; written on the loop thread, read by the
 * test after the answer arrived (the socket orders the two). */
struct fake {
    struct el_status st; /* what ops->status reports */
    int mode_calls;      /* set_mode calls */
    int last_mode;       /* last mode set */
    int rate_calls;      /* set_rate calls */
    double last_rate;    /* last rate set */
    int pause_calls;     /* set_paused calls */
    bool paused;         /* last pause state set */
    struct el_config cfg; /* what ops->config reports (zero: only the key's bounds) */
    int last_room;        /* the room of the last change (-1: every room) */
};

struct fixture {
    struct event_base *base;
    struct el_admin *admin;
    pthread_t thread;
    struct fake fake;
    int port;
};

static void fake_status(void *ctx, struct el_status *st)
{
    *st = ((struct fake *)ctx)->st;
}

static void fake_set_mode(void *ctx, int room, int mode)
{
    struct fake *f = ctx;
    f->last_room = room;
    f->mode_calls++;
    f->last_mode = mode;
}

static void fake_set_rate(void *ctx, int room, double per_s)
{
    struct fake *f = ctx;
    f->last_room = room;
    f->rate_calls++;
    f->last_rate = per_s;
}

static void fake_set_paused(void *ctx, int room, bool paused)
{
    struct fake *f = ctx;
    f->last_room = room;
    f->pause_calls++;
    f->paused = paused;
    f->st.paused = paused;
}

static const struct el_config *fake_config(void *ctx)
{
    return &((struct fake *)ctx)->cfg;
}

static const struct el_admin_ops fake_ops = {fake_status, fake_set_mode, fake_set_rate,
                                             fake_set_paused, fake_config};

static void *loop_main(void *arg)
{
    event_base_loop(arg, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* Run fn(arg) on the loop thread and wait for it. */
struct on_loop {
    void (*fn)(void *);
    void *arg;
    sem_t done;
};

static void on_loop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct on_loop *o = arg;
    o->fn(o->arg);
    sem_post(&o->done);
}

static void run_on_loop(struct fixture *fx, void (*fn)(void *), void *arg)
{
    struct on_loop o = {.fn = fn, .arg = arg};
    sem_init(&o.done, 0, 0);
    struct timeval now = {0, 0};
    assert_int_equal(event_base_once(fx->base, -1, EV_TIMEOUT, on_loop_cb, &o, &now), 0);
    while (sem_wait(&o.done) == -1 && errno == EINTR) {
    }
    sem_destroy(&o.done);
}

static int setup_with(void **state, const char *token)
{
    struct fixture *fx = el_calloc(1, sizeof(*fx));
    fx->fake.st = (struct el_status){
        .mode = EL_MODE_AUTO, .admit_per_s = 10, .store = "memory", .store_up = true};
    fx->fake.last_mode = -1;
    fx->fake.cfg.room_name = "portal"; /* one room: [room] */
    fx->fake.cfg.rooms[0].cfg = &fx->fake.cfg;
    fx->fake.cfg.nrooms = 1;
    fx->base = event_base_new();
    assert_non_null(fx->base);
    char *err = NULL;
    fx->admin = el_admin_new(fx->base, "127.0.0.1:0", token, &fake_ops, &fx->fake, &err);
    if (fx->admin == NULL) fail_msg("el_admin_new: %s", err);
    fx->port = el_admin_port(fx->admin);
    assert_true(fx->port > 0);
    assert_int_equal(pthread_create(&fx->thread, NULL, loop_main, fx->base), 0);
    *state = fx;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, NULL);
}

static int setup_token(void **state)
{
    return setup_with(state, "s3cret-token");
}

static void break_loop(void *arg)
{
    event_base_loopbreak(arg);
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    /* On the loop thread: a break before the loop starts would be lost. */
    run_on_loop(fx, break_loop, fx->base);
    pthread_join(fx->thread, NULL);
    el_admin_free(fx->admin);
    event_base_free(fx->base);
    free(fx);
    return 0;
}

struct resp {
    int status;       /* status code, 0 if none */
    char head[4096];  /* status line and headers */
    char body[16384]; /* body, NUL-terminated */
    size_t body_len;  /* body bytes */
};

/* One request on a fresh connection (Connection: close), read to EOF.
 * extra: more header lines, each ending in \r\n (or NULL); without a Host
 * line among them the request names 127.0.0.1:port, as curl does. body may
 * be NULL. */
static void request(struct fixture *fx, const char *method, const char *path, const char *extra,
                    const char *body, struct resp *r)
{
    memset(r, 0, sizeof(*r));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd != -1);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)fx->port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    char *req, host[64] = "";
    if (extra == NULL || (strncasecmp(extra, "Host:", 5) != 0 && strcasestr(extra, "\nHost:") == NULL))
        snprintf(host, sizeof(host), "Host: 127.0.0.1:%d\r\n", fx->port);
    if (body != NULL)
        req = el_sprintf("%s %s HTTP/1.1\r\n%sConnection: close\r\n%s"
                         "Content-Length: %zu\r\n\r\n%s",
                         method, path, host, extra ? extra : "", strlen(body), body);
    else
        req = el_sprintf("%s %s HTTP/1.1\r\n%sConnection: close\r\n%s\r\n", method, path, host,
                         extra ? extra : "");
    size_t len = strlen(req), off = 0;
    while (off < len) {
        ssize_t n = write(fd, req + off, len - off);
        assert_true(n > 0);
        off += (size_t)n;
    }
    free(req);
    static char raw[sizeof(r->head) + sizeof(r->body)];
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, raw + got, sizeof(raw) - 1 - got);
        if (n == -1 && errno == EINTR) continue;
        assert_true(n >= 0); /* -1 would be the 5 s timeout */
        if (n == 0) break;
        got += (size_t)n;
        assert_true(got < sizeof(raw) - 1);
    }
    close(fd);
    raw[got] = '\0';
    char *end = strstr(raw, "\r\n\r\n");
    assert_non_null(end);
    size_t hlen = (size_t)(end - raw) + 2;
    assert_true(hlen < sizeof(r->head));
    memcpy(r->head, raw, hlen);
    r->head[hlen] = '\0';
    r->body_len = got - hlen - 2;
    memcpy(r->body, end + 4, r->body_len);
    r->body[r->body_len] = '\0';
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d ", &r->status), 1);
}

/* The value of header name (case-insensitive), or NULL. */
static const char *header(const struct resp *r, const char *name, char *buf, size_t len)
{
    size_t n = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p != NULL; p = strstr(p, "\r\n")) {
        p += 2;
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            p += n + 1;
            while (*p == ' ')
                p++;
            const char *e = strstr(p, "\r\n");
            size_t vl = (size_t)(e - p);
            if (vl >= len) vl = len - 1;
            memcpy(buf, p, vl);
            buf[vl] = '\0';
            return buf;
        }
    }
    return NULL;
}

static void assert_header(const struct resp *r, const char *name, const char *want)
{
    char buf[256];
    const char *v = header(r, name, buf, sizeof(buf));
    if (v == NULL) fail_msg("no %s header in:\n%s", name, r->head);
    assert_string_equal(v, want);
}

static const char *const status_prefix =
    "{\"mode\":\"auto\",\"queueing\":false,\"waiting\":0,\"admitted_total\":0,\"admit_per_s\":10,"
    "\"latency_ms\":{\"p50\":0,\"p95\":0,\"p99\":0},\"inflight\":0,\"store\":\"memory\"";

static void test_status_contract_shape(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    request(fx, "GET", "/status", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_header(&r, "Content-Type", "application/json");
    assert_header(&r, "Cache-Control", "no-store");
    if (strncmp(r.body, status_prefix, strlen(status_prefix)) != 0)
        fail_msg("status body %s", r.body);
    /* Extra fields follow the contract's, then the object closes. */
    const char *rest = r.body + strlen(status_prefix);
    assert_true(*rest == '}' || *rest == ',');
    assert_non_null(strstr(rest, "\"samples\":0"));
    assert_non_null(strstr(rest, "\"store_up\":true"));
    assert_string_equal(r.body + r.body_len - 2, "}\n");
}

static void test_status_values(void **state)
{
    struct fixture *fx = *state;
    fx->fake.st = (struct el_status){.mode = EL_MODE_ON,
                                     .queueing = true,
                                     .waiting = 17,
                                     .admitted_total = 300,
                                     .admit_per_s = 2.5,
                                     .p50_ms = 40.25,
                                     .p95_ms = 310,
                                     .p99_ms = 0.0 / 0.0, /* NaN: JSON has none */
                                     .samples = 99,
                                     .inflight = 4,
                                     .store = "fallback",
                                     .store_up = false};
    struct resp r;
    request(fx, "GET", "/status?pretty=1", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    const char *want = "{\"mode\":\"on\",\"queueing\":true,\"waiting\":17,\"admitted_total\":300,"
                       "\"admit_per_s\":2.5,\"latency_ms\":{\"p50\":40.25,\"p95\":310,\"p99\":0},"
                       "\"inflight\":4,\"store\":\"fallback\",\"samples\":99,\"store_up\":false,";
    if (strncmp(r.body, want, strlen(want)) != 0) fail_msg("status body %s", r.body);
    fx->fake.st.mode = EL_MODE_OFF;
    request(fx, "GET", "/status", NULL, NULL, &r);
    assert_non_null(strstr(r.body, "{\"mode\":\"off\","));
}

static void test_mode(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    static const struct {
        const char *body;
        int mode;
    } good[] = {{"on", EL_MODE_ON}, {"off\n", EL_MODE_OFF}, {" auto \r\n", EL_MODE_AUTO}};
    for (size_t i = 0; i < EL_ARRAY_LEN(good); i++) {
        request(fx, "POST", "/mode", NULL, good[i].body, &r);
        assert_int_equal(r.status, 204);
        assert_header(&r, "Cache-Control", "no-store");
        assert_int_equal(r.body_len, 0);
        assert_int_equal(fx->fake.mode_calls, (int)i + 1);
        assert_int_equal(fx->fake.last_mode, good[i].mode);
    }
    static const char *const bad[] = {"maybe", "", "on off", "onn", "1"};
    for (size_t i = 0; i < EL_ARRAY_LEN(bad); i++) {
        request(fx, "POST", "/mode", NULL, bad[i], &r);
        if (r.status != 400) fail_msg("body '%s' got %d", bad[i], r.status);
        assert_non_null(strstr(r.body, "auto, on or off"));
        assert_header(&r, "Cache-Control", "no-store");
    }
    assert_int_equal(fx->fake.mode_calls, 3);
}

static void test_rate(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    request(fx, "POST", "/rate", NULL, "25", &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(fx->fake.rate_calls, 1);
    assert_true(fx->fake.last_rate == 25);
    request(fx, "POST", "/rate", NULL, "2.5\n", &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(fx->fake.rate_calls, 2);
    assert_true(fx->fake.last_rate == 2.5);
    request(fx, "POST", "/rate", NULL, "1e1", &r);
    assert_int_equal(r.status, 204);
    assert_true(fx->fake.last_rate == 10);
    static const char *const bad[] = {"-1",    "abc",  "inf", "nan", "",
                                      "1e999", "0x10", "5/s", "1 2"};
    for (size_t i = 0; i < EL_ARRAY_LEN(bad); i++) {
        request(fx, "POST", "/rate", NULL, bad[i], &r);
        if (r.status != 400) fail_msg("body '%s' got %d", bad[i], r.status);
        assert_non_null(strstr(r.body, "must be a number"));
    }
    static const char *const zero[] = {"0", "-0", "0.0"};
    for (size_t i = 0; i < EL_ARRAY_LEN(zero); i++) {
        request(fx, "POST", "/rate", NULL, zero[i], &r);
        if (r.status != 400) fail_msg("body '%s' got %d", zero[i], r.status);
        assert_non_null(strstr(r.body, "POST /pause"));
    }
    assert_int_equal(fx->fake.rate_calls, 3);
}

static void test_rate_refuses_what_the_file_would(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    request(fx, "POST", "/rate", NULL, "0.001", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "[room] admit_per_s: 0.001 is below the minimum 0.01"));
    request(fx, "POST", "/rate", NULL, "1e6", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "above the maximum 100000"));
    fx->fake.cfg.max_admit_per_s = 50;
    fx->fake.cfg.max_admit_per_s_set = true;
    request(fx, "POST", "/rate", NULL, "80", &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body, "admit_per_s (80) must not be above max_admit_per_s (50)"));
    assert_int_equal(fx->fake.rate_calls, 0);
    request(fx, "POST", "/rate", NULL, "50", &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(fx->fake.rate_calls, 1);
}

static void test_pause_and_resume(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    request(fx, "POST", "/pause", NULL, "", &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(fx->fake.pause_calls, 1);
    assert_true(fx->fake.paused);
    request(fx, "GET", "/status", NULL, NULL, &r);
    assert_non_null(strstr(r.body, "\"paused\":true"));
    request(fx, "GET", "/metrics", NULL, NULL, &r);
    assert_non_null(strstr(r.body, "\neinlass_paused 1\n"));
    request(fx, "POST", "/resume", NULL, NULL, &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(fx->fake.pause_calls, 2);
    assert_false(fx->fake.paused);
    request(fx, "GET", "/status", NULL, NULL, &r);
    assert_non_null(strstr(r.body, "\"paused\":false"));
    request(fx, "GET", "/pause", NULL, NULL, &r);
    assert_int_equal(r.status, 405);
}

static void test_healthz(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    request(fx, "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body,
                        "{\"state\":\"serving\",\"store\":\"memory\",\"store_up\":true,"
                        "\"paused\":false}\n");
    fx->fake.st.store = "fallback";
    fx->fake.st.store_up = false;
    request(fx, "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.status, 200); /* the fallback queue still serves */
    assert_non_null(strstr(r.body, "\"store\":\"fallback\""));
    fx->fake.st.draining = true;
    request(fx, "GET", "/healthz", NULL, NULL, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "\"state\":\"draining\""));
}

static void test_body_too_large(void **state)
{
    struct fixture *fx = *state;
    char big[200];
    memset(big, '1', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    struct resp r;
    request(fx, "POST", "/rate", NULL, big, &r);
    assert_int_equal(r.status, 413);
    assert_header(&r, "Cache-Control", "no-store");
    assert_int_equal(fx->fake.rate_calls, 0);
    /* 64 bytes exactly is still read (and here refused as a mode). */
    char edge[65];
    memset(edge, ' ', 64);
    memcpy(edge + 30, "off", 3);
    edge[64] = '\0';
    request(fx, "POST", "/mode", NULL, edge, &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(fx->fake.last_mode, EL_MODE_OFF);
}

static void test_metrics(void **state)
{
    struct fixture *fx = *state;
    fx->fake.st.waiting = 31;
    struct resp r;
    request(fx, "GET", "/metrics", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_header(&r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    assert_header(&r, "Cache-Control", "no-store");
    assert_non_null(strstr(r.body, "# TYPE einlass_requests_total counter\n"));
    assert_non_null(strstr(r.body, "\neinlass_waiting 31\n"));
    assert_non_null(strstr(r.body, "\neinlass_backend_latency_seconds_bucket{le=\"+Inf\"} "));
}

static void test_not_found_and_methods(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    request(fx, "GET", "/nope", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    assert_header(&r, "Cache-Control", "no-store");
    request(fx, "GET", "/", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    request(fx, "GET", "/status/", NULL, NULL, &r);
    assert_int_equal(r.status, 404);
    request(fx, "POST", "/statusx", NULL, "on", &r);
    assert_int_equal(r.status, 404);

    request(fx, "GET", "/mode", NULL, NULL, &r);
    assert_int_equal(r.status, 405);
    assert_header(&r, "Allow", "POST");
    assert_header(&r, "Cache-Control", "no-store");
    request(fx, "PUT", "/rate", NULL, "5", &r);
    assert_int_equal(r.status, 405);
    assert_header(&r, "Allow", "POST");
    request(fx, "POST", "/status", NULL, "x", &r);
    assert_int_equal(r.status, 405);
    assert_header(&r, "Allow", "GET, HEAD");
    request(fx, "DELETE", "/metrics", NULL, NULL, &r);
    assert_int_equal(r.status, 405);
    assert_header(&r, "Allow", "GET, HEAD");
    assert_int_equal(fx->fake.mode_calls + fx->fake.rate_calls, 0);

    request(fx, "GET", "/status", NULL, NULL, &r);
    char len[32];
    snprintf(len, sizeof(len), "%zu", r.body_len);
    request(fx, "HEAD", "/status", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    assert_header(&r, "Content-Length", len);
    assert_header(&r, "Content-Type", "application/json");
}

static void test_no_token_no_auth_needed(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    request(fx, "POST", "/mode", "Authorization: Bearer whatever\r\n", "on", &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(fx->fake.mode_calls, 1);
}

static void test_token(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    static const char *const wrong[] = {
        NULL,
        "Authorization: Bearer wrong\r\n",
        "Authorization: Bearer s3cret-toke\r\n",
        "Authorization: Bearer s3cret-token2\r\n",
        "Authorization: Basic s3cret-token\r\n",
        "Authorization: Bearers3cret-token\r\n",
        "Authorization: s3cret-token\r\n",
        "Authorization: Bearer \r\n",
    };
    for (size_t i = 0; i < EL_ARRAY_LEN(wrong); i++) {
        request(fx, "POST", "/mode", wrong[i], "on", &r);
        if (r.status != 401) fail_msg("header %s got %d", wrong[i] ? wrong[i] : "(none)", r.status);
        assert_header(&r, "WWW-Authenticate", "Bearer");
        assert_header(&r, "Cache-Control", "no-store");
        request(fx, "POST", "/rate", wrong[i], "5", &r);
        assert_int_equal(r.status, 401);
    }
    assert_int_equal(fx->fake.mode_calls + fx->fake.rate_calls, 0);

    request(fx, "POST", "/mode", "Authorization: Bearer s3cret-token\r\n", "on", &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(fx->fake.mode_calls, 1);
    request(fx, "POST", "/rate", "authorization: bearer   s3cret-token \r\n", "7", &r);
    assert_int_equal(r.status, 204);
    assert_true(fx->fake.last_rate == 7);
    /* The token is checked before the body: a bad body with no token is 401. */
    request(fx, "POST", "/rate", NULL, "abc", &r);
    assert_int_equal(r.status, 401);
    /* GETs stay open. */
    request(fx, "GET", "/status", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
    request(fx, "GET", "/metrics", NULL, NULL, &r);
    assert_int_equal(r.status, 200);
}

static void swap_token_new(void *arg)
{
    el_admin_set_token(arg, "other");
}

static void swap_token_none(void *arg)
{
    el_admin_set_token(arg, "");
}

static void test_token_swap(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    run_on_loop(fx, swap_token_new, fx->admin);
    request(fx, "POST", "/mode", "Authorization: Bearer s3cret-token\r\n", "off", &r);
    assert_int_equal(r.status, 401);
    request(fx, "POST", "/mode", "Authorization: Bearer other\r\n", "off", &r);
    assert_int_equal(r.status, 204);
    run_on_loop(fx, swap_token_none, fx->admin);
    request(fx, "POST", "/mode", NULL, "auto", &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(fx->fake.mode_calls, 2);
    assert_int_equal(fx->fake.last_mode, EL_MODE_AUTO);
}

/* Defect: with no admin_token, a page in the operator's browser could POST
 * "off" to the loopback admin API (a "simple" cross-site request). */
static void test_cross_site_post_with_foreign_origin_is_refused(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    static const char *const foreign[] = {
        "Origin: http://evil.example\r\n",
        "Origin: null\r\n",
        "Origin: https://127.0.0.1\r\n",
        "Origin: http://127.0.0.1\r\n", /* another port is another origin */
        "Content-Type: text/plain\r\nOrigin: http://evil.example:8080\r\n",
    };
    for (size_t i = 0; i < EL_ARRAY_LEN(foreign); i++) {
        request(fx, "POST", "/mode", foreign[i], "off", &r);
        if (r.status != 403) fail_msg("%s got %d", foreign[i], r.status);
        assert_non_null(strstr(r.body, "cross-site"));
        assert_header(&r, "Cache-Control", "no-store");
        request(fx, "POST", "/rate", foreign[i], "1", &r);
        assert_int_equal(r.status, 403);
    }
    assert_int_equal(fx->fake.mode_calls + fx->fake.rate_calls, 0);
    /* The page's own origin is fine. */
    char same[96];
    snprintf(same, sizeof(same), "Origin: http://127.0.0.1:%d\r\n", fx->port);
    request(fx, "POST", "/mode", same, "off", &r);
    assert_int_equal(r.status, 204);
    snprintf(same, sizeof(same), "Host: localhost:%d\r\nOrigin: http://LOCALHOST:%d\r\n",
             fx->port, fx->port);
    request(fx, "POST", "/mode", same, "on", &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(fx->fake.mode_calls, 2);
}

static void test_cross_site_post_with_sec_fetch_site_is_refused(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    request(fx, "POST", "/mode", "Sec-Fetch-Site: cross-site\r\n", "off", &r);
    assert_int_equal(r.status, 403);
    assert_non_null(strstr(r.body, "Sec-Fetch-Site"));
    request(fx, "POST", "/mode", "Sec-Fetch-Site: same-site\r\n", "off", &r);
    assert_int_equal(r.status, 403);
    assert_int_equal(fx->fake.mode_calls, 0);
    request(fx, "POST", "/mode", "Sec-Fetch-Site: same-origin\r\n", "off", &r);
    assert_int_equal(r.status, 204);
    request(fx, "POST", "/mode", "Sec-Fetch-Site: none\r\n", "on", &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(fx->fake.mode_calls, 2);
    /* A cross-site GET cannot read the answer: it stays open. */
    request(fx, "GET", "/status", "Sec-Fetch-Site: cross-site\r\nOrigin: http://e.example\r\n",
            NULL, &r);
    assert_int_equal(r.status, 200);
}

/* The right token does not make a browser's cross-site POST acceptable. */
static void test_cross_site_post_is_refused_with_token_too(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    request(fx, "POST", "/mode",
            "Authorization: Bearer s3cret-token\r\nOrigin: http://evil.example\r\n", "off", &r);
    assert_int_equal(r.status, 403);
    /* With a token the Host is not checked: a DNS name works. */
    request(fx, "POST", "/mode", "Authorization: Bearer s3cret-token\r\nHost: admin.example\r\n",
            "off", &r);
    assert_int_equal(r.status, 204);
    request(fx, "GET", "/metrics", "Host: einlass-1.example:9090\r\n", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(fx->fake.mode_calls, 1);
}

static void test_curl_like_post_is_accepted(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    request(fx, "POST", "/mode",
            "User-Agent: curl/7.88.1\r\nAccept: */*\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n",
            "on", &r);
    assert_int_equal(r.status, 204);
    request(fx, "POST", "/rate", "Content-Type: text/plain\r\n", "3", &r);
    assert_int_equal(r.status, 204);
    assert_int_equal(fx->fake.mode_calls, 1);
    assert_int_equal(fx->fake.rate_calls, 1);
}

/* Defect: DNS rebinding makes evil.example resolve to 127.0.0.1, and the
 * attacker's page same-origin with the API: refuse names without a token. */
static void test_rebound_host_name_is_refused_without_token(void **state)
{
    struct fixture *fx = *state;
    struct resp r;
    char h[128];
    snprintf(h, sizeof(h), "Host: evil.example:%d\r\nOrigin: http://evil.example:%d\r\n",
             fx->port, fx->port);
    request(fx, "POST", "/mode", h, "off", &r);
    assert_int_equal(r.status, 403);
    assert_non_null(strstr(r.body, "Host"));
    request(fx, "GET", "/status", "Host: evil.example\r\n", NULL, &r);
    assert_int_equal(r.status, 403);
    static const char *const bad[] = {"Host: 127.0.0.1.evil.example\r\n", "Host: 127.0.0.1:x\r\n",
                                      "Host: [::1\r\n", "Host: 127.0.0.1:\r\n",
                                      "Host: [evil]:80\r\n"};
    for (size_t i = 0; i < EL_ARRAY_LEN(bad); i++) {
        request(fx, "GET", "/status", bad[i], NULL, &r);
        if (r.status != 403) fail_msg("%s got %d", bad[i], r.status);
    }
    static const char *const good[] = {"Host: 127.0.0.1\r\n", "Host: localhost:1\r\n",
                                       "Host: LocalHost\r\n", "Host: [::1]:9090\r\n",
                                       "Host: 10.0.0.7:9090\r\n", "Host: [::]\r\n"};
    for (size_t i = 0; i < EL_ARRAY_LEN(good); i++) {
        request(fx, "GET", "/status", good[i], NULL, &r);
        if (r.status != 200) fail_msg("%s got %d", good[i], r.status);
    }
    assert_int_equal(fx->fake.mode_calls, 0);
}

static void test_admin_address_is_the_bound_one(void **state)
{
    struct fixture *fx = *state;
    char want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%d", fx->port);
    assert_string_equal(el_admin_address(fx->admin), want);
}

/* Defect: 0.0.0.0 without a token started silently (and logged 127.0.0.1). */
static void test_exposed_admin_without_token_warns(void **state)
{
    (void)state;
    static const char *const exposed[] = {"0.0.0.0:9090", "[::]:9090", "10.1.2.3:9090",
                                          "[2001:db8::1]:1", "[::ffff:10.0.0.1]:1"};
    static const char *const local[] = {"127.0.0.1:9090", "127.1.2.3:0", "localhost:9090",
                                        "[::1]:9090",     "unix:/run/einlass/admin.sock",
                                        "[::ffff:127.0.0.1]:1"};
    for (size_t i = 0; i < EL_ARRAY_LEN(exposed); i++)
        if (!el_admin_exposed(exposed[i])) fail_msg("%s is not loopback", exposed[i]);
    for (size_t i = 0; i < EL_ARRAY_LEN(local); i++)
        if (el_admin_exposed(local[i])) fail_msg("%s is loopback", local[i]);
    char *w = el_admin_exposure_warning("0.0.0.0:9090", "");
    assert_non_null(w);
    assert_non_null(strstr(w, "admin API on 0.0.0.0:9090"));
    assert_non_null(strstr(w, "admin_token is empty"));
    free(w);
    w = el_admin_exposure_warning("0.0.0.0:9090", NULL);
    assert_non_null(w);
    free(w);
    assert_null(el_admin_exposure_warning("0.0.0.0:9090", "t0ken"));
    assert_null(el_admin_exposure_warning("127.0.0.1:9090", ""));
}

static void test_bad_listen(void **state)
{
    (void)state;
    struct event_base *base = event_base_new();
    char *err = NULL;
    assert_null(el_admin_new(base, "nonsense", NULL, &fake_ops, NULL, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "nonsense"));
    free(err);
    err = NULL;
    assert_null(el_admin_new(base, "203.0.113.7:0", NULL, &fake_ops, NULL, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "bind"));
    free(err);
    /* A port already in use. */
    err = NULL;
    struct el_admin *a = el_admin_new(base, "127.0.0.1:0", NULL, &fake_ops, NULL, &err);
    assert_non_null(a);
    char *addr = el_sprintf("127.0.0.1:%d", el_admin_port(a));
    assert_null(el_admin_new(base, addr, NULL, &fake_ops, NULL, &err));
    assert_non_null(err);
    free(err);
    free(addr);
    el_admin_free(a);
    el_admin_free(NULL);
    event_base_free(base);
}

int main(void)
{
    evthread_use_pthreads();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_status_contract_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rate_refuses_what_the_file_would, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_and_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_healthz, setup, teardown),
        cmocka_unit_test_setup_teardown(test_body_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_methods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_token_no_auth_needed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token, setup_token, teardown),
        cmocka_unit_test_setup_teardown(test_token_swap, setup_token, teardown),
        cmocka_unit_test(test_bad_listen),
        cmocka_unit_test_setup_teardown(test_cross_site_post_with_foreign_origin_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cross_site_post_with_sec_fetch_site_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cross_site_post_is_refused_with_token_too,
                                        setup_token, teardown),
        cmocka_unit_test_setup_teardown(test_curl_like_post_is_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebound_host_name_is_refused_without_token, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_admin_address_is_the_bound_one, setup, teardown),
        cmocka_unit_test(test_exposed_admin_without_token_warns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
