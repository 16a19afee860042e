/* common.c - allocation that aborts on out-of-memory, leveled logging on
 * stderr, clocks, {word, value} tables, and small ASCII and address helpers. */
#include "einlass/common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

int el_log_level = EL_LOG_INFO;

const struct el_word el_log_level_words[] = {
    {"err", EL_LOG_ERR},   {"warn", EL_LOG_WARN},   {"notice", EL_LOG_NOTICE},
    {"info", EL_LOG_INFO}, {"debug", EL_LOG_DEBUG}, {NULL, 0},
};

const struct el_word *el_word_find(const struct el_word *t, const char *s, size_t n)
{
    for (; t->word != NULL; t++)
        if (el_strcaseeq(t->word, strlen(t->word), s, n)) return t;
    return NULL;
}

const char *el_word_name(const struct el_word *t, int value)
{
    for (; t->word != NULL; t++)
        if (t->value == value) return t->word;
    return NULL;
}

static void oom(size_t n)
{
    fprintf(stderr, "<2>einlass: out of memory allocating %zu bytes\n", n);
    abort();
}

void *el_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) oom(n);
    return p;
}

void *el_calloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (p == NULL) oom(count * n);
    return p;
}

void *el_realloc(void *old, size_t n)
{
    void *p = realloc(old, n ? n : 1);
    if (p == NULL) oom(n);
    return p;
}

char *el_strdup(const char *s)
{
    return el_strndup(s, strlen(s));
}

char *el_strndup(const char *s, size_t n)
{
    char *p = el_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *el_sprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    char *p = el_malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void el_log(int level, const char *fmt, ...)
{
    if (level > el_log_level) return;
    char line[1024];
    int off = snprintf(line, sizeof(line), "<%d>einlass: ", level);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + off, sizeof(line) - (size_t)off - 1, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    size_t len = (size_t)off + EL_MIN((size_t)n, sizeof(line) - (size_t)off - 2);
    line[len++] = '\n';
    /* One write per line keeps lines from different threads whole. */
    fwrite(line, 1, len, stderr);
}

uint64_t el_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t el_now_ms(void)
{
    return el_now_us() / 1000u;
}

uint64_t el_wall_s(void)
{
    return (uint64_t)time(NULL);
}

uint64_t el_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool el_strcaseeq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen) return false;
    for (size_t i = 0; i < alen; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z') x = (unsigned char)(x + 32);
        if (y >= 'A' && y <= 'Z') y = (unsigned char)(y + 32);
        if (x != y) return false;
    }
    return true;
}

int el_parse_addr(const char *s, struct sockaddr_storage *ss, unsigned *sslen, const char **err)
{
    memset(ss, 0, sizeof(*ss));
    if (strncmp(s, "unix:", 5) == 0) {
        struct sockaddr_un *un = (struct sockaddr_un *)ss;
        size_t n = strlen(s + 5);
        if (n == 0 || n >= sizeof(un->sun_path)) {
            *err = "unix socket path is empty or too long";
            return -1;
        }
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, s + 5, n + 1);
        *sslen = (unsigned)sizeof(*un);
        return 0;
    }
    char host[64];
    const char *colon, *h = s;
    size_t hlen;
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            *err = "expected [v6-address]:port";
            return -1;
        }
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            *err = "expected host:port";
            return -1;
        }
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= sizeof(host)) {
        *err = "expected host:port";
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || port < 0 || port > 65535) {
        *err = "port must be a number from 0 to 65535";
        return -1;
    }
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)port);
        *sslen = (unsigned)sizeof(*in4);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        *sslen = (unsigned)sizeof(*in6);
        return 0;
    }
    *err = "host must be an IPv4 or IPv6 address (or localhost)";
    return -1;
}

size_t el_addr_text(const struct sockaddr_storage *ss, bool with_port, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int n;
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, host, sizeof(host));
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, host, sizeof(host));
    if (ss->ss_family == AF_UNIX && with_port && ((const struct sockaddr_un *)ss)->sun_path[0])
        n = snprintf(out, cap, "unix:%s", ((const struct sockaddr_un *)ss)->sun_path);
    else if (ss->ss_family != AF_INET && ss->ss_family != AF_INET6)
        n = snprintf(out, cap, "unix");
    else if (!with_port)
        n = snprintf(out, cap, "%s", host);
    else
        n = snprintf(out, cap, ss->ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", host,
                     (unsigned)el_addr_port(ss));
    if (n < 0) n = 0;
    return EL_MIN((size_t)n, cap - 1);
}

uint16_t el_addr_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) return ntohs(((const struct sockaddr_in *)ss)->sin_port);
    if (ss->ss_family == AF_INET6) return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    return 0;
}

size_t el_time_rfc3339(int64_t ms, int offset_min, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000) + (time_t)offset_min * 60;
    struct tm tm;
    gmtime_r(&t, &tm);
    char off[16] = "Z";
    int a = (offset_min < 0 ? -offset_min : offset_min) % (24 * 60);
    if (offset_min != 0)
        snprintf(off, sizeof(off), "%c%02d:%02d", offset_min < 0 ? '-' : '+', a / 60, a % 60);
    int n = snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d%s", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, off);
    return n > 0 ? EL_MIN((size_t)n, cap - 1) : 0;
}
