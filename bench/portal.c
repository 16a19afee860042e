/*
 * bench/portal.c - the booking portal of the rush experiment (bench/rush).
 *
 * A simulated database of --db-connections connections, each busy for
 * --db-ms per query, with one FIFO queue in front of them: a query that
 * finds every connection busy waits in the queue. A query still queued
 * --timeout-ms after it arrived is answered 503 (the portal gives up, as a
 * real overloaded portal does). What a patient calls "database latency" is
 * queue wait + service time, and every answer carries it:
 *
 *     Server-Timing: db;dur=<queue+service ms>
 *
 * Routes (each costs one query, except /_portal/stats and unknown paths):
 *   GET  /                           a page with a booking form
 *   GET  /appointments/<id>          an appointment page
 *   GET  /healthz                    "ok"
 *   POST /book                       200, X-Appointment: <id>, Einlass-Release: 1
 *   POST /appointments/<id>/cancel   200
 *   GET  /_portal/stats              JSON counters, no query
 * Bookings always succeed (the bench measures load, not slot contention).
 *
 * Invariants: one thread, one event loop, no real database. Queries are
 * served strictly in arrival order; the queue's head is the oldest query, so
 * a sweep of the head every 5 ms expires every timed-out query. A client
 * that hangs up while its query waits still has its query served or expired
 * (evhttp keeps the request until it is answered; answering frees it).
 *
 * Logs: --log FILE gets one line per answered query
 *     unix_time_s,db_ms,status,route
 * and --stats FILE one line per second
 *     unix_time_s,completed,timed_out,queue,p50_ms,p95_ms,p99_ms
 * Usage: portal [--port P] [--db-connections N] [--db-ms S] [--timeout-ms T]
 *               [--log FILE] [--stats FILE]
 * Prints "portal listening on 127.0.0.1:PORT" once it accepts.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

enum route { R_PAGE, R_APPT, R_HEALTH, R_BOOK, R_CANCEL };
static const char *const route_name[] = {"page", "appointment", "healthz", "book", "cancel"};

struct query {
    struct evhttp_request *req; /* answered (and freed by evhttp) when done */
    double enq;                 /* arrival, monotonic seconds */
    enum route route;           /* what to answer */
    struct query *next;         /* FIFO link */
};

struct dbconn {
    struct event *ev;    /* fires when the running query's service ends */
    struct query *q;     /* the running query, NULL when idle */
};

static struct event_base *base;
static struct dbconn *conns;   /* --db-connections of them */
static int nconns = 4;
static double db_ms = 20;
static double timeout_ms = 0;  /* 0: never time out */
static struct query *head, *tail;
static long queued;            /* queries in the queue */
static long completed_total, timed_out_total;
static long sec_completed, sec_timed_out; /* in the current second */
static double *sec_lat;        /* latencies answered in the current second */
static size_t sec_n, sec_cap;
static FILE *queryf, *statsf;
static unsigned long long next_id = 0x5eed;

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p) {
        fputs("portal: out of memory\n", stderr);
        abort();
    }
    return p;
}

static void record(double ms, int status, enum route r)
{
    if (sec_n == sec_cap) {
        sec_cap = sec_cap ? sec_cap * 2 : 1024;
        sec_lat = xrealloc(sec_lat, sec_cap * sizeof *sec_lat);
    }
    sec_lat[sec_n++] = ms;
    if (queryf)
        fprintf(queryf, "%.3f,%.1f,%d,%s\n", wall(), ms, status, route_name[r]);
}

static void reply(struct evhttp_request *req, int code, const char *reason,
                  const char *ctype, const char *body, double ms)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char timing[64];
    snprintf(timing, sizeof timing, "db;dur=%.1f", ms);
    evhttp_add_header(h, "Content-Type", ctype);
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "Server-Timing", timing);
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, body, strlen(body));
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

static void answer(struct query *q, double ms)
{
    struct evhttp_request *req = q->req;
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char id[32], body[512];
    switch (q->route) {
    case R_PAGE:
        reply(req, 200, "OK", "text/html; charset=utf-8",
              "<!doctype html><title>Book an appointment</title>"
              "<h1>Book an appointment</h1><form method=post action=/book>"
              "<input type=hidden name=slot value=1><input name=name>"
              "<button>Book</button></form>\n", ms);
        break;
    case R_APPT:
        reply(req, 200, "OK", "text/html; charset=utf-8",
              "<!doctype html><title>My appointment</title><p>Mon 08:30</p>\n", ms);
        break;
    case R_HEALTH:
        reply(req, 200, "OK", "text/plain", "ok\n", ms);
        break;
    case R_BOOK:
        snprintf(id, sizeof id, "%016llx", next_id++ * 0x9e3779b97f4a7c15ULL);
        snprintf(body, sizeof body, "<!doctype html><title>Confirmed</title>"
                 "<p>Booked. <a href=\"/appointments/%s\">Your appointment</a></p>\n", id);
        evhttp_add_header(h, "X-Appointment", id);
        evhttp_add_header(h, "Einlass-Release", "1");
        reply(req, 200, "OK", "text/html; charset=utf-8", body, ms);
        break;
    case R_CANCEL:
        reply(req, 200, "OK", "text/html; charset=utf-8",
              "<!doctype html><title>Cancelled</title><p>Cancelled.</p>\n", ms);
        break;
    }
    record(ms, 200, q->route);
    completed_total++;
    sec_completed++;
    free(q);
}

/* Give idle connections the oldest queries. */
static void dispatch(void)
{
    for (int i = 0; i < nconns && head; i++) {
        if (conns[i].q)
            continue;
        struct query *q = head;
        head = q->next;
        if (!head)
            tail = NULL;
        queued--;
        conns[i].q = q;
        struct timeval tv = {(time_t)(db_ms / 1000), (suseconds_t)((long)(db_ms * 1000) % 1000000)};
        event_add(conns[i].ev, &tv);
    }
}

static void service_done(evutil_socket_t fd, short what, void *arg)
{
    struct dbconn *c = arg;
    struct query *q = c->q;
    c->q = NULL;
    answer(q, (mono() - q->enq) * 1000.0);
    dispatch();
}

static void sweep(evutil_socket_t fd, short what, void *arg)
{
    if (timeout_ms <= 0)
        return;
    double now = mono();
    while (head && (now - head->enq) * 1000.0 >= timeout_ms) {
        struct query *q = head;
        head = q->next;
        if (!head)
            tail = NULL;
        queued--;
        double ms = (now - q->enq) * 1000.0;
        evhttp_add_header(evhttp_request_get_output_headers(q->req), "Retry-After", "5");
        reply(q->req, 503, "Service Unavailable", "text/plain",
              "the database is overloaded, please try again later\n", ms);
        record(ms, 503, q->route);
        timed_out_total++;
        sec_timed_out++;
        free(q);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double p)
{
    if (!sec_n)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)sec_n);
    return sec_lat[i < sec_n ? i : sec_n - 1];
}

static void per_second(evutil_socket_t fd, short what, void *arg)
{
    if (sec_n)
        qsort(sec_lat, sec_n, sizeof *sec_lat, cmp_double);
    if (statsf)
        fprintf(statsf, "%.3f,%ld,%ld,%ld,%.1f,%.1f,%.1f\n", wall(), sec_completed,
                sec_timed_out, queued, pct(50), pct(95), pct(99));
    if (queryf)
        fflush(queryf);
    if (statsf)
        fflush(statsf);
    sec_n = 0;
    sec_completed = sec_timed_out = 0;
}

static int prefix_then_hex(const char *path, const char *prefix, const char *suffix)
{
    size_t n = strlen(prefix);
    if (strncmp(path, prefix, n) != 0)
        return 0;
    const char *p = path + n;
    const char *start = p;
    while ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))
        p++;
    return p > start && strcmp(p, suffix) == 0;
}

static void handle(struct evhttp_request *req, void *arg)
{
    const char *uri = evhttp_request_get_uri(req);
    char path[256];
    size_t n = strcspn(uri, "?");
    if (n >= sizeof path)
        n = sizeof path - 1;
    memcpy(path, uri, n);
    path[n] = 0;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    int get = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD;
    int post = cmd == EVHTTP_REQ_POST;
    enum route r;
    if (get && strcmp(path, "/") == 0)
        r = R_PAGE;
    else if (get && prefix_then_hex(path, "/appointments/", ""))
        r = R_APPT;
    else if (get && strcmp(path, "/healthz") == 0)
        r = R_HEALTH;
    else if (post && strcmp(path, "/book") == 0)
        r = R_BOOK;
    else if (post && prefix_then_hex(path, "/appointments/", "/cancel"))
        r = R_CANCEL;
    else if (get && strcmp(path, "/_portal/stats") == 0) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"db_ms\":%.1f,\"db_connections\":%d,\"timeout_ms\":%.0f,"
                 "\"queries\":%ld,\"timed_out\":%ld,\"queue\":%ld}\n",
                 db_ms, nconns, timeout_ms, completed_total, timed_out_total, queued);
        reply(req, 200, "OK", "application/json", body, 0);
        return;
    } else {
        reply(req, 404, "Not Found", "text/plain", "there is no such page\n", 0);
        return;
    }
    struct query *q = xrealloc(NULL, sizeof *q);
    q->req = req;
    q->enq = mono();
    q->route = r;
    q->next = NULL;
    if (tail)
        tail->next = q;
    else
        head = q;
    tail = q;
    queued++;
    dispatch();
}

static void stop(evutil_socket_t sig, short what, void *arg)
{
    event_base_loopbreak(base);
}

static void usage(void)
{
    fputs("usage: portal [--port P] [--db-connections N] [--db-ms S] [--timeout-ms T]"
          " [--log FILE] [--stats FILE]\n", stderr);
    exit(2);
}

int main(int argc, char **argv)
{
    int port = 3000;
    const char *log_path = NULL, *stats_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (strcmp(argv[i], "--port") == 0)
            port = atoi(v);
        else if (strcmp(argv[i], "--db-connections") == 0)
            nconns = atoi(v);
        else if (strcmp(argv[i], "--db-ms") == 0)
            db_ms = atof(v);
        else if (strcmp(argv[i], "--timeout-ms") == 0)
            timeout_ms = atof(v);
        else if (strcmp(argv[i], "--log") == 0)
            log_path = v;
        else if (strcmp(argv[i], "--stats") == 0)
            stats_path = v;
        else
            usage();
        i++;
    }
    if (nconns < 1 || nconns > 10000 || db_ms < 0 || timeout_ms < 0 || port < 0 || port > 65535)
        usage();
    if (log_path && !(queryf = fopen(log_path, "w"))) {
        perror(log_path);
        return 1;
    }
    if (stats_path && !(statsf = fopen(stats_path, "w"))) {
        perror(stats_path);
        return 1;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (fd == -1 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) == -1 || listen(fd, 4096) == -1 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) == -1) {
        perror("portal: listen");
        return 1;
    }

    base = event_base_new();
    struct evhttp *http = evhttp_new(base);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
    evhttp_set_timeout(http, 120);
    evhttp_set_gencb(http, handle, NULL);
    if (evhttp_accept_socket(http, fd) == -1) {
        fputs("portal: evhttp_accept_socket failed\n", stderr);
        return 1;
    }
    conns = xrealloc(NULL, (size_t)nconns * sizeof *conns);
    for (int i = 0; i < nconns; i++) {
        conns[i].q = NULL;
        conns[i].ev = evtimer_new(base, service_done, &conns[i]);
    }
    struct event *sw = event_new(base, -1, EV_PERSIST, sweep, NULL);
    struct timeval five_ms = {0, 5000}, one_s = {1, 0};
    event_add(sw, &five_ms);
    struct event *ps = event_new(base, -1, EV_PERSIST, per_second, NULL);
    event_add(ps, &one_s);
    struct event *si = evsignal_new(base, SIGINT, stop, NULL);
    struct event *st = evsignal_new(base, SIGTERM, stop, NULL);
    event_add(si, NULL);
    event_add(st, NULL);

    printf("portal listening on 127.0.0.1:%d\n", ntohs(sa.sin_port));
    fflush(stdout);
    event_base_dispatch(base);

    per_second(-1, 0, NULL);
    while (head) { /* unanswered at exit: evhttp_free below frees the requests */
        struct query *q = head;
        head = q->next;
        free(q);
    }
    for (int i = 0; i < nconns; i++) {
        free(conns[i].q);
        event_free(conns[i].ev);
    }
    free(conns);
    free(sec_lat);
    event_free(sw);
    event_free(ps);
    event_free(si);
    event_free(st);
    evhttp_free(http);
    event_base_free(base);
    if (queryf)
        fclose(queryf);
    if (statsf)
        fclose(statsf);
    return 0;
}
