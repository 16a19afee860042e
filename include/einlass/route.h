/* route.h - [route] matching. Pure: no allocation, no I/O.
 * A pattern is METHOD (or "*") and a path glob in which '*' matches any run
 * of characters within one segment (no '/') and '**' matches across
 * segments. Paths are matched without their query string, byte for byte;
 * the gate hands over the path in its normal form (el_http_path_normalize():
 * unreserved escapes decoded, "//" merged, dot segments removed), which is
 * also what the backend receives, so a glob names what the backend serves. */
#ifndef EL_ROUTE_H
#define EL_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "einlass/config.h"

/* Does glob match path[0..path_len)? */
bool el_route_glob(const char *glob, const char *path, size_t path_len);

/* The first route of cfg whose method and glob match, or NULL. */
const struct el_route *el_route_find(const struct el_config *cfg, const char *method,
                                     size_t method_len, const char *path, size_t path_len);

/* The index into cfg->rooms of the room a request belongs to: the first of
 * rooms[1..] whose host patterns (none: any host) and path glob (none: any
 * path) both match, else 0 ([room]). host[0..host_len) is the request's
 * host (the Host header's value, or the absolute target's authority) as
 * received: a port and one trailing dot are dropped and case is ignored;
 * host_len 0 matches only rooms without host patterns. path is the normal
 * form, as for el_route_find. */
size_t el_route_room(const struct el_config *cfg, const char *host, size_t host_len,
                     const char *path, size_t path_len);

/* Does host[0..host_len) (as for el_route_room) match r's host patterns
 * (true for a room without any)? */
bool el_route_room_host(const struct el_room_def *r, const char *host, size_t host_len);

#endif
