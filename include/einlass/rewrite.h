/* rewrite.h - the heads einlass sends on: a request toward the backend and a
 * response toward the client. Pure: writes into a buffer, no I/O.
 *
 * Request: the target in origin-form with the path in its normal form
 * (el_http_path_normalize(): what the routes matched is what the backend
 * gets; the query as received); Host from an absolute-form target's
 * authority in place of any received (RFC 9112 3.2.2), or, for an HTTP/1.0
 * request without one, default_host; method and fields unchanged but for
 * hop-by-hop fields (Connection and what it names, Keep-Alive, TE, Trailer,
 * Upgrade, Proxy-Connection) and Expect (einlass answers 100-continue itself),
 * except that a WebSocket handshake (el_rewrite_upgrade) goes on with
 * "Upgrade: websocket" and "Connection: upgrade";
 * X-Forwarded-For is what a trusted proxy sent with the peer appended, or
 * from any other peer the peer alone (a client cannot put addresses into the
 * chain the backend reads as einlass's word);
 * X-Forwarded-Proto is set; Via is added; the framing is einlass's own
 * (Content-Length, or chunked), so the backend sees the message boundaries
 * einlass parsed and no others.
 * Response: status and fields unchanged but for hop-by-hop fields and
 * framing; Via is added, a Set-Cookie from the gate appended; the body is
 * re-framed for the client (see enum el_rewrite_framing). A 101 that
 * switches to a WebSocket has its own head (el_rewrite_switch). */
#ifndef EL_REWRITE_H
#define EL_REWRITE_H

#include <stdbool.h>
#include <stddef.h>

#include "einlass/buf.h"
#include "einlass/http.h"

/* Append the request head for the backend to o. peer_ip: the peer's address
 * as text. keep_xff: the peer is a trusted proxy, so the X-Forwarded-For
 * fields it sent are kept (joined into one) before peer_ip; otherwise they
 * are dropped. https: X-Forwarded-Proto's value. default_host: the Host for
 * a request that has none (HTTP/1.0): the [backend] address. */
void el_rewrite_request(const struct el_http_msg *req, const char *peer_ip, size_t peer_ip_len,
                        bool keep_xff, bool https, const char *default_host, struct el_buf *o);

/* The request asks for a WebSocket (RFC 6455 4.1) that einlass forwards and
 * tunnels: an upgrade request (req->upgrade: Upgrade, and Connection naming
 * it) with GET, HTTP/1.1, no body (none, or Content-Length: 0) and an
 * Upgrade field that names "websocket". Any other upgrade request (another
 * protocol such as h2c, another method, HTTP/1.0, a body) is forwarded as a
 * plain request, without the upgrade fields: a backend can then only answer
 * it in HTTP/1.1. */
bool el_rewrite_upgrade(const struct el_http_msg *req);
/* A backend's 101 that einlass accepts for such a request: its Upgrade
 * field names "websocket" and nothing else (RFC 9110 7.8: the protocol
 * switched to must be one the client asked for). */
bool el_rewrite_switch_ok(const struct el_http_msg *resp);
/* Append the 101 head for the client to o: the backend's fields but for
 * hop-by-hop and framing ones (Sec-WebSocket-Accept and -Protocol go on),
 * then "Upgrade: websocket", "Connection: upgrade", Via, and cookie (a
 * Set-Cookie value, or "" / NULL). */
void el_rewrite_switch(const struct el_http_msg *resp, const char *cookie, struct el_buf *o);

enum el_rewrite_framing {
    EL_REWRITE_AS_IS,   /* no body, or Content-Length: copy the body bytes */
    EL_REWRITE_CHUNKED, /* re-encode the body as chunks (an HTTP/1.1 client) */
    EL_REWRITE_TO_CLOSE, /* raw body, the connection closes after it (HTTP/1.0) */
};

/* Append the response head for the client to o. client11: the client speaks
 * HTTP/1.1. *close: in, the connection closes after this response; out, it
 * must (an HTTP/1.0 client reading a body of unknown length). cookie: a
 * Set-Cookie value, or "". Returns how the body is to be framed. */
enum el_rewrite_framing el_rewrite_response(const struct el_http_msg *resp, bool client11,
                                            bool *close, const char *cookie, struct el_buf *o);

#endif
