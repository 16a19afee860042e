/* redis_conn.c - the [room] redis address parser and the link's rate-limited
 * state lines (redis_conn.h).
 *
 * The parser is pure: it copies into fixed fields and never allocates, so the
 * config check and each store's connect use the same function. Passwords
 * stay in struct el_redis_url; el_redis_url_display leaves them out, and no
 * log line prints the address as given.
 *
 * The log limiter keeps, per event kind, the time of the last line and the
 * number suppressed since, in atomics: every thread's store (one per worker
 * and one for the main thread) reports the same change within a few ms, and
 * the operator sees one line. */
#include "einlass/redis_conn.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "einlass/common.h"

#define PORT_REDIS 6379
#define PORT_SENTINEL 26379

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent-decode [s, e) into out (n bytes). -1 if bad or too long. */
static int decode(const char *s, const char *e, char *out, size_t n)
{
    size_t k = 0;
    for (; s < e; s++) {
        char c = *s;
        if (c == '%') {
            if (e - s < 3 || hexval(s[1]) < 0 || hexval(s[2]) < 0) return -1;
            c = (char)(hexval(s[1]) << 4 | hexval(s[2]));
            s += 2;
        }
        if (c == '\0' || k + 1 >= n) return -1;
        out[k++] = c;
    }
    out[k] = '\0';
    return 0;
}

/* "host", "host:port", "[v6]" or "[v6]:port" in [s, e). */
static int hostport(const char *s, const char *e, uint16_t def, struct el_redis_hostport *hp,
                    bool need_port, const char **why)
{
    const char *hs = s, *he, *colon = NULL;
    if (s < e && *s == '[') {
        hs = s + 1;
        he = memchr(hs, ']', (size_t)(e - hs));
        if (he == NULL) {
            *why = "missing ']' after an IPv6 address";
            return -1;
        }
        if (he + 1 < e) {
            if (he[1] != ':') {
                *why = "expected ':port' after ']'";
                return -1;
            }
            colon = he + 1;
        }
    } else {
        int ncolons = 0;
        for (const char *p = s; p < e; p++)
            if (*p == ':' && ncolons++ == 0) colon = p;
        he = colon ? colon : e;
        if (ncolons > 1) {
            *why = "an IPv6 address needs brackets: [::1]:6379";
            return -1;
        }
    }
    if (he == hs) {
        *why = "empty host";
        return -1;
    }
    if ((size_t)(he - hs) >= sizeof(hp->host)) {
        *why = "host name too long";
        return -1;
    }
    for (const char *p = hs; p < he; p++)
        if ((unsigned char)*p <= ' ' || strchr("/@,?#%", *p)) {
            *why = "bad character in the host";
            return -1;
        }
    memcpy(hp->host, hs, (size_t)(he - hs));
    hp->host[he - hs] = '\0';
    if (colon == NULL) {
        if (need_port) {
            *why = "expected host:port, [v6]:port, unix:/path, redis://... or sentinel://...";
            return -1;
        }
        hp->port = def;
        return 0;
    }
    long port = 0;
    const char *p = colon + 1;
    if (p == e) {
        *why = "empty port";
        return -1;
    }
    for (; p < e; p++) {
        if (*p < '0' || *p > '9' || port > 65535) {
            *why = "the port must be a number 1-65535";
            return -1;
        }
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535) {
        *why = "the port must be a number 1-65535";
        return -1;
    }
    hp->port = (uint16_t)port;
    return 0;
}

/* "[user[:password]@]" at the start of [*s, e): moves *s past it. */
static int userinfo(const char **s, const char *e, struct el_redis_url *u, const char **why)
{
    const char *at = NULL;
    for (const char *p = *s; p < e && *p != '/'; p++)
        if (*p == '@') at = p;
    if (at == NULL) return 0;
    const char *colon = memchr(*s, ':', (size_t)(at - *s));
    if (decode(*s, colon ? colon : at, u->user, sizeof(u->user)) == -1 ||
        (colon && decode(colon + 1, at, u->password, sizeof(u->password)) == -1)) {
        *why = "bad or too long user or password (percent-encode '@', ':' and '/')";
        return -1;
    }
    *s = at + 1;
    return 0;
}

static int dbnum(const char *s, const char *e, int *db, const char **why)
{
    long v = 0;
    if (s == e) return 0; /* "host/" */
    for (const char *p = s; p < e; p++) {
        if (*p < '0' || *p > '9' || v > 100000) {
            *why = "the database must be a number";
            return -1;
        }
        v = v * 10 + (*p - '0');
    }
    *db = (int)v;
    return 0;
}

int el_redis_url_parse(const char *s, struct el_redis_url *u, const char **why)
{
    memset(u, 0, sizeof(*u));
    const char *e = s + strlen(s);
    if (strncmp(s, "unix:", 5) == 0) {
        const char *p = s + 5;
        if (p[0] == '\0' || (size_t)(e - p) >= sizeof(u->path)) {
            *why = "unix socket path is empty or too long";
            return -1;
        }
        if (p[0] != '/') {
            *why = "unix: needs an absolute path (unix:/run/redis/redis.sock)";
            return -1;
        }
        u->kind = EL_REDIS_UNIX;
        memcpy(u->path, p, (size_t)(e - p) + 1);
        return 0;
    }
    if (strncmp(s, "redis://", 8) == 0) {
        const char *p = s + 8;
        if (userinfo(&p, e, u, why) == -1) return -1;
        const char *slash = memchr(p, '/', (size_t)(e - p));
        u->kind = EL_REDIS_TCP;
        if (hostport(p, slash ? slash : e, PORT_REDIS, &u->addr, false, why) == -1) return -1;
        return slash ? dbnum(slash + 1, e, &u->db, why) : 0;
    }
    if (strncmp(s, "sentinel://", 11) == 0) {
        const char *p = s + 11;
        if (userinfo(&p, e, u, why) == -1) return -1;
        const char *slash = memchr(p, '/', (size_t)(e - p));
        if (slash == NULL || slash + 1 == e) {
            *why = "sentinel:// needs the master's name: sentinel://h1:26379,h2:26379/mymaster";
            return -1;
        }
        u->kind = EL_REDIS_SENTINEL;
        for (const char *q = p; q < slash;) {
            const char *comma = memchr(q, ',', (size_t)(slash - q));
            const char *qe = comma ? comma : slash;
            if (u->nsentinels == EL_REDIS_SENTINELS_MAX) {
                *why = "too many sentinels (at most 8)";
                return -1;
            }
            if (hostport(q, qe, PORT_SENTINEL, &u->sentinel[u->nsentinels], false, why) == -1)
                return -1;
            u->nsentinels++;
            q = comma ? comma + 1 : slash;
            if (comma && q == slash) {
                *why = "empty host";
                return -1;
            }
        }
        const char *name = slash + 1;
        const char *dbs = memchr(name, '/', (size_t)(e - name));
        const char *ne = dbs ? dbs : e;
        if (ne == name || (size_t)(ne - name) >= sizeof(u->master)) {
            *why = "bad master name";
            return -1;
        }
        for (const char *q = name; q < ne; q++)
            if ((unsigned char)*q <= ' ') {
                *why = "bad master name";
                return -1;
            }
        memcpy(u->master, name, (size_t)(ne - name));
        u->master[ne - name] = '\0';
        return dbs ? dbnum(dbs + 1, e, &u->db, why) : 0;
    }
    if (strstr(s, "://") != NULL) {
        *why = "unknown scheme (redis:// or sentinel://; for TLS run a stunnel sidecar)";
        return -1;
    }
    u->kind = EL_REDIS_TCP;
    return hostport(s, e, PORT_REDIS, &u->addr, true, why);
}

static size_t hp_text(const struct el_redis_hostport *hp, char *out, size_t n)
{
    bool v6 = strchr(hp->host, ':') != NULL;
    int k = snprintf(out, n, "%s%s%s:%u", v6 ? "[" : "", hp->host, v6 ? "]" : "", hp->port);
    return k < 0 ? 0 : EL_MIN((size_t)k, n > 0 ? n - 1 : 0);
}

void el_redis_url_display(const struct el_redis_url *u, char *out, size_t n)
{
    size_t k = 0;
    if (n == 0) return;
    out[0] = '\0';
#define PUT(...) (k += (size_t)EL_MAX(0, snprintf(out + k, n - k, __VA_ARGS__)), k = EL_MIN(k, n - 1))
    switch (u->kind) {
    case EL_REDIS_UNIX:
        PUT("unix:%s", u->path);
        break;
    case EL_REDIS_TCP:
        PUT("%s%s%s", u->user[0] || u->password[0] || u->db ? "redis://" : "", u->user,
            u->user[0] ? "@" : "");
        k += hp_text(&u->addr, out + k, n - k);
        if (u->db) PUT("/%d", u->db);
        break;
    case EL_REDIS_SENTINEL:
        PUT("sentinel://%s%s", u->user, u->user[0] ? "@" : "");
        for (size_t i = 0; i < u->nsentinels; i++) {
            if (i) PUT(",");
            k += hp_text(&u->sentinel[i], out + k, n - k);
        }
        PUT("/%s", u->master);
        if (u->db) PUT("/%d", u->db);
        break;
    }
#undef PUT
}

static const char *const ev_names[EL_REDIS_EV_NKINDS] = {
    "connected", "auth failed", "down", "fallback", "recovered", "epoch changed", "master",
    "store error",
};

static _Atomic uint64_t ev_last_ms[EL_REDIS_EV_NKINDS];    /* last line of the kind, +1 */
static _Atomic unsigned ev_suppressed[EL_REDIS_EV_NKINDS]; /* since that line */

void el_redis_log_state(enum el_redis_event ev, int level, uint64_t now_ms, const char *fmt, ...)
{
    if ((unsigned)ev >= EL_REDIS_EV_NKINDS) return;
    uint64_t last = atomic_load(&ev_last_ms[ev]);
    if (last != 0 && now_ms + 1 < last + 1000) {
        atomic_fetch_add(&ev_suppressed[ev], 1);
        return;
    }
    if (!atomic_compare_exchange_strong(&ev_last_ms[ev], &last, now_ms + 1)) {
        atomic_fetch_add(&ev_suppressed[ev], 1); /* another thread logs it */
        return;
    }
    unsigned n = atomic_exchange(&ev_suppressed[ev], 0);
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n > 0)
        el_log(level, "%s (%u more '%s' line%s in the last seconds suppressed)", msg, n,
               ev_names[ev], n == 1 ? "" : "s");
    else
        el_log(level, "%s", msg);
}
