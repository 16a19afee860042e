/* ratelimit.c - token buckets per client address (ratelimit.h).
 *
 * Invariants: an entry with family 0 is free; tokens <= per_min of the call
 * that last touched it (a lower limit after a reload clamps on the next
 * call); last_ms never moves backwards, and time not yet worth a
 * milli-token stays owed (last_ms moves only by what was turned into
 * tokens), so frequent calls do not lose the refill to rounding. */
#include "einlass/ratelimit.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "einlass/common.h"

struct entry {
    uint64_t key;     /* IPv4 address or IPv6 /64 prefix */
    uint64_t last_ms; /* when tokens was last brought up to date */
    uint32_t milli;   /* tokens x 1000 */
    uint8_t family;   /* AF_INET or AF_INET6; 0 = free */
};

struct el_ratelimit {
    pthread_mutex_t lock; /* guards the entries */
    uint64_t seed;        /* keys the set hash */
    uint32_t mask;        /* number of sets - 1 */
    struct entry *e;      /* (mask + 1) x EL_RATELIMIT_WAYS entries */
};

struct el_ratelimit *el_ratelimit_new(uint32_t nentries, uint64_t seed)
{
    struct el_ratelimit *rl = el_calloc(1, sizeof(*rl));
    uint32_t sets = 1;
    while (sets * EL_RATELIMIT_WAYS < nentries && sets < (1u << 24)) sets <<= 1;
    rl->mask = sets - 1;
    rl->seed = seed;
    rl->e = el_calloc((size_t)sets * EL_RATELIMIT_WAYS, sizeof(struct entry));
    pthread_mutex_init(&rl->lock, NULL);
    return rl;
}

void el_ratelimit_free(struct el_ratelimit *rl)
{
    if (rl == NULL) return;
    pthread_mutex_destroy(&rl->lock);
    free(rl->e);
    free(rl);
}

bool el_ratelimit_key(const struct sockaddr *sa, uint64_t *key, uint8_t *family)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        *key = ntohl(in->sin_addr.s_addr);
        *family = AF_INET;
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(b, mapped, 12) == 0) {
            *key = (uint64_t)b[12] << 24 | (uint64_t)b[13] << 16 | (uint64_t)b[14] << 8 | b[15];
            *family = AF_INET;
            return true;
        }
        uint64_t k = 0;
        for (int i = 0; i < 8; i++) k = k << 8 | b[i];
        *key = k;
        *family = AF_INET6;
        return true;
    }
    return false;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* x's milli-tokens at now_ms, without changing it. */
static uint64_t fill(const struct entry *x, uint64_t now_ms, int per_min, uint64_t cap)
{
    uint64_t add = now_ms > x->last_ms ? (now_ms - x->last_ms) * (uint64_t)per_min / 60 : 0;
    return EL_MIN((uint64_t)x->milli + add, cap);
}

int el_ratelimit_take(struct el_ratelimit *rl, uint64_t key, uint8_t family, uint64_t now_ms,
                      int per_min)
{
    if (per_min <= 0) return 0;
    uint64_t cap = (uint64_t)per_min * 1000; /* milli-tokens */
    uint64_t h = mix(key ^ rl->seed ^ ((uint64_t)family << 56));
    struct entry *set = rl->e + (size_t)(h & rl->mask) * EL_RATELIMIT_WAYS;
    int wait_s = 0;
    pthread_mutex_lock(&rl->lock);
    struct entry *hit = NULL, *victim = NULL;
    uint64_t victim_milli = 0;
    for (int i = 0; i < EL_RATELIMIT_WAYS; i++) {
        struct entry *x = &set[i];
        if (x->family == family && x->key == key) {
            hit = x;
            break;
        }
        /* the free entry, else the fullest bucket: forgetting it costs least
         * (a full one is as good as free), and empty ones, the flooders, stay */
        uint64_t m = x->family == 0 ? UINT64_MAX : fill(x, now_ms, per_min, cap);
        if (victim == NULL || m > victim_milli) {
            victim = x;
            victim_milli = m;
        }
    }
    if (hit == NULL) {
        hit = victim;
        *hit = (struct entry){.key = key, .family = family, .last_ms = now_ms,
                              .milli = (uint32_t)EL_MIN(cap, UINT32_MAX)};
    } else if (now_ms > hit->last_ms) {
        /* refill: per_min tokens a minute = per_min milli-tokens a 60 ms */
        uint64_t add = (now_ms - hit->last_ms) * (uint64_t)per_min / 60;
        if (add > 0) { /* the time not yet worth a milli-token stays owed */
            uint64_t m = EL_MIN((uint64_t)hit->milli + add, cap);
            hit->milli = (uint32_t)m;
            hit->last_ms = m == cap ? now_ms : hit->last_ms + add * 60 / (uint64_t)per_min;
        }
    }
    if (hit->milli > cap) hit->milli = (uint32_t)EL_MIN(cap, UINT32_MAX);
    if (hit->milli >= 1000) {
        hit->milli -= 1000;
    } else {
        /* ms until 1000 milli-tokens: (1000 - milli) x 60 / per_min */
        uint64_t ms = ((uint64_t)(1000 - hit->milli) * 60 + (uint64_t)per_min - 1) / (uint64_t)per_min;
        wait_s = (int)EL_MAX(1, (ms + 999) / 1000);
    }
    pthread_mutex_unlock(&rl->lock);
    return wait_s;
}
