/* http.c - strict, in-place HTTP/1.1 head parser and chunked codec (RFC 9112).
 *
 * Invariants. The head parsers never allocate and never write to the input;
 * every pointer they hand out lies inside buf[0..head_len) (the one exception
 * is the path of an absolute-form target without a path, which points at a
 * static "/"). A line is only looked at once its LF is inside the scanned
 * window, so every prefix of a valid head parses as EL_HTTP_INCOMPLETE and the
 * parser can be re-run from the start on each read. The scanned window is
 * min(len, max_head): a head whose blank line is not inside it is
 * EL_HTTP_TOO_LARGE once len reaches max_head.
 *
 * Byte classes come from one 256-entry table; header names that matter are
 * recognised by length first, then by an OR-0x20 compare that is exact for
 * token characters. Choices where RFC 9112 leaves room:
 *   - lines end in CRLF only; a bare LF or CR anywhere is EL_HTTP_BAD;
 *   - one empty line (CRLF) before a request line is skipped (RFC 9112 2.2),
 *     a second is EL_HTTP_BAD; head_len then counts the skipped CRLF;
 *   - Content-Length may repeat (fields or a comma list) when every value is
 *     the same number ("5, 5"); values above 2^63-1 are EL_HTTP_BAD;
 *   - Transfer-Encoding in an HTTP/1.0 message is EL_HTTP_BAD (RFC 9112 6.1);
 *   - "*" is accepted only with OPTIONS; CONNECT takes any target
 *     (authority-form) and its path is the whole target;
 *   - a Connection token never marks Host, Content-Length or
 *     Transfer-Encoding hop-by-hop, so a client cannot strip them;
 *   - a status line may omit the SP before an empty reason ("HTTP/1.1 200");
 *   - the path is checked once, where the request line is parsed: a plain
 *     path (no '%', '\\', '#', "//" or "/.") costs one scan and is its own
 *     normal form; any other goes through el_http_path_normalize() without
 *     output, to refuse an ambiguous one and to set path_normal.
 *
 * The chunked decoder is a byte-at-a-time state machine for the framing and
 * hands out chunk data as pointers into the input, at most one run per call.
 * Size and extension lines are bounded by CHUNK_LINE_MAX, trailers by
 * TRAILER_FIELDS_MAX fields and TRAILER_BYTES_MAX bytes.
 *
 * The lexical kit at the end (tokens, OWS, quoted strings, list elements,
 * cookies) reads inside field values for the other modules, with the same
 * byte table. */
#include "einlass/http.h"

#include <limits.h>
#include <string.h>

#define C_TCHAR 0x01  /* token character (field names, methods) */
#define C_FVALUE 0x02 /* field-value byte: HTAB, SP, VCHAR, obs-text */
#define C_TARGET 0x04 /* request-target byte: VCHAR, obs-text */
#define C_HEX 0x08    /* HEXDIG */
#define C_QDTEXT 0x10 /* quoted-string text: qdtext */
#define C_WS 0x20     /* SP or HTAB */

static const uint8_t cls[256] = {
    0,  0,  0,  0,  0,  0,  0,  0,  0,  50, 0,  0,  0,  0,  0,  0,  /* 0x00 */
    0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  0,  /* 0x10 */
    50, 23, 6,  23, 23, 23, 23, 23, 22, 22, 23, 23, 22, 23, 23, 22, /* 0x20 */
    31, 31, 31, 31, 31, 31, 31, 31, 31, 31, 22, 22, 22, 22, 22, 22, /* 0x30 */
    22, 31, 31, 31, 31, 31, 31, 23, 23, 23, 23, 23, 23, 23, 23, 23, /* 0x40 */
    23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 22, 6,  22, 23, 23, /* 0x50 */
    23, 31, 31, 31, 31, 31, 31, 23, 23, 23, 23, 23, 23, 23, 23, 23, /* 0x60 */
    23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 22, 23, 22, 23, 0,  /* 0x70 */
    22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, /* 0x80 */
    22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, /* 0x90 */
    22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, /* 0xa0 */
    22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, /* 0xb0 */
    22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, /* 0xc0 */
    22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, /* 0xd0 */
    22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, /* 0xe0 */
    22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, /* 0xf0 */
};

#define IS(c, k) (cls[(unsigned char)(c)] & (k))

#define CL_MAX ((uint64_t)INT64_MAX) /* largest Content-Length accepted */
#define CHUNK_SIZE_DIGITS 16         /* hex digits in a chunk size */
#define CHUNK_LINE_MAX 4096          /* bytes on a size or trailer line */
#define TRAILER_FIELDS_MAX 64        /* trailer fields in one message */
#define TRAILER_BYTES_MAX 16384      /* bytes of the whole trailer section */

/* Case-insensitive compare of a token (validated C_TCHAR bytes) against a
 * lowercase literal of letters, digits and '-': OR 0x20 folds only letters
 * onto it, since no other token byte lands on one of those. */
static inline bool tok_eq(const char *p, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)p[i] | 0x20) != (unsigned char)lit[i]) return false;
    return true;
}

static inline unsigned char lower(unsigned char c)
{
    return (unsigned char)((unsigned)(c - 'A') < 26u ? c | 0x20 : c);
}

/* Case-insensitive compare of two byte strings of length n. */
static inline bool ci_eq(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lower((unsigned char)b[i])) return false;
    return true;
}

#define TOK_IS(p, n, lit) ((n) == sizeof(lit) - 1 && tok_eq((p), (lit), sizeof(lit) - 1))

/* Split the list value [v, v + n) at every comma (el_http_next_elem: these
 * lists hold tokens and numbers). Calls back with each element, OWS removed
 * (possibly empty). The callback returns -1 to stop. */
typedef int (*elem_fn)(const char *p, size_t n, void *arg);

static int each_elem(const char *v, size_t n, elem_fn fn, void *arg)
{
    const char *e;
    size_t elen;
    for (const char *p = v; el_http_next_elem(&p, v + n, &e, &elen);)
        if (fn(e, elen, arg) == -1) return -1;
    return 0;
}

/* Content-Length element: 1*DIGIT, all elements the same number. */
struct cl_state {
    bool seen;   /* a value was parsed before */
    uint64_t n;  /* that value */
};

static int cl_elem(const char *p, size_t n, void *arg)
{
    struct cl_state *st = arg;
    uint64_t v = 0;
    if (n == 0) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned char)p[i] - '0';
        if (d > 9) return -1;
        if (v > (CL_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    if (st->seen && st->n != v) return -1;
    st->seen = true;
    st->n = v;
    return 0;
}

/* Connection element: close / keep-alive, or the name of a header to treat
 * as hop-by-hop. */
struct conn_state {
    struct el_http_msg *msg; /* headers to mark */
    bool close;              /* "close" seen */
    bool keep_alive;         /* "keep-alive" seen */
    bool upgrade;            /* "upgrade" seen */
};

static int conn_elem(const char *p, size_t n, void *arg)
{
    struct conn_state *st = arg;
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (!IS(p[i], C_TCHAR)) return 0; /* not a token: names nothing */
    if (TOK_IS(p, n, "close")) {
        st->close = true;
        return 0;
    }
    if (TOK_IS(p, n, "keep-alive")) st->keep_alive = true;
    else if (TOK_IS(p, n, "upgrade")) st->upgrade = true;
    if (TOK_IS(p, n, "host")) return 0;
    struct el_http_msg *msg = st->msg;
    for (size_t i = 0; i < msg->nheaders; i++) {
        struct el_http_header *h = &msg->headers[i];
        if (h->name_len != n || (h->flags & EL_HDR_FRAMING)) continue;
        if (ci_eq(h->name, p, n)) h->flags |= EL_HDR_HOP;
    }
    return 0;
}

/* First byte in [p, e) outside class k, or e. Eight bytes at a time while
 * none is below lo or DEL (the bytes that end a value, target or reason on
 * a valid line); the table decides the rest, so HTAB just takes the slow
 * step for that word. lo is at most 0x21, where the word test is exact. */
static inline const char *scan(const char *p, const char *e, uint8_t lo, uint8_t k)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    for (;;) {
        while (e - p >= 8) {
            uint64_t x, y;
            memcpy(&x, p, 8);
            y = x ^ (ones * 0x7f);
            if ((((x - ones * lo) & ~x) | ((y - ones) & ~y)) & highs) break;
            p += 8;
        }
        const char *stop = e - p >= 8 ? p + 8 : e;
        for (; p < stop; p++)
            if (!IS(*p, k)) return p;
        if (p == e) return e;
    }
}

/* What a head needs that the caller has not sent yet: more bytes, or, when
 * max_head bytes are already there, nothing more will do. */
static int need_more(size_t len, size_t max_head)
{
    return len >= max_head ? EL_HTTP_TOO_LARGE : EL_HTTP_INCOMPLETE;
}

/* Version "HTTP/1.0" / "HTTP/1.1" at p (8 bytes). Sets *minor. Returns 0,
 * EL_HTTP_VERSION for another HTTP/d.d, EL_HTTP_BAD for anything else. */
static int parse_version(const char *p, uint8_t *minor)
{
    if (memcmp(p, "HTTP/", 5) != 0 || p[6] != '.') return EL_HTTP_BAD;
    unsigned major = (unsigned char)p[5] - '0', mi = (unsigned char)p[7] - '0';
    if (major > 9 || mi > 9) return EL_HTTP_BAD;
    if (major != 1 || mi > 1) return EL_HTTP_VERSION;
    *minor = (uint8_t)mi;
    return 0;
}

/* ---- the path: normalisation (see http.h for the rules) ---- */

static inline int hexval(unsigned char c)
{
    if ((unsigned)(c - '0') < 10u) return c - '0';
    c = lower(c);
    if ((unsigned)(c - 'a') < 6u) return c - 'a' + 10;
    return -1;
}

static inline bool unreserved(unsigned char c)
{
    return (unsigned)(lower(c) - 'a') < 26u || (unsigned)(c - '0') < 10u || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Nothing to normalise and nothing to refuse: no '%', '\', '#', and no '/'
 * followed by '/' or '.' (which covers every dot segment and "//"). One
 * scan; paths like "/.well-known/" take the slow path and come out as they
 * went in. */
static bool path_plain(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '%' || c == '\\' || c == '#') return false;
        if (c == '/' && i + 1 < n && (p[i + 1] == '/' || p[i + 1] == '.')) return false;
    }
    return true;
}

int el_http_path_normalize(const char *in, size_t len, char *out, size_t *out_len)
{
    static const char hexd[] = "0123456789ABCDEF";
    size_t r = 1, w = 1;
    bool changed = false;
#define EMIT(ch)                                                                                   \
    do {                                                                                           \
        if (out) out[w] = (char)(ch);                                                              \
        w++;                                                                                       \
    } while (0)

    if (len == 0 || in[0] != '/') return -1;
    if (out) out[0] = '/';
    for (;;) { /* one segment per round; out[0, w) ends with '/' here */
        size_t seg_w = w;
        size_t dots = 0;   /* '.' in the segment, raw or decoded */
        size_t other = 0;  /* bytes that are not '.' */
        bool enc_dot = false; /* one of those dots came from %2E */
        while (r < len && in[r] != '/') {
            unsigned char c = (unsigned char)in[r];
            bool encoded = false;
            if (c == '\\' || c == '#') return -1;
            if (c == '%') {
                int hi = len - r >= 3 ? hexval((unsigned char)in[r + 1]) : -1;
                int lo = hi >= 0 ? hexval((unsigned char)in[r + 2]) : -1;
                if (lo < 0) return -1; /* not %HH */
                unsigned v = (unsigned)(hi << 4 | lo);
                if (v == '/' || v == '\\' || v == 0) return -1;
                if (unreserved((unsigned char)v)) {
                    c = (unsigned char)v;
                    encoded = true;
                    changed = true;
                } else {
                    /* stays encoded; hex digits in upper case (RFC 3986 6.2.2.1) */
                    if (in[r + 1] != hexd[hi] || in[r + 2] != hexd[lo]) changed = true;
                    if (v == ';' && other == 0 && (dots == 1 || dots == 2)) return -1;
                    other++;
                    EMIT('%');
                    EMIT(hexd[hi]);
                    EMIT(hexd[lo]);
                    r += 3;
                    continue;
                }
                r += 3;
            } else {
                r++;
            }
            if (c == '.') {
                dots++;
                enc_dot |= encoded;
            } else {
                /* "..;x": servlet containers drop the parameter, then the dots */
                if (c == ';' && other == 0 && (dots == 1 || dots == 2)) return -1;
                other++;
            }
            EMIT(c);
        }
        bool last = r >= len;
        if (other == 0 && dots == 0) { /* empty: "//" merges, a final '/' stays */
            if (!last) changed = true;
        } else if (other == 0 && dots <= 2) { /* "." or ".." */
            if (enc_dot) return -1;
            changed = true;
            w = seg_w;
            if (dots == 2 && w > 1) { /* drop the segment before (none above the root) */
                w--;
                while (out && w > 1 && out[w - 1] != '/') w--;
            }
        } else if (!last) {
            EMIT('/');
        }
        if (last) break;
        r++; /* the '/' */
    }
#undef EMIT
    if (out_len) *out_len = w;
    return changed ? 1 : 0;
}

const char *el_http_norm_path(const struct el_http_msg *m, char *buf, size_t *len)
{
    if (m->path_normal) {
        *len = m->path_len;
        return m->path;
    }
    if (el_http_path_normalize(m->path, m->path_len, buf, len) == -1) { /* not from the parser */
        *len = m->path_len;
        return m->path;
    }
    return buf;
}

/* The authority of an absolute-form target: reg-name or IP-literal and an
 * optional port. Userinfo ('@') is refused (RFC 9110 4.2.4), as is an empty
 * host. */
static bool authority_ok(const char *p, size_t n)
{
    if (n == 0 || p[0] == ':') return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (unreserved(c) || strchr("!$&'()*+,;=:[]%", c) != NULL) continue;
        return false; /* '@', and whatever no authority contains */
    }
    return true;
}

/* Set path, query and authority from the target (see the invariants above),
 * and check the path (path_normal, or EL_HTTP_BAD when ambiguous). */
static int parse_path(struct el_http_msg *msg)
{
    const char *t = msg->target, *end = t + msg->target_len;
    const char *p = t;
    if (t[0] == '/') goto path;
    if (msg->method_len == 7 && memcmp(msg->method, "CONNECT", 7) == 0) {
        msg->path = t;
        msg->path_len = msg->target_len;
        msg->path_normal = true;
        return 0;
    }
    if (msg->target_len == 1 && t[0] == '*') {
        if (msg->method_len != 7 || memcmp(msg->method, "OPTIONS", 7) != 0) return EL_HTTP_BAD;
        msg->path = t;
        msg->path_len = 1;
        msg->path_normal = true;
        return 0;
    }
    /* absolute-form: ("http" / "https") "://" authority [ path ] [ "?" query ] */
    if (msg->target_len >= 7 && ci_eq(t, "http://", 7)) {
        p = t + 7;
    } else if (msg->target_len >= 8 && ci_eq(t, "https://", 8)) {
        p = t + 8;
    } else {
        return EL_HTTP_BAD;
    }
    const char *auth = p;
    while (p < end && *p != '/' && *p != '?') p++;
    if (!authority_ok(auth, (size_t)(p - auth))) return EL_HTTP_BAD;
    msg->authority = auth;
    msg->authority_len = (uint16_t)(p - auth);
    if (p == end || *p == '?') {
        msg->path = "/";
        msg->path_len = 1;
        msg->path_normal = true;
        msg->query = p;
        msg->query_len = (uint16_t)(end - p);
        return 0;
    }
path:;
    const char *q = memchr(p, '?', (size_t)(end - p));
    msg->path = p;
    msg->path_len = (uint16_t)((q ? q : end) - p);
    msg->query = q ? q : end;
    msg->query_len = (uint16_t)(end - msg->query);
    if (path_plain(msg->path, msg->path_len)) {
        msg->path_normal = true;
        return 0;
    }
    int rc = el_http_path_normalize(msg->path, msg->path_len, NULL, NULL);
    if (rc == -1) return EL_HTTP_BAD;
    msg->path_normal = rc == 0;
    return 0;
}

/* request-line = method SP request-target SP HTTP-version, in [s, e) where
 * *e is the CR. */
static int parse_request_line(const char *s, const char *e, struct el_http_msg *msg)
{
    const char *p = s;
    while (IS(*p, C_TCHAR)) p++;
    if (p == s || *p != ' ') return EL_HTTP_BAD;
    msg->method = s;
    msg->method_len = (uint16_t)(p - s);
    const char *t = ++p;
    p = scan(p, e, 0x21, C_TARGET);
    if (p == t || *p != ' ') return EL_HTTP_BAD;
    if (p - t > UINT16_MAX || p - s > UINT16_MAX) return EL_HTTP_TOO_LARGE;
    msg->target = t;
    msg->target_len = (uint16_t)(p - t);
    p++;
    if (e - p != 8) return EL_HTTP_BAD;
    int rc = parse_version(p, &msg->minor_version);
    if (rc != 0) return rc;
    return parse_path(msg);
}

/* status-line = HTTP-version SP status-code SP [ reason-phrase ] */
static int parse_status_line(const char *s, const char *e, struct el_http_msg *msg)
{
    if (e - s < 12 || s[8] != ' ') return EL_HTTP_BAD;
    int rc = parse_version(s, &msg->minor_version);
    if (rc != 0) return rc;
    unsigned d0 = (unsigned char)s[9] - '0', d1 = (unsigned char)s[10] - '0',
             d2 = (unsigned char)s[11] - '0';
    if (d0 - 1 > 8 || d1 > 9 || d2 > 9) return EL_HTTP_BAD;
    msg->status = (int)(d0 * 100 + d1 * 10 + d2);
    const char *r = s + 12;
    if (r < e) {
        if (*r != ' ') return EL_HTTP_BAD;
        r++;
    }
    if (scan(r, e, 0x20, C_FVALUE) != e) return EL_HTTP_BAD;
    if (e - r > UINT16_MAX) return EL_HTTP_TOO_LARGE;
    msg->reason = r;
    msg->reason_len = (uint16_t)(e - r);
    return 0;
}

/* What the field loop learned about the headers that shape the message. */
struct head_state {
    struct cl_state cl; /* Content-Length value(s) */
    unsigned te;        /* Transfer-Encoding fields (each exactly "chunked") */
    unsigned host;      /* Host fields */
    bool connection;    /* a Connection field is present */
    bool upgrade;       /* an Upgrade field is present */
};

/* field-line = field-name ":" OWS field-value OWS, in [s, e) where *e is the
 * CR. Appends it to msg->headers and notes what matters in st. */
static int parse_field(const char *s, const char *e, struct el_http_msg *msg,
                       struct head_state *st)
{
    const char *p = s;
    while (IS(*p, C_TCHAR)) p++; /* stops at the CR at the latest */
    if (p == s || *p != ':') return EL_HTTP_BAD;
    size_t nlen = (size_t)(p - s);
    p++;
    while (IS(*p, C_WS)) p++;
    const char *v = p;
    p = scan(p, e, 0x20, C_FVALUE);
    if (p != e) return EL_HTTP_BAD; /* CTL, NUL or bare CR inside */
    while (p > v && IS(p[-1], C_WS)) p--;
    size_t vlen = (size_t)(p - v);
    if (msg->nheaders == EL_HTTP_MAX_HEADERS) return EL_HTTP_TOO_LARGE;
    if (nlen > UINT16_MAX || vlen > UINT16_MAX) return EL_HTTP_TOO_LARGE;

    uint8_t flags = 0;
    switch (nlen) {
    case 2:
        if (tok_eq(s, "te", 2)) flags = EL_HDR_HOP;
        break;
    case 4:
        if (tok_eq(s, "host", 4)) st->host++;
        break;
    case 6:
        if (tok_eq(s, "expect", 6) && vlen == 12 && ci_eq(v, "100-continue", 12))
            msg->expect_continue = true;
        break;
    case 7:
        if (tok_eq(s, "trailer", 7)) {
            flags = EL_HDR_HOP;
        } else if (tok_eq(s, "upgrade", 7)) {
            flags = EL_HDR_HOP;
            st->upgrade = true;
        }
        break;
    case 10:
        if (tok_eq(s, "connection", 10)) {
            flags = EL_HDR_HOP;
            st->connection = true;
        } else if (tok_eq(s, "keep-alive", 10)) {
            flags = EL_HDR_HOP;
        }
        break;
    case 14:
        if (tok_eq(s, "content-length", 14)) {
            flags = EL_HDR_FRAMING;
            if (each_elem(v, vlen, cl_elem, &st->cl) == -1) return EL_HTTP_BAD;
        }
        break;
    case 16:
        if (tok_eq(s, "proxy-connection", 16)) flags = EL_HDR_HOP;
        break;
    case 17:
        if (tok_eq(s, "transfer-encoding", 17)) {
            flags = EL_HDR_FRAMING;
            if (++st->te > 1 || vlen != 7 || !ci_eq(v, "chunked", 7)) return EL_HTTP_BAD;
        }
        break;
    default:
        break;
    }
    struct el_http_header *h = &msg->headers[msg->nheaders++];
    h->name = s;
    h->name_len = (uint16_t)nlen;
    h->value = v;
    h->value_len = (uint16_t)vlen;
    h->flags = flags;
    return 0;
}

static void msg_reset(struct el_http_msg *msg)
{
    msg->method = msg->target = msg->path = msg->reason = NULL;
    msg->method_len = msg->target_len = msg->path_len = msg->reason_len = 0;
    msg->query = msg->authority = NULL;
    msg->query_len = msg->authority_len = 0;
    msg->path_normal = false;
    msg->status = 0;
    msg->minor_version = 0;
    msg->keep_alive = msg->expect_continue = msg->has_host = msg->upgrade = false;
    msg->body = EL_BODY_NONE;
    msg->content_length = 0;
    msg->head_len = 0;
    msg->nheaders = 0;
}

/* Connection tokens, keep-alive and body framing, once all fields are in. */
static int finish(struct el_http_msg *msg, struct head_state *st, bool request,
                  bool head_request)
{
    if (st->te && st->cl.seen) return EL_HTTP_BAD;
    if (st->te && msg->minor_version == 0) return EL_HTTP_BAD;
    if (request) {
        if (st->host > 1 || (st->host == 0 && msg->minor_version == 1)) return EL_HTTP_BAD;
        msg->has_host = st->host == 1;
        if (msg->minor_version == 0) msg->expect_continue = false;
    } else {
        msg->expect_continue = false;
    }

    struct conn_state cs = {.msg = msg};
    if (st->connection) {
        for (size_t i = 0; i < msg->nheaders; i++) {
            const struct el_http_header *h = &msg->headers[i];
            if (h->name_len == 10 && tok_eq(h->name, "connection", 10))
                each_elem(h->value, h->value_len, conn_elem, &cs);
        }
    }
    msg->keep_alive = msg->minor_version == 1 ? !cs.close : (cs.keep_alive && !cs.close);
    msg->upgrade = st->upgrade && cs.upgrade;

    if (st->te) {
        msg->body = EL_BODY_CHUNKED;
    } else if (st->cl.seen) {
        msg->body = EL_BODY_LENGTH;
        msg->content_length = st->cl.n;
    } else {
        msg->body = request ? EL_BODY_NONE : EL_BODY_CLOSE;
    }
    if (!request) {
        int s = msg->status;
        if (head_request || s < 200 || s == 204 || s == 304) {
            msg->body = EL_BODY_NONE;
            msg->content_length = 0;
        }
        if (msg->body == EL_BODY_CLOSE) msg->keep_alive = false;
    }
    return 0;
}

static int parse_head(const char *buf, size_t len, size_t max_head, bool request,
                      bool head_request, struct el_http_msg *msg)
{
    if (max_head > INT_MAX) max_head = INT_MAX;
    size_t lim = len < max_head ? len : max_head;
    size_t pos = 0;
    int rc;
    struct head_state st = {0};

    msg_reset(msg);
    if (request && lim > 0 && buf[0] == '\r') { /* one empty line before a request */
        if (lim < 2) return need_more(len, max_head);
        if (buf[1] != '\n') return EL_HTTP_BAD;
        pos = 2;
    }
    const char *lf = memchr(buf + pos, '\n', lim - pos);
    if (lf == NULL) return need_more(len, max_head);
    const char *s = buf + pos;
    if (lf == s || lf[-1] != '\r') return EL_HTTP_BAD;
    rc = request ? parse_request_line(s, lf - 1, msg) : parse_status_line(s, lf - 1, msg);
    if (rc != 0) return rc;

    for (;;) {
        pos = (size_t)(lf + 1 - buf);
        s = lf + 1;
        lf = memchr(s, '\n', lim - pos);
        if (lf == NULL) return need_more(len, max_head);
        if (lf == s || lf[-1] != '\r') return EL_HTTP_BAD;
        if (lf - 1 == s) break; /* the empty line ends the head */
        if (IS(*s, C_WS)) return EL_HTTP_BAD; /* obs-fold, or space before a field */
        rc = parse_field(s, lf - 1, msg, &st);
        if (rc != 0) return rc;
    }
    rc = finish(msg, &st, request, head_request);
    if (rc != 0) return rc;
    msg->head_len = (size_t)(lf + 1 - buf);
    return (int)msg->head_len;
}

int el_http_parse_request(const char *buf, size_t len, size_t max_head, struct el_http_msg *msg)
{
    return parse_head(buf, len, max_head, true, false, msg);
}

int el_http_parse_response(const char *buf, size_t len, size_t max_head, bool head_request,
                           struct el_http_msg *msg)
{
    return parse_head(buf, len, max_head, false, head_request, msg);
}

const struct el_http_header *el_http_find(const struct el_http_msg *msg, const char *name,
                                          size_t name_len)
{
    for (size_t i = 0; i < msg->nheaders; i++) {
        const struct el_http_header *h = &msg->headers[i];
        if (h->name_len == name_len && ci_eq(h->name, name, name_len)) return h;
    }
    return NULL;
}

/* Chunked decoder states (struct el_chunked.state). */
enum {
    CH_SIZE0 = 0,  /* start of a chunk-size line: first HEXDIG */
    CH_SIZE,       /* more HEXDIG, or what follows the size */
    CH_SEMI_PRE,   /* BWS seen, a ';' must follow */
    CH_NAME_PRE,   /* after ';': BWS, then ext-name */
    CH_NAME,       /* in ext-name */
    CH_NAME_POST,  /* BWS after ext-name: '=' or ';' must follow */
    CH_VAL_PRE,    /* after '=': BWS, then token or quoted-string */
    CH_VAL_TOKEN,  /* in a token ext-val */
    CH_QSTR,       /* in a quoted-string */
    CH_QSTR_ESC,   /* after a backslash in a quoted-string */
    CH_QSTR_POST,  /* after the closing quote */
    CH_SIZE_LF,    /* CR of the size line seen */
    CH_DATA,       /* chunk data, remaining bytes left */
    CH_DATA_CR,    /* CR after the data */
    CH_DATA_LF,    /* LF after the data */
    CH_TR_START,   /* start of a trailer line (or the final CRLF) */
    CH_TR_NAME,    /* in a trailer field name */
    CH_TR_VALUE,   /* in a trailer field value */
    CH_TR_LF,      /* CR of a trailer line seen */
    CH_FINAL_LF,   /* CR of the final empty line seen */
    CH_DONE,       /* message complete */
    CH_FAIL,       /* malformed; stays so */
};

int el_chunked_decode(struct el_chunked *c, const char *in, size_t len, size_t *used,
                      const char **data, size_t *data_len)
{
    const unsigned char *p = (const unsigned char *)in, *end = p + len;
    int st = c->state;
    int rc = 0;

    *data = NULL;
    *data_len = 0;
    while (p < end) {
        unsigned char ch = *p;
        if (st == CH_DATA) {
            size_t avail = (size_t)(end - p);
            size_t n = c->remaining < avail ? (size_t)c->remaining : avail;
            *data = (const char *)p;
            *data_len = n;
            p += n;
            c->remaining -= n;
            if (c->remaining == 0) st = CH_DATA_CR;
            break;
        }
        if (st < CH_SIZE_LF) { /* on a size line: bound it */
            if (++c->line_len > CHUNK_LINE_MAX) goto fail;
        } else if (st >= CH_TR_START && st <= CH_FINAL_LF) {
            if (++c->line_len > CHUNK_LINE_MAX || ++c->remaining > TRAILER_BYTES_MAX) goto fail;
        }
        p++;
        switch (st) {
        case CH_SIZE0:
        case CH_SIZE:
            if (IS(ch, C_HEX)) {
                if (c->line_len > CHUNK_SIZE_DIGITS) goto fail;
                unsigned d = ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10;
                c->remaining = c->remaining << 4 | d;
                st = CH_SIZE;
            } else if (st == CH_SIZE0) {
                goto fail;
            } else if (ch == ';') {
                st = CH_NAME_PRE;
            } else if (IS(ch, C_WS)) {
                st = CH_SEMI_PRE;
            } else if (ch == '\r') {
                st = CH_SIZE_LF;
            } else {
                goto fail;
            }
            break;
        case CH_SEMI_PRE:
            if (ch == ';') st = CH_NAME_PRE;
            else if (!IS(ch, C_WS)) goto fail;
            break;
        case CH_NAME_PRE:
            if (IS(ch, C_TCHAR)) st = CH_NAME;
            else if (!IS(ch, C_WS)) goto fail;
            break;
        case CH_NAME:
            if (IS(ch, C_TCHAR)) break;
            if (ch == '=') st = CH_VAL_PRE;
            else if (ch == ';') st = CH_NAME_PRE;
            else if (IS(ch, C_WS)) st = CH_NAME_POST;
            else if (ch == '\r') st = CH_SIZE_LF;
            else goto fail;
            break;
        case CH_NAME_POST:
            if (ch == '=') st = CH_VAL_PRE;
            else if (ch == ';') st = CH_NAME_PRE;
            else if (!IS(ch, C_WS)) goto fail;
            break;
        case CH_VAL_PRE:
            if (IS(ch, C_TCHAR)) st = CH_VAL_TOKEN;
            else if (ch == '"') st = CH_QSTR;
            else if (!IS(ch, C_WS)) goto fail;
            break;
        case CH_VAL_TOKEN:
            if (IS(ch, C_TCHAR)) break;
            if (ch == ';') st = CH_NAME_PRE;
            else if (IS(ch, C_WS)) st = CH_SEMI_PRE;
            else if (ch == '\r') st = CH_SIZE_LF;
            else goto fail;
            break;
        case CH_QSTR:
            if (ch == '"') st = CH_QSTR_POST;
            else if (ch == '\\') st = CH_QSTR_ESC;
            else if (!IS(ch, C_QDTEXT)) goto fail;
            break;
        case CH_QSTR_ESC:
            if (!IS(ch, C_FVALUE)) goto fail;
            st = CH_QSTR;
            break;
        case CH_QSTR_POST:
            if (ch == ';') st = CH_NAME_PRE;
            else if (IS(ch, C_WS)) st = CH_SEMI_PRE;
            else if (ch == '\r') st = CH_SIZE_LF;
            else goto fail;
            break;
        case CH_SIZE_LF:
            if (ch != '\n') goto fail;
            c->line_len = 0;
            if (c->remaining == 0) {
                st = CH_TR_START; /* last-chunk; remaining now counts trailer bytes */
            } else {
                st = CH_DATA;
            }
            break;
        case CH_DATA_CR:
            if (ch != '\r') goto fail;
            st = CH_DATA_LF;
            break;
        case CH_DATA_LF:
            if (ch != '\n') goto fail;
            c->line_len = 0;
            c->remaining = 0;
            st = CH_SIZE0;
            break;
        case CH_TR_START:
            if (ch == '\r') {
                st = CH_FINAL_LF;
            } else if (IS(ch, C_TCHAR)) {
                if (++c->trailers > TRAILER_FIELDS_MAX) goto fail;
                st = CH_TR_NAME;
            } else {
                goto fail; /* obs-fold, empty name, bare LF */
            }
            break;
        case CH_TR_NAME:
            if (ch == ':') st = CH_TR_VALUE;
            else if (!IS(ch, C_TCHAR)) goto fail;
            break;
        case CH_TR_VALUE:
            if (ch == '\r') st = CH_TR_LF;
            else if (!IS(ch, C_FVALUE)) goto fail;
            break;
        case CH_TR_LF:
            if (ch != '\n') goto fail;
            c->line_len = 0;
            st = CH_TR_START;
            break;
        case CH_FINAL_LF:
            if (ch != '\n') goto fail;
            st = CH_DONE;
            break;
        default: /* CH_DONE, CH_FAIL */
            p--;
            break;
        }
        if (st == CH_DONE || st == CH_FAIL) break;
    }
    if (st == CH_DONE) rc = 1;
    else if (st == CH_FAIL) rc = -1;
    c->state = st;
    *used = (size_t)(p - (const unsigned char *)in);
    return rc;

fail:
    c->state = CH_FAIL;
    *used = (size_t)(p - (const unsigned char *)in);
    *data = NULL;
    *data_len = 0;
    return -1;
}

size_t el_chunk_header(char *out, uint64_t n)
{
    static const char hex[] = "0123456789abcdef";
    char tmp[16];
    size_t k = 0;
    do {
        tmp[k++] = hex[n & 0xf];
        n >>= 4;
    } while (n != 0);
    for (size_t i = 0; i < k; i++) out[i] = tmp[k - 1 - i];
    out[k] = '\r';
    out[k + 1] = '\n';
    return k + 2;
}

const char *el_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "";
    }
}

/* ---- the lexical kit (see http.h) ---- */

bool el_http_is_tchar(unsigned char c)
{
    return IS(c, C_TCHAR);
}

bool el_http_is_ows(unsigned char c)
{
    return IS(c, C_WS);
}

const char *el_http_skip_ows(const char *p, const char *end)
{
    while (p < end && IS(*p, C_WS)) p++;
    return p;
}

const char *el_http_skip_token(const char *p, const char *end)
{
    while (p < end && IS(*p, C_TCHAR)) p++;
    return p;
}

void el_http_trim_ows(const char **p, size_t *len)
{
    const char *s = *p, *e = *p + *len;
    while (s < e && IS(*s, C_WS)) s++;
    while (e > s && IS(e[-1], C_WS)) e--;
    *p = s;
    *len = (size_t)(e - s);
}

const char *el_http_skip_quoted(const char *p, const char *end, char *buf, size_t cap,
                                size_t *len, bool *overflow)
{
    size_t n = 0;
    if (overflow) *overflow = false;
    for (p++; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            if (len) *len = n;
            return p + 1;
        }
        if (c == '\\') {
            if (++p >= end) return NULL;
            c = (unsigned char)*p;
        }
        if ((c < 0x20 && c != '\t') || c == 0x7f) return NULL;
        if (buf) {
            if (n + 1 < cap) buf[n++] = (char)c;
            else if (overflow) *overflow = true;
        }
    }
    return NULL;
}

/* One list step forward: the element is [*p, stop) with stop the first
 * comma (outside quoted strings when quoted). */
static bool next_list(const char **p, const char *end, const char **item, size_t *len,
                      bool quoted)
{
    const char *s = *p, *q = s;
    if (s == NULL) return false;
    while (q < end && *q != ',') {
        if (quoted && *q == '"') { /* to the closing quote, or the end */
            for (q++; q < end && *q != '"'; q++)
                if (*q == '\\' && q + 1 < end) q++;
            if (q >= end) {
                q = end;
                break;
            }
        }
        q++;
    }
    *item = s;
    *len = (size_t)(q - s);
    el_http_trim_ows(item, len);
    *p = q < end ? q + 1 : NULL;
    return true;
}

bool el_http_next_item(const char **p, const char *end, const char **item, size_t *len)
{
    return next_list(p, end, item, len, true);
}

bool el_http_next_elem(const char **p, const char *end, const char **item, size_t *len)
{
    return next_list(p, end, item, len, false);
}

bool el_http_prev_elem(const char **p, const char *begin, const char **item, size_t *len)
{
    const char *e = *p, *s = e;
    if (e == NULL) return false;
    while (s > begin && s[-1] != ',') s--;
    *item = s;
    *len = (size_t)(e - s);
    el_http_trim_ows(item, len);
    *p = s > begin ? s - 1 : NULL;
    return true;
}

bool el_http_cookie(const char *value, size_t len, const char *name, const char **out,
                    size_t *out_len)
{
    size_t name_len = strlen(name);
    const char *p = value, *end = value + len;
    while (p < end) {
        /* One "name=value" pair up to the next ';' (or the end). */
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *pair = p;
        size_t plen = (size_t)((semi ? semi : end) - p);
        p = semi ? semi + 1 : end;
        el_http_trim_ows(&pair, &plen);
        const char *eq = memchr(pair, '=', plen);
        if (eq == NULL) continue; /* not a pair: ignore */
        const char *n = pair;
        size_t nlen = (size_t)(eq - pair);
        el_http_trim_ows(&n, &nlen);
        if (nlen != name_len || memcmp(n, name, name_len) != 0) continue;
        const char *v = eq + 1;
        size_t vlen = (size_t)(pair + plen - v);
        el_http_trim_ows(&v, &vlen);
        *out = v;
        *out_len = vlen;
        return true;
    }
    return false;
}

bool el_http_query_param(const char *query, size_t len, const char *name, const char **out,
                         size_t *out_len)
{
    const char *p = query, *end = query + len;
    size_t nlen = strlen(name);
    if (p < end && *p == '?') p++;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (eq != NULL && (size_t)(eq - p) == nlen && memcmp(p, name, nlen) == 0) {
            *out = eq + 1;
            *out_len = (size_t)(stop - eq - 1);
            return true;
        }
        p = amp ? amp + 1 : end;
    }
    return false;
}
