/* generation.h - reference counting of a configuration generation (struct
 * el_generation, worker-t.h). A worker holds the generation new requests
 * use; each request holds the one it started on until it ends, so a reload
 * never changes the config under a request in flight. Any thread. */
#ifndef EL_GENERATION_H
#define EL_GENERATION_H

struct el_generation;

/* One more holder of g (atomic). */
void el_generation_hold(struct el_generation *g);
/* One holder less; the last one frees g with its config and page. */
void el_generation_drop(struct el_generation *g);

#endif
