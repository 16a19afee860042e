/* test_store_redis.c - the Redis store against a real redis-server, started
 * here on a free port in a temporary directory (no persistence) and killed
 * at the end. No redis-server on PATH is a failure, not a skip.
 * Redis keeps its own time (TIME), so rate tests sleep for real and check
 * counts within generous bounds; the shared cases meter by credits. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "einlass/common.h"
#include "einlass/store.h"

#define TIMEOUT_MS 500

static uint64_t drv_now; /* ignored by the Redis store */
static struct event_base *evb;
static struct event *tick_ev; /* keeps the loop waking up */
static pid_t redis_pid = -1;
static int redis_port;
static char tmpdir[64];
static int room_seq;
static char room[64];

static void on_tick(evutil_socket_t fd, short what, void *arg) {}

/* Run base until *done, failing after limit_ms. */
static void wait_on(struct event_base *base, bool *done, uint64_t limit_ms)
{
    uint64_t end = el_now_ms() + limit_ms;
    while (!*done) {
        assert_true(el_now_ms() < end);
        event_base_loop(base, EVLOOP_ONCE);
    }
}

static void drv_wait(bool *done)
{
    wait_on(evb, done, 5000);
}

static bool redis_ping(void)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
    bool ok = false;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (r) freeReplyObject(r);
    }
    if (c) redisFree(c);
    return ok;
}

static void redis_start(void)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", redis_port);
    redis_pid = fork();
    assert_true(redis_pid != -1);
    if (redis_pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd != -1) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        if (chdir(tmpdir) == -1) _exit(126);
        execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no", "--dir", tmpdir, (char *)NULL);
        _exit(127); /* no redis-server: the wait below fails the test */
    }
    uint64_t end = el_now_ms() + 5000;
    while (!redis_ping()) {
        int st;
        if (waitpid(redis_pid, &st, WNOHANG) == redis_pid) {
            redis_pid = -1;
            fail_msg("redis-server did not start (is it installed?)");
        }
        assert_true(el_now_ms() < end);
        usleep(20000);
    }
}

static void redis_kill(int sig)
{
    kill(redis_pid, sig);
    if (sig == SIGKILL || sig == SIGTERM) {
        waitpid(redis_pid, NULL, 0);
        redis_pid = -1;
    }
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    assert_true(fd != -1);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static int group_setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/el-redis-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) return -1;
    redis_port = free_port();
    redis_start();
    evb = event_base_new();
    tick_ev = event_new(evb, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 50000};
    event_add(tick_ev, &tv);
    return 0;
}

static int group_teardown(void **state)
{
    if (redis_pid > 0) {
        kill(redis_pid, SIGCONT);
        redis_kill(SIGTERM);
    }
    if (tick_ev) event_free(tick_ev);
    if (evb) event_base_free(evb);
    rmdir(tmpdir);
    return 0;
}

/* The store's command timeout; the bulk test raises it, since moving 70,000
 * tickets in one script can take longer than TIMEOUT_MS on a loaded machine. */
static int store_timeout_ms = TIMEOUT_MS;

static struct el_store *open_keep_on(struct event_base *base, const char *name, int poll_s,
                                     int keep_ms, int claim_ms)
{
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", redis_port);
    struct el_store_params p = {.room = name, .poll_s = poll_s, .keep_ms = keep_ms,
                                .claim_ms = claim_ms, .redis = addr,
                                .timeout_ms = store_timeout_ms};
    struct el_store *s = el_store_redis_new(base, &p);
    uint64_t end = el_now_ms() + 5000;
    while (!el_store_redis_up(s)) {
        assert_true(el_now_ms() < end);
        event_base_loop(base, EVLOOP_ONCE);
    }
    return s;
}

static struct el_store *open_on(struct event_base *base, const char *name, int poll_s)
{
    return open_keep_on(base, name, poll_s, 0, 0);
}

/* A new, empty room each time. */
static struct el_store *drv_open_keep(int poll_s, int keep_ms, int claim_ms)
{
    snprintf(room, sizeof(room), "t%d-%d", (int)getpid(), ++room_seq);
    return open_keep_on(evb, room, poll_s, keep_ms, claim_ms);
}

static struct el_store *drv_open(int poll_s)
{
    return drv_open_keep(poll_s, 0, 0);
}

static void drv_sleep(unsigned ms)
{
    usleep(ms * 1000);
}

#include "store_cases.h"

/* Admissions over about ms of real time at rate, advancing every step_ms;
 * *took is the metered time. */
static uint64_t meter_real(struct el_store *s, double rate, unsigned ms, unsigned step_ms,
                           uint64_t *took)
{
    uint64_t before = advance_ok(s, rate).waiting, after = before;
    uint64_t t0 = el_now_ms();
    for (unsigned t = 0; t < ms; t += step_ms) {
        drv_sleep(step_ms);
        after = advance_ok(s, rate).waiting;
    }
    *took = el_now_ms() - t0;
    return before - after;
}

static void assert_near_rate(uint64_t admitted, double rate, uint64_t took_ms)
{
    double expect = rate * (double)took_ms / 1000.0;
    print_message("admitted %llu in %llu ms at %.1f/s (expected %.1f)\n",
                  (unsigned long long)admitted, (unsigned long long)took_ms, rate, expect);
    assert_true((double)admitted >= expect * 0.4 - 2);
    assert_true((double)admitted <= expect * 1.4 + 2);
}

static void test_metering(void **state)
{
    struct el_store *s = drv_open(60);
    for (int i = 0; i < 200; i++) join_ok(s, 0);
    uint64_t took;
    uint64_t n = meter_real(s, 20, 1500, 250, &took);
    assert_near_rate(n, 20, took);
    s->ops->free(s);
}

static struct event_base *evb2;

static void test_two_instances(void **state)
{
    struct el_store *a = drv_open(60);
    evb2 = event_base_new();
    struct el_store *b = open_on(evb2, room, 60);
    struct el_place p1 = join_ok(a, 0);
    struct result r = {0};
    b->ops->join(b, 0, 0, place_cb, &r);
    wait_on(evb2, &r.done, 5000);
    assert_int_equal(r.err, 0);
    assert_int_equal(r.place.num, p1.num + 1);
    assert_int_equal(r.place.position, 2);
    for (int i = 0; i < 198; i++) join_ok(a, 0);
    /* both meter the one room: advancing from two does not double the rate */
    advance_ok(a, 20);
    uint64_t t0 = el_now_ms(), before = advance_ok(a, 20).waiting, after = before;
    for (int i = 0; i < 10; i++) {
        drv_sleep(150);
        struct result ra = {0};
        struct el_store *x = i % 2 ? b : a;
        x->ops->advance(x, &(struct el_meter_in){.rate = 20}, 0, stats_cb, &ra);
        wait_on(i % 2 ? evb2 : evb, &ra.done, 5000);
        assert_int_equal(ra.err, 0);
        after = ra.st.waiting;
    }
    assert_near_rate(before - after, 20, el_now_ms() - t0);
    a->ops->free(a);
    b->ops->free(b);
    event_base_free(evb2);
}

static struct result revoked_on(struct el_store *s, struct event_base *base, uint64_t cursor)
{
    struct result r = {0};
    s->ops->revoked(s, cursor, revoked_cb, &r);
    wait_on(base, &r.done, 5000);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, 0);
    return r;
}

/* A pass released on one instance: the other learns it from the revoked
 * feed, and releasing it there again adds no second credit. */
static void test_release_once_across_instances_and_feed(void **state)
{
    struct el_store *a = drv_open(60);
    evb2 = event_base_new();
    struct el_store *b = open_on(evb2, room, 60);
    struct el_place p[3];
    for (int i = 0; i < 3; i++) p[i] = join_ok(a, 0);
    advance_ok(a, 0);
    struct result f0 = revoked_on(b, evb2, 0);
    assert_int_equal(f0.nids, 0);
    uint64_t id = 0xfeedface12345678ULL;
    a->ops->release(a, id, 600, 0);
    a->ops->release(a, id, 600, 0);
    assert_int_equal(advance_ok(a, 0).waiting, 2);
    struct result f = revoked_on(b, evb2, f0.next);
    assert_int_equal(f.nids, 1);
    assert_true(f.ids[0] == id);
    assert_true(f.next > 0);
    b->ops->release(b, id, 600, 0); /* replayed on the other instance */
    struct result ra = {0};
    b->ops->advance(b, &(struct el_meter_in){.rate = 0}, 0, stats_cb, &ra);
    wait_on(evb2, &ra.done, 5000);
    assert_int_equal(ra.st.waiting, 2);
    /* a later release comes from the cursor on; the old one may come again */
    uint64_t id2 = 77;
    a->ops->release(a, id2, 600, 0);
    assert_int_equal(advance_ok(a, 0).waiting, 1);
    struct result g = revoked_on(b, evb2, f.next);
    assert_true(g.nids >= 1 && g.ids[g.nids - 1] == id2);
    assert_true(g.next >= f.next);
    assert_int_equal(check_ok(a, 0, p[1].num).state, EL_PLACE_ADMITTED);
    a->ops->free(a);
    b->ops->free(b);
    event_base_free(evb2);
}

static void test_restart_keeps_places(void **state)
{
    struct el_store *s = drv_open(60);
    uint64_t nums[3];
    for (int i = 0; i < 3; i++) nums[i] = join_ok(s, 0).num;
    s->ops->free(s);
    s = open_on(evb, room, 60);
    struct el_place p = check_ok(s, 0, nums[1]);
    assert_int_equal(p.state, EL_PLACE_WAITING);
    assert_int_equal(p.position, 2);
    assert_int_equal(join_ok(s, 0).num, nums[2] + 1);
    s->ops->free(s);
}

static void test_noscript_falls_back_to_eval(void **state)
{
    struct el_store *s = drv_open(60);
    struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
    assert_true(c && !c->err);
    redisReply *rep = redisCommand(c, "SCRIPT FLUSH");
    assert_non_null(rep);
    freeReplyObject(rep);
    redisFree(c);
    assert_int_equal(join_ok(s, 0).position, 1);
    assert_int_equal(join_ok(s, 0).position, 2);
    s->ops->free(s);
}

/* Every op calls back once, with -1, when the store goes while they wait. */
static void test_free_calls_back_once(void **state)
{
    struct el_store *s = drv_open(60);
    struct result r[3] = {{0}};
    for (int i = 0; i < 3; i++) s->ops->join(s, 0, 0, place_cb, &r[i]);
    s->ops->free(s);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].err, -1);
    }
}

struct freeing {
    struct el_store *s; /* freed by the first callback */
    int calls;          /* callbacks seen */
    int errs;           /* of which err = -1 */
};

static void free_in_cb(void *arg, int err, const struct el_place *p)
{
    struct freeing *f = arg;
    if (f->calls++ == 0) f->s->ops->free(f->s);
    if (err) f->errs++;
}

static void test_free_inside_callback(void **state)
{
    struct freeing f = {.s = drv_open(60)};
    for (int i = 0; i < 4; i++) f.s->ops->join(f.s, 0, 0, free_in_cb, &f);
    uint64_t end = el_now_ms() + 5000;
    while (f.calls < 4 && el_now_ms() < end) event_base_loop(evb, EVLOOP_ONCE);
    for (int i = 0; i < 5; i++) event_base_loop(evb, EVLOOP_NONBLOCK);
    assert_int_equal(f.calls, 4);
    assert_int_equal(f.errs, 3); /* the first answered; the others went with the store */
}

/* Wait until the store is up again and a join answers. */
static void wait_recovered(struct el_store *s, uint64_t limit_ms)
{
    uint64_t end = el_now_ms() + limit_ms;
    for (;;) {
        assert_true(el_now_ms() < end);
        event_base_loop(evb, EVLOOP_ONCE);
        if (!el_store_redis_up(s)) continue;
        struct result r = {0};
        s->ops->join(s, 0, 0, place_cb, &r);
        drv_wait(&r.done);
        if (r.err == 0) return;
    }
}

/* A join on a store whose server just went away: answered -1, once, soon.
 * Returns how long it took. */
static uint64_t join_fails(struct el_store *s)
{
    struct result r = {0};
    uint64_t t0 = el_now_ms();
    s->ops->join(s, 0, 0, place_cb, &r);
    drv_wait(&r.done);
    uint64_t took = el_now_ms() - t0;
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, -1);
    assert_true(took < 3000);
    return took;
}

static void test_hung_redis_times_out(void **state)
{
    struct el_store *s = drv_open(60);
    join_ok(s, 0);
    redis_kill(SIGSTOP);
    assert_true(join_fails(s) >= TIMEOUT_MS / 2); /* it waited for the timeout */
    assert_false(el_store_redis_up(s));
    struct result r2 = {0};
    s->ops->check(s, 0, 0, 0, 0, place_cb, &r2); /* down: at once */
    assert_true(r2.done);
    assert_int_equal(r2.err, -1);
    redis_kill(SIGCONT);
    wait_recovered(s, 8000);
    s->ops->free(s);
}

static void test_killed_redis_comes_back(void **state)
{
    struct el_store *s = drv_open(60);
    join_ok(s, 0);
    redis_kill(SIGKILL);
    join_fails(s);
    struct result st = {0};
    s->ops->advance(s, &(struct el_meter_in){.rate = 1}, 0, stats_cb, &st);
    drv_wait(&st.done);
    assert_int_equal(st.err, -1);
    redis_start();
    wait_recovered(s, 8000);
    s->ops->free(s);
}

/* Many ops in flight at once (a window of them), answered in order. */
struct bulk {
    struct el_store *s;   /* the store */
    uint8_t lane;         /* of every op */
    const uint64_t *nums; /* check these numbers; NULL: join */
    uint64_t n;           /* ops wanted */
    uint64_t sent;        /* ops issued */
    uint64_t answered;    /* ops answered */
    uint64_t bad;         /* answers with err, not WAITING, or with the wrong number */
    uint64_t first;       /* join: the first number handed out */
    bool progress;        /* an answer came since the last wait */
};

static void bulk_cb(void *arg, int err, const struct el_place *p)
{
    struct bulk *b = arg;
    uint64_t i = b->answered++;
    b->progress = true;
    if (err) {
        b->bad++;
        return;
    }
    if (b->nums == NULL && i == 0) b->first = p->num;
    uint64_t want = b->nums ? b->nums[i] : b->first + i;
    if (p->state != EL_PLACE_WAITING || p->num != want) b->bad++;
}

static void run_bulk(struct bulk *b)
{
    while (b->answered < b->n) {
        b->progress = false;
        while (b->sent < b->n && b->sent - b->answered < 512) {
            uint64_t i = b->sent++;
            if (b->nums) b->s->ops->check(b->s, b->lane, b->nums[i], 0, drv_now, bulk_cb, b);
            else b->s->ops->join(b->s, b->lane, drv_now, bulk_cb, b);
        }
        drv_wait(&b->progress);
    }
    assert_int_equal(b->bad, 0);
}

/* A synchronous connection to look at (and age) the room's keys. */
static redisContext *peek_open(void)
{
    struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", redis_port, tv);
    assert_true(c && !c->err);
    return c;
}

/* An integer answer (a missing hash field counts 0). */
static long long peek_int(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    long long v = 0;
    if (r->type == REDIS_REPLY_INTEGER) v = r->integer;
    else if (r->type == REDIS_REPLY_STRING) v = atoll(r->str);
    else assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    return v;
}

static void peek_cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

/* Make the room's generation look gens generations old, so the next script
 * rolls it once (1) or wipes both bitmaps as after a long pause (2). */
static void age_generation(redisContext *c, int poll_s, int gens)
{
    redisReply *r = redisCommand(c, "TIME");
    assert_true(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    long long now = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
    freeReplyObject(r);
    peek_cmd(c, "HSET einlass:{%s}:meter gt %lld", room, now - (long long)gens * poll_s * 3000);
}

/* The count hashes match the bitmaps, per lane, r being the lane's tail at
 * the last roll: the current generation's holds each block's set bits below
 * r; the previous one's holds, for i >= 1, the set bits below
 * min(i * 65536, r); in both bitmaps every number in [r, tail) is set. */
static void assert_counts_exact(redisContext *c)
{
    int g = (int)peek_int(c, "HGET einlass:{%s}:meter g", room);
    for (int l = 0; l < 2; l++) {
        int pc = g % 2, pp = (g + 1) % 2;
        long long r = peek_int(c, "HGET einlass:{%s}:meter r%d", room, l);
        long long tail = peek_int(c, "HGET einlass:{%s}:meter t%d", room, l);
        long long nb = (r + 65535) / 65536;
        assert_true(peek_int(c, "HLEN einlass:{%s}:blk:%d:%d", room, pc, l) <= nb);
        assert_true(peek_int(c, "HLEN einlass:{%s}:blk:%d:%d", room, pp, l) <= nb);
        for (long long b = 0; b < nb; b++) {
            long long end = EL_MIN(b * 65536 + 65535, r - 1);
            long long want = peek_int(c, "BITCOUNT einlass:{%s}:live:%d:%d %lld %lld BIT", room, pc,
                                      l, b * 65536, end);
            assert_int_equal(peek_int(c, "HGET einlass:{%s}:blk:%d:%d %lld", room, pc, l, b), want);
            want = peek_int(c, "BITCOUNT einlass:{%s}:live:%d:%d 0 %lld BIT", room, pp, l, end);
            assert_int_equal(peek_int(c, "HGET einlass:{%s}:blk:%d:%d %lld", room, pp, l, b + 1),
                             want);
        }
        for (int p = 0; p < 2 && tail > r; p++)
            assert_int_equal(peek_int(c, "BITCOUNT einlass:{%s}:live:%d:%d %lld %lld BIT", room, p,
                                      l, r, tail - 1),
                             tail - r);
    }
}

#define BLK_N (4 * 65536 + 4000) /* lane-0 tickets: five blocks */
#define BLK_HEAD 70000           /* the first admission moves head here */
#define BLK_JOIN2 70000          /* lane-0 tickets joined after two rolls */

/* Kept polling through the generation roll. */
static bool blk_kept(uint64_t num)
{
    return num % 7 == 0 || (num >= 196000 && num < 197000);
}

/* Expected position of a live kept ticket: kept tickets in [head, num]. */
static uint64_t blk_rank(uint64_t head, uint64_t num)
{
    uint64_t n = 0;
    for (uint64_t k = head; k <= num; k++) n += blk_kept(k);
    return n;
}

/* Positions stay exact when the waiting tickets span several 65536-number
 * blocks: the scripts count whole blocks from their per-block counts. */
static void test_positions_across_blocks(void **state)
{
    static const uint64_t samples[] = {BLK_HEAD, 100000, 131071, 131072, 196500,
                                       200004,   262143, 262144, BLK_N - 1};
    store_timeout_ms = 10000;
    struct el_store *s = drv_open(60);
    store_timeout_ms = TIMEOUT_MS;
    redisContext *c = peek_open();
    /* a room from before epochs (numbers from 0): a new room would start at
     * Redis time x 1024, and this test names its numbers */
    peek_cmd(c, "HSET einlass:{%s}:meter g 0", room);
    advance_ok(s, 0);
    struct bulk b = {.s = s, .lane = 0, .n = BLK_N};
    run_bulk(&b);
    assert_int_equal(b.first, 0);
    join_ok(s, 1);
    join_ok(s, 1);
    assert_counts_exact(c);
    assert_int_equal(check_ok(s, 0, 0).position, 3); /* behind the two priority tickets */
    assert_int_equal(check_ok(s, 0, 65535).position, 65535 + 3);
    for (size_t i = 0; i < EL_ARRAY_LEN(samples); i++) {
        struct el_place p = check_ok(s, 0, samples[i]);
        assert_int_equal(p.state, EL_PLACE_WAITING);
        assert_int_equal(p.position, samples[i] + 3);
        assert_int_equal(p.waiting, BLK_N + 2);
    }

    /* the meter admits both priority tickets and lane 0 up to BLK_HEAD (the
     * credits set directly: 70000 releases would be 70000 scripts) */
    peek_cmd(c, "HINCRBY einlass:{%s}:meter cred %d", room, 2 + BLK_HEAD);
    assert_int_equal(advance_ok(s, 0).waiting, BLK_N - BLK_HEAD);
    assert_int_equal(check_ok(s, 0, 69999).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ok(s, 0, 65536).state, EL_PLACE_ADMITTED);
    for (size_t i = 0; i < EL_ARRAY_LEN(samples); i++)
        assert_int_equal(check_ok(s, 0, samples[i]).position, samples[i] - BLK_HEAD + 1);
    assert_counts_exact(c);

    /* one generation later only the kept tickets come back; the next roll
     * drops everyone else */
    uint64_t *keep = el_calloc(BLK_N, sizeof(*keep)), nkeep = 0;
    for (uint64_t k = BLK_HEAD; k < BLK_N; k++)
        if (blk_kept(k)) keep[nkeep++] = k;
    age_generation(c, 60, 1);
    struct bulk kb = {.s = s, .lane = 0, .nums = keep, .n = nkeep};
    run_bulk(&kb);
    age_generation(c, 60, 1);
    assert_int_equal(advance_ok(s, 0).waiting, nkeep);
    assert_counts_exact(c);
    assert_int_equal(check_ok(s, 0, BLK_HEAD + 1).state, EL_PLACE_GONE);
    assert_int_equal(check_ok(s, 0, 262145).state, EL_PLACE_GONE);
    for (size_t i = 0; i < EL_ARRAY_LEN(samples); i++) {
        uint64_t num = samples[i] - samples[i] % 7;
        struct el_place p = check_ok(s, 0, num);
        assert_int_equal(p.state, EL_PLACE_WAITING);
        assert_int_equal(p.position, blk_rank(BLK_HEAD, num));
        assert_int_equal(p.waiting, nkeep);
    }

    /* the meter steps over the dropped tickets: 10000 admissions take the
     * first 10000 kept ones */
    assert_int_equal(admit(s, 10000).waiting, nkeep - 10000);
    uint64_t head = keep[10000 - 1] + 1, alive[EL_ARRAY_LEN(samples)];
    size_t nalive = 0; /* the samples checked in this generation */
    for (size_t i = 0; i < EL_ARRAY_LEN(samples); i++) {
        uint64_t num = samples[i] - samples[i] % 7;
        if (num < head || (nalive > 0 && alive[nalive - 1] == num)) continue;
        assert_int_equal(check_ok(s, 0, num).position, blk_rank(head, num));
        alive[nalive++] = num;
    }
    assert_counts_exact(c);

    /* joins after a roll count as a range, crossing into a sixth block */
    struct bulk jb = {.s = s, .lane = 0, .n = BLK_JOIN2};
    run_bulk(&jb);
    assert_int_equal(jb.first, BLK_N);
    static const uint64_t fresh[] = {0, 61535, 61536, BLK_JOIN2 - 1}; /* block 5 starts at +61536 */
    for (size_t i = 0; i < EL_ARRAY_LEN(fresh); i++) {
        struct el_place p = check_ok(s, 0, BLK_N + fresh[i]);
        assert_int_equal(p.position, nkeep - 10000 + fresh[i] + 1);
        assert_int_equal(p.waiting, nkeep - 10000 + BLK_JOIN2);
    }
    assert_counts_exact(c);

    /* the next roll keeps what came back since the last one: the checked
     * samples and the new tickets */
    age_generation(c, 60, 1);
    assert_int_equal(advance_ok(s, 0).waiting, nalive + BLK_JOIN2);
    assert_counts_exact(c);
    for (size_t i = 0; i < nalive; i++) assert_int_equal(check_ok(s, 0, alive[i]).position, i + 1);
    for (size_t i = 0; i < EL_ARRAY_LEN(fresh); i++)
        assert_int_equal(check_ok(s, 0, BLK_N + fresh[i]).position, nalive + fresh[i] + 1);
    assert_int_equal(check_ok(s, 0, 196000).state, EL_PLACE_GONE); /* kept, but not lately */

    /* a room from before the block counts: they are built from the bitmaps */
    peek_cmd(c, "HDEL einlass:{%s}:meter pf r0 r1", room);
    for (int k = 0; k < 4; k++) peek_cmd(c, "DEL einlass:{%s}:blk:%d:%d", room, k / 2, k % 2);
    for (size_t i = 0; i < nalive; i++) assert_int_equal(check_ok(s, 0, alive[i]).position, i + 1);
    for (size_t i = 0; i < EL_ARRAY_LEN(fresh); i++)
        assert_int_equal(check_ok(s, 0, BLK_N + fresh[i]).position, nalive + fresh[i] + 1);
    assert_counts_exact(c);

    /* after a long pause nobody is live (not even the latest joins), and a
     * newcomer is first */
    for (int i = 0; i < 3; i++) join_ok(s, 0);
    age_generation(c, 60, 2);
    assert_int_equal(advance_ok(s, 0).waiting, 0);
    assert_int_equal(check_ok(s, 0, alive[0]).state, EL_PLACE_GONE);
    assert_int_equal(check_ok(s, 0, BLK_N + BLK_JOIN2).state, EL_PLACE_GONE);
    struct el_place p = join_ok(s, 0);
    assert_int_equal(p.num, BLK_N + BLK_JOIN2 + 3);
    assert_int_equal(p.position, 1);
    assert_counts_exact(c);
    free(keep);
    redisFree(c);
    s->ops->free(s);
}

/* A draw is not made before its opening by Redis's clock (an instance
 * whose clock runs ahead does not open early for all): the answer says not
 * drawn, arrivals still join the pre-queue, and once the time has come the
 * draw is made. */
static void test_draw_waits_for_the_opening_by_redis_time(void **state)
{
    struct el_store *s = drv_open(60);
    uint8_t seed[EL_PRE_SEED_LEN] = {9};
    pre_ok(s, 5, EL_PRE_JOIN, NULL);
    struct pre_result r = {0};
    int64_t later = (int64_t)el_wall_ms() + 3600 * 1000;
    s->ops->pre(s, 5, EL_PRE_DRAW, seed, later, drv_now, pre_cb, &r);
    drv_wait(&r.done);
    assert_int_equal(r.err, 0);
    assert_false(r.p.drawn);
    assert_int_equal(pre_ok(s, 5, EL_PRE_JOIN, NULL).i, 1); /* still taking arrivals */
    r = (struct pre_result){0};
    s->ops->pre(s, 5, EL_PRE_DRAW, seed, (int64_t)el_wall_ms() - 1000, drv_now, pre_cb, &r);
    drv_wait(&r.done);
    assert_true(r.p.drawn);
    assert_int_equal(r.p.n, 2);
    s->ops->free(s);
}

/* A room whose numbers have reached start (as after a long life) keeps
 * joining, positions and admissions exact, and its bitmaps stay small: they
 * start at a base below the head, not at 0. */
static void tail_near(uint64_t start, int joins)
{
    store_timeout_ms = 10000; /* the unfixed store allocated 1.3 GB here */
    struct el_store *s = drv_open(60);
    store_timeout_ms = TIMEOUT_MS;
    redisContext *c = peek_open();
    advance_ok(s, 0);
    peek_cmd(c, "HSET einlass:{%s}:meter h0 %llu t0 %llu r0 %llu c0 %llu k0 %llu w0 0 b0 0", room,
             (unsigned long long)start, (unsigned long long)start, (unsigned long long)start,
             (unsigned long long)start, (unsigned long long)start);
    for (int i = 0; i < joins; i++) {
        struct el_place p = join_ok(s, 0);
        assert_true(p.num == start + (uint64_t)i);
        assert_int_equal(p.position, i + 1);
    }
    assert_int_equal(check_ok(s, 0, start + 2).position, 3);
    assert_int_equal(admit(s, 2).waiting, joins - 2);
    assert_int_equal(check_ok(s, 0, start).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ok(s, 0, start + 1).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ok(s, 0, start + 2).position, 1);
    assert_int_equal(check_ok(s, 0, start + (uint64_t)joins - 1).position, joins - 2);
    for (int k = 0; k < 2; k++) /* a few KB each, not 512 MB */
        assert_true(peek_int(c, "STRLEN einlass:{%s}:live:%d:0", room, k) <= 16384);
    assert_true(peek_int(c, "STRLEN einlass:{%s}:x:0", room) <= 16384);
    redisFree(c);
    s->ops->free(s);
}

/* Issue 12: at a tail of 2^32 - 3 a join made Redis allocate 1.3 GB of
 * bitmaps, two more worked, then every join failed ("bit offset is not an
 * integer or out of range") and fell to the local queue for good. */
static void test_tail_near_2_pow_32_keeps_joining_on_redis(void **state)
{
    tail_near((1ull << 32) - 3, 6);
}

/* Lua keeps numbers as doubles: exact up to 2^53, the bound. Numbers up to
 * 2^53 - 1 work; the join after is refused with an error the operator sees
 * (el_store_errors), not a wrong number. */
static void test_tail_near_2_pow_53_keeps_joining_then_refuses_with_an_error(void **state)
{
    tail_near((1ull << 53) - 5, 5);
    redisContext *c = peek_open();
    struct el_store *s = open_on(evb, room, 60);
    uint64_t before = el_store_errors(EL_STORE_OP_JOIN);
    join_fails(s);
    assert_true(el_store_redis_up(s)); /* an error answer is no link failure */
    assert_true(el_store_errors(EL_STORE_OP_JOIN) == before + 1);
    assert_true(peek_int(c, "HGET einlass:{%s}:meter t0", room) == (long long)(1ull << 53));
    redisFree(c);
    s->ops->free(s);
}

/* The bitmaps are cut while tickets wait: numbers from just below 2^23 (a
 * base of 0), the head passes 2^23 and the held admissions expire, so the
 * next script cuts the first 1 MB; positions, the generation roll and
 * admissions stay exact across the cut. */
static void test_bitmaps_cut_below_the_head_while_tickets_wait(void **state)
{
    const uint64_t start = (1ull << 23) - 10;
    struct el_store *s = drv_open(1); /* L = claim = 3 s */
    redisContext *c = peek_open();
    advance_ok(s, 0);
    peek_cmd(c, "HSET einlass:{%s}:meter h0 %llu t0 %llu r0 %llu c0 %llu k0 %llu w0 0 b0 0", room,
             (unsigned long long)start, (unsigned long long)start, (unsigned long long)start,
             (unsigned long long)start, (unsigned long long)start);
    for (int i = 0; i < 20; i++) assert_true(join_ok(s, 0).num == start + (uint64_t)i);
    assert_true(peek_int(c, "STRLEN einlass:{%s}:live:0:0", room) > (1 << 20));
    assert_int_equal(admit(s, 15).waiting, 5);
    for (int i = 0; i < 15; i++) assert_int_equal(check_ok(s, 0, start + i).state, EL_PLACE_ADMITTED);
    uint64_t end = el_now_ms() + 15000; /* the held admissions expire after claim_s (3 s) */
    while (peek_int(c, "HGET einlass:{%s}:meter b0", room) == 0) {
        assert_true(el_now_ms() < end);
        for (int i = 15; i < 20; i++) /* the waiting ones keep polling */
            assert_int_equal(check_ok(s, 0, start + i).position, i - 14);
        advance_ok(s, 0);
        drv_sleep(200);
    }
    assert_int_equal(peek_int(c, "HGET einlass:{%s}:meter b0", room), 1 << 23);
    assert_true(peek_int(c, "STRLEN einlass:{%s}:live:0:0", room) <= 16);
    assert_true(peek_int(c, "STRLEN einlass:{%s}:live:1:0", room) <= 16);
    for (int i = 15; i < 20; i++) assert_int_equal(check_ok(s, 0, start + i).position, i - 14);
    assert_int_equal(check_ok(s, 0, start + 3).state, EL_PLACE_GONE); /* below the cut */
    age_generation(c, 1, 1); /* a roll after the cut: the counts start at the base */
    assert_int_equal(advance_ok(s, 0).waiting, 5);
    assert_int_equal(check_ok(s, 0, start + 19).position, 5);
    struct el_place p = join_ok(s, 0);
    assert_true(p.num == start + 20);
    assert_int_equal(p.position, 6);
    assert_int_equal(admit(s, 2).waiting, 4);
    assert_int_equal(check_ok(s, 0, start + 15).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ok(s, 0, start + 17).position, 1);
    assert_int_equal(check_ok(s, 0, p.num).position, 4);
    redisFree(c);
    s->ops->free(s);
}

static struct el_place check_ep(struct el_store *s, uint8_t lane, uint64_t num, uint32_t epoch)
{
    struct result r = {0};
    s->ops->check(s, lane, num, epoch, drv_now, place_cb, &r);
    drv_wait(&r.done);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.err, 0);
    assert_true(r.place.num == num);
    return r.place;
}

/* Redis lost the room (FLUSHALL, as a restart without persistence): the
 * room gets a new epoch whose numbers are above every old one; tickets of
 * the old epoch come back in any order and are placed in their old order
 * (priority first) ahead of every new ticket, a copied cookie takes no
 * second place, the meter holds 3 x poll_s after it sees the change so
 * everyone can come back first, and then serves them in that order. */
static void test_data_loss_keeps_old_tickets_in_order_ahead_of_new_ones(void **state)
{
    struct el_store *s = drv_open(1), *m = open_on(evb, room, 1); /* a worker and the meter */
    redisContext *c = peek_open();
    advance_ok(m, 0);
    struct el_place old[5], pri = join_ok(s, 1);
    for (int i = 0; i < 5; i++) old[i] = join_ok(s, 0);
    uint32_t e1 = old[0].epoch;
    assert_true(e1 != 0 && pri.epoch == e1);
    assert_int_equal(advance_ok(m, 0).waiting, 6);
    peek_cmd(c, "FLUSHALL");

    struct el_place n = join_ok(s, 0); /* the new epoch */
    assert_true(n.epoch != e1);
    assert_true(n.num > old[4].num); /* never an old ticket's number */
    assert_int_equal(n.position, 1);
    static const int order[] = {3, 1, 4, 0, 2}; /* the order they poll in */
    for (int i = 0; i < 5; i++)
        assert_int_equal(check_ep(s, 0, old[order[i]].num, e1).state, EL_PLACE_WAITING);
    assert_int_equal(check_ep(s, 1, pri.num, e1).position, 1);
    for (int i = 0; i < 5; i++) {
        struct el_place p = check_ep(s, 0, old[i].num, e1);
        assert_int_equal(p.position, i + 2);
        assert_int_equal(p.waiting, 7);
        assert_int_equal(p.epoch, e1); /* its cookie keeps its epoch */
    }
    assert_int_equal(check_ep(s, 0, old[2].num, e1).position, 4); /* a copy: the same place */
    assert_int_equal(check_ok(s, 0, n.num).position, 7);
    assert_int_equal(check_ep(s, 0, n.num, n.epoch).position, 7);

    /* the meter saw the change: it holds 3 s (3 x poll_s), then serves the
     * returning lane first, in its order */
    release_n(m, 3);
    assert_int_equal(advance_ok(m, 0).waiting, 7);
    uint64_t end = el_now_ms() + 10000;
    while (advance_ok(m, 0).waiting == 7) {
        assert_true(el_now_ms() < end);
        assert_int_equal(check_ep(s, 0, old[0].num, e1).state, EL_PLACE_WAITING);
        drv_sleep(100);
    }
    assert_int_equal(advance_ok(m, 0).waiting, 4);
    assert_int_equal(check_ep(s, 1, pri.num, e1).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ep(s, 1, pri.num, e1).state, EL_PLACE_USED);
    assert_int_equal(check_ep(s, 0, old[0].num, e1).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ep(s, 0, old[1].num, e1).state, EL_PLACE_ADMITTED);
    assert_int_equal(check_ep(s, 0, old[1].num, e1).state, EL_PLACE_USED);
    assert_int_equal(check_ep(s, 0, old[2].num, e1).position, 1);
    assert_int_equal(check_ok(s, 0, n.num).position, 4);
    assert_int_equal(admit(m, 3).waiting, 1);
    assert_int_equal(check_ok(s, 0, n.num).position, 1);
    redisFree(c);
    s->ops->free(s);
    m->ops->free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STORE_CASES,
        cmocka_unit_test(test_metering),
        cmocka_unit_test(test_two_instances),
        cmocka_unit_test(test_release_once_across_instances_and_feed),
        cmocka_unit_test(test_restart_keeps_places),
        cmocka_unit_test(test_positions_across_blocks),
        cmocka_unit_test(test_draw_waits_for_the_opening_by_redis_time),
        cmocka_unit_test(test_tail_near_2_pow_32_keeps_joining_on_redis),
        cmocka_unit_test(test_bitmaps_cut_below_the_head_while_tickets_wait),
        cmocka_unit_test(test_tail_near_2_pow_53_keeps_joining_then_refuses_with_an_error),
        cmocka_unit_test(test_data_loss_keeps_old_tickets_in_order_ahead_of_new_ones),
        cmocka_unit_test(test_noscript_falls_back_to_eval),
        cmocka_unit_test(test_free_calls_back_once),
        cmocka_unit_test(test_free_inside_callback),
        cmocka_unit_test(test_hung_redis_times_out),
        cmocka_unit_test(test_killed_redis_comes_back),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
