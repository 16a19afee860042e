/* control_loop.h - the main thread's tick (every 100 ms): merge the latency
 * windows, run the trigger, steer the admission rate, publish the room
 * state to the gates, meter the room; and the admin API's callbacks
 * (status, mode and rate overrides) that read and steer it.
 *
 * Threads: every function here, the tick and the callbacks run on the main
 * thread only. The loop writes struct el_room_state (worker-t.h); the
 * workers only read it. */
#ifndef EL_CONTROL_LOOP_H
#define EL_CONTROL_LOOP_H

#include <stdatomic.h>
#include <stddef.h>

struct event_base;
struct el_admin_ops;
struct el_config;
struct el_generation;
struct el_latency;
struct el_rooms;
struct el_limiter;

struct el_control_loop;

/* What the loop reads and writes, all owned by the caller and outliving
 * the loop. */
struct el_control_inputs {
    _Atomic(struct el_generation *) *gen; /* the current generation (its config) */
    struct el_latency *const *windows;    /* the workers' windows, then the probe's (last) */
    size_t nwindows;                      /* length of windows (copied at start) */
    struct el_rooms *rooms;               /* every room by slot: figures, the main thread's
                                             handles (meters), the states the loop publishes,
                                             the events (a pre-queue holds its room) */
    struct el_limiter *limiter;           /* the backend admission limit (its queue) */
    struct el_sessions *const *sessions;  /* the workers' pass counts (copied at start) */
    size_t nsessions;                     /* length of sessions */
};

/* The admin API's callbacks; their ctx is the struct el_control_loop. An
 * override (mode, rate) lasts until the next reload and takes effect with
 * a tick run at once. */
extern const struct el_admin_ops el_control_loop_admin_ops;

/* A loop in cfg's initial state (mode and rate from cfg, no override),
 * not yet ticking. Never NULL (allocation aborts). */
struct el_control_loop *el_control_loop_new(const struct el_config *cfg);
/* Take the inputs (in->windows and in->sessions are copied, the rest kept as pointers) and
 * tick every 100 ms on base from now on. Call once, before base runs the
 * admin API's callbacks. */
void el_control_loop_start(struct el_control_loop *ct, struct event_base *base,
                           const struct el_control_inputs *in);
/* A reload from oc to nc validated: clear the admin overrides, and restart
 * the rate controller if a rate key changed. Call before publishing nc's
 * generation; tick once after it. */
void el_control_loop_reload(struct el_control_loop *ct, const struct el_config *oc,
                            const struct el_config *nc);
/* One tick now, outside the period (after a reload). */
void el_control_loop_tick(struct el_control_loop *ct);
/* No more ticks (the timer leaves its base). */
void el_control_loop_stop(struct el_control_loop *ct);
/* Free ct (NULL is fine); stopped first if it was started. */
void el_control_loop_free(struct el_control_loop *ct);

/* The adaptive limit's current value (max_concurrency = auto), for the
 * server to hand to the limiter after a reload. */
int el_control_loop_limit(const struct el_control_loop *ct);

#endif
