/* buf.c - contiguous per-direction byte buffers with a per-worker pool.
 * Invariant: off <= len <= cap; data[off, len) is unread. A buffer of the
 * standard size goes back to its worker's free list, so steady-state
 * requests allocate nothing. */
#include "einlass/buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "einlass/common.h"

void el_buf_alloc(struct el_buf_pool *p, struct el_buf *b, uint32_t cap)
{
    if (b->data != NULL) return;
    if (cap <= EL_BUF_SIZE) {
        cap = EL_BUF_SIZE;
        b->data = p->nfree ? p->free[--p->nfree] : el_malloc(cap);
    } else {
        b->data = el_malloc(cap);
    }
    b->cap = cap;
    b->off = b->len = 0;
}

void el_buf_release(struct el_buf_pool *p, struct el_buf *b)
{
    if (b->data == NULL) return;
    if (b->cap == EL_BUF_SIZE && p->nfree < p->max) {
        if (p->free == NULL) p->free = el_calloc(p->max, sizeof(void *));
        p->free[p->nfree++] = b->data;
    } else {
        free(b->data);
    }
    b->data = NULL;
    b->off = b->len = b->cap = 0;
}

void el_buf_pool_clear(struct el_buf_pool *p)
{
    while (p->nfree) free(p->free[--p->nfree]);
    free(p->free);
    p->free = NULL;
}

void el_buf_consume(struct el_buf *b, size_t n)
{
    b->off += (uint32_t)n;
    if (b->off >= b->len) b->off = b->len = 0;
}

size_t el_buf_compact(struct el_buf *b, size_t want)
{
    if (b->cap - b->len < want && b->off > 0) {
        memmove(b->data, b->data + b->off, b->len - b->off);
        b->len -= b->off;
        b->off = 0;
    }
    return b->cap - b->len;
}

void el_buf_append(struct el_buf *b, const void *p, size_t n)
{
    if (b->cap - b->len < n) {
        el_buf_compact(b, n);
        if (b->cap - b->len < n) {
            /* Grown blocks are no longer the pool's size; release frees them. */
            size_t cap = (size_t)b->cap * 2;
            while (cap - b->len < n) cap *= 2;
            char *nd = el_malloc(cap);
            memcpy(nd, b->data, b->len);
            free(b->data); /* a standard block leaves the pool here: rare path */
            b->data = nd;
            b->cap = (uint32_t)cap;
        }
    }
    memcpy(b->data + b->len, p, n);
    b->len += (uint32_t)n;
}

void el_buf_append_str(struct el_buf *b, const char *s)
{
    el_buf_append(b, s, strlen(s));
}

void el_buf_append_u64(struct el_buf *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    el_buf_append(b, tmp + i, sizeof(tmp) - i);
}

void el_buf_append_header(struct el_buf *b, const char *name, size_t name_len, const char *value,
                          size_t value_len)
{
    el_buf_append(b, name, name_len);
    el_buf_append(b, ": ", 2);
    el_buf_append(b, value, value_len);
    el_buf_append(b, "\r\n", 2);
}

ssize_t el_buf_read(struct el_buf *b, int fd, bool drain, bool *eof)
{
    size_t room = el_buf_compact(b, 4096);
    if (room == 0) return -3;
    ssize_t total = 0;
    for (;;) {
        ssize_t n = read(fd, b->data + b->len, room);
        if (n > 0) {
            b->len += (uint32_t)n;
            total += n;
            /* A short read drained the socket: with edge-triggered events the
             * next arrival raises a new edge, so no extra read is needed
             * unless the peer has shut down (drain), whose EOF we must see. */
            if ((size_t)n < room && !drain) return total;
            room = b->cap - b->len;
            if (room == 0) return total;
            continue;
        }
        if (n == 0) {
            *eof = true;
            return total;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return total ? total : -2;
        return total ? total : -1;
    }
}

int el_buf_write(struct el_buf *b, int fd)
{
    while (b->off < b->len) {
        ssize_t n = send(fd, b->data + b->off, b->len - b->off, MSG_NOSIGNAL);
        if (n > 0) {
            el_buf_consume(b, (size_t)n);
            continue;
        }
        if (n == -1 && errno == EINTR) continue;
        if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 1;
        return -1;
    }
    return 0;
}
