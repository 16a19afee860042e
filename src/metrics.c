/* metrics.c - per-worker counters and the backend latency histogram, summed
 * and written out in the Prometheus text format (0.0.4) when /metrics is read.
 *
 * Invariants: each struct el_metrics_worker is written only by its own worker
 * thread, with relaxed atomic adds, so the hot path takes no lock and shares
 * no cache line. Histogram buckets are kept NON-cumulative (a sample adds to
 * exactly one bucket, the last being +Inf); rendering snapshots every bucket
 * once, sums over workers and accumulates, and derives _count from the same
 * snapshot, so _count always equals the +Inf bucket even while workers keep
 * writing. The sum is kept in whole microseconds so it can be an integer
 * atomic. Rendering runs on the main thread and is not a hot path: it may
 * allocate and use evbuffer_add_printf. Numbers never pass through the
 * locale's decimal separator (el_metrics_fmt_num). */
#include "einlass/metrics.h"

#include "einlass/common.h"
#include "einlass/config.h"
#include "einlass/event.h"
#include "einlass/room.h"

#include <event2/buffer.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double el_latency_bucket_le[EL_LATENCY_BUCKETS] = {
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2.5, 5, 10, 30,
};

struct el_metrics_worker el_metrics_workers[EL_MAX_WORKERS];
struct el_metrics_global el_metrics_global;

const struct el_word el_decision_words[] = {
    {"forward", EL_DECISION_FORWARD}, {"wait", EL_DECISION_WAIT},   {"bypass", EL_DECISION_BYPASS},
    {"reject", EL_DECISION_REJECT},   {"error", EL_DECISION_ERROR}, {NULL, 0},
};

const char *el_decision_name(enum el_decision d)
{
    return el_word_name(el_decision_words, (int)d);
}

void el_metrics_observe(int worker, double ms)
{
    if (worker < 0 || worker >= EL_MAX_WORKERS || isnan(ms)) return;
    if (ms < 0) ms = 0;
    double s = ms / 1000.0;
    int i = 0;
    while (i < EL_LATENCY_BUCKETS && s > el_latency_bucket_le[i])
        i++;
    struct el_metrics_worker *w = &el_metrics_workers[worker];
    atomic_fetch_add_explicit(&w->latency_bucket[i], 1, memory_order_relaxed);
    /* Huge values would overflow the microsecond sum: cap one sample at a day. */
    double us = ms > 86400000.0 ? 86400000000.0 : ms * 1000.0;
    atomic_fetch_add_explicit(&w->latency_sum_us, (uint64_t)llround(us), memory_order_relaxed);
}

void el_metrics_observe_queue_wait(int worker, uint64_t us)
{
    if (worker < 0 || worker >= EL_MAX_WORKERS) return;
    double s = (double)us / 1e6;
    int i = 0;
    while (i < EL_LATENCY_BUCKETS && s > el_latency_bucket_le[i])
        i++;
    struct el_metrics_worker *w = &el_metrics_workers[worker];
    atomic_fetch_add_explicit(&w->queue_wait_bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->queue_wait_sum_us, us, memory_order_relaxed);
}

int64_t el_metrics_inflight(void)
{
    int64_t n = 0;
    for (int i = 0; i < EL_MAX_WORKERS; i++)
        n += atomic_load_explicit(&el_metrics_workers[i].inflight, memory_order_relaxed);
    return n;
}

char *el_metrics_fmt_num(char *buf, double v)
{
    if (isnan(v)) {
        strcpy(buf, "NaN");
        return buf;
    }
    if (isinf(v)) {
        strcpy(buf, v > 0 ? "+Inf" : "-Inf");
        return buf;
    }
    if (v == 0) {
        strcpy(buf, "0"); /* also turns -0 into 0 */
        return buf;
    }
    if (v == trunc(v) && fabs(v) < 1e15) {
        snprintf(buf, EL_METRICS_NUM_LEN, "%.0f", v);
        return buf;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, EL_METRICS_NUM_LEN, "%.*g", prec, v);
        if (prec == 17 || strtod(buf, NULL) == v) break;
    }
    /* A locale with a decimal comma would have written one: undo it. */
    for (char *p = buf; *p; p++)
        if (*p == ',') *p = '.';
    return buf;
}

static void header(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_u64(struct evbuffer *out, const char *name, const char *labels, uint64_t v)
{
    evbuffer_add_printf(out, "%s%s %llu\n", name, labels, (unsigned long long)v);
}

static void sample_num(struct evbuffer *out, const char *name, const char *labels, double v)
{
    char num[EL_METRICS_NUM_LEN];
    evbuffer_add_printf(out, "%s%s %s\n", name, labels, el_metrics_fmt_num(num, v));
}

/* One family with a single unlabelled sample. */
static void single_u64(struct evbuffer *out, const char *name, const char *type, const char *help,
                       uint64_t v)
{
    header(out, name, type, help);
    sample_u64(out, name, "", v);
}

static void single_num(struct evbuffer *out, const char *name, const char *type, const char *help,
                       double v)
{
    header(out, name, type, help);
    sample_num(out, name, "", v);
}

/* Label values come from fixed strings or the status; keep the text format
 * valid whatever they hold. */
static void label_value(char *dst, size_t len, const char *s)
{
    size_t o = 0;
    for (; s != NULL && *s != '\0' && o + 3 < len; s++) {
        if (*s == '"' || *s == '\\') dst[o++] = '\\';
        if (*s == '\n') {
            dst[o++] = '\\';
            dst[o++] = 'n';
            continue;
        }
        dst[o++] = *s;
    }
    dst[o] = '\0';
}

/* A histogram summed over the workers' blocks: the buckets and the
 * microsecond sum at these offsets in struct el_metrics_worker. */
static void render_histogram(struct evbuffer *out, const char *name, const char *help,
                             size_t bucket_off, size_t sum_off)
{
    uint64_t buckets[EL_LATENCY_BUCKETS + 1] = {0};
    uint64_t sum_us = 0;
    for (int w = 0; w < EL_MAX_WORKERS; w++) {
        const char *mw = (const char *)&el_metrics_workers[w];
        const _Atomic uint64_t *b = (const _Atomic uint64_t *)(const void *)(mw + bucket_off);
        for (int i = 0; i <= EL_LATENCY_BUCKETS; i++)
            buckets[i] += atomic_load_explicit(&b[i], memory_order_relaxed);
        sum_us += atomic_load_explicit((const _Atomic uint64_t *)(const void *)(mw + sum_off),
                                       memory_order_relaxed);
    }
    header(out, name, "histogram", help);
    uint64_t cum = 0;
    char num[EL_METRICS_NUM_LEN];
    for (int i = 0; i < EL_LATENCY_BUCKETS; i++) {
        cum += buckets[i];
        evbuffer_add_printf(out, "%s_bucket{le=\"%s\"} %llu\n", name,
                            el_metrics_fmt_num(num, el_latency_bucket_le[i]),
                            (unsigned long long)cum);
    }
    cum += buckets[EL_LATENCY_BUCKETS];
    evbuffer_add_printf(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    evbuffer_add_printf(out, "%s_sum %s\n", name, el_metrics_fmt_num(num, (double)sum_us / 1e6));
    evbuffer_add_printf(out, "%s_count %llu\n", name, (unsigned long long)cum);
}

void el_metrics_render(struct evbuffer *out, const struct el_status *st)
{
    struct el_status none = {.store = el_store_state_name(EL_STORE_STATE_MEMORY),
                             .inflight = el_metrics_inflight()};
    if (st == NULL) st = &none;
    char lv[128];

    header(out, "einlass_build_info", "gauge", "Always 1; the version is in the label.");
    label_value(lv, sizeof(lv), EL_VERSION);
    evbuffer_add_printf(out, "einlass_build_info{version=\"%s\"} 1\n", lv);

    uint64_t req[EL_DECISION__COUNT] = {0};
    uint64_t conns = 0, refused = 0, tunnels_total = 0;
    int64_t tunnels = 0;
    for (int w = 0; w < EL_MAX_WORKERS; w++) {
        refused += atomic_load_explicit(&el_metrics_workers[w].joins_refused, memory_order_relaxed);
        for (int d = 0; d < EL_DECISION__COUNT; d++)
            req[d] +=
                atomic_load_explicit(&el_metrics_workers[w].requests[d], memory_order_relaxed);
        conns += atomic_load_explicit(&el_metrics_workers[w].connections, memory_order_relaxed);
        tunnels += atomic_load_explicit(&el_metrics_workers[w].tunnels, memory_order_relaxed);
        tunnels_total +=
            atomic_load_explicit(&el_metrics_workers[w].tunnels_total, memory_order_relaxed);
    }
    header(out, "einlass_requests_total", "counter", "Client requests by what einlass decided.");
    for (int d = 0; d < EL_DECISION__COUNT; d++) {
        char labels[64];
        snprintf(labels, sizeof(labels), "{decision=\"%s\"}", el_decision_name(d));
        sample_u64(out, "einlass_requests_total", labels, req[d]);
    }
    single_u64(out, "einlass_connections", "gauge", "Client connections open.", conns);
    single_u64(out, "einlass_tunnels", "gauge", "WebSocket tunnels open (after a 101).",
               tunnels > 0 ? (uint64_t)tunnels : 0);
    single_u64(out, "einlass_tunnels_total", "counter", "WebSocket tunnels opened.",
               tunnels_total);

    /* The room's figures: with several rooms, one sample per room (label
     * room="NAME"); with one, an unlabelled sample. */
    struct el_room_status one = {.name = NULL, .mode = st->mode, .queueing = st->queueing,
                                 .paused = st->paused, .waiting = st->waiting,
                                 .admitted_total = st->admitted_total,
                                 .unclaimed_total = st->unclaimed_total,
                                 .places_kept_total = st->places_kept_total,
                                 .admit_per_s = st->admit_per_s};
    /* One room: unlabelled samples, as before rooms had names. */
    if (st->nrooms == 1) one = st->rooms[0], one.name = NULL;
    const struct el_room_status *rooms = st->nrooms > 1 ? st->rooms : &one;
    size_t nrooms = st->nrooms > 1 ? st->nrooms : 1;
    char rl[EL_MAX_ROOMS][sizeof(lv) + 16]; /* {room="NAME"}, or "" for a status that names none */
    for (size_t i = 0; i < nrooms; i++) {
        rl[i][0] = '\0';
        if (rooms[i].name == NULL) continue;
        label_value(lv, sizeof(lv), rooms[i].name);
        snprintf(rl[i], sizeof(rl[i]), "{room=\"%s\"}", lv);
    }
    header(out, "einlass_mode", "gauge", "The room's mode: 1 for the mode in force, 0 otherwise.");
    for (size_t i = 0; i < nrooms; i++)
        for (int m = EL_MODE_AUTO; m <= EL_MODE_OFF; m++) {
            char labels[sizeof(lv) + 40];
            if (rooms[i].name != NULL) {
                label_value(lv, sizeof(lv), rooms[i].name);
                snprintf(labels, sizeof(labels), "{room=\"%s\",mode=\"%s\"}", lv,
                         el_mode_name(m));
            } else {
                snprintf(labels, sizeof(labels), "{mode=\"%s\"}", el_mode_name(m));
            }
            sample_u64(out, "einlass_mode", labels, rooms[i].mode == m ? 1 : 0);
        }
#define PER_ROOM(name, type, help, field)                                                          \
    header(out, name, type, help);                                                                 \
    for (size_t i = 0; i < nrooms; i++)                                                            \
        sample_num(out, name, rl[i], (double)(rooms[i].field))
    PER_ROOM("einlass_queueing", "gauge", "1 while the room queues newcomers.", queueing);
    PER_ROOM("einlass_paused", "gauge", "1 while paused (POST /pause): nobody new is admitted.",
             paused);
    PER_ROOM("einlass_waiting", "gauge", "Live waiting tickets.", waiting);
    PER_ROOM("einlass_admitted_total", "counter", "Tickets exchanged for passes.", admitted_total);
    PER_ROOM("einlass_admissions_unclaimed_total", "counter",
             "Admissions held claim_s for a patient who did not come back: returned as credit.",
             unclaimed_total);
    PER_ROOM("einlass_places_kept_total", "counter",
             "Admissions claimed by a patient who was away when their turn came.",
             places_kept_total);
    PER_ROOM("einlass_admit_per_second", "gauge", "Current admission rate.", admit_per_s);
#undef PER_ROOM
    single_u64(out, "einlass_joins_refused_total", "counter",
               "Joins refused by max_joins_per_ip_per_min (429, no place).", refused);
    single_u64(out, "einlass_room_state_changes_total", "counter",
               "Times the room started or stopped queueing.",
               atomic_load_explicit(&el_metrics_global.room_state_changes, memory_order_relaxed));
    single_num(out, "einlass_inflight", "gauge", "Backend requests in flight.",
               (double)st->inflight);

    render_histogram(out, "einlass_backend_latency_seconds",
                     "Backend latency (Server-Timing metric or time to first byte).",
                     offsetof(struct el_metrics_worker, latency_bucket),
                     offsetof(struct el_metrics_worker, latency_sum_us));

    single_num(out, "einlass_backend_limit", "gauge",
               "Backend admission limit: requests in flight at most (0 = unlimited).",
               (double)st->backend.limit);
    single_num(out, "einlass_backend_inflight", "gauge",
               "Requests holding a slot of the backend limit.", (double)st->backend.inflight);
    single_num(out, "einlass_backend_queue", "gauge",
               "Requests waiting in einlass for a backend slot.", (double)st->backend.queued);
    single_u64(out, "einlass_backend_queued_total", "counter",
               "Requests that had to wait for a backend slot.", st->backend.queued_total);
    single_u64(out, "einlass_backend_queue_timeouts_total", "counter",
               "Waits for a backend slot that ran past queue_timeout_ms.",
               st->backend.timeouts_total);
    render_histogram(out, "einlass_backend_queue_wait_seconds",
                     "Time requests waited for a backend slot (those that got one).",
                     offsetof(struct el_metrics_worker, queue_wait_bucket),
                     offsetof(struct el_metrics_worker, queue_wait_sum_us));

    /* A gauge per percentile, not a summary: the window slides and forgets,
     * so it has no _sum or _count, and a gauge may not carry "quantile". */
    header(out, "einlass_backend_latency_window_seconds", "gauge",
           "Backend latency percentiles over the trigger's sliding window.");
    sample_num(out, "einlass_backend_latency_window_seconds", "{percentile=\"50\"}",
               st->p50_ms / 1000.0);
    sample_num(out, "einlass_backend_latency_window_seconds", "{percentile=\"95\"}",
               st->p95_ms / 1000.0);
    sample_num(out, "einlass_backend_latency_window_seconds", "{percentile=\"99\"}",
               st->p99_ms / 1000.0);
    single_u64(out, "einlass_backend_latency_window_samples", "gauge",
               "Latency samples in the sliding window.", st->samples);

    single_u64(out, "einlass_store_up", "gauge", "1 while the configured store answers.",
               st->store_up ? 1 : 0);
    header(out, "einlass_store_info", "gauge", "Always 1; the store in use is in the label.");
    label_value(lv, sizeof(lv),
                st->store != NULL ? st->store : el_store_state_name(EL_STORE_STATE_MEMORY));
    evbuffer_add_printf(out, "einlass_store_info{store=\"%s\"} 1\n", lv);
    static const char *const store_states[] = {"memory", "redis", "fallback", "auth_failed",
                                               "down"};
    const char *now = st->store_state != NULL ? st->store_state
                      : st->store != NULL     ? st->store
                                              : "memory";
    header(out, "einlass_store_state", "gauge",
           "1 for the store's state now: memory, redis, or in fallback why (auth_failed: AUTH "
           "refused, down: not connected, fallback: connected but unusable).");
    for (size_t i = 0; i < EL_ARRAY_LEN(store_states); i++)
        evbuffer_add_printf(out, "einlass_store_state{state=\"%s\"} %d\n", store_states[i],
                            strcmp(now, store_states[i]) == 0);
    single_num(out, "einlass_store_fallback_seconds_total", "counter",
               "Seconds the room spent in the local fallback while store = redis.",
               st->store_fallback_s);
    header(out, "einlass_store_errors_total", "counter",
           "Store ops Redis answered with an error (out of memory, ticket numbers at 2^53, a "
           "malformed answer), by op; each is logged. A failed join waits in the local queue.");
    for (int i = 0; i < EL_STORE_OP_COUNT; i++)
        evbuffer_add_printf(out, "einlass_store_errors_total{op=\"%s\"} %llu\n",
                            el_store_op_names[i], (unsigned long long)st->store_errors[i]);

    header(out, "einlass_event_prequeue", "gauge",
           "Arrivals in a scheduled opening's pre-queue (frozen once drawn at the opening), by "
           "event.");
    int64_t now_ms = (int64_t)el_wall_ms();
    for (unsigned t = 0; t < st->nevents; t++) { /* each room's events (names are unique) */
        size_t nev = st->events[t] ? el_events_count(st->events[t]) : 0;
        for (size_t i = 0; i < nev; i++) {
            struct el_event_view v;
            if (el_events_get(st->events[t], i, now_ms, &v) == -1) break;
            evbuffer_add_printf(out, "einlass_event_prequeue{event=\"%s\"} %llu\n", v.def.name,
                                (unsigned long long)v.run.pre.n);
        }
    }

    header(out, "einlass_config_reloads_total", "counter", "Configuration reloads by result.");
    sample_u64(out, "einlass_config_reloads_total", "{result=\"ok\"}",
               atomic_load_explicit(&el_metrics_global.reloads_ok, memory_order_relaxed));
    sample_u64(out, "einlass_config_reloads_total", "{result=\"failed\"}",
               atomic_load_explicit(&el_metrics_global.reloads_failed, memory_order_relaxed));
}
