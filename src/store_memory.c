/* store_memory.c - the waiting room's state in this process (store.h).
 *
 * Invariants (the same model as the Redis scripts in store_redis.c):
 *   - per lane, head <= tail; every ticket number below head was reached;
 *     numbers in [head, tail) are waiting or abandoned.
 *   - live[g & 1] is the current generation's bitmap ("cur"), live[(g+1) & 1]
 *     the previous one ("prev"); cur is a subset of prev, and a ticket is
 *     live iff its bit is set in prev.
 *   - lane.waiting is exactly the number of prev bits in [head, tail): joins
 *     add one, admissions take one, a generation roll recounts it. So the
 *     meter never scans to learn that a lane is empty.
 *   - an admitted ticket gets its cur bit set, so it stays live (and may
 *     exchange its pass) for at least one more generation; a ticket the head
 *     stepped over while dead is GONE when it comes back.
 * One mutex guards everything; callbacks run after it is released, before
 * the op returns. Bitmaps grow with the ticket numbers and are never
 * trimmed: 3 bits per ticket number ever handed out (about 3.6 MB for ten
 * million). Released pass ids live in a fixed table of their own
 * (EL_STORE_RELEASED_MAX, 2 MB), for one credit per pass. Time is the now_ms
 * the caller passes. */
#include "store_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "einlass/common.h"
#include "einlass/revoke.h"
#include "einlass/store.h"

struct bitmap {
    uint64_t *w; /* words, bit i at w[i / 64] bit i % 64 */
    size_t nw;   /* words allocated (zero-filled) */
};

struct lane {
    uint64_t head;          /* every number below was reached */
    uint64_t tail;          /* the next number to hand out */
    uint64_t waiting;       /* prev bits in [head, tail) */
    struct bitmap live[2];  /* generation bitmaps, by generation parity */
    struct bitmap exchange; /* a set bit: that ticket's pass was claimed */
};

struct meter {
    double frac;      /* budget left over from the last advance, < 1 */
    uint64_t last_ms; /* time of the last advance */
    bool has_last;    /* last_ms is set */
    uint64_t credits; /* releases since the last advance */
    double rate;      /* measured admissions per second (0 = not yet) */
    uint64_t busy_n;  /* admissions in the current measuring window */
    uint64_t busy_ms; /* metered time in the current measuring window */
};

struct mstore {
    struct el_store base;    /* ops table: first member */
    pthread_mutex_t lock;    /* guards every field below */
    uint64_t gen_ms;         /* generation length L = 3 * poll_s seconds */
    struct lane lanes[2];    /* 0 normal, 1 priority */
    uint64_t gen;            /* generation number: parity picks cur */
    uint64_t gen_t;          /* when the current generation started */
    bool started;            /* gen_t is set */
    struct meter meter;        /* fraction, last advance, credits, measured rate */
    uint64_t admitted_total; /* passes claimed */
    struct el_revoke *released; /* pass ids released (their credit given); own lock */
};

static void bm_grow(struct bitmap *b, uint64_t i)
{
    size_t need = (size_t)(i / 64) + 1;
    if (need <= b->nw) return;
    size_t n = b->nw ? b->nw : 64;
    while (n < need) n *= 2;
    b->w = el_realloc(b->w, n * sizeof(uint64_t));
    memset(b->w + b->nw, 0, (n - b->nw) * sizeof(uint64_t));
    b->nw = n;
}

static void bm_set(struct bitmap *b, uint64_t i)
{
    bm_grow(b, i);
    b->w[i / 64] |= (uint64_t)1 << (i % 64);
}

static bool bm_get(const struct bitmap *b, uint64_t i)
{
    if (i / 64 >= b->nw) return false;
    return (b->w[i / 64] >> (i % 64)) & 1;
}

static void bm_clear(struct bitmap *b)
{
    free(b->w);
    b->w = NULL;
    b->nw = 0;
}

/* Word i of b masked to the bits in [lo, hi), which must overlap word i. */
static uint64_t bm_word(const struct bitmap *b, size_t i, uint64_t lo, uint64_t hi)
{
    uint64_t w = b->w[i];
    uint64_t first = (uint64_t)i * 64;
    if (lo > first) w &= ~(uint64_t)0 << (lo - first);
    if (hi < first + 64) w &= ((uint64_t)1 << (hi - first)) - 1;
    return w;
}

/* Set bits in [lo, hi). */
static uint64_t bm_count(const struct bitmap *b, uint64_t lo, uint64_t hi)
{
    if (hi > (uint64_t)b->nw * 64) hi = (uint64_t)b->nw * 64;
    uint64_t n = 0;
    for (uint64_t i = lo / 64; lo < hi && i <= (hi - 1) / 64; i++)
        n += (uint64_t)__builtin_popcountll(bm_word(b, (size_t)i, lo, hi));
    return n;
}

/* The first set bit in [lo, hi), or hi if none. */
static uint64_t bm_next(const struct bitmap *b, uint64_t lo, uint64_t hi)
{
    uint64_t end = EL_MIN(hi, (uint64_t)b->nw * 64);
    for (uint64_t i = lo / 64; lo < end && i <= (end - 1) / 64; i++) {
        uint64_t w = bm_word(b, (size_t)i, lo, end);
        if (w) return i * 64 + (uint64_t)__builtin_ctzll(w);
    }
    return hi;
}

/* Whole admissions due at now_ms: the kept fraction, rate x elapsed (capped)
 * and release credits; keeps the new fraction. */
static uint64_t meter_budget(struct meter *m, double rate, uint64_t now_ms, uint64_t *elapsed)
{
    uint64_t el = 0;
    if (m->has_last && now_ms > m->last_ms) el = EL_MIN(now_ms - m->last_ms, EL_METER_MAX_GAP_MS);
    m->last_ms = now_ms;
    m->has_last = true;
    if (!isfinite(rate)) rate = 0;
    /* A negative rate cancels release credits (the control loop counts
     * them in its own rate): the debt carries over, up to EL_METER_MAX_DEBT. */
    double budget = m->frac + rate * (double)el / 1000.0 + (double)m->credits;
    m->credits = 0;
    if (budget < 0) {
        m->frac = budget < -EL_METER_MAX_DEBT ? -EL_METER_MAX_DEBT : budget;
        *elapsed = el;
        return 0;
    }
    double whole = floor(budget);
    m->frac = budget - whole;
    *elapsed = el;
    return whole > 0 ? (uint64_t)whole : 0;
}

/* After admitting: drop the fraction when nobody waits; update the measured
 * rate from the time someone was waiting. */
static void meter_done(struct meter *m, uint64_t admitted, uint64_t elapsed, bool busy)
{
    if (!busy) {
        m->frac = 0; /* no banking while nobody waits */
        return;
    }
    m->busy_n += admitted;
    m->busy_ms += elapsed;
    if (m->busy_ms < EL_METER_WINDOW_MS) return;
    double inst = (double)m->busy_n * 1000.0 / (double)m->busy_ms;
    m->rate = m->rate == 0 ? inst : m->rate + EL_METER_ALPHA * (inst - m->rate);
    m->busy_n = 0;
    m->busy_ms = 0;
}

static struct bitmap *cur(struct mstore *s, int l)
{
    return &s->lanes[l].live[s->gen & 1];
}

static struct bitmap *prev(struct mstore *s, int l)
{
    return &s->lanes[l].live[(s->gen + 1) & 1];
}

/* Start a new generation when the current one is L old: prev := cur,
 * cur := empty (two or more due: nobody came back, both empty). */
static void roll(struct mstore *s, uint64_t now)
{
    if (!s->started) {
        s->started = true;
        s->gen_t = now;
        return;
    }
    if (now < s->gen_t || now - s->gen_t < s->gen_ms) return;
    if (now - s->gen_t >= 2 * s->gen_ms) {
        for (int l = 0; l < 2; l++) {
            bm_clear(&s->lanes[l].live[0]);
            bm_clear(&s->lanes[l].live[1]);
        }
        s->gen_t = now;
    } else {
        s->gen++;
        bm_clear(cur(s, 0));
        bm_clear(cur(s, 1));
        s->gen_t += s->gen_ms;
    }
    for (int l = 0; l < 2; l++) {
        struct lane *ln = &s->lanes[l];
        ln->waiting = bm_count(prev(s, l), ln->head, ln->tail);
    }
}

static uint64_t total_waiting(const struct mstore *s)
{
    return s->lanes[0].waiting + s->lanes[1].waiting;
}

static void mem_join(struct el_store *st, uint8_t lane, uint64_t now_ms, el_store_place_cb cb,
                     void *arg)
{
    struct mstore *s = (struct mstore *)st;
    struct el_place p = {.state = EL_PLACE_WAITING, .lane = lane & 1};
    int l = p.lane;
    pthread_mutex_lock(&s->lock);
    roll(s, now_ms);
    struct lane *ln = &s->lanes[l];
    p.num = ln->tail++;
    bm_set(cur(s, l), p.num);
    bm_set(prev(s, l), p.num);
    ln->waiting++;
    p.position = l == 1 ? ln->waiting : total_waiting(s);
    p.waiting = total_waiting(s);
    p.rate = s->meter.rate;
    pthread_mutex_unlock(&s->lock);
    cb(arg, 0, &p);
}

static void mem_check(struct el_store *st, uint8_t lane, uint64_t num, uint64_t now_ms,
                      el_store_place_cb cb, void *arg)
{
    struct mstore *s = (struct mstore *)st;
    struct el_place p = {.state = EL_PLACE_GONE, .lane = lane & 1, .num = num};
    int l = p.lane;
    pthread_mutex_lock(&s->lock);
    roll(s, now_ms);
    struct lane *ln = &s->lanes[l];
    if (num < ln->tail) {
        bool live = bm_get(prev(s, l), num);
        if (num < ln->head) {
            if (bm_get(&ln->exchange, num)) {
                p.state = EL_PLACE_USED;
            } else if (live) {
                bm_set(&ln->exchange, num);
                s->admitted_total++;
                p.state = EL_PLACE_ADMITTED;
            }
        } else if (live) {
            bm_set(cur(s, l), num);
            p.state = EL_PLACE_WAITING;
            p.position = bm_count(prev(s, l), ln->head, num + 1);
            if (l == 0) p.position += s->lanes[1].waiting;
        }
    }
    p.waiting = total_waiting(s);
    p.rate = s->meter.rate;
    pthread_mutex_unlock(&s->lock);
    cb(arg, 0, &p);
}

static void mem_advance(struct el_store *st, double rate, uint64_t now_ms, el_store_stats_cb cb,
                        void *arg)
{
    struct mstore *s = (struct mstore *)st;
    struct el_store_stats out;
    pthread_mutex_lock(&s->lock);
    roll(s, now_ms);
    uint64_t elapsed;
    uint64_t n = meter_budget(&s->meter, rate, now_ms, &elapsed);
    uint64_t admitted = 0;
    for (int l = 1; l >= 0; l--) {
        struct lane *ln = &s->lanes[l];
        while (n > 0 && ln->waiting > 0) {
            uint64_t p = bm_next(prev(s, l), ln->head, ln->tail);
            if (p >= ln->tail) break; /* cannot happen while waiting is exact */
            ln->head = p + 1;
            bm_set(cur(s, l), p); /* keeps the admitted ticket live */
            ln->waiting--;
            n--;
            admitted++;
        }
        if (ln->waiting == 0) ln->head = ln->tail;
    }
    meter_done(&s->meter, admitted, elapsed, total_waiting(s) > 0);
    out.waiting = total_waiting(s);
    out.admitted_total = s->admitted_total;
    out.rate = s->meter.rate;
    pthread_mutex_unlock(&s->lock);
    if (cb) cb(arg, 0, &out);
}

static void mem_release(struct el_store *st, uint64_t id, int ttl_s, uint64_t now_ms)
{
    struct mstore *s = (struct mstore *)st;
    uint32_t now = (uint32_t)(now_ms / 1000);
    if (!el_revoke_add(s->released, id, now + (uint32_t)EL_MAX(ttl_s, 1), now)) return;
    pthread_mutex_lock(&s->lock);
    s->meter.credits++;
    pthread_mutex_unlock(&s->lock);
}

static void mem_revoked(struct el_store *st, uint64_t cursor, el_store_revoked_cb cb, void *arg)
{
    cb(arg, 0, NULL, 0, cursor);
}

static void mem_free(struct el_store *st)
{
    struct mstore *s = (struct mstore *)st;
    if (s == NULL) return;
    for (int l = 0; l < 2; l++) {
        bm_clear(&s->lanes[l].live[0]);
        bm_clear(&s->lanes[l].live[1]);
        bm_clear(&s->lanes[l].exchange);
    }
    el_revoke_free(s->released);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static const struct el_store_ops mem_ops = {
    .name = "memory",
    .join = mem_join,
    .check = mem_check,
    .advance = mem_advance,
    .release = mem_release,
    .revoked = mem_revoked,
    .free = mem_free,
};

static uint64_t gen_ms(const struct el_store_params *p)
{
    return (uint64_t)(p->poll_s > 0 ? p->poll_s : 1) * 3000;
}

struct el_store *el_store_memory_new(const struct el_store_params *p)
{
    struct mstore *s = el_calloc(1, sizeof(*s));
    s->base.ops = &mem_ops;
    pthread_mutex_init(&s->lock, NULL);
    s->gen_ms = gen_ms(p);
    s->released = el_revoke_new(EL_STORE_RELEASED_MAX, (uint64_t)(uintptr_t)s);
    return &s->base;
}

void el_store_memory_configure(struct el_store *st, const struct el_store_params *p)
{
    struct mstore *s = (struct mstore *)st;
    pthread_mutex_lock(&s->lock);
    s->gen_ms = gen_ms(p);
    pthread_mutex_unlock(&s->lock);
}
