/* journal.c - the journal of writes whose outcome is unknown (journal.h).
 *
 * Invariants:
 *  - Workers never touch the file: el_journal_record copies a line into the
 *    ring under ring_mu and returns. A full ring drops the line (counted),
 *    it never waits.
 *  - The main thread alone owns the file (fd, size, path): flush, rotate,
 *    reopen and the admin API's query all run there. A flush takes the
 *    queued lines out under the lock into its own staging buffer and writes
 *    them with the lock released, so a slow disk holds up only the main
 *    thread, and at most one fdatasync per flush (per control tick, 100 ms)
 *    is paid, only when something was written.
 *  - A line is queued exactly once per request (the caller's
 *    struct el_journal_req.noted), and counted in the route's counter when
 *    queued (or in dropped when not).
 *  - The file is opened O_APPEND, so lines from this process are never
 *    interleaved with anything, and a line is written whole by one write()
 *    of the batch (a short write is retried from where it stopped). */
#include "einlass/journal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "einlass/common.h"
#include "einlass/config.h"
#include "einlass/http.h"
#include "einlass/route.h"

#define ROUTES_MAX 128 /* distinct route labels counted; more go to the last one */
#define ROUTE_NAME_MAX 64

/* ---- the pure half ---- */

bool el_journal_wants(const char *method, size_t len)
{
    static const char *safe[] = {"GET", "HEAD", "OPTIONS", "TRACE"};
    for (size_t i = 0; i < EL_ARRAY_LEN(safe); i++)
        if (len == strlen(safe[i]) && memcmp(method, safe[i], len) == 0) return false;
    return true;
}

struct out {
    char *p;
    size_t len, cap;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->len + n > o->cap) n = o->cap - o->len;
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

/* s[0..n) as the inside of a JSON string, at most budget bytes of output
 * (escapes are never split). Returns false if it was cut. */
static bool put_escaped(struct out *o, const char *s, size_t n, size_t budget)
{
    static const char hex[] = "0123456789abcdef";
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[6];
        size_t el = 0;
        if (c == '"' || c == '\\') {
            e[0] = '\\';
            e[1] = (char)c;
            el = 2;
        } else if (c < 0x20 || c >= 0x7f) {
            memcpy(e, "\\u00", 4);
            e[4] = hex[c >> 4];
            e[5] = hex[c & 15];
            el = 6;
        } else {
            e[0] = (char)c;
            el = 1;
        }
        if (used + el > budget) return false;
        put(o, e, el);
        used += el;
    }
    return true;
}

static void put_field(struct out *o, const char *name, const char *s, size_t n, size_t budget)
{
    puts_(o, ",\"");
    puts_(o, name);
    puts_(o, "\":\"");
    if (s != NULL) put_escaped(o, s, n, budget);
    puts_(o, "\"");
}

size_t el_journal_format(char *buf, size_t cap, const struct el_journal_entry *e)
{
    /* Fixed parts: about 200 bytes; strings: 16 + 64 + 64 + 48 + 64 at most
     * escaped, the path the rest: the line fits EL_JOURNAL_LINE_MAX. */
    struct out o = {buf, 0, cap - 1};
    char num[64];
    snprintf(num, sizeof(num), "{\"time\":%llu.%03llu", (unsigned long long)(e->time_ms / 1000),
             (unsigned long long)(e->time_ms % 1000));
    puts_(&o, num);
    put_field(&o, "method", e->method, e->method_len, 16 * 6);
    puts_(&o, ",\"path\":\"");
    bool whole = put_escaped(&o, e->path, e->path_len, 500) && !e->path_cut;
    puts_(&o, "\"");
    if (!whole) puts_(&o, ",\"path_cut\":true");
    const char *route = e->route ? e->route : "";
    put_field(&o, "route", route, strlen(route), 64);
    const char *client = e->client ? e->client : "";
    put_field(&o, "client", client, strlen(client), 64);
    if (e->pass) snprintf(num, sizeof(num), ",\"pass\":\"%016llx\"", (unsigned long long)e->pass);
    else snprintf(num, sizeof(num), ",\"pass\":\"\"");
    puts_(&o, num);
    if (e->has_ticket)
        snprintf(num, sizeof(num), ",\"ticket\":\"%u:%llu\"", (unsigned)e->ticket_lane,
                 (unsigned long long)e->ticket);
    else snprintf(num, sizeof(num), ",\"ticket\":\"\"");
    puts_(&o, num);
    snprintf(num, sizeof(num), ",\"status\":%d", e->status);
    puts_(&o, num);
    const char *reason = e->reason ? e->reason : "";
    put_field(&o, "reason", reason, strlen(reason), 64);
    double ms = e->upstream_ms >= 0 && e->upstream_ms < 1e12 ? e->upstream_ms : 0;
    snprintf(num, sizeof(num), ",\"upstream_ms\":%.1f}", ms);
    puts_(&o, num);
    buf[o.len++] = '\n';
    return o.len;
}

int el_journal_line_ms(const char *line, size_t len, uint64_t *ms)
{
    static const char head[] = "{\"time\":";
    size_t i = sizeof(head) - 1;
    if (len < i || memcmp(line, head, i) != 0) return -1;
    uint64_t s = 0;
    size_t digits = 0;
    while (i < len && line[i] >= '0' && line[i] <= '9' && digits < 15) {
        s = s * 10 + (uint64_t)(line[i++] - '0');
        digits++;
    }
    if (digits == 0) return -1;
    uint64_t frac = 0;
    if (i < len && line[i] == '.') {
        i++;
        for (int k = 0; k < 3; k++) {
            frac *= 10;
            if (i < len && line[i] >= '0' && line[i] <= '9') frac += (uint64_t)(line[i++] - '0');
        }
    }
    *ms = s * 1000 + frac;
    return 0;
}

/* ---- the process's journal ---- */

struct slot {
    uint16_t len;
    char line[EL_JOURNAL_LINE_MAX];
};

static struct {
    pthread_mutex_t mu;        /* guards the ring, the route counters and drop logging */
    struct slot ring[EL_JOURNAL_RING];
    unsigned head, count;      /* oldest queued line, lines queued */
    char routes[ROUTES_MAX][ROUTE_NAME_MAX]; /* route labels seen ("" = none) */
    uint64_t route_count[ROUTES_MAX];
    unsigned nroutes;
    uint64_t dropped;          /* lines dropped: ring full */
    uint64_t last_drop_log_ms; /* drops are logged at most once a second */
    _Atomic bool enabled;      /* a journal_file is configured */
    /* main thread only */
    char *path;                /* journal_file, resolved; NULL = none */
    uint64_t max_bytes;        /* rotate past this; 0 = never */
    int fd;                    /* -1 while closed */
    uint64_t size;             /* bytes in the current file */
    uint64_t last_err_ms;      /* open/write errors are logged at most once a second */
    char *stage;               /* flush's copy of the ring (EL_JOURNAL_RING lines) */
} J = {.mu = PTHREAD_MUTEX_INITIALIZER, .fd = -1};

static int open_file(const char *path, int *fd, uint64_t *size)
{
    int f = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (f == -1) return -1;
    struct stat st;
    *size = fstat(f, &st) == 0 ? (uint64_t)st.st_size : 0;
    *fd = f;
    return 0;
}

static void close_file(void)
{
    if (J.fd >= 0) close(J.fd);
    J.fd = -1;
}

static bool rate_ok(uint64_t *last)
{
    uint64_t now = el_now_ms();
    if (*last != 0 && now - *last < 1000) return false;
    *last = now;
    return true;
}

int el_journal_configure(const char *path, uint64_t max_bytes, char **err)
{
    if (path == NULL || *path == '\0') {
        el_journal_flush();
        close_file();
        free(J.path);
        J.path = NULL;
        atomic_store(&J.enabled, false);
        return 0;
    }
    J.max_bytes = max_bytes;
    if (J.path != NULL && strcmp(J.path, path) == 0 && J.fd >= 0) return 0;
    int fd;
    uint64_t size;
    if (open_file(path, &fd, &size) == -1) {
        *err = el_sprintf("[server] journal_file: cannot open %s for appending: %s", path,
                          strerror(errno));
        return -1;
    }
    if (J.path != NULL) el_journal_flush(); /* what is queued still goes to the old file */
    close_file();
    free(J.path);
    J.path = el_strdup(path);
    J.fd = fd;
    J.size = size;
    if (J.stage == NULL) J.stage = el_malloc((size_t)EL_JOURNAL_RING * EL_JOURNAL_LINE_MAX);
    atomic_store(&J.enabled, true);
    return 0;
}

void el_journal_reopen(void)
{
    if (J.path == NULL) return;
    el_journal_flush();
    close_file();
    if (open_file(J.path, &J.fd, &J.size) == -1)
        el_err("journal: cannot reopen %s: %s (lines are kept queued; retrying)", J.path,
               strerror(errno));
    else
        el_notice("journal: reopened %s", J.path);
}

bool el_journal_enabled(void)
{
    return atomic_load_explicit(&J.enabled, memory_order_relaxed);
}

static void count_route(const char *route)
{
    unsigned i = 0;
    while (i < J.nroutes && strncmp(J.routes[i], route, ROUTE_NAME_MAX - 1) != 0)
        i++;
    if (i == J.nroutes) {
        if (J.nroutes == ROUTES_MAX) i = ROUTES_MAX - 1; /* pathological: lumped */
        else snprintf(J.routes[J.nroutes++], ROUTE_NAME_MAX, "%s", route);
    }
    J.route_count[i]++;
}

void el_journal_capture(struct el_journal_req *jr, const struct el_http_msg *req,
                        const struct el_config *cfg)
{
    static _Thread_local char norm[UINT16_MAX]; /* a path in normal form (http.h) */
    jr->armed = el_journal_wants(req->method, req->method_len);
    if (!jr->armed) return;
    jr->noted = false;
    jr->method_len = (uint8_t)EL_MIN(req->method_len, sizeof(jr->method));
    memcpy(jr->method, req->method, jr->method_len);
    size_t len;
    const char *path = el_http_norm_path(req, norm, &len);
    jr->path_cut = len > sizeof(jr->path);
    jr->path_len = (uint16_t)EL_MIN(len, sizeof(jr->path));
    memcpy(jr->path, path, jr->path_len);
    const struct el_route *r = el_route_find(cfg, req->method, req->method_len, path, len);
    jr->route = r != NULL ? r->name : NULL;
}

void el_journal_record(struct el_journal_entry *e)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    e->time_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    char line[EL_JOURNAL_LINE_MAX];
    size_t len = el_journal_format(line, sizeof(line), e);
    bool enabled = el_journal_enabled(), log_drop = false;
    uint64_t dropped = 0;
    pthread_mutex_lock(&J.mu);
    count_route(e->route ? e->route : "");
    if (!enabled) {
        /* no journal_file: counted only */
    } else if (J.count == EL_JOURNAL_RING) {
        dropped = ++J.dropped;
        log_drop = rate_ok(&J.last_drop_log_ms);
    } else {
        struct slot *s = &J.ring[(J.head + J.count) % EL_JOURNAL_RING];
        memcpy(s->line, line, len);
        s->len = (uint16_t)len;
        J.count++;
    }
    pthread_mutex_unlock(&J.mu);
    if (log_drop)
        el_err("journal: queue full (%d lines), an uncertain write was not journaled "
               "(%llu dropped so far): %.*s",
               EL_JOURNAL_RING, (unsigned long long)dropped, (int)len - 1, line);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w == -1) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* FILE -> FILE.1 (replacing the older one), and a new FILE. */
static void rotate(void)
{
    char *old = el_sprintf("%s.1", J.path);
    if (rename(J.path, old) == -1) {
        el_err("journal: cannot rotate %s to %s: %s", J.path, old, strerror(errno));
    } else {
        close_file();
        if (open_file(J.path, &J.fd, &J.size) == -1)
            el_err("journal: cannot open %s after rotating: %s", J.path, strerror(errno));
        else
            el_notice("journal: %s rotated to %s (journal_max_bytes)", J.path, old);
    }
    free(old);
}

void el_journal_flush(void)
{
    if (J.path == NULL) return;
    if (J.fd < 0 && (open_file(J.path, &J.fd, &J.size) == -1)) {
        if (rate_ok(&J.last_err_ms))
            el_err("journal: cannot open %s: %s (lines are kept queued)", J.path, strerror(errno));
        return;
    }
    pthread_mutex_lock(&J.mu);
    unsigned n = J.count;
    size_t len = 0;
    for (unsigned i = 0; i < n; i++) {
        const struct slot *s = &J.ring[(J.head + i) % EL_JOURNAL_RING];
        memcpy(J.stage + len, s->line, s->len);
        len += s->len;
    }
    J.head = (J.head + n) % EL_JOURNAL_RING;
    J.count = 0;
    pthread_mutex_unlock(&J.mu);
    if (len == 0) return;
    if (J.max_bytes > 0 && J.size > 0 && J.size + len > J.max_bytes) rotate();
    if (J.fd < 0 || write_all(J.fd, J.stage, len) == -1) {
        /* Written in part or not at all: the lines are lost, say so. */
        el_err("journal: cannot write %s: %s (%u lines lost)", J.path,
               J.fd < 0 ? "not open" : strerror(errno), n);
        pthread_mutex_lock(&J.mu);
        J.dropped += n;
        pthread_mutex_unlock(&J.mu);
        close_file(); /* the next flush opens it again */
        return;
    }
    J.size += len;
    if (fdatasync(J.fd) == -1 && rate_ok(&J.last_err_ms))
        el_warn("journal: fdatasync %s: %s", J.path, strerror(errno));
}

void el_journal_close(void)
{
    el_journal_flush();
    close_file();
    pthread_mutex_lock(&J.mu);
    J.dropped += J.count;
    J.count = 0;
    pthread_mutex_unlock(&J.mu);
    free(J.path);
    J.path = NULL;
    free(J.stage);
    J.stage = NULL;
    atomic_store(&J.enabled, false);
}

/* Append the lines of file at or after since_ms to out; false once max is reached. */
static bool query_file(const char *file, struct evbuffer *out, uint64_t since_ms, size_t max,
                       bool *cut)
{
    FILE *f = fopen(file, "re");
    if (f == NULL) return true;
    char line[EL_JOURNAL_LINE_MAX + 2];
    bool more = true;
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t n = strlen(line);
        uint64_t ms;
        if (n == 0 || line[n - 1] != '\n') continue; /* not one of ours (or cut) */
        if (el_journal_line_ms(line, n, &ms) != 0 || ms < since_ms) continue;
        if (evbuffer_get_length(out) + n > max) {
            *cut = true;
            more = false;
            break;
        }
        evbuffer_add(out, line, n);
    }
    fclose(f);
    return more;
}

int el_journal_query(struct evbuffer *out, uint64_t since_ms, size_t max, bool *cut)
{
    *cut = false;
    if (J.path == NULL) return -1;
    el_journal_flush();
    char *old = el_sprintf("%s.1", J.path);
    if (query_file(old, out, since_ms, max, cut)) query_file(J.path, out, since_ms, max, cut);
    free(old);
    return 0;
}

static void label(char *dst, size_t cap, const char *s)
{
    size_t o = 0;
    for (; *s && o + 3 < cap; s++) {
        if (*s == '"' || *s == '\\') dst[o++] = '\\';
        if (*s == '\n') {
            dst[o++] = '\\';
            dst[o++] = 'n';
            continue;
        }
        dst[o++] = *s;
    }
    dst[o] = '\0';
}

void el_journal_render_metrics(struct evbuffer *out)
{
    pthread_mutex_lock(&J.mu);
    evbuffer_add_printf(out, "# HELP einlass_uncertain_writes_total Writes whose outcome is "
                             "unknown (5xx, timeout, broken backend connection, client gone), "
                             "by route.\n# TYPE einlass_uncertain_writes_total counter\n");
    for (unsigned i = 0; i < J.nroutes; i++) {
        char lv[ROUTE_NAME_MAX * 2];
        label(lv, sizeof(lv), J.routes[i]);
        evbuffer_add_printf(out, "einlass_uncertain_writes_total{route=\"%s\"} %llu\n", lv,
                            (unsigned long long)J.route_count[i]);
    }
    evbuffer_add_printf(out, "# HELP einlass_journal_dropped_total Uncertain writes not "
                             "journaled: the queue was full or the file could not be "
                             "written.\n# TYPE einlass_journal_dropped_total counter\n"
                             "einlass_journal_dropped_total %llu\n",
                        (unsigned long long)J.dropped);
    pthread_mutex_unlock(&J.mu);
}
