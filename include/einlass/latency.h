/* latency.h - database latency samples: Server-Timing parsing and a
 * sliding-window log-linear histogram. Pure: no I/O, no clock of its own
 * (callers pass now_ms), no allocation after el_latency_new().
 *
 * Each worker owns one struct el_latency and is its only writer; any thread
 * may merge all of them at once (el_latency_merge) without locks: counters
 * are relaxed atomics, so a merge may miss a sample being written, never
 * corrupt one. Relative error of any reported percentile is <= 2%. */
#ifndef EL_LATENCY_H
#define EL_LATENCY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Find the metric named metric (case-insensitive) in one Server-Timing field
 * value (W3C Server Timing: comma-separated metrics, ';'-separated params in
 * any order, token or quoted-string values). Sets *dur_ms to the first dur of
 * the first entry with that name and returns true; false if absent or its dur
 * is malformed. Malformed entries elsewhere in the field are skipped. */
bool el_server_timing_dur(const char *value, size_t len, const char *metric, size_t metric_len,
                          double *dur_ms);

struct el_http_msg;

/* The sample a backend response gives: the dur of the first Server-Timing
 * field carrying metric, else ttfb_ms (the upstream time to first byte). */
double el_latency_sample(const struct el_http_msg *resp, const char *metric, double ttfb_ms);

struct el_latency;

struct el_latency *el_latency_new(void);
void el_latency_free(struct el_latency *l);

/* Record one sample of ms milliseconds at now_ms. Only the owning thread
 * calls this. window_ms may change between calls (reload) without losing the
 * samples already held. */
void el_latency_add(struct el_latency *l, uint64_t now_ms, double ms);

struct el_latency_summary {
    uint64_t count; /* samples in the window */
    double p50;     /* milliseconds; 0 when count == 0 */
    double p95;
    double p99;
    double pctl;    /* the requested percentile */
};

/* Merge the samples of the last window_ms (1..60000) of n histograms and
 * report percentiles; percentile is the one to put in out->pctl (0..100). */
void el_latency_merge(struct el_latency *const *ls, size_t n, uint64_t now_ms, uint32_t window_ms,
                      double percentile, struct el_latency_summary *out);

/* Samples ever added to n histograms and their sum in microseconds, for a
 * per-tick count and mean (the caller subtracts the previous totals). A
 * sample being added may show in one total and not yet in the other. */
void el_latency_totals(struct el_latency *const *ls, size_t n, uint64_t *count, uint64_t *sum_us);

#endif
