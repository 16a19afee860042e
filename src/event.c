/* event.c - scheduled openings with a fair pre-queue (event.h).
 *
 * Invariants:
 *   - the table holds at most SLOTS events; an entry's def and id never
 *     change while it is in the table (a reschedule is another id); one
 *     mutex guards every entry, and lookups copy out (struct el_event_view).
 *   - run.pre only ever moves forward: n grows until drawn, and once drawn
 *     base, n and seed are the store's (the first draw any instance made);
 *     an answer from the store that is not drawn never replaces a drawn one.
 *   - at most one store op per event is in flight (busy), so answers come
 *     in order; its request carries the id, and finds its entry again (or
 *     none: removed by a reload, dropped).
 *   - hold is recomputed every tick from the states: the room queues while
 *     some event is in prequeue or draining. */
#include "einlass/event.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "einlass/room.h"
#include "einlass/shuffle.h"

#define SLOTS (2 * EL_MAX_EVENTS) /* the file's and the API's */

const struct el_word el_event_state_words[] = {{"scheduled", EL_EVENT_SCHEDULED},
                                               {"prequeue", EL_EVENT_PREQUEUE},
                                               {"draining", EL_EVENT_DRAINING},
                                               {"over", EL_EVENT_OVER},
                                               {NULL, 0}};

uint32_t el_event_id(const struct el_event_def *d)
{
    char buf[EL_EVENT_NAME_MAX + 32];
    size_t n = strnlen(d->name, sizeof(d->name));
    memcpy(buf, d->name, n);
    buf[n] = '\0';
    int m = snprintf(buf + n + 1, sizeof(buf) - n - 1, "%lld", (long long)d->opens_at_ms);
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)buf, n + 1 + (size_t)m, md);
    return (uint32_t)md[0] << 24 | (uint32_t)md[1] << 16 | (uint32_t)md[2] << 8 | md[3];
}

static bool drained(const struct el_event_run *r)
{
    return r->pre.drawn && r->pre.head >= r->pre.base + r->pre.n;
}

enum el_event_state el_event_state(const struct el_event_def *d, const struct el_event_run *r,
                                   int64_t now_ms)
{
    if (r->cancelled) return drained(r) ? EL_EVENT_OVER : EL_EVENT_DRAINING; /* drawn next tick */
    if (d->ends_at_ms != 0 && now_ms >= d->ends_at_ms) return EL_EVENT_OVER;
    if (now_ms < d->opens_at_ms - (int64_t)d->prequeue_s * 1000) return EL_EVENT_SCHEDULED;
    if (now_ms < d->opens_at_ms) return EL_EVENT_PREQUEUE;
    return drained(r) ? EL_EVENT_OVER : EL_EVENT_DRAINING;
}

int el_event_next_op(const struct el_event_def *d, const struct el_event_run *r, int64_t now_ms)
{
    bool opened = now_ms >= d->opens_at_ms;
    bool ended = d->ends_at_ms != 0 && now_ms >= d->ends_at_ms;
    if (!r->pre.drawn && (r->cancelled || (opened && !ended))) return EL_PRE_DRAW;
    enum el_event_state st = el_event_state(d, r, now_ms);
    return st == EL_EVENT_PREQUEUE || st == EL_EVENT_DRAINING ? EL_PRE_READ : -1;
}

bool el_event_takes_arrivals(const struct el_event_def *d, const struct el_event_run *r,
                             int64_t now_ms)
{
    if (r->pre.drawn || (d->ends_at_ms != 0 && now_ms >= d->ends_at_ms)) return false;
    if (r->cancelled) return true; /* until the draw (the next tick): in arrival order */
    return now_ms >= d->opens_at_ms - (int64_t)d->prequeue_s * 1000;
}

int el_event_place(const struct el_event_run *r, uint64_t i, uint64_t *num)
{
    if (!r->pre.drawn || i >= r->pre.n) return -1;
    struct el_shuffle s;
    el_shuffle_init(&s, r->pre.shuffled ? r->pre.seed : NULL, r->pre.n);
    *num = r->pre.base + el_shuffle_at(&s, i);
    el_shuffle_done(&s);
    return 0;
}

/* ---- the table ---- */

struct entry {
    bool used;               /* the slot holds an event */
    bool from_api;           /* added by POST /events (else the file's) */
    bool busy;               /* a store op is in flight */
    uint32_t id;             /* el_event_id(&def) */
    struct el_event_def def; /* as configured */
    struct el_event_run run; /* the store's figures */
};

struct el_events {
    pthread_mutex_t lock;      /* guards slots */
    struct entry slots[SLOTS]; /* in the order added */
    _Atomic bool hold;         /* some event in prequeue or draining (last tick) */
};

/* One store op in flight. */
struct req {
    struct el_events *ev; /* whose */
    uint32_t id;          /* which event */
};

struct el_events *el_events_new(void)
{
    struct el_events *ev = el_calloc(1, sizeof(*ev));
    pthread_mutex_init(&ev->lock, NULL);
    return ev;
}

void el_events_free(struct el_events *ev)
{
    if (ev == NULL) return;
    pthread_mutex_destroy(&ev->lock);
    free(ev);
}

static struct entry *by_id(struct el_events *ev, uint32_t id)
{
    for (size_t i = 0; i < SLOTS; i++)
        if (ev->slots[i].used && ev->slots[i].id == id) return &ev->slots[i];
    return NULL;
}

static struct entry *by_name(struct el_events *ev, const char *name)
{
    for (size_t i = 0; i < SLOTS; i++)
        if (ev->slots[i].used && strcmp(ev->slots[i].def.name, name) == 0) return &ev->slots[i];
    return NULL;
}

static struct entry *free_slot(struct el_events *ev)
{
    for (size_t i = 0; i < SLOTS; i++)
        if (!ev->slots[i].used) return &ev->slots[i];
    return NULL;
}

void el_events_configure(struct el_events *ev, const struct el_config *cfg)
{
    pthread_mutex_lock(&ev->lock);
    struct entry old[SLOTS];
    memcpy(old, ev->slots, sizeof(old));
    memset(ev->slots, 0, sizeof(ev->slots));
    size_t k = 0;
    for (size_t i = 0; i < cfg->nevents && k < SLOTS; i++) {
        struct entry *e = &ev->slots[k++];
        e->used = true;
        e->def = cfg->events[i];
        e->id = el_event_id(&e->def);
        for (size_t j = 0; j < SLOTS; j++)
            if (old[j].used && old[j].id == e->id) {
                e->run = old[j].run; /* the same event: what the store said stays */
                e->busy = old[j].busy;
            }
    }
    for (size_t j = 0; j < SLOTS && k < SLOTS; j++)
        if (old[j].used && old[j].from_api && by_name(ev, old[j].def.name) == NULL)
            ev->slots[k++] = old[j];
    pthread_mutex_unlock(&ev->lock);
}

int el_events_add(struct el_events *ev, const struct el_event_def *d, bool *conflict, char *why,
                  size_t nwhy)
{
    *conflict = false;
    if (el_config_check_event(d, why, nwhy) == -1) return -1;
    int64_t now = (int64_t)el_wall_ms();
    pthread_mutex_lock(&ev->lock);
    struct entry *e = by_name(ev, d->name);
    if (e != NULL &&
        !(e->run.cancelled && el_event_state(&e->def, &e->run, now) == EL_EVENT_OVER)) {
        *conflict = true;
        snprintf(why, nwhy, "an event named '%s' exists (cancel it first: DELETE /events/%s)",
                 d->name, d->name);
        pthread_mutex_unlock(&ev->lock);
        return -1;
    }
    if (e == NULL) e = free_slot(ev);
    if (e == NULL) {
        snprintf(why, nwhy, "the event table is full (%d events)", SLOTS);
        pthread_mutex_unlock(&ev->lock);
        return -1;
    }
    memset(e, 0, sizeof(*e));
    e->used = true;
    e->from_api = true;
    e->def = *d;
    e->def.line = 0;
    e->id = el_event_id(&e->def);
    enum el_event_state st = el_event_state(&e->def, &e->run, now);
    if (st == EL_EVENT_PREQUEUE || st == EL_EVENT_DRAINING) /* its pre-queue holds from now, */
        atomic_store_explicit(&ev->hold, true, memory_order_relaxed); /* not the next tick */
    pthread_mutex_unlock(&ev->lock);
    return 0;
}

int el_events_cancel(struct el_events *ev, const char *name)
{
    int64_t now = (int64_t)el_wall_ms();
    pthread_mutex_lock(&ev->lock);
    struct entry *e = by_name(ev, name);
    int rc = -1;
    if (e != NULL && !e->run.cancelled && el_event_state(&e->def, &e->run, now) != EL_EVENT_OVER) {
        e->run.cancelled = true; /* the next tick draws it without a seed */
        rc = 0;
    }
    pthread_mutex_unlock(&ev->lock);
    return rc;
}

static void pre_cb(void *arg, int err, const struct el_pre *p)
{
    struct req *q = arg;
    struct el_events *ev = q->ev;
    pthread_mutex_lock(&ev->lock);
    struct entry *e = by_id(ev, q->id);
    if (e != NULL) {
        e->busy = false;
        if (err == 0 && p != NULL && (p->drawn || !e->run.pre.drawn)) {
            if (p->drawn && !e->run.pre.drawn)
                el_notice("event %s: drawn: %llu in the pre-queue, lane 0 from %llu%s", e->def.name,
                          (unsigned long long)p->n, (unsigned long long)p->base,
                          p->shuffled ? " in a random order" : " in arrival order (cancelled)");
            e->run.pre = *p;
            e->run.known = true;
        }
    }
    pthread_mutex_unlock(&ev->lock);
    free(q);
}

void el_events_tick(struct el_events *ev, struct el_room *room, int64_t now_ms)
{
    struct {
        uint32_t id;
        int op;
        bool seeded;
        int64_t not_before; /* a draw: not before the opening by the store's clock */
    } todo[SLOTS];
    size_t n = 0;
    bool hold = false;
    pthread_mutex_lock(&ev->lock);
    for (size_t i = 0; i < SLOTS; i++) {
        struct entry *e = &ev->slots[i];
        if (!e->used) continue;
        enum el_event_state st = el_event_state(&e->def, &e->run, now_ms);
        if (st == EL_EVENT_PREQUEUE || st == EL_EVENT_DRAINING) hold = true;
        int op = el_event_next_op(&e->def, &e->run, now_ms);
        if (op < 0 || e->busy) continue;
        e->busy = true;
        todo[n].id = e->id;
        todo[n].op = op;
        todo[n].not_before = e->run.cancelled ? 0 : e->def.opens_at_ms;
        todo[n++].seeded = !e->run.cancelled;
    }
    pthread_mutex_unlock(&ev->lock);
    atomic_store_explicit(&ev->hold, hold, memory_order_relaxed);
    /* Outside the lock: the memory store answers before the call returns. */
    for (size_t i = 0; i < n; i++) {
        uint8_t seed[EL_PRE_SEED_LEN];
        bool seeded = todo[i].op == EL_PRE_DRAW && todo[i].seeded;
        if (seeded && RAND_bytes(seed, sizeof(seed)) != 1) {
            el_warn("event: RAND_bytes failed; the draw waits for the next tick");
            struct req *q = el_malloc(sizeof(*q));
            *q = (struct req){ev, todo[i].id};
            pre_cb(q, -1, NULL);
            continue;
        }
        struct req *q = el_malloc(sizeof(*q));
        *q = (struct req){ev, todo[i].id};
        el_room_pre(room, todo[i].id, (enum el_pre_op)todo[i].op, seeded ? seed : NULL,
                    todo[i].not_before, pre_cb, q);
        OPENSSL_cleanse(seed, sizeof(seed));
    }
}

bool el_events_hold_room(const struct el_events *ev)
{
    return ev != NULL && atomic_load_explicit(&ev->hold, memory_order_relaxed);
}

static void view_of(const struct entry *e, int64_t now_ms, struct el_event_view *v)
{
    v->def = e->def;
    v->id = e->id;
    v->run = e->run;
    v->state = el_event_state(&e->def, &e->run, now_ms);
}

int el_events_arrivals(struct el_events *ev, int64_t now_ms, struct el_event_view *v)
{
    const struct entry *best = NULL;
    pthread_mutex_lock(&ev->lock);
    for (size_t i = 0; i < SLOTS; i++) {
        const struct entry *e = &ev->slots[i];
        if (e->used && el_event_takes_arrivals(&e->def, &e->run, now_ms) &&
            (best == NULL || e->def.opens_at_ms < best->def.opens_at_ms))
            best = e;
    }
    if (best) view_of(best, now_ms, v);
    pthread_mutex_unlock(&ev->lock);
    return best ? 0 : -1;
}

int el_events_find(struct el_events *ev, uint32_t id, int64_t now_ms, struct el_event_view *v)
{
    pthread_mutex_lock(&ev->lock);
    const struct entry *e = by_id(ev, id);
    if (e) view_of(e, now_ms, v);
    pthread_mutex_unlock(&ev->lock);
    return e ? 0 : -1;
}

size_t el_events_count(struct el_events *ev)
{
    size_t n = 0;
    pthread_mutex_lock(&ev->lock);
    for (size_t i = 0; i < SLOTS; i++)
        n += ev->slots[i].used;
    pthread_mutex_unlock(&ev->lock);
    return n;
}

int el_events_get(struct el_events *ev, size_t k, int64_t now_ms, struct el_event_view *v)
{
    int rc = -1;
    pthread_mutex_lock(&ev->lock);
    for (size_t i = 0; i < SLOTS; i++)
        if (ev->slots[i].used && k-- == 0) {
            view_of(&ev->slots[i], now_ms, v);
            rc = 0;
            break;
        }
    pthread_mutex_unlock(&ev->lock);
    return rc;
}
