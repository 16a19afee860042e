/* gate.h - the per-request decision: route, pass, room -> forward, wait,
 * bypass or reject, and the cookies that go with it. One struct el_gate per
 * worker; no module below the gate knows about connections, and the gate
 * knows nothing of workers or the server: it is given the worker's room and
 * generation (config, page) and, per decision, the effective mode, whether
 * the room queues and the time (struct el_gate_input).
 *
 * First the request's room: the first [room NAME] whose host and path match
 * (el_route_room), else [room]; /_einlass/status belongs to the room named
 * by ?room=NAME, else to the first room of its host whose ticket, then pass,
 * it carries. Every rule below uses that room's state, page, status code,
 * cookies (einlass_ticket_NAME, einlass_pass_NAME) and token keys.
 *
 * Order of rules: /_einlass/health answers 200 {"state":"ok",...} at once
 * (never forwarded, never joins: for load balancers); /_einlass/status is
 * answered here, never forwarded, and without a ticket while the room queues
 * answers {"state":"queueing"} and takes no place; mode
 * off forwards with no cookies; a bypass route or network forwards; a valid
 * pass forwards (its expiry slides); a reject route answers 403; while the
 * room does not queue, the request is forwarded and its response gets a pass;
 * while it queues (always while paused, unless the mode is off), a newcomer joins, a ticket holder asks for its place and,
 * once reached, is forwarded with a pass. Passes are checked locally: pass
 * holders never cost a store round trip (a released pass is known from the
 * room's local revocation set and counts as none). A join (a newcomer, or a
 * ticket that is gone or used) is limited per client address
 * (max_joins_per_ip_per_min): over it, 429 with Retry-After and no place. */
#ifndef EL_GATE_H
#define EL_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "einlass/metrics.h"
#include "einlass/room.h"
#include "einlass/worker-t.h"

struct el_config;
struct el_events;
struct el_http_msg;
struct el_page;
struct el_sessions;

#define EL_COOKIE_MAX 192 /* one Set-Cookie value */

/* The gate's part of one request, kept inside the connection. */
struct el_gate_ctx {
    enum el_decision decision; /* what to do */
    bool forward;              /* proxy it (FORWARD, BYPASS) or answer here */
    bool had_pass;             /* the request carried a valid pass (not released) */
    bool releasable;           /* Einlass-Release may end pass_id: carried, or from a ticket */
    uint64_t pass_id;          /* session id of that pass */
    bool secure;               /* cookies get the Secure attribute */
    uint8_t lane;              /* room lane for a join */
    bool had_ticket;           /* the request carried a valid ticket (journal lines name it) */
    uint8_t ticket_lane;       /* ... its lane */
    uint64_t ticket;           /* ... and place number */
    char cookie[EL_COOKIE_MAX]; /* Set-Cookie value to send, "" for none */
    /* local answer (forward == false), valid only inside the done callback */
    int status;                /* e.g. 503, 403, 200 */
    const char *ctype;         /* Content-Type */
    const char *body;          /* body bytes (the gate's scratch) */
    size_t body_len;
    int retry_after;           /* > 0: Retry-After header */
    /* private, for the asynchronous room answer */
    struct el_gate *gate;
    uint8_t room;              /* the request's room: its index in the config's rooms */
    uint8_t slot;              /* ... its slot (struct el_rooms) */
    const struct el_room_def *rdef; /* ... its definition (the request's generation) */
    struct el_room *rm;        /* ... the worker's handle of it */
    const struct el_page *page; /* ... its waiting page */
    bool status_path;          /* the request was /_einlass/status */
    bool paused;               /* el_gate_input.paused (and the mode is not off) */
    bool html;                 /* the client wants the HTML page */
    uint8_t lang;              /* enum el_lang */
    uint16_t back_len;         /* bytes in back; 0: the language links go to "/" */
    char back[256];            /* the waiter's path and query: the language links' way back */
    bool in_decide;            /* inside el_gate_decide(): answers are synchronous */
    bool completed;            /* the decision is made */
    bool joined;               /* this request joined the room (once at most) */
    bool converted;            /* a pre-queue ticket asked for its drawn place: the
                                  answer's place gets a plain ticket */
    uint32_t event;            /* the event whose pre-queue this request joined or asks
                                  about (0: none) */
    struct el_events *events;  /* el_gate_input.events */
    uint64_t now;              /* unix seconds of the decision (el_gate_input.now) */
    uint64_t peer_key;         /* the client's join-limit key (el_ratelimit_key) */
    uint8_t peer_family;       /* ... its family; 0 = not limited */
    void (*done)(void *arg);
    void *arg;
    /* in: set by the connection before el_gate_decide (which leaves it alone) */
    bool proxied;              /* the socket peer is on this host or a trusted proxy:
                                  its X-Forwarded-Proto counts */
};

/* What one decision reads besides the request, filled by the caller: a
 * snapshot of the shared room state (two relaxed loads) and the clock. */
struct el_gate_input {
    const struct el_room_state *states; /* each slot's published state (worker-t.h): the
                                   mode in effect, queueing, paused; the gate reads the
                                   request's room's with relaxed loads */
    uint64_t now;  /* unix seconds: verifies tokens and stamps the ones issued */
    struct el_events *const *events; /* scheduled openings by room slot (event.h), or NULL */
};

struct el_gate;

/* The gate of worker worker_id (its index into el_metrics_workers) over
 * room, the worker's room handle (which must outlive the gate). Before the
 * first decision, el_gate_set_generation(). */
struct el_gate *el_gate_new(int worker_id, struct el_room *const *rooms);
/* The gate's count of passes seen and admissions claimed (sessions.h), for
 * the control loop to take once a second. */
struct el_sessions *el_gate_sessions(struct el_gate *g);
void el_gate_free(struct el_gate *g);

/* The worker adopted generation gen_id: decisions from now on (and room
 * answers still owed) use cfg and page, which must stay valid until the next
 * call or el_gate_free(). The token keys are made anew, on the next decision
 * that needs them, when gen_id differs from the last one's. */
void el_gate_set_generation(struct el_gate *g, const struct el_config *cfg,
                            struct el_page *const *pages, const uint8_t *room_slot,
                            uint32_t gen_id);

/* Decide for req from peer: the client's address (the socket peer, or the
 * client a trusted proxy names; see proxy.h), for bypass_from and the room,
 * given in (read during the call only). Returns 1 if decided now (ctx
 * filled, done is not called), 0 if done(arg) will be called later from the
 * event loop (then ctx and the request head must stay valid until it is;
 * tokens issued then are stamped with in->now too). */
int el_gate_decide(struct el_gate *g, struct el_gate_ctx *ctx, const struct el_http_msg *req,
                   const struct sockaddr *peer, const struct el_gate_input *in,
                   void (*done)(void *arg), void *arg);

/* A forwarded request waited queue_timeout_ms for a backend slot: fill
 * ctx's local answer (status 503, Retry-After poll_s): the waiting page or
 * JSON at position for a GET or HEAD (the language and format the request
 * asks for), a short text reason for anything else. The body is the gate's
 * scratch, valid until its next decision. ctx's decision becomes WAIT; its
 * cookie (a pass the gate gave) stays for the caller to send. */
void el_gate_busy(struct el_gate *g, struct el_gate_ctx *ctx, const struct el_http_msg *req,
                  uint64_t position);

/* The backend answered resp to a forwarded request: returns the Set-Cookie
 * value to add ("" for none). An "Einlass-Release: 1" ends the session: the
 * pass is cleared, and a pass the request carried (or got from its ticket
 * just now) is released in the room: revoked on every instance, and one
 * admission credit the first time only. A pass minted for this very request
 * by the open door ends with no credit: it held no place. */
const char *el_gate_response(struct el_gate *g, struct el_gate_ctx *ctx,
                             const struct el_http_msg *resp);

#endif
