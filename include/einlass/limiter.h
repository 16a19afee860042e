/* limiter.h - the backend admission limit: at most `limit` requests in
 * flight to the backend, all workers together, and a FIFO of the requests
 * that wait for a slot (two lanes: priority first). One per process, shared
 * by every worker thread; every function is thread-safe.
 *
 * Fast path (a slot is free and nobody waits): one compare-and-swap on a
 * shared counter; no lock, no allocation, no syscall. Slow path (the limit
 * is reached): the request's own wait node (struct el_limiter_wait, kept in
 * the caller's connection, never allocated here) goes to the tail of its
 * lane under a mutex. A release while requests wait hands its slot directly
 * to the head of the priority lane, else of the normal lane (the count does
 * not drop), and calls that node's grant callback. The limiter reads no
 * clock: the caller stamps and measures waits. */
#ifndef EL_LIMITER_H
#define EL_LIMITER_H

#include <stdbool.h>
#include <stdint.h>

struct el_limiter; /* one per process, shared by all workers */

enum el_limiter_lane {
    EL_LIMITER_PRIO = 0,   /* bypass and priority routes: served first */
    EL_LIMITER_NORMAL = 1, /* everything else */
};

/* From a limit of EL_LIMITER_RESERVE_FROM on, EL_LIMITER_RESERVED of the
 * slots are the priority lane's alone: the normal lane fills the others, so
 * a cancellation finds a slot at once and, with the limit at the knee plus
 * one, no normal request queued at the database ahead of it. */
#define EL_LIMITER_RESERVE_FROM 3
#define EL_LIMITER_RESERVED 1

/* One waiting request: intrusive, inside the caller's struct. The caller
 * sets grant (and whatever it needs around the node) before
 * el_limiter_acquire; the limiter owns next, prev, seq and queued while the
 * node is queued. */
struct el_limiter_wait {
    struct el_limiter_wait *next, *prev; /* the lane while queued; free for the
                                            caller's use once granted */
    uint64_t seq;                        /* arrival order (the limiter's counter) */
    uint64_t t_us;                       /* caller's: when it began to wait */
    /* Called when a slot was handed to this node: under the limiter's lock,
     * from whichever thread released a slot or raised the limit (never from
     * inside the acquire that queued the node). It must be short and must
     * not call into the limiter. */
    void (*grant)(struct el_limiter_wait *wt);
    uint8_t lane;                        /* enum el_limiter_lane */
    bool queued;                         /* in a lane (under the lock) */
};

enum el_limiter_result {
    EL_LIMITER_GRANTED = 0, /* a slot is held: el_limiter_release() once done */
    EL_LIMITER_QUEUED,      /* wt waits; wt->grant() is called when it holds a slot,
                               or el_limiter_cancel() takes it back */
};

/* The limit [backend] max_concurrency asks for: N, 0 (unlimited), or for
 * auto (-1) the starting limit EL_LIMITER_AUTO_START, which the control
 * loop moves from then on (through el_limiter_set_limit only). */
#define EL_LIMITER_AUTO_START 32
static inline int el_limiter_configured(int max_concurrency)
{
    return max_concurrency < 0 ? EL_LIMITER_AUTO_START : max_concurrency;
}

/* A limiter with limit slots (0 = unlimited: every acquire is granted, and
 * only counted). Aborts on out-of-memory. */
struct el_limiter *el_limiter_new(int limit);
/* No request may still hold or wait for a slot. */
void el_limiter_free(struct el_limiter *l);

/* Any thread, any time (the control loop, a reload, the admin API). Takes
 * effect for the next acquire; raising it (or 0) hands the new slots to
 * waiters at once. Lowering it below the slots held takes effect as they
 * are released (none is taken back). */
void el_limiter_set_limit(struct el_limiter *l, int limit);
int el_limiter_limit(const struct el_limiter *l);

/* Take a slot for one request. GRANTED: held now (wt untouched; grant is
 * never called from inside this call). QUEUED: wt went to the tail of lane
 * (wt->grant must be set). */
enum el_limiter_result el_limiter_acquire(struct el_limiter *l, struct el_limiter_wait *wt,
                                          enum el_limiter_lane lane);
/* Give back a slot taken by an acquire (GRANTED, or QUEUED and granted
 * since). If requests wait, the slot goes to the head of the queue. */
void el_limiter_release(struct el_limiter *l);
/* wt gives up waiting (its client went away, or its wait timed out:
 * timed_out counts it in timeouts_total). Returns true if wt was still
 * queued: it is removed and holds nothing. Returns false if a slot was
 * handed to it already (grant was called or is being called under the
 * lock): the caller holds that slot and must use or release it. */
bool el_limiter_cancel(struct el_limiter *l, struct el_limiter_wait *wt, bool timed_out);
/* Requests waiting for a slot now (one atomic load; a QUEUED acquire's own
 * request is counted). */
int el_limiter_queued(const struct el_limiter *l);
/* The caller measured how long a granted request waited (stats only). */
void el_limiter_waited(struct el_limiter *l, uint64_t us);

struct el_limiter_stats {
    int limit;               /* current limit, 0 = unlimited */
    int inflight;            /* requests holding a slot now */
    int queued;              /* requests waiting for a slot now */
    uint64_t granted_total;  /* slots handed out so far */
    uint64_t queued_total;   /* requests that had to wait */
    uint64_t timeouts_total; /* waits that ran past queue_timeout_ms */
    uint64_t wait_us_total;  /* summed wait of granted requests that waited */
};
/* A snapshot (each field read atomically, not all of them together). */
void el_limiter_stats(const struct el_limiter *l, struct el_limiter_stats *out);

#endif
