/* admin.c - the admin API: a small libevent evhttp server on admin_listen.
 *
 * Invariants: everything here runs on the main thread's event base (the
 * requests, el_admin_set_token, el_admin_free), so the token needs no lock.
 * The listening socket is made here (so a unix: address and port 0 work) and
 * handed to evhttp, which closes it on el_admin_free. Every answer carries
 * Cache-Control: no-store. GETs are open: admin_listen is loopback by
 * default, and /status and /metrics reveal nothing that changes anything.
 * POSTs need the bearer token when one is set; it is compared as SHA-256
 * digests with CRYPTO_memcmp, so neither its bytes nor its length leak
 * through timing. Bodies are tiny (a mode word or a number): more than
 * ADMIN_MAX_BODY bytes are refused before they are read into anything but
 * evhttp's buffer, which itself is capped at ADMIN_EVHTTP_MAX_BODY.
 *
 * Browsers. A page the operator opens can make the browser send requests to
 * a loopback admin API, so (before the token) a POST that a browser marks as
 * cross-site is refused: an Origin other than the request's own
 * ("http://" + Host), or a Sec-Fetch-Site other than same-origin or none.
 * Browsers send one or both on every cross-site POST; curl and scripts send
 * neither. Without a token, a request whose Host is not an IP literal or
 * localhost is refused too: a DNS-rebound name would otherwise make the
 * attacker's page same-origin with the API. A unix socket is out of a
 * browser's reach and skips the Host check. */
#include "einlass/admin.h"

#include "einlass/common.h"
#include "einlass/config.h"
#include "einlass/journal.h"
#include "einlass/event.h"
#include "einlass/http.h"
#include "einlass/metrics.h"
#include "einlass/room.h"
#include "einlass/worker-t.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <math.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define ADMIN_MAX_BODY 64          /* longest body a route accepts */
#define ADMIN_EVENT_BODY 1024      /* longest POST /events body */
#define ADMIN_EVHTTP_MAX_BODY 4096 /* evhttp answers 413 itself above this */
#define ADMIN_MAX_HEADERS 8192     /* evhttp refuses larger request heads */
#define ADMIN_TIMEOUT_S 10         /* idle/slow admin connections close */

struct el_admin {
    struct evhttp *http;                          /* owns the listener and its socket */
    const struct el_admin_ops *ops;               /* the main loop's callbacks */
    void *ctx;                                    /* their context */
    bool have_token;                              /* POSTs need "Authorization: Bearer" */
    bool draining;                                /* SIGTERM seen: /healthz answers 503 */
    unsigned char token_md[SHA256_DIGEST_LENGTH]; /* SHA-256 of the token */
    int port;                                     /* bound TCP port, 0 for unix sockets */
    char *unix_path;                              /* our socket file, unlinked on free */
    char address[EL_ADMIN_ADDR_LEN];              /* what we listen on, for the logs */
    struct el_rooms *rooms;                       /* the rooms: their scheduled openings */
};

enum route_kind {
    ROUTE_STATUS,
    ROUTE_METRICS,
    ROUTE_HEALTHZ,
    ROUTE_MODE,
    ROUTE_RATE,
    ROUTE_PAUSE,
    ROUTE_RESUME,
    ROUTE_JOURNAL
};

static const struct {
    const char *path;
    enum route_kind kind;
    bool post; /* POST route; else GET (and HEAD) */
} routes[] = {
    {"/status", ROUTE_STATUS, false},
    {"/metrics", ROUTE_METRICS, false},
    {"/healthz", ROUTE_HEALTHZ, false},
    {"/mode", ROUTE_MODE, true},
    {"/rate", ROUTE_RATE, true},
    {"/journal", ROUTE_JOURNAL, false},
    {"/pause", ROUTE_PAUSE, true},
    {"/resume", ROUTE_RESUME, true},
};

static void set_header(struct evhttp_request *req, const char *name, const char *value)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_remove_header(h, name);
    evhttp_add_header(h, name, value);
}

/* Send b as the body of a code answer; a HEAD request gets the headers
 * only (evhttp 2.1 would send the body). */
static void send_body(struct evhttp_request *req, int code, struct evbuffer *b)
{
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        char len[24];
        snprintf(len, sizeof(len), "%zu", evbuffer_get_length(b));
        set_header(req, "Content-Length", len);
        evhttp_send_reply(req, code, NULL, NULL);
        return;
    }
    evhttp_send_reply(req, code, NULL, b);
}

/* A short text answer: "reason\n". */
static void reply_text(struct evhttp_request *req, int code, const char *text)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "%s\n", text);
    set_header(req, "Content-Type", "text/plain; charset=utf-8");
    send_body(req, code, b);
    evbuffer_free(b);
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Whether req carries "Authorization: Bearer <token>" with the right token
 * (always true without a token). */
static bool authorized(const struct el_admin *a, struct evhttp_request *req)
{
    if (!a->have_token) return true;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (h == NULL) return false;
    while (*h == ' ' || *h == '\t')
        h++;
    if (strlen(h) < 7 || !el_strcaseeq(h, 6, "Bearer", 6) || (h[6] != ' ' && h[6] != '\t'))
        return false;
    h += 6;
    while (*h == ' ' || *h == '\t')
        h++;
    size_t n = strlen(h);
    while (n > 0 && is_space(h[n - 1]))
        n--;
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)h, n, md);
    return CRYPTO_memcmp(md, a->token_md, sizeof(md)) == 0;
}

/* Whether host (a Host header value) names this machine in a way no DNS
 * answer can change: an IPv4 literal, a bracketed IPv6 literal or localhost,
 * each with an optional :port. */
static bool host_is_literal(const char *host)
{
    char name[INET6_ADDRSTRLEN + 2];
    const char *port;
    size_t n;
    if (*host == '[') {
        const char *close = strchr(host, ']');
        if (close == NULL) return false;
        n = (size_t)(close - host - 1);
        port = close + 1;
        if (n >= sizeof(name)) return false;
        memcpy(name, host + 1, n);
    } else {
        port = strchr(host, ':');
        if (port == NULL) port = host + strlen(host);
        n = (size_t)(port - host);
        if (n >= sizeof(name)) return false;
        memcpy(name, host, n);
    }
    name[n] = '\0';
    if (*port == ':') {
        if (port[1] == '\0' || strspn(port + 1, "0123456789") != strlen(port + 1)) return false;
    } else if (*port != '\0') {
        return false;
    }
    unsigned char bin[sizeof(struct in6_addr)];
    if (*host == '[') return inet_pton(AF_INET6, name, bin) == 1;
    return el_strcaseeq(name, n, "localhost", 9) || inet_pton(AF_INET, name, bin) == 1;
}

/* Why a browser may have sent req on some other site's behalf, or NULL. */
static const char *refusal(const struct el_admin *a, struct evhttp_request *req, bool post)
{
    const struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    const char *host = evhttp_find_header(in, "Host");
    if (!a->have_token && a->unix_path == NULL && host != NULL && !host_is_literal(host))
        return "Host must be an IP address or localhost while admin_token is empty";
    if (!post) return NULL;
    const char *site = evhttp_find_header(in, "Sec-Fetch-Site");
    if (site != NULL && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
        return "cross-site request refused (Sec-Fetch-Site)";
    const char *origin = evhttp_find_header(in, "Origin");
    if (origin != NULL) {
        size_t hl = host != NULL ? strlen(host) : 0;
        if (host == NULL || strlen(origin) != hl + 7 || !el_strcaseeq(origin, 7, "http://", 7) ||
            !el_strcaseeq(origin + 7, hl, host, hl))
            return "cross-site request refused (Origin)";
    }
    return NULL;
}

/* Copy the body, trimmed, into buf (ADMIN_MAX_BODY + 1 bytes). Returns 0, or
 * an HTTP status to answer with (413 too long, 400 holds a NUL byte). */
static int read_body(struct evhttp_request *req, char *buf)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    if (n > ADMIN_MAX_BODY) return 413;
    evbuffer_copyout(in, buf, n);
    buf[n] = '\0';
    if (strlen(buf) != n) return 400;
    char *s = buf;
    while (is_space(*s))
        s++;
    size_t len = strlen(s);
    while (len > 0 && is_space(s[len - 1]))
        len--;
    memmove(buf, s, len);
    buf[len] = '\0';
    return 0;
}

/* Parse a finite decimal number >= 0 (no hex, inf, nan, or trailing text).
 * Returns 0 or -1. */
static int parse_rate(const char *s, double *out)
{
    if (*s == '\0') return -1;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' ||
              *p == '-'))
            return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v) || !(v >= 0)) return -1;
    *out = v;
    return 0;
}

static int parse_mode(const char *s)
{
    int mode;
    return el_mode_parse(s, strlen(s), &mode) == 0 ? mode : -1;
}

/* Status from the main loop; fields it leaves alone read as zero/"memory". */
static void get_status(const struct el_admin *a, struct el_status *st)
{
    memset(st, 0, sizeof(*st));
    st->store = el_store_state_name(EL_STORE_STATE_MEMORY);
    st->inflight = el_metrics_inflight();
    if (a->ops != NULL && a->ops->status != NULL) a->ops->status(a->ctx, st);
    st->events = a->rooms ? a->rooms->events : NULL;
    st->nevents = a->rooms ? a->rooms->nslots : 0;
    st->draining = st->draining || a->draining;
}

/* JSON has no NaN or infinity: those read as 0. */
static const char *json_num(char *buf, double v)
{
    return el_metrics_fmt_num(buf, isfinite(v) ? v : 0);
}

static const char *json_store(const char *s)
{
    if (s == NULL) return el_store_state_name(EL_STORE_STATE_MEMORY);
    for (const char *p = s; *p; p++)
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) return "unknown";
    return s;
}

/* One event as JSON (GET /events, POST /events). Names hold no character
 * JSON must escape (el_config_check_event). */
static void add_event(struct evbuffer *b, const struct el_event_view *v, const char *room)
{
    char opens[48], ends[48];
    el_time_rfc3339(v->def.opens_at_ms, v->def.opens_offset_min, opens, sizeof(opens));
    if (v->def.ends_at_ms != 0)
        el_time_rfc3339(v->def.ends_at_ms, v->def.ends_offset_min, ends, sizeof(ends));
    evbuffer_add_printf(b,
                        "{\"name\":\"%s\",\"opens_at\":\"%s\",\"prequeue_s\":%d,\"ends_at\":%s%s%s,"
                        "\"state\":\"%s\",\"prequeue\":%llu,\"drawn\":%s,\"cancelled\":%s,"
                        "\"source\":\"%s\",\"room\":\"%s\"}",
                        v->def.name, opens, v->def.prequeue_s, v->def.ends_at_ms ? "\"" : "",
                        v->def.ends_at_ms ? ends : "null", v->def.ends_at_ms ? "\"" : "",
                        el_word_name(el_event_state_words, (int)v->state),
                        (unsigned long long)v->run.pre.n, v->run.pre.drawn ? "true" : "false",
                        v->run.cancelled ? "true" : "false", v->def.line ? "file" : "api",
                        json_store(room));
}

/* /status: ,"events":[{"name","state","prequeue"},...] */
static void add_events_brief(const struct el_admin *a, struct evbuffer *b)
{
    evbuffer_add_printf(b, ",\"events\":[");
    int64_t now = (int64_t)el_wall_ms();
    bool first = true;
    for (unsigned t = 0; a->rooms != NULL && t < a->rooms->nslots; t++) {
        struct el_events *ev = a->rooms->events[t];
        size_t n = ev ? el_events_count(ev) : 0;
        for (size_t i = 0; i < n; i++) {
            struct el_event_view v;
            if (el_events_get(ev, i, now, &v) == -1) break;
            evbuffer_add_printf(b, "%s{\"name\":\"%s\",\"state\":\"%s\",\"prequeue\":%llu}",
                                first ? "" : ",", v.def.name,
                                el_word_name(el_event_state_words, (int)v.state),
                                (unsigned long long)v.run.pre.n);
            first = false;
        }
    }
    evbuffer_add_printf(b, "]");
}

/* /status: ,"rooms":[{"name","mode","queueing","paused","waiting",...},...] */
static void add_rooms(const struct el_status *st, struct evbuffer *b)
{
    evbuffer_add_printf(b, ",\"rooms\":[");
    for (size_t i = 0; i < st->nrooms; i++) {
        const struct el_room_status *r = &st->rooms[i];
        char rate[EL_METRICS_NUM_LEN];
        evbuffer_add_printf(b,
                            "%s{\"name\":\"%s\",\"mode\":\"%s\",\"queueing\":%s,\"paused\":%s,"
                            "\"waiting\":%llu,\"admitted_total\":%llu,\"admit_per_s\":%s,"
                            "\"store\":\"%s\"}",
                            i ? "," : "", json_store(r->name), el_mode_name(r->mode),
                            r->queueing ? "true" : "false", r->paused ? "true" : "false",
                            (unsigned long long)r->waiting, (unsigned long long)r->admitted_total,
                            json_num(rate, r->admit_per_s), json_store(r->store));
    }
    evbuffer_add_printf(b, "]");
}

static void answer_status(struct el_admin *a, struct evhttp_request *req)
{
    struct el_status st;
    get_status(a, &st);
    char r[EL_METRICS_NUM_LEN], p50[EL_METRICS_NUM_LEN], p95[EL_METRICS_NUM_LEN],
        p99[EL_METRICS_NUM_LEN];
    char errs[256]; /* {"join":N,...}: store ops Redis answered with an error */
    size_t o = 0;
    for (int i = 0; i < EL_STORE_OP_COUNT && o < sizeof(errs); i++)
        o += (size_t)snprintf(errs + o, sizeof(errs) - o, "%s\"%s\":%llu", i ? "," : "{",
                              el_store_op_names[i], (unsigned long long)st.store_errors[i]);
    if (o < sizeof(errs)) snprintf(errs + o, sizeof(errs) - o, "}");
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b,
                        "{\"mode\":\"%s\",\"queueing\":%s,\"waiting\":%llu,\"admitted_total\":%llu,"
                        "\"admit_per_s\":%s,\"latency_ms\":{\"p50\":%s,\"p95\":%s,\"p99\":%s},"
                        "\"inflight\":%lld,\"store\":\"%s\",\"samples\":%llu,\"store_up\":%s,"
                        "\"backend_limit\":%d,\"backend_inflight\":%d,\"backend_queue\":%d,"
                        "\"backend_queued_total\":%llu,\"backend_queue_timeouts_total\":%llu,"
                        "\"store_errors\":%s,\"paused\":%s,\"version\":\"%s\"",
                        el_mode_name(st.mode), st.queueing ? "true" : "false",
                        (unsigned long long)st.waiting, (unsigned long long)st.admitted_total,
                        json_num(r, st.admit_per_s), json_num(p50, st.p50_ms),
                        json_num(p95, st.p95_ms), json_num(p99, st.p99_ms), (long long)st.inflight,
                        json_store(st.store), (unsigned long long)st.samples,
                        st.store_up ? "true" : "false", st.backend.limit, st.backend.inflight,
                        st.backend.queued, (unsigned long long)st.backend.queued_total,
                        (unsigned long long)st.backend.timeouts_total, errs,
                        st.paused ? "true" : "false", EL_VERSION);
    add_events_brief(a, b);
    add_rooms(&st, b);
    evbuffer_add_printf(b, "}\n");
    set_header(req, "Content-Type", "application/json");
    send_body(req, HTTP_OK, b);
    evbuffer_free(b);
}

/* For load balancers: 200 while serving, 503 while draining (take this
 * instance out of rotation). A store in fallback still serves (newcomers
 * wait in the local queue), so it is 200 too; the body says which. */
static void answer_healthz(struct el_admin *a, struct evhttp_request *req)
{
    struct el_status st;
    get_status(a, &st);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add_printf(b, "{\"state\":\"%s\",\"store\":\"%s\",\"store_up\":%s,\"paused\":%s}\n",
                        st.draining ? "draining" : "serving", json_store(st.store),
                        st.store_up ? "true" : "false", st.paused ? "true" : "false");
    set_header(req, "Content-Type", "application/json");
    send_body(req, st.draining ? 503 : HTTP_OK, b);
    evbuffer_free(b);
}

static void answer_metrics(struct el_admin *a, struct evhttp_request *req)
{
    struct el_status st;
    get_status(a, &st);
    struct evbuffer *b = evbuffer_new();
    el_metrics_render(b, &st);
    el_journal_render_metrics(b);
    set_header(req, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    send_body(req, HTTP_OK, b);
    evbuffer_free(b);
}

/* GET /journal?since=UNIX_SECONDS: the journal's lines from then on (all
 * without since). It names clients and what they did: with a token set it
 * needs the token, like a POST. */
static void answer_journal(struct evhttp_request *req)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    uint64_t since_ms = 0;
    if (q != NULL && *q != '\0') {
        struct evkeyvalq args = {0}; /* evhttp_parse_query_str initialises it */
        const char *v = NULL;
        if (evhttp_parse_query_str(q, &args) == 0) v = evhttp_find_header(&args, "since");
        char *end = NULL;
        double s = -1;
        if (v != NULL && *v >= '0' && *v <= '9') {
            errno = 0;
            s = strtod(v, &end);
        }
        bool bad = v == NULL || end == NULL || *end != '\0' || errno == ERANGE ||
                   !isfinite(s) || s < 0 || s > 1e12;
        evhttp_clear_headers(&args);
        if (bad) {
            reply_text(req, 400, "since must be a time in unix seconds (e.g. since=1712345678)");
            return;
        }
        since_ms = (uint64_t)(s * 1000.0 + 0.5);
    }
    struct evbuffer *b = evbuffer_new();
    bool cut = false;
    if (el_journal_query(b, since_ms, EL_JOURNAL_ANSWER_MAX, &cut) == -1) {
        evbuffer_free(b);
        reply_text(req, HTTP_NOTFOUND, "no journal: [server] journal_file is not set");
        return;
    }
    set_header(req, "Content-Type", "application/x-ndjson");
    if (cut) /* the oldest lines first: ask again with the last line's time */
        set_header(req, "Einlass-Journal-Truncated", "1");
    send_body(req, HTTP_OK, b);
    evbuffer_free(b);
}

/* ?room=NAME of an admin POST: the index of that room in cfg's rooms
 * ([room] by its name, the others by NAME), -1 without one (every room),
 * or -2 after answering 404 for a name no room has. label gets " in room
 * NAME" (or ""), for the log. */
static int target_room(struct evhttp_request *req, const struct el_config *cfg, char *label,
                       size_t n)
{
    label[0] = '\0';
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    if (q == NULL || *q == '\0' || cfg == NULL) return -1;
    const char *v;
    size_t len;
    if (!el_http_query_param(q, strlen(q), "room", &v, &len)) return -1;
    for (size_t i = 0; i < cfg->nrooms; i++) {
        const char *name = el_config_room_label(cfg, i);
        if (strlen(name) == len && memcmp(name, v, len) == 0) {
            snprintf(label, n, " in room %s", name);
            return (int)i;
        }
    }
    char msg[EL_MAX_ROOMS * EL_ROOM_NAME_MAX + 80];
    size_t o = (size_t)snprintf(msg, sizeof(msg), "no such room (rooms: %s",
                                cfg->room_name);
    for (size_t i = 1; i < cfg->nrooms && o < sizeof(msg); i++)
        o += (size_t)snprintf(msg + o, sizeof(msg) - o, ", %s", cfg->rooms[i].name);
    if (o < sizeof(msg)) snprintf(msg + o, sizeof(msg) - o, ")");
    reply_text(req, HTTP_NOTFOUND, msg);
    return -2;
}

static void answer_post(struct el_admin *a, struct evhttp_request *req, enum route_kind kind)
{
    if (!authorized(a, req)) {
        set_header(req, "WWW-Authenticate", "Bearer");
        reply_text(req, 401, "missing or wrong bearer token");
        return;
    }
    char body[ADMIN_MAX_BODY + 1];
    int code = read_body(req, body);
    if (code != 0) {
        reply_text(req, code, code == 413 ? "body too large" : "body holds a NUL byte");
        return;
    }
    const struct el_config *cfg =
        a->ops != NULL && a->ops->config != NULL ? a->ops->config(a->ctx) : NULL;
    char label[80]; /* " in room NAME" for the log, "" for every room */
    int room = target_room(req, cfg, label, sizeof(label));
    if (room == -2) return; /* answered */
    if (kind == ROUTE_MODE) {
        int mode = parse_mode(body);
        if (mode < 0) {
            reply_text(req, 400, "mode must be auto, on or off");
            return;
        }
        el_notice("admin: mode set to %s%s until the next reload", el_mode_name(mode), label);
        if (a->ops != NULL && a->ops->set_mode != NULL) a->ops->set_mode(a->ctx, room, mode);
    } else if (kind == ROUTE_PAUSE || kind == ROUTE_RESUME) {
        bool pause = kind == ROUTE_PAUSE;
        if (pause)
            el_notice("admin: paused%s: nobody new is admitted until POST /resume", label);
        else
            el_notice("admin: resumed%s: the meter admits again", label);
        if (a->ops != NULL && a->ops->set_paused != NULL) a->ops->set_paused(a->ctx, room, pause);
    } else {
        double rate;
        char why[200];
        if (parse_rate(body, &rate) != 0) {
            reply_text(req, 400, "rate must be a number (admissions per second)");
            return;
        }
        if (rate == 0) {
            reply_text(req, 400, "rate 0 would hold every admission: POST /pause does that "
                                 "(and POST /resume ends it)");
            return;
        }
        for (size_t i = 0; cfg != NULL && i < cfg->nrooms; i++) /* as each room's file would */
            if ((room < 0 || (size_t)room == i) &&
                el_config_check_rate(cfg->rooms[i].cfg, rate, why, sizeof(why)) != 0) {
                reply_text(req, 400, why); /* "[room NAME] ..." names the room */
                return;
            }
        char num[EL_METRICS_NUM_LEN];
        el_notice("admin: admit_per_s set to %s%s until the next reload",
                  el_metrics_fmt_num(num, rate), label);
        if (a->ops != NULL && a->ops->set_rate != NULL) a->ops->set_rate(a->ctx, room, rate);
    }
    evhttp_send_reply(req, HTTP_NOCONTENT, NULL, NULL);
}

/* A POST /events body: "key = value" lines, '#' or ';' comments. */
static int parse_event_body(char *body, struct el_event_def *d, char *why, size_t nwhy)
{
    memset(d, 0, sizeof(*d));
    d->prequeue_s = 1800; /* the file's default */
    bool seen[5] = {false};
    static const char *const names[5] = {"name", "opens_at", "prequeue_s", "ends_at", "room"};
    for (char *line = strtok(body, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        while (is_space(*line))
            line++;
        if (*line == '\0' || *line == '#' || *line == ';') continue;
        char *eq = strchr(line, '=');
        if (eq == NULL) {
            snprintf(why, nwhy,
                     "expected key = value lines (name, opens_at, prequeue_s, ends_at, room)");
            return -1;
        }
        char *k = line, *v = eq + 1, *ke = eq;
        while (ke > k && is_space(ke[-1]))
            ke--;
        *ke = '\0';
        while (is_space(*v))
            v++;
        size_t vl = strlen(v);
        while (vl > 0 && is_space(v[vl - 1]))
            v[--vl] = '\0';
        int i = 0;
        while (i < 5 && strcmp(k, names[i]) != 0)
            i++;
        if (i == 5) {
            snprintf(why, nwhy,
                     "unknown key '%.40s' (known: name, opens_at, prequeue_s, ends_at, room)", k);
            return -1;
        }
        if (seen[i]) {
            snprintf(why, nwhy, "%s: duplicate key", names[i]);
            return -1;
        }
        seen[i] = true;
        char r[120];
        if (i == 0) {
            if (vl >= sizeof(d->name)) {
                snprintf(why, nwhy, "name: longer than %d bytes", EL_EVENT_NAME_MAX - 1);
                return -1;
            }
            memcpy(d->name, v, vl + 1);
        } else if (i == 4) {
            if (vl >= sizeof(d->room)) {
                snprintf(why, nwhy, "room: longer than %d bytes", EL_ROOM_NAME_MAX - 1);
                return -1;
            }
            memcpy(d->room, v, vl + 1);
        } else if (i == 2) {
            char *end;
            errno = 0;
            long n = strtol(v, &end, 10);
            if (*v == '\0' || *end != '\0' || errno == ERANGE || n < 0 || n > 604800) {
                snprintf(why, nwhy, "prequeue_s: '%.40s' is not a whole number in 0..604800", v);
                return -1;
            }
            d->prequeue_s = (int)n;
        } else {
            int64_t *ms = i == 1 ? &d->opens_at_ms : &d->ends_at_ms;
            int *off = i == 1 ? &d->opens_offset_min : &d->ends_offset_min;
            if (el_config_parse_time(v, vl, ms, off, r, sizeof(r)) == -1) {
                snprintf(why, nwhy, "%s: '%.40s' %s (e.g. 2027-03-01T09:00:00+01:00)", names[i],
                         v, r);
                return -1;
            }
            if (i == 1) d->has_opens_at = true;
        }
    }
    if (!seen[0]) {
        snprintf(why, nwhy, "name: missing (e.g. name = vaccination)");
        return -1;
    }
    return el_config_check_event(d, why, nwhy);
}

/* The label of room slot t: [room]'s name for slot 0, else its NAME. */
static const char *slot_label(const struct el_admin *a, const struct el_config *cfg, unsigned t)
{
    return t == 0 ? (cfg != NULL ? cfg->room_name : "") : a->rooms->name[t];
}

/* Does the table ev hold an event named name? */
static bool has_event(struct el_events *ev, const char *name, int64_t now)
{
    struct el_event_view v;
    size_t n = ev != NULL ? el_events_count(ev) : 0;
    for (size_t i = 0; i < n && el_events_get(ev, i, now, &v) == 0; i++)
        if (strcmp(v.def.name, name) == 0) return true;
    return false;
}

/* The slot of the room an added event names (d->room: "" for [room]), a
 * room of the running config; -1 with the reason (and *conflict when
 * another room has an event of that name: names are unique). */
static int event_slot(const struct el_admin *a, const struct el_config *cfg,
                      const struct el_event_def *d, char *why, size_t nwhy, bool *conflict)
{
    int slot = d->room[0] == '\0' ? 0 : -1;
    bool configured = false; /* a room of the running config (a dropped one keeps its slot) */
    for (size_t i = 1; cfg != NULL && i < cfg->nrooms; i++)
        configured = configured || strcmp(cfg->rooms[i].name, d->room) == 0;
    for (unsigned t = 1; slot < 0 && configured && t < a->rooms->nslots; t++)
        if (strcmp(a->rooms->name[t], d->room) == 0) slot = (int)t;
    if (slot < 0) {
        snprintf(why, nwhy, "room: there is no [room %.40s] section", d->room);
        return -1;
    }
    int64_t now = (int64_t)el_wall_ms();
    for (unsigned t = 0; t < a->rooms->nslots; t++)
        if (t != (unsigned)slot && has_event(a->rooms->events[t], d->name, now)) {
            *conflict = true;
            snprintf(why, nwhy, "an event named '%s' exists in another room", d->name);
            return -1;
        }
    return slot;
}

/* /events and /events/NAME. */
static void answer_events(struct el_admin *a, struct evhttp_request *req, const char *path)
{
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    bool list = strcmp(path, "/events") == 0;
    bool get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
    if (list ? !(get || cmd == EVHTTP_REQ_POST) : cmd != EVHTTP_REQ_DELETE) {
        set_header(req, "Allow", list ? "GET, HEAD, POST" : "DELETE");
        reply_text(req, 405, "method not allowed");
        return;
    }
    const char *why = refusal(a, req, !get);
    if (why != NULL) {
        reply_text(req, 403, why);
        return;
    }
    if (!get && !authorized(a, req)) {
        set_header(req, "WWW-Authenticate", "Bearer");
        reply_text(req, 401, "missing or wrong bearer token");
        return;
    }
    if (a->rooms == NULL || a->rooms->nslots == 0) {
        reply_text(req, 503, "events are not available");
        return;
    }
    const struct el_config *cfg =
        a->ops != NULL && a->ops->config != NULL ? a->ops->config(a->ctx) : NULL;
    int64_t now = (int64_t)el_wall_ms();
    struct el_event_view v;
    if (get) {
        struct evbuffer *b = evbuffer_new();
        evbuffer_add_printf(b, "{\"events\":[");
        bool first = true;
        for (unsigned t = 0; t < a->rooms->nslots; t++) { /* every room's, [room]'s first */
            struct el_events *ev = a->rooms->events[t];
            size_t n = ev ? el_events_count(ev) : 0;
            for (size_t i = 0; i < n && el_events_get(ev, i, now, &v) == 0; i++) {
                if (!first) evbuffer_add_printf(b, ",");
                add_event(b, &v, slot_label(a, cfg, t));
                first = false;
            }
        }
        evbuffer_add_printf(b, "]}\n");
        set_header(req, "Content-Type", "application/json");
        send_body(req, HTTP_OK, b);
        evbuffer_free(b);
        return;
    }
    if (!list) {
        const char *name = path + 8;
        unsigned t = 0;
        while (t < a->rooms->nslots &&
               (a->rooms->events[t] == NULL || el_events_cancel(a->rooms->events[t], name) == -1))
            t++;
        if (t == a->rooms->nslots) {
            reply_text(req, HTTP_NOTFOUND, "no such event (or it is over)");
            return;
        }
        el_notice("admin: event %s cancelled: its pre-queue is admitted in arrival order", name);
        evhttp_send_reply(req, HTTP_NOCONTENT, NULL, NULL);
        return;
    }
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(in);
    char body[ADMIN_EVENT_BODY + 1], reason[300];
    if (n > ADMIN_EVENT_BODY) {
        reply_text(req, 413, "body too large");
        return;
    }
    evbuffer_copyout(in, body, n);
    body[n] = '\0';
    struct el_event_def d;
    bool conflict = false;
    if (strlen(body) != n) {
        reply_text(req, 400, "body holds a NUL byte");
        return;
    }
    if (parse_event_body(body, &d, reason, sizeof(reason)) == -1) {
        reply_text(req, 400, reason);
        return;
    }
    int slot = event_slot(a, cfg, &d, reason, sizeof(reason), &conflict);
    if (slot < 0 ||
        el_events_add(a->rooms->events[slot], &d, &conflict, reason, sizeof(reason)) == -1) {
        reply_text(req, conflict ? 409 : 400, reason);
        return;
    }
    char opens[48];
    el_time_rfc3339(d.opens_at_ms, d.opens_offset_min, opens, sizeof(opens));
    el_notice("admin: event %s added (opens %s, pre-queue %d s%s%s) until restart", d.name, opens,
              d.prequeue_s, d.room[0] ? ", room " : "", d.room);
    struct evbuffer *b = evbuffer_new();
    if (el_events_find(a->rooms->events[slot], el_event_id(&d), now, &v) == 0)
        add_event(b, &v, slot_label(a, cfg, (unsigned)slot));
    evbuffer_add_printf(b, "\n");
    set_header(req, "Content-Type", "application/json");
    send_body(req, 201, b);
    evbuffer_free(b);
}

static void handle(struct evhttp_request *req, void *arg)
{
    struct el_admin *a = arg;
    set_header(req, "Cache-Control", "no-store");
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    if (path == NULL) path = "";
    if (strcmp(path, "/events") == 0 || strncmp(path, "/events/", 8) == 0) {
        answer_events(a, req, path);
        return;
    }
    size_t i = 0;
    while (i < EL_ARRAY_LEN(routes) && strcmp(routes[i].path, path) != 0)
        i++;
    if (i == EL_ARRAY_LEN(routes)) {
        reply_text(req, HTTP_NOTFOUND, "not found");
        return;
    }
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    bool ok =
        routes[i].post ? cmd == EVHTTP_REQ_POST : (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD);
    if (!ok) {
        set_header(req, "Allow", routes[i].post ? "POST" : "GET, HEAD");
        reply_text(req, 405, "method not allowed");
        return;
    }
    const char *why = refusal(a, req, routes[i].post);
    if (why != NULL) {
        reply_text(req, 403, why);
        return;
    }
    switch (routes[i].kind) {
    case ROUTE_STATUS:
        answer_status(a, req);
        break;
    case ROUTE_METRICS:
        answer_metrics(a, req);
        break;
    case ROUTE_HEALTHZ:
        answer_healthz(a, req);
        break;
    case ROUTE_MODE:
    case ROUTE_RATE:
    case ROUTE_PAUSE:
    case ROUTE_RESUME:
        answer_post(a, req, routes[i].kind);
        break;
    case ROUTE_JOURNAL:
        if (!authorized(a, req)) {
            set_header(req, "WWW-Authenticate", "Bearer");
            reply_text(req, 401, "missing or wrong bearer token");
            break;
        }
        answer_journal(req);
        break;
    }
}

bool el_admin_exposed(const char *listen)
{
    struct sockaddr_storage ss;
    unsigned len;
    const char *why;
    if (el_parse_addr(listen, &ss, &len, &why) != 0) return false; /* config refuses it */
    if (ss.ss_family == AF_INET)
        return (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) != 127;
    if (ss.ss_family == AF_INET6) {
        const struct in6_addr *a6 = &((struct sockaddr_in6 *)&ss)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a6)) return false;
        return !(IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
    }
    return false; /* a unix socket: its file's permissions decide */
}

char *el_admin_exposure_warning(const char *listen, const char *token)
{
    if ((token != NULL && *token != '\0') || !el_admin_exposed(listen)) return NULL;
    return el_sprintf("admin API on %s is not on loopback and admin_token is empty: anyone who "
                      "can reach it can change the mode and the rate; set admin_token, or "
                      "keep admin_listen on loopback",
                      listen);
}

/* A listening, non-blocking socket on ss. Returns the fd, or -1 with *why. */
static int listen_on(const struct sockaddr_storage *ss, unsigned sslen, const char **why)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        *why = "socket";
        goto fail;
    }
    int one = 1;
    if (ss->ss_family != AF_UNIX &&
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1) {
        *why = "setsockopt";
        goto fail;
    }
    if (bind(fd, (const struct sockaddr *)ss, sslen) == -1) {
        *why = "bind";
        goto fail;
    }
    if (listen(fd, 64) == -1) {
        *why = "listen";
        goto fail;
    }
    return fd;
fail:
    if (fd != -1) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return -1;
}

struct el_admin *el_admin_new(struct event_base *base, const char *listen, const char *token,
                              const struct el_admin_ops *ops, void *ctx, char **err)
{
    struct el_admin *a = el_calloc(1, sizeof(*a));
    a->ops = ops;
    a->ctx = ctx;
    el_admin_set_token(a, token);
    int fd = -1;
    struct sockaddr_storage ss;
    unsigned sslen;
    const char *why;
    if (el_parse_addr(listen, &ss, &sslen, &why) != 0) {
        *err = el_sprintf("admin_listen %s: %s", listen, why);
        goto fail;
    }
    fd = listen_on(&ss, sslen, &why);
    if (fd == -1) {
        *err = el_sprintf("admin_listen %s: %s: %s", listen, why, strerror(errno));
        goto fail;
    }
    if (ss.ss_family == AF_UNIX) {
        a->unix_path = el_strdup(((struct sockaddr_un *)&ss)->sun_path);
        el_addr_text(&ss, true, a->address, sizeof(a->address));
    } else {
        struct sockaddr_storage bound;
        socklen_t blen = sizeof(bound);
        if (getsockname(fd, (struct sockaddr *)&bound, &blen) == -1) {
            *err = el_sprintf("admin_listen %s: getsockname: %s", listen, strerror(errno));
            goto fail;
        }
        a->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                              : ntohs(((struct sockaddr_in *)&bound)->sin_port);
        el_addr_text(&bound, true, a->address, sizeof(a->address));
    }
    a->http = evhttp_new(base);
    if (a->http == NULL) {
        *err = el_sprintf("admin_listen %s: cannot create the HTTP server", listen);
        goto fail;
    }
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
    evhttp_set_max_body_size(a->http, ADMIN_EVHTTP_MAX_BODY);
    evhttp_set_max_headers_size(a->http, ADMIN_MAX_HEADERS);
    evhttp_set_timeout(a->http, ADMIN_TIMEOUT_S);
    evhttp_set_default_content_type(a->http, "text/plain; charset=utf-8");
    evhttp_set_gencb(a->http, handle, a);
    if (evhttp_accept_socket_with_handle(a->http, fd) == NULL) {
        *err = el_sprintf("admin_listen %s: cannot listen", listen);
        goto fail;
    }
    return a; /* evhttp owns fd now */
fail:
    if (fd != -1) close(fd);
    if (a->unix_path != NULL && fd != -1) unlink(a->unix_path);
    if (a->http != NULL) evhttp_free(a->http);
    free(a->unix_path);
    free(a);
    return NULL;
}

void el_admin_set_rooms(struct el_admin *a, struct el_rooms *rooms)
{
    a->rooms = rooms;
}

void el_admin_set_token(struct el_admin *a, const char *token)
{
    a->have_token = token != NULL && *token != '\0';
    if (a->have_token)
        SHA256((const unsigned char *)token, strlen(token), a->token_md);
    else
        memset(a->token_md, 0, sizeof(a->token_md));
}

void el_admin_set_draining(struct el_admin *a)
{
    a->draining = true;
}

int el_admin_port(const struct el_admin *a)
{
    return a->port;
}

const char *el_admin_address(const struct el_admin *a)
{
    return a->address;
}

void el_admin_free(struct el_admin *a)
{
    if (a == NULL) return;
    evhttp_free(a->http);
    if (a->unix_path != NULL) unlink(a->unix_path);
    free(a->unix_path);
    free(a);
}
