/* redis_conn.h - where and how einlass reaches Redis: the [room] redis
 * address (a pure parser), and the link's state words and log lines.
 *
 * Addresses (the [room] redis key):
 *   host:port, [v6]:port              plain TCP, db 0, no AUTH
 *   unix:/path                        a Unix socket
 *   redis://[user[:password]@]host[:port][/db]        port 6379
 *   sentinel://[user[:password]@]h1[:port],h2[:port].../master[/db]
 *                                     port 26379; the credentials and db are
 *                                     the master's (sentinels are asked
 *                                     without AUTH)
 * user and password may be percent-encoded (%40 for '@'). A host is an IP
 * address or a name, resolved when connecting. */
#ifndef EL_REDIS_CONN_H
#define EL_REDIS_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EL_REDIS_HOST_MAX 256    /* a host name or address, with its NUL */
#define EL_REDIS_CRED_MAX 256    /* a user or password, with its NUL */
#define EL_REDIS_SENTINELS_MAX 8 /* sentinels in one sentinel:// address */

enum el_redis_kind {
    EL_REDIS_TCP = 0,      /* host:port */
    EL_REDIS_UNIX = 1,     /* unix:/path */
    EL_REDIS_SENTINEL = 2, /* the master named by sentinels */
};

struct el_redis_hostport {
    char host[EL_REDIS_HOST_MAX]; /* without brackets for v6 */
    uint16_t port;                /* never 0 */
};

struct el_redis_url {
    enum el_redis_kind kind;              /* how to reach it */
    struct el_redis_hostport addr;        /* TCP: the server */
    char path[108];                       /* UNIX: the socket */
    char user[EL_REDIS_CRED_MAX];         /* "" = AUTH with the password only */
    char password[EL_REDIS_CRED_MAX];     /* "" = no AUTH */
    int db;                               /* SELECT db when > 0 */
    struct el_redis_hostport sentinel[EL_REDIS_SENTINELS_MAX]; /* SENTINEL: asked in turn */
    size_t nsentinels;                    /* ... how many */
    char master[EL_REDIS_HOST_MAX];       /* SENTINEL: the master's name */
};

/* Parse s into u. Returns 0, or -1 with *why set to a static reason. Pure. */
int el_redis_url_parse(const char *s, struct el_redis_url *u, const char **why);

/* u as text without its password ("redis://user@host:6379/2"), for logs. */
void el_redis_url_display(const struct el_redis_url *u, char *out, size_t n);

/* The link's state (one per Redis store; the room publishes the main
 * thread's). */
enum el_redis_link {
    EL_REDIS_LINK_DOWN = 0,        /* not connected (never was, refused, timed out) */
    EL_REDIS_LINK_CONNECTING = 1,  /* connecting, resolving, or AUTH/SELECT in flight */
    EL_REDIS_LINK_UP = 2,          /* ready for commands */
    EL_REDIS_LINK_AUTH_FAILED = 3, /* AUTH refused (NOAUTH, WRONGPASS): retried slowly */
};

/* Kinds of state-change lines, each limited to one a second process-wide. */
enum el_redis_event {
    EL_REDIS_EV_CONNECTED = 0,
    EL_REDIS_EV_AUTH_FAILED,
    EL_REDIS_EV_DOWN,
    EL_REDIS_EV_FALLBACK,
    EL_REDIS_EV_RECOVERED,
    EL_REDIS_EV_EPOCH,
    EL_REDIS_EV_MASTER,
    EL_REDIS_EV_STORE_ERROR, /* Redis answered an op with an error (store.h el_store_errors) */
    EL_REDIS_EV_NKINDS
};

/* Log one state-change line of kind ev at level (EL_LOG_NOTICE or
 * EL_LOG_WARN), unless a line of that kind went out less than a second ago
 * (now_ms): then it is counted, and the next line of the kind says how many
 * were suppressed. Any thread. */
void el_redis_log_state(enum el_redis_event ev, int level, uint64_t now_ms, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
