/* generation.h - one configuration generation (struct el_generation,
 * worker-t.h): its config, waiting page, backend address and listener
 * sockets, and the reference count that keeps it alive.
 *
 * A worker holds the generation new requests use; each request holds the
 * one it started on until it ends, so a reload never changes the config
 * under a request in flight. Building one (el_generation_new) is the main
 * thread's; hold and drop may be called from any thread. */
#ifndef EL_GENERATION_H
#define EL_GENERATION_H

struct el_config;
struct el_generation;

/* Build a generation on cfg, with one reference (the caller's): parse the
 * backend address, load the waiting page, and either take over old's
 * listener sockets (cfg->listen names the address they are bound to) or
 * open nworkers new SO_REUSEPORT sockets on cfg->listen (refusing an
 * address another process listens on, unless cfg->listen_shared). old is
 * NULL at start. The caller numbers it (g->id) before publishing. On
 * success g owns cfg. Returns NULL with *err set (allocated,
 * "FILE:0: ..."), and cfg still the caller's; nothing is left open. */
struct el_generation *el_generation_new(struct el_config *cfg, const struct el_generation *old,
                                        int nworkers, char **err);
/* The config of the generation *cur points at now (relaxed load: for the
 * main thread, which alone stores *cur, and whose callers need no ordering
 * beyond that). */
const struct el_config *el_generation_config(_Atomic(struct el_generation *) *cur);
/* One more holder of g (atomic). */
void el_generation_hold(struct el_generation *g);
/* One holder less; the last one frees g with its config and page. The
 * listener sockets are not closed here: their owners (workers, the server
 * at exit) close them. */
void el_generation_drop(struct el_generation *g);

#endif
