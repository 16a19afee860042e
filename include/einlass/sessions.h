/* sessions.h - how many admitted sessions are active, and how many
 * admissions have not come back for their pass yet: what the admission
 * rate's fill needs (docs/controller.md). Each worker owns one el_sessions
 * and marks, per request with a valid pass, the pass id in a small bitmap
 * (one relaxed atomic OR and one add on a line no other worker writes);
 * the control loop takes and clears the bitmaps once a second and counts
 * the distinct ids by linear counting (Whang, Vander-Zanden and Taylor,
 * 1990): n = -m ln(zero bits / m), within a few percent up to about m
 * ids. Written here because it is 30 lines and no Debian library has it. */
#ifndef EL_SESSIONS_H
#define EL_SESSIONS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define EL_SESSIONS_WORDS 128 /* 8192 bits: counts up to about 8000 active passes well */

struct el_sessions {
    _Atomic uint64_t bits[EL_SESSIONS_WORDS]; /* pass ids seen since the last take */
    _Atomic uint64_t reqs;                     /* requests with a pass since the last take */
    _Atomic uint64_t claims;                   /* admissions claimed here, ever */
};

/* A request with the valid pass id (a worker, its own sessions). */
static inline void el_sessions_seen(struct el_sessions *s, uint64_t id)
{
    uint64_t h = id * 0x9e3779b97f4a7c15ull; /* ids are sequential or random: spread them */
    h ^= h >> 29;
    unsigned bit = (unsigned)(h % (EL_SESSIONS_WORDS * 64));
    atomic_fetch_or_explicit(&s->bits[bit / 64], UINT64_C(1) << (bit % 64), memory_order_relaxed);
    atomic_fetch_add_explicit(&s->reqs, 1, memory_order_relaxed);
}

/* A ticket's admission claimed (its pass given) by this worker. */
static inline void el_sessions_claimed(struct el_sessions *s)
{
    atomic_fetch_add_explicit(&s->claims, 1, memory_order_relaxed);
}

struct el_sessions_count {
    double active;   /* distinct passes seen since the last take (estimated) */
    uint64_t reqs;   /* their requests */
    uint64_t claims; /* claims so far, all workers */
};

/* The control loop: take and clear n workers' bitmaps (a pass seen by two
 * workers counts once). */
void el_sessions_take(struct el_sessions *const *s, size_t n, struct el_sessions_count *out);

/* Linear counting: distinct ids from the zero bits among m. Pure. */
double el_sessions_estimate(unsigned zero, unsigned m);

#endif
