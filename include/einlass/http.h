/* http.h - strict, in-place HTTP/1.1 message head parser and chunked codec
 * (RFC 9112). Pure: no allocation, no I/O, no clock.
 *
 * The parser hands out pointers into the caller's buffer; they stay valid as
 * long as the buffer does. It refuses what RFC 9112 lets a recipient refuse,
 * so that einlass and the backend can never disagree on message boundaries:
 * Content-Length with Transfer-Encoding, any Transfer-Encoding but exactly
 * "chunked", differing/negative/non-numeric Content-Length, whitespace before
 * a colon, obs-fold, NUL, bare CR or LF in a field, malformed start lines.
 *
 * Choices where RFC 9112 leaves room: lines end in CRLF only (bare LF is
 * EL_HTTP_BAD); one CRLF before a request line is skipped (head_len counts
 * it), a second is EL_HTTP_BAD; repeated Content-Length fields or lists of
 * one identical value ("5, 5") are accepted as one; Content-Length above
 * 2^63-1 and Transfer-Encoding in HTTP/1.0 are EL_HTTP_BAD; "*" only with
 * OPTIONS; a Connection token never marks Host or the framing fields
 * hop-by-hop; an absolute-form target without a path gets path "/" (a static
 * string, not inside buf). Every prefix of a valid head is
 * EL_HTTP_INCOMPLETE, so callers may re-parse from the start on each read.
 *
 * The path of a request (origin-form, or of an absolute-form target) is
 * checked here and has one normal form, el_http_path_normalize(): routes
 * match it and the backend receives it, so einlass and the backend cannot
 * disagree on which path was asked for. A target whose meaning differs
 * between decoders is EL_HTTP_BAD (400), as ambiguous framing is:
 *   - an invalid escape ('%' not followed by two hex digits), %00, an
 *     encoded '/' or '\' (%2F, %5C: nginx decodes them before it removes dot
 *     segments, other servers keep them as data), a raw '\' (a separator on
 *     Windows servers), a '#' in the path;
 *   - a dot segment with an encoded dot ("%2e", ".%2E"): nginx resolves it,
 *     RFC 3986 does not;
 *   - "." or ".." followed by ';' (raw or %3B): servlet containers drop the
 *     parameter and then resolve the dots;
 *   - an absolute-form target whose scheme is not http or https, or whose
 *     authority has userinfo ('@') or is empty.
 * The query is never decoded or changed. The origin-form path may not start
 * with anything but '/'; "*" (OPTIONS) and CONNECT's authority are left as
 * they are. */
#ifndef EL_HTTP_H
#define EL_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EL_HTTP_MAX_HEADERS 100 /* more fields than this: 431 */

/* Results of the head parsers. A positive value is the head's length in bytes
 * (through the blank line). */
enum el_http_result {
    EL_HTTP_INCOMPLETE = 0,  /* need more bytes */
    EL_HTTP_BAD = -1,        /* malformed or ambiguous: 400 and close */
    EL_HTTP_TOO_LARGE = -2,  /* head over max_head bytes or too many fields: 431 */
    EL_HTTP_VERSION = -3,    /* not HTTP/1.x: 505 */
};

/* Header flags the parser sets. */
#define EL_HDR_HOP 0x01     /* hop-by-hop (Connection, Keep-Alive, TE, Trailer, Upgrade,
                               Proxy-Connection, or named by Connection): not forwarded */
#define EL_HDR_FRAMING 0x02 /* Content-Length or Transfer-Encoding: einlass re-frames */

struct el_http_header {
    const char *name;  /* field name as received (case preserved) */
    const char *value; /* field value, leading and trailing whitespace removed */
    uint16_t name_len;
    uint16_t value_len;
    uint8_t flags; /* EL_HDR_* */
};

enum el_http_body {
    EL_BODY_NONE,    /* no body follows */
    EL_BODY_LENGTH,  /* content_length bytes follow */
    EL_BODY_CHUNKED, /* chunked coding follows */
    EL_BODY_CLOSE,   /* response only: body runs until the connection closes */
};

struct el_http_msg {
    /* request line */
    const char *method; /* e.g. "GET" */
    const char *target; /* request-target as received */
    const char *path;   /* target without query or scheme and authority (as received) */
    const char *query;  /* from the '?' to the end of the target; query_len 0: none */
    const char *authority; /* absolute-form: the target's authority (Host toward the
                              backend); NULL for other forms */
    uint16_t method_len;
    uint16_t target_len;
    uint16_t path_len;
    uint16_t query_len;
    uint16_t authority_len;
    bool path_normal;   /* path is already in normal form (the common case: no copy) */
    /* status line */
    int status;          /* response status code 100..999 */
    const char *reason;  /* reason phrase (may be empty) */
    uint16_t reason_len;
    /* both */
    uint8_t minor_version; /* HTTP/1.x: x */
    bool keep_alive;       /* after Connection and version rules */
    bool expect_continue;  /* request carried "Expect: 100-continue" */
    bool has_host;         /* request carried exactly one Host */
    bool upgrade;          /* an Upgrade field, and Connection names "upgrade"
                              (RFC 9110 7.8: asks to switch, or switches) */
    enum el_http_body body;
    uint64_t content_length; /* for EL_BODY_LENGTH */
    size_t head_len;         /* bytes of the head, including the final CRLF CRLF */
    size_t nheaders;
    struct el_http_header headers[EL_HTTP_MAX_HEADERS];
};

/* Parse a request head from buf[0..len). Returns the head length (> 0), or an
 * el_http_result <= 0. max_head bounds the head: if no complete head fits in
 * max_head bytes the result is EL_HTTP_TOO_LARGE. On success msg is filled,
 * including body framing. A request without Host in HTTP/1.1 is EL_HTTP_BAD. */
int el_http_parse_request(const char *buf, size_t len, size_t max_head, struct el_http_msg *msg);

/* Parse a response head. head_request: the request was HEAD (no body).
 * 1xx, 204 and 304 responses, and responses to HEAD, have EL_BODY_NONE.
 * A response without Content-Length or chunked has EL_BODY_CLOSE. */
int el_http_parse_response(const char *buf, size_t len, size_t max_head, bool head_request,
                           struct el_http_msg *msg);

/* Normalise the path in[0..len) (starting with '/') into out, which holds
 * len bytes and may be in itself (the result is never longer, and is written
 * behind what is read). out may be NULL: only check. The normal form:
 *   - %HH of an unreserved character (ALPHA DIGIT - . _ ~) is decoded, other
 *     escapes stay, their hex digits in upper case;
 *   - runs of '/' merge into one, as nginx's merge_slashes does (a final
 *     '/' stays);
 *   - "." and ".." segments are removed (RFC 3986 5.2.4; ".." never climbs
 *     above the root).
 * Returns 0 if the normal form is the input itself, 1 if it differs (with
 * out, *out_len is its length either way), -1 if the path is ambiguous (see
 * the top of this file; then out holds garbage). Idempotent: a normal form
 * returns 0. */
int el_http_path_normalize(const char *in, size_t len, char *out, size_t *out_len);

/* The normal form of m's path: m->path itself when m->path_normal, else
 * written into buf (m->path_len bytes). Sets *len. */
const char *el_http_norm_path(const struct el_http_msg *m, char *buf, size_t *len);

/* Find the first field named name (case-insensitive); NULL if absent. */
const struct el_http_header *el_http_find(const struct el_http_msg *msg, const char *name,
                                          size_t name_len);

/* Incremental chunked-body decoder. Zero-initialise, then call
 * el_chunked_decode() with each piece of input. */
struct el_chunked {
    int state;          /* private: where in the grammar we are */
    uint64_t remaining; /* private: bytes left in the current chunk */
    uint32_t line_len;  /* private: bytes seen on a size or trailer line (bounded) */
    uint32_t trailers;  /* private: trailer fields seen (bounded) */
};

/* Decode from in[0..len). Consumes some input and sets *used to the number
 * of bytes consumed; if those bytes ended in chunk data, *data and *data_len
 * point at it (inside in). Returns 1 when the terminal chunk and trailers
 * are complete (the message ends at in + *used), 0 to call again (with the
 * rest of the input, or more of it once it arrives), -1 on malformed input
 * (bad size, extension outside the grammar, missing CRLF, oversized line).
 * Trailer fields are validated and dropped. */
int el_chunked_decode(struct el_chunked *c, const char *in, size_t len, size_t *used,
                      const char **data, size_t *data_len);

/* Write a chunk header "<hex>\r\n" for n bytes into out (>= 20 bytes);
 * returns its length. The chunk's trailing "\r\n" is the caller's. */
size_t el_chunk_header(char *out, uint64_t n);

/* Reason phrase for a status code ("OK", "Bad Request", ...); "" if unknown. */
const char *el_http_reason(int status);

/* ---- the lexical kit: field values (RFC 9110 5.6) ----
 * Every module that reads inside a field value (Accept, Accept-Language,
 * Server-Timing, Cookie, X-Forwarded-For, Connection, Content-Length) and
 * the config's word and list values uses these, so one set of rules decides
 * what a token, OWS, a list element and a quoted string are. Pure: no
 * allocation; everything handed out points into the caller's bytes. Values
 * from el_http_parse_*() hold no control character but HTAB; the functions
 * below take any bytes. */

/* tchar: ALPHA DIGIT and !#$%&'*+-.^_`|~ */
bool el_http_is_tchar(unsigned char c);
/* OWS byte: SP or HTAB. */
bool el_http_is_ows(unsigned char c);
/* The first byte in [p, end) that is not OWS, or end. */
const char *el_http_skip_ows(const char *p, const char *end);
/* The first byte in [p, end) that is not a tchar, or end. */
const char *el_http_skip_token(const char *p, const char *end);
/* Remove OWS at both ends of [*p, *p + *len). */
void el_http_trim_ows(const char **p, size_t *len);

/* p points at '"'. Returns the byte after the closing '"', or NULL if there
 * is none or the string holds a control character (not HTAB) or DEL. A '\'
 * takes the next byte as it is. When buf is not NULL the unescaped content
 * goes there (at most cap - 1 bytes; *len its length; *overflow tells
 * whether some did not fit); buf NULL only scans. */
const char *el_http_skip_quoted(const char *p, const char *end, char *buf, size_t cap,
                                size_t *len, bool *overflow);

/* List iterators (#rule, RFC 9110 5.6.1): start with *p at the value and
 * call until false. Each call hands out the next element, OWS removed at both
 * ends, in *item and *len: empty elements too ("a,,b" gives "a", "", "b"; an
 * empty value gives one empty element), so a caller that must refuse them
 * can, and the others skip len 0. After the last element *p is NULL.
 *
 * el_http_next_item(): a quoted-string is part of its element, so a comma
 * inside one does not split (Accept and Server-Timing parameters); a '"'
 * without its closing quote runs to the end of the value (a '\' in it takes
 * the next byte). */
bool el_http_next_item(const char **p, const char *end, const char **item, size_t *len);

/* el_http_next_elem(): split at every comma, quotes or not. For lists whose
 * elements are tokens, numbers or addresses (Connection, Content-Length,
 * X-Forwarded-For, config lists): such an element never holds a '"', and a
 * stray one must not hide the elements after it (the backend splits there). */
bool el_http_next_elem(const char **p, const char *end, const char **item, size_t *len);

/* el_http_prev_elem(): el_http_next_elem() from the right end: start with
 * *p at the value's end and pass its start as begin (X-Forwarded-For is read
 * from the nearest hop outwards). */
bool el_http_prev_elem(const char **p, const char *begin, const char **item, size_t *len);

/* Cookie lookup in one Cookie field value (RFC 6265 5.4): pairs are split at
 * ';', a piece without '=' is no pair, name and value lose OWS at both ends.
 * The first pair whose name is exactly name (case matters; no prefix match)
 * sets *out and *out_len to its value as it stands (a quoted value keeps its
 * quotes; it may be empty) and returns true; false if there is none. */
bool el_http_cookie(const char *value, size_t len, const char *name, const char **out,
                    size_t *out_len);

/* The value of the first parameter name in a query (query[0..len), a
 * leading '?' skipped; "a=1&b=2"): *out, *out_len (not decoded). False if
 * there is none (a parameter without '=' has no value). Pure. */
bool el_http_query_param(const char *query, size_t len, const char *name, const char **out,
                         size_t *out_len);

#endif
