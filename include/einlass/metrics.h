/* metrics.h - counters, gauges and the backend latency histogram, and their
 * Prometheus text form.
 *
 * Hot-path counters are per worker (struct el_metrics_worker, one cache line
 * block each, written only by its worker with relaxed atomics) and summed when
 * /metrics is read, so workers never contend on a shared line. */
#ifndef EL_METRICS_H
#define EL_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "einlass/common.h"
#include "einlass/config.h"
#include "einlass/limiter.h"
#include "einlass/store.h"

/* The main thread's block (the probe's samples): never a worker's id, since
 * workers are capped one below it (EL_WORKERS_MAX). */
#define EL_METRICS_MAIN EL_WORKERS_MAX

enum el_decision {
    EL_DECISION_FORWARD = 0, /* proxied (with or without a pass) */
    EL_DECISION_WAIT,        /* answered by the room: wait */
    EL_DECISION_BYPASS,      /* proxied on a bypass route or network */
    EL_DECISION_REJECT,      /* answered 403 by a reject route */
    EL_DECISION_ERROR,       /* answered 4xx/5xx by einlass (bad request, backend down) */
    EL_DECISION__COUNT
};

/* Upper bounds (seconds) of the einlass_backend_latency_seconds buckets. */
#define EL_LATENCY_BUCKETS 14
extern const double el_latency_bucket_le[EL_LATENCY_BUCKETS];

struct el_metrics_worker {
    _Atomic uint64_t requests[EL_DECISION__COUNT];   /* by decision */
    _Atomic uint64_t latency_bucket[EL_LATENCY_BUCKETS + 1]; /* last is +Inf */
    _Atomic uint64_t latency_sum_us;                 /* sum of samples, microseconds */
    _Atomic int64_t inflight;                        /* backend requests in flight */
    _Atomic uint64_t connections;                    /* client connections open */
    _Atomic uint64_t joins_refused;                  /* joins over max_joins_per_ip_per_min */
    _Atomic uint64_t queue_wait_bucket[EL_LATENCY_BUCKETS + 1]; /* waits for a backend slot */
    _Atomic uint64_t queue_wait_sum_us;              /* their sum, microseconds */
    _Atomic int64_t tunnels;                         /* WebSocket tunnels open */
    _Atomic uint64_t tunnels_total;                  /* WebSocket tunnels opened */
} __attribute__((aligned(64)));

extern struct el_metrics_worker el_metrics_workers[EL_MAX_WORKERS];

/* Process-wide, written by the main thread. */
struct el_metrics_global {
    _Atomic uint64_t reloads_ok;
    _Atomic uint64_t reloads_failed;
    _Atomic uint64_t room_state_changes; /* queueing on/off transitions */
};
extern struct el_metrics_global el_metrics_global;

static inline void el_metrics_count(int worker, enum el_decision d)
{
    atomic_fetch_add_explicit(&el_metrics_workers[worker].requests[d], 1, memory_order_relaxed);
}

/* The words of the decisions (labels, access log): "forward", "wait",
 * "bypass", "reject", "error". */
extern const struct el_word el_decision_words[];
/* The label of a decision; NULL for a value outside the enum. */
const char *el_decision_name(enum el_decision d);

/* Record one backend latency sample (milliseconds) for worker. */
void el_metrics_observe(int worker, double ms);

/* Record how long one request waited for a backend slot (microseconds). */
void el_metrics_observe_queue_wait(int worker, uint64_t us);

/* Sum of inflight over all workers. */
int64_t el_metrics_inflight(void);

/* What the main loop knows that the counters do not: for /status and /metrics. */
struct el_events;

/* One room's figures (the label room="NAME" in /metrics, "rooms" in /status). */
struct el_room_status {
    const char *name;        /* [room]'s name, or NAME of [room NAME] (the config's) */
    int mode;                /* enum el_mode in effect */
    bool queueing;           /* it queues newcomers now */
    bool paused;             /* POST /pause: nobody new is admitted */
    uint64_t waiting;        /* live waiting tickets */
    uint64_t admitted_total; /* tickets exchanged for passes */
    uint64_t unclaimed_total; /* held admissions not claimed within claim_s: given on */
    uint64_t places_kept_total; /* admissions claimed by a patient who was away at their turn */
    double admit_per_s;      /* its metering rate */
    const char *store;       /* el_store_state_name() of its store */
};

struct el_status {
    struct el_events *const *events; /* scheduled openings by room slot
                                        (einlass_event_prequeue), or NULL */
    unsigned nevents;         /* slots in events */
    int mode;                /* enum el_mode of [room] */
    bool queueing;           /* a room queues newcomers now */
    uint64_t waiting;        /* live waiting tickets, every room's */
    uint64_t admitted_total; /* tickets exchanged for passes, every room's */
    uint64_t unclaimed_total; /* held admissions not claimed within claim_s: given on */
    uint64_t places_kept_total; /* admissions claimed by a patient who was away at their turn */
    double admit_per_s;      /* metering rate, the rooms' (not off) summed */
    struct el_room_status rooms[EL_MAX_ROOMS]; /* each room, in the config's order */
    size_t nrooms;           /* 0: none known (the figures above stand for the one room) */
    double p50_ms, p95_ms, p99_ms; /* window percentiles */
    uint64_t samples;        /* samples in the window */
    int64_t inflight;        /* backend requests in flight */
    const char *store;       /* el_store_state_name(): "memory" | "redis" | "fallback" */
    bool store_up;           /* the configured store answers */
    const char *store_state; /* el_room_store_detail(): "memory" | "redis" | "fallback" |
                                "auth_failed" | "down"; NULL = store */
    double store_fallback_s; /* seconds in fallback since start */
    uint64_t store_errors[EL_STORE_OP_COUNT]; /* Redis ops answered with an error, per op */
    struct el_limiter_stats backend; /* the backend admission limit and its queue */
    bool paused;             /* POST /pause on a room: nobody new is admitted there */
    bool draining;           /* SIGTERM seen: finishing what is in flight */
};

struct evbuffer;
/* Append the Prometheus text exposition (format 0.0.4) of all metrics to
 * out: the per-worker counters summed, plus what st says (st may be NULL:
 * then the status gauges read as zero/"memory"). Main thread; allocates. */
void el_metrics_render(struct evbuffer *out, const struct el_status *st);

/* Format v into buf (at least EL_METRICS_NUM_LEN bytes) without locale
 * effects: integral values as integers, others in the shortest %g form that
 * reads back to the same double, NaN as "NaN", infinities as "+Inf"/"-Inf".
 * Returns buf. Any thread; no allocation. */
#define EL_METRICS_NUM_LEN 32
char *el_metrics_fmt_num(char *buf, double v);

#endif
