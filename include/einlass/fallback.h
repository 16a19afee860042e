/* fallback.h - the order of Redis tickets while Redis is unreachable.
 *
 * While Redis answers, every meter run teaches this instance the room's
 * figures (el_fallback_learn): per lane the head (every number below was
 * reached), the tail, the claim horizon and the live waiting count, and the
 * number of live instances (their heartbeats in Redis). When Redis stops
 * answering, the instance needs no Redis to keep the line in order: it runs
 * a virtual head H per lane from the last head learnt, moving it at the
 * configured global rate in ticket-number space, scaled by the live density
 * w / (tail - head) learnt (so abandoned numbers cost nothing), the priority
 * lane first. Every instance computes nearly the same H from the same
 * figures and the same clock rate, so together they admit the Redis
 * tickets in ticket-number order at about the global rate, each admitting
 * only the holders who come to it, however the balancer splits them:
 *   - a Redis ticket with num < H is admitted (its one pass here: a second
 *     check on this instance is USED); num >= H waits, with its position
 *     estimated from H and the density; below the claim horizon learnt it
 *     is GONE (as Redis would say). A replayed ticket takes no place: the
 *     fallback keeps no place per Redis ticket, only the claimed bits.
 *   - newcomers meanwhile join the local queue, behind every Redis ticket:
 *     the local queue is metered (at rate / instances) only once H has
 *     passed every Redis tail learnt, and after Redis returns only once the
 *     Redis head has passed the Redis tail seen at recovery.
 *   - when Redis answers again the first meter run moves the Redis heads up
 *     to H (el_fallback_skip), so the holders admitted during the outage are
 *     not metered twice and nobody who waited before the outage is behind
 *     anyone who joined after it.
 *   - nothing learnt (Redis unreachable since this instance started): the
 *     first Redis ticket seen in a lane starts H there, density 1, and the
 *     instance count is taken as 1 (this instance meters the full rate: with
 *     N instances in that state the site admits up to N x rate).
 * Thread-safe (one mutex); nothing here allocates on the proxied path
 * except the claimed bitmap growing with H, bounded by FB_CLAIMED_MAX_BITS. */
#ifndef EL_FALLBACK_H
#define EL_FALLBACK_H

#include <stdbool.h>
#include <stdint.h>

#include "einlass/store.h"

struct el_fallback;

struct el_fallback *el_fallback_new(void);
void el_fallback_free(struct el_fallback *f);

/* Redis answered a meter run at now_ms with st (head, tail, claim horizon,
 * waiting per lane, instances). Ends an outage: H is reset to the heads. */
void el_fallback_learn(struct el_fallback *f, const struct el_store_stats *st, uint64_t now_ms);
/* Redis is unreachable (an op failed, or the meter saw the link down). */
void el_fallback_begin(struct el_fallback *f, uint64_t now_ms);
/* True from el_fallback_begin until the next el_fallback_learn. */
bool el_fallback_active(const struct el_fallback *f);
/* The check of a Redis ticket while Redis is down (state, position, waiting). */
void el_fallback_check(struct el_fallback *f, uint8_t lane, uint64_t num, uint64_t now_ms,
                       struct el_place *out);
/* Main thread, every tick while active: move H at rate per second. */
void el_fallback_tick(struct el_fallback *f, double rate, uint64_t now_ms);
/* The Redis tickets estimated still ahead of a local newcomer (both lanes). */
uint64_t el_fallback_ahead(struct el_fallback *f);
/* The share of the rate the local queue may use now (0 while Redis tickets
 * are ahead of it; else 1 / instances). redis_head: the Redis heads from the
 * last meter run, or NULL while Redis is down. */
double el_fallback_local_share(struct el_fallback *f, const uint64_t *redis_head);
/* While active: the heads the first meter run after the outage moves the
 * Redis heads up to (skip[l] = 0: leave that lane). */
void el_fallback_skip(struct el_fallback *f, uint64_t skip[2]);
/* Instances learnt (at least 1). */
unsigned el_fallback_instances(struct el_fallback *f);

#endif
