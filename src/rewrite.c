/* rewrite.c - the forwarded request head and the returned response head
 * (see rewrite.h). Nothing here allocates but the buffer's growth, and
 * nothing formats with printf: these run for every proxied request. */
#include "einlass/rewrite.h"

#include <string.h>

#include "einlass/common.h"

static bool is_xff(const struct el_http_header *h)
{
    return el_strcaseeq(h->name, h->name_len, "x-forwarded-for", 15);
}

/* Does an Upgrade field's list [v, v + n) name protocol (exactly, any case)?
 * only: and nothing else. */
static bool names_protocol(const char *v, size_t n, const char *proto, bool only)
{
    const char *p = v, *item;
    size_t len;
    bool found = false, other = false;
    while (el_http_next_elem(&p, v + n, &item, &len)) {
        if (len == 0) continue;
        if (el_strcaseeq(item, len, proto, strlen(proto))) found = true;
        else other = true;
    }
    return found && !(only && other);
}

bool el_rewrite_upgrade(const struct el_http_msg *r)
{
    if (!r->upgrade || r->minor_version != 1) return false;
    if (r->method_len != 3 || memcmp(r->method, "GET", 3) != 0) return false;
    if (r->body != EL_BODY_NONE && !(r->body == EL_BODY_LENGTH && r->content_length == 0))
        return false;
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct el_http_header *h = &r->headers[i];
        if (el_strcaseeq(h->name, h->name_len, "upgrade", 7) &&
            names_protocol(h->value, h->value_len, "websocket", false))
            return true;
    }
    return false;
}

bool el_rewrite_switch_ok(const struct el_http_msg *resp)
{
    if (resp->status != 101) return false;
    const struct el_http_header *u = el_http_find(resp, "upgrade", 7);
    return u != NULL && names_protocol(u->value, u->value_len, "websocket", true);
}

/* The target in origin-form: the normal form of the path (written in place
 * over a copy of the received one: it is never longer), then the query. */
static void append_target(const struct el_http_msg *r, struct el_buf *o)
{
    if (r->path[0] != '/') { /* "*", CONNECT's authority */
        el_buf_append(o, r->target, r->target_len);
        return;
    }
    el_buf_append(o, r->path, r->path_len);
    if (!r->path_normal) {
        char *p = o->data + o->len - r->path_len;
        size_t n;
        /* cannot fail: the parser refused every path that would */
        if (el_http_path_normalize(p, r->path_len, p, &n) != -1)
            o->len -= (uint32_t)(r->path_len - n);
    }
    el_buf_append(o, r->query, r->query_len);
}

void el_rewrite_request(const struct el_http_msg *r, const char *peer_ip, size_t peer_ip_len,
                        bool keep_xff, bool https, const char *default_host, struct el_buf *o)
{
    el_buf_append(o, r->method, r->method_len);
    el_buf_append(o, " ", 1);
    append_target(r, o);
    el_buf_append_str(o, " HTTP/1.1\r\n");
    if (r->authority) /* RFC 9112 3.2.2: the target's authority replaces Host */
        el_buf_append_header(o, "Host", 4, r->authority, r->authority_len);
    else if (!r->has_host) /* HTTP/1.0 without Host */
        el_buf_append_header(o, "Host", 4, default_host, strlen(default_host));
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct el_http_header *h = &r->headers[i];
        if (h->flags & (EL_HDR_HOP | EL_HDR_FRAMING)) continue;
        if (r->authority && el_strcaseeq(h->name, h->name_len, "host", 4)) continue;
        if (is_xff(h) || el_strcaseeq(h->name, h->name_len, "x-forwarded-proto", 17) ||
            el_strcaseeq(h->name, h->name_len, "expect", 6))
            continue;
        el_buf_append_header(o, h->name, h->name_len, h->value, h->value_len);
    }
    if (r->upgrade && el_rewrite_upgrade(r)) /* only what einlass tunnels */
        el_buf_append_str(o, "Upgrade: websocket\r\nConnection: upgrade\r\n");
    el_buf_append_str(o, "X-Forwarded-For: ");
    if (keep_xff) /* a trusted proxy's chain, every field in order */
        for (size_t i = 0; i < r->nheaders; i++)
            if (is_xff(&r->headers[i]) && r->headers[i].value_len > 0) {
                el_buf_append(o, r->headers[i].value, r->headers[i].value_len);
                el_buf_append(o, ", ", 2);
            }
    el_buf_append(o, peer_ip, peer_ip_len);
    el_buf_append_str(o, https ? "\r\nX-Forwarded-Proto: https\r\n" : "\r\nX-Forwarded-Proto: http\r\n");
    el_buf_append_str(o, r->minor_version ? "Via: 1.1 einlass\r\n" : "Via: 1.0 einlass\r\n");
    if (r->body == EL_BODY_LENGTH) {
        el_buf_append_str(o, "Content-Length: ");
        el_buf_append_u64(o, r->content_length);
        el_buf_append_str(o, "\r\n\r\n");
    } else if (r->body == EL_BODY_CHUNKED) {
        el_buf_append_str(o, "Transfer-Encoding: chunked\r\n\r\n");
    } else {
        el_buf_append_str(o, "\r\n");
    }
}

enum el_rewrite_framing el_rewrite_response(const struct el_http_msg *resp, bool client11,
                                            bool *close, const char *cookie, struct el_buf *o)
{
    enum el_rewrite_framing f = EL_REWRITE_AS_IS;
    el_buf_append_str(o, "HTTP/1.1 ");
    el_buf_append_u64(o, (uint64_t)resp->status);
    el_buf_append(o, " ", 1);
    el_buf_append(o, resp->reason, resp->reason_len);
    el_buf_append_str(o, "\r\n");
    const struct el_http_header *cl = NULL;
    for (size_t i = 0; i < resp->nheaders; i++) {
        const struct el_http_header *h = &resp->headers[i];
        if (h->flags & EL_HDR_FRAMING) {
            if (!cl && el_strcaseeq(h->name, h->name_len, "content-length", 14)) cl = h;
            continue;
        }
        if (h->flags & EL_HDR_HOP) continue;
        el_buf_append_header(o, h->name, h->name_len, h->value, h->value_len);
    }
    el_buf_append_str(o, "Via: 1.1 einlass\r\n");
    if (cookie && cookie[0]) el_buf_append_header(o, "Set-Cookie", 10, cookie, strlen(cookie));
    switch (resp->body) {
    case EL_BODY_NONE:
        /* HEAD and 304 keep the length the backend announced; 1xx and 204 have none. */
        if (cl && resp->status >= 200 && resp->status != 204)
            el_buf_append_header(o, "Content-Length", 14, cl->value, cl->value_len);
        break;
    case EL_BODY_LENGTH:
        el_buf_append_str(o, "Content-Length: ");
        el_buf_append_u64(o, resp->content_length);
        el_buf_append_str(o, "\r\n");
        break;
    case EL_BODY_CHUNKED:
    case EL_BODY_CLOSE:
        if (client11) {
            el_buf_append_str(o, "Transfer-Encoding: chunked\r\n");
            f = EL_REWRITE_CHUNKED;
        } else {
            *close = true; /* an HTTP/1.0 client reads to the close */
            f = EL_REWRITE_TO_CLOSE;
        }
        break;
    }
    if (*close) el_buf_append_str(o, "Connection: close\r\n");
    else if (!client11) el_buf_append_str(o, "Connection: keep-alive\r\n");
    el_buf_append_str(o, "\r\n");
    return f;
}

void el_rewrite_switch(const struct el_http_msg *resp, const char *cookie, struct el_buf *o)
{
    el_buf_append_str(o, "HTTP/1.1 101 ");
    el_buf_append(o, resp->reason, resp->reason_len);
    el_buf_append_str(o, "\r\n");
    for (size_t i = 0; i < resp->nheaders; i++) {
        const struct el_http_header *h = &resp->headers[i];
        if (h->flags & (EL_HDR_HOP | EL_HDR_FRAMING)) continue;
        el_buf_append_header(o, h->name, h->name_len, h->value, h->value_len);
    }
    el_buf_append_str(o, "Upgrade: websocket\r\nConnection: upgrade\r\nVia: 1.1 einlass\r\n");
    if (cookie && cookie[0]) el_buf_append_header(o, "Set-Cookie", 10, cookie, strlen(cookie));
    el_buf_append_str(o, "\r\n");
}
