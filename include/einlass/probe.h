/* probe.h - the active latency probe: GET [backend] probe_path every
 * probe_interval_ms on a connection of its own (none when probe_path is
 * empty), each answer's latency added to a window the control loop merges
 * with the workers'. A probe unanswered within response_timeout_ms counts
 * as a sample of that length.
 *
 * Threads: main thread only; the probe runs on the main event base. */
#ifndef EL_PROBE_H
#define EL_PROBE_H

#include <stdatomic.h>

struct event_base;
struct el_generation;
struct el_latency;

struct el_probe;

/* Start probing on base: the first probe in 1 ms. gen: the server's current
 * generation, read at every tick (config, backend address); samples: the
 * window the latencies go to. Both are the caller's and outlive the probe.
 * Never NULL (allocation aborts). */
struct el_probe *el_probe_new(struct event_base *base, _Atomic(struct el_generation *) *gen,
                              struct el_latency *samples);
/* No more probes start (the timer leaves its base); one in flight stays
 * open until el_probe_free. */
void el_probe_stop(struct el_probe *p);
/* Close a probe in flight and free p (NULL is fine). Call el_probe_stop
 * first. */
void el_probe_free(struct el_probe *p);

#endif
