/* fuzz_event.c - libFuzzer target for what scheduled openings read and
 * compute: the RFC 3339 parser of opens_at / ends_at (and POST /events) and
 * the keyed permutation the pre-queue is drawn in. Besides memory errors it
 * checks their promises:
 *  - an accepted time re-formats (el_time_rfc3339, in its own offset) to a
 *    text the parser reads back as the same instant and offset;
 *  - the permutation for a seed from the input and n = 1..512 (from the
 *    input) is a bijection of [0, n).
 *
 * Input: the whole input is parsed as a time. When it holds at least 34
 * bytes, the first 32 are a seed and the next 2 give n. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "einlass/common.h"
#include "einlass/config.h"
#include "einlass/shuffle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t ms;
    int off;
    char why[128];
    if (el_config_parse_time((const char *)data, size, &ms, &off, why, sizeof(why)) == 0) {
        char text[64];
        size_t n = el_time_rfc3339(ms, off, text, sizeof(text));
        int64_t ms2;
        int off2;
        if (el_config_parse_time(text, n, &ms2, &off2, why, sizeof(why)) != 0) abort();
        if (ms2 != ms - ms % 1000 || off2 != off) abort(); /* the text drops the fraction */
    }
    if (size >= EL_SHUFFLE_SEED_LEN + 2) {
        uint64_t n =
            1 + ((uint64_t)data[EL_SHUFFLE_SEED_LEN] << 8 | data[EL_SHUFFLE_SEED_LEN + 1]) % 512;
        struct el_shuffle s;
        el_shuffle_init(&s, data, n);
        uint8_t seen[512] = {0};
        for (uint64_t i = 0; i < n; i++) {
            uint64_t p = el_shuffle_at(&s, i);
            if (p >= n || seen[p]) abort();
            seen[p] = 1;
        }
        el_shuffle_done(&s);
    }
    return 0;
}
