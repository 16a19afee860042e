/* token.c - signed tickets and passes: HMAC-SHA256 over a fixed 25-byte
 * payload and the room name, carried as base64url without padding.
 *
 * Invariants: an encoded token is always exactly TEXT_LEN (55) characters of
 * the base64url alphabet with zero trailing bits; decoding accepts that, or
 * a version-1 token of TEXT1_LEN (50) characters (21-byte payload, no epoch:
 * made before epochs, read with epoch 0), and nothing else, so every text
 * has one meaning. Each key's EVP_MAC_CTX is keyed once in
 * el_token_keys_new(); a token re-initialises it with a NULL key, which makes
 * OpenSSL restart from the saved inner/outer pads instead of re-hashing the
 * key. Tags are compared with CRYPTO_memcmp only after the MAC is complete.
 * Nothing here allocates after el_token_keys_new(), reads a clock or does I/O. */
#include "einlass/token.h"

#include "einlass/common.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdlib.h>
#include <string.h>

#define PAYLOAD_LEN 25                   /* version..epoch */
#define PAYLOAD1_LEN 21                  /* version 1: version..expires */
#define TAG_LEN 16                       /* truncated HMAC-SHA256 */
#define RAW_LEN (PAYLOAD_LEN + TAG_LEN)  /* 41 bytes */
#define RAW1_LEN (PAYLOAD1_LEN + TAG_LEN) /* 37 bytes */
#define TEXT_LEN ((RAW_LEN * 4 + 2) / 3) /* 55 base64url characters */
#define TEXT1_LEN ((RAW1_LEN * 4 + 2) / 3) /* 50: version 1 */

_Static_assert(TEXT_LEN < EL_TOKEN_TEXT_MAX, "token text must fit EL_TOKEN_TEXT_MAX");

struct key {
    EVP_MAC_CTX *ctx; /* HMAC-SHA256 keyed with the secret; NULL if unused */
    uint8_t id;       /* first byte of SHA-256(secret) */
};

struct el_token_keys {
    EVP_MAC *mac;    /* the fetched HMAC implementation, shared by both keys */
    struct key cur;  /* signs and verifies */
    struct key prev; /* verifies only (rotation); ctx NULL without previous_secret */
    char *room;      /* room name, MACed after the payload */
    size_t room_len; /* strlen(room) */
};

static void die(const char *what)
{
    el_err("token: OpenSSL %s failed", what);
    abort();
}

static void key_init(struct el_token_keys *k, struct key *key, const uint8_t secret[32])
{
    uint8_t digest[32];
    unsigned dlen = 0;
    if (EVP_Digest(secret, 32, digest, &dlen, EVP_sha256(), NULL) != 1) die("SHA-256");
    key->id = digest[0];
    key->ctx = EVP_MAC_CTX_new(k->mac);
    if (key->ctx == NULL) die("EVP_MAC_CTX_new");
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_MAC_init(key->ctx, secret, 32, params) != 1) die("EVP_MAC_init");
}

struct el_token_keys *el_token_keys_new(const char *room, const uint8_t secret[32],
                                        const uint8_t *previous)
{
    struct el_token_keys *k = el_calloc(1, sizeof(*k));
    k->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (k->mac == NULL) die("EVP_MAC_fetch(HMAC)");
    k->room = el_strdup(room ? room : "");
    k->room_len = strlen(k->room);
    key_init(k, &k->cur, secret);
    if (previous != NULL) key_init(k, &k->prev, previous);
    return k;
}

void el_token_keys_free(struct el_token_keys *k)
{
    if (k == NULL) return;
    EVP_MAC_CTX_free(k->cur.ctx);
    EVP_MAC_CTX_free(k->prev.ctx);
    EVP_MAC_free(k->mac);
    free(k->room);
    free(k);
}

/* tag = HMAC(key, payload || room)[0..16). */
static void compute_tag(const struct el_token_keys *k, EVP_MAC_CTX *ctx, const uint8_t *payload,
                        size_t payload_len, uint8_t tag[TAG_LEN])
{
    uint8_t full[32];
    size_t outl = 0;
    if (EVP_MAC_init(ctx, NULL, 0, NULL) != 1 || EVP_MAC_update(ctx, payload, payload_len) != 1 ||
        EVP_MAC_update(ctx, (const uint8_t *)k->room, k->room_len) != 1 ||
        EVP_MAC_final(ctx, full, &outl, sizeof(full)) != 1 || outl != sizeof(full))
        die("HMAC");
    memcpy(tag, full, TAG_LEN);
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* ---- base64url without padding ---- */

static const char b64_alphabet[64] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Encode n bytes into out (which holds (n*4+2)/3 characters). Returns the length. */
static size_t b64url_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64_alphabet[v >> 18];
        out[o++] = b64_alphabet[(v >> 12) & 63];
        out[o++] = b64_alphabet[(v >> 6) & 63];
        out[o++] = b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        out[o++] = b64_alphabet[in[i] >> 2];
        out[o++] = b64_alphabet[(in[i] & 3) << 4];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
        out[o++] = b64_alphabet[v >> 10];
        out[o++] = b64_alphabet[(v >> 4) & 63];
        out[o++] = b64_alphabet[(v & 15) << 2];
    }
    return o;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

/* Strictly decode text[0..len) into exactly n bytes: len must be the canonical
 * length for n, every character in the alphabet, unused trailing bits zero.
 * Returns 0 or -1. */
static int b64url_decode(const char *text, size_t len, uint8_t *out, size_t n)
{
    if (len != (n * 4 + 2) / 3) return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value((unsigned char)text[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (o != n || acc != 0) return -1; /* non-canonical: leftover bits set */
    return 0;
}

/* ---- tokens ---- */

size_t el_token_encode(struct el_token_keys *k, const struct el_token *t, char *out)
{
    uint8_t raw[RAW_LEN];
    raw[0] = EL_TOKEN_VERSION;
    raw[1] = t->kind;
    raw[2] = k->cur.id;
    raw[3] = t->lane;
    raw[4] = t->flags;
    put_be(raw + 5, t->num, 8);
    put_be(raw + 13, t->issued, 4);
    put_be(raw + 17, t->expires, 4);
    put_be(raw + 21, t->epoch, 4);
    compute_tag(k, k->cur.ctx, raw, PAYLOAD_LEN, raw + PAYLOAD_LEN);
    size_t n = b64url_encode(raw, RAW_LEN, out);
    out[n] = '\0';
    return n;
}

static bool tag_ok(const struct el_token_keys *k, const struct key *key, const uint8_t *raw,
                   size_t payload_len)
{
    if (key->ctx == NULL || key->id != raw[2]) return false;
    uint8_t tag[TAG_LEN];
    compute_tag(k, key->ctx, raw, payload_len, tag);
    return CRYPTO_memcmp(tag, raw + payload_len, TAG_LEN) == 0;
}

int el_token_decode(struct el_token_keys *k, const char *text, size_t len, uint64_t now,
                    struct el_token *t)
{
    uint8_t raw[RAW_LEN];
    bool v1 = len == TEXT1_LEN;
    size_t plen = v1 ? PAYLOAD1_LEN : PAYLOAD_LEN;
    if (text == NULL || b64url_decode(text, len, raw, plen + TAG_LEN) != 0) goto fail;
    if (raw[0] != (v1 ? 1 : EL_TOKEN_VERSION)) goto fail;
    if (raw[1] != EL_TOKEN_TICKET && raw[1] != EL_TOKEN_PASS) goto fail;
    /* The key is named by the token: current first, then previous (both are
     * tried only if their ids collide). */
    if (!tag_ok(k, &k->cur, raw, plen) && !tag_ok(k, &k->prev, raw, plen)) goto fail;
    uint32_t expires = (uint32_t)get_be(raw + 17, 4);
    if (now >= expires) goto fail;
    t->kind = raw[1];
    t->key_id = raw[2];
    t->lane = raw[3];
    t->flags = raw[4];
    t->num = get_be(raw + 5, 8);
    t->issued = (uint32_t)get_be(raw + 13, 4);
    t->expires = expires;
    t->epoch = v1 ? 0 : (uint32_t)get_be(raw + 21, 4);
    return 0;
fail:
    return -1;
}
