/* fuzz_proxy.c - libFuzzer target for proxy.c: the PROXY v2 parser, the
 * X-Forwarded-For client selection and the CIDR parser. Besides memory
 * errors it checks:
 *  - PROXY v2: a header that parses (length r) starts with the signature, is
 *    at least 16 bytes, parses to the same from exactly its own r bytes, and
 *    every shorter prefix is INCOMPLETE (a refusal never follows a shorter
 *    "read more" on the same bytes the other way round: INCOMPLETE at len
 *    means INCOMPLETE at len - 1); the source is IPv4 or IPv6 unless local.
 *  - X-Forwarded-For: the answer equals a reference that splits the whole
 *    chain left to right first and then walks it from the right; CLIENT is
 *    never a trusted address, ALL_TRUSTED and MALFORMED always are.
 *  - CIDR: a parsed network has its host bits clear and contains itself.
 *
 * Input: the first byte picks the target (% 3); the rest is its input. For
 * X-Forwarded-For, '\n' separates fields. Trusted: 10.0.0.0/8, 127.0.0.1,
 * 2001:db8::/32. */
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "einlass/http.h"
#include "einlass/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FIELDS 16
#define MAX_ELEMS 4097 /* inputs are at most 4096 bytes: at most 2049 non-empty elements */

static struct el_cidr trusted[3];
static bool ready;

static void setup(void)
{
    static const char *const t[] = {"10.0.0.0/8", "127.0.0.1", "2001:db8::/32"};
    for (int i = 0; i < 3; i++)
        if (el_proxy_cidr_parse(t[i], strlen(t[i]), &trusted[i]) != 0) abort();
    ready = true;
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family) return false;
    if (a->ss_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                      &((const struct sockaddr_in *)b)->sin_addr, 4) == 0;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

static bool is_trusted(const struct sockaddr_storage *ss)
{
    return el_proxy_addr_match(trusted, 3, (const struct sockaddr *)ss);
}

static void fuzz_v2(const uint8_t *p, size_t n)
{
    struct el_proxy_v2 pp;
    int r = el_proxy_v2_parse(p, n, &pp);
    if (r > 0) {
        if ((size_t)r > n || r < 16 || p[0] != 0x0D || p[11] != 0x0A) abort();
        if (!pp.local && pp.src.ss_family != AF_INET && pp.src.ss_family != AF_INET6) abort();
        struct el_proxy_v2 again;
        if (el_proxy_v2_parse(p, (size_t)r, &again) != r || again.local != pp.local) abort();
        if (!pp.local && !same_addr(&pp.src, &again.src)) abort();
        if (el_proxy_v2_parse(p, (size_t)r - 1, &again) != EL_PROXY_V2_INCOMPLETE) abort();
    } else if (r == EL_PROXY_V2_INCOMPLETE) {
        if (n > EL_PROXY_V2_MAX) abort();
        if (n > 0 && el_proxy_v2_parse(p, n - 1, &pp) != EL_PROXY_V2_INCOMPLETE) abort();
    } else if (r != EL_PROXY_V2_BAD) {
        abort();
    }
}

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

/* The reference: every element of every field, left to right, then the walk. */
static enum el_proxy_xff ref_xff(const struct el_http_header *h, size_t nh,
                                 struct sockaddr_storage *client)
{
    static struct {
        const char *p;
        size_t len;
    } el[MAX_ELEMS];
    size_t ne = 0;
    for (size_t i = 0; i < nh; i++) {
        size_t a = 0;
        for (size_t j = 0; j <= h[i].value_len; j++) {
            if (j < h[i].value_len && h[i].value[j] != ',') continue;
            size_t s = a, e = j;
            while (s < e && ows(h[i].value[s]))
                s++;
            while (e > s && ows(h[i].value[e - 1]))
                e--;
            if (e > s) {
                if (ne == MAX_ELEMS) abort();
                el[ne].p = h[i].value + s;
                el[ne].len = e - s;
                ne++;
            }
            a = j + 1;
        }
    }
    bool have = false;
    for (size_t k = ne; k-- > 0;) {
        struct sockaddr_storage ss;
        if (el_proxy_parse_ip(el[k].p, el[k].len, &ss) != 0)
            return have ? EL_PROXY_XFF_MALFORMED : EL_PROXY_XFF_NONE;
        *client = ss;
        have = true;
        if (!is_trusted(&ss)) return EL_PROXY_XFF_CLIENT;
    }
    return have ? EL_PROXY_XFF_ALL_TRUSTED : EL_PROXY_XFF_NONE;
}

static void fuzz_xff(const uint8_t *p, size_t n)
{
    if (n > 4096) return;
    char *copy = malloc(n ? n : 1); /* exact size: ASan sees a read past the end */
    memcpy(copy, p, n);
    struct el_http_header h[MAX_FIELDS + 1];
    size_t nh = 0, start = 0;
    for (size_t i = 0; i <= n && nh < MAX_FIELDS; i++) {
        if (i < n && copy[i] != '\n') continue;
        h[nh].name = nh % 3 == 2 ? "X-Other" : nh % 2 ? "x-forwarded-for" : "X-Forwarded-For";
        h[nh].name_len = (uint16_t)strlen(h[nh].name);
        h[nh].value = copy + start;
        h[nh].value_len = (uint16_t)(i - start);
        h[nh].flags = 0;
        nh++;
        start = i + 1;
    }
    /* the reference sees only the X-Forwarded-For fields */
    struct el_http_header only[MAX_FIELDS];
    size_t no = 0;
    for (size_t i = 0; i < nh; i++)
        if (h[i].name[0] != 'X' || h[i].name[2] != 'O') only[no++] = h[i];
    struct sockaddr_storage got, want;
    memset(&got, 0, sizeof(got));
    memset(&want, 0, sizeof(want));
    enum el_proxy_xff r = el_proxy_xff_client(h, nh, trusted, 3, &got);
    enum el_proxy_xff w = ref_xff(only, no, &want);
    if (r != w) abort();
    if (r != EL_PROXY_XFF_NONE && !same_addr(&got, &want)) abort();
    if (r == EL_PROXY_XFF_CLIENT && is_trusted(&got)) abort();
    if ((r == EL_PROXY_XFF_ALL_TRUSTED || r == EL_PROXY_XFF_MALFORMED) && !is_trusted(&got))
        abort();
    free(copy);
}

static void fuzz_cidr(const uint8_t *p, size_t n)
{
    char *copy = malloc(n ? n : 1);
    memcpy(copy, p, n);
    struct el_cidr c;
    if (el_proxy_cidr_parse(copy, n, &c) == 0) {
        unsigned max = c.family == AF_INET ? 32 : 128;
        if ((c.family != AF_INET && c.family != AF_INET6) || c.prefix > max) abort();
        for (unsigned bit = c.prefix; bit < max; bit++)
            if (c.addr[bit / 8] & (0x80u >> (bit % 8))) abort();
        if (!el_proxy_cidr_match(&c, 1, c.family, c.addr)) abort();
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ready) setup();
    if (size < 1) return 0;
    const uint8_t *rest = data + 1;
    size_t n = size - 1;
    switch (data[0] % 3) {
    case 0: {
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, rest, n);
        fuzz_v2(copy, n);
        free(copy);
        break;
    }
    case 1:
        fuzz_xff(rest, n);
        break;
    default:
        fuzz_cidr(rest, n);
        break;
    }
    return 0;
}
