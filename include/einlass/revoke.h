/* revoke.h - a fixed-size set of released pass ids, each kept until a time.
 *
 * The room keeps one per process so a gate can tell, with no store round
 * trip, that a pass was released (on this instance at once, on others once
 * the room has fetched the store's recent releases); the memory store keeps
 * one so a pass releases (adds an admission credit) once. Set-associative
 * (EL_REVOKE_WAYS entries per set, sets by a keyed hash of the id): memory
 * is fixed at creation and nothing is allocated per call. A full set drops
 * the entry that expires first (that pass would admit again until its own
 * expiry: the set is sized so this needs more than sets x ways releases
 * within one session_s).
 *
 * Pure (the caller passes the time, in whole seconds). Thread-safe:
 * el_revoke_has() reads with atomics and takes no lock, so it may run on
 * every request; el_revoke_add() takes a mutex. */
#ifndef EL_REVOKE_H
#define EL_REVOKE_H

#include <stdbool.h>
#include <stdint.h>

#define EL_REVOKE_WAYS 8

struct el_revoke;

/* A set of at least nentries entries; seed keys the hash. Never fails. */
struct el_revoke *el_revoke_new(uint32_t nentries, uint64_t seed);
void el_revoke_free(struct el_revoke *v);

/* Record id until unix second until. Returns true if id was not in the set
 * (or had expired by now), false if it was (its time is then the later of
 * the two). */
bool el_revoke_add(struct el_revoke *v, uint64_t id, uint32_t until, uint32_t now);

/* True if id is in the set and its time is after now. Lock-free. */
bool el_revoke_has(const struct el_revoke *v, uint64_t id, uint32_t now);

#endif
