/* shuffle.c - a keyed permutation of [0, n) (shuffle.h).
 *
 * Invariants: the Feistel network is a bijection of [0, 2^(2h)) whatever
 * the round function (each round maps (L, R) to (R, L ^ F(R)), which (R, L')
 * inverts), and cycle-walking restricts a bijection of a superset to a
 * bijection of [0, n): from i < n, applying it until the value is below n
 * ends (the cycle through i returns to i) and no two inputs meet (the walk
 * from each is the part of one cycle up to the next value below n). */
#include "einlass/shuffle.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "einlass/common.h"

static const char LABEL[] = "einlass shuffle v1";

static void fail(const char *what)
{
    el_err("shuffle: %s failed", what);
    abort();
}

void el_shuffle_init(struct el_shuffle *s, const uint8_t *seed, uint64_t n)
{
    memset(s, 0, sizeof(*s));
    s->n = n;
    if (seed == NULL || n < 2) return;                  /* the identity */
    unsigned b = 64 - (unsigned)__builtin_clzll(n - 1); /* bits of n - 1 */
    s->h = (b + 1) / 2;
    s->mask = ((uint64_t)1 << s->h) - 1;
    uint8_t msg[sizeof(LABEL) - 1 + 8];
    memcpy(msg, LABEL, sizeof(LABEL) - 1);
    for (int i = 0; i < 8; i++)
        msg[sizeof(LABEL) - 1 + i] = (uint8_t)(n >> (56 - 8 * i));
    unsigned char key[EVP_MAX_MD_SIZE];
    unsigned int klen = 0;
    if (HMAC(EVP_sha256(), seed, EL_SHUFFLE_SEED_LEN, msg, sizeof(msg), key, &klen) == NULL)
        fail("HMAC-SHA256");
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (c == NULL || EVP_EncryptInit_ex(c, EVP_aes_128_ecb(), NULL, key, NULL) != 1 ||
        EVP_CIPHER_CTX_set_padding(c, 0) != 1)
        fail("AES-128 setup");
    OPENSSL_cleanse(key, sizeof(key));
    s->ctx = c;
}

/* The round function: AES of (round, x), h bits of it. */
static uint64_t round_f(const struct el_shuffle *s, unsigned r, uint64_t x)
{
    uint8_t in[16] = {0}, out[32];
    int len = 0;
    in[0] = (uint8_t)r;
    for (int i = 0; i < 8; i++)
        in[1 + i] = (uint8_t)(x >> (56 - 8 * i));
    if (EVP_EncryptUpdate(s->ctx, out, &len, in, sizeof(in)) != 1 || len != 16) fail("AES");
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | out[i];
    return v & s->mask;
}

static uint64_t feistel(const struct el_shuffle *s, uint64_t x)
{
    uint64_t l = x >> s->h, r = x & s->mask;
    for (unsigned k = 0; k < EL_SHUFFLE_ROUNDS; k++) {
        uint64_t t = l ^ round_f(s, k, r);
        l = r;
        r = t;
    }
    return l << s->h | r;
}

uint64_t el_shuffle_at(const struct el_shuffle *s, uint64_t i)
{
    if (s->ctx == NULL || i >= s->n) return i;
    uint64_t y = i;
    do
        y = feistel(s, y);
    while (y >= s->n);
    return y;
}

void el_shuffle_done(struct el_shuffle *s)
{
    if (s->ctx) EVP_CIPHER_CTX_free(s->ctx);
    s->ctx = NULL;
}
