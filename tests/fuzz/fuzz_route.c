/* fuzz_route.c - libFuzzer target for the [route] path glob. Besides memory
 * errors it checks el_route_glob against a plain recursive matcher written
 * from the header's words ('*' matches any run of bytes without '/', a run of
 * two or more stars matches any run of bytes; everything else matches
 * itself), memoised so a glob full of stars stays cheap. Longer inputs are
 * only run (the iterative matcher must still end in O(glob * path)).
 *
 * Input: the first byte is the split point (byte % size): the glob is the
 * bytes before it (cut at a NUL, as the glob is a C string), the path the
 * bytes from it on (NULs included). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "einlass/route.h"

#define REF_MAX 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct ref {
    const char *g;                              /* glob */
    size_t glen;                                /* its length */
    const char *p;                              /* path */
    size_t plen;                                /* its length */
    signed char memo[REF_MAX + 1][REF_MAX + 1]; /* 0 unknown, 1 match, -1 not */
};

static bool ref_match(struct ref *r, size_t g, size_t p)
{
    if (r->memo[g][p]) return r->memo[g][p] > 0;
    bool m = false;
    if (g == r->glen) {
        m = p == r->plen;
    } else if (r->g[g] == '*') {
        size_t run = g;
        while (run < r->glen && r->g[run] == '*')
            run++;
        for (size_t k = p; k <= r->plen && !m; k++) {
            m = ref_match(r, run, k);
            if (run - g == 1 && k < r->plen && r->p[k] == '/') break; /* '*' stops at '/' */
        }
    } else {
        m = p < r->plen && r->g[g] == r->p[p] && ref_match(r, g + 1, p + 1);
    }
    r->memo[g][p] = m ? 1 : -1;
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t split = data[0] % size;
    const uint8_t *rest = data + 1;
    size_t n = size - 1;
    if (split > n) split = n;
    char *glob = malloc(split + 1);
    memcpy(glob, rest, split);
    glob[split] = '\0';
    size_t plen = n - split;
    /* an exact-size copy, so ASan sees a read past the path */
    char *path = malloc(plen ? plen : 1);
    memcpy(path, rest + split, plen);

    bool got = el_route_glob(glob, path, plen);
    if (n <= REF_MAX) {
        static struct ref r;
        memset(r.memo, 0, sizeof(r.memo));
        r.g = glob;
        r.glen = strlen(glob);
        r.p = path;
        r.plen = plen;
        if (got != ref_match(&r, 0, 0)) abort();
    }
    /* a glob matches itself when it has no star; "**" matches anything */
    if (strchr(glob, '*') == NULL && !el_route_glob(glob, glob, strlen(glob))) abort();
    if (!el_route_glob("**", path, plen)) abort();
    free(glob);
    free(path);
    return 0;
}
