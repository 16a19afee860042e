/* redis_memory.c - join N tickets into a room through the real Redis store
 * (its join script), keeping a window of joins in flight. Used by
 * redis_memory.sh, which reads Redis's INFO memory around it.
 * Usage: redis_memory HOST:PORT ROOM N */
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include "einlass/common.h"
#include "einlass/store.h"

#define WINDOW 4096

struct run {
    struct el_store *s;  /* the Redis store */
    uint64_t sent;       /* joins issued */
    uint64_t answered;   /* joins answered */
    uint64_t failed;     /* answered with err */
    uint64_t n;          /* joins wanted */
    struct event_base *base; /* to stop */
};

static void on_join(void *arg, int err, const struct el_place *p)
{
    struct run *r = arg;
    r->answered++;
    if (err) r->failed++;
    if (r->sent < r->n) {
        r->sent++;
        r->s->ops->join(r->s, 0, 0, on_join, r);
    } else if (r->answered == r->n) {
        event_base_loopbreak(r->base);
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s HOST:PORT ROOM N\n", argv[0]);
        return 2;
    }
    struct run r = {.n = strtoull(argv[3], NULL, 10)};
    r.base = event_base_new();
    struct el_store_params p = {.room = argv[2], .poll_s = 3600, .redis = argv[1], .timeout_ms = 30000};
    r.s = el_store_redis_new(r.base, &p);
    while (!el_store_redis_up(r.s)) event_base_loop(r.base, EVLOOP_ONCE);
    uint64_t t0 = el_now_ms();
    for (; r.sent < r.n && r.sent < WINDOW; r.sent++) r.s->ops->join(r.s, 0, 0, on_join, &r);
    if (r.n > 0) event_base_dispatch(r.base);
    uint64_t ms = el_now_ms() - t0;
    printf("%llu joins in %llu ms (%.0f/s), %llu failed\n", (unsigned long long)r.answered,
           (unsigned long long)ms, ms ? (double)r.answered * 1000.0 / (double)ms : 0.0,
           (unsigned long long)r.failed);
    r.s->ops->free(r.s);
    event_base_free(r.base);
    return r.failed ? 1 : 0;
}
