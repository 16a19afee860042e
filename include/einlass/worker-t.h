/* worker-t.h - types only: a worker thread, the configuration generation it
 * runs on, and the room state the control loop publishes to the gates.
 * No prototypes: the functions on these types are in server.h and
 * generation.h. Any module may include this header without taking a
 * dependency on the module that runs the threads (server.c).
 *
 * Threads. Each worker thread owns its event_base, a SO_REUSEPORT listener,
 * its client and backend connections and its buffers; workers share nothing
 * but atomics: the current generation pointer, the room state, and the
 * per-worker metric blocks.
 *
 * Generations. A reload that validates builds a new struct el_generation
 * (config, page, listener sockets) and publishes it with one atomic store;
 * each worker adopts it at its next event, and each request keeps the
 * generation it started on until it ends (reference counted). */
#ifndef EL_WORKER_T_H
#define EL_WORKER_T_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <event2/event_struct.h>

#include "einlass/buf.h"
#include "einlass/config.h"

struct el_config;
struct el_page;
struct el_room;
struct el_room_shared;
struct el_gate;
struct el_latency;
struct el_server;
struct el_conn;
struct el_upconn;
struct el_limiter;
struct el_limiter_wait;

struct el_generation {
    _Atomic int refs;             /* workers and requests holding it */
    uint32_t id;                  /* increases with every reload */
    struct el_config *cfg;        /* immutable */
    int listen_fds[64];           /* one SO_REUSEPORT socket per worker */
    bool owns_listeners;          /* this generation opened them (else inherited) */
    struct sockaddr_storage backend; /* parsed backend address */
    unsigned backend_len;
    struct el_page *pages[EL_MAX_ROOMS]; /* the waiting page of cfg->rooms[i] */
    uint8_t room_slot[EL_MAX_ROOMS]; /* the slot of cfg->rooms[i] (struct el_rooms) */
};

/* One room's state: published by the control loop, read by the gates. */
struct el_room_state {
    _Atomic bool queueing;        /* newcomers wait now */
    _Atomic int mode;             /* effective mode (config, or admin override) */
    _Atomic bool paused;          /* POST /pause: the meter holds, newcomers wait */
};

struct el_events;

/* The rooms of the process, by slot. Slot 0 is [room]; a [room NAME] keeps
 * the slot its name got when it first appeared (el_room_slots_map), and a
 * generation's room_slot maps its config's rooms to slots. The main thread
 * fills a slot before it publishes a generation that names it; a slot
 * lives until exit (a reload that drops a room leaves its slot idle). */
struct el_rooms {
    struct el_room_state state[EL_MAX_ROOMS]; /* published by the control loop */
    struct el_room_shared *shared[EL_MAX_ROOMS]; /* the process-wide part of each room */
    struct el_room *main[EL_MAX_ROOMS];   /* the main thread's handles (the meters) */
    char name[EL_MAX_ROOMS][EL_ROOM_NAME_MAX]; /* the [room NAME] of each slot ("" for 0) */
    unsigned nslots;                      /* slots in use (main thread) */
    _Atomic uint32_t open_queue;          /* a request that finds this many waiting for a
                                             backend slot opens the rooms (0 = none does) */
    struct el_events *events[EL_MAX_ROOMS]; /* each slot's scheduled openings (event.h):
                                             made with the slot by the server, kept to exit */
};

struct el_worker {
    int id;                       /* 0..workers-1; index into el_metrics_workers */
    struct el_server *srv;        /* the process */
    struct el_rooms *rooms;       /* the process's rooms and their published states (a
                                     request that must wait for a backend slot sets queueing) */
    struct el_limiter *limiter;   /* the process's backend admission limit (shared) */
    pthread_mutex_t ready_mu;     /* guards ready_head/ready_tail: any thread's release
                                     hands a slot to one of this worker's requests */
    struct el_limiter_wait *ready_head, *ready_tail; /* requests granted a slot, to go on
                                     here (wake_fd is nudged when it becomes non-empty) */
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
    struct el_room *room[EL_MAX_ROOMS]; /* this thread's room handles, by slot (made when a
                                     generation naming the slot is adopted) */
    struct el_latency *latency;   /* backend latency samples (written here only) */
    struct el_buf_pool bufs;      /* free buffers */
    struct el_conn *conns;        /* open client connections (list) */
    struct el_conn *free_conns;   /* recycled connection structs */
    struct el_upconn *idle_up;    /* idle keep-alive backend connections (LIFO) */
    int nidle_up;                 /* length of idle_up */
    struct el_upconn *free_up;    /* recycled backend connection structs */
    event_callback_fn up_event;   /* event callback of every backend socket
                                     (el_conn_upstream_event, set at start) */
    const struct timeval *tv_header, *tv_idle, *tv_response, *tv_connect; /* common timeouts */
    int tv_for_gen;               /* generation id the timeouts were made for */
    bool draining;                /* stop accepting, close idle, exit when empty */
};

#endif
