/* event.h - scheduled openings ([event NAME], admin /events) with a fair
 * pre-queue.
 *
 * An event opens at opens_at; from prequeue_s before it every newcomer (the
 * gate sends only those without a pass, off bypass and priority routes)
 * takes a number i in the event's pre-queue (store.h, EL_PRE_JOIN) and a
 * pre-queue ticket; nobody's place is known yet. At the opening the main
 * thread's tick draws: it proposes a 256-bit seed from RAND_bytes and the
 * store keeps the first one proposed (EL_PRE_DRAW: every instance on one
 * Redis gets the same seed, count n and base), freezing n and reserving
 * lane 0's numbers [base, base + n) at its tail. Ticket i's place is
 * base + perm(i) (shuffle.h): a uniformly random order nobody could predict
 * before the opening, the same on every instance. Whoever joins after the
 * draw takes a number above base + n: in arrival order behind the whole
 * pre-queue. The meter admits the block at the room's rate like any other
 * tickets (a holder who never comes back is stepped over as any abandoned
 * place is). A copied pre-queue ticket maps to the same place, whose one
 * pass the store hands out once.
 *
 * States (el_event_state, pure): scheduled (before the pre-queue), prequeue,
 * draining (opened, until lane 0's head passes base + n), over (drained, or
 * past ends_at, or cancelled and drained). While some event is in prequeue
 * or draining the room queues, whatever the latency (el_events_hold_room).
 * A cancelled event is drawn (at the next tick) without a seed: its
 * pre-queue keeps arrival order, behind those already waiting; it drains
 * like any other.
 *
 * Threads: the table is process-wide, behind one mutex; the tick, configure,
 * add and cancel run on the main thread, lookups on any. */
#ifndef EL_EVENT_H
#define EL_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "einlass/common.h"
#include "einlass/config.h"
#include "einlass/store.h"

struct el_room;

enum el_event_state {
    EL_EVENT_SCHEDULED = 0, /* the pre-queue has not begun */
    EL_EVENT_PREQUEUE,      /* newcomers take pre-queue tickets */
    EL_EVENT_DRAINING,      /* opened: the drawn pre-queue is being admitted */
    EL_EVENT_OVER,          /* drained, past ends_at, or cancelled and drained */
};
/* "scheduled", "prequeue", "draining", "over". */
extern const struct el_word el_event_state_words[];

/* What is known of an event's pre-queue from the store. */
struct el_event_run {
    bool cancelled;    /* DELETE /events/NAME: drawn in arrival order */
    bool known;        /* pre below holds a store answer */
    struct el_pre pre; /* n, and the draw once made (store.h) */
};

/* The event's id: the first 4 bytes of SHA-256(name NUL opens_at_ms), so a
 * rescheduled event is a new pre-queue. Pure. */
uint32_t el_event_id(const struct el_event_def *d);
/* The state at now_ms. Pure. */
enum el_event_state el_event_state(const struct el_event_def *d, const struct el_event_run *r,
                                   int64_t now_ms);
/* What the tick asks the store at now_ms: EL_PRE_DRAW once opened (or
 * cancelled) and not drawn, EL_PRE_READ while in prequeue or draining, or
 * -1 for nothing. Pure. */
int el_event_next_op(const struct el_event_def *d, const struct el_event_run *r, int64_t now_ms);
/* Newcomers take pre-queue tickets: in prequeue, or opened (or cancelled)
 * while the draw is not known yet (the store then answers "drawn" and they
 * join lane 0 behind the pre-queue). */
bool el_event_takes_arrivals(const struct el_event_def *d, const struct el_event_run *r,
                             int64_t now_ms);
/* The lane 0 number of pre-queue ticket i: 0 and *num, or -1 if not drawn
 * or i is not below n. Pure (but for the cipher it builds). */
int el_event_place(const struct el_event_run *r, uint64_t i, uint64_t *num);

/* Pre-queue tickets carry the event's id and i in the ticket number. */
#define EL_EVENT_TICKET_NUM(id, i) (((uint64_t)(id) << 32) | ((uint64_t)(i)&0xffffffffu))
#define EL_EVENT_TICKET_ID(num) ((uint32_t)((num) >> 32))
#define EL_EVENT_TICKET_I(num) ((num)&0xffffffffu)

/* One event as the table holds it (a copy: lookups hand these out). */
struct el_event_view {
    struct el_event_def def;   /* name, times, the file's line (0: added by the API) */
    uint32_t id;               /* el_event_id(&def) */
    enum el_event_state state; /* at the time asked */
    struct el_event_run run;   /* the store's figures */
};

struct el_events;

struct el_events *el_events_new(void);
void el_events_free(struct el_events *ev);
/* Main thread, at start and on reload: the file's events replace the
 * file's previous ones (an event whose id stays keeps what the store told
 * about it); events the API added stay (until restart) unless the file now
 * has one of that name. */
void el_events_configure(struct el_events *ev, const struct el_config *cfg);
/* Main thread: add d (checked like the file: el_config_check_event). 0, or
 * -1 with the reason in why (a name in use, the table full, a bad field);
 * *conflict is set when the name is in use. */
int el_events_add(struct el_events *ev, const struct el_event_def *d, bool *conflict, char *why,
                  size_t nwhy);
/* Main thread: cancel the event named name: it is drawn in arrival order
 * and drains behind whoever waits; 0, or -1 if there is none (or it is over). */
int el_events_cancel(struct el_events *ev, const char *name);
/* Main thread, every tick: ask the store (through room) what each event
 * needs (el_event_next_op), and update the room hold. */
void el_events_tick(struct el_events *ev, struct el_room *room, int64_t now_ms);
/* True while some event is in prequeue or draining (as of the last tick).
 * Any thread; one relaxed load. */
bool el_events_hold_room(const struct el_events *ev);
/* The event taking arrivals at now_ms (the earliest opening if several):
 * 0 and *v, or -1. Any thread. */
int el_events_arrivals(struct el_events *ev, int64_t now_ms, struct el_event_view *v);
/* The event with id: 0 and *v, or -1. Any thread. */
int el_events_find(struct el_events *ev, uint32_t id, int64_t now_ms, struct el_event_view *v);
/* Events in the table (cancelled ones included), and the k-th: 0 and *v,
 * or -1. Any thread (for /events and /metrics). */
size_t el_events_count(struct el_events *ev);
int el_events_get(struct el_events *ev, size_t k, int64_t now_ms, struct el_event_view *v);

#endif
