/* token.h - signed tickets and passes.
 *
 * Wire form (cookie value, base64url without padding, always 55 characters)
 * of 25 payload bytes plus a 16-byte truncated HMAC-SHA256 tag:
 *   version(1) kind(1) key_id(1) lane(1) flags(1) num(8) issued(4) expires(4)
 *   epoch(4) (integers big-endian) and the tag over those bytes and the
 *   room name. Version 1 (50 characters, no epoch) is still read, with
 *   epoch 0: a cookie issued before an upgrade keeps its place.
 * The room name is MACed, not carried: a token of another room fails.
 * key_id is the first byte of SHA-256(secret), so a token names its key and
 * previous_secret verifies tokens made before a rotation.
 * Verification compares tags in constant time (CRYPTO_memcmp).
 *
 * A struct el_token_keys holds an OpenSSL MAC context and is used by one
 * thread at a time: each worker makes its own. */
#ifndef EL_TOKEN_H
#define EL_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EL_TOKEN_VERSION 2
#define EL_TOKEN_TEXT_MAX 96 /* encoded length is below this, NUL included */

enum el_token_kind { EL_TOKEN_TICKET = 'T', EL_TOKEN_PASS = 'P' };

#define EL_TOKEN_LOCAL 0x01 /* ticket issued by the local fallback queue */
#define EL_TOKEN_PREQUEUE 0x02 /* an event's pre-queue ticket: num is the event's id << 32 | i */

struct el_token {
    uint8_t kind;     /* EL_TOKEN_TICKET or EL_TOKEN_PASS */
    uint8_t key_id;   /* set by encode; read by decode */
    uint8_t lane;     /* ticket: 0 normal, 1 priority */
    uint8_t flags;    /* EL_TOKEN_LOCAL, EL_TOKEN_PREQUEUE */
    uint64_t num;     /* ticket number, or a pass's session id */
    uint32_t issued;  /* unix seconds */
    uint32_t expires; /* unix seconds; the token is invalid from then on */
    uint32_t epoch;   /* ticket: the store's epoch it was issued in (store.h); 0: none */
};

struct el_token_keys;

/* Make keys for room from secret (and previous, or NULL). Never fails. */
struct el_token_keys *el_token_keys_new(const char *room, const uint8_t secret[32],
                                        const uint8_t *previous /* 32 bytes or NULL */);
void el_token_keys_free(struct el_token_keys *k);

/* Encode t, signed with the current secret, into out (EL_TOKEN_TEXT_MAX bytes,
 * NUL-terminated). Returns the text length. */
size_t el_token_encode(struct el_token_keys *k, const struct el_token *t, char *out);

/* Verify and decode text[0..len) at unix time now. Returns 0 and fills t, or
 * -1 if the text is malformed, tampered, of another room or key, of another
 * version, or expired. */
int el_token_decode(struct el_token_keys *k, const char *text, size_t len, uint64_t now,
                    struct el_token *t);

#endif
