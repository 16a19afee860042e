/* fallback.c - the order of Redis tickets while Redis is unreachable
 * (fallback.h).
 *
 * Invariants:
 *   - known[l]: head/tail/claim/density of lane l come from Redis (learn) or
 *     from the first ticket seen (nothing learnt); H[l] >= head[l].
 *   - claimed[l] has bit i set iff ticket base[l] + i was admitted here
 *     during this outage; base[l] is the claim horizon when the outage
 *     began, so every number an outage can admit is at or above it.
 *   - the mark (Redis tail at the end of an outage, per lane): the local
 *     queue waits until the Redis heads pass it. */
#include "einlass/fallback.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "einlass/common.h"
#include "store_internal.h"

#define FB_CLAIMED_MAX_BITS (1u << 24) /* 2 MB a lane at most; beyond: admitted again */

struct fb_lane {
    bool known;       /* figures below are set */
    uint64_t head;    /* learnt head */
    uint64_t tail;    /* learnt tail (raised by any Redis ticket seen above it) */
    uint64_t claim;   /* learnt claim horizon: below is GONE */
    double density;   /* live tickets per number in [head, tail), (0, 1] */
    double h;         /* the virtual head H, as an offset from head (a double holds
                         the offset exactly; H itself, near 2^51 in a room numbered from
                         Redis time, would move in steps of 0.25 or 0.5) */
    uint64_t base;    /* claimed bit 0 */
    uint64_t *bits;   /* claimed bitmap */
    size_t nw;        /* words */
    uint64_t mark;    /* after an outage: Redis tail then; 0 = none */
};

struct el_fallback {
    pthread_mutex_t lock;
    _Atomic bool active;  /* an outage is under way (read lock-free) */
    bool learnt;          /* learn ran at least once */
    unsigned instances;   /* live instances learnt (>= 1) */
    uint64_t last_ms;     /* H integrated up to here */
    struct fb_lane lane[2];
};

struct el_fallback *el_fallback_new(void)
{
    struct el_fallback *f = el_calloc(1, sizeof(*f));
    pthread_mutex_init(&f->lock, NULL);
    f->instances = 1;
    return f;
}

void el_fallback_free(struct el_fallback *f)
{
    if (f == NULL) return;
    for (int l = 0; l < 2; l++) free(f->lane[l].bits);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static void clear_claimed(struct fb_lane *ln)
{
    free(ln->bits);
    ln->bits = NULL;
    ln->nw = 0;
}

void el_fallback_learn(struct el_fallback *f, const struct el_store_stats *st, uint64_t now_ms)
{
    pthread_mutex_lock(&f->lock);
    bool was_active = f->active;
    for (int l = 0; l < 2; l++) {
        struct fb_lane *ln = &f->lane[l];
        ln->known = true;
        ln->head = st->head[l];
        ln->tail = EL_MAX(st->tail[l], st->head[l]);
        ln->claim = EL_MIN(st->claim[l], ln->head);
        uint64_t span = ln->tail - ln->head;
        double d = span > 0 ? (double)st->lane_waiting[l] / (double)span : 1.0;
        ln->density = d > 0.01 ? EL_MIN(d, 1.0) : 0.01;
        ln->h = 0;
        ln->base = ln->claim;
        clear_claimed(ln);
        if (was_active) ln->mark = ln->tail;
        else if (ln->mark && ln->head >= ln->mark) ln->mark = 0;
    }
    /* the meter's fraction: the next admission is that far on its way */
    int fl = st->lane_waiting[1] > 0 ? 1 : 0;
    if (st->frac > 0 && st->frac < 1) f->lane[fl].h += st->frac / f->lane[fl].density;
    f->instances = st->instances > 0 ? st->instances : 1;
    f->learnt = true;
    f->active = false;
    f->last_ms = now_ms;
    pthread_mutex_unlock(&f->lock);
}

void el_fallback_begin(struct el_fallback *f, uint64_t now_ms)
{
    pthread_mutex_lock(&f->lock);
    if (!f->active) {
        f->active = true;
        if (!f->learnt) f->last_ms = now_ms;
        for (int l = 0; l < 2; l++) f->lane[l].mark = 0;
    }
    pthread_mutex_unlock(&f->lock);
}

bool el_fallback_active(const struct el_fallback *f)
{
    return atomic_load_explicit(&f->active, memory_order_relaxed);
}

/* Number x relative to the lane's head (as H is). */
static double rel(const struct fb_lane *ln, uint64_t x)
{
    return x >= ln->head ? (double)(x - ln->head) : -(double)(ln->head - x);
}

/* Lane l's estimated live tickets in [H, upto). */
static double ahead_in(const struct fb_lane *ln, uint64_t upto)
{
    if (!ln->known || rel(ln, upto) <= ln->h) return 0;
    return (rel(ln, upto) - ln->h) * ln->density;
}

/* Claim num's bit; false if it was set already. */
static bool claim_bit(struct fb_lane *ln, uint64_t num)
{
    if (num < ln->base || num - ln->base >= FB_CLAIMED_MAX_BITS) return true;
    uint64_t i = num - ln->base;
    size_t w = (size_t)(i / 64);
    if (w >= ln->nw) {
        size_t nw = EL_MAX(w + 1, ln->nw * 2);
        ln->bits = el_realloc(ln->bits, nw * sizeof(*ln->bits));
        memset(ln->bits + ln->nw, 0, (nw - ln->nw) * sizeof(*ln->bits));
        ln->nw = nw;
    }
    uint64_t bit = 1ull << (i % 64);
    if (ln->bits[w] & bit) return false;
    ln->bits[w] |= bit;
    return true;
}

void el_fallback_check(struct el_fallback *f, uint8_t lane, uint64_t num, uint64_t now_ms,
                       struct el_place *out)
{
    int l = lane & 1;
    pthread_mutex_lock(&f->lock);
    struct fb_lane *ln = &f->lane[l];
    if (!ln->known) { /* nothing learnt: the first ticket seen starts the line */
        ln->known = true;
        ln->head = ln->base = num;
        ln->claim = 0; /* no horizon known: GONE for none */
        ln->tail = num + 1;
        ln->density = 1.0;
        ln->h = 0;
        if (f->last_ms == 0) f->last_ms = now_ms;
    }
    if (num >= ln->tail) ln->tail = num + 1;
    *out = (struct el_place){.state = EL_PLACE_WAITING, .lane = (uint8_t)l, .num = num};
    if (num < ln->claim) {
        out->state = EL_PLACE_GONE;
    } else if (rel(ln, num) + 1 <= ln->h) { /* H passed it: reached */
        out->state = claim_bit(ln, num) ? EL_PLACE_ADMITTED : EL_PLACE_USED;
    } else {
        /* counted from the next ticket to be reached (floor(h)), not from
         * h: a head between two tickets put both of them at position 1 */
        double a = (rel(ln, num) - floor(ln->h)) * ln->density;
        if (l == 0) a += ahead_in(&f->lane[1], f->lane[1].tail);
        out->position = (uint64_t)a + 1;
    }
    out->waiting = (uint64_t)(ahead_in(&f->lane[0], f->lane[0].tail) +
                              ahead_in(&f->lane[1], f->lane[1].tail));
    pthread_mutex_unlock(&f->lock);
}

void el_fallback_tick(struct el_fallback *f, double rate, uint64_t now_ms)
{
    pthread_mutex_lock(&f->lock);
    if (f->active && now_ms > f->last_ms) {
        uint64_t el = EL_MIN(now_ms - f->last_ms, (uint64_t)EL_METER_MAX_GAP_MS);
        double g = rate > 0 && isfinite(rate) ? rate * (double)el / 1000.0 : 0;
        for (int l = 1; l >= 0 && g > 0; l--) { /* the priority lane first */
            struct fb_lane *ln = &f->lane[l];
            if (!ln->known) continue;
            double need = ahead_in(ln, ln->tail);
            double take = l == 0 ? g : EL_MIN(g, need);
            ln->h += take / ln->density;
            g -= take;
        }
    }
    if (now_ms > f->last_ms) f->last_ms = now_ms;
    pthread_mutex_unlock(&f->lock);
}

uint64_t el_fallback_ahead(struct el_fallback *f)
{
    struct el_fallback *m = f;
    pthread_mutex_lock(&m->lock);
    double a = ahead_in(&f->lane[0], f->lane[0].tail) + ahead_in(&f->lane[1], f->lane[1].tail);
    pthread_mutex_unlock(&m->lock);
    return (uint64_t)ceil(a - 1e-9);
}

double el_fallback_local_share(struct el_fallback *f, const uint64_t *redis_head)
{
    struct el_fallback *m = f;
    pthread_mutex_lock(&m->lock);
    bool open = true;
    for (int l = 0; l < 2; l++) {
        const struct fb_lane *ln = &f->lane[l];
        if (f->active) {
            if (ln->known && ln->h < rel(ln, ln->tail)) open = false;
        } else if (ln->mark && (redis_head == NULL || redis_head[l] < ln->mark)) {
            open = false;
        }
    }
    double share = open ? 1.0 / (double)f->instances : 0;
    pthread_mutex_unlock(&m->lock);
    return share;
}

void el_fallback_skip(struct el_fallback *f, uint64_t skip[2])
{
    struct el_fallback *m = f;
    pthread_mutex_lock(&m->lock);
    for (int l = 0; l < 2; l++) {
        const struct fb_lane *ln = &f->lane[l];
        skip[l] = f->active && ln->known ? ln->head + (uint64_t)floor(EL_MAX(ln->h, 0)) : 0;
    }
    pthread_mutex_unlock(&m->lock);
}

unsigned el_fallback_instances(struct el_fallback *f)
{
    struct el_fallback *m = f;
    pthread_mutex_lock(&m->lock);
    unsigned n = f->instances;
    pthread_mutex_unlock(&m->lock);
    return n;
}
