/* ratelimit.h - per-client join limit: a token bucket per client address
 * (IPv4 address, IPv6 /64), in a fixed-size table.
 *
 * A bucket holds at most per_min tokens and refills per_min tokens a minute;
 * a join takes one. The table is set-associative (EL_RATELIMIT_WAYS entries
 * per set, sets chosen by a keyed hash): memory is fixed at creation, nothing
 * is allocated per call, and a new address takes the free or the longest idle
 * entry of its set. An evicted address starts again with a full bucket, so
 * eviction can only ever let more through, never refuse someone wrongly.
 *
 * Pure: no I/O, no clock (the caller passes now_ms). Thread-safe: one mutex
 * inside; a call is a hash and a scan of one set. */
#ifndef EL_RATELIMIT_H
#define EL_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define EL_RATELIMIT_WAYS 8

struct el_ratelimit;

/* A table of at least nentries entries (rounded up to a power of two sets);
 * seed keys the hash (pass a random number). Never fails. */
struct el_ratelimit *el_ratelimit_new(uint32_t nentries, uint64_t seed);
void el_ratelimit_free(struct el_ratelimit *rl);

/* The key of a client address: IPv4 (or IPv4-mapped IPv6) by address, other
 * IPv6 by /64; *key is set and true returned, or false for other families
 * (unix sockets: not limited). */
bool el_ratelimit_key(const struct sockaddr *sa, uint64_t *key, uint8_t *family);

/* One join by key at now_ms under a limit of per_min a minute (<= 0:
 * unlimited). Returns 0 if allowed (a token was taken), else the seconds
 * until a token is back (>= 1), for Retry-After. */
int el_ratelimit_take(struct el_ratelimit *rl, uint64_t key, uint8_t family, uint64_t now_ms,
                      int per_min);

#endif
