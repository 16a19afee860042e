/* admin.h - the admin API on admin_listen (libevent evhttp, main thread):
 *   GET  /status   JSON (docs/interface.md), with "rooms": each room's figures
 *   GET  /healthz  200 while serving, 503 while draining; JSON naming the store state
 *   POST /mode     body auto|on|off -> 204 (until the next reload)
 *   POST /rate     body a number    -> 204 (until the next reload); checked as the
 *                  file's admit_per_s would be (el_config_check_rate), 400 with the
 *                  reason otherwise; 0 is refused: POST /pause holds admissions
 *   POST /pause    -> 204: the meter admits nobody, places are kept, passes go on
 *   POST /resume   -> 204: the meter runs again (pause survives reloads)
 *   POST /mode, /rate, /pause, /resume take ?room=NAME for one room ([room] by its
 *                  name; 404 naming the rooms for an unknown one), every room without
 *   GET  /metrics  Prometheus text
 *   GET  /journal?since=UNIX_SECONDS  the journal's JSON lines from then on
 *                  (404 without journal_file; needs the token when one is set)
 *   GET  /events   JSON: every scheduled opening (name, times, state, pre-queue count)
 *   POST /events   body "key = value" lines (name, opens_at, prequeue_s, ends_at, room; the
 *                  file's syntax and checks) -> 201 with the event; 400 with the reason,
 *                  409 if the name is in use. Kept until restart (not written to the file)
 *   DELETE /events/NAME -> 204: cancelled, its pre-queue keeps arrival order; 404 if
 *                  there is no such event (or it is over)
 * With a token set, POSTs (and DELETE) need "Authorization: Bearer <token>" (401 without,
 * compared in constant time). Bad bodies get 400 with a short reason.
 * Browsers' cross-site POSTs (an Origin other than "http://" + Host, or a
 * Sec-Fetch-Site other than same-origin/none) get 403; so do requests whose
 * Host is neither an IP literal nor localhost while no token is set (DNS
 * rebinding). */
#ifndef EL_ADMIN_H
#define EL_ADMIN_H

#include <stdbool.h>

#include "einlass/metrics.h"

#define EL_ADMIN_ADDR_LEN 128 /* el_admin_address's text, NUL included */

struct event_base;
struct el_config;

struct el_admin_ops {
    void (*status)(void *ctx, struct el_status *st); /* fill st */
    /* room: the index in the running config's rooms (?room=NAME), -1 for every room */
    void (*set_mode)(void *ctx, int room, int mode);      /* enum el_mode */
    void (*set_rate)(void *ctx, int room, double per_s);  /* validated by admin */
    void (*set_paused)(void *ctx, int room, bool paused); /* POST /pause, /resume */
    const struct el_config *(*config)(void *ctx);     /* the running config (for /rate) */
};

struct el_admin;

/* Listen on listen (host:port) on base. Returns NULL and sets *err
 * (allocated) if the address is bad or cannot be bound. */
struct el_admin *el_admin_new(struct event_base *base, const char *listen, const char *token,
                              const struct el_admin_ops *ops, void *ctx, char **err);
/* Reload: a new token ("" = none). */
void el_admin_set_token(struct el_admin *a, const char *token);
/* The rooms whose scheduled openings /events and /status show and change
 * (rooms->events by slot; NULL: none). */
struct el_rooms;
void el_admin_set_rooms(struct el_admin *a, struct el_rooms *rooms);
/* SIGTERM seen: from now on /healthz answers 503 (draining). */
void el_admin_set_draining(struct el_admin *a);
/* The TCP port actually bound (useful when listen asked for port 0); 0 for a
 * unix socket. */
int el_admin_port(const struct el_admin *a);
/* The address actually bound, as "0.0.0.0:9090", "[::1]:9090" or
 * "unix:PATH"; owned by a. */
const char *el_admin_address(const struct el_admin *a);
/* Whether listen (an admin_listen value) is reachable from other hosts:
 * anything but a loopback address or a unix socket (false if unparsable). */
bool el_admin_exposed(const char *listen);
/* The warning to log when listen is exposed and token is empty (allocated,
 * the caller frees it), or NULL when there is nothing to warn about. */
char *el_admin_exposure_warning(const char *listen, const char *token);
/* Stop listening, close open admin connections, free a (NULL is fine). */
void el_admin_free(struct el_admin *a);

#endif
