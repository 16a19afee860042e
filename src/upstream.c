/* upstream.c - backend connections of one worker: connect and keep-alive
 * pool. Invariants: a connection is either owned (u->owner != NULL, serving
 * one request), idle in w->idle_up (owner NULL, buffers returned), or on the
 * free list w->free_up (closed, struct kept for reuse). Sockets are
 * registered once with EV_ET|EV_PERSIST; an idle pooled one that becomes
 * readable was closed by the backend (or sent garbage) and is closed. */
#include "einlass/upstream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "einlass/common.h"
#include "einlass/config.h"
#include "einlass/conn.h"
#include "einlass/worker-t.h"

void el_upstream_close(struct el_upconn *u)
{
    struct el_worker *w = u->w;
    event_del(&u->ev);
    close(u->fd);
    el_buf_release(&w->bufs, &u->in);
    el_buf_release(&w->bufs, &u->out);
    u->owner = NULL;
    u->next = w->free_up;
    w->free_up = u;
}

void el_upstream_pool_remove(struct el_upconn *u)
{
    struct el_worker *w = u->w;
    for (struct el_upconn **pp = &w->idle_up; *pp; pp = &(*pp)->next) {
        if (*pp == u) {
            *pp = u->next;
            w->nidle_up--;
            return;
        }
    }
}

struct el_upconn *el_upstream_connect(struct el_worker *w, struct el_conn *owner)
{
    const struct el_generation *g = w->gen;
    int fd = socket(g->backend.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) return NULL;
    if (g->backend.ss_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    bool connecting = false;
    if (connect(fd, (const struct sockaddr *)&g->backend, g->backend_len) == -1) {
        if (errno != EINPROGRESS) {
            close(fd);
            return NULL;
        }
        connecting = true;
    }
    struct el_upconn *u = w->free_up;
    if (u) w->free_up = u->next;
    else u = el_malloc(sizeof(*u));
    memset(u, 0, sizeof(*u));
    u->fd = fd;
    u->w = w;
    u->owner = owner;
    u->gen_id = g->id;
    u->connecting = connecting;
    event_assign(&u->ev, w->base, fd, EV_READ | EV_WRITE | EV_ET | EV_PERSIST | EV_CLOSED,
                 el_conn_upstream_event, u);
    event_add(&u->ev, NULL);
    return u;
}

struct el_upconn *el_upstream_acquire(struct el_worker *w, struct el_conn *owner)
{
    while (w->idle_up) {
        struct el_upconn *u = w->idle_up;
        w->idle_up = u->next;
        w->nidle_up--;
        if (u->gen_id != w->gen->id) { /* reaches the backend of an older config */
            el_upstream_close(u);
            continue;
        }
        u->owner = owner;
        return u;
    }
    return el_upstream_connect(w, owner);
}

void el_upstream_release(struct el_upconn *u, bool keep)
{
    struct el_worker *w = u->w;
    u->owner = NULL;
    if (keep && !w->draining && u->gen_id == w->gen->id && el_buf_used(&u->in) == 0 &&
        el_buf_used(&u->out) == 0 && !u->connecting && w->nidle_up < w->gen->cfg->keepalive) {
        el_buf_release(&w->bufs, &u->in);
        el_buf_release(&w->bufs, &u->out);
        u->reused = true;
        u->next = w->idle_up;
        w->idle_up = u;
        w->nidle_up++;
        return;
    }
    el_upstream_close(u);
}
