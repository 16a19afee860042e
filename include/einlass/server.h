/* server.h - the process: worker threads, listeners, the configuration
 * generation they run on, the main control loop, reload and drain.
 *
 * Threads. The main thread owns the config file, signals, the admin API, the
 * probe and the control loop (every 100 ms: latency window -> trigger ->
 * rate -> room meter). Each worker thread owns an event_base, a SO_REUSEPORT
 * listener, its client and backend connections and its buffers; workers
 * share nothing but atomics: the current generation pointer, the room state
 * published by the control loop, and the per-worker metric blocks.
 *
 * Generations. A reload that validates builds a new struct el_generation
 * (config, page, listener sockets) and publishes it with one atomic store;
 * each worker adopts it at its next event, and each request keeps the
 * generation it started on until it ends (reference counted). */
#ifndef EL_SERVER_H
#define EL_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "einlass/buf.h"

struct el_config;
struct el_page;
struct el_room;
struct el_room_shared;
struct el_gate;
struct el_latency;
struct el_conn;
struct el_upconn;

struct el_generation {
    _Atomic int refs;             /* workers and requests holding it */
    uint32_t id;                  /* increases with every reload */
    struct el_config *cfg;        /* immutable */
    struct el_page *page;         /* waiting page template */
    int listen_fds[64];           /* one SO_REUSEPORT socket per worker */
    bool owns_listeners;          /* this generation opened them (else inherited) */
    struct sockaddr_storage backend; /* parsed backend address */
    unsigned backend_len;
};

void el_generation_hold(struct el_generation *g);
void el_generation_drop(struct el_generation *g);

struct el_worker {
    int id;                       /* 0..workers-1; index into el_metrics_workers */
    struct el_server *srv;        /* the process */
    struct event_base *base;      /* this thread's loop */
    pthread_t thread;
    bool joined;                  /* the main thread has joined it */
    struct el_generation *gen;    /* generation new requests use */
    int listen_fd;                /* -1 when not accepting */
    struct event listen_ev;       /* EV_READ|EV_PERSIST on listen_fd */
    int wake_fd;                  /* eventfd: the main thread's nudge */
    struct event wake_ev;
    struct event drain_ev;        /* while draining: close idle connections, exit when none */
    struct el_gate *gate;         /* per-request decisions */
    struct el_room *room;         /* this thread's room handle */
    struct el_latency *latency;   /* backend latency samples (written here only) */
    struct el_buf_pool bufs;      /* free buffers */
    struct el_conn *conns;        /* open client connections (list) */
    struct el_conn *free_conns;   /* recycled connection structs */
    struct el_upconn *idle_up;    /* idle keep-alive backend connections (LIFO) */
    int nidle_up;                 /* length of idle_up */
    struct el_upconn *free_up;    /* recycled backend connection structs */
    const struct timeval *tv_header, *tv_idle, *tv_response, *tv_connect; /* common timeouts */
    int tv_for_gen;               /* generation id the timeouts were made for */
    bool draining;                /* stop accepting, close idle, exit when empty */
};

/* Shared, published by the control loop, read by the gates. */
struct el_room_state {
    _Atomic bool queueing;        /* newcomers wait now */
    _Atomic int mode;             /* effective mode (config, or admin override) */
};

struct el_server {
    const char *conf_path;        /* -c FILE */
    struct event_base *base;      /* main thread loop */
    _Atomic(struct el_generation *) gen; /* current generation */
    uint32_t next_gen_id;
    int nworkers;
    struct el_worker *workers;
    struct el_room_shared *room_shared;
    struct el_room *room;         /* the main thread's room (meter) */
    struct el_latency *probe_latency; /* samples from the probe (main thread) */
    struct el_room_state state;
    void *control;                /* control loop state (server.c) */
    void *admin;                  /* struct el_admin */
    void *probe;                  /* probe state (server.c) */
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
