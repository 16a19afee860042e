/* gate.c - the per-request decision (see gate.h for the order of rules).
 *
 * Invariants: a pass is verified locally (HMAC, no store round trip); a
 * ticket is only ever exchanged through the room (which records the
 * exchange atomically, so a copied ticket yields one pass); every path ends
 * in exactly one completion: synchronous (el_gate_decide returns 1) or one
 * call of ctx->done. Local answers are rendered into the gate's scratch
 * buffer, valid until the next decision on this worker. The gate reads no
 * clock and no shared state: the caller gives both (struct el_gate_input). */
#include "einlass/gate.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "einlass/common.h"
#include "einlass/config.h"
#include "einlass/event.h"
#include "einlass/http.h"
#include "einlass/journal.h"
#include "einlass/page.h"
#include "einlass/ratelimit.h"
#include "einlass/room.h"
#include "einlass/route.h"
#include "einlass/sessions.h"
#include "einlass/token.h"

#define STATUS_PATH "/_einlass/status"
#define HEALTH_PATH "/_einlass/health" /* for load balancers: never forwarded, never joins */
#define TICKET_LIFETIME_S (6 * 3600) /* a place is kept by polling; this only bounds replay */

struct el_gate {
    int worker_id;              /* index into el_metrics_workers */
    struct el_room *const *rooms; /* the worker's room handles, by slot */
    const struct el_config *cfg; /* the worker's generation: its config, */
    struct el_page *const *pages; /* ... each room's waiting page, */
    const uint8_t *room_slot;   /* ... each room's slot */
    uint32_t gen_id;            /* ... and id */
    struct el_token_keys *keys[EL_MAX_ROOMS]; /* by slot, for the generation keys_gen[slot] */
    uint32_t keys_gen[EL_MAX_ROOMS]; /* generation id each slot's keys were made for */
    uint64_t rng;               /* xorshift state for session ids */
    char scratch[EL_PAGE_MAX];  /* the local answer's body */
    char path[UINT16_MAX];      /* the request's path in normal form, if not its own */
    struct el_sessions sessions; /* passes seen and claims, for the control loop */
};

struct el_gate *el_gate_new(int worker_id, struct el_room *const *rooms)
{
    struct el_gate *g = el_calloc(1, sizeof(*g));
    g->worker_id = worker_id;
    g->rooms = rooms;
    if (RAND_bytes((unsigned char *)&g->rng, sizeof(g->rng)) != 1 || g->rng == 0)
        g->rng = el_now_us() | 1;
    return g;
}

struct el_sessions *el_gate_sessions(struct el_gate *g)
{
    return &g->sessions;
}

void el_gate_free(struct el_gate *g)
{
    if (g == NULL) return;
    for (size_t i = 0; i < EL_MAX_ROOMS; i++)
        el_token_keys_free(g->keys[i]);
    free(g);
}

void el_gate_set_generation(struct el_gate *g, const struct el_config *cfg,
                            struct el_page *const *pages, const uint8_t *room_slot,
                            uint32_t gen_id)
{
    g->cfg = cfg;
    g->pages = pages;
    g->room_slot = room_slot;
    g->gen_id = gen_id;
}

static uint64_t next_session_id(struct el_gate *g)
{
    uint64_t x = g->rng; /* xorshift64*: ids need to be distinct, not secret (the MAC is) */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    g->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* The request's room (ctx->rdef, chosen by el_gate_decide): its view of
 * the config. Its handle is ctx->rm, its page ctx->page, and its token
 * keys g->keys[ctx->slot] (made anew for a new generation; a slot's keys
 * are its room's whatever the generation). */
static const struct el_config *room_cfg(const struct el_gate_ctx *ctx)
{
    return ctx->rdef->cfg;
}

static void refresh_keys(struct el_gate *g, unsigned slot, const struct el_config *rc)
{
    if (g->keys[slot] && g->keys_gen[slot] == g->gen_id) return;
    el_token_keys_free(g->keys[slot]);
    g->keys[slot] = el_token_keys_new(rc->room_name, rc->secret,
                                      rc->has_previous_secret ? rc->previous_secret : NULL);
    g->keys_gen[slot] = g->gen_id;
}

static void set_cookie(struct el_gate *g, struct el_gate_ctx *ctx, const char *name,
                       const struct el_token *t)
{
    char tok[EL_TOKEN_TEXT_MAX];
    el_token_encode(g->keys[ctx->slot], t, tok);
    snprintf(ctx->cookie, sizeof(ctx->cookie), "%s=%s; Path=/; HttpOnly; SameSite=Lax%s", name,
             tok, ctx->secure ? "; Secure" : "");
}

/* A pass for session id (a new one: next_session_id; a slid one keeps its
 * id, so a release of it revokes every copy). */
static void give_pass(struct el_gate *g, struct el_gate_ctx *ctx, uint64_t id)
{
    uint64_t now = ctx->now;
    ctx->pass_id = id;
    struct el_token t = {.kind = EL_TOKEN_PASS,
                         .num = id,
                         .issued = (uint32_t)now,
                         .expires = (uint32_t)(now + (uint64_t)room_cfg(ctx)->session_s)};
    set_cookie(g, ctx, ctx->rdef->pass_cookie, &t);
}

static void give_ticket(struct el_gate *g, struct el_gate_ctx *ctx, const struct el_room_answer *a)
{
    uint64_t now = ctx->now;
    struct el_token t = {.kind = EL_TOKEN_TICKET,
                         .lane = a->place.lane,
                         .flags = a->local ? EL_TOKEN_LOCAL : 0,
                         .num = a->place.num,
                         .epoch = a->place.epoch,
                         .issued = (uint32_t)now,
                         .expires = (uint32_t)(now + TICKET_LIFETIME_S)};
    set_cookie(g, ctx, ctx->rdef->ticket_cookie, &t);
}

static void forward(struct el_gate_ctx *ctx, enum el_decision d)
{
    ctx->decision = d;
    ctx->forward = true;
    ctx->completed = true;
}

static void answer(struct el_gate_ctx *ctx, enum el_decision d, int status, const char *ctype,
                   const char *body, size_t len)
{
    ctx->decision = d;
    ctx->forward = false;
    ctx->status = status;
    ctx->ctype = ctype;
    ctx->body = body;
    ctx->body_len = len;
    ctx->completed = true;
}

static void answer_state(struct el_gate *g, struct el_gate_ctx *ctx, const char *state)
{
    size_t n = el_page_json_state(state, g->scratch, sizeof(g->scratch));
    answer(ctx, EL_DECISION_FORWARD, 200, "application/json", g->scratch, n);
}

/* The cookieless queueing answer while paused says so: `"paused":true`
 * before the closing brace (the waiting answers get it from the page's view). */
static size_t mark_paused(struct el_gate *g, const struct el_gate_ctx *ctx, size_t n)
{
    static const char tail[] = ",\"paused\":true}";
    if (!ctx->paused || n == 0 || n + sizeof(tail) > sizeof(g->scratch)) return n;
    memcpy(g->scratch + n - 1, tail, sizeof(tail));
    return n - 1 + sizeof(tail) - 1;
}

/* A waiting or pre-queue answer from the page's view v: the room's page
 * (HTML), or JSON by json (with the words on /_einlass/status); the room's
 * status code, 200 on /_einlass/status. */
static void answer_view(struct el_gate *g, struct el_gate_ctx *ctx, const struct el_page_view *v,
                        size_t (*json)(const struct el_page_view *, bool, char *, size_t))
{
    int status = room_cfg(ctx)->wait_status;
    if (ctx->html && !ctx->status_path) {
        size_t n = el_page_html(ctx->page, v, g->scratch, sizeof(g->scratch));
        answer(ctx, EL_DECISION_WAIT, status, "text/html; charset=utf-8", g->scratch, n);
    } else {
        size_t n = json(v, ctx->status_path, g->scratch, sizeof(g->scratch));
        answer(ctx, EL_DECISION_WAIT, ctx->status_path ? 200 : status, "application/json",
               g->scratch, n);
    }
}

static void answer_wait(struct el_gate *g, struct el_gate_ctx *ctx, const struct el_room_answer *a)
{
    const struct el_config *cfg = room_cfg(ctx);
    struct el_page_view v = {.lang = (enum el_lang)ctx->lang,
                             .position = a->place.position,
                             .eta_s = a->eta_s,
                             .eta_low_s = a->eta_low_s,
                             .eta_high_s = a->eta_high_s,
                             .poll_s = cfg->poll_s,
                             .keep_place_s = el_room_keep_place_s(cfg),
                             .target = ctx->back,
                             .target_len = ctx->back_len,
                             .paused = ctx->paused};
    answer_view(g, ctx, &v, el_page_json_waiting);
    /* Come back at the estimated turn, but at least every poll_s: the front
     * of the line returns as soon as it is let in instead of at the next
     * poll, so admissions are not held back in poll_s waves. While paused
     * nobody's turn comes: poll_s. */
    uint64_t eta = a->eta_s < 1 ? 1 : a->eta_s;
    ctx->retry_after = eta < (uint64_t)cfg->poll_s && !ctx->paused ? (int)eta : cfg->poll_s;
}

/* GET /_einlass/lang?set=TAG&to=PATH: remember the language in a cookie
 * (not with mode = off: no cookies then) and go back to PATH. */
static void answer_lang(struct el_gate *g, struct el_gate_ctx *ctx, const struct el_http_msg *req,
                        bool cookies)
{
    int lang;
    size_t n = el_page_lang_switch(req->query, req->query_len, &lang, g->scratch,
                                   sizeof(g->scratch));
    answer(ctx, EL_DECISION_WAIT, 200, "text/html; charset=utf-8", g->scratch, n);
    if (lang >= 0 && cookies)
        snprintf(ctx->cookie, sizeof(ctx->cookie),
                 EL_PAGE_LANG_COOKIE "=%s; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax%s",
                 el_page_lang_tag((enum el_lang)lang), ctx->secure ? "; Secure" : "");
}

/* The waiter's language: the switch's cookie, else Accept-Language. */
static enum el_lang waiter_lang(const struct el_http_msg *req)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct el_http_header *h = &req->headers[i];
        const char *v;
        size_t len;
        int l;
        if (el_strcaseeq(h->name, h->name_len, "cookie", 6) &&
            el_http_cookie(h->value, h->value_len, EL_PAGE_LANG_COOKIE, &v, &len) &&
            (l = el_page_lang_parse(v, len)) >= 0)
            return (enum el_lang)l;
    }
    const struct el_http_header *al = el_http_find(req, "accept-language", 15);
    return al ? el_page_lang(al->value, al->value_len) : EL_LANG_EN;
}

static void complete(struct el_gate_ctx *ctx)
{
    if (!ctx->in_decide) ctx->done(ctx->arg);
}

static void room_answer(void *arg, const struct el_room_answer *a);
static void pre_answer(void *arg, int err, const struct el_pre *p);

/* A join over max_joins_per_ip_per_min: 429, no ticket, no place. */
static void answer_refused(struct el_gate *g, struct el_gate_ctx *ctx, int wait_s)
{
    int n;
    atomic_fetch_add_explicit(&el_metrics_workers[g->worker_id].joins_refused, 1,
                              memory_order_relaxed);
    if (ctx->html && !ctx->status_path) {
        n = snprintf(g->scratch, sizeof(g->scratch),
                     "429 Too Many Requests: too many new visitors from your network; "
                     "try again in %d s\n", wait_s);
        answer(ctx, EL_DECISION_REJECT, 429, "text/plain; charset=utf-8", g->scratch, (size_t)n);
    } else {
        n = snprintf(g->scratch, sizeof(g->scratch),
                     "{\"state\":\"refused\",\"reason\":\"too many joins from this "
                     "address\",\"retry_after_s\":%d}", wait_s);
        answer(ctx, EL_DECISION_REJECT, 429, "application/json", g->scratch, (size_t)n);
    }
    ctx->cookie[0] = '\0';
    ctx->retry_after = wait_s;
}

/* Join the room, or answer 429 when this client joined too often. */
static void join_or_refuse(struct el_gate *g, struct el_gate_ctx *ctx)
{
    int wait_s = el_room_join_allowed(ctx->rm, ctx->peer_key, ctx->peer_family);
    if (wait_s > 0) {
        answer_refused(g, ctx, wait_s);
        complete(ctx);
        return;
    }
    ctx->joined = true;
    struct el_event_view v;
    if (ctx->lane == 0 && el_events_hold_room(ctx->events) && /* one relaxed load first */
        el_events_arrivals(ctx->events, (int64_t)ctx->now * 1000, &v) == 0) {
        ctx->event = v.id; /* an event's pre-queue takes newcomers */
        el_room_pre(ctx->rm, v.id, EL_PRE_JOIN, NULL, 0, pre_answer, ctx);
        return;
    }
    el_room_join(ctx->rm, ctx->lane, room_answer, ctx);
}

/* The pre-queue page (or JSON) of event v: when it opens, the order drawn
 * then. Come back every poll_s, or at the opening if that is sooner. */
static void answer_prequeue(struct el_gate *g, struct el_gate_ctx *ctx,
                            const struct el_event_view *ev)
{
    const struct el_config *cfg = room_cfg(ctx);
    int64_t now_ms = (int64_t)ctx->now * 1000;
    struct el_page_view v = {.lang = (enum el_lang)ctx->lang,
                             .poll_s = cfg->poll_s,
                             .keep_place_s = el_room_keep_place_s(cfg),
                             .target = ctx->back,
                             .target_len = ctx->back_len,
                             .prequeue = true,
                             .opens_at_ms = ev->def.opens_at_ms,
                             .opens_offset_min = ev->def.opens_offset_min,
                             .now_ms = now_ms,
                             .event = ev->def.name};
    answer_view(g, ctx, &v, el_page_json_prequeue);
    int64_t left_s = (ev->def.opens_at_ms - now_ms + 999) / 1000;
    ctx->retry_after = left_s < 1 ? 1 : left_s < cfg->poll_s ? (int)left_s : cfg->poll_s;
}

/* The store's answer to a pre-queue join: a pre-queue ticket, or (drawn
 * already, or the store cannot be asked) a plain join of lane 0. */
static void pre_answer(void *arg, int err, const struct el_pre *p)
{
    struct el_gate_ctx *ctx = arg;
    struct el_gate *g = ctx->gate;
    struct el_event_view v;
    if (err || p == NULL || p->drawn || p->i > 0xffffffffu ||
        el_events_find(ctx->events, ctx->event, (int64_t)ctx->now * 1000, &v) == -1) {
        el_room_join(ctx->rm, ctx->lane, room_answer, ctx);
        return;
    }
    uint64_t now = ctx->now;
    struct el_token t = {.kind = EL_TOKEN_TICKET,
                         .flags = EL_TOKEN_PREQUEUE,
                         .num = EL_EVENT_TICKET_NUM(ctx->event, p->i),
                         .issued = (uint32_t)now,
                         .expires = (uint32_t)(now + TICKET_LIFETIME_S)};
    set_cookie(g, ctx, ctx->rdef->ticket_cookie, &t);
    answer_prequeue(g, ctx, &v);
    complete(ctx);
}

/* A pre-queue ticket is back: before the draw, the pre-queue page (no
 * store round trip); after it, its drawn place, checked like any ticket
 * and answered with a plain ticket for it. A ticket of an event this
 * instance does not know (a reload removed it) counts as none. */
static void pre_ticket(struct el_gate *g, struct el_gate_ctx *ctx, const struct el_token *t)
{
    struct el_event_view v;
    uint64_t num;
    ctx->event = EL_EVENT_TICKET_ID(t->num);
    if (ctx->events == NULL ||
        el_events_find(ctx->events, ctx->event, (int64_t)ctx->now * 1000, &v) == -1) {
        join_or_refuse(g, ctx);
        return;
    }
    if (el_event_place(&v.run, EL_EVENT_TICKET_I(t->num), &num) == 0) {
        ctx->converted = true;
        ctx->ticket = num;
        el_room_check(ctx->rm, 0, num, 0, false, room_answer, ctx); /* epoch 0: this room's */
        return;
    }
    if (v.run.pre.drawn || v.state == EL_EVENT_OVER) {
        /* drawn without it (not a ticket of this pre-queue), or ended before
         * any draw (ends_at passed while no instance ran): a plain join */
        join_or_refuse(g, ctx);
        return;
    }
    answer_prequeue(g, ctx, &v);
}

static void room_answer(void *arg, const struct el_room_answer *a)
{
    struct el_gate_ctx *ctx = arg;
    struct el_gate *g = ctx->gate;
    switch (a->place.state) {
    case EL_PLACE_WAITING:
        /* A local answer to a Redis ticket is a new place in the fallback
         * queue: without its ticket the next poll would join again at the
         * back (re-signing a local ticket on its own check is harmless). */
        if (ctx->joined || a->local || ctx->converted) give_ticket(g, ctx, a);
        answer_wait(g, ctx, a);
        break;
    case EL_PLACE_ADMITTED:
        give_pass(g, ctx, next_session_id(g));
        el_sessions_claimed(&g->sessions);
        ctx->releasable = true;
        if (ctx->status_path) answer_state(g, ctx, "admitted");
        else forward(ctx, EL_DECISION_FORWARD);
        break;
    case EL_PLACE_USED: /* a copy of a ticket already exchanged: counts as none */
    case EL_PLACE_GONE: /* abandoned: a new place at the back */
        if (!ctx->joined) {
            join_or_refuse(g, ctx);
            return;
        }
        /* a fresh join never comes back used or gone; be safe: wait */
        answer_wait(g, ctx, a);
        break;
    }
    complete(ctx);
}

static const struct el_http_header *find(const struct el_http_msg *m, const char *name)
{
    return el_http_find(m, name, strlen(name));
}

/* The value of the named cookie in the first Cookie field that has it:
 * true and *v, *len; false if none does. */
static bool find_cookie(const struct el_http_msg *req, const char *name, const char **v,
                        size_t *len)
{
    for (size_t i = 0; i < req->nheaders; i++) {
        const struct el_http_header *h = &req->headers[i];
        if (el_strcaseeq(h->name, h->name_len, "cookie", 6) &&
            el_http_cookie(h->value, h->value_len, name, v, len))
            return true;
    }
    return false;
}

/* Verify the named cookie as a token of kind; false if absent or invalid. */
static bool cookie_token(struct el_gate *g, const struct el_gate_ctx *ctx,
                         const struct el_http_msg *req, const char *name, uint8_t kind,
                         uint64_t now, struct el_token *t)
{
    const char *v;
    size_t len;
    return find_cookie(req, name, &v, &len) &&
           el_token_decode(g->keys[ctx->slot], v, len, now, t) == 0 && t->kind == kind;
}

/* Does the request carry a cookie named name? */
static bool has_cookie(const struct el_http_msg *req, const char *name)
{
    const char *v;
    size_t len;
    return find_cookie(req, name, &v, &len);
}

/* The index of the request's room among several: by host and path
 * (el_route_room). /_einlass/status belongs to no path, so its room is the
 * one named by ?room=NAME, else the first room of its host whose ticket,
 * then pass, the request carries: the page's script polls the status of
 * the room it waits in without knowing its name. */
static size_t choose_room(const struct el_config *cfg, const struct el_gate_ctx *ctx,
                          const struct el_http_msg *req, const char *path, size_t path_len)
{
    const char *host = req->authority;
    size_t host_len = req->authority_len;
    if (host == NULL) {
        const struct el_http_header *h = find(req, "host");
        host = h ? h->value : NULL;
        host_len = h ? h->value_len : 0;
    }
    size_t i = el_route_room(cfg, host, host_len, path, path_len);
    if (!ctx->status_path) return i;
    const char *v;
    size_t len;
    size_t named = cfg->nrooms, ticket = cfg->nrooms, pass = cfg->nrooms;
    bool has_name = el_http_query_param(req->query, req->query_len, "room", &v, &len);
    for (size_t k = cfg->nrooms; k-- > 0;) { /* the first in file order wins */
        const struct el_room_def *r = &cfg->rooms[k];
        if (!el_route_room_host(r, host, host_len)) continue;
        const char *name = el_config_room_label(cfg, k);
        if (has_name && strlen(name) == len && memcmp(name, v, len) == 0) named = k;
        if (has_cookie(req, r->ticket_cookie)) ticket = k;
        if (has_cookie(req, r->pass_cookie)) pass = k;
    }
    return named < cfg->nrooms    ? named
           : ticket < cfg->nrooms ? ticket
           : pass < cfg->nrooms   ? pass
                                  : i;
}

/* The request's room into ctx (room, slot, rdef, rm, page). */
static void pick_room(struct el_gate *g, struct el_gate_ctx *ctx, const struct el_http_msg *req,
                      const char *path, size_t path_len)
{
    const struct el_config *cfg = g->cfg;
    size_t i = cfg->nrooms > 1 ? choose_room(cfg, ctx, req, path, path_len) : 0;
    ctx->room = (uint8_t)i;
    ctx->slot = g->room_slot[i];
    ctx->rdef = &cfg->rooms[i];
    ctx->rm = g->rooms[ctx->slot];
    ctx->page = g->pages[i];
}

int el_gate_decide(struct el_gate *g, struct el_gate_ctx *ctx, const struct el_http_msg *req,
                   const struct sockaddr *peer, const struct el_gate_input *in,
                   void (*done)(void *arg), void *arg)
{
    const struct el_config *cfg = g->cfg;
    memset(ctx, 0, offsetof(struct el_gate_ctx, cookie) + 1);
    ctx->status = 0;
    ctx->body = NULL;
    ctx->retry_after = 0;
    ctx->lane = 0;
    ctx->gate = g;
    ctx->done = done;
    ctx->arg = arg;
    ctx->joined = false;
    ctx->converted = false;
    ctx->event = 0;
    ctx->events = NULL; /* the request's room's (pick_room) */
    ctx->completed = false;
    ctx->now = in->now;
    size_t path_len; /* routes match the path the backend will get */
    const char *path = el_http_norm_path(req, g->path, &path_len);
    ctx->status_path = path_len == sizeof(STATUS_PATH) - 1 &&
                       memcmp(path, STATUS_PATH, path_len) == 0;
    pick_room(g, ctx, req, path, path_len);
    ctx->events = in->events != NULL ? in->events[ctx->slot] : NULL;
    const struct el_room_state *rs = &in->states[ctx->slot];
    int mode = atomic_load_explicit(&rs->mode, memory_order_relaxed);
    bool queueing = atomic_load_explicit(&rs->queueing, memory_order_relaxed);
    ctx->paused = atomic_load_explicit(&rs->paused, memory_order_relaxed) && mode != EL_MODE_OFF;
    if (path_len == sizeof(HEALTH_PATH) - 1 && memcmp(path, HEALTH_PATH, path_len) == 0) {
        int n = snprintf(g->scratch, sizeof(g->scratch), "{\"state\":\"ok\",\"queueing\":%s%s}",
                         queueing && mode != EL_MODE_OFF ? "true" : "false",
                         ctx->paused ? ",\"paused\":true" : "");
        answer(ctx, EL_DECISION_FORWARD, 200, "application/json", g->scratch, (size_t)n);
        return 1;
    }

    if (path_len == sizeof(EL_PAGE_LANG_PATH) - 1 &&
        memcmp(path, EL_PAGE_LANG_PATH, path_len) == 0) {
        const struct el_http_header *xfp = find(req, "x-forwarded-proto");
        ctx->secure = xfp && ctx->proxied && el_strcaseeq(xfp->value, xfp->value_len, "https", 5);
        answer_lang(g, ctx, req, mode != EL_MODE_OFF);
        return 1;
    }
    if (mode == EL_MODE_OFF) { /* a plain proxy: no cookies */
        if (ctx->status_path) answer_state(g, ctx, "open");
        else forward(ctx, EL_DECISION_FORWARD);
        return 1;
    }
    refresh_keys(g, ctx->slot, room_cfg(ctx));
    /* Behind a TLS terminator on this host or a trusted proxy, cookies get Secure. */
    const struct el_http_header *xfp = find(req, "x-forwarded-proto");
    ctx->secure = xfp && ctx->proxied && el_strcaseeq(xfp->value, xfp->value_len, "https", 5);

    const struct el_route *route =
        el_route_find(cfg, req->method, req->method_len, path, path_len);
    /* the room's lane for a join, and the backend queue's for any request */
    ctx->lane = route && route->action == EL_ROUTE_PRIORITY ? 1 : 0;
    if (!ctx->status_path && ((route && route->action == EL_ROUTE_BYPASS) ||
                              (cfg->nbypass_from && el_config_bypass_addr(cfg, peer)))) {
        struct el_token bt; /* a write's journal line names the pass it carries */
        if (el_journal_wants(req->method, req->method_len) &&
            cookie_token(g, ctx, req, ctx->rdef->pass_cookie, EL_TOKEN_PASS, in->now, &bt))
            ctx->pass_id = bt.num;
        forward(ctx, EL_DECISION_BYPASS);
        return 1;
    }

    uint64_t now = in->now;
    struct el_token t;
    if (cookie_token(g, ctx, req, ctx->rdef->pass_cookie, EL_TOKEN_PASS, now, &t) &&
        !el_room_revoked(ctx->rm, t.num, now)) { /* a released pass counts as none */
        ctx->had_pass = true;
        ctx->releasable = true;
        ctx->pass_id = t.num;
        /* The expiry slides: a fresh pass at most every session_s / 10. */
        uint64_t step = (uint64_t)EL_MAX(1, room_cfg(ctx)->session_s / 10);
        if (now >= (uint64_t)t.issued + step) give_pass(g, ctx, t.num);
        if (ctx->status_path) {
            answer_state(g, ctx, "admitted");
        } else {
            el_sessions_seen(&g->sessions, t.num);
            forward(ctx, EL_DECISION_FORWARD);
        }
        return 1;
    }
    if (!ctx->status_path && route && route->action == EL_ROUTE_REJECT) {
        static const char body[] = "403 Forbidden: this path is closed\n";
        answer(ctx, EL_DECISION_REJECT, 403, "text/plain; charset=utf-8", body, sizeof(body) - 1);
        return 1;
    }
    if (!queueing) {
        /* Open: whoever comes in now keeps going once the room queues. */
        give_pass(g, ctx, next_session_id(g));
        if (ctx->status_path) answer_state(g, ctx, "open");
        else forward(ctx, EL_DECISION_FORWARD);
        return 1;
    }

    /* The room queues: ask for the place, or join. */
    const struct el_http_header *accept = find(req, "accept");
    ctx->html = accept && el_page_wants_html(accept->value, accept->value_len);
    ctx->lang = (uint8_t)waiter_lang(req);
    ctx->back_len = 0; /* the path and query as received (too long: none) */
    if ((size_t)req->path_len + req->query_len <= sizeof(ctx->back)) {
        memcpy(ctx->back, req->path, req->path_len);
        memcpy(ctx->back + req->path_len, req->query, req->query_len);
        ctx->back_len = (uint16_t)(req->path_len + req->query_len);
    }
    if (!el_ratelimit_key(peer, &ctx->peer_key, &ctx->peer_family)) ctx->peer_family = 0;
    ctx->in_decide = true;
    if (cookie_token(g, ctx, req, ctx->rdef->ticket_cookie, EL_TOKEN_TICKET, now, &t)) {
        ctx->had_ticket = true;
        ctx->ticket_lane = t.lane;
        ctx->ticket = t.num;
        if (t.flags & EL_TOKEN_PREQUEUE)
            pre_ticket(g, ctx, &t);
        else
            el_room_check(ctx->rm, t.lane, t.num, t.epoch, (t.flags & EL_TOKEN_LOCAL) != 0,
                          room_answer, ctx);
    } else if (ctx->status_path) {
        /* No place to ask about: a status poll without a ticket (a load
         * balancer, a script) must not take one. Loading a page joins. */
        int poll_s = room_cfg(ctx)->poll_s;
        int n = snprintf(g->scratch, sizeof(g->scratch), "{\"state\":\"queueing\",\"poll_s\":%d}",
                         poll_s);
        answer(ctx, EL_DECISION_WAIT, 200, "application/json", g->scratch,
               mark_paused(g, ctx, (size_t)n));
        ctx->retry_after = poll_s;
    } else {
        join_or_refuse(g, ctx);
    }
    ctx->in_decide = false;
    return ctx->completed ? 1 : 0;
}

void el_gate_busy(struct el_gate *g, struct el_gate_ctx *ctx, const struct el_http_msg *req,
                  uint64_t position)
{
    const struct el_config *cfg = room_cfg(ctx);
    bool get = (req->method_len == 3 && memcmp(req->method, "GET", 3) == 0) ||
               (req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0);
    ctx->status = 503;
    ctx->retry_after = cfg->poll_s;
    ctx->decision = EL_DECISION_WAIT;
    if (!get) {
        int n = snprintf(g->scratch, sizeof(g->scratch),
                         "503 Service Unavailable: the backend is at its concurrency limit and "
                         "this request waited queue_timeout_ms (%d ms); try again\n",
                         cfg->queue_timeout_ms);
        ctx->ctype = "text/plain; charset=utf-8";
        ctx->body = g->scratch;
        ctx->body_len = (size_t)n;
        return;
    }
    const struct el_http_header *accept = find(req, "accept");
    struct el_page_view v = {.lang = waiter_lang(req),
                             .position = position,
                             .eta_s = (uint64_t)cfg->poll_s,
                             .poll_s = cfg->poll_s,
                             .keep_place_s = el_room_keep_place_s(cfg)};
    if (accept && el_page_wants_html(accept->value, accept->value_len)) {
        ctx->body_len = el_page_html(ctx->page, &v, g->scratch, sizeof(g->scratch));
        ctx->ctype = "text/html; charset=utf-8";
    } else {
        ctx->body_len = el_page_json_waiting(&v, false, g->scratch, sizeof(g->scratch));
        ctx->ctype = "application/json";
    }
    ctx->body = g->scratch;
}

/* The decision gave a pass (its Set-Cookie is ctx->cookie). */
static bool given_pass(const struct el_gate_ctx *ctx)
{
    size_t n = strlen(ctx->rdef->pass_cookie);
    return strncmp(ctx->cookie, ctx->rdef->pass_cookie, n) == 0 && ctx->cookie[n] == '=';
}

const char *el_gate_response(struct el_gate *g, struct el_gate_ctx *ctx,
                             const struct el_http_msg *resp)
{
    if (ctx->decision == EL_DECISION_BYPASS && !ctx->had_pass) return ctx->cookie;
    const struct el_http_header *rel = find(resp, "einlass-release");
    if (rel && rel->value_len == 1 && rel->value[0] == '1' &&
        (ctx->had_pass || given_pass(ctx))) {
        if (ctx->releasable) el_room_release(ctx->rm, ctx->pass_id);
        snprintf(ctx->cookie, sizeof(ctx->cookie),
                 "%s=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax%s", ctx->rdef->pass_cookie,
                 ctx->secure ? "; Secure" : "");
    }
    return ctx->cookie;
}
