/* config.c - the key table, INI parsing, validation and FILE:LINE errors.
 *
 * Invariants: one table (keys[]) names every key with its section, type,
 * default, bounds, reloadability and help; parsing, bounds checks, messages,
 * el_config_print_defaults(), el_config_free() and el_config_restart_key()
 * all walk it, so a key added there is complete. Defaults are applied by
 * parsing the table's default text with the same setters as the file, so a
 * default can never be something the file could not say.
 *
 * inih does the key = value splitting; our line reader in front of it counts
 * lines (the handler of Debian's inih 55 gets no line number), drops comment
 * lines, cuts inline comments (';' or '#' after whitespace; inih itself only
 * knows ';'), strips indentation (so inih's multi-line continuation never
 * fires), handles section headers itself (inih does not report a section
 * without keys) and takes over lines longer than inih's buffer. The first
 * error wins: once one is recorded the reader ends the parse. */
#include "einlass/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "einlass/common.h"
#include "einlass/http.h"
#include "einlass/redis_conn.h"

enum key_type {
    T_STR,         /* any text, "" allowed */
    T_TOKEN,       /* non-empty HTTP token (RFC 9110 tchar) */
    T_INT,         /* int within [min, max] */
    T_WORKERS,     /* "auto" (online cores) or an int within [min, max] */
    T_AUTO_INT,    /* "auto" (stored as -1) or an int within [min, max] */
    T_DOUBLE,      /* finite double within [min, max] */
    T_SIZE,        /* size_t within [min, max] */
    T_U64,         /* uint64_t within [min, max] */
    T_BOOL,        /* on/off, true/false, yes/no, 1/0 */
    T_ENUM,        /* one of words[], stored as its value (an enum) */
    T_WORD,        /* one of words[], stored as an allocated string */
    T_ADDR,        /* host:port or [v6]:port, stored as given */
    T_ADDR_UNIX,   /* ... or unix:/path */
    T_REDIS,       /* a Redis address (redis_conn.h), stored as given */
    T_PASSWORD_FILE, /* "" or a file whose first line is a password: the path in off,
                        the password in flag_off (never printed) */
    T_URLPATH,     /* "" or an absolute URL path */
    T_SECRET,      /* "" or 64 hex digits; flag_off marks it present */
    T_SECRET_FILE, /* "" or a file holding 64 hex digits, read into the secret */
    T_FILE,        /* "" or a readable file, stored resolved */
    T_OUTFILE,     /* "" or a file to write (its directory must exist), stored resolved */
    T_CIDRS,       /* comma-separated CIDR list: off the array, flag_off its size_t count */
    T_MATCH,       /* route: METHOD PATH-GLOB */
    T_ACTION,      /* route: bypass | priority | queue | reject */
    T_TIME,        /* event: RFC 3339 time with offset, stored as int64_t unix ms ("" = 0),
                      flag_off its offset (int, minutes east of UTC) */
    T_HOSTS,       /* room NAME: comma-separated host patterns into el_room_def's hosts
                      (off) and nhosts (flag_off), lower case */
    T_GLOB,        /* room NAME: a path glob as in a route's match, into el_room_def's path */
    T_ROOM,        /* event: "" or the NAME of a [room NAME], into a char[EL_ROOM_NAME_MAX] */
};

const struct el_word el_mode_words[] = {
    {"auto", EL_MODE_AUTO}, {"on", EL_MODE_ON}, {"off", EL_MODE_OFF}, {NULL, 0}};
const struct el_word el_store_kind_words[] = {
    {"memory", EL_STORE_MEMORY}, {"redis", EL_STORE_REDIS}, {NULL, 0}};
static const struct el_word proxy_protocol_words[] = {
    {"off", EL_PROXY_PROTOCOL_OFF}, {"v2", EL_PROXY_PROTOCOL_V2}, {NULL, 0}};
static const struct el_word action_words[] = {{"queue", EL_ROUTE_QUEUE},
                                              {"bypass", EL_ROUTE_BYPASS},
                                              {"priority", EL_ROUTE_PRIORITY},
                                              {"reject", EL_ROUTE_REJECT},
                                              {NULL, 0}};
static const struct el_word status_words[] = {
    {"503", 503}, {"429", 429}, {"200", 200}, {NULL, 0}};
static const struct el_word bool_words[] = {{"on", 1}, {"true", 1}, {"yes", 1},
                                            {"1", 1},  {"off", 0},  {"false", 0},
                                            {"no", 0}, {"0", 0},    {NULL, 0}};

struct key {
    const char *section;      /* "server", "backend", "trigger", "room", "room NAME", "route"
                                 or "event" */
    const char *name;         /* key name in the file */
    enum key_type type;       /* how the value is parsed and stored */
    const char *def;          /* default, parsed like a value from the file */
    double min, max;          /* bounds of numeric types */
    const struct el_word *words; /* T_ENUM, T_WORD, T_ACTION: allowed words */
    bool reloadable;          /* false: a change needs a restart */
    const char *example;      /* non-NULL: printed as a commented-out example */
    size_t off;               /* field in struct el_config (el_route for "route") */
    size_t flag_off;          /* T_SECRET, T_SECRET_FILE: the bool saying "present";
                                 T_CIDRS: the count */
    const char *help;         /* one line */
};

#define F(field) offsetof(struct el_config, field)
#define MS_MAX 3600000.0 /* one hour */

static const struct key keys[] = {
    {"server", "listen", T_ADDR, "127.0.0.1:8080", 0, 0, NULL, true, NULL, F(listen), 0,
     "public listener (host:port or [v6]:port)"},
    {"server", "listen_shared", T_BOOL, "off", 0, 0, NULL, true, NULL, F(listen_shared), 0,
     "on: start even when another process listens on listen (the kernel splits connections)"},
    {"server", "workers", T_WORKERS, "auto", 1, EL_WORKERS_MAX, NULL, false, NULL, F(workers), 0,
     "worker threads; auto = number of cores"},
    {"server", "admin_listen", T_ADDR, "127.0.0.1:9090", 0, 0, NULL, true, NULL, F(admin_listen),
     0, "admin API (host:port; keep it on loopback)"},
    {"server", "admin_token", T_STR, "", 0, 0, NULL, true, NULL, F(admin_token), 0,
     "if set, admin POSTs need \"Authorization: Bearer <token>\""},
    {"server", "header_timeout_ms", T_INT, "10000", 1, MS_MAX, NULL, true, NULL,
     F(header_timeout_ms), 0, "a request head must arrive within this"},
    {"server", "idle_timeout_ms", T_INT, "60000", 1, MS_MAX, NULL, true, NULL, F(idle_timeout_ms),
     0, "idle keep-alive connection, or no byte of a body in transfer: close (408 mid-upload)"},
    {"server", "max_header_bytes", T_SIZE, "16384", 1024, 1048576, NULL, true, NULL,
     F(max_header_bytes), 0, "larger heads get 431"},
    {"server", "max_body_bytes", T_U64, "10485760", 0, 1099511627776.0, NULL, true, NULL,
     F(max_body_bytes), 0, "larger bodies get 413"},
    {"server", "drain_timeout_ms", T_INT, "10000", 0, MS_MAX, NULL, true, NULL, F(drain_timeout_ms),
     0, "how long SIGTERM waits for requests in flight"},
    {"server", "access_log", T_BOOL, "off", 0, 0, NULL, true, NULL, F(access_log), 0,
     "one line per request on stderr"},
    {"server", "log_level", T_WORD, "info", 0, 0, el_log_level_words, true, NULL, F(log_level), 0,
     "lines above this level are dropped"},
    {"server", "trusted_proxies", T_CIDRS, "", 0, 0, NULL, true, "127.0.0.1/32, ::1/128",
     F(trusted_proxies), F(ntrusted_proxies),
     "proxies in front of einlass (CIDRs): their X-Forwarded-For names the client"},
    {"server", "journal_file", T_OUTFILE, "", 0, 0, NULL, true, "/var/lib/einlass/journal.jsonl",
     F(journal_file), 0,
     "if set, writes with an unknown outcome (5xx, timeout, client gone) are appended here as "
     "JSON lines; relative to this file's directory"},
    {"server", "journal_max_bytes", T_U64, "67108864", 0, 1099511627776.0, NULL, true, NULL,
     F(journal_max_bytes), 0, "the journal is rotated to FILE.1 past this size; 0 = never"},
    {"server", "proxy_protocol", T_ENUM, "off", 0, 0, proxy_protocol_words, true, NULL,
     F(proxy_protocol), 0,
     "off | v2: every connection starts with a PROXY v2 header from a trusted proxy"},

    {"backend", "address", T_ADDR, "127.0.0.1:3000", 0, 0, NULL, true, NULL, F(backend_address), 0,
     "the booking portal (host:port)"},
    {"backend", "connect_timeout_ms", T_INT, "2000", 1, MS_MAX, NULL, true, NULL,
     F(connect_timeout_ms), 0, "unreachable backend: 502 after this"},
    {"backend", "response_timeout_ms", T_INT, "30000", 1, MS_MAX, NULL, true, NULL,
     F(response_timeout_ms), 0, "request sent, no response head (or backend not reading it): 504"},
    {"backend", "keepalive", T_INT, "64", 0, 10000, NULL, true, NULL, F(keepalive), 0,
     "idle backend connections kept per worker"},
    {"backend", "max_concurrency", T_AUTO_INT, "0", 0, 1000000, NULL, true, NULL,
     F(max_concurrency), 0,
     "requests in flight to the backend at most, all workers together; more wait here; "
     "0 = unlimited; auto = learned from latency"},
    {"backend", "queue_timeout_ms", T_INT, "2000", 1, MS_MAX, NULL, true, NULL,
     F(queue_timeout_ms), 0,
     "a request waits this long for a backend slot, then gets the waiting page (GET) or 503"},
    {"backend", "min_concurrency", T_INT, "2", 1, 100000, NULL, true, NULL, F(min_concurrency), 0,
     "the auto limit never goes below this many backend requests (and starts here)"},
    {"backend", "max_concurrency_cap", T_INT, "1000", 1, 100000, NULL, true, NULL,
     F(max_concurrency_cap), 0, "... nor above this"},

    {"trigger", "latency_metric", T_TOKEN, "db", 0, 0, NULL, true, NULL, F(latency_metric), 0,
     "Server-Timing metric read from backend responses (else time to first byte)"},
    {"trigger", "percentile", T_DOUBLE, "95", 1, 99.9, NULL, true, NULL, F(percentile), 0,
     "latency percentile compared with the thresholds"},
    {"trigger", "window_ms", T_INT, "5000", 100, MS_MAX, NULL, true, NULL, F(window_ms), 0,
     "sliding window of latency samples"},
    {"trigger", "min_samples", T_INT, "20", 1, 1000000, NULL, true, NULL, F(min_samples), 0,
     "fewer samples in the window never open the room"},
    {"trigger", "queue_above_ms", T_DOUBLE, "300", 1, 600000, NULL, true, NULL, F(queue_above_ms),
     0, "the room starts queueing above this"},
    {"trigger", "release_below_ms", T_DOUBLE, "150", 0, 600000, NULL, true, NULL,
     F(release_below_ms), 0, "... and may stop once nobody waits and latency stays below this"},
    {"trigger", "release_hold_ms", T_INT, "10000", 0, 86400000, NULL, true, NULL,
     F(release_hold_ms), 0, "... for this long"},
    {"trigger", "max_inflight", T_INT, "0", 0, 1000000, NULL, true, NULL, F(max_inflight), 0,
     "> 0: also queue when more backend requests are in flight"},
    {"trigger", "probe_path", T_URLPATH, "", 0, 0, NULL, true, "/healthz", F(probe_path), 0,
     "optional path fetched every probe_interval_ms"},
    {"trigger", "probe_interval_ms", T_INT, "1000", 100, MS_MAX, NULL, true, NULL,
     F(probe_interval_ms), 0, "how often probe_path is fetched"},

    {"room", "mode", T_ENUM, "auto", 0, 0, el_mode_words, true, NULL, F(mode), 0,
     "auto (latency decides) | on (everyone new waits) | off (never)"},
    {"room", "store", T_ENUM, "memory", 0, 0, el_store_kind_words, true, NULL, F(store), 0,
     "memory (one instance) | redis (shared by every instance)"},
    {"room", "redis", T_REDIS, "127.0.0.1:6379", 0, 0, NULL, true, NULL, F(redis), 0,
     "host:port, unix:/path, redis://[user[:password]@]host[:port][/db] or "
     "sentinel://host[:port],host[:port]/master[/db] (host: an address or a name)"},
    {"room", "redis_password_file", T_PASSWORD_FILE, "", 0, 0, NULL, true,
     "/etc/einlass/redis-password", F(redis_password_file), F(redis_password),
     "file whose first line is the Redis password (AUTH; the user, if any, goes in "
     "redis://user@host); relative to this file's directory"},
    {"room", "redis_timeout_ms", T_INT, "500", 1, 60000, NULL, true, NULL, F(redis_timeout_ms), 0,
     "a Redis command (or connect) unanswered this long drops the link (the room falls back)"},
    {"room", "name", T_TOKEN, "portal", 0, 0, NULL, true, NULL, F(room_name), 0,
     "room name; instances with the same name, secret and redis are one room"},
    {"room", "secret", T_SECRET, "", 0, 0, NULL, true, "<64 hex digits from: openssl rand -hex 32>",
     F(secret), F(has_secret), "HMAC key for tickets and passes (or secret_file)"},
    {"room", "secret_file", T_SECRET_FILE, "", 0, 0, NULL, true, "/var/lib/einlass/secret",
     F(secret), F(has_secret), "file holding the secret's 64 hex digits"},
    {"room", "previous_secret", T_SECRET, "", 0, 0, NULL, true, NULL, F(previous_secret),
     F(has_previous_secret), "still accepted for verification (key rotation)"},
    {"room", "session_s", T_INT, "600", 1, 604800, NULL, true, NULL, F(session_s), 0,
     "a pass lives this long after its last use"},
    {"room", "keep_place_s", T_INT, "600", 1, 86400, NULL, true, NULL, F(keep_place_s), 0,
     "a waiting ticket keeps its place this long since it was last seen (at least 3 x poll_s)"},
    {"room", "claim_s", T_INT, "300", 1, 86400, NULL, true, NULL, F(claim_s), 0,
     "a reached ticket's admission is held this long, then returns as credit to the next in line"},
    {"room", "admit_per_s", T_DOUBLE, "10", 0.01, 100000, NULL, true, NULL, F(admit_per_s), 0,
     "admissions per second (starting value when adapt = on)"},
    {"room", "min_admit_per_s", T_DOUBLE, "1", 0.01, 100000, NULL, true, NULL, F(min_admit_per_s),
     0, "adapt never goes below this"},
    {"room", "max_admit_per_s", T_DOUBLE, "100", 0.01, 100000, NULL, true, NULL, F(max_admit_per_s),
     0, "adapt never goes above this"},
    {"room", "adapt", T_BOOL, "on", 0, 0, NULL, true, NULL, F(adapt), 0,
     "on: the rate follows database latency; off: fixed admit_per_s"},
    {"room", "settle_ms", T_INT, "0", 0, 3600000, NULL, true, NULL, F(settle_ms), 0,
     "how long an admission takes to show as backend load; 0 = poll_s + 2 s"},
    {"room", "poll_s", T_INT, "5", 1, 3600, NULL, true, NULL, F(poll_s), 0,
     "how often waiting clients come back (Retry-After)"},
    {"room", "max_joins_per_ip_per_min", T_INT, "60", 0, 100000, NULL, true, NULL,
     F(max_joins_per_ip_per_min), 0,
     "new places in line per client address (IPv6: per /64) a minute; 0 = no limit"},
    {"room", "template", T_FILE, "", 0, 0, NULL, true, "waiting-room.html", F(template_path), 0,
     "the waiting page; empty = built-in; relative to this file's directory"},
    {"room", "status", T_ENUM, "503", 0, 0, status_words, true, NULL, F(wait_status), 0,
     "status code of waiting answers (page and JSON): 503, 429, or 200 for clients that "
     "hide a 503's body"},
    {"room", "bypass_from", T_CIDRS, "", 0, 0, NULL, true, "10.20.0.0/16, 2001:db8:20::/48",
     F(bypass_from), F(nbypass_from), "client networks that never wait (comma-separated CIDRs)"},

    {"room NAME", "host", T_HOSTS, "", 0, 0, NULL, true, "book.example.org, *.book.example.org",
     offsetof(struct el_room_def, hosts), offsetof(struct el_room_def, nhosts),
     "requests for these hosts (comma-separated, up to 8; *.example.org: any name below it; "
     "no port: every port matches) go to this room"},
    {"room NAME", "path", T_GLOB, "", 0, 0, NULL, true, "/impfkampagne/**",
     offsetof(struct el_room_def, path), 0,
     "... and whose path matches this glob (* within a segment, ** across); set host, path "
     "or both"},

    {"route", "match", T_MATCH, "", 0, 0, NULL, true, "POST /appointments/*/cancel", 0, 0,
     "METHOD (or *) and a path glob: * within a segment, ** across"},
    {"route", "action", T_ACTION, "queue", 0, 0, action_words, true, "bypass",
     offsetof(struct el_route, action), 0, "bypass | priority | queue | reject"},

    {"event", "opens_at", T_TIME, "", 0, 0, NULL, true, "2027-03-01T09:00:00+01:00",
     offsetof(struct el_event_def, opens_at_ms), offsetof(struct el_event_def, opens_offset_min),
     "the opening, RFC 3339 with Z or an offset (required); the pre-queue is drawn then"},
    {"event", "prequeue_s", T_INT, "1800", 0, 604800, NULL, true, "1800",
     offsetof(struct el_event_def, prequeue_s), 0,
     "arrivals this long before opens_at get a place drawn at random at the opening"},
    {"event", "ends_at", T_TIME, "", 0, 0, NULL, true, "2027-03-01T18:00:00+01:00",
     offsetof(struct el_event_def, ends_at_ms), offsetof(struct el_event_def, ends_offset_min),
     "optional end of the event (RFC 3339): the room is back to its normal rules"},
    {"event", "room", T_ROOM, "", 0, 0, NULL, true, "campaign",
     offsetof(struct el_event_def, room), 0,
     "the [room NAME] whose newcomers the pre-queue takes; empty = [room]"},
};

#define NKEYS EL_ARRAY_LEN(keys)

enum { SECT_NONE = -1 };

/* The [room] keys a [room NAME] may set; the others are shared by every room. */
static const char *const room_keys[] = {
    "mode",     "admit_per_s", "min_admit_per_s", "max_admit_per_s", "adapt",
    "settle_ms", "poll_s",     "template",        "status",          "session_s",
    "keep_place_s", "claim_s", "max_joins_per_ip_per_min",
};

/* What a [room NAME] section wrote, applied to its view once the whole file
 * is read (the section may come before [room]). */
struct room_keys {
    int key_line[NKEYS]; /* line where each key was set in the section; 0 = not */
    char *value[NKEYS];  /* the value as written, or NULL */
};

struct parse {
    const char *file;       /* path as given, for messages */
    struct el_config *cfg;  /* being built */
    FILE *f;                /* the file */
    char *buf;              /* getline buffer */
    size_t cap;             /* its size */
    int line;               /* number of the line last handed to inih */
    int secret_line;        /* line of a non-empty secret or secret_file */
    const char *section;    /* current section kind ("route" for routes), NULL before any */
    struct el_route *route; /* current route section, or NULL */
    struct el_event_def *event; /* current event section, or NULL */
    struct el_room_def *room; /* current [room NAME] section (or the view being built), or NULL */
    struct room_keys rooms[EL_MAX_ROOMS]; /* per cfg->rooms index: what its section set */
    struct el_config *scratch; /* [room NAME] values are checked into this as they are read */
    bool route_has_match;   /* the current route set match */
    int key_line[NKEYS];    /* line where each key was set; 0 = default */
    char *err;              /* first error, "FILE:LINE: message" */
    int err_line;           /* its line */
};

__attribute__((format(printf, 3, 0))) static void failv(struct parse *ps, int line, const char *fmt,
                                                        va_list ap)
{
    if (ps->err != NULL) return;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    ps->err = el_sprintf("%s:%d: %s", ps->file, line, msg);
    ps->err_line = line;
}

__attribute__((format(printf, 3, 4))) static void fail(struct parse *ps, int line, const char *fmt,
                                                       ...)
{
    va_list ap;
    va_start(ap, fmt);
    failv(ps, line, fmt, ap);
    va_end(ap);
}

/* A message about key k: "[section] name: ..." ("[route NAME] ..." for routes). */
__attribute__((format(printf, 4, 5))) static void
key_fail(struct parse *ps, int line, const struct key *k, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (strncmp(k->section, "room", 4) == 0 && ps->room != NULL)
        fail(ps, line, "[room %s] %s: %s", ps->room->name, k->name, what);
    else if (strcmp(k->section, "route") == 0 && ps->route != NULL)
        fail(ps, line, "[route %s] %s: %s", ps->route->name, k->name, what);
    else if (strcmp(k->section, "event") == 0 && ps->event != NULL)
        fail(ps, line, "[event %s] %s: %s", ps->event->name, k->name, what);
    else
        fail(ps, line, "[%s] %s: %s", k->section, k->name, what);
}

/* Numbers in messages: integers without exponent, others as short as %g. */
static const char *num_text(double v, char *buf, size_t n)
{
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        snprintf(buf, n, "%.0f", v);
    else
        snprintf(buf, n, "%g", v);
    return buf;
}

static int check_bounds(struct parse *ps, int line, const struct key *k, double v, const char *text)
{
    char b[64];
    if (v < k->min) {
        key_fail(ps, line, k, "%s is below the minimum %s", text, num_text(k->min, b, sizeof(b)));
        return -1;
    }
    if (v > k->max) {
        key_fail(ps, line, k, "%s is above the maximum %s", text, num_text(k->max, b, sizeof(b)));
        return -1;
    }
    return 0;
}

static const char *range_text(const struct key *k, char *buf, size_t n)
{
    char lo[64], hi[64];
    snprintf(buf, n, "%s..%s", num_text(k->min, lo, sizeof(lo)), num_text(k->max, hi, sizeof(hi)));
    return buf;
}

static int parse_integer(struct parse *ps, int line, const struct key *k, const char *v,
                         long long *out)
{
    char r[140];
    const char *s = v[0] == '-' ? v + 1 : v;
    bool digits = *s != '\0';
    for (; *s; s++)
        if (*s < '0' || *s > '9') digits = false;
    errno = 0;
    long long x = digits ? strtoll(v, NULL, 10) : 0;
    if (!digits || errno == ERANGE) {
        key_fail(ps, line, k, "'%s' is not an integer (allowed: %s%s)", v,
                 k->type == T_WORKERS || k->type == T_AUTO_INT ? "auto or " : "", range_text(k, r, sizeof(r)));
        return -1;
    }
    if (check_bounds(ps, line, k, (double)x, v) == -1) return -1;
    *out = x;
    return 0;
}

static const char *words_text(const struct el_word *words, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; words[i].word != NULL && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "", words[i].word);
    return buf;
}

static int hex_secret(const char *s, size_t len, uint8_t out[EL_SECRET_LEN])
{
    if (len != 2 * EL_SECRET_LEN) return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return -1;
        if (i % 2 == 0)
            out[i / 2] = (uint8_t)(d << 4);
        else
            out[i / 2] |= (uint8_t)d;
    }
    return 0;
}

/* path as is when absolute, else relative to the config file's directory. */
static char *resolve(const struct el_config *cfg, const char *path)
{
    if (path[0] == '/') return el_strdup(path);
    return el_sprintf("%s/%s", cfg->dir, path);
}

static int read_secret_file(struct parse *ps, int line, const struct key *k, const char *v,
                            uint8_t out[EL_SECRET_LEN])
{
    char *path = resolve(ps->cfg, v);
    char buf[256];
    size_t n = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        key_fail(ps, line, k, "cannot read %s: %s", path, strerror(errno));
        goto fail;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad) {
        key_fail(ps, line, k, "cannot read %s", path);
        goto fail;
    }
    buf[n] = '\0';
    char *s = buf;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    size_t len = strlen(s);
    while (len > 0 && strchr(" \t\r\n", s[len - 1]) != NULL)
        len--;
    if (hex_secret(s, len, out) == -1) {
        key_fail(ps, line, k, "%s must hold exactly 64 hex digits (openssl rand -hex 32)", path);
        goto fail;
    }
    free(path);
    return 0;
fail:
    free(path);
    return -1;
}

/* The first line of file v (relative to the config's directory) into the
 * flag_off string, its resolved path into off. */
static int read_password_file(struct parse *ps, int line, const struct key *k, const char *v,
                              void *base)
{
    char **path_field = (char **)(void *)((char *)base + k->off);
    char **pw_field = (char **)(void *)((char *)base + k->flag_off);
    char *path = *v ? resolve(ps->cfg, v) : el_strdup("");
    char buf[EL_REDIS_CRED_MAX + 2] = "";
    if (*v) {
        FILE *f = fopen(path, "r");
        if (f == NULL) {
            key_fail(ps, line, k, "cannot read %s: %s", path, strerror(errno));
            goto fail;
        }
        bool got = fgets(buf, sizeof(buf), f) != NULL;
        fclose(f);
        size_t len = strcspn(buf, "\r\n");
        if (!got || len == 0 || len > EL_REDIS_CRED_MAX - 1) {
            key_fail(ps, line, k, "%s must hold the password on its first line (at most %d bytes)",
                     path, EL_REDIS_CRED_MAX - 1);
            goto fail;
        }
        buf[len] = '\0';
    }
    free(*path_field);
    *path_field = path;
    free(*pw_field);
    *pw_field = el_strdup(buf);
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
fail:
    OPENSSL_cleanse(buf, sizeof(buf));
    free(path);
    return -1;
}

static int readable_file(struct parse *ps, int line, const struct key *k, const char *path)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        key_fail(ps, line, k, "cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    int r = fstat(fd, &st);
    close(fd);
    if (r == -1 || !S_ISREG(st.st_mode)) {
        key_fail(ps, line, k, "%s is not a regular file", path);
        return -1;
    }
    return 0;
}

static int parse_cidrs(struct parse *ps, int line, const struct key *k, const char *v)
{
    struct el_cidr *list = (struct el_cidr *)(void *)((char *)ps->cfg + k->off);
    size_t *n = (size_t *)(void *)((char *)ps->cfg + k->flag_off);
    *n = 0;
    if (*v == '\0') return 0;
    char *copy = el_strdup(v);
    const char *next = copy, *end = copy + strlen(copy), *e;
    size_t len;
    while (el_http_next_elem(&next, end, &e, &len)) {
        char *tok = copy + (e - copy);
        tok[len] = '\0';
        if (len == 0) {
            key_fail(ps, line, k, "empty entry in the list");
            goto fail;
        }
        if (*n == EL_MAX_CIDRS) {
            key_fail(ps, line, k, "more than %d networks", EL_MAX_CIDRS);
            goto fail;
        }
        if (el_proxy_cidr_parse(tok, len, &list[*n]) == -1) {
            key_fail(ps, line, k,
                     "'%s' is not an IPv4 or IPv6 network (e.g. 10.0.0.0/8, "
                     "2001:db8::/32)",
                     tok);
            goto fail;
        }
        (*n)++;
    }
    free(copy);
    return 0;
fail:
    free(copy);
    return -1;
}

/* A path glob: starts with '/', no controls or spaces. */
static bool is_glob(const char *g)
{
    if (*g != '/') return false;
    for (const char *p = g; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f) return false;
    return true;
}

static int parse_match(struct parse *ps, int line, const struct key *k, const char *v,
                       struct el_route *r)
{
    const char *sp = v;
    while (*sp && *sp != ' ' && *sp != '\t')
        sp++;
    const char *g = el_http_skip_ows(sp, sp + strlen(sp));
    bool method_ok = sp > v;
    if (!(sp - v == 1 && v[0] == '*'))
        for (const char *p = v; p < sp; p++)
            if (!el_http_is_tchar((unsigned char)*p) || *p == '*') method_ok = false;
    if (!method_ok || !is_glob(g)) {
        key_fail(ps, line, k,
                 "'%s' must be METHOD PATH-GLOB (METHOD a token or *, the glob "
                 "starting with '/', e.g. POST /appointments/*/cancel)",
                 v);
        return -1;
    }
    free(r->method);
    free(r->glob);
    r->method = el_strndup(v, (size_t)(sp - v));
    r->glob = el_strdup(g);
    return 0;
}

/* One host pattern, tok[0..len) (NUL-terminated there): the reason it is not
 * one, or NULL. Lower-cased in place; one trailing dot dropped (*len). */
static const char *host_pattern_error(char *tok, size_t *len)
{
    if (strstr(tok, "://") != NULL) return "a host pattern has no scheme (e.g. book.example.org)";
    if (tok[0] == '[') return "IPv6 literals are not supported (requests to one go to [room])";
    if (strchr(tok, '/') != NULL) return "a host pattern has no path (set path for that)";
    if (strchr(tok, ':') != NULL) return "a host pattern has no port (every port matches)";
    if (*len > 1 && tok[*len - 1] == '.') tok[--*len] = '\0';
    char *name = tok;
    if (strncmp(tok, "*.", 2) == 0) name += 2;
    if (strchr(name, '*') != NULL) return "'*' may only start a pattern, as in *.example.org";
    bool numeric = true, bad = strlen(name) > 253;
    size_t label = 0;
    for (char *p = name; *p; p++) {
        if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
        if (*p == '.') {
            bad |= label == 0;
            label = 0;
        } else if ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-') {
            bad |= ++label > 63;
            numeric &= *p >= '0' && *p <= '9';
        } else {
            bad = true;
        }
    }
    if (bad || label == 0)
        return "not a host name (letters, digits, '-' and '.'), *.NAME or an IPv4 address";
    struct in_addr a;
    if (numeric && (name != tok || inet_pton(AF_INET, name, &a) != 1))
        return "not an IPv4 address";
    return NULL;
}

static int parse_hosts(struct parse *ps, int line, const struct key *k, const char *v,
                       struct el_room_def *r)
{
    if (*v == '\0') {
        key_fail(ps, line, k, "names no host (e.g. host = book.example.org)");
        return -1;
    }
    char *copy = el_strdup(v);
    const char *next = copy, *end = copy + strlen(copy), *e;
    size_t len;
    for (size_t i = 0; i < r->nhosts; i++)
        free(r->hosts[i]);
    r->nhosts = 0;
    while (el_http_next_elem(&next, end, &e, &len)) {
        char *tok = copy + (e - copy);
        tok[len] = '\0';
        const char *why;
        if (len == 0) {
            key_fail(ps, line, k, "empty entry in the list");
            goto fail;
        }
        if ((why = host_pattern_error(tok, &len)) != NULL) {
            key_fail(ps, line, k, "'%s': %s", tok, why);
            goto fail;
        }
        if (r->nhosts == EL_ROOM_HOSTS_MAX) {
            key_fail(ps, line, k, "more than %d host patterns", EL_ROOM_HOSTS_MAX);
            goto fail;
        }
        r->hosts[r->nhosts++] = el_strndup(tok, len);
    }
    free(copy);
    return 0;
fail:
    free(copy);
    return -1;
}

static char *dir_of(const char *path);
static size_t key_index(const char *name);

/* A room NAME: 1 to 32 letters, digits, '-' or '_'. */
static bool room_name_ok(const char *rname)
{
    size_t len = strlen(rname);
    bool ok = len >= 1 && len < EL_ROOM_NAME_MAX;
    for (const char *p = rname; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_'))
            ok = false;
    return ok;
}

/* Parse value v for key k into base (the config, or the route). Returns 0,
 * or -1 with the error recorded. line 0 means the table's default. */
static int set_value(struct parse *ps, const struct key *k, void *base, const char *v, int line)
{
    char *field = (char *)base + k->off;
    char r[160];
    long long ll;
    switch (k->type) {
    case T_STR:
        break;
    case T_TOKEN:
        if (*v == '\0') {
            key_fail(ps, line, k, "must not be empty");
            return -1;
        }
        for (const char *p = v; *p; p++)
            if (!el_http_is_tchar((unsigned char)*p)) {
                key_fail(ps, line, k, "'%s' may hold only letters, digits and !#$%%&'*+-.^_`|~", v);
                return -1;
            }
        break;
    case T_INT:
        if (parse_integer(ps, line, k, v, &ll) == -1) return -1;
        *(int *)field = (int)ll;
        return 0;
    case T_AUTO_INT:
        if (strcmp(v, "auto") == 0) {
            *(int *)field = -1;
            return 0;
        }
        if (parse_integer(ps, line, k, v, &ll) == -1) return -1;
        *(int *)field = (int)ll;
        return 0;
    case T_WORKERS:
        if (strcmp(v, "auto") == 0) {
            long n = sysconf(_SC_NPROCESSORS_ONLN);
            *(int *)field = (int)(n < 1 ? 1 : n > (long)k->max ? (long)k->max : n);
            return 0;
        }
        if (parse_integer(ps, line, k, v, &ll) == -1) return -1;
        *(int *)field = (int)ll;
        return 0;
    case T_DOUBLE: {
        char *end;
        bool ok = *v != '\0' && strspn(v, "0123456789.eE+-") == strlen(v);
        errno = 0;
        double d = ok ? strtod(v, &end) : 0;
        if (!ok || *end != '\0' || errno == ERANGE || !isfinite(d)) {
            key_fail(ps, line, k, "'%s' is not a number (allowed: %s)", v,
                     range_text(k, r, sizeof(r)));
            return -1;
        }
        if (check_bounds(ps, line, k, d, v) == -1) return -1;
        *(double *)field = d;
        return 0;
    }
    case T_SIZE:
    case T_U64: {
        bool ok = *v != '\0' && strspn(v, "0123456789") == strlen(v);
        errno = 0;
        unsigned long long u = ok ? strtoull(v, NULL, 10) : 0;
        if (!ok || errno == ERANGE) {
            key_fail(ps, line, k, "'%s' is not a whole number of bytes (allowed: %s)", v,
                     range_text(k, r, sizeof(r)));
            return -1;
        }
        if (check_bounds(ps, line, k, (double)u, v) == -1) return -1;
        if (k->type == T_SIZE)
            *(size_t *)field = (size_t)u;
        else
            *(uint64_t *)field = (uint64_t)u;
        return 0;
    }
    case T_BOOL: {
        const struct el_word *w = el_word_find(bool_words, v, strlen(v));
        if (w != NULL) {
            *(bool *)field = w->value != 0;
        } else {
            key_fail(ps, line, k,
                     "'%s' is not a boolean (allowed: on, off, true, false, yes, "
                     "no, 1, 0)",
                     v);
            return -1;
        }
        return 0;
    }
    case T_ENUM:
    case T_WORD:
    case T_ACTION: {
        const struct el_word *w = el_word_find(k->words, v, strlen(v));
        if (w == NULL) {
            key_fail(ps, line, k, "'%s' is not one of %s", v, words_text(k->words, r, sizeof(r)));
            return -1;
        }
        if (k->type != T_WORD) {
            *(int *)field = w->value;
            return 0;
        }
        v = w->word;
        break;
    }
    case T_ADDR:
    case T_ADDR_UNIX: {
        struct sockaddr_storage ss;
        unsigned sslen;
        const char *why = "unix sockets are not allowed here";
        if ((k->type == T_ADDR && strncmp(v, "unix:", 5) == 0) ||
            el_parse_addr(v, &ss, &sslen, &why) == -1) {
            key_fail(ps, line, k, "'%s': %s", v, why);
            return -1;
        }
        break;
    }
    case T_URLPATH:
        for (const char *p = v; *p; p++)
            if ((unsigned char)*p <= ' ' || *p == 0x7f || v[0] != '/') {
                key_fail(ps, line, k, "'%s' must be empty or a path starting with '/'", v);
                return -1;
            }
        break;
    case T_SECRET:
    case T_SECRET_FILE: {
        bool *present = (bool *)((char *)base + k->flag_off);
        if (*v == '\0') return 0; /* "secret =" leaves a secret_file's key alone */
        uint8_t key[EL_SECRET_LEN];
        if (k->off == offsetof(struct el_config, secret)) {
            if (ps->secret_line != 0) {
                key_fail(ps, line, k,
                         "set either secret or secret_file, not both (the other "
                         "is on line %d)",
                         ps->secret_line);
                return -1;
            }
            ps->secret_line = line;
        }
        if (k->type == T_SECRET && hex_secret(v, strlen(v), key) == -1) {
            key_fail(ps, line, k,
                     "must be exactly 64 hex digits (got %zu characters; make one "
                     "with: openssl rand -hex 32)",
                     strlen(v));
            return -1;
        }
        if (k->type == T_SECRET_FILE && read_secret_file(ps, line, k, v, key) == -1) return -1;
        memcpy(field, key, EL_SECRET_LEN);
        *present = true;
        return 0;
    }
    case T_REDIS: {
        struct el_redis_url u;
        const char *why = "bad address";
        if (el_redis_url_parse(v, &u, &why) == -1) {
            if (strchr(v, '@')) /* the value may hold a password: not repeated */
                key_fail(ps, line, k, "%s", why);
            else
                key_fail(ps, line, k, "'%s': %s", v, why);
            return -1;
        }
        break;
    }
    case T_PASSWORD_FILE:
        return read_password_file(ps, line, k, v, base);
    case T_FILE: {
        char *path = *v ? resolve(ps->cfg, v) : el_strdup("");
        if (*v && readable_file(ps, line, k, path) == -1) {
            free(path);
            return -1;
        }
        free(*(char **)field);
        *(char **)field = path;
        return 0;
    }
    case T_OUTFILE: {
        char *path = *v ? resolve(ps->cfg, v) : el_strdup("");
        char *dir = *v ? dir_of(path) : NULL;
        struct stat st;
        if (dir != NULL && (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode))) {
            key_fail(ps, line, k, "directory %s of %s does not exist", dir, path);
            free(dir);
            free(path);
            return -1;
        }
        free(dir);
        free(*(char **)field);
        *(char **)field = path;
        return 0;
    }
    case T_CIDRS:
        return parse_cidrs(ps, line, k, v);
    case T_MATCH:
        return parse_match(ps, line, k, v, base);
    case T_HOSTS:
        return parse_hosts(ps, line, k, v, base);
    case T_GLOB:
        if (!is_glob(v)) {
            key_fail(ps, line, k,
                     "'%s' must be a path glob starting with '/' (* within a segment, ** "
                     "across; e.g. /impfkampagne/**)",
                     v);
            return -1;
        }
        free(*(char **)field);
        *(char **)field = el_strdup(v);
        return 0;
    case T_ROOM: /* which room has that name is known once the file is read */
        if (*v != '\0' && !room_name_ok(v)) {
            key_fail(ps, line, k, "'%s' is not a room name (1 to %d letters, digits, '-' or '_')",
                     v, EL_ROOM_NAME_MAX - 1);
            return -1;
        }
        snprintf((char *)field, EL_ROOM_NAME_MAX, "%s", v);
        return 0;
    case T_TIME: {
        int64_t ms = 0;
        int off = 0;
        if (*v != '\0' && el_config_parse_time(v, strlen(v), &ms, &off, r, sizeof(r)) == -1) {
            key_fail(ps, line, k,
                     "'%s' %s (e.g. 2027-03-01T09:00:00Z or 2027-03-01T09:00:00+01:00)", v, r);
            return -1;
        }
        *(int64_t *)field = ms;
        *(int *)(void *)((char *)base + k->flag_off) = off;
        if (line != 0 && strcmp(k->name, "opens_at") == 0)
            ((struct el_event_def *)base)->has_opens_at = true;
        return 0;
    }
    }
    /* The string types. */
    free(*(char **)field);
    *(char **)field = el_strdup(v);
    return 0;
}

static bool is_string_type(enum key_type t)
{
    return t == T_STR || t == T_TOKEN || t == T_WORD || t == T_ADDR || t == T_ADDR_UNIX ||
           t == T_REDIS || t == T_PASSWORD_FILE || t == T_URLPATH || t == T_FILE ||
           t == T_OUTFILE;
}

static bool is_room_key(const char *name)
{
    for (size_t i = 0; i < EL_ARRAY_LEN(room_keys); i++)
        if (strcmp(room_keys[i], name) == 0) return true;
    return false;
}

/* The keys of section, comma-separated; for "room NAME" host and path, then
 * the [room] keys a named room may set. */
static const char *known_keys(const char *section, char *buf, size_t n)
{
    size_t used = 0;
    bool named_room = strcmp(section, "room NAME") == 0;
    buf[0] = '\0';
    for (size_t i = 0; i < NKEYS && used < n; i++)
        if (strcmp(keys[i].section, section) == 0)
            used += (size_t)snprintf(buf + used, n - used, "%s%s", used ? ", " : "", keys[i].name);
    for (size_t i = 0; named_room && i < NKEYS && used < n; i++)
        if (strcmp(keys[i].section, "room") == 0 && is_room_key(keys[i].name))
            used += (size_t)snprintf(buf + used, n - used, ", %s", keys[i].name);
    return buf;
}

/* A key in a [room NAME] section: host and path into the room, a [room] key
 * it may set checked into the scratch config and kept for its view. */
static void on_room_key(struct parse *ps, int line, const char *name, const char *value)
{
    struct el_config *cfg = ps->cfg;
    struct room_keys *rk = &ps->rooms[ps->room - cfg->rooms];
    const char *rname = ps->room->name;
    size_t i = 0;
    while (i < NKEYS && ((strcmp(keys[i].section, "room NAME") != 0 &&
                          strcmp(keys[i].section, "room") != 0) ||
                         strcmp(keys[i].name, name) != 0))
        i++;
    if (i == NKEYS) {
        char list[600];
        fail(ps, line, "[room %s] unknown key '%s' (known: %s)", rname, name,
             known_keys("room NAME", list, sizeof(list)));
        return;
    }
    bool own = strcmp(keys[i].section, "room NAME") == 0;
    if (!own && !is_room_key(name)) {
        fail(ps, line,
             "[room %s] %s: every room shares [room]'s store, redis, name, secrets and "
             "bypass_from; set it in [room]",
             rname, name);
        return;
    }
    if (rk->key_line[i] != 0) {
        fail(ps, line, "[room %s] %s: duplicate key (first set on line %d)", rname, name,
             rk->key_line[i]);
        return;
    }
    rk->key_line[i] = line;
    if (own) {
        set_value(ps, &keys[i], ps->room, value, line);
        return;
    }
    if (ps->scratch == NULL) ps->scratch = el_calloc(1, sizeof(*ps->scratch));
    if (set_value(ps, &keys[i], ps->scratch, value, line) == 0) rk->value[i] = el_strdup(value);
}

/* inih's handler. The section argument is ignored: the reader tracks it. */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct parse *ps = user;
    int line = ps->line;
    (void)section;
    if (ps->err != NULL) return 0;
    if (ps->section == NULL) {
        fail(ps, line, "key '%s' outside of any section", name);
        return 0;
    }
    if (ps->room != NULL) {
        on_room_key(ps, line, name, value);
        return ps->err == NULL;
    }
    size_t i = 0;
    while (i < NKEYS &&
           (strcmp(keys[i].section, ps->section) != 0 || strcmp(keys[i].name, name) != 0))
        i++;
    char where[128];
    if (ps->route != NULL)
        snprintf(where, sizeof(where), "[route %s]", ps->route->name);
    else if (ps->event != NULL)
        snprintf(where, sizeof(where), "[event %s]", ps->event->name);
    else
        snprintf(where, sizeof(where), "[%s]", ps->section);
    if (i == NKEYS) {
        char list[600];
        fail(ps, line, "%s unknown key '%s' (known: %s)", where, name,
             known_keys(ps->section, list, sizeof(list)));
        return 0;
    }
    if (ps->key_line[i] != 0) {
        fail(ps, line, "%s %s: duplicate key (first set on line %d)", where, name, ps->key_line[i]);
        return 0;
    }
    ps->key_line[i] = line;
    void *base = ps->route != NULL   ? (void *)ps->route
                 : ps->event != NULL ? (void *)ps->event
                                     : (void *)ps->cfg;
    if (set_value(ps, &keys[i], base, value, line) == -1) return 0;
    if (keys[i].type == T_MATCH) ps->route_has_match = true;
    return 1;
}

/* The end of a section: a route or a named room must have said what it
 * matches. */
static void end_section(struct parse *ps)
{
    if (ps->room != NULL && ps->room->nhosts == 0 && ps->room->path == NULL)
        fail(ps, ps->room->line, "[room %s] matches every request: set host or path",
             ps->room->name);
    if (ps->route != NULL && !ps->route_has_match)
        fail(ps, ps->route->line, "[route %s] has no match (e.g. match = GET /healthz)",
             ps->route->name);
    if (ps->event != NULL) {
        char why[200];
        int line = ps->event->line; /* ends_at before opens_at: at the later of the two */
        if (ps->event->ends_at_ms != 0 && ps->event->ends_at_ms <= ps->event->opens_at_ms)
            line = EL_MAX(EL_MAX(ps->key_line[key_index("opens_at")],
                                 ps->key_line[key_index("ends_at")]),
                          line);
        if (el_config_check_event(ps->event, why, sizeof(why)) == -1)
            fail(ps, line, "[event %s] %s", ps->event->name, why);
    }
    ps->route = NULL;
    ps->event = NULL;
    ps->room = NULL;
    ps->section = NULL;
}

/* [room NAME]: a new room; its view is built once the file is read. */
static void begin_room(struct parse *ps, const char *rname)
{
    struct el_config *cfg = ps->cfg;
    bool ok = room_name_ok(rname);
    if (!ok) {
        fail(ps, ps->line, "[room %s]: a room name is 1 to %d letters, digits, '-' or '_'", rname,
             EL_ROOM_NAME_MAX - 1);
        return;
    }
    for (size_t i = 1; i < cfg->nrooms; i++)
        if (strcmp(cfg->rooms[i].name, rname) == 0) {
            fail(ps, ps->line, "duplicate section [room %s] (first on line %d)", rname,
                 cfg->rooms[i].line);
            return;
        }
    if (cfg->nrooms == EL_MAX_ROOMS) {
        fail(ps, ps->line, "more than %d room sections besides [room]", EL_MAX_ROOMS - 1);
        return;
    }
    struct el_room_def *r = &cfg->rooms[cfg->nrooms++];
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", rname);
    r->line = ps->line;
    ps->room = r;
    ps->section = "room NAME";
}

/* [event NAME]: a new event with the table's defaults. */
static void begin_event(struct parse *ps, const char *ename)
{
    struct el_config *cfg = ps->cfg;
    char why[200];
    struct el_event_def probe = {.has_opens_at = true, .prequeue_s = 0};
    snprintf(probe.name, sizeof(probe.name), "%s", ename);
    if (strlen(ename) >= EL_EVENT_NAME_MAX ||
        el_config_check_event(&probe, why, sizeof(why)) == -1) {
        fail(ps, ps->line, "[event %s]: %s", ename,
             strlen(ename) >= EL_EVENT_NAME_MAX ? "the name is longer than 63 bytes" : why);
        return;
    }
    for (size_t i = 0; i < cfg->nevents; i++)
        if (strcmp(cfg->events[i].name, ename) == 0) {
            fail(ps, ps->line, "duplicate section [event %s] (first on line %d)", ename,
                 cfg->events[i].line);
            return;
        }
    if (cfg->nevents == EL_MAX_EVENTS) {
        fail(ps, ps->line, "more than %d event sections", EL_MAX_EVENTS);
        return;
    }
    struct el_event_def *ev = &cfg->events[cfg->nevents++];
    memset(ev, 0, sizeof(*ev));
    snprintf(ev->name, sizeof(ev->name), "%s", ename);
    ev->line = ps->line;
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, "event") == 0) {
            set_value(ps, &keys[i], ev, keys[i].def, 0);
            ps->key_line[i] = 0;
        }
    ps->event = ev;
    ps->section = "event";
}

static void begin_section(struct parse *ps, char *name)
{
    static const char *const plain[] = {"server", "backend", "trigger", "room"};
    struct el_config *cfg = ps->cfg;
    end_section(ps);
    for (size_t i = 0; i < EL_ARRAY_LEN(plain); i++)
        if (strcmp(name, plain[i]) == 0) {
            ps->section = plain[i];
            return;
        }
    if (strncmp(name, "room", 4) == 0 && (name[4] == ' ' || name[4] == '\t')) {
        char *rname = name + 4;
        rname += el_http_skip_ows(rname, rname + strlen(rname)) - rname;
        begin_room(ps, rname);
        return;
    }
    if (strncmp(name, "event", 5) == 0 && (name[5] == '\0' || name[5] == ' ' || name[5] == '\t')) {
        char *ename = name + 5;
        ename += el_http_skip_ows(ename, ename + strlen(ename)) - ename;
        if (*ename == '\0') fail(ps, ps->line, "an event section needs a name: [event NAME]");
        else begin_event(ps, ename);
        return;
    }
    if (strncmp(name, "route", 5) != 0 || (name[5] != '\0' && name[5] != ' ' && name[5] != '\t')) {
        fail(ps, ps->line,
             "unknown section [%s] (allowed: server, backend, trigger, room, "
             "room NAME, route NAME, event NAME)",
             name);
        return;
    }
    char *rname = name + 5;
    rname += el_http_skip_ows(rname, rname + strlen(rname)) - rname;
    if (*rname == '\0') {
        fail(ps, ps->line, "a route section needs a name: [route NAME]");
        return;
    }
    for (const char *p = rname; *p; p++)
        if ((unsigned char)*p <= ' ') {
            fail(ps, ps->line, "route name '%s' must not contain spaces", rname);
            return;
        }
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (strcmp(cfg->routes[i].name, rname) == 0) {
            fail(ps, ps->line, "duplicate section [route %s] (first on line %d)", rname,
                 cfg->routes[i].line);
            return;
        }
    if (cfg->nroutes == EL_MAX_ROUTES) {
        fail(ps, ps->line, "more than %d route sections", EL_MAX_ROUTES);
        return;
    }
    struct el_route *r = &cfg->routes[cfg->nroutes++];
    r->name = el_strdup(rname);
    r->method = el_strdup("*");
    r->glob = el_strdup("/**");
    r->action = EL_ROUTE_QUEUE;
    r->line = ps->line;
    ps->route = r;
    ps->route_has_match = false;
    ps->section = "route";
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, "route") == 0) ps->key_line[i] = 0;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

/* inih's line reader: see the invariants at the top. Hands inih one line
 * per call, as an empty line when the line is ours to handle. */
static char *read_line(char *str, int num, void *stream)
{
    struct parse *ps = stream;
    if (ps->err != NULL) return NULL;
    ssize_t n = getline(&ps->buf, &ps->cap, ps->f);
    if (n == -1) return NULL;
    ps->line++;
    char *s = ps->buf;
    if (ps->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3;
    if ((size_t)n != strlen(ps->buf)) {
        fail(ps, ps->line, "NUL byte in line");
        return NULL;
    }
    while (is_blank(*s))
        s++;
    if (*s == ';' || *s == '#' || *s == '\0') {
        str[0] = '\0';
        return str;
    }
    for (char *p = s + 1; *p; p++)
        if ((*p == ';' || *p == '#') && is_blank(p[-1])) {
            *p = '\0';
            break;
        }
    size_t len = strlen(s);
    while (len > 0 && is_blank(s[len - 1]))
        s[--len] = '\0';

    if (*s == '[') {
        char *close = strchr(s, ']');
        if (close == NULL || close[1] != '\0') {
            fail(ps, ps->line, "a section header must be [NAME] alone on its line");
            return NULL;
        }
        *close = '\0';
        char *name = s + 1;
        while (is_blank(*name))
            name++;
        size_t nlen = strlen(name);
        while (nlen > 0 && is_blank(name[nlen - 1]))
            name[--nlen] = '\0';
        begin_section(ps, name);
        str[0] = '\0';
        return str;
    }
    if (len + 2 <= (size_t)num) {
        memcpy(str, s, len);
        str[len] = '\n';
        str[len + 1] = '\0';
        return str;
    }
    /* Longer than inih's buffer: split key = value here. */
    char *eq = strchr(s, '=');
    if (eq == NULL) {
        fail(ps, ps->line, "expected key = value, [section] or a comment");
        return NULL;
    }
    char *val = eq + 1;
    while (eq > s && is_blank(eq[-1]))
        eq--;
    *eq = '\0';
    while (is_blank(*val))
        val++;
    on_key(ps, NULL, s, val);
    str[0] = '\0';
    return str;
}

static size_t key_index(const char *name)
{
    size_t i = 0;
    while (strcmp(keys[i].name, name) != 0)
        i++; /* only called with names in the table */
    return i;
}

/* "NAME (VALUE)" for a key the file sets; for one it does not, the text says
 * so and names the key to set, since the user never wrote that value. In a
 * room's view, a key its section does not set may come from [room]
 * (room_line). */
static const char *key_value_text(const char *name, double v, int line, int room_line,
                                  char *buf, size_t n)
{
    char num[64];
    if (line != 0)
        snprintf(buf, n, "%s (%s)", name, num_text(v, num, sizeof(num)));
    else if (room_line != 0)
        snprintf(buf, n, "%s (%s, from [room] on line %d: this section does not set %s)", name,
                 num_text(v, num, sizeof(num)), room_line, name);
    else
        snprintf(buf, n, "%s (%s, the default: the file does not set %s; set it)", name,
                 num_text(v, num, sizeof(num)), name);
    return buf;
}

/* Bounds the file leaves unset follow what it sets, so no default fights a
 * value the user chose: admit_per_s, unset, starts at 10 kept within the
 * min/max the file sets; min_admit_per_s, unset, is min(1, admit_per_s);
 * max_admit_per_s, unset, max(100, admit_per_s); release_below_ms, unset,
 * min(150, queue_above_ms / 2). */
static void follow_defaults(struct el_config *cfg, int ad, int mn, int mx, int qa, int rb)
{
    if (ad == 0) {
        if (mx != 0 && cfg->admit_per_s > cfg->max_admit_per_s)
            cfg->admit_per_s = cfg->max_admit_per_s;
        if (mn != 0 && cfg->admit_per_s < cfg->min_admit_per_s)
            cfg->admit_per_s = cfg->min_admit_per_s;
    }
    if (mn == 0) cfg->min_admit_per_s = EL_MIN(cfg->min_admit_per_s, cfg->admit_per_s);
    if (mx == 0) cfg->max_admit_per_s = EL_MAX(cfg->max_admit_per_s, cfg->admit_per_s);
    cfg->min_admit_per_s_set = mn != 0;
    cfg->max_admit_per_s_set = mx != 0;
    if (rb == 0 && qa != 0)
        cfg->release_below_ms = EL_MIN(cfg->release_below_ms, cfg->queue_above_ms / 2);
}

/* Where a check looks: the section's label, the lines of its keys, and for
 * a room's view the lines of [room]'s keys it started from (else NULL). */
struct check_scope {
    const char *where;   /* "room", "room campaign", ... */
    const int *kl;       /* key lines of the section (0: not set there) */
    const int *room_kl;  /* [room]'s key lines, for a view; NULL for the whole file */
};

/* Checks between keys, reported at the line of the later key. A message
 * about a key the file does not set says so (key_value_text). */

/* "[SECTION] LO must not be above HI", at the later of the two keys' lines,
 * naming a key the file does not set (key_value_text). */
static void not_above_in(struct parse *ps, const struct check_scope *sc, const char *lo,
                         double lo_v, const char *hi, double hi_v)
{
    if (lo_v <= hi_v) return;
    char a[200], b[200];
    size_t li = key_index(lo), hi_i = key_index(hi);
    int ll = sc->kl[li], hl = sc->kl[hi_i];
    int rl = sc->room_kl ? sc->room_kl[li] : 0, rh = sc->room_kl ? sc->room_kl[hi_i] : 0;
    fail(ps, EL_MAX(ll, hl), "[%s] %s must not be above %s", sc->where,
         key_value_text(lo, lo_v, ll, rl, a, sizeof(a)),
         key_value_text(hi, hi_v, hl, rh, b, sizeof(b)));
}

static void not_above(struct parse *ps, const char *section, const char *lo, double lo_v,
                      const char *hi, double hi_v)
{
    struct check_scope sc = {section, ps->key_line, NULL};
    not_above_in(ps, &sc, lo, lo_v, hi, hi_v);
}

/* The checks between [room]'s keys, for [room] and for each room's view. */
static void room_checks(struct parse *ps, struct el_config *cfg, const struct check_scope *sc)
{
    not_above_in(ps, sc, "min_admit_per_s", cfg->min_admit_per_s, "max_admit_per_s",
                 cfg->max_admit_per_s);
    not_above_in(ps, sc, "min_admit_per_s", cfg->min_admit_per_s, "admit_per_s",
                 cfg->admit_per_s);
    not_above_in(ps, sc, "admit_per_s", cfg->admit_per_s, "max_admit_per_s",
                 cfg->max_admit_per_s);
    not_above_in(ps, sc, "claim_s", cfg->claim_s, "keep_place_s", cfg->keep_place_s);
}

static void cross_check(struct parse *ps)
{
    struct el_config *cfg = ps->cfg;
    int *kl = ps->key_line;
#define LINE_OF(name) kl[key_index(name)]
    int qa = LINE_OF("queue_above_ms"), rb = LINE_OF("release_below_ms");
    int mn = LINE_OF("min_admit_per_s"), ad = LINE_OF("admit_per_s"),
        mx = LINE_OF("max_admit_per_s");
    follow_defaults(cfg, ad, mn, mx, qa, rb);
    not_above(ps, "trigger", "release_below_ms", cfg->release_below_ms, "queue_above_ms",
              cfg->queue_above_ms);
    struct check_scope room = {"room", kl, NULL};
    room_checks(ps, cfg, &room);
    not_above(ps, "backend", "min_concurrency", cfg->min_concurrency, "max_concurrency_cap",
              cfg->max_concurrency_cap);
    if (cfg->proxy_protocol == EL_PROXY_PROTOCOL_V2 && cfg->ntrusted_proxies == 0)
        fail(ps, LINE_OF("proxy_protocol"),
             "[server] proxy_protocol = v2 needs trusted_proxies (the addresses of the "
             "proxies allowed to send the header)");
    struct el_redis_url ru;
    const char *why;
    if (cfg->redis_password[0] && el_redis_url_parse(cfg->redis, &ru, &why) == 0 &&
        ru.password[0])
        fail(ps, EL_MAX(LINE_OF("redis"), LINE_OF("redis_password_file")),
             "[room] the password is in both redis and redis_password_file: keep it in the file");
#undef LINE_OF
}

/* A copy of the whole config for a room's view: every string its own, no
 * routes, events or rooms. */
static struct el_config *copy_config(const struct el_config *cfg)
{
    struct el_config *v = el_malloc(sizeof(*v));
    memcpy(v, cfg, sizeof(*v));
    for (size_t i = 0; i < NKEYS; i++)
        if (is_string_type(keys[i].type)) {
            char **field = (char **)(void *)((char *)v + keys[i].off);
            *field = el_strdup(*field);
        }
    v->path = el_strdup(cfg->path);
    v->dir = el_strdup(cfg->dir);
    v->redis_password = el_strdup(cfg->redis_password);
    memset(v->routes, 0, sizeof(v->routes));
    memset(v->events, 0, sizeof(v->events));
    memset(v->rooms, 0, sizeof(v->rooms));
    v->nroutes = v->nevents = v->nrooms = 0;
    return v;
}

/* rooms[i]'s view: the whole file's values, the section's keys applied with
 * the same setter, then [room]'s follow rule and checks with the section's
 * own lines (unset bounds follow what the section sets). A bound that
 * [room] or the section sets counts as set for POST /rate (check_rate). */
static void build_view(struct parse *ps, size_t i)
{
    struct el_config *cfg = ps->cfg;
    struct el_room_def *r = &cfg->rooms[i];
    const struct room_keys *rk = &ps->rooms[i];
    struct el_config *v = copy_config(cfg);
    r->cfg = v;
    ps->room = r;
    for (size_t k = 0; k < NKEYS && ps->err == NULL; k++)
        if (rk->value[k] != NULL) set_value(ps, &keys[k], v, rk->value[k], rk->key_line[k]);
    free(v->room_name);
    v->room_name = el_sprintf("%s.%s", cfg->room_name, r->name);
    const int *kl = rk->key_line;
    follow_defaults(v, kl[key_index("admit_per_s")], kl[key_index("min_admit_per_s")],
                    kl[key_index("max_admit_per_s")], 0, 0);
    v->min_admit_per_s_set |= cfg->min_admit_per_s_set;
    v->max_admit_per_s_set |= cfg->max_admit_per_s_set;
    char where[EL_ROOM_NAME_MAX + 8];
    snprintf(where, sizeof(where), "room %s", r->name);
    struct check_scope sc = {where, kl, ps->key_line};
    room_checks(ps, v, &sc);
    if (!cfg->has_secret && v->mode != EL_MODE_OFF)
        fail(ps, kl[key_index("mode")],
             "[room %s] mode = %s needs a secret: set secret or secret_file in [room]", r->name,
             el_mode_name(v->mode));
    char name[EL_ROOM_NAME_MAX]; /* a copy: the compiler cannot tell the fields apart */
    memcpy(name, r->name, sizeof(name));
    snprintf(r->pass_cookie, sizeof(r->pass_cookie), "einlass_pass_%s", name);
    snprintf(r->ticket_cookie, sizeof(r->ticket_cookie), "einlass_ticket_%s", name);
    ps->room = NULL;
}

/* Each event with room = NAME moves into that room's view; [room]'s stay. */
static void place_events(struct parse *ps)
{
    struct el_config *cfg = ps->cfg;
    size_t kept = 0;
    for (size_t k = 0; k < cfg->nevents; k++) {
        struct el_event_def *ev = &cfg->events[k];
        size_t i = 1;
        while (ev->room[0] != '\0' && i < cfg->nrooms && strcmp(cfg->rooms[i].name, ev->room) != 0)
            i++;
        if (ev->room[0] == '\0') {
            cfg->events[kept++] = *ev;
        } else if (i == cfg->nrooms) {
            fail(ps, ev->line, "[event %s] room: there is no [room %s] section", ev->name,
                 ev->room);
            return;
        } else {
            struct el_config *v = cfg->rooms[i].cfg;
            v->events[v->nevents++] = *ev;
        }
    }
    cfg->nevents = kept;
}

int el_config_check_rate(const struct el_config *cfg, double per_s, char *why, size_t n)
{
    const struct key *k = &keys[key_index("admit_per_s")];
    char a[64], b[64];
    /* A room's view (nrooms 0) is named by its section: the room name after
     * its last '.' (a NAME holds none). */
    char where[EL_ROOM_NAME_MAX + 8] = "[room]";
    const char *dot =
        cfg->nrooms == 0 && cfg->room_name != NULL ? strrchr(cfg->room_name, '.') : NULL;
    if (dot != NULL) snprintf(where, sizeof(where), "[room %s]", dot + 1);
    if (!isfinite(per_s) || per_s < k->min || per_s > k->max) {
        snprintf(why, n, "%s admit_per_s: %s is %s the %s %s", where, num_text(per_s, a, sizeof(a)),
                 per_s < k->min ? "below" : "above", per_s < k->min ? "minimum" : "maximum",
                 num_text(per_s < k->min ? k->min : k->max, b, sizeof(b)));
        return -1;
    }
    if (cfg->min_admit_per_s_set && per_s < cfg->min_admit_per_s) {
        snprintf(why, n, "%s min_admit_per_s (%s) must not be above admit_per_s (%s)", where,
                 num_text(cfg->min_admit_per_s, a, sizeof(a)), num_text(per_s, b, sizeof(b)));
        return -1;
    }
    if (cfg->max_admit_per_s_set && per_s > cfg->max_admit_per_s) {
        snprintf(why, n, "%s admit_per_s (%s) must not be above max_admit_per_s (%s)", where,
                 num_text(per_s, a, sizeof(a)), num_text(cfg->max_admit_per_s, b, sizeof(b)));
        return -1;
    }
    return 0;
}

/* The directory of path, absolute when it can be resolved. */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash == NULL   ? el_strdup(".")
                : slash == path ? el_strdup("/")
                                : el_strndup(path, (size_t)(slash - path));
    char *abs = realpath(dir, NULL);
    if (abs == NULL) return dir;
    free(dir);
    char *copy = el_strdup(abs); /* realpath's memory is not ours to mix with el_ */
    free(abs);
    return copy;
}

static void apply_defaults(struct parse *ps)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(keys[i].section, "route") == 0 || strcmp(keys[i].section, "event") == 0 ||
            strcmp(keys[i].section, "room NAME") == 0)
            continue;
        if (set_value(ps, &keys[i], ps->cfg, keys[i].def, 0) == -1) {
            el_err("config: bad built-in default: %s", ps->err);
            abort();
        }
    }
}

static void free_room_keys(struct parse *ps)
{
    for (size_t i = 0; i < EL_MAX_ROOMS; i++)
        for (size_t k = 0; k < NKEYS; k++)
            free(ps->rooms[i].value[k]);
    el_config_free(ps->scratch);
}

int el_config_load(const char *path, struct el_config **out, char **err)
{
    struct parse ps;
    memset(&ps, 0, sizeof(ps));
    ps.file = path;
    ps.cfg = el_calloc(1, sizeof(*ps.cfg));
    ps.cfg->path = el_strdup(path);
    ps.cfg->dir = dir_of(path);
    ps.cfg->nrooms = 1; /* rooms[0] is [room]; [room NAME] sections follow */
    apply_defaults(&ps);

    ps.f = fopen(path, "r");
    if (ps.f == NULL) {
        fail(&ps, 0, "cannot open: %s", strerror(errno));
        goto fail;
    }
    int first = ini_parse_stream(read_line, &ps, on_key, &ps);
    if (ps.err == NULL && ferror(ps.f)) fail(&ps, ps.line, "read error: %s", strerror(errno));
    fclose(ps.f);
    free(ps.buf);
    /* inih's own complaints (a line without '=') come with its line number,
     * which is ours too since the reader hands it one line per call. */
    if (first > 0 && (ps.err == NULL || first < ps.err_line)) {
        free(ps.err);
        ps.err = NULL;
        fail(&ps, first, "expected key = value, [section] or a comment");
    }
    if (ps.err != NULL) goto fail;
    end_section(&ps);
    cross_check(&ps);
    if (ps.err != NULL) goto fail;

    struct el_config *cfg = ps.cfg;
    if (!cfg->has_secret) {
        if (cfg->mode != EL_MODE_OFF) {
            fail(&ps, 0,
                 "[room] no secret: set secret or secret_file (make one with: openssl "
                 "rand -hex 32)");
            goto fail;
        }
        /* mode = off sets no cookies; a random key still lets an admin turn
         * the room on for this one instance. */
        if (RAND_bytes(cfg->secret, EL_SECRET_LEN) != 1) {
            fail(&ps, 0, "[room] cannot generate a random secret");
            goto fail;
        }
    }
    for (size_t i = 1; i < cfg->nrooms && ps.err == NULL; i++)
        build_view(&ps, i);
    if (ps.err == NULL) place_events(&ps);
    if (ps.err != NULL) goto fail;
    struct el_room_def *r0 = &cfg->rooms[0];
    snprintf(r0->pass_cookie, sizeof(r0->pass_cookie), "einlass_pass");
    snprintf(r0->ticket_cookie, sizeof(r0->ticket_cookie), "einlass_ticket");
    r0->cfg = cfg;
    free_room_keys(&ps);
    *out = cfg;
    return 0;
fail:
    free_room_keys(&ps);
    el_config_free(ps.cfg);
    *err = ps.err;
    return -1;
}

const char *el_config_room_label(const struct el_config *cfg, size_t i)
{
    return i == 0 ? cfg->room_name : cfg->rooms[i].name;
}

void el_config_free(struct el_config *cfg)
{
    if (cfg == NULL) return;
    for (size_t i = 0; i < NKEYS; i++)
        if (is_string_type(keys[i].type)) free(*(char **)((char *)cfg + keys[i].off));
    for (size_t i = 0; i < cfg->nroutes; i++) {
        free(cfg->routes[i].name);
        free(cfg->routes[i].method);
        free(cfg->routes[i].glob);
    }
    for (size_t i = 1; i < cfg->nrooms; i++) { /* rooms[0].cfg is cfg itself */
        for (size_t h = 0; h < cfg->rooms[i].nhosts; h++)
            free(cfg->rooms[i].hosts[h]);
        free(cfg->rooms[i].path);
        el_config_free(cfg->rooms[i].cfg);
    }
    free(cfg->path);
    free(cfg->dir);
    if (cfg->redis_password) OPENSSL_cleanse(cfg->redis_password, strlen(cfg->redis_password));
    free(cfg->redis_password);
    free(cfg);
}

/* What a value may be, for the printed defaults; NULL where the help says it. */
static const char *allowed_text(const struct key *k, char *buf, size_t n)
{
    char r[160];
    switch (k->type) {
    case T_INT:
    case T_DOUBLE:
    case T_SIZE:
    case T_U64:
        return range_text(k, buf, n);
    case T_WORKERS:
    case T_AUTO_INT:
        snprintf(buf, n, "auto or %s", range_text(k, r, sizeof(r)));
        return buf;
    case T_BOOL:
        return "on or off";
    case T_WORD:
    case T_ENUM:
    case T_ACTION:
        return words_text(k->words, buf, n);
    case T_SECRET:
        return "64 hex digits";
    default:
        return NULL;
    }
}

/* "mode, admit_per_s, ...": the [room] keys a [room NAME] may set, in table order. */
static const char *room_keys_text(char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < NKEYS && used < n; i++)
        if (strcmp(keys[i].section, "room") == 0 && is_room_key(keys[i].name))
            used += (size_t)snprintf(buf + used, n - used, "%s%s", used ? ", " : "", keys[i].name);
    return buf;
}

void el_config_print_defaults(FILE *f)
{
    const char *section = "";
    fprintf(f, "; einlass configuration: every key with its default.\n"
               "; Comments start with ';' or '#'. Relative paths start at this file's "
               "directory.\n"
               "; SIGHUP re-reads the file.\n");
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        char allowed[200];
        if (strcmp(section, k->section) != 0) {
            section = k->section;
            char rk[400];
            if (strcmp(section, "room NAME") == 0)
                fprintf(f, "\n; Up to %d [room NAME] sections: rooms of their own, each with its own\n"
                           "; queue, rate, page and cookies; a request goes to the first whose host\n"
                           "; and path match, else to [room]. Besides host and path a named room\n"
                           "; may set these [room] keys (the rest is [room]'s):\n; %s\n"
                           "; [room campaign]\n",
                        EL_MAX_ROOMS - 1, room_keys_text(rk, sizeof(rk)));
            else if (strcmp(section, "route") == 0)
                fprintf(f, "\n; Any number of [route NAME] sections; the first match wins.\n"
                           "; [route cancel]\n");
            else if (strcmp(section, "event") == 0)
                fprintf(f, "\n; Any number of [event NAME] sections: scheduled openings with a "
                           "pre-queue.\n; [event vaccination]\n");
            else
                fprintf(f, "\n[%s]\n", section);
        }
        const char *what = allowed_text(k, allowed, sizeof(allowed));
        fprintf(f, "; %s%s%s%s\n", k->help, what ? " (" : "", what ? what : "", what ? ")" : "");
        if (!k->reloadable) fprintf(f, "; (takes effect on restart, not on reload)\n");
        if (k->example != NULL && (k->def[0] == '\0' || strcmp(k->section, "route") == 0 ||
                                   strcmp(k->section, "event") == 0))
            fprintf(f, "; %s = %s\n", k->name, k->example);
        else
            fprintf(f, "%s =%s%s\n", k->name, k->def[0] ? " " : "", k->def);
    }
}

/* Text for the documentation: '|' escaped for Markdown tables; for roff a
 * backslash doubled, '-' as \- and a leading '.' or '\'' guarded. */
static void doc_text(FILE *f, enum el_config_doc fmt, const char *s)
{
    if (fmt == EL_CONFIG_DOC_ROFF && (*s == '.' || *s == '\'')) fputs("\\&", f);
    for (; *s; s++) {
        if (fmt == EL_CONFIG_DOC_MARKDOWN && *s == '|')
            fputs("\\|", f);
        else if (fmt == EL_CONFIG_DOC_ROFF && *s == '\\')
            fputs("\\e", f);
        else if (fmt == EL_CONFIG_DOC_ROFF && *s == '-')
            fputs("\\-", f);
        else
            fputc(*s, f);
    }
}

void el_config_print_keys(FILE *f, enum el_config_doc fmt)
{
    const char *section = "";
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        char allowed[200];
        if (strcmp(section, k->section) != 0) {
            section = k->section;
            bool route = strcmp(section, "route") == 0, event = strcmp(section, "event") == 0;
            const char *title = route ? "route NAME" : event ? "event NAME" : section;
            char rk[400], room_intro[700];
            snprintf(room_intro, sizeof(room_intro),
                     "Up to %d sections: rooms of their own (queue, rate, page, status code, "
                     "cookies); a request goes to the first whose host and path both match, "
                     "else to [room]. Besides host and path, a named room may set these [room] "
                     "keys: %s; the others are [room]'s.",
                     EL_MAX_ROOMS - 1, room_keys_text(rk, sizeof(rk)));
            const char *intro = route   ? "Any number of sections; the first match wins."
                                : event ? "Any number of sections (up to 32): scheduled openings "
                                          "with a pre-queue drawn at random."
                                : strcmp(section, "room NAME") == 0 ? room_intro
                                                                    : NULL;
            if (fmt == EL_CONFIG_DOC_MARKDOWN)
                fprintf(f, "%s### [%s]\n\n%s%s| key | default | allowed | on reload | meaning |\n"
                           "|---|---|---|---|---|\n",
                        i ? "\n" : "", title, intro ? intro : "", intro ? "\n\n" : "");
            else
                fprintf(f, ".SS [%s]\n%s%s", title, intro ? intro : "", intro ? "\n" : "");
        }
        const char *what = allowed_text(k, allowed, sizeof(allowed));
        const char *def = k->def[0] ? k->def : "";
        if (fmt == EL_CONFIG_DOC_MARKDOWN) {
            fprintf(f, "| `%s` | %s%s%s | ", k->name, def[0] ? "`" : "(empty)", def,
                    def[0] ? "`" : "");
            doc_text(f, fmt, what ? what : "");
            fprintf(f, " | %s | ", k->reloadable ? "applies" : "needs a restart");
            doc_text(f, fmt, k->help);
            if (k->example != NULL) {
                fputs(" (e.g. `", f);
                doc_text(f, fmt, k->example);
                fputs("`)", f);
            }
            fputs(" |\n", f);
        } else {
            fprintf(f, ".TP\n.B %s\n", k->name);
            doc_text(f, fmt, k->help);
            fputs(".\n", f);
            fputs("Default: ", f);
            doc_text(f, fmt, def[0] ? def : "empty");
            if (what != NULL) {
                fputs("; allowed: ", f);
                doc_text(f, fmt, what);
            }
            if (k->example != NULL) {
                fputs("; e.g. ", f);
                doc_text(f, fmt, k->example);
            }
            fputs(k->reloadable ? ".\n" : ". A change takes effect on restart, not on reload.\n",
                  f);
        }
    }
}

static bool fields_equal(const struct key *k, const struct el_config *a, const struct el_config *b)
{
    const char *x = (const char *)a + k->off, *y = (const char *)b + k->off;
    if (is_string_type(k->type)) return strcmp(*(char *const *)x, *(char *const *)y) == 0;
    switch (k->type) {
    case T_INT:
    case T_WORKERS:
    case T_AUTO_INT:
    case T_ENUM:
        return *(const int *)x == *(const int *)y;
    case T_DOUBLE:
        return *(const double *)x == *(const double *)y;
    case T_SIZE:
        return *(const size_t *)x == *(const size_t *)y;
    case T_U64:
        return *(const uint64_t *)x == *(const uint64_t *)y;
    case T_BOOL:
        return *(const bool *)x == *(const bool *)y;
    default:
        return memcmp(x, y, k->type == T_CIDRS ? sizeof(a->bypass_from) : EL_SECRET_LEN) == 0;
    }
}

static int digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        *v = *v * 10 + (s[i] - '0');
    }
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int el_config_parse_time(const char *s, size_t n, int64_t *ms, int *offset_min, char *why,
                         size_t nwhy)
{
    int y, mo, d, h, mi, sec, frac = 0, oh = 0, om = 0, sign = 0;
    size_t i = 19;
    if (n < 19 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &sec)) {
        snprintf(why, nwhy, "is not YYYY-MM-DDTHH:MM:SS followed by Z or an offset");
        return -1;
    }
    if (i < n && s[i] == '.') {
        size_t k = ++i, scale = 100;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            frac += (int)scale * (s[i] - '0');
            scale /= 10;
            i++;
        }
        if (i == k) {
            snprintf(why, nwhy, "has no digits after the '.'");
            return -1;
        }
    }
    if (i < n && (s[i] == 'Z' || s[i] == 'z') && i + 1 == n) {
        sign = 0;
    } else if (i < n && (s[i] == '+' || s[i] == '-') && n - i == 6 && !digits(s + i + 1, 2, &oh) &&
               s[i + 3] == ':' && !digits(s + i + 4, 2, &om) && oh <= 23 && om <= 59) {
        sign = s[i] == '+' ? 1 : -1;
    } else {
        snprintf(why, nwhy, "needs an offset at the end: Z, +HH:MM or -HH:MM (no local time)");
        return -1;
    }
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
        (mo == 2 && d == 29 && !leap) || h > 23 || mi > 59 || sec > 60) {
        snprintf(why, nwhy, "is not a valid date and time (from 1970)");
        return -1;
    }
    if (sec == 60) sec = 59; /* a leap second: its last representable moment */
    int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
    t -= sign * (oh * 3600 + om * 60);
    *ms = t * 1000 + frac;
    if (offset_min) *offset_min = sign * (oh * 60 + om);
    return 0;
}

int el_config_check_event(const struct el_event_def *ev, char *why, size_t nwhy)
{
    size_t len = strnlen(ev->name, sizeof(ev->name));
    if (len == 0 || len >= sizeof(ev->name)) {
        snprintf(why, nwhy, "an event needs a name of 1 to %d bytes", EL_EVENT_NAME_MAX - 1);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        char c = ev->name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.')) {
            snprintf(why, nwhy, "event name '%s' may hold only letters, digits, '-', '_' and '.'",
                     ev->name);
            return -1;
        }
    }
    if (!ev->has_opens_at) {
        snprintf(why, nwhy, "has no opens_at (e.g. opens_at = 2027-03-01T09:00:00+01:00)");
        return -1;
    }
    if (ev->prequeue_s < 0 || ev->prequeue_s > 604800) {
        snprintf(why, nwhy, "prequeue_s: %d is not in 0..604800", ev->prequeue_s);
        return -1;
    }
    if (ev->ends_at_ms != 0 && ev->ends_at_ms <= ev->opens_at_ms) {
        snprintf(why, nwhy, "ends_at must be after opens_at");
        return -1;
    }
    return 0;
}

int el_config_log_level(const struct el_config *cfg)
{
    const struct el_word *w =
        el_word_find(el_log_level_words, cfg->log_level, strlen(cfg->log_level));
    return w != NULL ? w->value : EL_LOG_INFO;
}

const char *el_mode_name(int mode)
{
    const char *w = el_word_name(el_mode_words, mode);
    return w != NULL ? w : "auto";
}

int el_mode_parse(const char *s, size_t n, int *mode)
{
    const struct el_word *w = el_word_find(el_mode_words, s, n);
    if (w == NULL) return -1;
    *mode = w->value;
    return 0;
}

const char *el_config_restart_key(const struct el_config *old, const struct el_config *new_)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (!keys[i].reloadable && !fields_equal(&keys[i], old, new_)) return keys[i].name;
    return NULL;
}

void el_config_inherit(struct el_config *cfg, const struct el_config *old)
{
    /* A new secret keeps the old one for verification (key rotation). */
    if (memcmp(cfg->secret, old->secret, EL_SECRET_LEN) != 0 && !cfg->has_previous_secret) {
        memcpy(cfg->previous_secret, old->secret, EL_SECRET_LEN);
        cfg->has_previous_secret = true;
    }
    /* The rooms' views verify tokens too. */
    for (size_t i = 1; i < cfg->nrooms; i++) {
        memcpy(cfg->rooms[i].cfg->previous_secret, cfg->previous_secret, EL_SECRET_LEN);
        cfg->rooms[i].cfg->has_previous_secret = cfg->has_previous_secret;
    }
}

bool el_config_bypass_addr(const struct el_config *cfg, const struct sockaddr *addr)
{
    return el_proxy_addr_match(cfg->bypass_from, cfg->nbypass_from, addr);
}

bool el_config_trusted_addr(const struct el_config *cfg, const struct sockaddr *addr)
{
    return el_proxy_addr_match(cfg->trusted_proxies, cfg->ntrusted_proxies, addr);
}
