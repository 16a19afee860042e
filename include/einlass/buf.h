/* buf.h - the byte buffers of the data path: one contiguous block per
 * direction of a connection, read into until EAGAIN and written straight out.
 * Unread bytes live in [off, len); free space is [len, cap). Buffers of the
 * standard size come from a per-worker free list, so a request in steady
 * state allocates nothing. One thread owns a buffer. */
#ifndef EL_BUF_H
#define EL_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define EL_BUF_SIZE (16 * 1024) /* standard buffer: pooled */

struct el_buf {
    char *data;   /* NULL until first use */
    uint32_t off; /* first unconsumed byte */
    uint32_t len; /* end of data */
    uint32_t cap; /* allocated size */
};

struct el_buf_pool {
    void **free;   /* free standard-size blocks */
    size_t nfree;  /* blocks in free */
    size_t max;    /* keep at most this many */
};

static inline uint32_t el_buf_used(const struct el_buf *b)
{
    return b->len - b->off;
}

/* Give b a block of at least cap bytes (pooled when cap <= EL_BUF_SIZE). */
void el_buf_alloc(struct el_buf_pool *p, struct el_buf *b, uint32_t cap);
/* Return b's block to the pool (or free it); b becomes empty. */
void el_buf_release(struct el_buf_pool *p, struct el_buf *b);
void el_buf_pool_clear(struct el_buf_pool *p);

/* Drop n consumed bytes; reset to the start when empty. */
void el_buf_consume(struct el_buf *b, size_t n);
/* Make room for at least want free bytes at the end by moving data down
 * (never grows). Returns the free bytes. */
size_t el_buf_compact(struct el_buf *b, size_t want);
/* Append (the caller made sure it fits, or it is grown with el_realloc). */
void el_buf_append(struct el_buf *b, const void *p, size_t n);
void el_buf_append_str(struct el_buf *b, const char *s);
/* Append v in decimal (no printf: these serve the request path). */
void el_buf_append_u64(struct el_buf *b, uint64_t v);
/* Append "name: value\r\n". */
void el_buf_append_header(struct el_buf *b, const char *name, size_t name_len, const char *value,
                          size_t value_len);

/* read() into the free space until it is full or the socket is drained
 * (a short read counts as drained unless drain is set: the peer shut down
 * and its EOF must be seen). Returns bytes read (>= 0; *eof set when the
 * peer closed), -1 on error, -2 if nothing to read now (EAGAIN), -3 if the
 * buffer has no free space. */
ssize_t el_buf_read(struct el_buf *b, int fd, bool drain, bool *eof);
/* send() what is buffered. Returns 0 when all is written, 1 when some is
 * left (EAGAIN), -1 on error. */
int el_buf_write(struct el_buf *b, int fd);

#endif
