/* journal.h - the journal of writes whose outcome is unknown: a request
 * that may change something (any method but GET, HEAD, OPTIONS and TRACE)
 * that reached the backend and then got a 5xx from it, timed out, lost its
 * backend connection, or whose client went away before the response was
 * complete. Each is one JSON line in [server] journal_file:
 *
 *   {"time":1712345678.123,"method":"POST","path":"/appointments/7/cancel",
 *    "route":"cancel","client":"192.0.2.7","pass":"9f0c...","ticket":"",
 *    "status":0,"reason":"backend connection broke","upstream_ms":12.5}
 *
 * "time" comes first, so a reader finds a line's time without parsing the
 * rest. The path is the normal form the backend received; bytes outside
 * printable ASCII, '"' and '\' are escaped (\u00XX stands for one byte, so
 * the line is ASCII and gives back the exact bytes). Never the body, the
 * query string or cookies.
 *
 * Two halves. The pure one (el_journal_wants, el_journal_format,
 * el_journal_line_ms) does no I/O and reads no clock. The shell is one
 * journal per process (like the metric blocks): workers hand it a line
 * (el_journal_record: formatted on the worker, then a mutex and a copy into
 * a bounded ring, never a file syscall; a full ring drops the line and
 * counts it), and the main thread
 * writes the ring out (el_journal_flush, every control tick), rotates the
 * file, and answers the admin API's GET /journal. */
#ifndef EL_JOURNAL_H
#define EL_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EL_JOURNAL_LINE_MAX 1024 /* one line, '\n' included */
#define EL_JOURNAL_PATH_MAX 512  /* path bytes kept per request (longer: "path_cut":true) */
#define EL_JOURNAL_RING 1024     /* lines the ring holds between two flushes */
#define EL_JOURNAL_ANSWER_MAX (8u << 20) /* GET /journal answers at most this many bytes */

/* What a forwarded write keeps for its journal line (inside the connection;
 * filled by el_journal_capture when the request goes to the backend). */
struct el_journal_req {
    bool armed;              /* a write: its outcome is tracked */
    bool noted;              /* journaled already: once per request */
    bool path_cut;           /* the path was longer than path[] */
    uint8_t method_len;
    char method[16];         /* the method (longer ones are cut) */
    uint16_t path_len;
    char path[EL_JOURNAL_PATH_MAX]; /* the normal-form path, without the query */
    const char *route;       /* name of the [route] that matched (the generation's), or NULL */
};

/* One line's fields. Strings are NUL-terminated unless a length is given. */
struct el_journal_entry {
    uint64_t time_ms;        /* unix milliseconds */
    const char *method;
    size_t method_len;
    const char *path;
    size_t path_len;
    bool path_cut;           /* the request's path was longer than what is given */
    const char *route;       /* "" or NULL for none */
    const char *client;      /* the client address (behind trusted proxies: the resolved one) */
    uint64_t pass;           /* session id of the request's pass; 0 = none */
    bool has_ticket;         /* the request carried a ticket */
    uint8_t ticket_lane;
    uint64_t ticket;         /* ... its place number */
    int status;              /* the backend's status, 0 if none came */
    const char *reason;      /* "backend 503", "backend timed out", ... */
    double upstream_ms;      /* from sending the head to the head of the answer (or the end) */
};

/* Whether a request with this method is journaled when its outcome is
 * unknown: every method but GET, HEAD, OPTIONS and TRACE. Pure. */
bool el_journal_wants(const char *method, size_t len);

/* Write e as one JSON line ending in '\n' into buf (cap bytes, at least
 * EL_JOURNAL_LINE_MAX). Over-long strings are cut (the path is, with
 * "path_cut":true) so the line always fits. Returns its length. Pure. */
size_t el_journal_format(char *buf, size_t cap, const struct el_journal_entry *e);

/* The time of a journal line (its leading {"time":SECONDS.mmm) in unix
 * milliseconds into *ms: 0, or -1 if the line does not start so. Pure. */
int el_journal_line_ms(const char *line, size_t len, uint64_t *ms);

/* ---- the process's journal ---- */

/* Open path for appending (created 0640; "" = no journal) and rotate it
 * when it would grow past max_bytes (0 = never). Main thread, at start and
 * on reload; a new path or size applies from now on, what is queued goes to
 * the new file. Returns 0, or -1 with *err (allocated) if path cannot be
 * opened: the journal then stays as it was. */
int el_journal_configure(const char *path, uint64_t max_bytes, char **err);
/* SIGHUP: write out what is queued, then close and reopen the file by name
 * (after logrotate's `mv`, a new file is started). Main thread. */
void el_journal_reopen(void);
/* Append what the workers queued, fdatasync once if anything was written,
 * rotate by size (FILE -> FILE.1, replacing an older FILE.1). Main thread,
 * every control tick. If the file cannot be written the lines stay queued
 * (and the ring, once full, drops and counts). */
void el_journal_flush(void);
/* Close the file, drop what is queued (counted as dropped). Main thread, at exit. */
void el_journal_close(void);
/* Whether a journal_file is configured. Any thread. */
bool el_journal_enabled(void);

/* A forwarded request goes to the backend: remember in *jr what its line
 * needs (method, normal-form path, the [route] of cfg that matches) if it is
 * a write (el_journal_wants), else only that it is not (jr->armed false).
 * Pure: the path is copied, cut at EL_JOURNAL_PATH_MAX. Worker thread. */
struct el_http_msg;
struct el_config;
void el_journal_capture(struct el_journal_req *jr, const struct el_http_msg *req,
                        const struct el_config *cfg);

/* Count e (stamped now, on the wall clock) under its route in
 * einlass_uncertain_writes_total, format it and queue the line. Any thread;
 * takes a mutex for a copy, never blocks on disk. With the ring full the
 * line is dropped and counted (einlass_journal_dropped_total, logged at
 * most once a second). Without a journal_file only the counter moves. */
void el_journal_record(struct el_journal_entry *e);

struct evbuffer;
/* GET /journal: write the journal's lines whose time is at least since_ms
 * (FILE.1, then FILE, oldest first) into out, at most max bytes; *cut is
 * set if lines were left out for the cap. What is queued is written out
 * first. Returns 0, or -1 if no journal is configured. Main thread. */
int el_journal_query(struct evbuffer *out, uint64_t since_ms, size_t max, bool *cut);
/* The journal's metric families (einlass_uncertain_writes_total{route},
 * einlass_journal_dropped_total) in Prometheus text. Main thread. */
void el_journal_render_metrics(struct evbuffer *out);

#endif
