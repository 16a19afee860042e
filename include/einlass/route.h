/* route.h - [route] matching. Pure: no allocation, no I/O.
 * A pattern is METHOD (or "*") and a path glob in which '*' matches any run
 * of characters within one segment (no '/') and '**' matches across
 * segments. Paths are matched without their query string, byte for byte
 * (no percent-decoding: a glob names what the backend receives). */
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
