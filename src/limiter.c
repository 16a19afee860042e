/* limiter.c - the backend admission limit shared by all workers.
 *
 * State. One 64-bit atomic word holds the slots in use (low 20 bits,
 * "inflight") and the slots ever handed out above them (granted_total), so
 * that taking a slot is one compare-and-swap and counts it at the same time.
 * nwait counts the nodes in the two lanes; the lanes, seq and nwait's
 * changes are under mu.
 *
 * Invariants:
 *  - inflight only grows by a compare-and-swap that sees inflight < limit
 *    (or limit 0): so inflight <= limit at all times, except after the limit
 *    was lowered, until enough slots are released. A hand-over (a release
 *    while requests wait) passes the slot on without changing inflight.
 *  - Nodes are granted in lane order (priority lane first) and, within a
 *    lane, in arrival order (seq increases from head to tail); only a
 *    fast-path acquire that read nwait == 0 just before a waiter queued can
 *    pass it, by one request, once.
 *  - No wake-up is lost: a waiter increments nwait under mu and then reads
 *    inflight (dispatch); a release first drops inflight and then reads
 *    nwait. Both are sequentially consistent, so at least one of them sees
 *    the other: the waiter takes the freed slot itself, or the release takes
 *    mu and hands it over.
 *  - The normal lane fills at most lane_cap() slots (one fewer than the
 *    limit from EL_LIMITER_RESERVE_FROM on), the priority lane all of them.
 *  - grant() is called under mu, never for the node of the acquire that is
 *    running (that one returns GRANTED instead). */
#include "einlass/limiter.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "einlass/common.h"

#define INFLIGHT_BITS 20
#define INFLIGHT_MASK ((UINT64_C(1) << INFLIGHT_BITS) - 1)
#define ONE_GRANT (UINT64_C(1) << INFLIGHT_BITS)

struct lane {
    struct el_limiter_wait *head, *tail;
};

struct el_limiter {
    _Atomic uint64_t word; /* granted_total << INFLIGHT_BITS | inflight */
    _Atomic int limit;     /* 0 = unlimited */
    _Atomic int nwait;     /* nodes in the lanes (changed under mu) */
    char pad[64];          /* the fast path's line apart from the slow path's */
    pthread_mutex_t mu;
    struct lane lanes[2];  /* enum el_limiter_lane: PRIO first */
    uint64_t seq;          /* next arrival number */
    _Atomic uint64_t queued_total, timeouts_total, wait_us_total;
};

struct el_limiter *el_limiter_new(int limit)
{
    struct el_limiter *l = el_calloc(1, sizeof(*l));
    atomic_init(&l->word, 0);
    atomic_init(&l->limit, limit < 0 ? 0 : limit);
    atomic_init(&l->nwait, 0);
    pthread_mutex_init(&l->mu, NULL);
    return l;
}

void el_limiter_free(struct el_limiter *l)
{
    if (l == NULL) return;
    pthread_mutex_destroy(&l->mu);
    free(l);
}

int el_limiter_limit(const struct el_limiter *l)
{
    return atomic_load_explicit(&l->limit, memory_order_relaxed);
}

/* The slots lane may fill: all of them for the priority lane; for the
 * normal lane all but EL_LIMITER_RESERVED once the limit is big enough to
 * spare it, so a cancellation never waits behind the normal lane's queue
 * nor (with the limit at the database's knee plus one) behind its requests
 * queued at the database. */
static inline int lane_cap(int limit, enum el_limiter_lane lane)
{
    return lane == EL_LIMITER_NORMAL && limit >= EL_LIMITER_RESERVE_FROM ? limit - EL_LIMITER_RESERVED
                                                                         : limit;
}

/* Take one slot for lane if one is free to it. */
static inline bool take(struct el_limiter *l, enum el_limiter_lane lane)
{
    int limit = atomic_load_explicit(&l->limit, memory_order_relaxed);
    if (limit == 0) {
        atomic_fetch_add(&l->word, ONE_GRANT + 1);
        return true;
    }
    uint64_t cap = (uint64_t)lane_cap(limit, lane);
    uint64_t v = atomic_load_explicit(&l->word, memory_order_relaxed);
    while ((v & INFLIGHT_MASK) < cap) {
        if (atomic_compare_exchange_weak(&l->word, &v, v + ONE_GRANT + 1)) return true;
    }
    return false;
}

static void lane_push(struct lane *q, struct el_limiter_wait *wt)
{
    wt->next = NULL;
    wt->prev = q->tail;
    if (q->tail) q->tail->next = wt;
    else q->head = wt;
    q->tail = wt;
}

static void lane_remove(struct lane *q, struct el_limiter_wait *wt)
{
    if (wt->prev) wt->prev->next = wt->next;
    else q->head = wt->next;
    if (wt->next) wt->next->prev = wt->prev;
    else q->tail = wt->prev;
    wt->next = wt->prev = NULL;
}

/* Under mu, nwait > 0: the lane of the queue's head. */
static enum el_limiter_lane head_lane(const struct el_limiter *l)
{
    return l->lanes[EL_LIMITER_PRIO].head ? EL_LIMITER_PRIO : EL_LIMITER_NORMAL;
}

/* Under mu: the head of the queue, taken out of its lane. nwait > 0. */
static struct el_limiter_wait *pop_head(struct el_limiter *l)
{
    struct lane *q = &l->lanes[head_lane(l)];
    struct el_limiter_wait *wt = q->head;
    lane_remove(q, wt);
    wt->queued = false;
    atomic_fetch_sub(&l->nwait, 1);
    return wt;
}

/* Under mu: hand free slots to the queue's head, in order. Returns true if
 * self (queued by the caller) got one; its grant is not called. */
static bool dispatch(struct el_limiter *l, const struct el_limiter_wait *self)
{
    bool got = false;
    while (atomic_load(&l->nwait) > 0 && take(l, head_lane(l))) {
        struct el_limiter_wait *wt = pop_head(l);
        if (wt == self) got = true;
        else wt->grant(wt);
    }
    return got;
}

enum el_limiter_result el_limiter_acquire(struct el_limiter *l, struct el_limiter_wait *wt,
                                          enum el_limiter_lane lane)
{
    if (atomic_load(&l->nwait) == 0 && take(l, lane)) return EL_LIMITER_GRANTED;
    pthread_mutex_lock(&l->mu);
    if (atomic_load(&l->nwait) == 0 && take(l, lane)) {
        pthread_mutex_unlock(&l->mu);
        return EL_LIMITER_GRANTED;
    }
    wt->lane = (uint8_t)lane;
    wt->seq = l->seq++;
    wt->queued = true;
    lane_push(&l->lanes[lane], wt);
    atomic_fetch_add(&l->nwait, 1);
    atomic_fetch_add_explicit(&l->queued_total, 1, memory_order_relaxed);
    bool got = dispatch(l, wt); /* a slot released while we queued */
    pthread_mutex_unlock(&l->mu);
    return got ? EL_LIMITER_GRANTED : EL_LIMITER_QUEUED;
}

void el_limiter_release(struct el_limiter *l)
{
    if (atomic_load(&l->nwait) == 0) {
        atomic_fetch_sub(&l->word, 1);
        if (atomic_load(&l->nwait) == 0) return;
        pthread_mutex_lock(&l->mu); /* a waiter queued meanwhile */
        dispatch(l, NULL);
        pthread_mutex_unlock(&l->mu);
        return;
    }
    pthread_mutex_lock(&l->mu);
    int limit = atomic_load(&l->limit);
    uint64_t inflight = atomic_load(&l->word) & INFLIGHT_MASK;
    if (atomic_load(&l->nwait) > 0 &&
        (limit == 0 || inflight <= (uint64_t)lane_cap(limit, head_lane(l)))) {
        atomic_fetch_add(&l->word, ONE_GRANT); /* hand-over: inflight stays */
        struct el_limiter_wait *wt = pop_head(l);
        wt->grant(wt);
    } else {
        atomic_fetch_sub(&l->word, 1);
    }
    dispatch(l, NULL);
    pthread_mutex_unlock(&l->mu);
}

bool el_limiter_cancel(struct el_limiter *l, struct el_limiter_wait *wt, bool timed_out)
{
    pthread_mutex_lock(&l->mu);
    bool was = wt->queued;
    if (was) {
        lane_remove(&l->lanes[wt->lane], wt);
        wt->queued = false;
        atomic_fetch_sub(&l->nwait, 1);
        if (timed_out) atomic_fetch_add_explicit(&l->timeouts_total, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&l->mu);
    return was;
}

void el_limiter_set_limit(struct el_limiter *l, int limit)
{
    atomic_store(&l->limit, limit < 0 ? 0 : limit);
    pthread_mutex_lock(&l->mu);
    dispatch(l, NULL);
    pthread_mutex_unlock(&l->mu);
}

void el_limiter_waited(struct el_limiter *l, uint64_t us)
{
    atomic_fetch_add_explicit(&l->wait_us_total, us, memory_order_relaxed);
}

int el_limiter_queued(const struct el_limiter *l)
{
    return atomic_load(&((struct el_limiter *)(uintptr_t)l)->nwait); /* atomics only */
}

void el_limiter_stats(const struct el_limiter *l, struct el_limiter_stats *out)
{
    struct el_limiter *m = (struct el_limiter *)(uintptr_t)l; /* atomics only */
    uint64_t v = atomic_load(&m->word);
    out->limit = atomic_load(&m->limit);
    out->inflight = (int)(v & INFLIGHT_MASK);
    out->queued = atomic_load(&m->nwait);
    out->granted_total = v >> INFLIGHT_BITS;
    out->queued_total = atomic_load(&m->queued_total);
    out->timeouts_total = atomic_load(&m->timeouts_total);
    out->wait_us_total = atomic_load(&m->wait_us_total);
}
