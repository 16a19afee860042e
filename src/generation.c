/* generation.c - building a configuration generation, its listener
 * sockets, and its reference count.
 *
 * Invariants:
 *  - A generation is immutable once built: its config, page, backend
 *    address and listener fds never change; a reload builds a new one.
 *  - Listener sockets pass from one generation to the next when the listen
 *    address stays (same_listener); otherwise the new generation opens its
 *    own and each worker closes its old fd as it adopts the new one. So
 *    el_generation_drop never closes a listener.
 *  - The main thread builds generations; hold and drop are atomic and run
 *    on any thread (workers, requests finishing on them). */
#include "einlass/generation.h"

#include <errno.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "einlass/common.h"
#include "einlass/config.h"
#include "einlass/page.h"
#include "einlass/worker-t.h"

const struct el_config *el_generation_config(_Atomic(struct el_generation *) *cur)
{
    return atomic_load_explicit(cur, memory_order_relaxed)->cfg;
}

void el_generation_hold(struct el_generation *g)
{
    atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
}

void el_generation_drop(struct el_generation *g)
{
    if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1) return;
    for (size_t i = 0; i < EL_MAX_ROOMS; i++)
        el_page_free(g->pages[i]);
    el_config_free(g->cfg);
    free(g);
}

static int open_listener(const struct sockaddr_storage *ss, unsigned len, char **err)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) goto fail;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1) goto fail;
    if (bind(fd, (const struct sockaddr *)ss, len) == -1) goto fail;
    if (listen(fd, 4096) == -1) goto fail;
    int defer = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer));
    return fd;
fail:
    *err = el_sprintf("cannot listen: %s", strerror(errno));
    if (fd != -1) close(fd);
    return -1;
}

/* Whether another process listens on ss already. SO_REUSEPORT would let our
 * sockets join its group and split the traffic with it, so ask the kernel
 * first with a plain socket: with SO_REUSEADDR (closed connections in
 * TIME_WAIT do not count) but not SO_REUSEPORT, bind fails with EADDRINUSE
 * exactly when someone listens on the address (or on the wildcard address
 * of its port). The probe never listens, so it takes no connection. A
 * second instance starting in the same instant can slip past it; a lock
 * would be needed for that. */
static bool someone_listens(const struct sockaddr_storage *ss, unsigned len)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) return false; /* the real bind will say what is wrong */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    bool busy = bind(fd, (const struct sockaddr *)ss, len) == -1 && errno == EADDRINUSE;
    close(fd);
    return busy;
}

/* Open one SO_REUSEPORT socket per worker on cfg->listen (port 0: the first
 * socket picks the port, the others join it). own: the sockets this process
 * listens on now (NULL at start): a reload that moves between addresses of
 * the same port (0.0.0.0 <-> 127.0.0.1) overlaps them, so it skips the
 * probe rather than mistake itself for another process. */
static int open_listeners(int nworkers, const struct el_config *cfg, const int *own,
                          int *fds, char **err)
{
    struct sockaddr_storage ss;
    unsigned len;
    const char *why;
    if (el_parse_addr(cfg->listen, &ss, &len, &why) == -1) {
        *err = el_sprintf("listen %s: %s", cfg->listen, why);
        return -1;
    }
    bool probe = !cfg->listen_shared && el_addr_port(&ss) != 0;
    if (probe && own != NULL) {
        struct sockaddr_storage have;
        socklen_t hl = sizeof(have);
        if (getsockname(own[0], (struct sockaddr *)&have, &hl) == 0 &&
            have.ss_family == ss.ss_family && el_addr_port(&have) == el_addr_port(&ss))
            probe = false;
    }
    if (probe && someone_listens(&ss, len)) {
        *err = el_sprintf("listen %s: another process listens there already (is einlass "
                          "running?); stop it, or set [server] listen_shared = on to share "
                          "the port with it",
                          cfg->listen);
        return -1;
    }
    for (int i = 0; i < nworkers; i++) {
        fds[i] = open_listener(&ss, len, err);
        if (fds[i] == -1) {
            while (i-- > 0) close(fds[i]);
            char *e = *err;
            *err = el_sprintf("listen %s: %s", cfg->listen, e);
            free(e);
            return -1;
        }
        if (i == 0) {
            socklen_t sl = sizeof(ss);
            getsockname(fds[0], (struct sockaddr *)&ss, &sl);
        }
    }
    char text[96];
    el_addr_text(&ss, true, text, sizeof(text));
    el_notice("listening on %s (%d workers)", text, nworkers);
    return 0;
}

/* Does cfg->listen name the address old's sockets are bound to? Port 0
 * ("any") matches whatever port they have, so a reload never moves them. */
static bool same_listener(const struct el_generation *old, const struct el_config *cfg)
{
    struct sockaddr_storage want, have;
    unsigned len;
    socklen_t hl = sizeof(have);
    const char *why;
    if (strcmp(old->cfg->listen, cfg->listen) == 0) return true;
    if (el_parse_addr(cfg->listen, &want, &len, &why) == -1) return false;
    if (getsockname(old->listen_fds[0], (struct sockaddr *)&have, &hl) == -1) return false;
    if (want.ss_family != have.ss_family) return false;
    if (want.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)&want, *b = (const void *)&have;
        return a->sin_addr.s_addr == b->sin_addr.s_addr &&
               (a->sin_port == 0 || a->sin_port == b->sin_port);
    }
    if (want.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)&want, *b = (const void *)&have;
        return memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) == 0 &&
               (a->sin6_port == 0 || a->sin6_port == b->sin6_port);
    }
    return false;
}

struct el_generation *el_generation_new(struct el_config *cfg, const struct el_generation *old,
                                        int nworkers, char **err)
{
    struct el_generation *g = el_calloc(1, sizeof(*g));
    const char *why;
    atomic_init(&g->refs, 1);
    g->cfg = cfg;
    if (el_parse_addr(cfg->backend_address, &g->backend, &g->backend_len, &why) == -1) {
        *err = el_sprintf("%s:0: [backend] address %s: %s", cfg->path, cfg->backend_address, why);
        goto fail;
    }
    for (size_t i = 0; i < cfg->nrooms; i++) {
        const struct el_room_def *r = &cfg->rooms[i];
        char *perr = NULL;
        g->pages[i] = el_page_load(r->cfg->template_path, &perr);
        if (g->pages[i] == NULL) {
            *err = el_sprintf("%s:%d: [room%s%s] template: %s", cfg->path, r->line,
                              r->name[0] ? " " : "", r->name, perr);
            free(perr);
            goto fail;
        }
    }
    if (old && same_listener(old, cfg)) {
        memcpy(g->listen_fds, old->listen_fds, sizeof(g->listen_fds));
    } else {
        char *lerr = NULL;
        if (open_listeners(nworkers, cfg, old ? old->listen_fds : NULL, g->listen_fds, &lerr) == -1) {
            *err = el_sprintf("%s:0: %s", cfg->path, lerr);
            free(lerr);
            goto fail;
        }
    }
    return g;
fail:
    for (size_t i = 0; i < EL_MAX_ROOMS; i++)
        el_page_free(g->pages[i]);
    free(g);
    return NULL;
}
