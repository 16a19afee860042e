/* room.c - the waiting room over a store, with the local fallback (room.h).
 *
 * Invariants:
 *   - the shared part holds the one memory store: the room itself with
 *     store = memory, the local fallback queue with store = redis. Its
 *     figures are atomics written by the main thread's tick, read anywhere.
 *   - each thread's room holds its own Redis store (store = redis) and the
 *     configuration generation it was made for; a reload that changes the
 *     store kind, Redis address, room name, poll_s, keep_place_s or claim_s
 *     bumps sh->gen, and the thread's room remakes its Redis store on its
 *     next use.
 *   - places and holds: the stores keep a place keep_place_s since it was
 *     last seen and hold a reached ticket's admission claim_s (store.h);
 *     both are at least 3 x poll_s (the old generation), so a patient who
 *     polls as told never loses either, and claim_s is at most keep_place_s.
 *   - every join/check answers exactly once and never with an error: when
 *     Redis is configured but down (or an op fails), a newcomer joins the
 *     local queue (answer.local = true), and the holder of a Redis ticket is
 *     answered by the fallback by its own number (fallback.h: admitted once
 *     a virtual head passes it, never a new place). Local tickets are
 *     checked against the memory store. Redis is used again once its link
 *     has answered and the main thread's meter has moved the Redis heads up
 *     to the fallback's (so workers wait for that meter run).
 *   - rates: while Redis is down the fallback's head moves at the full rate
 *     over the Redis tickets (each instance admits only its own holders, so
 *     the site admits about rate in all); the local queue is metered at rate
 *     / instances, and only once every Redis ticket learnt is passed (after
 *     Redis returns: once the Redis heads pass the Redis tail seen then; for
 *     that time the site admits up to rate x (1 + 1 / instances)).
 *   - a reload from store = memory to redis keeps the order: a ticket of the
 *     memory store's epoch without the local flag is checked in Redis,
 *     whose returning lane places it by its number ahead of Redis's own
 *     tickets (store.h), and the Redis meter holds 3 x poll_s (hold_until_ms)
 *     so every such ticket can come back first; while Redis cannot answer,
 *     the memory store still answers for it.
 *   - eta (eta.h): the expected pace (the meter's rate and the credits not
 *     cancelled, smoothed by the main thread's tick and published in
 *     sh->pace_bits) gives the estimate, the store's measured rate widens
 *     its range; with neither known, the last tick's rate, then the
 *     configured admit_per_s.
 *   - released passes: the shared revocation set holds every pass id released
 *     on this instance (added before the store hears of it, so the releasing
 *     instance revokes at once and asks the store for a credit only the first
 *     time) and every id the main thread's tick fetched from Redis (ids other
 *     instances released, read from the last fetched score on, every tick).
 *     An id is kept session_s + REVOKE_MARGIN_S: longer than any pass with
 *     that id can live, even one slid by another instance during the
 *     propagation window. Gates read the set lock-free on every pass.
 *   - joins are limited per client address by one token-bucket table shared
 *     by every worker (max_joins_per_ip_per_min). */
#include "einlass/room.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "einlass/common.h"
#include "einlass/config.h"
#include "einlass/eta.h"
#include "einlass/fallback.h"
#include "einlass/ratelimit.h"
#include "einlass/revoke.h"
#include "einlass/store.h"
#include "einlass/worker-t.h"
#include "store_internal.h"

#define REVOKE_MARGIN_S 60      /* a revocation outlives session_s by this */
#define JOIN_LIMIT_ENTRIES 65536 /* client addresses tracked by the join limit */


struct el_room_shared {
    struct el_store *mem;            /* memory store: the room, or the fallback queue */
    struct el_fallback *fb;          /* the order of Redis tickets while Redis is down */
    pthread_mutex_t lock;            /* guards the strings and use_redis/poll_s below */
    bool use_redis;                  /* store = redis */
    char *redis;                     /* Redis address */
    char *redis_password;            /* from redis_password_file, or "" */
    int redis_timeout_ms;            /* [room] redis_timeout_ms */
    char *room;                      /* room name */
    int poll_s;                      /* a claim later than 3 x poll_s is a place kept */
    int keep_ms;                     /* keep_place_s (at least 3 x poll_s), ms */
    int claim_ms;                    /* claim_s (at least 3 x poll_s, at most keep_ms), ms */
    _Atomic unsigned gen;            /* bumped when the Redis store must be remade */
    _Atomic uint64_t waiting;        /* figures from the last tick */
    _Atomic uint64_t admitted_total; /* ... */
    _Atomic uint64_t unclaimed_total; /* ... held admissions returned as credit */
    _Atomic uint64_t kept_total;     /* ... admissions claimed by a patient who was away */
    _Atomic uint64_t released_total; /* first releases here (each one a store credit) */
    _Atomic uint64_t rate_bits;      /* measured rate (double bits) */
    _Atomic uint64_t conf_rate_bits; /* configured admit_per_s (double bits) */
    _Atomic uint64_t tick_rate_bits; /* the last tick's rate (double bits) */
    _Atomic uint64_t pace_bits;      /* the eta's expected pace (eta.h; double bits) */
    _Atomic int state;               /* enum el_store_state */
    _Atomic int link;                /* enum el_redis_link of the main thread's store */
    _Atomic uint64_t fallback_ms;    /* time spent in fallback while store = redis */
    uint64_t state_since_ms;         /* tick only: when state was last accounted */
    struct el_revoke *revoked;       /* released pass ids (this and, via Redis, other instances) */
    _Atomic int revoke_ttl_s;        /* session_s + REVOKE_MARGIN_S */
    struct el_ratelimit *joins;      /* token buckets per client address */
    _Atomic int joins_per_min;       /* max_joins_per_ip_per_min; 0 = no limit */
    _Atomic uint64_t hold_until_ms;  /* a switch memory -> redis: the Redis meter holds till then */
};

struct el_room {
    struct el_room_shared *sh;    /* the process-wide part */
    struct event_base *base;      /* this thread's loop */
    struct el_store *redis;       /* this thread's Redis store, or NULL */
    unsigned gen;                 /* sh->gen that redis was made for */
    bool advancing;               /* tick: a Redis advance is in flight */
    bool redis_known;             /* redis_st holds an answer */
    struct el_store_stats mem_st; /* tick: the local queue's last stats */
    struct el_store_stats redis_st; /* tick: the Redis store's last stats */
    bool fetching;                /* tick: a revoked fetch is in flight */
    uint64_t revoke_cursor;       /* tick: Redis time (ms) of the last release fetched */
    struct el_eta_meter eta;      /* tick: the expected pace for the eta */
    bool eta_redis_known;         /* tick: redis_known when eta last ticked */
};

/* One join or check waiting for the Redis store. */
struct req {
    struct el_room *r; /* whose */
    bool check;        /* a check of num (else a join) */
    uint64_t num;      /* check: the ticket's number */
    uint32_t epoch;    /* check: the ticket's epoch */
    uint8_t lane;      /* for the fallback join */
    el_room_cb cb;     /* the caller's */
    void *arg;         /* ... and its argument */
};

static uint64_t dbits(double v)
{
    uint64_t b;
    memcpy(&b, &v, sizeof(b));
    return b;
}

static double bitsd(uint64_t b)
{
    double v;
    memcpy(&v, &b, sizeof(v));
    return v;
}

uint64_t el_room_eta(uint64_t position, double rate, double fallback_rate)
{
    return el_eta_estimate(position, rate, 0, fallback_rate).s;
}

static double fallback_rate(const struct el_room_shared *sh)
{
    double t = bitsd(atomic_load(&sh->tick_rate_bits));
    return t > 0 ? t : bitsd(atomic_load(&sh->conf_rate_bits));
}

static void answer(struct el_room *r, const struct el_place *p, bool local, el_room_cb cb,
                   void *arg)
{
    struct el_room_answer a = {.place = *p, .local = local};
    if (p->state == EL_PLACE_WAITING) {
        double pace = bitsd(atomic_load(&r->sh->pace_bits));
        struct el_eta e = el_eta_estimate(p->position, pace, p->rate, fallback_rate(r->sh));
        a.eta_s = e.s;
        a.eta_low_s = e.low_s;
        a.eta_high_s = e.high_s;
    }
    cb(arg, &a);
}

/* The memory store answers synchronously: this carries its answer out. */
struct sync_place {
    int err;               /* the store's err */
    struct el_place place; /* its answer */
};

static void sync_place_cb(void *arg, int err, const struct el_place *p)
{
    struct sync_place *sp = arg;
    sp->err = err;
    if (p) sp->place = *p;
}

static void local_join(struct el_room *r, uint8_t lane, bool local, el_room_cb cb, void *arg)
{
    struct sync_place sp = {.err = -1, .place = {.state = EL_PLACE_GONE, .lane = lane}};
    r->sh->mem->ops->join(r->sh->mem, lane, el_now_ms(), sync_place_cb, &sp);
    if (local && sp.place.state == EL_PLACE_WAITING && el_fallback_active(r->sh->fb)) {
        uint64_t ahead = el_fallback_ahead(r->sh->fb); /* the Redis tickets before it */
        sp.place.position += ahead;
        sp.place.waiting += ahead;
    }
    answer(r, &sp.place, local, cb, arg);
}

/* A Redis ticket while Redis is down: its place by its own number
 * (fallback.h), never a new place in the local queue. */
static void fallback_check(struct el_room *r, uint8_t lane, uint64_t num, el_room_cb cb,
                           void *arg)
{
    struct el_place p;
    uint64_t now = el_now_ms();
    el_fallback_begin(r->sh->fb, now);
    el_fallback_check(r->sh->fb, lane & 1, num, now, &p);
    answer(r, &p, false, cb, arg);
}

/* A ticket checked against the memory store (local, or store = memory). */
static void mem_check(struct el_room *r, uint8_t lane, uint64_t num, uint32_t epoch, bool local,
                      el_room_cb cb, void *arg)
{
    struct sync_place sp = {.err = -1, .place = {.state = EL_PLACE_GONE, .lane = lane, .num = num}};
    r->sh->mem->ops->check(r->sh->mem, lane & 1, num, epoch, el_now_ms(), sync_place_cb, &sp);
    if (local && sp.place.state == EL_PLACE_WAITING && el_fallback_active(r->sh->fb))
        sp.place.position += el_fallback_ahead(r->sh->fb); /* Redis tickets first */
    answer(r, &sp.place, local, cb, arg);
}

static void ensure_store(struct el_room *r)
{
    struct el_room_shared *sh = r->sh;
    unsigned gen = atomic_load(&sh->gen);
    if (gen == r->gen) return;
    pthread_mutex_lock(&sh->lock);
    bool want = sh->use_redis && r->base != NULL;
    struct el_store_params p = {.room = sh->room, .poll_s = sh->poll_s, .keep_ms = sh->keep_ms,
                                .claim_ms = sh->claim_ms, .redis = sh->redis,
                                .redis_password = sh->redis_password,
                                .timeout_ms = sh->redis_timeout_ms};
    struct el_store *old = r->redis;
    r->redis = want ? el_store_redis_new(r->base, &p) : NULL;
    r->gen = gen;
    r->redis_known = false;
    r->revoke_cursor = 0; /* another room or server: read its releases from the start */
    pthread_mutex_unlock(&sh->lock);
    if (old) old->ops->free(old); /* its waiting ops fall back to the local queue */
}

static bool link_up(struct el_room *r)
{
    return r->redis != NULL && el_store_redis_up(r->redis);
}

/* Redis serves, and the main thread's meter has ended any fallback (moving
 * the Redis heads past the tickets the fallback admitted). */
static bool redis_usable(struct el_room *r)
{
    return link_up(r) && !el_fallback_active(r->sh->fb);
}

/* For joins and checks: also while the store's first connect is under way
 * (a restarted instance asks Redis rather than guessing). */
static bool redis_askable(struct el_room *r)
{
    if (r->redis != NULL && el_store_redis_starting(r->redis))
        return !el_fallback_active(r->sh->fb);
    return redis_usable(r);
}

static void redis_place_cb(void *arg, int err, const struct el_place *p)
{
    struct req *q = arg;
    if (err && q->check && q->epoch != 0 && q->epoch == el_store_memory_epoch(q->r->sh->mem))
        mem_check(q->r, q->lane, q->num, q->epoch, false, q->cb, q->arg);
    else if (err && q->check) fallback_check(q->r, q->lane, q->num, q->cb, q->arg);
    else if (err) local_join(q->r, q->lane, true, q->cb, q->arg);
    else answer(q->r, p, false, q->cb, q->arg);
    free(q);
}

static struct req *new_req(struct el_room *r, uint8_t lane, el_room_cb cb, void *arg)
{
    struct req *q = el_malloc(sizeof(*q));
    *q = (struct req){.r = r, .lane = lane & 1, .cb = cb, .arg = arg};
    return q;
}

void el_room_join(struct el_room *r, uint8_t lane, el_room_cb cb, void *arg)
{
    ensure_store(r);
    if (redis_askable(r)) {
        r->redis->ops->join(r->redis, lane & 1, el_now_ms(), redis_place_cb,
                            new_req(r, lane, cb, arg));
        return;
    }
    local_join(r, lane & 1, r->redis != NULL, cb, arg);
}

void el_room_check(struct el_room *r, uint8_t lane, uint64_t num, uint32_t epoch, bool local,
                   el_room_cb cb, void *arg)
{
    ensure_store(r);
    /* A ticket of the memory store's epoch without the local flag was issued
     * while store = memory: after a switch to Redis it takes its place in
     * Redis's returning lane (ahead of Redis's own tickets, in its order);
     * while Redis cannot answer, the memory store still holds it. */
    bool from_memory = !local && epoch != 0 && epoch == el_store_memory_epoch(r->sh->mem);
    if (local || r->redis == NULL || (from_memory && !redis_askable(r))) {
        mem_check(r, lane, num, epoch, local, cb, arg);
        return;
    }
    if (redis_askable(r)) {
        struct req *q = new_req(r, lane, cb, arg);
        q->check = true;
        q->num = num;
        q->epoch = epoch;
        r->redis->ops->check(r->redis, lane & 1, num, epoch, el_now_ms(), redis_place_cb, q);
        return;
    }
    uint32_t known = el_store_redis_epoch(r->redis);
    if (epoch != 0 && known != 0 && epoch != known) {
        /* A ticket of an earlier Redis epoch (in the returning lane), Redis
         * down: its number says nothing about this epoch's heads. It keeps
         * waiting, ahead of the local queue, until Redis answers again. */
        struct el_place p = {.state = EL_PLACE_WAITING, .lane = lane & 1, .num = num,
                             .epoch = epoch, .position = 1};
        el_fallback_begin(r->sh->fb, el_now_ms());
        p.waiting = el_fallback_ahead(r->sh->fb) + 1;
        answer(r, &p, false, cb, arg);
        return;
    }
    fallback_check(r, lane, num, cb, arg); /* Redis ticket, Redis down: in number order */
}

void el_room_pre(struct el_room *r, uint32_t event, enum el_pre_op op, const uint8_t *seed,
                 int64_t not_before_ms, el_store_pre_cb cb, void *arg)
{
    ensure_store(r);
    struct el_store *s = r->redis == NULL ? r->sh->mem : redis_askable(r) ? r->redis : NULL;
    if (s == NULL) cb(arg, -1, NULL);
    else s->ops->pre(s, event, op, seed, not_before_ms, el_now_ms(), cb, arg);
}

void el_room_release(struct el_room *r, uint64_t id)
{
    struct el_room_shared *sh = r->sh;
    uint32_t now = (uint32_t)el_wall_s();
    int ttl = atomic_load(&sh->revoke_ttl_s);
    if (!el_revoke_add(sh->revoked, id, now + (uint32_t)ttl, now)) return; /* released before */
    atomic_fetch_add(&sh->released_total, 1);
    ensure_store(r);
    if (redis_usable(r)) r->redis->ops->release(r->redis, id, ttl, el_now_ms());
    else sh->mem->ops->release(sh->mem, id, ttl, el_now_ms());
}

bool el_room_revoked(const struct el_room *r, uint64_t id, uint64_t now_s)
{
    return el_revoke_has(r->sh->revoked, id, (uint32_t)now_s);
}

int el_room_join_allowed(const struct el_room *r, uint64_t key, uint8_t family)
{
    const struct el_room_shared *sh = r->sh;
    int per_min = atomic_load_explicit(&sh->joins_per_min, memory_order_relaxed);
    if (per_min <= 0 || family == 0) return 0;
    return el_ratelimit_take(sh->joins, key, family, el_now_ms(), per_min);
}

/* Tick: add the time since the last call to the fallback total, and log a
 * change between redis and fallback (once; the link's own changes are
 * logged by the store). */
static void account_state(struct el_room_shared *sh, int state, int link)
{
    uint64_t now = el_now_ms();
    int was = atomic_load(&sh->state);
    if (sh->state_since_ms != 0 && was == EL_STORE_STATE_FALLBACK)
        atomic_fetch_add(&sh->fallback_ms, now - sh->state_since_ms);
    sh->state_since_ms = now;
    if (link >= 0) atomic_store(&sh->link, link);
    if (state == was) return;
    if (state == EL_STORE_STATE_FALLBACK)
        el_redis_log_state(EL_REDIS_EV_FALLBACK, EL_LOG_WARN, now,
                           "room: Redis unusable, new visitors wait in this instance's local "
                           "queue (fallback)");
    else if (state == EL_STORE_STATE_REDIS && was == EL_STORE_STATE_FALLBACK)
        el_redis_log_state(EL_REDIS_EV_RECOVERED, EL_LOG_NOTICE, now,
                           "room: recovered, back on Redis");
}

/* Tick: combine both stores' figures into the shared ones. */
static void publish(struct el_room *r)
{
    struct el_room_shared *sh = r->sh;
    bool up = redis_usable(r);
    uint64_t waiting = r->mem_st.waiting, admitted = r->mem_st.admitted_total;
    uint64_t unclaimed = r->mem_st.unclaimed_total, kept = r->mem_st.kept_total;
    double rate = r->mem_st.rate;
    if (r->redis_known) {
        waiting += r->redis_st.waiting;
        admitted += r->redis_st.admitted_total;
        unclaimed += r->redis_st.unclaimed_total;
        kept += r->redis_st.kept_total;
        if (up) rate += r->redis_st.rate;
    }
    atomic_store(&sh->waiting, waiting);
    atomic_store(&sh->admitted_total, admitted);
    atomic_store(&sh->unclaimed_total, unclaimed);
    atomic_store(&sh->kept_total, kept);
    atomic_store(&sh->rate_bits, dbits(rate));
    int state = r->redis == NULL ? EL_STORE_STATE_MEMORY
                : up             ? EL_STORE_STATE_REDIS
                                 : EL_STORE_STATE_FALLBACK;
    account_state(sh, state, r->redis ? (int)el_store_redis_link(r->redis) : -1);
    atomic_store(&sh->state, state);
}

static void mem_stats_cb(void *arg, int err, const struct el_store_stats *st)
{
    struct el_room *r = arg;
    if (err == 0 && st) r->mem_st = *st;
}

static void redis_stats_cb(void *arg, int err, const struct el_store_stats *st)
{
    struct el_room *r = arg;
    r->advancing = false;
    if (err == 0 && st) {
        r->redis_st = *st;
        r->redis_known = true;
        el_fallback_learn(r->sh->fb, st, el_now_ms()); /* ends a fallback */
    }
    publish(r);
}

static void revoked_cb(void *arg, int err, const uint64_t *ids, size_t n, uint64_t next)
{
    struct el_room *r = arg;
    r->fetching = false;
    if (err) return;
    uint32_t now = (uint32_t)el_wall_s();
    uint32_t until = now + (uint32_t)atomic_load(&r->sh->revoke_ttl_s);
    for (size_t i = 0; i < n; i++) el_revoke_add(r->sh->revoked, ids[i], until, now);
    r->revoke_cursor = next;
}

void el_room_tick(struct el_room *r, const struct el_meter_in *in)
{
    ensure_store(r);
    double rate = in->rate > 0 && isfinite(in->rate) ? in->rate : 0;
    atomic_store(&r->sh->tick_rate_bits, dbits(in->hold ? 0 : rate));
    struct el_eta_tick et = {
        .rate = rate,
        .cancel_credits = in->cancel_credits,
        .hold = in->hold,
        .released_total = atomic_load(&r->sh->released_total),
        .instances = r->redis_known && link_up(r) ? r->redis_st.instances : 1,
        .unclaimed_total = atomic_load(&r->sh->unclaimed_total),
        .restart = r->redis_known != r->eta_redis_known,
    };
    r->eta_redis_known = r->redis_known;
    el_eta_meter_tick(&r->eta, el_now_ms(), &et);
    atomic_store(&r->sh->pace_bits, dbits(el_eta_meter_pace(&r->eta)));
    /* Releases on other instances: the fetch is one cheap read a tick. */
    if (redis_usable(r) && !r->fetching) {
        r->fetching = true;
        r->redis->ops->revoked(r->redis, r->revoke_cursor, revoked_cb, r);
    }
    uint64_t now = el_now_ms();
    struct el_fallback *fb = r->sh->fb;
    bool up = link_up(r);
    if (r->redis != NULL && !up && !el_store_redis_starting(r->redis)) el_fallback_begin(fb, now);
    if (el_fallback_active(fb)) el_fallback_tick(fb, in->hold ? 0 : rate, now);
    /* The local queue: behind every Redis ticket, at this instance's share
     * (of the rate and of the credits to cancel). */
    double share = 1;
    if (r->redis != NULL)
        share = el_fallback_local_share(fb, up && r->redis_known ? r->redis_st.head : NULL);
    struct el_meter_in local = {.rate = rate * share,
                                .cancel_credits = in->cancel_credits * share,
                                .hold = in->hold};
    r->sh->mem->ops->advance(r->sh->mem, &local, now, mem_stats_cb, r);
    if (up && !r->advancing) {
        r->advancing = true;
        struct el_meter_in all = {.rate = rate, .cancel_credits = in->cancel_credits,
                                  .hold = in->hold || now < atomic_load(&r->sh->hold_until_ms)};
        if (el_fallback_active(fb)) {
            uint64_t skip[2];
            el_fallback_skip(fb, skip);
            r->redis->ops->advance_skip(r->redis, &all, skip, redis_stats_cb, r);
        } else {
            r->redis->ops->advance(r->redis, &all, now, redis_stats_cb, r);
        }
        return;
    }
    publish(r);
}

uint64_t el_room_waiting(const struct el_room_shared *sh)
{
    return atomic_load(&sh->waiting);
}

uint64_t el_room_admitted_total(const struct el_room_shared *sh)
{
    return atomic_load(&sh->admitted_total);
}

uint64_t el_room_unclaimed_total(const struct el_room_shared *sh)
{
    return atomic_load(&sh->unclaimed_total);
}

uint64_t el_room_places_kept_total(const struct el_room_shared *sh)
{
    return atomic_load(&sh->kept_total);
}

uint64_t el_room_released_total(const struct el_room_shared *sh)
{
    return atomic_load(&sh->released_total);
}

double el_room_measured_rate(const struct el_room_shared *sh)
{
    return bitsd(atomic_load(&sh->rate_bits));
}

const struct el_word el_store_state_words[] = {{"memory", EL_STORE_STATE_MEMORY},
                                               {"redis", EL_STORE_STATE_REDIS},
                                               {"fallback", EL_STORE_STATE_FALLBACK},
                                               {NULL, 0}};

const char *el_store_state_name(enum el_store_state s)
{
    const char *w = el_word_name(el_store_state_words, (int)s);
    return w != NULL ? w : "memory";
}

enum el_store_state el_room_store_state(const struct el_room_shared *sh)
{
    return (enum el_store_state)atomic_load(&sh->state);
}

const char *el_room_store_detail(const struct el_room_shared *sh)
{
    int state = atomic_load(&sh->state);
    if (state != EL_STORE_STATE_FALLBACK) return el_store_state_name((enum el_store_state)state);
    int link = atomic_load(&sh->link);
    return link == EL_REDIS_LINK_AUTH_FAILED ? "auth_failed"
           : link == EL_REDIS_LINK_DOWN      ? "down"
                                             : "fallback";
}

double el_room_fallback_s(const struct el_room_shared *sh)
{
    return (double)atomic_load(&sh->fallback_ms) / 1000.0;
}

static bool str_changed(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") != 0;
}

/* keep_place_s and claim_s in ms, each at least 3 x poll_s (a patient who
 * polls as told keeps both), claim at most keep. */
int el_room_keep_place_s(const struct el_config *cfg)
{
    return EL_MAX(cfg->keep_place_s, 3 * (cfg->poll_s > 0 ? cfg->poll_s : 1));
}

static void room_times(const struct el_config *cfg, int *keep_ms, int *claim_ms)
{
    int floor_s = 3 * (cfg->poll_s > 0 ? cfg->poll_s : 1);
    int keep_s = el_room_keep_place_s(cfg);
    *keep_ms = keep_s * 1000;
    *claim_ms = EL_MIN(EL_MAX(cfg->claim_s, floor_s), keep_s) * 1000;
}

void el_room_shared_configure(struct el_room_shared *sh, const struct el_config *cfg)
{
    bool use_redis = cfg->store == EL_STORE_REDIS;
    int poll_s = cfg->poll_s > 0 ? cfg->poll_s : 1;
    int timeout_ms = cfg->redis_timeout_ms > 0 ? cfg->redis_timeout_ms : 500;
    int keep_ms, claim_ms;
    room_times(cfg, &keep_ms, &claim_ms);
    pthread_mutex_lock(&sh->lock);
    bool changed = use_redis != sh->use_redis || poll_s != sh->poll_s || keep_ms != sh->keep_ms ||
                   claim_ms != sh->claim_ms || str_changed(cfg->redis, sh->redis) ||
                   str_changed(cfg->room_name, sh->room) ||
                   str_changed(cfg->redis_password, sh->redis_password) ||
                   timeout_ms != sh->redis_timeout_ms;
    if (use_redis && !sh->use_redis && sh->poll_s > 0) {
        /* A switch from memory: the memory store's tickets take their places
         * in Redis's returning lane as they poll (el_room_check), ahead of
         * Redis's own; the meter holds 3 x poll_s so each can come back
         * before anyone is admitted. */
        atomic_store(&sh->hold_until_ms, el_now_ms() + 3000 * (uint64_t)poll_s);
        el_notice("room: store switched from memory to redis: the tickets waiting here keep "
                  "their order, ahead of new Redis tickets; admissions held %d s while they "
                  "come back", 3 * poll_s);
    }
    if (changed) {
        free(sh->redis);
        free(sh->room);
        free(sh->redis_password);
        sh->redis = el_strdup(cfg->redis ? cfg->redis : "");
        sh->redis_password = el_strdup(cfg->redis_password ? cfg->redis_password : "");
        sh->redis_timeout_ms = timeout_ms;
        sh->room = el_strdup(cfg->room_name ? cfg->room_name : "");
        sh->use_redis = use_redis;
        sh->poll_s = poll_s;
        sh->keep_ms = keep_ms;
        sh->claim_ms = claim_ms;
        atomic_fetch_add(&sh->gen, 1);
    }
    struct el_store_params p = {.room = sh->room, .poll_s = poll_s, .keep_ms = keep_ms,
                                .claim_ms = claim_ms};
    el_store_memory_configure(sh->mem, &p);
    if (!use_redis) atomic_store(&sh->state, EL_STORE_STATE_MEMORY);
    else if (changed) /* until a tick sees it up */
        atomic_store(&sh->state, EL_STORE_STATE_FALLBACK);
    pthread_mutex_unlock(&sh->lock);
    atomic_store(&sh->conf_rate_bits, dbits(cfg->admit_per_s));
    atomic_store(&sh->revoke_ttl_s, EL_MAX(cfg->session_s, 1) + REVOKE_MARGIN_S);
    atomic_store(&sh->joins_per_min, cfg->max_joins_per_ip_per_min);
}

struct el_room_shared *el_room_shared_new(const struct el_config *cfg)
{
    struct el_room_shared *sh = el_calloc(1, sizeof(*sh));
    pthread_mutex_init(&sh->lock, NULL);
    struct el_store_params p = {.room = cfg->room_name, .poll_s = cfg->poll_s};
    room_times(cfg, &p.keep_ms, &p.claim_ms);
    sh->mem = el_store_memory_new(&p);
    sh->fb = el_fallback_new();
    uint64_t seed = el_now_us() ^ (uint64_t)(uintptr_t)sh;
    sh->revoked = el_revoke_new(EL_STORE_RELEASED_MAX, seed);
    sh->joins = el_ratelimit_new(JOIN_LIMIT_ENTRIES, seed * 0x9E3779B97F4A7C15ULL);
    sh->poll_s = -1; /* forces the first configure to take everything */
    el_room_shared_configure(sh, cfg);
    return sh;
}

void el_room_shared_free(struct el_room_shared *sh)
{
    if (sh == NULL) return;
    sh->mem->ops->free(sh->mem);
    el_fallback_free(sh->fb);
    el_revoke_free(sh->revoked);
    el_ratelimit_free(sh->joins);
    free(sh->redis);
    free(sh->redis_password);
    free(sh->room);
    pthread_mutex_destroy(&sh->lock);
    free(sh);
}

struct el_room *el_room_new(struct el_room_shared *sh, struct event_base *base)
{
    struct el_room *r = el_calloc(1, sizeof(*r));
    r->sh = sh;
    r->base = base;
    r->gen = atomic_load(&sh->gen) - 1; /* the first use makes the store */
    ensure_store(r);
    return r;
}

void el_room_free(struct el_room *r)
{
    if (r == NULL) return;
    struct el_store *s = r->redis;
    r->redis = NULL;
    if (s) s->ops->free(s); /* its waiting ops answer from the local queue */
    free(r);
}

int el_room_slots_map(struct el_rooms *rs, const struct el_config *cfg,
                      struct event_base *main_base, uint8_t *slot, char **err)
{
    unsigned n = rs->nslots;
    for (size_t i = 0; i < cfg->nrooms; i++) { /* first the names, then any change */
        unsigned k = 0;
        if (i > 0)
            for (k = 1; k < n && strcmp(rs->name[k], cfg->rooms[i].name) != 0; k++)
                ;
        if (k == n && n == EL_MAX_ROOMS) {
            *err = el_sprintf("%s:%d: [room %s]: %d rooms have been named since the start; "
                              "restart einlass to use new names",
                              cfg->path, cfg->rooms[i].line, cfg->rooms[i].name, EL_MAX_ROOMS);
            return -1;
        }
        if (k == n) n++; /* a new name takes the next slot */
        slot[i] = (uint8_t)k;
    }
    for (size_t i = 0; i < cfg->nrooms; i++) {
        unsigned k = slot[i];
        if (k < rs->nslots) continue;
        snprintf(rs->name[k], sizeof(rs->name[k]), "%s", cfg->rooms[i].name);
        rs->shared[k] = el_room_shared_new(cfg->rooms[i].cfg);
        rs->main[k] = el_room_new(rs->shared[k], main_base);
        atomic_store(&rs->state[k].mode, (int)cfg->rooms[i].cfg->mode);
        atomic_store(&rs->state[k].queueing, cfg->rooms[i].cfg->mode == EL_MODE_ON);
        rs->nslots = k + 1;
    }
    return 0;
}

void el_room_slots_configure(struct el_rooms *rs, const struct el_config *cfg,
                             const uint8_t *slot)
{
    for (size_t i = 0; i < cfg->nrooms; i++)
        el_room_shared_configure(rs->shared[slot[i]], cfg->rooms[i].cfg);
}

void el_room_slots_free(struct el_rooms *rs)
{
    for (unsigned k = 0; k < rs->nslots; k++) {
        el_room_free(rs->main[k]);
        rs->main[k] = NULL;
    }
    for (unsigned k = 0; k < rs->nslots; k++) {
        el_room_shared_free(rs->shared[k]);
        rs->shared[k] = NULL;
    }
    rs->nslots = 0;
}
