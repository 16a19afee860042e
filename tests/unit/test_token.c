/* test_token.c - the token codec: round trips, tampering, rotation, strict
 * base64url, and Cookie header lookup. Tags are cross-checked against
 * OpenSSL's one-shot HMAC and base64 encoder, not against token.c itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "einlass/token.h"

static const uint8_t secret_a[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                     12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                     23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t secret_b[32] = {
    0xb0, 0xb1, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf,
    0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf};

#define NOW 1700000000u

static struct el_token sample(uint8_t kind)
{
    struct el_token t = {
        .kind = kind,
        .lane = 1,
        .flags = EL_TOKEN_LOCAL,
        .num = 0x0102030405060708ull,
        .issued = NOW - 10,
        .expires = NOW + 600,
        .epoch = 0xa1b2c3d4u,
    };
    return t;
}

static uint8_t key_id_of(const uint8_t secret[32])
{
    uint8_t d[32];
    unsigned n = 0;
    assert_int_equal(EVP_Digest(secret, 32, d, &n, EVP_sha256(), NULL), 1);
    return d[0];
}

/* An independent encoder: raw payload, OpenSSL HMAC, OpenSSL base64 made url-safe. */
#define PLEN 25 /* payload bytes; 21 in version 1 (no epoch) */

/* payload[0] is the version: version 1 has 21 payload bytes, later ones 25. */
static size_t ref_encode(const uint8_t secret[32], const char *room, const uint8_t payload[PLEN],
                         char *out)
{
    size_t plen = payload[0] == 1 ? 21 : PLEN;
    uint8_t buf[PLEN + 64];
    size_t room_len = strlen(room);
    memcpy(buf, payload, plen);
    memcpy(buf + plen, room, room_len);
    uint8_t mac[32];
    size_t maclen = 0;
    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, 32, buf, plen + room_len,
                              mac, sizeof(mac), &maclen));
    uint8_t raw[PLEN + 16];
    memcpy(raw, payload, plen);
    memcpy(raw + plen, mac, 16);
    char b64[80];
    int n = EVP_EncodeBlock((unsigned char *)b64, raw, (int)plen + 16);
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        char c = b64[i];
        if (c == '=') break;
        out[o++] = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    out[o] = '\0';
    return o;
}

static void payload_of(const struct el_token *t, uint8_t version, uint8_t key_id, uint8_t p[PLEN])
{
    p[0] = version;
    p[1] = t->kind;
    p[2] = key_id;
    p[3] = t->lane;
    p[4] = t->flags;
    for (int i = 0; i < 8; i++)
        p[5 + i] = (uint8_t)(t->num >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        p[13 + i] = (uint8_t)(t->issued >> (24 - 8 * i));
    for (int i = 0; i < 4; i++)
        p[17 + i] = (uint8_t)(t->expires >> (24 - 8 * i));
    for (int i = 0; i < 4; i++)
        p[21 + i] = (uint8_t)(t->epoch >> (24 - 8 * i));
}

static void round_trip(uint8_t kind)
{
    struct el_token_keys *k = el_token_keys_new("portal", secret_a, NULL);
    struct el_token t = sample(kind), d;
    char text[EL_TOKEN_TEXT_MAX];
    size_t n = el_token_encode(k, &t, text);
    assert_int_equal(n, 55);
    assert_int_equal(strlen(text), n);
    memset(&d, 0, sizeof(d));
    assert_int_equal(el_token_decode(k, text, n, NOW, &d), 0);
    assert_int_equal(d.kind, kind);
    assert_int_equal(d.key_id, key_id_of(secret_a));
    assert_int_equal(d.lane, 1);
    assert_int_equal(d.flags, EL_TOKEN_LOCAL);
    assert_true(d.num == t.num);
    assert_int_equal(d.issued, t.issued);
    assert_int_equal(d.expires, t.expires);
    assert_int_equal(d.epoch, t.epoch);
    el_token_keys_free(k);
}

static void test_round_trip_ticket(void **state)
{
    round_trip(EL_TOKEN_TICKET);
}

static void test_round_trip_pass(void **state)
{
    round_trip(EL_TOKEN_PASS);
}

/* Several encodes in a row with one context: each must equal an independent HMAC,
 * which shows the keyed context re-initialises correctly. */
static void test_matches_reference_hmac(void **state)
{
    struct el_token_keys *k = el_token_keys_new("portal", secret_a, NULL);
    for (uint64_t i = 0; i < 5; i++) {
        struct el_token t = sample(i % 2 ? EL_TOKEN_PASS : EL_TOKEN_TICKET);
        t.num = i * 7919;
        char text[EL_TOKEN_TEXT_MAX], ref[EL_TOKEN_TEXT_MAX];
        el_token_encode(k, &t, text);
        uint8_t p[PLEN];
        payload_of(&t, EL_TOKEN_VERSION, key_id_of(secret_a), p);
        ref_encode(secret_a, "portal", p, ref);
        assert_string_equal(text, ref);
    }
    el_token_keys_free(k);
}

static void test_every_bit_flip_rejected(void **state)
{
    struct el_token_keys *k = el_token_keys_new("portal", secret_a, NULL);
    struct el_token t = sample(EL_TOKEN_TICKET), d;
    char text[EL_TOKEN_TEXT_MAX];
    size_t n = el_token_encode(k, &t, text);
    int flips = 0;
    for (size_t i = 0; i < n; i++) {
        for (int b = 0; b < 8; b++) {
            char copy[EL_TOKEN_TEXT_MAX];
            memcpy(copy, text, n + 1);
            copy[i] = (char)(copy[i] ^ (1 << b));
            assert_int_equal(el_token_decode(k, copy, n, NOW, &d), -1);
            flips++;
        }
    }
    assert_int_equal(flips, 55 * 8);
    assert_int_equal(el_token_decode(k, text, n, NOW, &d), 0);
    el_token_keys_free(k);
}

static void test_truncated_and_extended_rejected(void **state)
{
    struct el_token_keys *k = el_token_keys_new("portal", secret_a, NULL);
    struct el_token t = sample(EL_TOKEN_PASS), d;
    char text[EL_TOKEN_TEXT_MAX + 8];
    size_t n = el_token_encode(k, &t, text);
    for (size_t len = 0; len < n; len++)
        assert_int_equal(el_token_decode(k, text, len, NOW, &d), -1);
    const char *tails[] = {"A", "AA", "AAAA", "=", "==", " "};
    for (size_t i = 0; i < sizeof(tails) / sizeof(tails[0]); i++) {
        char ext[EL_TOKEN_TEXT_MAX + 8];
        memcpy(ext, text, n);
        size_t tl = strlen(tails[i]);
        memcpy(ext + n, tails[i], tl);
        assert_int_equal(el_token_decode(k, ext, n + tl, NOW, &d), -1);
    }
    /* Only the first two characters: the rest of a longer string is ignored by len. */
    assert_int_equal(el_token_decode(k, text, 2, NOW, &d), -1);
    assert_int_equal(el_token_decode(k, NULL, 0, NOW, &d), -1);
    el_token_keys_free(k);
}

static void test_wrong_room_rejected(void **state)
{
    struct el_token_keys *a = el_token_keys_new("portal", secret_a, NULL);
    struct el_token_keys *b = el_token_keys_new("portal2", secret_a, NULL);
    struct el_token t = sample(EL_TOKEN_TICKET), d;
    char text[EL_TOKEN_TEXT_MAX];
    size_t n = el_token_encode(a, &t, text);
    assert_int_equal(el_token_decode(b, text, n, NOW, &d), -1);
    assert_int_equal(el_token_decode(a, text, n, NOW, &d), 0);
    el_token_keys_free(a);
    el_token_keys_free(b);
}

static void test_expired_rejected(void **state)
{
    struct el_token_keys *k = el_token_keys_new("portal", secret_a, NULL);
    struct el_token t = sample(EL_TOKEN_PASS), d;
    char text[EL_TOKEN_TEXT_MAX];
    size_t n = el_token_encode(k, &t, text);
    assert_int_equal(el_token_decode(k, text, n, t.expires - 1, &d), 0);
    assert_int_equal(el_token_decode(k, text, n, t.expires, &d), -1);
    assert_int_equal(el_token_decode(k, text, n, t.expires + 1, &d), -1);
    assert_int_equal(el_token_decode(k, text, n, (uint64_t)t.expires + (1ull << 32), &d), -1);
    el_token_keys_free(k);
}

static void test_rotation(void **state)
{
    struct el_token_keys *old = el_token_keys_new("portal", secret_a, NULL);
    struct el_token_keys *rotated = el_token_keys_new("portal", secret_b, secret_a);
    struct el_token_keys *fresh = el_token_keys_new("portal", secret_b, NULL);
    struct el_token t = sample(EL_TOKEN_TICKET), d;
    char text[EL_TOKEN_TEXT_MAX];
    size_t n = el_token_encode(old, &t, text);
    assert_int_equal(el_token_decode(rotated, text, n, NOW, &d), 0);
    assert_int_equal(d.key_id, key_id_of(secret_a));
    assert_int_equal(el_token_decode(fresh, text, n, NOW, &d), -1);
    /* New tokens are signed with the new secret and name it. */
    n = el_token_encode(rotated, &t, text);
    assert_int_equal(el_token_decode(rotated, text, n, NOW, &d), 0);
    assert_int_equal(d.key_id, key_id_of(secret_b));
    assert_int_equal(el_token_decode(fresh, text, n, NOW, &d), 0);
    assert_int_equal(el_token_decode(old, text, n, NOW, &d), -1);
    el_token_keys_free(old);
    el_token_keys_free(rotated);
    el_token_keys_free(fresh);
}

/* Correctly MACed payloads that are still invalid: other version, other kind,
 * a key id that does not match the key. */
static void test_bad_fields_rejected(void **state)
{
    struct el_token_keys *k = el_token_keys_new("portal", secret_a, NULL);
    struct el_token t = sample(EL_TOKEN_TICKET), d;
    uint8_t p[PLEN];
    char text[EL_TOKEN_TEXT_MAX];
    uint8_t id = key_id_of(secret_a);

    payload_of(&t, EL_TOKEN_VERSION, id, p);
    size_t n = ref_encode(secret_a, "portal", p, text);
    assert_int_equal(el_token_decode(k, text, n, NOW, &d), 0); /* the control case */

    payload_of(&t, EL_TOKEN_VERSION + 1, id, p);
    n = ref_encode(secret_a, "portal", p, text);
    assert_int_equal(el_token_decode(k, text, n, NOW, &d), -1);

    t.kind = 'X';
    payload_of(&t, EL_TOKEN_VERSION, id, p);
    n = ref_encode(secret_a, "portal", p, text);
    assert_int_equal(el_token_decode(k, text, n, NOW, &d), -1);

    t.kind = EL_TOKEN_PASS;
    payload_of(&t, EL_TOKEN_VERSION, (uint8_t)(id + 1), p);
    n = ref_encode(secret_a, "portal", p, text);
    assert_int_equal(el_token_decode(k, text, n, NOW, &d), -1);
    el_token_keys_free(k);
}

/* A cookie made before epochs (version 1: 21 payload bytes, 50 characters)
 * is still read, with epoch 0, so an upgrade keeps every place; cut short it
 * is refused. */
static void test_version_1_token_read_with_epoch_0(void **state)
{
    struct el_token_keys *k = el_token_keys_new("portal", secret_a, NULL);
    struct el_token t = sample(EL_TOKEN_TICKET), d;
    uint8_t p[PLEN];
    char text[EL_TOKEN_TEXT_MAX];
    uint8_t id = key_id_of(secret_a);
    payload_of(&t, 1, id, p);
    size_t n = ref_encode(secret_a, "portal", p, text);
    assert_int_equal(n, 50);
    memset(&d, 0xa5, sizeof(d));
    assert_int_equal(el_token_decode(k, text, n, NOW, &d), 0);
    assert_true(d.num == t.num);
    assert_int_equal(d.lane, 1);
    assert_int_equal(d.flags, EL_TOKEN_LOCAL);
    assert_int_equal(d.expires, t.expires);
    assert_int_equal(d.epoch, 0);
    p[0] = 2; /* a 21-byte payload claiming version 2 */
    n = ref_encode(secret_a, "portal", p, text);
    assert_int_equal(n, 55); /* ref_encode signs 25 bytes for version 2: a valid control */
    assert_int_equal(el_token_decode(k, text, n, NOW, &d), 0);
    p[0] = 1;
    n = ref_encode(secret_a, "portal", p, text);
    assert_int_equal(el_token_decode(k, text, n - 1, NOW, &d), -1);
    el_token_keys_free(k);
}

static void test_non_canonical_base64_rejected(void **state)
{
    struct el_token_keys *k = el_token_keys_new("portal", secret_a, NULL);
    struct el_token t = sample(EL_TOKEN_TICKET), d;
    char text[EL_TOKEN_TEXT_MAX];
    size_t n = el_token_encode(k, &t, text);
    /* The last character carries 4 data bits and 2 zero bits (41 bytes):
     * every other character with the same 4 data bits decodes to the same
     * bytes. */
    const char *alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int last = (int)(strchr(alpha, text[n - 1]) - alpha);
    assert_int_equal(last & 3, 0);
    for (int low = 1; low < 4; low++) {
        char copy[EL_TOKEN_TEXT_MAX];
        memcpy(copy, text, n + 1);
        copy[n - 1] = alpha[last | low];
        assert_int_equal(el_token_decode(k, copy, n, NOW, &d), -1);
    }
    /* Standard-alphabet characters and padding are not base64url. */
    char copy[EL_TOKEN_TEXT_MAX];
    memcpy(copy, text, n + 1);
    copy[5] = '+';
    assert_int_equal(el_token_decode(k, copy, n, NOW, &d), -1);
    copy[5] = '/';
    assert_int_equal(el_token_decode(k, copy, n, NOW, &d), -1);
    memcpy(copy, text, n + 1);
    copy[n - 1] = '=';
    assert_int_equal(el_token_decode(k, copy, n, NOW, &d), -1);
    el_token_keys_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_ticket),
        cmocka_unit_test(test_round_trip_pass),
        cmocka_unit_test(test_matches_reference_hmac),
        cmocka_unit_test(test_every_bit_flip_rejected),
        cmocka_unit_test(test_truncated_and_extended_rejected),
        cmocka_unit_test(test_wrong_room_rejected),
        cmocka_unit_test(test_expired_rejected),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_bad_fields_rejected),
        cmocka_unit_test(test_version_1_token_read_with_epoch_0),
        cmocka_unit_test(test_non_canonical_base64_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
