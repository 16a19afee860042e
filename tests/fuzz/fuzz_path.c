/* fuzz_path.c - libFuzzer target for the path normaliser
 * (el_http_path_normalize). Besides memory errors it checks:
 *   - checking alone (no output), writing elsewhere and writing in place all
 *     give the same answer and the same normal form;
 *   - the normal form is no longer than the input, starts with '/', and is
 *     its own normal form (idempotent: 0, and unchanged);
 *   - it holds no dot segment, no "//", no '\' or '#', no escape of an
 *     unreserved character, of '/', '\' or NUL, and no lower-case hex digit;
 *   - answer 0 means the normal form is the input itself;
 *   - it means to nginx what the input meant: where nginx's resolution of
 *     the input (every %XX decoded once, slashes merged, dot segments
 *     removed) succeeds, its resolution of the normal form is the same.
 *
 * Input: the path's bytes; a '/' is put in front when the first is not one.
 * Run e.g.: build/tests/fuzz/fuzz_path -dict=tests/fuzz/path.dict tests/fuzz/corpus/path */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "einlass/http.h"

#include "../nginx_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

static void check_normal(const char *p, size_t n)
{
    if (n == 0 || p[0] != '/') abort();
    size_t seg = 1; /* start of the current segment */
    for (size_t i = 1; i <= n; i++) {
        if (i == n || p[i] == '/') {
            size_t len = i - seg;
            if (len == 0 && i < n) abort(); /* "//" */
            if ((len == 1 && p[seg] == '.') || (len == 2 && p[seg] == '.' && p[seg + 1] == '.'))
                abort(); /* a dot segment */
            seg = i + 1;
            continue;
        }
        unsigned char c = (unsigned char)p[i];
        if (c == '\\' || c == '#') abort();
        if (c == '%') {
            if (n - i < 3) abort();
            int hi = ref_hexv((unsigned char)p[i + 1]), lo = ref_hexv((unsigned char)p[i + 2]);
            if (hi < 0 || lo < 0) abort();
            if ((p[i + 1] | 0x20) == p[i + 1] && p[i + 1] > '9') abort(); /* lower-case hex */
            if ((p[i + 2] | 0x20) == p[i + 2] && p[i + 2] > '9') abort();
            unsigned v = (unsigned)(hi << 4 | lo);
            if (unreserved((unsigned char)v) || v == '/' || v == '\\' || v == 0) abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096) return 0;
    bool slash = size > 0 && data[0] == '/';
    size_t n = size + (slash ? 0 : 1);
    /* exact-size copies, so ASan sees a read past the path */
    char *in = malloc(n);
    if (!slash) in[0] = '/';
    memcpy(in + (slash ? 0 : 1), data, size);
    char *out = malloc(n), *again = malloc(n), *inplace = malloc(n);
    size_t len = 0, len2 = 0, len3 = 0;

    int check = el_http_path_normalize(in, n, NULL, NULL);
    int rc = el_http_path_normalize(in, n, out, &len);
    if (rc != check) abort();
    memcpy(inplace, in, n);
    int rc3 = el_http_path_normalize(inplace, n, inplace, &len3);
    if (rc3 != rc) abort();
    if (rc != -1) {
        if (len > n || len3 != len || memcmp(inplace, out, len) != 0) abort();
        if (rc == 0 && (len != n || memcmp(out, in, n) != 0)) abort();
        check_normal(out, len);
        if (el_http_path_normalize(out, len, again, &len2) != 0) abort(); /* idempotent */
        if (len2 != len || memcmp(again, out, len) != 0) abort();
        char *dec = malloc(n + 1), *ref_in = malloc(n + 1), *ref_out = malloc(n + 1);
        long a = nginx_resolve(in, n, dec, ref_in);
        if (a >= 0) {
            long b = nginx_resolve(out, len, dec, ref_out);
            if (b != a || memcmp(ref_in, ref_out, (size_t)a) != 0) abort();
        }
        free(dec);
        free(ref_in);
        free(ref_out);
    }
    free(in);
    free(out);
    free(again);
    free(inplace);
    return 0;
}
