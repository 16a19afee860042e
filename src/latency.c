/* latency.c - Server-Timing parsing and the sliding-window latency histogram.
 *
 * Invariants. A sample of x ms lands in one of EL_BUCKETS log-linear buckets:
 * v = x / 0.01 ms is split by frexp() into an octave (power of two) and one of
 * SUB linear sub-buckets; values below 0.01 ms fall into bucket 0, values
 * above the last octave (~167 s) into the last bucket. A bucket spans at most
 * 1/SUB of its lower edge, so reporting its midpoint is off by at most
 * 1/(2*SUB) = 1.6% (< 2%) for any value in range.
 *
 * Time is cut into slots of SLOT_MS; slot i of the ring holds epoch e (e =
 * now_ms / SLOT_MS) when tag[i] == e + 1 (0 = never used). NSLOTS covers the
 * largest window (60 s) plus slack, so a window of any size up to 60 s can be
 * merged from the slots whose tag says they are recent enough: changing
 * window_ms never loses samples. Memory: NSLOTS * EL_BUCKETS * 4 bytes
 * (~770 KB) per worker, allocated once.
 *
 * Threads. Only the owning worker writes (el_latency_add): it recycles a slot
 * by zeroing its counters and then publishing the new tag with release order;
 * counters are bumped with relaxed load+store (single writer, no RMW needed).
 * Readers (el_latency_merge, any thread) read the tag with acquire order and
 * the counters relaxed. A reader racing with a recycle can only see a
 * half-cleared slot of the oldest epoch of its window or miss the very latest
 * increments: the merge then undercounts a few samples, it never reads out of
 * bounds or blocks, and the next merge (100 ms later) is exact again. This is
 * acceptable for a percentile that steers a controller. */
#include "einlass/latency.h"

#include <math.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>

#include "einlass/common.h"
#include "einlass/http.h"

#define SUB 32                     /* linear sub-buckets per octave */
#define OCTAVES 24                 /* 0.01 ms * 2^24 = ~167 s */
#define EL_BUCKETS (SUB * OCTAVES) /* 768 */
#define UNIT_MS 0.01               /* value of the lower edge of bucket 0 */
#define SLOT_MS 250u               /* width of a time slot */
#define NSLOTS 256u                /* > 60000 / SLOT_MS + 1, power of two */
#define MAX_WINDOW_MS 60000u

struct slot {
    _Atomic uint64_t tag;                 /* epoch + 1 held here; 0 = empty */
    _Atomic uint32_t total;               /* samples in this slot */
    _Atomic uint32_t count[EL_BUCKETS];   /* samples per bucket */
};

struct el_latency {
    struct slot slots[NSLOTS]; /* ring indexed by epoch % NSLOTS */
    _Atomic uint64_t n_total;  /* samples ever added (single writer, relaxed) */
    _Atomic uint64_t us_total; /* their sum in microseconds */
};

struct el_latency *el_latency_new(void)
{
    return el_calloc(1, sizeof(struct el_latency));
}

void el_latency_free(struct el_latency *l)
{
    free(l);
}

static unsigned bucket_of(double ms)
{
    double v = ms / UNIT_MS;
    if (!(v >= 1.0)) return 0; /* also NaN */
    if (!(v < ldexp(1.0, OCTAVES))) return EL_BUCKETS - 1; /* also inf */
    int e;
    double m = frexp(v, &e); /* v = m * 2^e, m in [0.5, 1) */
    unsigned sub = (unsigned)((m * 2.0 - 1.0) * SUB);
    if (sub >= SUB) sub = SUB - 1;
    return (unsigned)(e - 1) * SUB + sub;
}

/* Midpoint of bucket b in ms. */
static double bucket_value(unsigned b)
{
    unsigned oct = b / SUB, sub = b % SUB;
    return ldexp(1.0 + (sub + 0.5) / SUB, (int)oct) * UNIT_MS;
}

static inline void relaxed_inc(_Atomic uint32_t *c)
{
    uint32_t v = atomic_load_explicit(c, memory_order_relaxed);
    atomic_store_explicit(c, v + 1, memory_order_relaxed);
}

void el_latency_add(struct el_latency *l, uint64_t now_ms, double ms)
{
    if (isnan(ms)) return;
    uint64_t epoch = now_ms / SLOT_MS;
    struct slot *s = &l->slots[epoch % NSLOTS];
    uint64_t tag = atomic_load_explicit(&s->tag, memory_order_relaxed);
    if (tag != epoch + 1) {
        if (tag > epoch + 1) return; /* clock went backwards: drop, keep newer data */
        for (unsigned i = 0; i < EL_BUCKETS; i++)
            atomic_store_explicit(&s->count[i], 0, memory_order_relaxed);
        atomic_store_explicit(&s->total, 0, memory_order_relaxed);
        atomic_store_explicit(&s->tag, epoch + 1, memory_order_release);
    }
    relaxed_inc(&s->count[bucket_of(ms)]);
    relaxed_inc(&s->total);
    double us = ms * 1000.0;
    if (!(us >= 0)) us = 0;
    if (us > 1e12) us = 1e12; /* infinite or absurd: count as ~11 days, not as garbage */
    atomic_store_explicit(&l->us_total,
                          atomic_load_explicit(&l->us_total, memory_order_relaxed) + (uint64_t)us,
                          memory_order_relaxed);
    atomic_store_explicit(&l->n_total, atomic_load_explicit(&l->n_total, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

void el_latency_totals(struct el_latency *const *ls, size_t n, uint64_t *count, uint64_t *sum_us)
{
    uint64_t c = 0, u = 0;
    for (size_t i = 0; i < n; i++) {
        if (ls[i] == NULL) continue;
        c += atomic_load_explicit(&ls[i]->n_total, memory_order_relaxed);
        u += atomic_load_explicit(&ls[i]->us_total, memory_order_relaxed);
    }
    *count = c;
    *sum_us = u;
}

static double rank_value(const uint64_t *merged, uint64_t total, double percentile)
{
    if (total == 0) return 0;
    if (!(percentile >= 0)) percentile = 0;
    if (percentile > 100) percentile = 100;
    /* nearest rank: the smallest value with at least p% of samples at or below */
    uint64_t rank = (uint64_t)ceil(percentile / 100.0 * (double)total);
    if (rank < 1) rank = 1;
    if (rank > total) rank = total;
    uint64_t seen = 0;
    for (unsigned b = 0; b < EL_BUCKETS; b++) {
        seen += merged[b];
        if (seen >= rank) return bucket_value(b);
    }
    return bucket_value(EL_BUCKETS - 1);
}

void el_latency_merge(struct el_latency *const *ls, size_t n, uint64_t now_ms, uint32_t window_ms,
                      double percentile, struct el_latency_summary *out)
{
    uint64_t merged[EL_BUCKETS];
    uint64_t total = 0;
    memset(merged, 0, sizeof(merged));
    if (window_ms < 1) window_ms = 1;
    if (window_ms > MAX_WINDOW_MS) window_ms = MAX_WINDOW_MS;

    /* Epochs whose slot overlaps (now - window, now]. */
    uint64_t last = now_ms / SLOT_MS;
    uint64_t first = now_ms >= window_ms ? (now_ms - window_ms + 1) / SLOT_MS : 0;
    for (size_t k = 0; k < n; k++) {
        const struct el_latency *l = ls[k];
        if (!l) continue;
        for (uint64_t e = first; e <= last; e++) {
            const struct slot *s = &l->slots[e % NSLOTS];
            if (atomic_load_explicit(&s->tag, memory_order_acquire) != e + 1) continue;
            if (atomic_load_explicit(&s->total, memory_order_relaxed) == 0) continue;
            for (unsigned b = 0; b < EL_BUCKETS; b++) {
                uint32_t c = atomic_load_explicit(&s->count[b], memory_order_relaxed);
                merged[b] += c;
                total += c;
            }
        }
    }
    out->count = total;
    out->p50 = rank_value(merged, total, 50);
    out->p95 = rank_value(merged, total, 95);
    out->p99 = rank_value(merged, total, 99);
    out->pctl = rank_value(merged, total, percentile);
}

/* ---- Server-Timing ------------------------------------------------------ */

/* After a malformed entry: -1 if the rest of it, [p, end), holds a quoted
 * string that is not closed or holds a control character (the rest of the
 * field is then no use), else 0. */
static int rest_of_entry(const char *p, const char *end)
{
    while (p < end) {
        if (*p != '"') {
            p++;
            continue;
        }
        p = el_http_skip_quoted(p, end, NULL, 0, NULL, NULL);
        if (p == NULL) return -1;
    }
    return 0;
}

/* Strict decimal: 1*DIGIT [ "." *DIGIT ] / "." 1*DIGIT; no sign, no exponent.
 * At most 32 characters, so the result is always finite. */
static bool parse_dur(const char *s, size_t n, double *out)
{
    if (n == 0 || n > 32) return false;
    double v = 0, scale = 1;
    bool dot = false, digit = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') {
            digit = true;
            if (dot) {
                scale /= 10;
                v += (c - '0') * scale;
            } else {
                v = v * 10 + (c - '0');
            }
        } else if (c == '.' && !dot) {
            dot = true;
        } else {
            return false;
        }
    }
    if (!digit) return false;
    *out = v;
    return true;
}

/* One list element: metric *( OWS ";" OWS param ). Returns 1 with *dur
 * when its metric is metric and it has a valid dur, 0 when not, -1 when the
 * rest of the field must be ignored (a broken quoted string). */
static int timing_entry(const char *p, const char *end, const char *metric, size_t metric_len,
                        double *dur_out)
{
    const char *name = p;
    p = el_http_skip_token(p, end);
    bool match = p > name && el_strcaseeq(name, (size_t)(p - name), metric, metric_len);
    bool have_dur = false;
    double dur = 0;
    if (p == name) return rest_of_entry(p, end);
    for (;;) {
        p = el_http_skip_ows(p, end);
        if (p >= end) break;
        if (*p != ';') return rest_of_entry(p, end);
        p = el_http_skip_ows(p + 1, end);
        const char *pn = p;
        p = el_http_skip_token(p, end);
        if (p == pn) return rest_of_entry(p, end);
        bool is_dur = el_strcaseeq(pn, (size_t)(p - pn), "dur", 3);
        const char *q = el_http_skip_ows(p, end);
        if (q >= end || *q != '=') continue; /* name without value */
        p = el_http_skip_ows(q + 1, end);
        char buf[40];
        const char *val = p;
        size_t vlen;
        if (p < end && *p == '"') {
            bool overflow;
            p = el_http_skip_quoted(p, end, buf, sizeof(buf), &vlen, &overflow);
            if (!p) return -1;
            val = overflow ? "" : buf;
            if (overflow) vlen = 0;
        } else {
            p = el_http_skip_token(p, end);
            vlen = (size_t)(p - val);
            if (vlen == 0) return rest_of_entry(p, end);
        }
        if (is_dur && match && !have_dur) {
            if (!parse_dur(val, vlen, &dur)) return rest_of_entry(p, end);
            have_dur = true;
        }
    }
    if (!(match && have_dur)) return 0;
    *dur_out = dur;
    return 1;
}

bool el_server_timing_dur(const char *value, size_t len, const char *metric, size_t metric_len,
                          double *dur_ms)
{
    const char *p = value, *item;
    size_t n;
    while (el_http_next_item(&p, value + len, &item, &n)) {
        if (n == 0) continue; /* empty list element */
        int r = timing_entry(item, item + n, metric, metric_len, dur_ms);
        if (r != 0) return r == 1;
    }
    return false;
}

double el_latency_sample(const struct el_http_msg *resp, const char *metric, double ttfb_ms)
{
    size_t mlen = strlen(metric);
    for (size_t i = 0; i < resp->nheaders; i++) {
        const struct el_http_header *h = &resp->headers[i];
        double d;
        if (el_strcaseeq(h->name, h->name_len, "server-timing", 13) &&
            el_server_timing_dur(h->value, h->value_len, metric, mlen, &d))
            return d;
    }
    return ttfb_ms;
}
