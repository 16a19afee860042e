/* shuffle.h - a keyed permutation of [0, n): the order a pre-queue is drawn
 * in at an event's opening (event.h).
 *
 * perm(i) is a Feistel network of EL_SHUFFLE_ROUNDS rounds over the smallest
 * domain of 2^(2h) >= n numbers (two halves of h bits), whose round function
 * is AES-128 under a key derived from the seed and n (HMAC-SHA256), so the
 * permutation for one seed and another n is unrelated; values at or above n
 * are walked again through the network (cycle-walking), which keeps it a
 * bijection of [0, n) for every n (the domain is below 4n, so a walk takes
 * under four steps on average). Without the seed, nobody can tell any
 * ticket's place: a 256-bit seed drawn by RAND_bytes at the opening.
 *
 * A struct el_shuffle holds an OpenSSL cipher context: one thread at a time;
 * el_shuffle_done() frees it. Pure: no I/O, no clock. */
#ifndef EL_SHUFFLE_H
#define EL_SHUFFLE_H

#include <stdbool.h>
#include <stdint.h>

#define EL_SHUFFLE_SEED_LEN 32
#define EL_SHUFFLE_ROUNDS 8

struct el_shuffle {
    void *ctx;     /* EVP_CIPHER_CTX (AES-128-ECB), NULL for the identity */
    uint64_t n;    /* size of the permuted range */
    unsigned h;    /* bits in each Feistel half */
    uint64_t mask; /* (1 << h) - 1 */
};

/* The permutation of [0, n) keyed by seed (EL_SHUFFLE_SEED_LEN bytes), or
 * the identity when seed is NULL (a cancelled event keeps arrival order).
 * Never fails (an OpenSSL failure aborts, as allocation does). */
void el_shuffle_init(struct el_shuffle *s, const uint8_t *seed, uint64_t n);
/* perm(i) for i < n (i >= n: returned unchanged). */
uint64_t el_shuffle_at(const struct el_shuffle *s, uint64_t i);
void el_shuffle_done(struct el_shuffle *s);

#endif
