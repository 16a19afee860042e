/* fuzz_timing.c - libFuzzer target for the Server-Timing field parser.
 * Besides memory errors it checks the parser's promises:
 *  - a dur it returns is finite and >= 0;
 *  - the metric name is case-insensitive ("db" and "DB" agree);
 *  - entries before or after the found one do not change it: a well-formed
 *    entry put in front, or another "db" entry appended, leaves the first
 *    dur as it was, and a field without "db" that gains a well-formed "db"
 *    entry at the end reports that dur or nothing (the tail may still sit
 *    inside an unterminated quoted-string);
 *  - the value is read only within len (the input is not NUL-terminated).
 *
 * Input: the field value, as it comes from the backend. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "einlass/latency.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char prefix[] = "cache;desc=\"x, db;dur=9\";dur=1, ";
static const char suffix[] = ", db;dur=7";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *v = (const char *)data;
    double dur = -1, again = -1;
    bool found = el_server_timing_dur(v, size, "db", 2, &dur);
    if (found && (!isfinite(dur) || dur < 0)) abort();
    if (el_server_timing_dur(v, size, "DB", 2, &again) != found) abort();
    if (found && again != dur) abort();
    if (size > 4096) return 0;

    char *buf = malloc(sizeof(prefix) + size + sizeof(suffix));
    /* prefix + value */
    size_t n = sizeof(prefix) - 1;
    memcpy(buf, prefix, n);
    memcpy(buf + n, v, size);
    n += size;
    again = -1;
    if (el_server_timing_dur(buf, n, "db", 2, &again) != found) abort();
    if (found && again != dur) abort();
    /* value + suffix */
    memcpy(buf, v, size);
    memcpy(buf + size, suffix, sizeof(suffix) - 1);
    n = size + sizeof(suffix) - 1;
    again = -1;
    bool f2 = el_server_timing_dur(buf, n, "db", 2, &again);
    if (found && (!f2 || again != dur)) abort();
    if (!found && f2 && again != 7) abort();
    free(buf);
    return 0;
}
