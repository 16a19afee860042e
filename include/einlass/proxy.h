/* proxy.h - who the client is: networks (CIDR lists), the client address a
 * trusted proxy names in X-Forwarded-For, and the PROXY protocol v2 header.
 * Pure: no I/O, no allocation, any thread.
 *
 * Addresses are compared as bytes in network order: 4 for IPv4, 16 for IPv6.
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d, a dual-stack socket's view of
 * an IPv4 peer) matches IPv4 networks as the IPv4 address it is. */
#ifndef EL_PROXY_H
#define EL_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct el_http_header;

struct el_cidr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network address, bytes in network order, host bits zero */
    uint8_t prefix;   /* prefix length in bits */
};

/* Parse s[0..len): "ADDR" (a host: /32 or /128) or "ADDR/BITS". Host bits are
 * cleared, so "10.1.2.3/8" means 10.0.0.0/8. Returns 0, or -1 if s is not an
 * IPv4 or IPv6 network. */
int el_proxy_cidr_parse(const char *s, size_t len, struct el_cidr *c);

/* True if the address (family AF_INET with 4 bytes, AF_INET6 with 16) lies in
 * one of list[0..n). */
bool el_proxy_cidr_match(const struct el_cidr *list, size_t n, int family, const uint8_t *addr);

/* The same for a sockaddr (AF_INET, AF_INET6; anything else matches nothing). */
bool el_proxy_addr_match(const struct el_cidr *list, size_t n, const struct sockaddr *sa);

/* True for 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104 and AF_UNIX: a peer on this host. */
bool el_proxy_is_local(const struct sockaddr *sa);

/* Parse one X-Forwarded-For element s[0..len) (no surrounding whitespace):
 * an IPv4 or IPv6 address, "[IPv6]", or either with ":PORT" ("1.2.3.4:80",
 * "[::1]:80"). Fills *out (port 0). Returns 0, or -1 (e.g. "unknown", a
 * hostname, an obfuscated RFC 7239 identifier). */
int el_proxy_parse_ip(const char *s, size_t len, struct sockaddr_storage *out);

enum el_proxy_xff {
    EL_PROXY_XFF_NONE = 0,   /* no usable element: the client is the peer */
    EL_PROXY_XFF_CLIENT = 1, /* *client is the rightmost element not in trusted */
    EL_PROXY_XFF_ALL_TRUSTED = 2, /* every element is trusted: *client is the leftmost */
    EL_PROXY_XFF_MALFORMED = 3, /* walking left, a malformed element stopped the
                                   walk: *client is the good (trusted) element
                                   right of it; NONE instead when the rightmost
                                   element itself is malformed */
};

/* The client a trusted peer names: the X-Forwarded-For fields among
 * headers[0..n) (case-insensitive name; several fields are one list, in
 * order) are walked from the right, skipping elements inside trusted[0..nt);
 * the first one outside is the client. Empty list elements are skipped.
 * Only call this for a peer inside trusted: from anyone else the field is
 * the client's own claim. Fills *client unless NONE is returned. */
enum el_proxy_xff el_proxy_xff_client(const struct el_http_header *headers, size_t n,
                                      const struct el_cidr *trusted, size_t nt,
                                      struct sockaddr_storage *client);

/* PROXY protocol v2 (haproxy's proxy-protocol.txt, section 2.2). */
#define EL_PROXY_V2_SIG_LEN 12
#define EL_PROXY_V2_MAX (16 + 65535) /* the largest header the format allows */

struct el_proxy_v2 {
    bool local;                  /* LOCAL, or PROXY with an unspecified family:
                                    the connection's own endpoints stand */
    struct sockaddr_storage src; /* PROXY over TCP: the client's address and port */
};

enum {
    EL_PROXY_V2_INCOMPLETE = 0, /* a valid beginning: read more */
    EL_PROXY_V2_BAD = -1,       /* not a PROXY v2 header (v1 text, garbage, bad version,
                                   command or family, an address block too short) */
};

/* Parse a PROXY v2 header at the start of p[0..len). Returns the header's
 * length (> 0; the HTTP bytes follow it) and fills *out, or one of the values
 * above. Accepts LOCAL and PROXY; families TCP over IPv4 and IPv6, and
 * UNSPEC (read as local); refuses UDP and UNIX sockets. TLVs are skipped. A
 * wrong byte is refused as soon as it is seen, so a client that sends
 * "GET / HTTP/1.1" is told at its first byte. */
int el_proxy_v2_parse(const uint8_t *p, size_t len, struct el_proxy_v2 *out);

#endif
