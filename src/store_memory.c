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
 *   - an admitted ticket gets its cur bit set, so it stays live for at least
 *     one more generation (L >= claim_ms); a ticket the head stepped over
 *     while dead is GONE when it comes back.
 *   - held admissions: per lane, log holds (time, head after, admitted) of
 *     the advances that admitted anyone, one entry per second at most, oldest
 *     first, covering [claim_from, head). A ticket in [claim_from, head)
 *     that is live may claim its pass; when the oldest entry is claim_ms old
 *     it leaves the log: its admissions without an exchange bit become
 *     credits, and claim_from moves to its head. late_from (<= head) is the
 *     head of the newest entry older than 3 x poll_s: a claim below it was
 *     made by a patient who was away when their turn came.
 * One mutex guards everything; callbacks run after it is released, before
 * the op returns. Bitmaps grow with the ticket numbers and are cut below
 * min(head, claim_from) once that is BM_TRIM_BITS above their base: 3 bits
 * per number of the waiting span, however long the room lives (about 3.6 MB for ten
 * million), plus the held-admission log (claim_ms / 1 s entries a lane)
 * and a small table of event pre-queues (n, and the draw once made; the
 * draw sets its block's bits like n joins). Released pass ids live in a fixed table of their own
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
    uint64_t *w;   /* words, bit i at w[(i - base) / 64] bit i % 64 */
    size_t nw;     /* words allocated (zero-filled) */
    uint64_t base; /* number of w[0]'s first bit (a multiple of 64); below: unset */
};

/* A lane's bitmaps are cut below min(head, claim_from) once that is this
 * many numbers above their base (1 MB of words): memory follows the waiting
 * span, not every number ever handed out. */
#define BM_TRIM_BITS ((uint64_t)1 << 23)

/* One second's admissions in a lane, held for their tickets. */
struct held {
    uint64_t t;   /* when the first of them was made */
    uint64_t h;   /* the lane's head after them: they lie below */
    uint64_t n;   /* how many tickets were admitted */
};

struct lane {
    uint64_t head;          /* every number below was reached */
    uint64_t tail;          /* the next number to hand out */
    uint64_t waiting;       /* prev bits in [head, tail) */
    struct bitmap live[2];  /* generation bitmaps, by generation parity */
    struct bitmap exchange; /* a set bit: that ticket's pass was claimed */
    uint64_t claim_from;    /* admitted tickets below this may no longer claim */
    uint64_t late_from;     /* a claim below this comes later than 3 x poll_s */
    struct held *log;       /* ring of held admissions, oldest first */
    size_t log_lo, log_n;   /* first entry, entries */
    size_t log_cap;         /* ring size (a power of two, or 0) */
    size_t log_late;        /* entries already older than 3 x poll_s */
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

/* An event's pre-queue. */
struct pre {
    uint32_t event; /* its id */
    struct el_pre p; /* n, and the draw once made */
};

struct mstore {
    struct el_store base;    /* ops table: first member */
    pthread_mutex_t lock;    /* guards every field below */
    uint64_t gen_ms;         /* generation length L = keep_place_s */
    uint64_t claim_ms;       /* an admission is held this long (<= gen_ms) */
    uint64_t late_ms;        /* 3 * poll_s: a later claim counts as a place kept */
    struct lane lanes[2];    /* 0 normal, 1 priority */
    uint64_t gen;            /* generation number: parity picks cur */
    uint64_t gen_t;          /* when the current generation started */
    bool started;            /* gen_t is set */
    struct meter meter;        /* fraction, last advance, credits, measured rate */
    uint64_t admitted_total; /* passes claimed */
    uint64_t unclaimed_total; /* held admissions returned as credit */
    uint64_t kept_total;     /* claims later than late_ms after the admission */
    struct el_revoke *released; /* pass ids released (their credit given); own lock */
    struct pre *pres;        /* pre-queues, in order of first use */
    size_t npres, pres_cap;  /* entries, allocated */
    uint32_t epoch;          /* drawn at start, never 0: tickets carry it (store.h) */
};

static void bm_grow(struct bitmap *b, uint64_t i)
{
    size_t need = (size_t)((i - b->base) / 64) + 1;
    if (need <= b->nw) return;
    size_t n = b->nw ? b->nw : 64;
    while (n < need) n *= 2;
    b->w = el_realloc(b->w, n * sizeof(uint64_t));
    memset(b->w + b->nw, 0, (n - b->nw) * sizeof(uint64_t));
    b->nw = n;
}

static void bm_set(struct bitmap *b, uint64_t i)
{
    if (i < b->base) return; /* below a cut: never asked again */
    bm_grow(b, i);
    b->w[(i - b->base) / 64] |= (uint64_t)1 << (i % 64);
}

static bool bm_get(const struct bitmap *b, uint64_t i)
{
    if (i < b->base || (i - b->base) / 64 >= b->nw) return false;
    return (b->w[(i - b->base) / 64] >> (i % 64)) & 1;
}

/* Empty b; its base stays (so the next bit set does not grow it from 0). */
static void bm_clear(struct bitmap *b)
{
    free(b->w);
    b->w = NULL;
    b->nw = 0;
}

/* Drop b's bits below to (when to is BM_TRIM_BITS above its base). */
static void bm_trim(struct bitmap *b, uint64_t to)
{
    to -= to % 64;
    if (to <= b->base || to - b->base < BM_TRIM_BITS) return;
    size_t cut = (size_t)((to - b->base) / 64);
    if (cut >= b->nw) {
        bm_clear(b);
    } else {
        memmove(b->w, b->w + cut, (b->nw - cut) * sizeof(uint64_t));
        b->nw -= cut;
        b->w = el_realloc(b->w, b->nw * sizeof(uint64_t));
    }
    b->base = to;
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
    lo = lo > b->base ? lo - b->base : 0; /* relative to the base from here on */
    hi = hi > b->base ? hi - b->base : 0;
    if (hi > (uint64_t)b->nw * 64) hi = (uint64_t)b->nw * 64;
    uint64_t n = 0;
    for (uint64_t i = lo / 64; lo < hi && i <= (hi - 1) / 64; i++)
        n += (uint64_t)__builtin_popcountll(bm_word(b, (size_t)i, lo, hi));
    return n;
}

/* The first set bit in [lo, hi), or hi if none. */
static uint64_t bm_next(const struct bitmap *b, uint64_t lo, uint64_t hi)
{
    uint64_t rlo = lo > b->base ? lo - b->base : 0, rhi = hi > b->base ? hi - b->base : 0;
    uint64_t end = EL_MIN(rhi, (uint64_t)b->nw * 64);
    for (uint64_t i = rlo / 64; rlo < end && i <= (end - 1) / 64; i++) {
        uint64_t w = bm_word(b, (size_t)i, rlo, end);
        if (w) return b->base + i * 64 + (uint64_t)__builtin_ctzll(w);
    }
    return hi;
}

/* Cut a lane's bitmaps below its head and claim horizon: no check or count
 * asks below them again (a ticket there is GONE or USED either way, and
 * GONE it stays). */
static void trim_lane(struct lane *ln)
{
    uint64_t to = EL_MIN(ln->head, ln->claim_from);
    bm_trim(&ln->live[0], to);
    bm_trim(&ln->live[1], to);
    bm_trim(&ln->exchange, to);
}


/* Whole admissions due at now_ms: the kept fraction, rate x elapsed (capped)
 * and release credits, less the credits to cancel; keeps the new fraction
 * (below zero: the debt, at most EL_METER_MAX_DEBT). A hold admits nobody
 * and keeps the fraction and the credits (store.h). */
static uint64_t meter_budget(struct meter *m, const struct el_meter_in *in, uint64_t now_ms,
                             uint64_t *elapsed)
{
    uint64_t el = 0;
    if (m->has_last && now_ms > m->last_ms) el = EL_MIN(now_ms - m->last_ms, EL_METER_MAX_GAP_MS);
    m->last_ms = now_ms;
    m->has_last = true;
    *elapsed = el;
    if (in->hold) return 0; /* held (paused): credits and the fraction wait for the resume */
    double rate = in->rate > 0 && isfinite(in->rate) ? in->rate : 0;
    double cancel = in->cancel_credits > 0 && isfinite(in->cancel_credits) ? in->cancel_credits : 0;
    double budget = m->frac + rate * (double)el / 1000.0 + (double)m->credits - cancel;
    m->credits = 0;
    if (budget < 0) {
        m->frac = budget < -EL_METER_MAX_DEBT ? -EL_METER_MAX_DEBT : budget;
        return 0;
    }
    double whole = floor(budget);
    m->frac = budget - whole;
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

static struct held *log_at(struct lane *ln, size_t i)
{
    return &ln->log[(ln->log_lo + i) & (ln->log_cap - 1)];
}

/* Record n admissions made at now (head is the lane's head after them). */
static void log_admitted(struct lane *ln, uint64_t now, uint64_t n)
{
    if (ln->log_n > 0) {
        struct held *last = log_at(ln, ln->log_n - 1);
        if (now >= last->t && now - last->t < 1000) {
            last->h = ln->head;
            last->n += n;
            return;
        }
    }
    if (ln->log_n == ln->log_cap) {
        size_t cap = ln->log_cap ? ln->log_cap * 2 : 64;
        struct held *nl = el_malloc(cap * sizeof(*nl));
        for (size_t i = 0; i < ln->log_n; i++) nl[i] = *log_at(ln, i);
        free(ln->log);
        ln->log = nl;
        ln->log_lo = 0;
        ln->log_cap = cap;
    }
    *log_at(ln, ln->log_n++) = (struct held){.t = now, .h = ln->head, .n = n};
}

/* Move the late and claim horizons to now; returns the credits of held
 * admissions that were not claimed in time. */
static uint64_t expire_held(struct mstore *s, struct lane *ln, uint64_t now)
{
    uint64_t credits = 0;
    while (ln->log_late < ln->log_n && now >= log_at(ln, ln->log_late)->t + s->late_ms)
        ln->late_from = log_at(ln, ln->log_late++)->h;
    while (ln->log_n > 0 && now >= log_at(ln, 0)->t + s->claim_ms) {
        struct held *e = log_at(ln, 0);
        uint64_t claimed = bm_count(&ln->exchange, ln->claim_from, e->h);
        if (e->n > claimed) credits += e->n - claimed;
        ln->claim_from = e->h;
        if (ln->late_from < e->h) ln->late_from = e->h;
        ln->log_lo = (ln->log_lo + 1) & (ln->log_cap - 1);
        ln->log_n--;
        if (ln->log_late > 0) ln->log_late--;
    }
    s->unclaimed_total += credits;
    return credits;
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
    p.epoch = s->epoch;
    bm_set(cur(s, l), p.num);
    bm_set(prev(s, l), p.num);
    ln->waiting++;
    p.position = l == 1 ? ln->waiting : total_waiting(s);
    p.waiting = total_waiting(s);
    p.rate = s->meter.rate;
    pthread_mutex_unlock(&s->lock);
    cb(arg, 0, &p);
}

static void mem_check(struct el_store *st, uint8_t lane, uint64_t num, uint32_t epoch,
                      uint64_t now_ms, el_store_place_cb cb, void *arg)
{
    struct mstore *s = (struct mstore *)st;
    struct el_place p = {.state = EL_PLACE_GONE, .lane = lane & 1, .num = num, .epoch = epoch};
    int l = p.lane;
    pthread_mutex_lock(&s->lock);
    roll(s, now_ms);
    struct lane *ln = &s->lanes[l];
    if (num < ln->tail && (epoch == 0 || epoch == s->epoch)) { /* another epoch: not ours */
        bool live = bm_get(prev(s, l), num);
        if (num < ln->head) {
            if (bm_get(&ln->exchange, num)) {
                p.state = EL_PLACE_USED;
            } else if (live && num >= ln->claim_from) { /* its admission is still held */
                bm_set(&ln->exchange, num);
                s->admitted_total++;
                if (num < ln->late_from) s->kept_total++;
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

static void mem_advance(struct el_store *st, const struct el_meter_in *in, uint64_t now_ms,
                        el_store_stats_cb cb, void *arg)
{
    struct mstore *s = (struct mstore *)st;
    struct el_store_stats out;
    pthread_mutex_lock(&s->lock);
    roll(s, now_ms);
    /* A hold (pause) keeps the held admissions claimable: their expiry and
     * the late mark wait for the resume (the same in store_redis.c). */
    if (!in->hold)
        for (int l = 0; l < 2; l++) s->meter.credits += expire_held(s, &s->lanes[l], now_ms);
    uint64_t elapsed;
    uint64_t n = meter_budget(&s->meter, in, now_ms, &elapsed);
    uint64_t admitted = 0;
    for (int l = 1; l >= 0; l--) {
        struct lane *ln = &s->lanes[l];
        uint64_t before = admitted;
        while (n > 0 && ln->waiting > 0) {
            uint64_t p = bm_next(prev(s, l), ln->head, ln->tail);
            if (p >= ln->tail) break; /* cannot happen while waiting is exact */
            ln->head = p + 1;
            bm_set(cur(s, l), p); /* keeps the admitted ticket live */
            ln->waiting--;
            n--;
            admitted++;
        }
        if (admitted > before) log_admitted(ln, now_ms, admitted - before);
        if (ln->waiting == 0) ln->head = ln->tail;
    }
    meter_done(&s->meter, admitted, elapsed, total_waiting(s) > 0);
    for (int l = 0; l < 2; l++) trim_lane(&s->lanes[l]);
    out.waiting = total_waiting(s);
    out.admitted_total = s->admitted_total;
    out.rate = s->meter.rate;
    out.unclaimed_total = s->unclaimed_total;
    out.kept_total = s->kept_total;
    for (int l = 0; l < 2; l++) {
        out.head[l] = s->lanes[l].head;
        out.tail[l] = s->lanes[l].tail;
        out.claim[l] = s->lanes[l].claim_from;
        out.lane_waiting[l] = s->lanes[l].waiting;
    }
    out.instances = 1;
    out.frac = s->meter.frac;
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

static struct pre *find_pre(struct mstore *s, uint32_t event)
{
    for (size_t i = 0; i < s->npres; i++)
        if (s->pres[i].event == event) return &s->pres[i];
    if (s->npres == s->pres_cap) {
        s->pres_cap = s->pres_cap ? s->pres_cap * 2 : 8;
        s->pres = el_realloc(s->pres, s->pres_cap * sizeof(*s->pres));
    }
    struct pre *e = &s->pres[s->npres++];
    memset(e, 0, sizeof(*e));
    e->event = event;
    return e;
}

static void mem_pre(struct el_store *st, uint32_t event, enum el_pre_op op, const uint8_t *seed,
                    int64_t not_before_ms, uint64_t now_ms, el_store_pre_cb cb, void *arg)
{
    (void)not_before_ms; /* one instance: its caller's clock decided */
    struct mstore *s = (struct mstore *)st;
    pthread_mutex_lock(&s->lock);
    roll(s, now_ms);
    struct pre *e = find_pre(s, event);
    struct lane *ln = &s->lanes[0];
    if (!e->p.drawn && op == EL_PRE_JOIN) {
        e->p.i = e->p.n++;
    } else if (!e->p.drawn && op == EL_PRE_DRAW) {
        /* n tickets join lane 0 at once, in one block at the tail. */
        e->p.drawn = true;
        e->p.base = ln->tail;
        e->p.shuffled = seed != NULL;
        if (seed) memcpy(e->p.seed, seed, EL_PRE_SEED_LEN);
        for (uint64_t k = 0; k < e->p.n; k++) {
            bm_set(cur(s, 0), ln->tail + k);
            bm_set(prev(s, 0), ln->tail + k);
        }
        ln->tail += e->p.n;
        ln->waiting += e->p.n;
    }
    struct el_pre out = e->p;
    if (op != EL_PRE_JOIN || out.drawn) out.i = 0;
    out.head = ln->head;
    pthread_mutex_unlock(&s->lock);
    cb(arg, 0, &out);
}

static void mem_free(struct el_store *st)
{
    struct mstore *s = (struct mstore *)st;
    if (s == NULL) return;
    for (int l = 0; l < 2; l++) {
        bm_clear(&s->lanes[l].live[0]);
        bm_clear(&s->lanes[l].live[1]);
        bm_clear(&s->lanes[l].exchange);
        free(s->lanes[l].log);
    }
    el_revoke_free(s->released);
    free(s->pres);
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
    .pre = mem_pre,
    .free = mem_free,
};

/* L, the hold and the late mark from p (see store.h for the defaults). */
static void set_times(struct mstore *s, const struct el_store_params *p)
{
    uint64_t late = (uint64_t)(p->poll_s > 0 ? p->poll_s : 1) * 3000;
    s->gen_ms = p->keep_ms > 0 ? (uint64_t)p->keep_ms : late;
    s->claim_ms = p->claim_ms > 0 ? EL_MIN((uint64_t)p->claim_ms, s->gen_ms) : s->gen_ms;
    s->late_ms = late;
}

struct el_store *el_store_memory_new(const struct el_store_params *p)
{
    struct mstore *s = el_calloc(1, sizeof(*s));
    s->base.ops = &mem_ops;
    pthread_mutex_init(&s->lock, NULL);
    set_times(s, p);
    s->released = el_revoke_new(EL_STORE_RELEASED_MAX, (uint64_t)(uintptr_t)s);
    uint64_t seed = (el_now_us() ^ (uint64_t)(uintptr_t)s) * 0x9E3779B97F4A7C15ULL;
    s->epoch = (uint32_t)(seed >> 32) | 1; /* never 0 */
    return &s->base;
}

size_t el_store_memory_bitmap_bytes(struct el_store *st)
{
    struct mstore *s = (struct mstore *)st;
    pthread_mutex_lock(&s->lock);
    size_t n = 0;
    for (int l = 0; l < 2; l++)
        n += (s->lanes[l].live[0].nw + s->lanes[l].live[1].nw + s->lanes[l].exchange.nw) * 8;
    pthread_mutex_unlock(&s->lock);
    return n;
}

uint32_t el_store_memory_epoch(struct el_store *st)
{
    return ((struct mstore *)st)->epoch; /* set once at start */
}

void el_store_memory_configure(struct el_store *st, const struct el_store_params *p)
{
    struct mstore *s = (struct mstore *)st;
    pthread_mutex_lock(&s->lock);
    set_times(s, p);
    pthread_mutex_unlock(&s->lock);
}
