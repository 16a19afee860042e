/* route.c - [route] matching: method and path glob, first match wins; and
 * [room NAME] selection: host patterns and a path glob, first match wins.
 *
 * Invariants: nothing here allocates, reads a clock or does I/O; the path is
 * a byte range (no NUL needed) that the caller has already cut before '?'.
 * The glob matcher is iterative: it remembers one backtrack point for the
 * last single '*' and one for the last '**' (a run of two or more stars).
 * A single '*' cannot consume '/', so once it is pinned by a following '/'
 * its extent is fixed; only the last '*' of the current segment and the last
 * '**' ever need to grow. The work is bounded by O(len(glob) * len(path)). */
#include "einlass/route.h"

#include <string.h>

bool el_route_glob(const char *glob, const char *path, size_t path_len)
{
    size_t g = 0, t = 0;
    size_t glen = strlen(glob);
    size_t star_g = 0, star_t = 0;   /* after the last '*': glob index, path index */
    size_t dstar_g = 0, dstar_t = 0; /* after the last '**' */
    bool star = false, dstar = false;

    while (t < path_len) {
        if (g < glen && glob[g] == '*') {
            size_t run = g;
            while (run < glen && glob[run] == '*')
                run++;
            if (run - g >= 2) {
                dstar = true;
                dstar_g = run;
                dstar_t = t;
                star = false; /* a '*' before this '**' never needs to grow */
            } else {
                star = true;
                star_g = run;
                star_t = t;
            }
            g = run;
            continue;
        }
        if (g < glen && glob[g] == path[t]) {
            g++;
            t++;
            continue;
        }
        /* Mismatch: let the last '*' take one more byte of its segment, or
         * else the last '**' one more byte of anything. */
        if (star && path[star_t] != '/') {
            star_t++;
            t = star_t;
            g = star_g;
            continue;
        }
        if (dstar) {
            star = false;
            dstar_t++;
            t = dstar_t;
            g = dstar_g;
            continue;
        }
        return false;
    }
    while (g < glen && glob[g] == '*')
        g++;
    return g == glen;
}

const struct el_route *el_route_find(const struct el_config *cfg, const char *method,
                                     size_t method_len, const char *path, size_t path_len)
{
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct el_route *r = &cfg->routes[i];
        if (strcmp(r->method, "*") != 0 &&
            (strlen(r->method) != method_len || memcmp(r->method, method, method_len) != 0))
            continue;
        if (el_route_glob(r->glob, path, path_len)) return r;
    }
    return NULL;
}

/* ASCII case-insensitive a[0..n) == b[0..n). */
static bool same_ci(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z') x = (unsigned char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = (unsigned char)(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

/* Does host[0..n) (port and trailing dot gone) match pattern (lower case,
 * "name" or "*.suffix": one label or more before ".suffix")? */
static bool host_match(const char *pattern, const char *host, size_t n)
{
    size_t plen = strlen(pattern);
    if (pattern[0] == '*') {
        const char *suffix = pattern + 1; /* ".suffix" */
        size_t slen = plen - 1;
        return n > slen && same_ci(host + n - slen, suffix, slen);
    }
    return n == plen && same_ci(host, pattern, n);
}

bool el_route_room_host(const struct el_room_def *r, const char *host, size_t host_len)
{
    if (r->nhosts == 0) return true;
    /* The host without its port and one trailing dot. An IPv6 literal
     * ("[::1]:8080") counts as no host: no pattern names one. */
    size_t n = 0;
    if (host_len > 0 && host[0] != '[') {
        const char *colon = memchr(host, ':', host_len);
        n = colon != NULL ? (size_t)(colon - host) : host_len;
        if (n > 0 && host[n - 1] == '.') n--;
    }
    for (size_t h = 0; h < r->nhosts && n > 0; h++)
        if (host_match(r->hosts[h], host, n)) return true;
    return false;
}

size_t el_route_room(const struct el_config *cfg, const char *host, size_t host_len,
                     const char *path, size_t path_len)
{
    for (size_t i = 1; i < cfg->nrooms; i++) {
        const struct el_room_def *r = &cfg->rooms[i];
        if (!el_route_room_host(r, host, host_len)) continue;
        if (r->path != NULL && !el_route_glob(r->path, path, path_len)) continue;
        return i;
    }
    return 0;
}
