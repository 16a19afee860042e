/* config.h - the configuration: one table of keys in config.c drives
 * parsing, checking (einlass -t), the error messages and the defaults that
 * el_config_print_defaults() writes. conf/einlass.conf is written by hand
 * beside it and documents the same keys (test_config checks that each key
 * of the table appears there).
 *
 * A struct el_config is immutable once loaded. Reload builds a complete new
 * one and swaps it whole (server.c), or keeps the old one: all-or-nothing.
 * Loading is for the main thread; a loaded config may be read by any thread. */
#ifndef EL_CONFIG_H
#define EL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "einlass/common.h"
#include "einlass/proxy.h"

#define EL_SECRET_LEN 32 /* HMAC key bytes: 64 hex digits */
#define EL_MAX_ROUTES 64
#define EL_MAX_CIDRS 32
#define EL_MAX_EVENTS 32 /* [event NAME] sections and events added by the admin API */
#define EL_EVENT_NAME_MAX 64 /* bytes of an event name */
#define EL_MAX_ROOMS 16      /* [room] and up to 15 [room NAME] sections */
#define EL_ROOM_NAME_MAX 33  /* bytes of a [room NAME] name, NUL included */
#define EL_ROOM_HOSTS_MAX 8  /* host patterns of one room */
#define EL_ROOM_COOKIE_MAX 48 /* bytes of a room's cookie name, NUL included */

enum el_mode { EL_MODE_AUTO = 0, EL_MODE_ON = 1, EL_MODE_OFF = 2 };
enum el_store_kind { EL_STORE_MEMORY = 0, EL_STORE_REDIS = 1 };
enum el_proxy_protocol { EL_PROXY_PROTOCOL_OFF = 0, EL_PROXY_PROTOCOL_V2 = 1 };
enum el_route_action {
    EL_ROUTE_QUEUE = 0, /* the default: goes through the room */
    EL_ROUTE_BYPASS,    /* never waits, never needs a pass */
    EL_ROUTE_PRIORITY,  /* waits in the priority lane, served first */
    EL_ROUTE_REJECT,    /* answered 403 */
};

struct el_route {
    char *name;                  /* section name after "route " */
    char *method;                /* "GET", ... or "*" */
    char *glob;                  /* path glob: '*' within a segment, '**' across */
    enum el_route_action action; /* what a match does */
    int line;                    /* line of the section header, for messages */
};

/* A scheduled opening ([event NAME]): a pre-queue from opens_at_ms -
 * prequeue_s until opens_at_ms, drawn in a random order at opens_at_ms
 * (event.h). Times are unix milliseconds. */
struct el_event_def {
    char name[EL_EVENT_NAME_MAX]; /* section name after "event " */
    int64_t opens_at_ms;          /* the opening */
    int opens_offset_min;         /* the UTC offset opens_at was written with (the page shows it) */
    int prequeue_s;               /* the pre-queue window before it */
    int64_t ends_at_ms;           /* the event ends here (room back to normal); 0 = none */
    int ends_offset_min;          /* the UTC offset ends_at was written with */
    int line;                     /* line of the section header (0: added by the admin API) */
    bool has_opens_at;            /* opens_at was set (it must be) */
    char room[EL_ROOM_NAME_MAX];  /* the [room NAME] it opens; "" = [room] */
};

struct el_config;

/* A room. rooms[0] is [room]: it takes every request no other room takes.
 * rooms[1..] are the [room NAME] sections in file order; a request goes to
 * the first whose host patterns (if any) and path glob (if any) both match
 * (el_route_room). Each room has its own queue in the store, its own meter
 * and rate, its own page, status code and cookies; tickets and passes are
 * signed for one room and count as none in another. */
struct el_room_def {
    char name[EL_ROOM_NAME_MAX];  /* NAME of [room NAME]: 1..32 of [A-Za-z0-9_-]; "" for [room] */
    char *hosts[EL_ROOM_HOSTS_MAX]; /* host patterns, lower case, no port: "book.example.org",
                                     or "*.example.org" (one label or more before the suffix) */
    size_t nhosts;                /* 0: any host */
    char *path;                   /* path glob (route syntax: '*', '**'), NULL: any path */
    char pass_cookie[EL_ROOM_COOKIE_MAX];   /* "einlass_pass" for [room], "einlass_pass_NAME" */
    char ticket_cookie[EL_ROOM_COOKIE_MAX]; /* "einlass_ticket", "einlass_ticket_NAME" */
    struct el_config *cfg;        /* the room's view: the whole file's values with the keys
                                     this section sets (room_name "NAME-OF-[room].NAME"); its
                                     nroutes, nevents and nrooms are 0. rooms[0].cfg is the
                                     config itself. Owned by the config. */
    int line;                     /* line of the section header; 0 for [room] */
};

struct el_config {
    char *path; /* the file this came from */
    char *dir;  /* its directory: relative paths start here */

    /* [server] */
    char *listen;              /* public listener host:port */
    bool listen_shared;        /* start even if another process listens there */
    int workers;               /* worker threads; "auto" resolves to the core count */
    char *admin_listen;        /* admin API host:port */
    char *admin_token;         /* "" = admin POSTs need no token */
    int header_timeout_ms;     /* a request head must arrive within this */
    int idle_timeout_ms;       /* idle keep-alive connections close after this */
    size_t max_header_bytes;   /* larger heads: 431 */
    uint64_t max_body_bytes;   /* larger bodies: 413 */
    int drain_timeout_ms;      /* SIGTERM waits this long for requests in flight */
    bool access_log;           /* one line per request on stderr */
    char *log_level;           /* err | warn | notice | info | debug */
    struct el_cidr trusted_proxies[EL_MAX_CIDRS]; /* peers whose X-Forwarded-For or PROXY
                                                     header names the client */
    size_t ntrusted_proxies;   /* 0: every peer is the client itself */
    enum el_proxy_protocol proxy_protocol; /* v2: a connection starts with a PROXY v2 header */
    char *journal_file;        /* resolved path of the journal of uncertain writes; "" = none */
    uint64_t journal_max_bytes; /* rotate it to FILE.1 past this size; 0 = never */

    /* [backend] */
    char *backend_address;     /* host:port of the portal */
    int connect_timeout_ms;    /* unreachable backend: 502 after this */
    int response_timeout_ms;   /* no response head: 504 after this */
    int keepalive;             /* idle backend connections kept per worker */
    int max_concurrency;       /* backend admission limit: N, 0 unlimited, -1 auto */
    int queue_timeout_ms;      /* longest wait for a backend slot */
    int min_concurrency;       /* auto limit's floor and cold start */
    int max_concurrency_cap;   /* auto limit's ceiling */

    /* [trigger] */
    char *latency_metric;      /* Server-Timing metric name */
    double percentile;         /* 1..99.9 */
    int window_ms;             /* sliding window of samples */
    int min_samples;           /* fewer never open the room */
    double queue_above_ms;     /* queue above this percentile latency */
    double release_below_ms;   /* ... stop once below this */
    int release_hold_ms;       /* ... for this long, with nobody waiting */
    int max_inflight;          /* > 0: also queue above this many backend requests */
    char *probe_path;          /* "" = no probe */
    int probe_interval_ms;     /* probe period */

    /* [room] */
    enum el_mode mode;             /* auto | on | off */
    enum el_store_kind store;      /* memory | redis */
    char *redis;                   /* the Redis address (redis_conn.h), as given */
    char *redis_password_file;     /* resolved path, or "" */
    char *redis_password;          /* its first line, or "" (never logged or printed) */
    int redis_timeout_ms;          /* Redis command and connect timeout */
    char *room_name;               /* [room] name */
    uint8_t secret[EL_SECRET_LEN]; /* HMAC key */
    bool has_secret;               /* secret or secret_file given */
    uint8_t previous_secret[EL_SECRET_LEN]; /* still accepted for verification */
    bool has_previous_secret;      /* previous_secret given (or carried over by reload) */
    int session_s;                 /* a pass lives this long after its last use */
    int keep_place_s;              /* a waiting ticket keeps its place this long since last seen */
    int claim_s;                   /* a reached ticket's admission is held this long */
    double admit_per_s;            /* admissions per second (start value when adapt) */
    double min_admit_per_s;        /* adapt's floor */
    double max_admit_per_s;        /* adapt's ceiling */
    bool min_admit_per_s_set;      /* the file sets min_admit_per_s (else it follows admit_per_s) */
    bool max_admit_per_s_set;      /* the file sets max_admit_per_s (else it follows admit_per_s) */
    bool adapt;                    /* rate follows latency */
    int settle_ms;                 /* admission -> load delay; 0 = poll_s * 1000 + 2000 */
    int poll_s;                    /* Retry-After for waiting clients */
    int max_joins_per_ip_per_min;  /* joins per client address (IPv6: /64) a minute; 0 = no limit */
    char *template_path;           /* resolved path, or "" for the built-in page */
    struct el_cidr bypass_from[EL_MAX_CIDRS]; /* clients that never wait */
    size_t nbypass_from;
    int wait_status;               /* status of waiting answers: 503 (default), 429 or 200 */

    /* the rooms: rooms[0] is [room] (cfg = this config), then [room NAME] */
    struct el_room_def rooms[EL_MAX_ROOMS];
    size_t nrooms;                 /* at least 1 in a loaded config (0 in a room's view) */

    /* [route NAME] sections, in file order: first match wins */
    struct el_route routes[EL_MAX_ROUTES];
    size_t nroutes;

    /* [event NAME] sections of this room, in file order: [room]'s in the
     * whole config, a named room's in its view (room = NAME) */
    struct el_event_def events[EL_MAX_EVENTS];
    size_t nevents;
};

/* Load and validate path into a new config. Returns 0 and sets *out, or -1
 * and sets *err to an allocated "FILE:LINE: message" (FILE:0 when the file
 * cannot be read or the whole is inconsistent); the caller frees *err. */
int el_config_load(const char *path, struct el_config **out, char **err);

/* cfg->log_level as an enum el_log_level (the parser admits only known words). */
int el_config_log_level(const struct el_config *cfg);

/* The words of enum el_mode and enum el_store_kind (the config keys mode and
 * store, the admin API, metrics labels and logs). */
extern const struct el_word el_mode_words[];
extern const struct el_word el_store_kind_words[];

/* "auto", "on" or "off" (anything else reads as "auto"). */
const char *el_mode_name(int mode);
/* The mode named s[0..n) (case-insensitive) into *mode: 0, or -1 if none. */
int el_mode_parse(const char *s, size_t n, int *mode);

/* Whether per_s may be admit_per_s under cfg, checked as the file's value
 * would be: the key's bounds, and min/max_admit_per_s where the file sets
 * them (unset ones follow admit_per_s). Returns 0, or -1 with the reason,
 * worded like the file's error, in why (n bytes). Any thread; no allocation.
 * The admin API's POST /rate uses it. */
int el_config_check_rate(const struct el_config *cfg, double per_s, char *why, size_t n);

/* An RFC 3339 time, s[0..n): YYYY-MM-DDTHH:MM:SS with an optional
 * fraction (read to the millisecond) and a required offset, Z or +HH:MM /
 * -HH:MM ('t', 'z' and a space for 'T' accepted), into unix ms and the
 * offset in minutes east of UTC (offset_min may be NULL). Returns 0,
 * or -1 with the reason in why (nwhy bytes). Pure. */
int el_config_parse_time(const char *s, size_t n, int64_t *ms, int *offset_min, char *why,
                         size_t nwhy);
/* The checks an event gets in the file, for one the admin API adds: a name
 * of 1..63 letters, digits, '-', '_' or '.', opens_at set, prequeue_s in
 * 0..604800, ends_at after opens_at. Returns 0, or -1 with the reason. */
int el_config_check_event(const struct el_event_def *ev, char *why, size_t nwhy);

/* The name cfg's room i goes by in the admin API, /metrics and logs:
 * [room]'s name for rooms[0], NAME for a [room NAME]. */
const char *el_config_room_label(const struct el_config *cfg, size_t i);

/* Free a config from el_config_load(). NULL is fine. */
void el_config_free(struct el_config *cfg);

/* Write the default configuration (every key of the table with its default
 * and help) to f. */
void el_config_print_defaults(FILE *f);

/* Write the key table as reference documentation to f: Markdown tables, one
 * per section (docs/interface.md), or roff for einlass.conf(5). Used by
 * tools/keydoc.c at build time. */
enum el_config_doc { EL_CONFIG_DOC_MARKDOWN = 0, EL_CONFIG_DOC_ROFF = 1 };
void el_config_print_keys(FILE *f, enum el_config_doc fmt);

/* The name of the first key that cannot change without a restart (today
 * only workers: the threads exist) whose value differs between old and new,
 * or NULL. On reload, server.c warns and keeps the running value. */
const char *el_config_restart_key(const struct el_config *old, const struct el_config *new_);
/* Reload: what cfg (just loaded) takes over from old (the running one).
 * Today the secret: when cfg's secret differs from old's and cfg names no
 * previous_secret, old's secret becomes cfg's previous_secret, so tickets
 * and passes signed before the reload still verify (key rotation). */
void el_config_inherit(struct el_config *cfg, const struct el_config *old);

/* True if addr (AF_INET/AF_INET6 sockaddr) is inside one of cfg->bypass_from. */
bool el_config_bypass_addr(const struct el_config *cfg, const struct sockaddr *addr);

/* True if addr is inside one of cfg->trusted_proxies. */
bool el_config_trusted_addr(const struct el_config *cfg, const struct sockaddr *addr);

#endif
