/* proxy.c - networks, X-Forwarded-For and PROXY protocol v2 (see proxy.h).
 *
 * Invariants: nothing here allocates, reads a clock or does I/O; every input
 * is bounded by its length argument, never by a NUL. Text addresses are
 * copied into a small stack buffer for inet_pton(), so an element longer than
 * any address is refused before it is copied. This code runs per request only
 * when the socket peer is a trusted proxy. */
#include "einlass/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "einlass/common.h"
#include "einlass/http.h"

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Text to bytes: family AF_INET (4 bytes) or AF_INET6 (16), or 0. */
static int text_addr(const char *s, size_t len, uint8_t out[16])
{
    char buf[INET6_ADDRSTRLEN + 1];
    if (len == 0 || len >= sizeof(buf)) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, out) == 1) return AF_INET;
    if (inet_pton(AF_INET6, buf, out) == 1) return AF_INET6;
    return 0;
}

int el_proxy_cidr_parse(const char *s, size_t len, struct el_cidr *c)
{
    const char *slash = memchr(s, '/', len);
    size_t hlen = slash ? (size_t)(slash - s) : len;
    memset(c, 0, sizeof(*c));
    c->family = text_addr(s, hlen, c->addr);
    if (c->family == 0) return -1;
    unsigned maxbits = c->family == AF_INET ? 32 : 128, bits = maxbits;
    if (slash != NULL) {
        const char *p = slash + 1, *end = s + len;
        if (p == end || end - p > 3) return -1;
        bits = 0;
        for (; p < end; p++) {
            if (*p < '0' || *p > '9') return -1;
            bits = bits * 10 + (unsigned)(*p - '0');
        }
        if (bits > maxbits) return -1;
    }
    c->prefix = (uint8_t)bits;
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = bits > i * 8 ? EL_MIN(bits - i * 8, 8u) : 0;
        c->addr[i] &= (uint8_t)(0xff00u >> keep);
    }
    return 0;
}

static bool prefix_match(const uint8_t *addr, const struct el_cidr *c)
{
    unsigned bits = c->prefix, full = bits / 8, rest = bits % 8;
    if (memcmp(addr, c->addr, full) != 0) return false;
    if (rest == 0) return true;
    uint8_t mask = (uint8_t)(0xff00u >> rest);
    return (addr[full] & mask) == c->addr[full];
}

bool el_proxy_cidr_match(const struct el_cidr *list, size_t n, int family, const uint8_t *addr)
{
    const uint8_t *a4 = NULL, *a6 = NULL;
    if (family == AF_INET) {
        a4 = addr;
    } else if (family == AF_INET6) {
        a6 = addr;
        if (memcmp(a6, v4mapped, sizeof(v4mapped)) == 0) a4 = a6 + 12; /* dual-stack socket */
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        const struct el_cidr *c = &list[i];
        if (c->family == AF_INET && a4 != NULL && prefix_match(a4, c)) return true;
        if (c->family == AF_INET6 && a6 != NULL && prefix_match(a6, c)) return true;
    }
    return false;
}

bool el_proxy_addr_match(const struct el_cidr *list, size_t n, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return el_proxy_cidr_match(
            list, n, AF_INET,
            (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr);
    if (sa->sa_family == AF_INET6)
        return el_proxy_cidr_match(
            list, n, AF_INET6, ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr);
    return false;
}

bool el_proxy_is_local(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ((const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr)[0] ==
               127;
    if (sa->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
        if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0) return a[12] == 127;
        return IN6_IS_ADDR_LOOPBACK((const struct in6_addr *)(const void *)a);
    }
    return sa->sa_family == AF_UNIX;
}

static void fill_sockaddr(int family, const uint8_t *addr, uint16_t port_be,
                          struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)out;
        in->sin_family = AF_INET;
        in->sin_port = port_be;
        memcpy(&in->sin_addr, addr, 4);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = port_be;
        memcpy(in6->sin6_addr.s6_addr, addr, 16);
    }
}

static bool all_digits(const char *s, size_t len)
{
    if (len == 0 || len > 5) return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

int el_proxy_parse_ip(const char *s, size_t len, struct sockaddr_storage *out)
{
    uint8_t a[16];
    int fam;
    if (len > 0 && s[0] == '[') { /* [v6] or [v6]:port */
        const char *close = memchr(s, ']', len);
        if (close == NULL) return -1;
        size_t rest = len - (size_t)(close + 1 - s);
        if (rest != 0 && (close[1] != ':' || !all_digits(close + 2, rest - 1))) return -1;
        fam = text_addr(s + 1, (size_t)(close - s - 1), a);
        if (fam != AF_INET6) return -1;
    } else {
        fam = text_addr(s, len, a);
        if (fam == 0) { /* v4:port */
            const char *colon = memchr(s, ':', len);
            if (colon == NULL || memchr(colon + 1, ':', len - (size_t)(colon + 1 - s)) != NULL ||
                !all_digits(colon + 1, len - (size_t)(colon + 1 - s)))
                return -1;
            fam = text_addr(s, (size_t)(colon - s), a);
            if (fam != AF_INET) return -1;
        }
    }
    fill_sockaddr(fam, a, 0, out);
    return 0;
}

enum el_proxy_xff el_proxy_xff_client(const struct el_http_header *headers, size_t n,
                                      const struct el_cidr *trusted, size_t nt,
                                      struct sockaddr_storage *client)
{
    bool have = false; /* *client holds the last good (trusted) element */
    for (size_t i = n; i-- > 0;) {
        const struct el_http_header *h = &headers[i];
        if (!el_strcaseeq(h->name, h->name_len, "x-forwarded-for", 15)) continue;
        const char *p = h->value + h->value_len, *e;
        size_t len;
        while (el_http_prev_elem(&p, h->value, &e, &len)) { /* elements from the right */
            if (len == 0) continue;
            struct sockaddr_storage ss;
            if (el_proxy_parse_ip(e, len, &ss) == -1)
                return have ? EL_PROXY_XFF_MALFORMED : EL_PROXY_XFF_NONE;
            *client = ss;
            have = true;
            if (!el_proxy_addr_match(trusted, nt, (const struct sockaddr *)&ss))
                return EL_PROXY_XFF_CLIENT;
        }
    }
    return have ? EL_PROXY_XFF_ALL_TRUSTED : EL_PROXY_XFF_NONE;
}

static const uint8_t v2sig[EL_PROXY_V2_SIG_LEN] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

int el_proxy_v2_parse(const uint8_t *p, size_t len, struct el_proxy_v2 *out)
{
    size_t sig = EL_MIN(len, (size_t)EL_PROXY_V2_SIG_LEN);
    if (memcmp(p, v2sig, sig) != 0) return EL_PROXY_V2_BAD;
    if (len < 13) return EL_PROXY_V2_INCOMPLETE;
    uint8_t ver = p[12] >> 4, cmd = p[12] & 0x0f;
    if (ver != 2 || cmd > 1) return EL_PROXY_V2_BAD;
    if (len < 14) return EL_PROXY_V2_INCOMPLETE;
    uint8_t fam = p[13];
    /* UNSPEC, TCP over IPv4, TCP over IPv6; with LOCAL any family is ignored */
    if (cmd == 1 && fam != 0x00 && fam != 0x11 && fam != 0x21) return EL_PROXY_V2_BAD;
    if (len < 16) return EL_PROXY_V2_INCOMPLETE;
    size_t body = (size_t)p[14] << 8 | p[15];
    size_t need = cmd == 0 || fam == 0x00 ? 0 : fam == 0x11 ? 12 : 36;
    if (body < need) return EL_PROXY_V2_BAD;
    if (len < 16 + body) return EL_PROXY_V2_INCOMPLETE;
    memset(out, 0, sizeof(*out));
    out->local = need == 0;
    uint16_t port_be; /* the block: src addr, dst addr, src port, dst port */
    if (fam == 0x11 && !out->local) {
        memcpy(&port_be, p + 24, 2);
        fill_sockaddr(AF_INET, p + 16, port_be, &out->src);
    } else if (!out->local) {
        memcpy(&port_be, p + 48, 2);
        fill_sockaddr(AF_INET6, p + 16, port_be, &out->src);
    }
    return (int)(16 + body);
}
