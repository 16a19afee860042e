/* sessions.c - the active passes, counted for the admission's fill
 * (sessions.h). Invariant: a take clears every word it read with one
 * exchange, so a mark is counted in exactly one take (one that races with
 * the exchange lands in the next). */
#include "einlass/sessions.h"

#include <math.h>

double el_sessions_estimate(unsigned zero, unsigned m)
{
    if (m == 0) return 0;
    if (zero == 0) zero = 1; /* saturated: the estimate's ceiling, m ln m */
    return -(double)m * log((double)zero / (double)m);
}

void el_sessions_take(struct el_sessions *const *s, size_t n, struct el_sessions_count *out)
{
    uint64_t any[EL_SESSIONS_WORDS] = {0};
    out->reqs = out->claims = 0;
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < EL_SESSIONS_WORDS; k++)
            any[k] |= atomic_exchange_explicit(&s[i]->bits[k], 0, memory_order_relaxed);
        out->reqs += atomic_exchange_explicit(&s[i]->reqs, 0, memory_order_relaxed);
        out->claims += atomic_load_explicit(&s[i]->claims, memory_order_relaxed);
    }
    unsigned zero = 0;
    for (int k = 0; k < EL_SESSIONS_WORDS; k++) zero += 64 - (unsigned)__builtin_popcountll(any[k]);
    out->active = el_sessions_estimate(zero, EL_SESSIONS_WORDS * 64);
}
