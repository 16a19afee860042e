/*
 * bench/backend.c - a tiny static HTTP/1.1 server for proxy benchmarks.
 *
 * One thread, one epoll loop, keep-alive, a fixed 200 response of about
 * 100 bytes with Content-Length. It is deliberately cheaper than any proxy in
 * front of it, so that a benchmark measures the proxy, not the backend.
 *
 * Invariants: a connection's input buffer holds at most one partial request
 * head after each read (complete heads are answered at once, in order, which
 * is all pipelining needs); request bodies are skipped by Content-Length; a
 * connection whose answers cannot be written at once keeps them in its output
 * buffer and waits for EPOLLOUT before reading more. Heads larger than the
 * buffer, and chunked bodies, close the connection (benchmarks send neither).
 *
 * Usage: backend PORT   (0 picks a free port; prints "backend listening on
 * 127.0.0.1:PORT" and flushes). Build: gcc -O2 -o backend backend.c
 */
#define _GNU_SOURCE /* accept4, memmem */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE 16384
#define MAX_EVENTS 256

static const char response[] = "HTTP/1.1 200 OK\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 36\r\n"
                               "\r\n"
                               "hello from the benchmark backend :)\n";

struct conn {
    int fd;             /* the client socket */
    size_t in_len;      /* bytes of the unanswered head in in[] */
    size_t skip;        /* body bytes still to discard */
    size_t out_len;     /* answer bytes not yet written */
    size_t out_off;     /* first unwritten byte of out[] */
    char in[BUF_SIZE];  /* partial request head */
    char out[BUF_SIZE]; /* answers waiting for the socket */
};

static int epfd;

static void conn_close(struct conn *c)
{
    close(c->fd);
    free(c);
}

/* Content-Length of a complete head, 0 if none. */
static size_t body_length(const char *head, size_t len)
{
    const char *p = head;
    const char *end = head + len;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        p++;
        if (end - p > 15 && strncasecmp(p, "content-length:", 15) == 0)
            return strtoul(p + 15, NULL, 10);
    }
    return 0;
}

/* Write what is pending; 0 when all went out, 1 when the socket is full,
 * -1 on error. */
static int flush_out(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n == -1)
            return errno == EAGAIN ? 1 : -1;
        c->out_off += (size_t)n;
    }
    c->out_len = c->out_off = 0;
    return 0;
}

/* Answer every complete head in in[]; keep the partial rest. -1: close. */
static int answer(struct conn *c)
{
    size_t pos = 0;
    for (;;) {
        if (c->skip > 0) {
            size_t n = c->in_len - pos < c->skip ? c->in_len - pos : c->skip;
            pos += n;
            c->skip -= n;
        }
        char *end = memmem(c->in + pos, c->in_len - pos, "\r\n\r\n", 4);
        if (end == NULL)
            break;
        size_t head = (size_t)(end + 4 - (c->in + pos));
        c->skip = body_length(c->in + pos, head);
        pos += head;
        if (c->out_len + sizeof response - 1 > sizeof c->out && flush_out(c) != 0)
            return -1; /* the client pipelines more than it reads */
        memcpy(c->out + c->out_len, response, sizeof response - 1);
        c->out_len += sizeof response - 1;
    }
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
    return c->in_len == sizeof c->in ? -1 : 0;
}

static void on_readable(struct conn *c)
{
    for (;;) {
        ssize_t n = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
        if (n == 0 || (n == -1 && errno != EAGAIN))
            goto fail;
        if (n == -1)
            break;
        c->in_len += (size_t)n;
        if (answer(c) == -1)
            goto fail;
    }
    int r = flush_out(c);
    if (r == -1)
        goto fail;
    struct epoll_event ev = {.events = r == 1 ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    if (r == 1 && epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) == -1)
        goto fail;
    return;
fail:
    conn_close(c);
}

static void on_writable(struct conn *c)
{
    int r = flush_out(c);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (r == -1 || (r == 0 && epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) == -1)) {
        conn_close(c);
        return;
    }
    if (r == 0)
        on_readable(c);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((unsigned short)atoi(argv[1])),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (lfd == -1 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) == -1 ||
        listen(lfd, 1024) == -1 || getsockname(lfd, (struct sockaddr *)&sa, &sl) == -1) {
        perror("backend");
        return 1;
    }
    printf("backend listening on 127.0.0.1:%d\n", ntohs(sa.sin_port));
    fflush(stdout);

    epfd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) != -1) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    c = calloc(1, sizeof *c);
                    if (c == NULL)
                        abort();
                    c->fd = fd;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &cev) == -1)
                        conn_close(c);
                }
            } else if (events[i].events & EPOLLOUT) {
                on_writable(c);
            } else {
                on_readable(c);
            }
        }
    }
}
