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

#ifndef EL_VERSION
#define EL_VERSION "0.1.0"
#endif

#define EL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define EL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define EL_MAX(a, b) ((a) > (b) ? (a) : (b))

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

/* ASCII helpers used by the parsers: no locale, no allocation. */
bool el_strcaseeq(const char *a, size_t alen, const char *b, size_t blen);
/* Parse host:port (or [v6]:port, or unix:/path) into a sockaddr.
 * Returns 0, or -1 with *err pointing to a static reason. */
struct sockaddr_storage;
int el_parse_addr(const char *s, struct sockaddr_storage *ss, unsigned *sslen, const char **err);

#endif
