/* room.h - the waiting room over a store: join, check, meter, release, and
 * the local fallback when the Redis store is down.
 *
 * struct el_room_shared is one per process (made by the main thread): the
 * memory store (the room itself with store = memory, the fallback queue with
 * store = redis), the configured parameters, and the figures the admin API
 * reports. struct el_room is one per thread (each worker, and the main
 * thread that runs the meter), holding that thread's Redis store.
 *
 * Fallback: when a Redis op fails, newcomers join the local memory queue
 * (their ticket carries EL_TOKEN_LOCAL) metered at the same rate; local
 * tickets are checked locally until they are served. Never an open door,
 * never a 5xx. The Redis store is used again as soon as its link is up. */
#ifndef EL_ROOM_H
#define EL_ROOM_H

#include <stdbool.h>
#include <stdint.h>

#include "einlass/common.h"
#include "einlass/store.h"

struct event_base;
struct el_config;

struct el_room_answer {
    struct el_place place; /* state, lane, num, position, waiting */
    bool local;            /* the place is in the local fallback queue */
    uint64_t eta_s;        /* estimated seconds until admission (WAITING; eta.h) */
    uint64_t eta_low_s;    /* ... its range: eta_low_s <= eta_s <= eta_high_s */
    uint64_t eta_high_s;
};

typedef void (*el_room_cb)(void *arg, const struct el_room_answer *a);

struct el_room_shared;
struct el_room;

/* How long a place is kept, in seconds: [room] keep_place_s, at least
 * 3 x poll_s, so a patient who polls as told never loses it. */
int el_room_keep_place_s(const struct el_config *cfg);

/* Main thread: the process-wide part, from cfg. */
struct el_room_shared *el_room_shared_new(const struct el_config *cfg);
/* Main thread, on reload: take the new room keys. The queue and its places
 * survive; a changed redis address or room name makes each thread's room
 * reconnect on its next use. */
void el_room_shared_configure(struct el_room_shared *sh, const struct el_config *cfg);
void el_room_shared_free(struct el_room_shared *sh);

/* The rooms of a process by slot (struct el_rooms, worker-t.h). */
struct el_rooms;
/* Main thread: the slot of each of cfg's rooms into slot[i]: rooms[0] gets
 * slot 0, a [room NAME] the slot its name got before, or a new one (its
 * shared part and the main thread's handle on main_base are made here,
 * from the room's view). Returns 0, or -1 with *err (allocated, "FILE:LINE:
 * ...") when the names would need more than EL_MAX_ROOMS slots since the
 * start; nothing is changed then. */
int el_room_slots_map(struct el_rooms *rs, const struct el_config *cfg,
                      struct event_base *main_base, uint8_t *slot, char **err);
/* Main thread, on reload: each of cfg's rooms takes its view's keys
 * (el_room_shared_configure on its slot). */
void el_room_slots_configure(struct el_rooms *rs, const struct el_config *cfg,
                             const uint8_t *slot);
/* Main thread, at exit (after the workers freed their handles): free the
 * main thread's handles, then the shared parts. */
void el_room_slots_free(struct el_rooms *rs);

/* The thread's room on base. */
struct el_room *el_room_new(struct el_room_shared *sh, struct event_base *base);
void el_room_free(struct el_room *r);

/* A newcomer joins lane. cb runs exactly once (maybe before this returns). */
void el_room_join(struct el_room *r, uint8_t lane, el_room_cb cb, void *arg);
/* A ticket holder is back (lane, num, epoch, local from its verified
 * ticket; epoch 0: a ticket from before epochs). */
void el_room_check(struct el_room *r, uint8_t lane, uint64_t num, uint32_t epoch, bool local,
                   el_room_cb cb, void *arg);
/* The pre-queue of an event (store.h's pre op), in the room's store: the
 * memory store with store = memory; Redis with store = redis, or err = -1
 * while Redis cannot be asked (fallback: no pre-queue then, the caller
 * joins the local queue). not_before_ms as in store.h. cb runs exactly once
 * (maybe before this returns). */
void el_room_pre(struct el_room *r, uint32_t event, enum el_pre_op op, const uint8_t *seed,
                 int64_t not_before_ms, el_store_pre_cb cb, void *arg);
/* Einlass-Release seen for the pass with session id: the pass is revoked
 * here at once (el_room_revoked) and in the store, whose first release of id
 * adds one admission credit; a second release of id, here or on any
 * instance sharing the Redis room, adds none. */
void el_room_release(struct el_room *r, uint64_t id);
/* True if the pass with session id was released (here, or on another
 * instance and fetched by a tick since: within about one tick, 100 ms, plus
 * a Redis round trip while Redis is up). Any thread; lock-free, no I/O. */
bool el_room_revoked(const struct el_room *r, uint64_t id, uint64_t now_s);
/* A newcomer wants a place from the client whose el_ratelimit_key() is
 * key, family (family 0: not limited, e.g. a unix socket): 0 if it may join
 * (a join is counted), else the seconds until it may (for Retry-After),
 * under max_joins_per_ip_per_min per IPv4 address or IPv6 /64, one table
 * shared by every thread of this instance. Any thread. */
int el_room_join_allowed(const struct el_room *r, uint64_t key, uint8_t family);

/* Main thread, about every 100 ms: run the meter with in (store.h's
 * el_meter_in: in->rate admissions per second, in->cancel_credits release
 * credits to cancel, in->hold to hold it) on the Redis store, and on the
 * local queue if it holds anyone, and refresh the figures below. A hold
 * (pause) admits nobody and keeps places and release credits. */
void el_room_tick(struct el_room *r, const struct el_meter_in *in);

/* Figures for /status and /metrics; any thread. */
uint64_t el_room_waiting(const struct el_room_shared *sh);
uint64_t el_room_admitted_total(const struct el_room_shared *sh);
/* Passes released on this instance so far (first releases only: each gave
 * the store one admission credit on top of the meter's rate). */
uint64_t el_room_released_total(const struct el_room_shared *sh);
double el_room_measured_rate(const struct el_room_shared *sh);
/* Admissions held claim_s for a reached ticket and not claimed: returned as
 * credit to the next in line. */
uint64_t el_room_unclaimed_total(const struct el_room_shared *sh);
/* Admissions claimed by a patient who was away when their turn came (later
 * than 3 x poll_s after it, within claim_s). */
uint64_t el_room_places_kept_total(const struct el_room_shared *sh);
/* Which store the room uses now. */
enum el_store_state {
    EL_STORE_STATE_MEMORY = 0, /* the embedded store, as configured */
    EL_STORE_STATE_REDIS,      /* Redis, and it answers */
    EL_STORE_STATE_FALLBACK,   /* Redis is configured but down: the embedded store serves */
};
/* Their words in /status, /metrics and logs: "memory", "redis", "fallback". */
extern const struct el_word el_store_state_words[];
const char *el_store_state_name(enum el_store_state s);
enum el_store_state el_room_store_state(const struct el_room_shared *sh);
/* The state for einlass_store_state: "memory", "redis", or, while in
 * fallback, why: "auth_failed" (AUTH refused), "down" (not connected) or
 * "fallback" (connected but not usable, or connecting). Any thread. */
const char *el_room_store_detail(const struct el_room_shared *sh);
/* Seconds spent in fallback while store = redis, since start. Any thread. */
double el_room_fallback_s(const struct el_room_shared *sh);

/* Pure helper: seconds until a place at position is reached at rate per
 * second (rounded up; rate <= 0 uses fallback_rate; at most EL_ETA_CAP_S).
 * The room's answers use el_eta_estimate (eta.h) with both paces. */
uint64_t el_room_eta(uint64_t position, double rate, double fallback_rate);

#endif
