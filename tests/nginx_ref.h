/* nginx_ref.h - the tests' reference for how nginx resolves a request
 * path (ngx_http_parse_complex_uri with merge_slashes on): every %XX
 * decoded once, the decoded bytes then taken as the path, so a decoded '/'
 * separates and a decoded '.' forms dot segments; runs of '/' merge; "."
 * and ".." removed, ".." above the root refused (400). Shared by the route
 * property test and the path fuzzer, so both judge einlass against one
 * reference. Test code only: static functions, include it once. */
#ifndef EL_TESTS_NGINX_REF_H
#define EL_TESTS_NGINX_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

static int ref_hexv(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
    return -1;
}

/* nginx's resolution (merge_slashes on); -1 where nginx answers 400. out
 * and the scratch dec hold n + 1 bytes. */
static long nginx_resolve(const char *in, size_t n, char *dec, char *out)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] != '%') {
            dec[d++] = in[i];
            continue;
        }
        if (i + 2 >= n) return -1;
        int hi = ref_hexv((unsigned char)in[i + 1]), lo = ref_hexv((unsigned char)in[i + 2]);
        if (hi < 0 || lo < 0 || (hi | lo) == 0) return -1;
        dec[d++] = (char)(hi << 4 | lo);
        i += 2;
    }
    if (d == 0 || dec[0] != '/') return -1;
    size_t w = 0, i = 1;
    out[w++] = '/';
    for (;;) {
        size_t s0 = i;
        while (i < d && dec[i] != '/') i++;
        size_t len = i - s0;
        bool last = i >= d;
        if (len == 1 && dec[s0] == '.') {
            /* dropped */
        } else if (len == 2 && dec[s0] == '.' && dec[s0 + 1] == '.') {
            if (w == 1) return -1; /* above the root */
            w--;
            while (out[w - 1] != '/') w--;
        } else if (len > 0) {
            memcpy(out + w, dec + s0, len);
            w += len;
            if (!last) out[w++] = '/';
        }
        if (last) break;
        i++;
    }
    return (long)w;
}

#endif
