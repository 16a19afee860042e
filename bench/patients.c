/*
 * bench/patients.c - the patient simulator of the rush experiment (bench/rush).
 *
 * Open-loop arrivals (constant, Poisson, or the spike profile) of patients
 * who each follow the waiting-room protocol with their own cookie jar and
 * their own keep-alive connection:
 *
 *   1. GET / (Accept: application/json).
 *   2. A waiting answer (503 with an einlass_ticket cookie or a JSON body
 *      with "state":"waiting") puts the patient in the room: it waits
 *      Retry-After seconds and polls GET /_einlass/status until the answer
 *      is "admitted" or "open", then sends GET / again. A patient who waits
 *      longer than --patience-s leaves.
 *   3. Once a page came back 2xx the patient is in (admitted): --requests
 *      requests in all, --think-ms apart (think time after each answer), the
 *      last one a booking (POST /book); after the booking a fraction
 *      --cancel-frac cancels it (POST /appointments/<id>/cancel).
 *   Any other answer (an error status, a refused or timed-out connection)
 *   ends the patient: before admission it was turned away, after it the
 *   booking broke midway.
 *
 * The simulator measures itself: every arrival, request and poll has a
 * scheduled start, and the lag (actual - scheduled) is recorded; the
 * summary flags the run ("behind": true) when the p99 lag exceeds
 * --max-lag-ms or an arrival could not start (no descriptor, no memory).
 *
 * Output in --out DIR:
 *   patients.csv  id,arrival,first_place_t,first_position,first_eta_s,admitted,
 *                 done,outcome,requests_ok,booked,cancelled,turn
 *   requests.csv  patient,kind,sched,start,end,status,position,eta_s,eta_low_s,
 *                 eta_high_s
 *   summary.json  counts, lag percentiles, the flag, the ETA's error
 * Times are seconds since the run's start (t0_unix in summary.json); -1 = never.
 * Kinds: first (the first GET), page, book, cancel, poll.
 *
 * The ETA's error: every waiting answer promises eta_s (and the range
 * eta_low_s..eta_high_s) at the time it came back. For the patients whose
 * turn came (turn: the poll that answered "admitted"; the first page may take
 * the portal's time after it), actual = turn - that time, and the error of
 * the promise is
 * |eta_s - actual| / actual; only promises with actual >= --eta-min-s (the
 * poll interval, 5 s) count: nearer the door a patient learns of its turn
 * only at its next poll, and a 1 s miss of a 2 s wait is no broken promise.
 * "in range": eta_low_s <= actual <= eta_high_s. Patients never admitted
 * (gave up, unfinished) have no actual and do not count.
 *
 * Invariants: one thread, one event loop; a patient has at most one request
 * in flight and at most one timer pending; records are appended in memory
 * and written once at the end.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

enum kind { K_FIRST, K_PAGE, K_BOOK, K_CANCEL, K_POLL };
static const char *const kind_name[] = {"first", "page", "book", "cancel", "poll"};

enum outcome { O_ACTIVE, O_DONE, O_TURNED_AWAY, O_GAVE_UP, O_BROKEN, O_UNFINISHED };
static const char *const outcome_name[] = {"active", "done", "turned_away", "gave_up",
                                           "broken", "unfinished"};

struct patient {
    int id;                       /* index in the arrival schedule */
    double arrival_sched;         /* when it was due to arrive */
    double arrival;               /* when it did, -1 before */
    double first_place_t;         /* first waiting answer, -1 if none */
    int first_position;           /* the position that answer showed */
    double first_eta;             /* and its ETA */
    double admitted;              /* first 2xx page, -1 if never */
    double turn;                  /* the answer that ended the wait, -1 if none */
    double done;                  /* when it ended */
    enum outcome outcome;         /* how it ended */
    int requests_ok;              /* 2xx answers after admission */
    int booked, cancelled;        /* 1 once the booking / cancellation succeeded */
    int next_req;                 /* requests sent since admission */
    int waiting;                  /* in the room */
    char ticket[512];             /* einlass_ticket cookie value */
    char pass[512];               /* einlass_pass cookie value */
    char appt[64];                /* X-Appointment of the booking */
    struct evhttp_connection *conn; /* keep-alive connection, lazily opened */
    struct event *timer;          /* the next scheduled step */
    enum kind pending;            /* what the timer or the request in flight is */
    double sched;                 /* when that step was due */
    double start;                 /* when its request went out */
};

struct rec {
    int patient;
    enum kind kind;
    double sched, start, end;
    int status;
    int position;
    double eta, eta_low, eta_high; /* the promise of a waiting answer, -1 if none */
};

static struct event_base *base;
static const char *host = "127.0.0.1";
static int port;
static double duration = 10, rate = 10, drain_s = 10, patience_s = 600;
static int nreq = 8;
static double think_ms = 500, cancel_frac = 0.1, req_timeout_s = 60, max_lag_ms = 50;
static double eta_min_s = 5;
static const char *profile = "constant";
static double spike_quiet_s = -1, spike_peak_s = -1, spike_factor = 10, spike_base = 0.2;
static unsigned int seed = 1;
static const char *outdir = ".";

static struct patient *pts;
static int npts, started, active;
static int skipped;
static struct rec *recs;
static size_t nrecs, caprecs;
static double *lags;
static size_t nlags, caplags;
static struct timespec t0ts;
static double t0_unix;
static struct event *arrival_ev, *end_ev;
static int next_arrival;
static int ending;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)(ts.tv_sec - t0ts.tv_sec) + (double)(ts.tv_nsec - t0ts.tv_nsec) / 1e9;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p) {
        fputs("patients: out of memory\n", stderr);
        abort();
    }
    return p;
}

static double urand(void)
{
    return ((double)rand_r(&seed) + 1.0) / ((double)RAND_MAX + 2.0);
}

static void lag(double sched, double actual)
{
    if (nlags == caplags) {
        caplags = caplags ? caplags * 2 : 4096;
        lags = xrealloc(lags, caplags * sizeof *lags);
    }
    lags[nlags++] = (actual - sched) * 1000.0;
}

static void add_rec(struct patient *p, enum kind k, int status, int position, double eta,
                    double eta_low, double eta_high)
{
    if (nrecs == caprecs) {
        caprecs = caprecs ? caprecs * 2 : 16384;
        recs = xrealloc(recs, caprecs * sizeof *recs);
    }
    recs[nrecs++] = (struct rec){p->id, k, p->sched, p->start, now(), status, position, eta,
                                 eta_low, eta_high};
}

static struct timeval tv_of(double s)
{
    if (s < 0)
        s = 0;
    struct timeval tv = {(time_t)s, (suseconds_t)((s - floor(s)) * 1e6)};
    return tv;
}

/* ---- the spike profile: rate(t) in patients/s ---- */
static double rate_at(double t)
{
    if (strcmp(profile, "spike") != 0)
        return rate;
    double quiet = spike_quiet_s, peak = spike_peak_s;
    double decay = duration - quiet - peak;
    if (t < quiet)
        return rate * spike_base;
    if (t < quiet + peak)
        return rate * spike_factor;
    /* exponential decay from the peak back to the quiet rate */
    double tau = decay > 0 ? decay / 4 : 1;
    return rate * (spike_base + (spike_factor - spike_base) * exp(-(t - quiet - peak) / tau));
}

static void build_schedule(void)
{
    size_t cap = 1024;
    double *ts = xrealloc(NULL, cap * sizeof *ts);
    size_t n = 0;
    double t = 0;
    if (strcmp(profile, "constant") == 0) {
        for (t = 0; t < duration; t = (double)n / rate) {
            if (n == cap)
                ts = xrealloc(ts, (cap *= 2) * sizeof *ts);
            ts[n++] = t;
        }
    } else {
        double rmax = strcmp(profile, "spike") == 0 ? rate * fmax(spike_factor, spike_base) : rate;
        for (;;) { /* Poisson by thinning */
            t += -log(urand()) / rmax;
            if (t >= duration)
                break;
            if (urand() * rmax > rate_at(t))
                continue;
            if (n == cap)
                ts = xrealloc(ts, (cap *= 2) * sizeof *ts);
            ts[n++] = t;
        }
    }
    npts = (int)n;
    pts = xrealloc(NULL, (n ? n : 1) * sizeof *pts);
    memset(pts, 0, (n ? n : 1) * sizeof *pts);
    for (size_t i = 0; i < n; i++) {
        struct patient *p = &pts[i];
        p->id = (int)i;
        p->arrival_sched = ts[i];
        p->arrival = p->first_place_t = p->first_eta = p->admitted = p->turn = p->done = -1;
        p->first_position = -1;
    }
    free(ts);
}

/* ---- cookies ---- */
static void take_cookie(struct patient *p, const char *v)
{
    const char *names[] = {"einlass_ticket=", "einlass_pass="};
    char *dst[] = {p->ticket, p->pass};
    for (int i = 0; i < 2; i++) {
        size_t n = strlen(names[i]);
        if (strncmp(v, names[i], n) != 0)
            continue;
        v += n;
        size_t len = strcspn(v, ";");
        if (len >= sizeof p->ticket)
            len = 0; /* too long for the jar: drop it */
        memcpy(dst[i], v, len);
        dst[i][len] = 0;
        /* an expiry in the past (Max-Age=0) clears the cookie */
        if (strstr(v, "Max-Age=0") || strstr(v, "max-age=0"))
            dst[i][0] = 0;
    }
}

static void step(struct patient *p);
static void schedule(struct patient *p, enum kind k, double delay);

static void free_conn(evutil_socket_t fd, short what, void *arg)
{
    evhttp_connection_free(arg);
}

/* The connection is freed from the loop, not here: finish() runs inside the
 * connection's own callbacks. */
static void finish(struct patient *p, enum outcome o)
{
    p->outcome = o;
    p->done = now();
    p->waiting = 0;
    active--;
    if (p->conn) {
        struct timeval zero = {0, 0};
        event_base_once(base, -1, EV_TIMEOUT, free_conn, p->conn, &zero);
        p->conn = NULL;
    }
}

/* A number after "key": in a small JSON body, or def. */
static double json_num(const char *body, const char *key, double def)
{
    const char *s = strstr(body, key);
    if (!s)
        return def;
    s += strlen(key);
    while (*s == '"' || *s == ':' || *s == ' ')
        s++;
    char *end;
    double v = strtod(s, &end);
    return end == s ? def : v;
}

static void on_answer(struct evhttp_request *req, void *arg)
{
    struct patient *p = arg;
    int status = req ? evhttp_request_get_response_code(req) : 0;
    char body[1024] = "";
    int retry = 5;
    if (req && status) {
        struct evkeyvalq *h = evhttp_request_get_input_headers(req);
        for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next) {
            if (strcasecmp(kv->key, "Set-Cookie") == 0)
                take_cookie(p, kv->value);
            else if (strcasecmp(kv->key, "Retry-After") == 0)
                retry = atoi(kv->value);
            else if (strcasecmp(kv->key, "X-Appointment") == 0)
                snprintf(p->appt, sizeof p->appt, "%s", kv->value);
        }
        struct evbuffer *b = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(b);
        if (n >= sizeof body)
            n = sizeof body - 1;
        evbuffer_copyout(b, body, n);
        body[n] = 0;
    }
    if (ending)
        return;
    enum kind k = p->pending;
    int waiting_answer = strstr(body, "\"state\":\"waiting\"") != NULL ||
                         strstr(body, "\"state\": \"waiting\"") != NULL;
    int position = waiting_answer ? (int)json_num(body, "\"position\"", -1) : -1;
    double eta = waiting_answer ? json_num(body, "\"eta_s\"", -1) : -1;
    double eta_low = waiting_answer ? json_num(body, "\"eta_low_s\"", -1) : -1;
    double eta_high = waiting_answer ? json_num(body, "\"eta_high_s\"", -1) : -1;
    add_rec(p, k, status, position, eta, eta_low, eta_high);
    if (retry < 1)
        retry = 1;

    if (k == K_POLL) {
        if (status == 200 && waiting_answer) {
            schedule(p, K_POLL, retry);
        } else if (status == 200 && (strstr(body, "admitted") || strstr(body, "open"))) {
            p->waiting = 0;
            if (p->turn < 0)
                p->turn = now();
            schedule(p, K_FIRST, 0);
        } else if (p->admitted < 0) {
            finish(p, O_TURNED_AWAY);
        } else {
            finish(p, O_BROKEN);
        }
        return;
    }
    if (waiting_answer || (status == 503 && p->ticket[0] && p->admitted < 0)) {
        if (p->first_place_t < 0) {
            p->first_place_t = now();
            p->first_position = position;
            p->first_eta = eta;
        }
        if (p->admitted >= 0) { /* sent back to the room after admission */
            finish(p, O_BROKEN);
            return;
        }
        p->waiting = 1;
        schedule(p, K_POLL, retry);
        return;
    }
    if (status < 200 || status > 299) {
        finish(p, p->admitted < 0 ? O_TURNED_AWAY : O_BROKEN);
        return;
    }
    if (p->admitted < 0)
        p->admitted = now();
    p->requests_ok++;
    if (k == K_BOOK)
        p->booked = 1;
    if (k == K_CANCEL) {
        p->cancelled = 1;
        finish(p, O_DONE);
        return;
    }
    if (k == K_BOOK) {
        if (p->appt[0] && urand() < cancel_frac)
            schedule(p, K_CANCEL, think_ms / 1000.0);
        else
            finish(p, O_DONE);
        return;
    }
    schedule(p, p->next_req + 1 >= nreq ? K_BOOK : K_PAGE, think_ms / 1000.0);
}

static void send_request(struct patient *p)
{
    if (!p->conn) {
        p->conn = evhttp_connection_base_new(base, NULL, host, (unsigned short)port);
        if (!p->conn) {
            skipped++;
            finish(p, O_TURNED_AWAY);
            return;
        }
        evhttp_connection_set_timeout(p->conn, (int)req_timeout_s);
        evhttp_connection_set_retries(p->conn, 0);
    }
    struct evhttp_request *req = evhttp_request_new(on_answer, p);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char hostport[64], cookie[1100] = "";
    snprintf(hostport, sizeof hostport, "%s:%d", host, port);
    evhttp_add_header(h, "Host", hostport);
    evhttp_add_header(h, "Accept", "application/json");
    evhttp_add_header(h, "User-Agent", "einlass-bench-patient");
    if (p->ticket[0] && p->pass[0])
        snprintf(cookie, sizeof cookie, "einlass_ticket=%s; einlass_pass=%s", p->ticket, p->pass);
    else if (p->ticket[0])
        snprintf(cookie, sizeof cookie, "einlass_ticket=%s", p->ticket);
    else if (p->pass[0])
        snprintf(cookie, sizeof cookie, "einlass_pass=%s", p->pass);
    if (cookie[0])
        evhttp_add_header(h, "Cookie", cookie);
    enum evhttp_cmd_type cmd = EVHTTP_REQ_GET;
    char uri[128] = "/";
    switch (p->pending) {
    case K_FIRST:
    case K_PAGE:
        break;
    case K_POLL:
        strcpy(uri, "/_einlass/status");
        break;
    case K_BOOK: {
        cmd = EVHTTP_REQ_POST;
        strcpy(uri, "/book");
        char form[64];
        snprintf(form, sizeof form, "slot=%d&name=patient%d", p->id % 1000, p->id);
        evhttp_add_header(h, "Content-Type", "application/x-www-form-urlencoded");
        evbuffer_add(evhttp_request_get_output_buffer(req), form, strlen(form));
        break;
    }
    case K_CANCEL:
        cmd = EVHTTP_REQ_POST;
        snprintf(uri, sizeof uri, "/appointments/%s/cancel", p->appt);
        evhttp_add_header(h, "Content-Length", "0");
        break;
    }
    if (p->pending == K_FIRST || p->pending == K_PAGE || p->pending == K_BOOK)
        p->next_req++;
    p->start = now();
    if (evhttp_make_request(p->conn, req, cmd, uri) == -1) {
        add_rec(p, p->pending, 0, -1, -1, -1, -1);
        finish(p, p->admitted < 0 ? O_TURNED_AWAY : O_BROKEN);
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct patient *p = arg;
    if (ending)
        return;
    lag(p->sched, now());
    step(p);
}

static void step(struct patient *p)
{
    if (p->waiting && p->pending == K_POLL && now() - p->arrival > patience_s) {
        finish(p, O_GAVE_UP);
        return;
    }
    send_request(p);
}

static void schedule(struct patient *p, enum kind k, double delay)
{
    p->pending = k;
    p->sched = now() + delay;
    if (k == K_FIRST) /* after admission: the same page again, at once */
        p->next_req = 0;
    if (delay <= 0) {
        p->start = p->sched;
        step(p);
        return;
    }
    struct timeval tv = tv_of(delay);
    evtimer_add(p->timer, &tv);
}

static void on_arrival(evutil_socket_t fd, short what, void *arg)
{
    double t = now();
    while (next_arrival < npts && pts[next_arrival].arrival_sched <= t) {
        struct patient *p = &pts[next_arrival++];
        lag(p->arrival_sched, t);
        p->arrival = t;
        p->timer = evtimer_new(base, on_timer, p);
        if (!p->timer) {
            skipped++;
            p->outcome = O_TURNED_AWAY;
            continue;
        }
        started++;
        active++;
        p->pending = K_FIRST;
        p->sched = p->arrival_sched;
        send_request(p);
    }
    if (next_arrival < npts) {
        struct timeval tv = tv_of(pts[next_arrival].arrival_sched - now());
        evtimer_add(arrival_ev, &tv);
    }
}

static void on_end(evutil_socket_t fd, short what, void *arg)
{
    if (next_arrival >= npts && active == 0) {
        event_base_loopbreak(base);
        return;
    }
    if (now() >= duration + drain_s) {
        event_base_loopbreak(base);
        return;
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    event_base_loopbreak(base);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)n);
    return v[i < n ? i : n - 1];
}

/* The ETA's error over every promise to a patient later admitted with at
 * least eta_min_s to go (see the head of this file). late_p50: the median of
 * (actual - eta_s) / actual, signed (> 0: the wait was longer than promised). */
struct eta_err {
    size_t n, short_n, long_n; /* promises counted, too near the door, of a minute or more */
    double p50, p90, in_range, late_p50;
    double in_range_long; /* the share in range among the long_n ("less than a minute"
                             is 0..60 s: nearly always right in a short run) */
};

static struct eta_err eta_error(void)
{
    struct eta_err e = {0};
    double *err = xrealloc(NULL, (nrecs ? nrecs : 1) * sizeof *err);
    double *late = xrealloc(NULL, (nrecs ? nrecs : 1) * sizeof *late);
    size_t inside = 0, inside_long = 0;
    for (size_t i = 0; i < nrecs; i++) {
        const struct rec *r = &recs[i];
        double adm = pts[r->patient].turn;
        if (r->eta < 0 || adm < 0)
            continue;
        double actual = adm - r->end;
        if (actual < eta_min_s) {
            e.short_n++;
            continue;
        }
        late[e.n] = (actual - r->eta) / actual;
        err[e.n++] = fabs(r->eta - actual) / actual;
        int in = r->eta_low >= 0 && r->eta_low <= actual && actual <= r->eta_high;
        inside += in;
        if (r->eta >= 60) {
            e.long_n++;
            inside_long += in;
        }
    }
    if (e.n) {
        qsort(err, e.n, sizeof *err, cmp_double);
        qsort(late, e.n, sizeof *late, cmp_double);
        e.p50 = pct(err, e.n, 50);
        e.p90 = pct(err, e.n, 90);
        e.late_p50 = pct(late, e.n, 50);
        e.in_range = (double)inside / (double)e.n;
        e.in_range_long = e.long_n ? (double)inside_long / (double)e.long_n : 0;
    }
    free(err);
    free(late);
    return e;
}

static FILE *open_out(const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", outdir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    return f;
}

static void write_out(void)
{
    FILE *f = open_out("patients.csv");
    fputs("id,arrival,first_place_t,first_position,first_eta_s,admitted,done,outcome,"
          "requests_ok,booked,cancelled,turn\n", f);
    int count[6] = {0};
    int admitted = 0, booked = 0, cancelled = 0, errors_admitted = 0;
    for (int i = 0; i < npts; i++) {
        struct patient *p = &pts[i];
        if (p->arrival < 0)
            continue;
        if (p->outcome == O_ACTIVE)
            p->outcome = O_UNFINISHED;
        count[p->outcome]++;
        admitted += p->admitted >= 0;
        booked += p->booked;
        cancelled += p->cancelled;
        errors_admitted += p->outcome == O_BROKEN;
        fprintf(f, "%d,%.4f,%.4f,%d,%.1f,%.4f,%.4f,%s,%d,%d,%d,%.4f\n", p->id, p->arrival,
                p->first_place_t, p->first_position, p->first_eta, p->admitted, p->done,
                outcome_name[p->outcome], p->requests_ok, p->booked, p->cancelled, p->turn);
    }
    fclose(f);
    f = open_out("requests.csv");
    fputs("patient,kind,sched,start,end,status,position,eta_s,eta_low_s,eta_high_s\n", f);
    for (size_t i = 0; i < nrecs; i++) {
        struct rec *r = &recs[i];
        fprintf(f, "%d,%s,%.4f,%.4f,%.4f,%d,%d,%.1f,%.1f,%.1f\n", r->patient, kind_name[r->kind],
                r->sched, r->start, r->end, r->status, r->position, r->eta, r->eta_low,
                r->eta_high);
    }
    fclose(f);
    struct eta_err ee = eta_error();
    if (nlags)
        qsort(lags, nlags, sizeof *lags, cmp_double);
    double p50 = pct(lags, nlags, 50), p99 = pct(lags, nlags, 99);
    double mx = nlags ? lags[nlags - 1] : 0;
    int behind = p99 > max_lag_ms || skipped > 0 || next_arrival < npts;
    f = open_out("summary.json");
    fprintf(f,
            "{\"t0_unix\":%.3f,\"profile\":\"%s\",\"rate\":%g,\"duration_s\":%g,"
            "\"requests_per_patient\":%d,\"think_ms\":%g,\"cancel_frac\":%g,\n"
            " \"scheduled\":%d,\"arrived\":%d,\"skipped\":%d,\"admitted\":%d,\"done\":%d,"
            "\"turned_away\":%d,\"gave_up\":%d,\"broken\":%d,\"unfinished\":%d,"
            "\"booked\":%d,\"cancelled\":%d,\"errors_after_admission\":%d,\"records\":%zu,\n"
            " \"lag_ms\":{\"p50\":%.2f,\"p99\":%.2f,\"max\":%.2f,\"samples\":%zu},"
            "\"max_lag_ms\":%g,\"behind\":%s,\n"
            " \"eta\":{\"min_actual_s\":%g,\"promises\":%zu,\"short\":%zu,\"err_p50\":%.4f,"
            "\"err_p90\":%.4f,\"in_range\":%.4f,\"late_p50\":%.4f,"
            "\"long\":%zu,\"in_range_long\":%.4f}}\n",
            t0_unix, profile, rate, duration, nreq, think_ms, cancel_frac, npts, started,
            skipped + (npts - next_arrival), admitted, count[O_DONE], count[O_TURNED_AWAY],
            count[O_GAVE_UP], count[O_BROKEN], count[O_UNFINISHED], booked, cancelled,
            errors_admitted, nrecs, p50, p99, mx, nlags, max_lag_ms, behind ? "true" : "false",
            eta_min_s, ee.n, ee.short_n, ee.p50, ee.p90, ee.in_range, ee.late_p50, ee.long_n,
            ee.in_range_long);
    fclose(f);
    fprintf(stderr, "patients: %d arrived, %d admitted, %d done, %d turned away, %d unfinished;"
            " lag p99 %.1f ms%s\n", started, admitted, count[O_DONE], count[O_TURNED_AWAY],
            count[O_UNFINISHED], p99, behind ? " - THE SIMULATOR FELL BEHIND" : "");
    if (ee.n)
        fprintf(stderr, "patients: ETA error p50 %.0f%%, p90 %.0f%%, %.0f%% in range"
                " (%zu promises with >= %g s to go)\n", ee.p50 * 100, ee.p90 * 100,
                ee.in_range * 100, ee.n, eta_min_s);
}

static void usage(void)
{
    fputs("usage: patients --port P [--host H] [--profile constant|poisson|spike]\n"
          "  [--rate PATIENTS_PER_S] [--duration S] [--requests K] [--think-ms MS]\n"
          "  [--cancel-frac F] [--patience-s S] [--drain-s S] [--timeout-s S]\n"
          "  [--spike-quiet-s S] [--spike-peak-s S] [--spike-factor X] [--spike-base X]\n"
          "  [--max-lag-ms MS] [--eta-min-s S] [--seed N] [--out DIR]\n", stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        i++;
        if (strcmp(a, "--port") == 0) port = atoi(v);
        else if (strcmp(a, "--host") == 0) host = v;
        else if (strcmp(a, "--profile") == 0) profile = v;
        else if (strcmp(a, "--rate") == 0) rate = atof(v);
        else if (strcmp(a, "--duration") == 0) duration = atof(v);
        else if (strcmp(a, "--requests") == 0) nreq = atoi(v);
        else if (strcmp(a, "--think-ms") == 0) think_ms = atof(v);
        else if (strcmp(a, "--cancel-frac") == 0) cancel_frac = atof(v);
        else if (strcmp(a, "--patience-s") == 0) patience_s = atof(v);
        else if (strcmp(a, "--drain-s") == 0) drain_s = atof(v);
        else if (strcmp(a, "--timeout-s") == 0) req_timeout_s = atof(v);
        else if (strcmp(a, "--spike-quiet-s") == 0) spike_quiet_s = atof(v);
        else if (strcmp(a, "--spike-peak-s") == 0) spike_peak_s = atof(v);
        else if (strcmp(a, "--spike-factor") == 0) spike_factor = atof(v);
        else if (strcmp(a, "--spike-base") == 0) spike_base = atof(v);
        else if (strcmp(a, "--max-lag-ms") == 0) max_lag_ms = atof(v);
        else if (strcmp(a, "--eta-min-s") == 0) eta_min_s = atof(v);
        else if (strcmp(a, "--seed") == 0) seed = (unsigned)atoi(v);
        else if (strcmp(a, "--out") == 0) outdir = v;
        else usage();
    }
    if (port <= 0 || port > 65535 || rate <= 0 || duration <= 0 || nreq < 2 ||
        req_timeout_s < 1 || (strcmp(profile, "constant") && strcmp(profile, "poisson") &&
                              strcmp(profile, "spike")))
        usage();
    if (spike_quiet_s < 0)
        spike_quiet_s = duration / 4;
    if (spike_peak_s < 0)
        spike_peak_s = duration / 2;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    build_schedule();

    struct event_config *cfg = event_config_new();
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER); /* the lag is measured in ms */
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    arrival_ev = evtimer_new(base, on_arrival, NULL);
    end_ev = event_new(base, -1, EV_PERSIST, on_end, NULL);
    struct event *si = evsignal_new(base, SIGINT, on_signal, NULL);
    struct event *st = evsignal_new(base, SIGTERM, on_signal, NULL);
    event_add(si, NULL);
    event_add(st, NULL);
    struct timeval tick = {0, 100000};
    event_add(end_ev, &tick);
    struct timespec w;
    clock_gettime(CLOCK_REALTIME, &w);
    clock_gettime(CLOCK_MONOTONIC, &t0ts);
    t0_unix = (double)w.tv_sec + (double)w.tv_nsec / 1e9;
    struct timeval zero = {0, 0};
    evtimer_add(arrival_ev, &zero);
    event_base_dispatch(base);

    ending = 1;
    event_base_loop(base, EVLOOP_NONBLOCK); /* the deferred connection frees */
    write_out();
    for (int i = 0; i < npts; i++) {
        if (pts[i].conn)
            evhttp_connection_free(pts[i].conn); /* runs pending callbacks with ending set */
        if (pts[i].timer)
            event_free(pts[i].timer);
    }
    event_free(arrival_ev);
    event_free(end_ev);
    event_free(si);
    event_free(st);
    event_base_free(base);
    free(pts);
    free(recs);
    free(lags);
    return 0;
}
