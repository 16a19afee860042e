/* fuzz_http.c - libFuzzer target for the HTTP head parsers and the chunked
 * decoder. Besides memory errors it checks the parser's promises: a parsed
 * head lies inside the input and every shorter prefix of it is INCOMPLETE;
 * pointers handed out lie inside the input; the chunked decoder gives the
 * same data and result whether fed whole or in small pieces.
 *
 * Input: the first byte selects the mode (byte % 3: 0 request, 1 response
 * (bit 0x80: to a HEAD request), 2 chunked body fed in pieces of
 * 1 + (byte >> 4) bytes); the rest is the message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "einlass/http.h"

#define MAX_HEAD 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_inside(const char *p, size_t n, const char *buf, size_t len)
{
    if (n == 0) return;
    if (p < buf || p + n > buf + len) abort();
}

static void check_head(const char *buf, size_t len, int rc, const struct el_http_msg *m,
                       bool request)
{
    if (rc < EL_HTTP_VERSION) abort();
    if (rc <= 0) return;
    if ((size_t)rc > len || (size_t)rc > MAX_HEAD || m->head_len != (size_t)rc) abort();
    if (m->nheaders > EL_HTTP_MAX_HEADERS) abort();
    for (size_t i = 0; i < m->nheaders; i++) {
        check_inside(m->headers[i].name, m->headers[i].name_len, buf, (size_t)rc);
        check_inside(m->headers[i].value, m->headers[i].value_len, buf, (size_t)rc);
        if (m->headers[i].name_len == 0) abort();
    }
    if (request) {
        check_inside(m->method, m->method_len, buf, (size_t)rc);
        check_inside(m->target, m->target_len, buf, (size_t)rc);
        if (m->path_len == 0) abort();
        if (!(m->path_len == 1 && m->path[0] == '/'))
            check_inside(m->path, m->path_len, buf, (size_t)rc);
        check_inside(m->query, m->query_len, buf, (size_t)rc);
        check_inside(m->authority, m->authority_len, buf, (size_t)rc);
        /* an accepted path has a normal form, and path_normal tells the truth */
        if (m->path[0] == '/') {
            int nrc = el_http_path_normalize(m->path, m->path_len, NULL, NULL);
            if (nrc == -1 || (nrc == 0) != m->path_normal) abort();
        }
        if (m->body == EL_BODY_CLOSE) abort();
    } else {
        if (m->status < 100 || m->status > 999) abort();
        check_inside(m->reason, m->reason_len, buf, (size_t)rc);
        if (m->body == EL_BODY_CLOSE && m->keep_alive) abort();
    }
}

static void fuzz_head(const char *buf, size_t len, bool request, bool head)
{
    static struct el_http_msg m, p;
    int rc = request ? el_http_parse_request(buf, len, MAX_HEAD, &m)
                     : el_http_parse_response(buf, len, MAX_HEAD, head, &m);
    check_head(buf, len, rc, &m, request);
    if (rc <= 0) return;
    /* prefixes of a valid head are incomplete (a few cut points) */
    size_t cuts[] = {(size_t)rc - 1, (size_t)rc / 2, (size_t)rc / 3, 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        int r = request ? el_http_parse_request(buf, cuts[i], MAX_HEAD, &p)
                        : el_http_parse_response(buf, cuts[i], MAX_HEAD, head, &p);
        if (r != EL_HTTP_INCOMPLETE) abort();
    }
    /* the exact head alone parses the same */
    int r = request ? el_http_parse_request(buf, (size_t)rc, MAX_HEAD, &p)
                    : el_http_parse_response(buf, (size_t)rc, MAX_HEAD, head, &p);
    if (r != rc || p.nheaders != m.nheaders || p.body != m.body ||
        p.content_length != m.content_length || p.keep_alive != m.keep_alive)
        abort();
}

/* Decode in steps of at most step bytes (0: whole); collects data in out. */
static int fuzz_chunked(const char *in, size_t len, size_t step, char *out, size_t *out_len,
                        size_t *consumed)
{
    struct el_chunked c = {0};
    size_t pos = 0, end = step && step < len ? step : len;
    int rc;
    *out_len = 0;
    for (;;) {
        size_t used, dlen;
        const char *d;
        rc = el_chunked_decode(&c, in + pos, end - pos, &used, &d, &dlen);
        if (used > end - pos) abort();
        if (dlen) {
            check_inside(d, dlen, in + pos, used);
            memcpy(out + *out_len, d, dlen);
            *out_len += dlen;
        }
        pos += used;
        if (rc != 0) break;
        if (pos == end) {
            if (end == len) break;
            end = step && end + step < len ? end + step : len;
        } else if (used == 0) {
            abort(); /* no progress */
        }
    }
    *consumed = pos;
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t mode = data[0];
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;

    switch (mode % 3) {
    case 0:
        fuzz_head(buf, len, true, false);
        break;
    case 1:
        fuzz_head(buf, len, false, (mode & 0x80) != 0);
        break;
    default: {
        char *a = malloc(len + 1), *b = malloc(len + 1);
        size_t alen, blen, aused, bused;
        int ra = fuzz_chunked(buf, len, 0, a, &alen, &aused);
        int rb = fuzz_chunked(buf, len, 1 + (mode >> 4), b, &blen, &bused);
        if (ra != rb) abort();
        if (ra >= 0 && (alen != blen || aused != bused || memcmp(a, b, alen) != 0)) abort();
        free(a);
        free(b);
        break;
    }
    }
    return 0;
}
