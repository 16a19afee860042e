/* store.h - where the waiting room's state lives, behind one ops table:
 * store_memory.c (one process) and store_redis.c (shared by every instance
 * using the same Redis and room name).
 *
 * The model, the same in both stores. Each lane (0 normal, 1 priority) has a
 * tail (the next ticket number to hand out) and a head (every ticket number
 * below head has been reached). A ticket's number lives in its signed cookie;
 * the store keeps only counters and per-ticket bits:
 *   - liveness (a kept place): two generation bitmaps "cur" and "prev" of
 *     L = keep_place_s seconds each. Join sets the bit in both; a check by a
 *     live ticket sets it in cur; at a generation change prev := cur, cur :=
 *     empty. So cur is a subset of prev, and a ticket is live iff its bit is
 *     set in prev: it came back within the last L..2L seconds. A place is
 *     kept at least keep_place_s since the ticket was last seen, however
 *     seldom it polls, and dropped by 2 x keep_place_s.
 *   - exchange: one bitmap; setting a ticket's bit claims its one pass.
 *   - held admissions: every admission is held for its ticket claim_s (at
 *     most L): a log per lane of (time, head after, admitted), one entry a
 *     second at most. When an entry is claim_s old, its admissions whose
 *     pass was not claimed (exchange bits) return as credits to the meter,
 *     and the claim horizon moves past it: a later check is GONE. A claim
 *     more than 3 x poll_s after the admission was made by a patient who was
 *     away when their turn came: counted as a place kept.
 * position = live tickets in [head, num] (1 = next in). The meter (advance)
 * moves the heads by rate x elapsed time, keeping the fraction, serving the
 * priority lane first and stepping over dead tickets without charging them.
 * A release names the pass it ends: the first release of a pass id adds one
 * admission credit, any later one (a replayed cookie, another instance) none;
 * the id is kept ttl seconds with the store's time of release, so every
 * instance can fetch recent releases and stop admitting that pass.
 * Memory is a few bits per ticket
 * number: 10 million waiting tickets take a few MB, not a sorted set's GB.
 *
 * Threads: a memory store is one object shared by all threads (a mutex
 * inside); a Redis store is made per thread, on that thread's event_base.
 * Callbacks run on the calling thread: the memory store calls back before the
 * op returns; the Redis store from its event loop, always exactly once, with
 * err = -1 when Redis failed or did not answer within the timeout. */
#ifndef EL_STORE_H
#define EL_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "einlass/redis_conn.h"

struct event_base;

enum el_place_state {
    EL_PLACE_WAITING = 0, /* still in line: position is meaningful */
    EL_PLACE_ADMITTED,    /* reached; this call claimed the ticket's one pass */
    EL_PLACE_USED,        /* reached, but its pass was claimed before (copied cookie) */
    EL_PLACE_GONE,        /* abandoned (not seen for too long) or unknown: join again */
};

struct el_place {
    enum el_place_state state;
    uint8_t lane;      /* 0 normal, 1 priority */
    uint64_t num;      /* the ticket number */
    uint32_t epoch;    /* the epoch the ticket belongs to: a join's goes into its cookie */
    uint64_t position; /* WAITING: live tickets ahead + 1, counting the priority lane first */
    uint64_t waiting;  /* live waiting tickets in both lanes */
    double rate;       /* measured admissions per second (0 if not yet known) */
};

struct el_store_stats {
    uint64_t waiting;         /* live waiting tickets, both lanes */
    uint64_t admitted_total;  /* tickets exchanged for passes, all instances */
    double rate;              /* measured admissions per second */
    uint64_t unclaimed_total; /* admissions not claimed within claim_s: returned as credit */
    uint64_t kept_total;      /* admissions claimed later than 3 x poll_s (the patient was away) */
    /* The room's figures per lane, for the fallback (fallback.h): */
    uint64_t head[2];         /* every number below was reached */
    uint64_t tail[2];         /* the next number to hand out */
    uint64_t claim[2];        /* claim horizon: reached tickets below may no longer claim */
    uint64_t lane_waiting[2]; /* live waiting tickets */
    unsigned instances;       /* live instances sharing the room (heartbeats); memory: 1 */
    double frac;              /* the meter's budget fraction (the next admission's progress;
                                 below 0: the debt of cancelled credits) */
};

/* The meter's inputs for one advance, each explicit (none rides on a sign):
 *   - rate: admissions per second (negative, NaN or infinite counts as 0).
 *   - cancel_credits (>= 0): release credits to cancel, for a caller whose
 *     rate already counts the admissions releases make (the control loop's
 *     headroom rate is for all admissions): it comes off the budget (the
 *     fraction + rate x elapsed + release credits); a budget below zero is
 *     a debt carried to the next advances, at most EL_METER_MAX_DEBT
 *     (store_internal.h), and dropped when nobody waits (as the fraction is).
 *   - hold (pause) takes precedence over both: nobody is admitted, release
 *     credits, the fraction (or debt) are kept for later and cancel_credits
 *     is ignored, the meter's clock still moves (no burst on resume), and
 *     held admissions do not expire: a reached ticket can still claim its
 *     pass (while it is live); the first advance without hold expires
 *     whatever is claim_s old by then. */
struct el_meter_in {
    double rate;           /* >= 0 */
    double cancel_credits; /* >= 0 */
    bool hold;             /* admit nobody, keep everything */
};

/* Pre-queues (event.h): arrivals before an event's opening take numbers i
 * = 0, 1, ... in the event's pre-queue; the draw freezes their count n and
 * reserves lane 0 numbers [base, base + n) for them at the tail (all live,
 * as if n tickets joined at once), so whoever joins later queues behind the
 * whole pre-queue; ticket i's place is base + perm(i) (shuffle.h, from the
 * seed the draw kept). The first draw wins: a later one (another instance)
 * gets the same base, n and seed. */
enum el_pre_op {
    EL_PRE_JOIN = 0, /* take the next pre-queue number (once drawn: none, join lane 0) */
    EL_PRE_READ,     /* only report */
    EL_PRE_DRAW,     /* freeze and reserve, unless drawn before */
};

#define EL_PRE_SEED_LEN 32

struct el_pre {
    bool drawn;                     /* base, n and seed are the draw's */
    bool shuffled;                  /* drawn with a seed (else in arrival order) */
    uint64_t i;                     /* JOIN before the draw: the arrival's number */
    uint64_t n;                     /* arrivals so far (frozen by the draw) */
    uint64_t base;                  /* drawn: the first lane 0 number reserved */
    uint64_t head;                  /* lane 0's head: drained once head >= base + n */
    uint8_t seed[EL_PRE_SEED_LEN];  /* drawn and shuffled: the permutation's seed */
};

struct el_store;
typedef void (*el_store_pre_cb)(void *arg, int err, const struct el_pre *p);
typedef void (*el_store_place_cb)(void *arg, int err, const struct el_place *p);
typedef void (*el_store_stats_cb)(void *arg, int err, const struct el_store_stats *st);
/* ids[0..n) released at or after the cursor asked for, oldest first; next is
 * the cursor for the next call (ids and next are meaningless when err). */
typedef void (*el_store_revoked_cb)(void *arg, int err, const uint64_t *ids, size_t n,
                                    uint64_t next);

#define EL_STORE_REVOKED_MAX 1000 /* ids in one revoked answer at most */

struct el_store_ops {
    const char *name; /* "memory" or "redis" */
    /* A new arrival takes lane's next number and is marked live. */
    void (*join)(struct el_store *s, uint8_t lane, uint64_t now_ms, el_store_place_cb cb,
                 void *arg);
    /* A ticket holder is back: mark live; if reached, claim its pass. epoch
     * is the ticket's (0: a ticket from before epochs, taken as the
     * store's). A ticket of another epoch: Redis puts it in the returning
     * lane (ahead of both lanes, in its old number's order, once per
     * ticket); the memory store answers GONE. */
    void (*check)(struct el_store *s, uint8_t lane, uint64_t num, uint32_t epoch, uint64_t now_ms,
                  el_store_place_cb cb, void *arg);
    /* The meter: advance the heads at in->rate per second since the last
     * advance (any instance may call it; the elapsed time is the store's own:
     * Redis TIME, or now_ms for memory), plus the release credits less
     * in->cancel_credits (el_meter_in). Reports stats. */
    void (*advance)(struct el_store *s, const struct el_meter_in *in, uint64_t now_ms,
                    el_store_stats_cb cb, void *arg);
    /* Redis only (NULL in memory): advance after a fallback, first moving
     * each lane's head up to skip[l] (0: not), the tickets the fallback
     * admitted below it being reached (fallback.h). */
    void (*advance_skip)(struct el_store *s, const struct el_meter_in *in, const uint64_t skip[2],
                         el_store_stats_cb cb, void *arg);
    /* A session ended (Einlass-Release) for pass id: the first release of id
     * within ttl_s seconds adds one admission credit, later ones none (in
     * Redis: across every instance). Fire and forget. */
    void (*release)(struct el_store *s, uint64_t id, int ttl_s, uint64_t now_ms);
    /* Pass ids released at or after cursor (the store's time in ms; 0 = all it
     * keeps), at most EL_STORE_REVOKED_MAX, for the room's revocation set.
     * An id may come again in the next answer. The memory store answers
     * none: in one process the room records each release itself. */
    void (*revoked)(struct el_store *s, uint64_t cursor, el_store_revoked_cb cb, void *arg);
    /* The pre-queue of event (its id, event.h): op as above; seed
     * (EL_PRE_SEED_LEN bytes) for a DRAW, NULL to keep arrival order (a
     * cancelled event). A DRAW before not_before_ms (unix ms; 0: none) by
     * the store's clock is not made (the answer says not drawn): Redis
     * TIME, so the instance whose clock runs ahead does not open early for
     * all; the memory store (one instance) leaves that to its caller. */
    void (*pre)(struct el_store *s, uint32_t event, enum el_pre_op op, const uint8_t *seed,
                int64_t not_before_ms, uint64_t now_ms, el_store_pre_cb cb, void *arg);
    void (*free)(struct el_store *s);
};

/* The ops, for einlass_store_errors_total{op} (el_store_errors). */
enum el_store_op {
    EL_STORE_OP_JOIN = 0,
    EL_STORE_OP_CHECK,
    EL_STORE_OP_ADVANCE,
    EL_STORE_OP_RELEASE,
    EL_STORE_OP_REVOKED,
    EL_STORE_OP_PRE,
    EL_STORE_OP_COUNT
};
extern const char *const el_store_op_names[EL_STORE_OP_COUNT]; /* "join", "check", ... */
/* Ops Redis answered with an error (e.g. OOM, ticket numbers at 2^53) or
 * a malformed answer, since start, all threads and stores (the memory store
 * never fails). Each is also logged (rate-limited) and the op calls back
 * err = -1: a join then waits in the local queue, and the next op tries
 * Redis again. Any thread. */
uint64_t el_store_errors(enum el_store_op op);

struct el_store {
    const struct el_store_ops *ops; /* first member: implementations embed this */
};

struct el_store_params {
    const char *room;        /* room name: Redis keys are "einlass:{room}:..." */
    int poll_s;              /* a claim later than 3 * poll_s counts as a place kept */
    int keep_ms;             /* liveness generation L (keep_place_s); 0: 3 * poll_s */
    int claim_ms;            /* an admission is held this long (at most L); 0: L */
    const char *redis;       /* the [room] redis address (redis_conn.h; Redis only) */
    const char *redis_password; /* AUTH password when the address has none; NULL: none */
    int timeout_ms;          /* Redis command and connect timeout */
};

/* Memory store: one per process; thread-safe. */
struct el_store *el_store_memory_new(const struct el_store_params *p);
/* Bytes the memory store's bitmaps hold now (they follow the waiting span:
 * cut below the heads as they move). */
size_t el_store_memory_bitmap_bytes(struct el_store *s);
/* The memory store's epoch (drawn at start, never 0; kept on reload). */
uint32_t el_store_memory_epoch(struct el_store *s);
/* Change poll_s / keep_ms / claim_ms / room on reload, keeping the queue. */
void el_store_memory_configure(struct el_store *s, const struct el_store_params *p);

/* Redis store on base (one per thread). Connects at once (a host name is
 * looked up on base, a sentinel:// address asks the sentinels in turn for
 * the master), sends AUTH, SELECT and PING before anything else, and
 * reconnects with backoff (100 ms doubling to 1 s; 5 s after AUTH was
 * refused) when the link drops or a command answers READONLY (the master
 * is asked for again); while disconnected every op calls back with err = -1
 * at once; it is up only once Redis answered
 * the setup (a stopped Redis whose kernel still accepts connections is not
 * up). State changes are logged once (redis_conn.h). Scripts are loaded with SCRIPT
 * LOAD and called by EVALSHA, falling back to EVAL on NOSCRIPT. */
struct el_store *el_store_redis_new(struct event_base *base, const struct el_store_params *p);
/* True while the link is up, Redis answered on it and no command timed out. */
bool el_store_redis_up(struct el_store *s);
/* The room's epoch in Redis's last answer on this store (0: none yet). */
uint32_t el_store_redis_epoch(struct el_store *s);
/* The link's state, for /metrics (enum el_redis_link, redis_conn.h). */
enum el_redis_link el_store_redis_link(struct el_store *s);
/* True while the first connect is under way (never up yet): ops sent now
 * queue for the link, under the command timeout. */
bool el_store_redis_starting(struct el_store *s);

#endif
