/* fuzz_room.c - libFuzzer target for el_route_room ([room NAME] selection).
 * Besides memory errors (host and path are exact-size copies, so ASan sees
 * a read past either) it checks the answer against a plain reading of the
 * header's words: a host starting with '[' is no host; else the host is cut
 * at its first ':' and loses one trailing dot; names compare without case;
 * "*.suffix" wants at least one byte before ".suffix"; the first room whose
 * hosts (none: any) and path glob (none: any) both match, else 0.
 *
 * Input: the first byte is the split point (byte % size): the host is the
 * bytes before it, the path the bytes from it on. */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "einlass/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char h_book[] = "book.example.org", h_wild[] = "*.example.org", h_ip[] = "10.0.0.1";
static char p_c[] = "/c/**", p_api[] = "/api/*";

/* h[0..n) equals pattern[0..n) without case (bytes, NULs included). */
static bool ref_eq(const char *h, const char *pattern, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (tolower((unsigned char)h[i]) != (unsigned char)pattern[i]) return false;
    return true;
}

static bool ref_host(const char *pattern, const char *h, size_t n)
{
    if (strncmp(pattern, "*.", 2) == 0) {
        size_t s = strlen(pattern) - 1; /* ".suffix" */
        return n > s && ref_eq(h + n - s, pattern + 1, s);
    }
    return n == strlen(pattern) && ref_eq(h, pattern, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t split = data[0] % size;
    const uint8_t *rest = data + 1;
    size_t n = size - 1;
    if (split > n) split = n;
    size_t plen = n - split;
    char *host = malloc(split ? split : 1), *path = malloc(plen ? plen : 1);
    memcpy(host, rest, split);
    memcpy(path, rest + split, plen);

    static struct el_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.nrooms = 5;
    cfg.rooms[1].hosts[0] = h_book;
    cfg.rooms[1].nhosts = 1;
    cfg.rooms[2].hosts[0] = h_wild;
    cfg.rooms[2].nhosts = 1;
    cfg.rooms[2].path = p_c;
    cfg.rooms[3].path = p_api;
    cfg.rooms[4].hosts[0] = h_ip;
    cfg.rooms[4].hosts[1] = h_wild;
    cfg.rooms[4].nhosts = 2;
    size_t got = el_route_room(&cfg, host, split, path, plen);

    size_t hn = 0;
    if (split > 0 && host[0] != '[') {
        const char *colon = memchr(host, ':', split);
        hn = colon ? (size_t)(colon - host) : split;
        if (hn > 0 && host[hn - 1] == '.') hn--;
    }
    size_t want = 0;
    for (size_t i = 1; i < cfg.nrooms && want == 0; i++) {
        const struct el_room_def *r = &cfg.rooms[i];
        bool h = r->nhosts == 0;
        for (size_t k = 0; k < r->nhosts && hn > 0; k++)
            h = h || ref_host(r->hosts[k], host, hn);
        if (h && (r->path == NULL || el_route_glob(r->path, path, plen))) want = i;
    }
    if (got != want) abort();
    cfg.nrooms = 1; /* [room] alone takes everything */
    if (el_route_room(&cfg, host, split, path, plen) != 0) abort();
    free(host);
    free(path);
    return 0;
}
