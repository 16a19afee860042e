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

#endif
