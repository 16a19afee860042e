/* common.h - allocation, logging and clocks shared by every module.
 *
 * Allocation never fails: el_malloc() and friends abort the process on
 * out-of-memory (as Redis and h2o do), so no caller tests for NULL.
 * Logging writes one leveled line to stderr (journald reads the "<N>" prefix
 * as the priority). Clocks are read only here, so pure modules can be handed
 * numbers instead. Every function here is thread-safe. */
#ifndef EL_COMMON_H
#define EL_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#ifndef EL_VERSION
#define EL_VERSION "0.1.0"
#endif

#define EL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define EL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define EL_MAX(a, b) ((a) > (b) ? (a) : (b))

#define EL_MAX_WORKERS 64                   /* per-worker blocks and listeners */
#define EL_WORKERS_MAX (EL_MAX_WORKERS - 1) /* [server] workers: the last block is the main thread's */

/* Allocation: abort on out-of-memory, never return NULL. */
void *el_malloc(size_t n);
void *el_calloc(size_t count, size_t n);
void *el_realloc(void *p, size_t n);
char *el_strdup(const char *s);
char *el_strndup(const char *s, size_t n);
/* printf into a new string; the caller frees it. */
char *el_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Log levels follow syslog's numbers, so stderr lines read "<3>einlass: ...". */
enum el_log_level {
    EL_LOG_ERR = 3,
    EL_LOG_WARN = 4,
    EL_LOG_NOTICE = 5,
    EL_LOG_INFO = 6,
    EL_LOG_DEBUG = 7,
};

extern int el_log_level; /* lines above this level are dropped; default INFO */

void el_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define el_err(...) el_log(EL_LOG_ERR, __VA_ARGS__)
#define el_warn(...) el_log(EL_LOG_WARN, __VA_ARGS__)
#define el_notice(...) el_log(EL_LOG_NOTICE, __VA_ARGS__)
#define el_info(...) el_log(EL_LOG_INFO, __VA_ARGS__)
#define el_debug(...)                                                                              \
    do {                                                                                           \
        if (el_log_level >= EL_LOG_DEBUG) el_log(EL_LOG_DEBUG, __VA_ARGS__);                       \
    } while (0)

/* Clocks. el_now_ms/us: CLOCK_MONOTONIC. el_wall_s: seconds since the epoch. */
uint64_t el_now_ms(void);
uint64_t el_now_us(void);
uint64_t el_wall_s(void);
/* Milliseconds since the epoch (CLOCK_REALTIME): scheduled event times. */
uint64_t el_wall_ms(void);
/* Unix ms as RFC 3339 in the given UTC offset in minutes
 * ("2027-03-01T09:00:00+01:00"; "Z" for 0) into out (at least 32 bytes).
 * Returns the length. */
size_t el_time_rfc3339(int64_t ms, int offset_min, char *out, size_t cap);

/* ms as a struct timeval (libevent timers, hiredis timeouts). */
static inline struct timeval el_tv_ms(uint64_t ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* One {word, value} table per enum, ended by {NULL, 0}: config parses the
 * words, admin, metrics and logs print them. */
struct el_word {
    const char *word; /* as written in the config, the admin API and logs */
    int value;        /* the enum's value */
};
/* The entry whose word is s[0..n) (ASCII case-insensitive), or NULL. */
const struct el_word *el_word_find(const struct el_word *t, const char *s, size_t n);
/* The word of value, or NULL if the table has none. */
const char *el_word_name(const struct el_word *t, int value);

/* Log levels by their config words: err warn notice info debug. */
extern const struct el_word el_log_level_words[];

/* ASCII helpers used by the parsers: no locale, no allocation. */
bool el_strcaseeq(const char *a, size_t alen, const char *b, size_t blen);
/* Parse host:port (or [v6]:port, or unix:/path) into a sockaddr.
 * Returns 0, or -1 with *err pointing to a static reason. */
struct sockaddr_storage;
int el_parse_addr(const char *s, struct sockaddr_storage *ss, unsigned *sslen, const char **err);

/* Room for el_addr_text(): "[" INET6_ADDRSTRLEN "]:65535" */
#define EL_ADDR_TEXT_MAX 56
/* ss as text into out[cap]: "192.0.2.1" or "2001:db8::1" (with_port:
 * "192.0.2.1:80", "[2001:db8::1]:80", a unix socket "unix:PATH"), else
 * "unix" for any other family.
 * Returns the length (truncated to cap - 1). */
size_t el_addr_text(const struct sockaddr_storage *ss, bool with_port, char *out, size_t cap);
/* The port of an AF_INET or AF_INET6 address (host order); 0 otherwise. */
uint16_t el_addr_port(const struct sockaddr_storage *ss);

#endif
