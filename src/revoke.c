/* revoke.c - released pass ids with an expiry (revoke.h).
 *
 * Invariants: a slot is empty or expired when until <= now; an occupied
 * slot's id never changes while until is in the future except under the
 * mutex, which also orders every writer. A writer publishes a slot as
 * until := 0, id := new, until := new time, so a lock-free reader that sees
 * a live time with a matching id saw a slot written for that id (a reader
 * racing a replacement may miss one revocation for one request: the next
 * request sees it). */
#include "einlass/revoke.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "einlass/common.h"

struct slot {
    _Atomic uint64_t id;    /* the pass id */
    _Atomic uint32_t until; /* unix seconds; 0 = empty */
};

struct el_revoke {
    pthread_mutex_t lock; /* orders writers */
    uint64_t seed;        /* keys the set hash */
    uint32_t mask;        /* number of sets - 1 */
    struct slot *s;       /* (mask + 1) x EL_REVOKE_WAYS slots */
    uint64_t dropped;     /* live entries replaced by a full set (under lock) */
};

struct el_revoke *el_revoke_new(uint32_t nentries, uint64_t seed)
{
    struct el_revoke *v = el_calloc(1, sizeof(*v));
    uint32_t sets = 1;
    while (sets * EL_REVOKE_WAYS < nentries && sets < (1u << 24)) sets <<= 1;
    v->mask = sets - 1;
    v->seed = seed;
    v->s = el_calloc((size_t)sets * EL_REVOKE_WAYS, sizeof(struct slot));
    pthread_mutex_init(&v->lock, NULL);
    return v;
}

void el_revoke_free(struct el_revoke *v)
{
    if (v == NULL) return;
    pthread_mutex_destroy(&v->lock);
    free(v->s);
    free(v);
}

static struct slot *set_of(const struct el_revoke *v, uint64_t id)
{
    uint64_t x = id ^ v->seed;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return v->s + (size_t)(x & v->mask) * EL_REVOKE_WAYS;
}

bool el_revoke_has(const struct el_revoke *v, uint64_t id, uint32_t now)
{
    struct slot *set = set_of(v, id);
    for (int i = 0; i < EL_REVOKE_WAYS; i++) {
        uint32_t until = atomic_load_explicit(&set[i].until, memory_order_acquire);
        if (until > now && atomic_load_explicit(&set[i].id, memory_order_acquire) == id &&
            atomic_load_explicit(&set[i].until, memory_order_acquire) > now)
            return true;
    }
    return false;
}

bool el_revoke_add(struct el_revoke *v, uint64_t id, uint32_t until, uint32_t now)
{
    struct slot *set = set_of(v, id);
    bool fresh = true;
    pthread_mutex_lock(&v->lock);
    struct slot *victim = NULL;
    uint32_t victim_until = 0;
    for (int i = 0; i < EL_REVOKE_WAYS; i++) {
        struct slot *x = &set[i];
        uint32_t u = atomic_load_explicit(&x->until, memory_order_relaxed);
        if (u > now && atomic_load_explicit(&x->id, memory_order_relaxed) == id) {
            if (until > u) atomic_store_explicit(&x->until, until, memory_order_release);
            fresh = false;
            goto out;
        }
        if (u <= now) u = 0; /* expired: as good as empty */
        if (victim == NULL || u < victim_until) {
            victim = x;
            victim_until = u;
        }
    }
    if (victim_until != 0) {
        uint64_t d = ++v->dropped;
        if ((d & (d - 1)) == 0) /* the 1st, 2nd, 4th, ... time */
            el_warn("revoke: the released-pass set is full; %llu releases dropped out early",
                    (unsigned long long)d);
    }
    atomic_store_explicit(&victim->until, 0, memory_order_release);
    atomic_store_explicit(&victim->id, id, memory_order_release);
    atomic_store_explicit(&victim->until, until, memory_order_release);
out:
    pthread_mutex_unlock(&v->lock);
    return fresh;
}
