/* fuzz_token.c - libFuzzer target for the ticket codec and the Cookie header
 * scanner. Besides memory errors it checks their promises:
 *  - anything el_token_decode accepts re-encodes (with the key it names) to
 *    exactly the same text: every accepted text is the canonical one;
 *  - a token built from the input round-trips with every field, fails once
 *    expired and in another room, and no edit of its text is accepted unless
 *    the edit left the text as it was (tampering, trailing base64 bits);
 *  - el_http_cookie agrees with a plain reference scanner and hands out a
 *    value that lies inside the header.
 *
 * Input: the whole input is decoded as token text and scanned as a Cookie
 * header (cookie "t"; its value is decoded too). When it holds at least 21
 * bytes, those build a token (kind, lane, flags, num, issued, expires, now)
 * and the rest are edits of its text: pairs (position, byte) set a byte, a
 * pair (0xff, n) cuts the text to n % (length + 1) bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "einlass/http.h"
#include "einlass/token.h"

#define TOKEN_LEN 55
#define TOKEN1_LEN 50 /* version 1, before epochs: still read */
#define COOKIE "t"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct el_token_keys *cur;   /* signs with A, verifies A and B */
static struct el_token_keys *old;   /* signs with B: re-encodes tokens of B */
static struct el_token_keys *other; /* same secrets, another room */
static uint8_t id_a, id_b;          /* key ids of A and B */

static void init(void)
{
    uint8_t a[32], b[32];
    memset(a, 0x11, sizeof(a));
    memset(b, 0x22, sizeof(b));
    cur = el_token_keys_new("fuzz", a, b);
    old = el_token_keys_new("fuzz", b, NULL);
    other = el_token_keys_new("fuzz2", a, b);
    /* the key ids, as encode writes them */
    struct el_token t = {.kind = EL_TOKEN_TICKET, .expires = 1};
    char text[EL_TOKEN_TEXT_MAX];
    struct el_token d;
    el_token_encode(cur, &t, text);
    if (el_token_decode(cur, text, strlen(text), 0, &d) != 0) abort();
    id_a = d.key_id;
    el_token_encode(old, &t, text);
    if (el_token_decode(cur, text, strlen(text), 0, &d) != 0) abort();
    id_b = d.key_id;
    if (id_a == id_b) abort(); /* the checks tell the keys apart by id */
}

static bool same_token(const struct el_token *a, const struct el_token *b)
{
    return a->kind == b->kind && a->key_id == b->key_id && a->lane == b->lane &&
           a->flags == b->flags && a->num == b->num && a->issued == b->issued &&
           a->expires == b->expires;
}

/* Whatever decodes must be exactly what encoding its fields gives. */
static void check_decode(const char *text, size_t len, uint64_t now)
{
    struct el_token t;
    memset(&t, 0xa5, sizeof(t));
    if (el_token_decode(cur, text, len, now, &t) != 0) return;
    if ((len != TOKEN_LEN && len != TOKEN1_LEN) || now >= t.expires) abort();
    if (t.kind != EL_TOKEN_TICKET && t.kind != EL_TOKEN_PASS) abort();
    if (t.key_id != id_a && t.key_id != id_b) abort();
    char again[EL_TOKEN_TEXT_MAX];
    size_t n = el_token_encode(t.key_id == id_a ? cur : old, &t, again);
    if (len == TOKEN1_LEN && t.epoch != 0) abort(); /* version 1: read with epoch 0 */
    if (len == TOKEN_LEN && (n != len || memcmp(again, text, len) != 0)) abort();
    /* the same text is of no use in another room */
    struct el_token o;
    if (el_token_decode(other, text, len, now, &o) == 0) abort();
}

/* Reference: the first "name=value" pair (split at ';', spaces and tabs
 * trimmed around name and value) whose name is exactly name. */
static bool ref_cookie(const char *h, size_t n, const char *name, size_t *voff, size_t *vlen)
{
    size_t nl = strlen(name), i = 0;
    while (i < n) {
        size_t s = i;
        while (i < n && h[i] != ';')
            i++;
        size_t e = i++;
        size_t eq = s;
        while (eq < e && h[eq] != '=')
            eq++;
        if (eq == e) continue;
        size_t a = s, b = eq;
        while (a < b && (h[a] == ' ' || h[a] == '\t'))
            a++;
        while (b > a && (h[b - 1] == ' ' || h[b - 1] == '\t'))
            b--;
        if (b - a != nl || memcmp(h + a, name, nl) != 0) continue;
        size_t vs = eq + 1, ve = e;
        while (vs < ve && (h[vs] == ' ' || h[vs] == '\t'))
            vs++;
        while (ve > vs && (h[ve - 1] == ' ' || h[ve - 1] == '\t'))
            ve--;
        *voff = vs;
        *vlen = ve - vs;
        return true;
    }
    return false;
}

static void check_cookie(const char *h, size_t n, uint64_t now)
{
    const char *val = NULL;
    size_t len = 0, roff = 0, rlen = 0;
    bool found = el_http_cookie(h, n, COOKIE, &val, &len);
    bool rfound = ref_cookie(h, n, COOKIE, &roff, &rlen);
    if (found != rfound) abort();
    if (!found) return;
    if (val < h || val > h + n || len > (size_t)(h + n - val)) abort();
    if (len != rlen || (len > 0 && val != h + roff)) abort(); /* where "" is does not matter */
    if (memchr(val, ';', len) != NULL) abort();
    check_decode(val, len, now);
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Build a token from 21 bytes, check its round trip, then edit its text. */
static void check_built(const uint8_t *d, const uint8_t *edits, size_t nedits)
{
    struct el_token t = {
        .kind = (d[0] & 1) ? EL_TOKEN_TICKET : EL_TOKEN_PASS,
        .lane = d[1],
        .flags = d[2],
        .num = get_be(d + 3, 8),
        .issued = (uint32_t)get_be(d + 11, 4),
        .expires = (uint32_t)get_be(d + 15, 4),
    };
    uint64_t now = t.expires ? t.expires - 1 - (get_be(d + 19, 2) % t.expires) : 0;
    bool prev = (d[0] & 2) != 0;
    char text[EL_TOKEN_TEXT_MAX];
    size_t n = el_token_encode(prev ? old : cur, &t, text);
    if (n != TOKEN_LEN || text[n] != '\0' || strlen(text) != n) abort();
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            abort();
    }
    struct el_token got;
    int rc = el_token_decode(cur, text, n, now, &got);
    if (t.expires == 0) {
        if (rc == 0) abort(); /* expired at any time */
    } else {
        t.key_id = prev ? id_b : id_a;
        if (rc != 0 || !same_token(&t, &got)) abort();
        if (el_token_decode(cur, text, n, t.expires, &got) == 0) abort();
        if (el_token_decode(other, text, n, now, &got) == 0) abort();
        if (prev && el_token_decode(old, text, n, now, &got) != 0) abort();
    }
    /* edits: accepted only if the text came out as it was */
    char edited[EL_TOKEN_TEXT_MAX];
    size_t elen = n;
    memcpy(edited, text, n);
    for (size_t i = 0; i + 1 < nedits && elen > 0; i += 2) {
        if (edits[i] == 0xff)
            elen = edits[i + 1] % (elen + 1);
        else
            edited[edits[i] % elen] = (char)edits[i + 1];
    }
    check_decode(edited, elen, now);
    if (el_token_decode(cur, edited, elen, now, &got) == 0 &&
        (elen != n || memcmp(edited, text, n) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (cur == NULL) init();
    const char *text = (const char *)data;
    check_decode(text, size, 1700000000);
    check_cookie(text, size, 1700000000);
    if (size >= 21) check_built(data, data + 21, size - 21);
    return 0;
}
