/* server.h - the process: worker threads, signals, the reload swap and the
 * drain. It builds generations with generation.h, and starts the control
 * loop (control_loop.h) and the probe (probe.h) on the main event base.
 *
 * Threads. The main thread owns the config file, signals, the admin API, the
 * probe and the control loop (every 100 ms: latency window -> trigger ->
 * rate -> room meter). The worker threads, the generations they run on and
 * the room state they read are described with their types in worker-t.h. */
#ifndef EL_SERVER_H
#define EL_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event_struct.h>

#include "einlass/generation.h"
#include "einlass/worker-t.h"

struct el_room_shared;
struct el_limiter;
struct el_control_loop;
struct el_probe;

struct el_events;

struct el_server {
    const char *conf_path;        /* -c FILE */
    struct event_base *base;      /* main thread loop */
    _Atomic(struct el_generation *) gen; /* current generation */
    uint32_t next_gen_id;
    int nworkers;
    struct el_worker *workers;
    struct el_rooms rooms;        /* every room by slot: shared parts, the main thread's
                                     handles (meters), the states the gates read */
    struct el_latency *probe_latency; /* samples from the probe (main thread) */
    struct el_limiter *limiter;   /* backend admission limit, shared by the workers */
    struct el_control_loop *control; /* the tick, and the admin API's callbacks */
    void *admin;                  /* struct el_admin */
    struct el_probe *probe;       /* the active latency probe */
    struct event signal_ev[3];    /* HUP, TERM, INT */
    struct event join_ev;         /* while stopping: join finished workers */
    _Atomic bool stopping;        /* SIGTERM seen */
    int exit_code;
};

/* Load the first config and start everything. HUP, TERM and INT are held
 * (blocked) from its first line until their handlers are in place, so one
 * sent while einlass starts is acted on (reload, stop) once the loop runs.
 * Returns 0, or -1 with a message logged. */
int el_server_start(struct el_server *s, const char *conf_path);
/* Run the main loop until stopped and drained; join the workers. Returns
 * the exit code. */
int el_server_run(struct el_server *s);

#endif
