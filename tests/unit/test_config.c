/* test_config.c - loading, defaults, every error path with its FILE:LINE,
 * path resolution, secrets, bypass networks and the shipped conf. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "einlass/common.h"
#include "einlass/config.h"

#define HEX "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF"
#define ROOM "[room]\nsecret = " HEX "\n"

static char dir[PATH_MAX]; /* mkdtemp directory, resolved */

static char *path_in(const char *name)
{
    return el_sprintf("%s/%s", dir, name);
}

static char *write_file(const char *name, const char *content)
{
    char *p = path_in(name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(content, f);
    assert_int_equal(fclose(f), 0);
    return p;
}

static struct el_config *load_ok(const char *content)
{
    char *p = write_file("t.conf", content);
    struct el_config *cfg = NULL;
    char *err = NULL;
    if (el_config_load(p, &cfg, &err) != 0) fail_msg("unexpected error: %s", err);
    assert_null(err);
    free(p);
    return cfg;
}

/* Load content as t.conf and expect exactly "DIR/t.conf:<want>". */
static void expect_err(const char *content, const char *want)
{
    char *p = write_file("t.conf", content);
    struct el_config *cfg = NULL;
    char *err = NULL;
    assert_int_equal(el_config_load(p, &cfg, &err), -1);
    assert_null(cfg);
    assert_non_null(err);
    char *full = el_sprintf("%s:%s", p, want);
    assert_string_equal(err, full);
    free(full);
    free(err);
    free(p);
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/einlass-test-config-XXXXXX";
    if (mkdtemp(tmpl) == NULL || realpath(tmpl, dir) == NULL) return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static const char *source_dir(void)
{
    static char abs[PATH_MAX];
    const char *s = getenv("EL_SOURCE_DIR");
    if (realpath(s && *s ? s : ".", abs) == NULL) fail_msg("no source dir");
    return abs;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) fail_msg("cannot open %s", path);
    char *buf = el_malloc(1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* --- positive cases ------------------------------------------------------ */

static void test_defaults_when_keys_absent(void **state)
{
    (void)state;
    struct el_config *cfg = load_ok(ROOM);
    assert_string_equal(cfg->listen, "127.0.0.1:8080");
    assert_int_equal(cfg->workers, EL_MIN(EL_MAX(sysconf(_SC_NPROCESSORS_ONLN), 1), 64));
    assert_string_equal(cfg->admin_listen, "127.0.0.1:9090");
    assert_string_equal(cfg->admin_token, "");
    assert_int_equal(cfg->header_timeout_ms, 10000);
    assert_int_equal(cfg->idle_timeout_ms, 60000);
    assert_int_equal(cfg->max_header_bytes, 16384);
    assert_true(cfg->max_body_bytes == 10485760u);
    assert_int_equal(cfg->drain_timeout_ms, 10000);
    assert_false(cfg->access_log);
    assert_string_equal(cfg->log_level, "info");
    assert_string_equal(cfg->backend_address, "127.0.0.1:3000");
    assert_int_equal(cfg->connect_timeout_ms, 2000);
    assert_int_equal(cfg->response_timeout_ms, 30000);
    assert_int_equal(cfg->keepalive, 64);
    assert_string_equal(cfg->latency_metric, "db");
    assert_true(cfg->percentile == 95.0);
    assert_int_equal(cfg->window_ms, 5000);
    assert_int_equal(cfg->min_samples, 20);
    assert_true(cfg->queue_above_ms == 300.0);
    assert_true(cfg->release_below_ms == 150.0);
    assert_int_equal(cfg->release_hold_ms, 10000);
    assert_int_equal(cfg->max_inflight, 0);
    assert_string_equal(cfg->probe_path, "");
    assert_int_equal(cfg->probe_interval_ms, 1000);
    assert_int_equal(cfg->mode, EL_MODE_AUTO);
    assert_int_equal(cfg->store, EL_STORE_MEMORY);
    assert_string_equal(cfg->redis, "127.0.0.1:6379");
    assert_string_equal(cfg->room_name, "portal");
    assert_true(cfg->has_secret);
    assert_int_equal(cfg->secret[0], 0x00);
    assert_int_equal(cfg->secret[1], 0x11);
    assert_int_equal(cfg->secret[31], 0xff);
    assert_false(cfg->has_previous_secret);
    assert_int_equal(cfg->session_s, 600);
    assert_int_equal(cfg->keep_place_s, 600);
    assert_int_equal(cfg->claim_s, 300);
    assert_true(cfg->admit_per_s == 10.0);
    assert_true(cfg->min_admit_per_s == 1.0);
    assert_true(cfg->max_admit_per_s == 100.0);
    assert_true(cfg->adapt);
    assert_int_equal(cfg->poll_s, 5);
    assert_string_equal(cfg->template_path, "");
    assert_int_equal(cfg->nbypass_from, 0);
    assert_int_equal(cfg->ntrusted_proxies, 0);
    assert_int_equal(cfg->proxy_protocol, EL_PROXY_PROTOCOL_OFF);
    assert_int_equal(cfg->nroutes, 0);
    char *p = path_in("t.conf");
    assert_string_equal(cfg->path, p);
    assert_string_equal(cfg->dir, dir);
    free(p);
    el_config_free(cfg);
}

static void test_every_value_is_read(void **state)
{
    (void)state;
    struct el_config *cfg = load_ok(
        "[server]\nlisten = [::1]:8081\nworkers = 3\nadmin_listen = localhost:0\n"
        "admin_token = s3cr#t ; a '#' without a space before it is kept\n"
        "header_timeout_ms = 1\nidle_timeout_ms = 3600000\nmax_header_bytes = 1024\n"
        "max_body_bytes = 1099511627776\ndrain_timeout_ms = 0\naccess_log = YES\n"
        "log_level = debug\n"
        "[backend]\naddress = 10.0.0.2:80\nconnect_timeout_ms = 5\nresponse_timeout_ms = 6\n"
        "keepalive = 0\n"
        "[trigger]\nlatency_metric = sql\npercentile = 99.9\nwindow_ms = 100\nmin_samples = 1\n"
        "queue_above_ms = 250.5\nrelease_below_ms = 250.5\nrelease_hold_ms = 0\n"
        "max_inflight = 7\nprobe_path = /healthz\nprobe_interval_ms = 200\n"
        "[room]\nmode = ON\nstore = redis\nredis = unix:/run/redis.sock\nname = portal-2\n"
        "secret = " HEX "\nprevious_secret = " HEX "\nsession_s = 30\nadmit_per_s = 0.5\n"
        "min_admit_per_s = 0.5\nmax_admit_per_s = 0.5\nadapt = 0\npoll_s = 2\n"
        "keep_place_s = 1800\nclaim_s = 900\n");
    assert_string_equal(cfg->listen, "[::1]:8081");
    assert_int_equal(cfg->workers, 3);
    assert_string_equal(cfg->admin_listen, "localhost:0");
    assert_string_equal(cfg->admin_token, "s3cr#t");
    assert_int_equal(cfg->header_timeout_ms, 1);
    assert_int_equal(cfg->idle_timeout_ms, 3600000);
    assert_int_equal(cfg->max_header_bytes, 1024);
    assert_true(cfg->max_body_bytes == 1099511627776u);
    assert_int_equal(cfg->drain_timeout_ms, 0);
    assert_true(cfg->access_log);
    assert_string_equal(cfg->log_level, "debug");
    assert_string_equal(cfg->backend_address, "10.0.0.2:80");
    assert_int_equal(cfg->connect_timeout_ms, 5);
    assert_int_equal(cfg->response_timeout_ms, 6);
    assert_int_equal(cfg->keepalive, 0);
    assert_string_equal(cfg->latency_metric, "sql");
    assert_true(cfg->percentile == 99.9);
    assert_int_equal(cfg->window_ms, 100);
    assert_int_equal(cfg->min_samples, 1);
    assert_true(cfg->queue_above_ms == 250.5);
    assert_true(cfg->release_below_ms == 250.5);
    assert_int_equal(cfg->release_hold_ms, 0);
    assert_int_equal(cfg->max_inflight, 7);
    assert_string_equal(cfg->probe_path, "/healthz");
    assert_int_equal(cfg->probe_interval_ms, 200);
    assert_int_equal(cfg->mode, EL_MODE_ON);
    assert_int_equal(cfg->store, EL_STORE_REDIS);
    assert_string_equal(cfg->redis, "unix:/run/redis.sock");
    assert_string_equal(cfg->room_name, "portal-2");
    assert_true(cfg->has_previous_secret);
    assert_memory_equal(cfg->previous_secret, cfg->secret, EL_SECRET_LEN);
    assert_int_equal(cfg->session_s, 30);
    assert_true(cfg->admit_per_s == 0.5);
    assert_false(cfg->adapt);
    assert_int_equal(cfg->poll_s, 2);
    assert_int_equal(cfg->keep_place_s, 1800);
    assert_int_equal(cfg->claim_s, 900);
    el_config_free(cfg);
}

static void test_listen_shared(void **state)
{
    (void)state;
    struct el_config *cfg = load_ok(ROOM);
    assert_false(cfg->listen_shared); /* a second instance is refused by default */
    el_config_free(cfg);
    cfg = load_ok(ROOM "[server]\nlisten_shared = on\n");
    assert_true(cfg->listen_shared);
    el_config_free(cfg);
}

static void test_bool_spellings(void **state)
{
    (void)state;
    static const char *const on[] = {"on", "true", "yes", "1", "On", "TRUE"};
    static const char *const off[] = {"off", "false", "no", "0", "OFF", "No"};
    for (size_t i = 0; i < EL_ARRAY_LEN(on); i++) {
        char *text = el_sprintf(ROOM "adapt = %s\n[server]\naccess_log = %s\n", off[i], on[i]);
        struct el_config *cfg = load_ok(text);
        assert_true(cfg->access_log);
        assert_false(cfg->adapt);
        el_config_free(cfg);
        free(text);
    }
}

static void test_syntax_details(void **state)
{
    (void)state;
    /* BOM, CRLF, indentation, '#' and ';' comments, spaces in the header, a
     * reopened section, a comment line that looks like a continuation. */
    struct el_config *cfg = load_ok("\xEF\xBB\xBF; comment\r\n# comment\r\n"
                                    "[ server ]   # inline\r\n"
                                    "    listen = 127.0.0.1:81   # inline hash\r\n"
                                    "\tworkers = 2 ; inline semicolon\r\n"
                                    "              ; indented comment\r\n"
                                    "[room]\nsecret = " HEX "\n"
                                    "[server]\nadmin_listen = 127.0.0.1:82\n");
    assert_string_equal(cfg->listen, "127.0.0.1:81");
    assert_int_equal(cfg->workers, 2);
    assert_string_equal(cfg->admin_listen, "127.0.0.1:82");
    el_config_free(cfg);
}

static void test_long_line(void **state)
{
    (void)state;
    /* Longer than inih's line buffer (200): handled without it. */
    char *list = el_strdup("10.0.0.1");
    for (int i = 2; i <= EL_MAX_CIDRS; i++) {
        char *next = el_sprintf("%s, 2001:db8:1234:%x::/64", list, i);
        free(list);
        list = next;
    }
    assert_true(strlen(list) > 400);
    char *text = el_sprintf(ROOM "bypass_from = %s  ; comment\n", list);
    struct el_config *cfg = load_ok(text);
    assert_int_equal(cfg->nbypass_from, EL_MAX_CIDRS);
    el_config_free(cfg);
    free(text);
    text = el_sprintf(ROOM "bypass_from = %s, 10.9.9.9\n", list);
    expect_err(text, "3: [room] bypass_from: more than 32 networks");
    free(text);
    free(list);
}

static void test_routes(void **state)
{
    (void)state;
    struct el_config *cfg = load_ok(ROOM "[route cancel]\nmatch = POST /appointments/*/cancel\n"
                                         "action = bypass\n"
                                         "[route staff]  ; comment\n"
                                         "action = PRIORITY\nmatch = *   /staff/**\n"
                                         "[route rest]\nmatch = GET /**\n");
    assert_int_equal(cfg->nroutes, 3);
    assert_string_equal(cfg->routes[0].name, "cancel");
    assert_string_equal(cfg->routes[0].method, "POST");
    assert_string_equal(cfg->routes[0].glob, "/appointments/*/cancel");
    assert_int_equal(cfg->routes[0].action, EL_ROUTE_BYPASS);
    assert_int_equal(cfg->routes[0].line, 3);
    assert_string_equal(cfg->routes[1].name, "staff");
    assert_string_equal(cfg->routes[1].method, "*");
    assert_string_equal(cfg->routes[1].glob, "/staff/**");
    assert_int_equal(cfg->routes[1].action, EL_ROUTE_PRIORITY);
    assert_int_equal(cfg->routes[1].line, 6);
    assert_int_equal(cfg->routes[2].action, EL_ROUTE_QUEUE); /* no action: queue */
    el_config_free(cfg);
}

static void test_events(void **state)
{
    (void)state;
    struct el_config *cfg = load_ok(ROOM "[event vaccination]\n"
                                         "opens_at = 2027-03-01T09:00:00+01:00\n"
                                         "prequeue_s = 600\nends_at = 2027-03-01t18:00:00.250z\n"
                                         "[event second]\nopens_at = 2027-03-02 08:00:00Z\n");
    assert_int_equal(cfg->nevents, 2);
    assert_string_equal(cfg->events[0].name, "vaccination");
    assert_int_equal(cfg->events[0].opens_at_ms, 1803888000000LL); /* 08:00 UTC */
    assert_int_equal(cfg->events[0].opens_offset_min, 60);
    assert_int_equal(cfg->events[0].prequeue_s, 600);
    assert_int_equal(cfg->events[0].ends_at_ms, 1803924000250LL);
    assert_int_equal(cfg->events[0].line, 3);
    assert_int_equal(cfg->events[1].prequeue_s, 1800); /* the default */
    assert_int_equal(cfg->events[1].ends_at_ms, 0);
    assert_int_equal(cfg->events[1].opens_at_ms, 1803888000000LL + 86400000LL);
    el_config_free(cfg);
}

static void test_err_events(void **state)
{
    (void)state;
    expect_err(ROOM "[event a]\nopens_at = 2027-03-01T09:00:00\n",
               "4: [event a] opens_at: '2027-03-01T09:00:00' needs an offset at the end: Z, "
               "+HH:MM or -HH:MM (no local time) (e.g. 2027-03-01T09:00:00Z or "
               "2027-03-01T09:00:00+01:00)");
    expect_err(ROOM "[event a]\nopens_at = 2027-02-29T09:00:00Z\n",
               "4: [event a] opens_at: '2027-02-29T09:00:00Z' is not a valid date and time (from "
               "1970) (e.g. 2027-03-01T09:00:00Z or 2027-03-01T09:00:00+01:00)");
    expect_err(ROOM "[event a]\nopens_at = tomorrow\n",
               "4: [event a] opens_at: 'tomorrow' is not YYYY-MM-DDTHH:MM:SS followed by Z or an "
               "offset (e.g. 2027-03-01T09:00:00Z or 2027-03-01T09:00:00+01:00)");
    expect_err(ROOM "[event a]\nprequeue_s = 60\n",
               "3: [event a] has no opens_at (e.g. opens_at = 2027-03-01T09:00:00+01:00)");
    expect_err(ROOM "[event a]\nopens_at = 2027-03-01T09:00:00Z\nprequeue_s = 604801\n",
               "5: [event a] prequeue_s: 604801 is above the maximum 604800");
    expect_err(ROOM "[event a]\nopens_at = 2027-03-01T09:00:00Z\nends_at = 2027-03-01T08:00:00Z\n",
               "5: [event a] ends_at must be after opens_at");
    expect_err(ROOM "[event a]\nopens_at = 2027-03-01T09:00:00Z\n[event a]\n",
               "5: duplicate section [event a] (first on line 3)");
    expect_err(ROOM "[event a b]\n",
               "3: [event a b]: event name 'a b' may hold only letters, digits, '-', '_' and '.'");
    expect_err(ROOM "[event]\n", "3: an event section needs a name: [event NAME]");
    expect_err(ROOM "[event a]\nopens_at = 2027-03-01T09:00:00Z\nmatch = GET /\n",
               "5: [event a] unknown key 'match' (known: opens_at, prequeue_s, ends_at, room)");
    expect_err(ROOM "[event a]\nopens_at = 2027-03-01T09:00:00Z\nroom = nope\n",
               "3: [event a] room: there is no [room nope] section");
    expect_err(ROOM "[event a]\nopens_at = 2027-03-01T09:00:00Z\nroom = a.b\n",
               "5: [event a] room: 'a.b' is not a room name (1 to 32 letters, digits, '-' or "
               "'_')");
}

static void test_mode_off_needs_no_secret(void **state)
{
    (void)state;
    struct el_config *a = load_ok("[room]\nmode = off\n");
    struct el_config *b = load_ok("[room]\nmode = off\n");
    assert_false(a->has_secret);
    /* A random key, different per load. */
    assert_memory_not_equal(a->secret, b->secret, EL_SECRET_LEN);
    el_config_free(a);
    el_config_free(b);
}

static void test_relative_paths(void **state)
{
    (void)state;
    char *sub = path_in("etc"), *tpl = path_in("etc/tpl"), *keys = path_in("keys");
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(mkdir(tpl, 0700), 0);
    assert_int_equal(mkdir(keys, 0700), 0);
    free(write_file("etc/tpl/page.html", "<p>wait</p>"));
    free(write_file("keys/secret", "\n  " HEX "  \n\n"));
    free(write_file("etc/x.conf", "[room]\ntemplate = tpl/page.html\n"
                                  "secret_file = ../keys/secret\n"));
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(dir), 0);
    struct el_config *cfg = NULL;
    char *err = NULL;
    int r = el_config_load("etc/x.conf", &cfg, &err); /* relative to the cwd */
    assert_int_equal(chdir(cwd), 0);
    if (r != 0) fail_msg("%s", err);
    char *want = el_sprintf("%s/etc/tpl/page.html", dir);
    assert_string_equal(cfg->template_path, want);
    assert_true(cfg->has_secret);
    assert_int_equal(cfg->secret[31], 0xff);
    el_config_free(cfg);
    free(want);

    /* An absolute template path stays as it is. */
    char *text = el_sprintf(ROOM "template = %s/etc/tpl/page.html\n", dir);
    cfg = load_ok(text);
    assert_int_equal(strncmp(cfg->template_path, dir, strlen(dir)), 0);
    el_config_free(cfg);
    free(text);
    free(sub);
    free(tpl);
    free(keys);
}

static void test_secret_file_errors(void **state)
{
    (void)state;
    free(write_file("short.key", "abcdef\n"));
    char *want = el_sprintf("2: [room] secret_file: %s/short.key must hold exactly 64 hex "
                            "digits (openssl rand -hex 32)",
                            dir);
    expect_err("[room]\nsecret_file = short.key\n", want);
    free(want);
    want = el_sprintf("3: [room] secret_file: cannot read %s/missing.key: No such file or "
                      "directory",
                      dir);
    expect_err("[room]\n\nsecret_file = missing.key\n", want);
    free(want);
    free(write_file("good.key", HEX));
    expect_err("[room]\nsecret = " HEX "\nsecret_file = good.key\n",
               "3: [room] secret_file: set either secret or secret_file, not both (the other "
               "is on line 2)");
    expect_err("[room]\nsecret_file = good.key\nsecret = " HEX "\n",
               "3: [room] secret: set either secret or secret_file, not both (the other is on "
               "line 2)");
    /* An empty secret does not count as set. */
    struct el_config *cfg = load_ok("[room]\nsecret_file = good.key\nsecret =\n");
    assert_true(cfg->has_secret);
    el_config_free(cfg);
}

/* journal_file: relative to the config file's directory, need not exist yet,
 * but its directory must; journal_max_bytes has a default and 0 = never. */
static void test_journal_file(void **state)
{
    (void)state;
    struct el_config *cfg = load_ok(ROOM);
    assert_string_equal(cfg->journal_file, "");
    assert_true(cfg->journal_max_bytes == 67108864);
    el_config_free(cfg);
    cfg = load_ok("[server]\njournal_file = journal.jsonl\njournal_max_bytes = 0\n" ROOM);
    char *want = path_in("journal.jsonl");
    assert_string_equal(cfg->journal_file, want);
    assert_true(cfg->journal_max_bytes == 0);
    free(want);
    el_config_free(cfg);
    want = el_sprintf("2: [server] journal_file: directory %s/nowhere of %s/nowhere/j.jsonl "
                      "does not exist",
                      dir, dir);
    expect_err("[server]\njournal_file = nowhere/j.jsonl\n" ROOM, want);
    free(want);
}

static void test_bypass_from(void **state)
{
    (void)state;
    struct el_config *cfg = load_ok(ROOM "bypass_from = 10.20.0.0/16, 192.168.1.7 ,"
                                         "2001:db8:20::/48,10.1.2.3/8, 172.16.5.0/23\n");
    assert_int_equal(cfg->nbypass_from, 5);
    struct sockaddr_in in4 = {.sin_family = AF_INET};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    static const struct {
        const char *addr;
        bool want;
    } cases[] = {
        {"10.20.0.1", true},        {"10.20.255.255", true},
        {"10.21.0.1", true}, /* 10/8 */
        {"11.20.0.1", false},       {"192.168.1.7", true},
        {"192.168.1.8", false},     {"172.16.4.1", true},
        {"172.16.5.200", true},     {"172.16.6.1", false},
        {"2001:db8:20::1", true},   {"2001:db8:20:ffff::9", true},
        {"2001:db8:21::1", false},  {"::1", false},
        {"::ffff:10.20.3.4", true}, {"::ffff:9.9.9.9", false}, /* v4 on a dual-stack socket */
    };
    for (size_t i = 0; i < EL_ARRAY_LEN(cases); i++) {
        const struct sockaddr *sa = NULL;
        if (inet_pton(AF_INET, cases[i].addr, &in4.sin_addr) == 1)
            sa = (const struct sockaddr *)&in4;
        else if (inet_pton(AF_INET6, cases[i].addr, &in6.sin6_addr) == 1)
            sa = (const struct sockaddr *)&in6;
        else
            fail_msg("bad test address %s", cases[i].addr);
        if (el_config_bypass_addr(cfg, sa) != cases[i].want)
            fail_msg("%s: want %d", cases[i].addr, cases[i].want);
    }
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    assert_false(el_config_bypass_addr(cfg, (const struct sockaddr *)&un));
    el_config_free(cfg);

    cfg = load_ok(ROOM "bypass_from = 0.0.0.0/0\n");
    inet_pton(AF_INET, "203.0.113.9", &in4.sin_addr);
    assert_true(el_config_bypass_addr(cfg, (const struct sockaddr *)&in4));
    inet_pton(AF_INET6, "2001:db8::1", &in6.sin6_addr);
    assert_false(el_config_bypass_addr(cfg, (const struct sockaddr *)&in6));
    el_config_free(cfg);

    cfg = load_ok(ROOM "bypass_from =\n");
    assert_false(el_config_bypass_addr(cfg, (const struct sockaddr *)&in4));
    el_config_free(cfg);
}

static void test_trusted_proxies_and_proxy_protocol(void **state)
{
    (void)state;
    struct el_config *cfg = load_ok("[server]\ntrusted_proxies = 127.0.0.1/32, ::1, 10.0.0.0/8\n"
                                    "proxy_protocol = v2\n" ROOM "bypass_from = 10.20.0.0/16\n");
    assert_int_equal(cfg->ntrusted_proxies, 3);
    assert_int_equal(cfg->nbypass_from, 1); /* two lists, each its own */
    assert_int_equal(cfg->proxy_protocol, EL_PROXY_PROTOCOL_V2);
    struct sockaddr_in in4 = {.sin_family = AF_INET};
    struct sockaddr_in6 in6 = {.sin6_family = AF_INET6};
    inet_pton(AF_INET, "127.0.0.1", &in4.sin_addr);
    assert_true(el_config_trusted_addr(cfg, (const struct sockaddr *)&in4));
    assert_false(el_config_bypass_addr(cfg, (const struct sockaddr *)&in4));
    inet_pton(AF_INET, "127.0.0.2", &in4.sin_addr);
    assert_false(el_config_trusted_addr(cfg, (const struct sockaddr *)&in4));
    inet_pton(AF_INET, "10.20.0.1", &in4.sin_addr); /* in both */
    assert_true(el_config_trusted_addr(cfg, (const struct sockaddr *)&in4));
    assert_true(el_config_bypass_addr(cfg, (const struct sockaddr *)&in4));
    inet_pton(AF_INET6, "::1", &in6.sin6_addr);
    assert_true(el_config_trusted_addr(cfg, (const struct sockaddr *)&in6));
    el_config_free(cfg);

    expect_err("[server]\nproxy_protocol = v2\n" ROOM,
               "2: [server] proxy_protocol = v2 needs trusted_proxies (the addresses of the "
               "proxies allowed to send the header)");
    expect_err("[server]\nproxy_protocol = v1\n" ROOM,
               "2: [server] proxy_protocol: 'v1' is not one of off, v2");
    expect_err("[server]\ntrusted_proxies = nginx.local\n" ROOM,
               "2: [server] trusted_proxies: 'nginx.local' is not an IPv4 or IPv6 network (e.g. "
               "10.0.0.0/8, 2001:db8::/32)");
    expect_err("[server]\ntrusted_proxies = 127.0.0.1/32,\n" ROOM,
               "2: [server] trusted_proxies: empty entry in the list");
}

static void test_restart_key(void **state)
{
    (void)state;
    struct el_config *a = load_ok(ROOM "[server]\nlisten = 127.0.0.1:1\nworkers = 2\n");
    struct el_config *b = load_ok(ROOM "[server]\nlisten = 127.0.0.1:1\nworkers = 2\n"
                                       "header_timeout_ms = 5\n");
    struct el_config *c = load_ok(ROOM "[server]\nlisten = 127.0.0.1:1\nworkers = 3\n");
    struct el_config *d = load_ok(ROOM "[server]\nlisten = 127.0.0.1:2\nworkers = 2\n");
    assert_null(el_config_restart_key(a, b));
    assert_string_equal(el_config_restart_key(a, c), "workers");
    assert_null(el_config_restart_key(a, d)); /* listeners are re-bound on reload */
    el_config_free(a);
    el_config_free(b);
    el_config_free(c);
    el_config_free(d);
}

#define HEX2 "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"
#define HEX3 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_inherit_carries_the_old_secret_over(void **state)
{
    (void)state;
    struct el_config *old = load_ok(ROOM);
    struct el_config *same = load_ok(ROOM);
    struct el_config *rotated = load_ok("[room]\nsecret = " HEX2 "\n");
    struct el_config *named = load_ok("[room]\nsecret = " HEX2 "\nprevious_secret = " HEX3 "\n");
    el_config_inherit(same, old); /* the same secret: nothing to keep */
    assert_false(same->has_previous_secret);
    el_config_inherit(rotated, old); /* a new secret keeps the old one */
    assert_true(rotated->has_previous_secret);
    assert_memory_equal(rotated->previous_secret, old->secret, EL_SECRET_LEN);
    uint8_t want[EL_SECRET_LEN];
    memcpy(want, named->previous_secret, EL_SECRET_LEN);
    el_config_inherit(named, old); /* a previous_secret in the file wins */
    assert_true(named->has_previous_secret);
    assert_memory_equal(named->previous_secret, want, EL_SECRET_LEN);
    assert_memory_not_equal(named->previous_secret, old->secret, EL_SECRET_LEN);
    el_config_free(old);
    el_config_free(same);
    el_config_free(rotated);
    el_config_free(named);
}

/* --- the documented defaults and the shipped file ------------------------ */

static char *defaults_text(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    el_config_print_defaults(f);
    fclose(f);
    return text;
}

static void test_print_defaults_loads(void **state)
{
    (void)state;
    char *text = defaults_text();
    assert_non_null(strstr(text, "\n[server]\n"));
    assert_non_null(strstr(text, "\npercentile = 95\n"));
    assert_non_null(strstr(text, "(1..99.9)"));
    assert_non_null(strstr(text, "\n; secret = "));
    assert_non_null(strstr(text, "\n; match = POST /appointments/*/cancel\n"));
    char *full = el_sprintf("%s" ROOM, text);
    struct el_config *cfg = load_ok(full);
    struct el_config *plain = load_ok(ROOM);
    assert_int_equal(cfg->header_timeout_ms, plain->header_timeout_ms);
    assert_true(cfg->max_body_bytes == plain->max_body_bytes);
    assert_string_equal(cfg->log_level, plain->log_level);
    assert_true(cfg->percentile == plain->percentile);
    assert_null(el_config_restart_key(cfg, plain));
    el_config_free(cfg);
    el_config_free(plain);
    free(full);
    free(text);
}

/* Every key of the table appears in conf/einlass.conf as "key = ...",
 * possibly commented out with "; ". */
static void test_shipped_conf_documents_every_key(void **state)
{
    (void)state;
    char *text = defaults_text();
    char *path = el_sprintf("%s/conf/einlass.conf", source_dir());
    char *shipped = slurp(path);
    unsigned nkeys = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char name[64];
        const char *p = strncmp(line, "; ", 2) == 0 ? line + 2 : line;
        if (sscanf(p, "%63[a-z_]", name) != 1 || strncmp(p + strlen(name), " =", 2) != 0) continue;
        char *a = el_sprintf("\n%s ", name), *b = el_sprintf("\n; %s ", name);
        if (strstr(shipped, a) == NULL && strstr(shipped, b) == NULL)
            fail_msg("conf/einlass.conf lacks key %s", name);
        free(a);
        free(b);
        nkeys++;
    }
    assert_int_equal(nkeys, 64); /* 16 server, 8 backend, 10 trigger, 22 room, 2 room NAME,
                                    2 route, 4 event */
    free(shipped);
    free(path);
    free(text);
}

static void test_shipped_conf_loads(void **state)
{
    (void)state;
    char *path = el_sprintf("%s/conf/einlass.conf", source_dir());
    char *shipped = slurp(path);
    /* As shipped: fine, or only missing /var/lib/einlass/secret. */
    struct el_config *cfg = NULL;
    char *err = NULL;
    if (el_config_load(path, &cfg, &err) == 0) {
        assert_non_null(cfg);
        el_config_free(cfg);
    } else {
        int line = 1;
        char *at = strstr(shipped, "\nsecret_file = ");
        assert_non_null(at);
        for (char *p = shipped; p <= at; p++)
            line += *p == '\n';
        char *want = el_sprintf("%s:%d: [room] secret_file: cannot read /var/lib/einlass/secret",
                                path, line);
        assert_int_equal(strncmp(err, want, strlen(want)), 0);
        free(want);
        free(err);
    }

    /* With the secret in our directory and the template by absolute path. */
    char *key = write_file("shipped.key", HEX "\n");
    char *tpl = el_sprintf("%s/conf/", source_dir());
    char *copy = el_strdup("");
    for (char *line = strtok(shipped, "\n"); line; line = strtok(NULL, "\n")) {
        char *next;
        if (strncmp(line, "secret_file =", 13) == 0)
            next = el_sprintf("%ssecret_file = %s\n", copy, key);
        else if (strncmp(line, "template = ", 11) == 0 && line[11] != '/' && line[11] != ' ')
            next = el_sprintf("%stemplate = %s%s\n", copy, tpl, line + 11);
        else
            next = el_sprintf("%s%s\n", copy, line);
        free(copy);
        copy = next;
    }
    cfg = load_ok(copy);
    assert_int_equal(cfg->mode, EL_MODE_AUTO);
    assert_true(cfg->has_secret);
    assert_true(cfg->nroutes >= 2);
    assert_string_equal(cfg->routes[0].method, "POST");
    assert_string_equal(cfg->routes[0].glob, "/appointments/*/cancel");
    assert_int_equal(cfg->routes[0].action, EL_ROUTE_BYPASS);
    el_config_free(cfg);
    free(copy);
    free(tpl);
    free(key);
    free(shipped);
    free(path);
}

/* --- errors: each names FILE:LINE ---------------------------------------- */

static void test_err_cannot_open(void **state)
{
    (void)state;
    char *p = path_in("nope.conf");
    struct el_config *cfg = NULL;
    char *err = NULL;
    assert_int_equal(el_config_load(p, &cfg, &err), -1);
    assert_null(cfg);
    char *want = el_sprintf("%s:0: cannot open: No such file or directory", p);
    assert_string_equal(err, want);
    free(want);
    free(err);
    free(p);
}

static void test_err_sections(void **state)
{
    (void)state;
    expect_err(ROOM "[bogus]\n", "3: unknown section [bogus] (allowed: server, backend, "
                                 "trigger, room, room NAME, route NAME, event NAME)");
    expect_err(ROOM "[Server]\nlisten = 127.0.0.1:1\n",
               "3: unknown section [Server] (allowed: server, backend, trigger, room, room "
               "NAME, route NAME, event NAME)");
    expect_err("listen = 127.0.0.1:1\n" ROOM, "1: key 'listen' outside of any section");
    expect_err(ROOM "[server\n", "3: a section header must be [NAME] alone on its line");
    expect_err(ROOM "[server] x\n", "3: a section header must be [NAME] alone on its line");
    expect_err(ROOM "[server]\nlisten\n", "4: expected key = value, [section] or a comment");
    expect_err(ROOM "[route]\nmatch = GET /\n", "3: a route section needs a name: [route NAME]");
    expect_err(ROOM "[routex]\n", "3: unknown section [routex] (allowed: server, backend, "
                                  "trigger, room, room NAME, route NAME, event NAME)");
}

static void test_err_unknown_key(void **state)
{
    (void)state;
    expect_err(ROOM "[backend]\naddress = 127.0.0.1:1\nadress = 127.0.0.1:2\n",
               "5: [backend] unknown key 'adress' (known: address, connect_timeout_ms, "
               "response_timeout_ms, keepalive, max_concurrency, queue_timeout_ms, "
               "min_concurrency, max_concurrency_cap)");
    expect_err(ROOM "[route a]\nmatch = GET /\nmethod = GET\n",
               "5: [route a] unknown key 'method' (known: match, action)");
}

static void test_err_duplicate_key(void **state)
{
    (void)state;
    expect_err(ROOM "[server]\nlisten = 127.0.0.1:1\n\nlisten = 127.0.0.1:2\n",
               "6: [server] listen: duplicate key (first set on line 4)");
    /* also across a reopened section */
    expect_err(ROOM "[server]\nworkers = 1\n[room]\n[server]\nworkers = 2\n",
               "7: [server] workers: duplicate key (first set on line 4)");
    expect_err(ROOM "[route a]\nmatch = GET /\nmatch = GET /x\n",
               "5: [route a] match: duplicate key (first set on line 4)");
    /* the same key in two routes is fine */
    struct el_config *cfg = load_ok(ROOM "[route a]\nmatch = GET /\n[route b]\nmatch = GET /\n");
    assert_int_equal(cfg->nroutes, 2);
    el_config_free(cfg);
    expect_err(ROOM "[route a]\nmatch = GET /\n[route a]\nmatch = GET /x\n",
               "5: duplicate section [route a] (first on line 3)");
}

static void test_err_numbers(void **state)
{
    (void)state;
    expect_err("[server]\nheader_timeout_ms = 10s\n" ROOM,
               "2: [server] header_timeout_ms: '10s' is not an integer (allowed: 1..3600000)");
    expect_err("[server]\nheader_timeout_ms =\n" ROOM,
               "2: [server] header_timeout_ms: '' is not an integer (allowed: 1..3600000)");
    expect_err("[server]\nheader_timeout_ms = 0\n" ROOM,
               "2: [server] header_timeout_ms: 0 is below the minimum 1");
    expect_err("[server]\nidle_timeout_ms = 99999999999999999999\n" ROOM,
               "2: [server] idle_timeout_ms: '99999999999999999999' is not an integer "
               "(allowed: 1..3600000)");
    expect_err("[server]\nworkers = 65\n" ROOM, "2: [server] workers: 65 is above the maximum 63");
    expect_err("[server]\nworkers = many\n" ROOM,
               "2: [server] workers: 'many' is not an integer (allowed: auto or 1..63)");
    expect_err("[server]\nmax_header_bytes = 100\n" ROOM,
               "2: [server] max_header_bytes: 100 is below the minimum 1024");
    expect_err("[server]\nmax_body_bytes = -1\n" ROOM,
               "2: [server] max_body_bytes: '-1' is not a whole number of bytes (allowed: "
               "0..1099511627776)");
    expect_err("[server]\nmax_body_bytes = 1099511627777\n" ROOM,
               "2: [server] max_body_bytes: 1099511627777 is above the maximum 1099511627776");
    expect_err(ROOM "[trigger]\n\n\n\n\n\n\n\n\npercentile = 150\n",
               "12: [trigger] percentile: 150 is above the maximum 99.9");
    expect_err(ROOM "[trigger]\npercentile = 0.5\n",
               "4: [trigger] percentile: 0.5 is below the minimum 1");
    expect_err(ROOM "[trigger]\npercentile = nan\n",
               "4: [trigger] percentile: 'nan' is not a number (allowed: 1..99.9)");
    expect_err(ROOM "[trigger]\npercentile = 1e999\n",
               "4: [trigger] percentile: '1e999' is not a number (allowed: 1..99.9)");
}

static void test_max_joins_per_ip_per_min(void **state)
{
    (void)state;
    struct el_config *cfg = load_ok(ROOM);
    assert_int_equal(cfg->max_joins_per_ip_per_min, 60);
    el_config_free(cfg);
    cfg = load_ok(ROOM "max_joins_per_ip_per_min = 0\n");
    assert_int_equal(cfg->max_joins_per_ip_per_min, 0); /* no limit */
    el_config_free(cfg);
    cfg = load_ok(ROOM "max_joins_per_ip_per_min = 5\n");
    assert_int_equal(cfg->max_joins_per_ip_per_min, 5);
    el_config_free(cfg);
    expect_err(ROOM "max_joins_per_ip_per_min = -1\n",
               "3: [room] max_joins_per_ip_per_min: -1 is below the minimum 0");
    expect_err(ROOM "max_joins_per_ip_per_min = 100001\n",
               "3: [room] max_joins_per_ip_per_min: 100001 is above the maximum 100000");
}

static void test_max_concurrency_auto_number_or_unlimited(void **state)
{
    (void)state;
    struct el_config *cfg = load_ok(ROOM);
    assert_int_equal(cfg->max_concurrency, 0); /* unlimited by default: auto is opt-in */
    assert_int_equal(cfg->queue_timeout_ms, 2000);
    el_config_free(cfg);
    cfg = load_ok("[backend]\nmax_concurrency = 0\nqueue_timeout_ms = 50\n" ROOM);
    assert_int_equal(cfg->max_concurrency, 0); /* unlimited */
    assert_int_equal(cfg->queue_timeout_ms, 50);
    el_config_free(cfg);
    cfg = load_ok("[backend]\nmax_concurrency = 3\n" ROOM);
    assert_int_equal(cfg->max_concurrency, 3);
    el_config_free(cfg);
    cfg = load_ok("[backend]\nmax_concurrency = auto\n" ROOM);
    assert_int_equal(cfg->max_concurrency, -1);
    el_config_free(cfg);
    expect_err("[backend]\nmax_concurrency = many\n" ROOM,
               "2: [backend] max_concurrency: 'many' is not an integer (allowed: auto or 0..1000000)");
    expect_err("[backend]\nmax_concurrency = -1\n" ROOM,
               "2: [backend] max_concurrency: -1 is below the minimum 0");
    expect_err("[backend]\nqueue_timeout_ms = 0\n" ROOM,
               "2: [backend] queue_timeout_ms: 0 is below the minimum 1");
}

static void test_err_words(void **state)
{
    (void)state;
    expect_err(ROOM "adapt = maybe\n", "3: [room] adapt: 'maybe' is not a boolean (allowed: on, "
                                       "off, true, false, yes, no, 1, 0)");
    expect_err(ROOM "mode = sometimes\n",
               "3: [room] mode: 'sometimes' is not one of auto, on, off");
    expect_err(ROOM "store = disk\n", "3: [room] store: 'disk' is not one of memory, redis");
    expect_err("[server]\nlog_level = verbose\n" ROOM,
               "2: [server] log_level: 'verbose' is not one of err, warn, notice, info, debug");
    expect_err(ROOM "name =\n", "3: [room] name: must not be empty");
    expect_err(ROOM "name = my room\n",
               "3: [room] name: 'my room' may hold only letters, digits and !#$%&'*+-.^_`|~");
    expect_err("[trigger]\nprobe_path = healthz\n" ROOM,
               "2: [trigger] probe_path: 'healthz' must be empty or a path starting with '/'");
}

static void test_err_addresses(void **state)
{
    (void)state;
    expect_err("[server]\nlisten = 127.0.0.1\n" ROOM,
               "2: [server] listen: '127.0.0.1': expected host:port");
    expect_err("[server]\nlisten = unix:/tmp/x.sock\n" ROOM,
               "2: [server] listen: 'unix:/tmp/x.sock': unix sockets are not allowed here");
    expect_err("[backend]\naddress = portal.example:80\n" ROOM,
               "2: [backend] address: 'portal.example:80': host must be an IPv4 or IPv6 "
               "address (or localhost)");
    expect_err("[server]\nadmin_listen = 127.0.0.1:99999\n" ROOM,
               "2: [server] admin_listen: '127.0.0.1:99999': port must be a number from 0 to "
               "65535");
    expect_err(ROOM "redis = unix:\n",
               "3: [room] redis: 'unix:': unix socket path is empty or too long");
    expect_err(ROOM "bypass_from = 10.0.0.0/33\n",
               "3: [room] bypass_from: '10.0.0.0/33' is not an IPv4 or IPv6 network (e.g. "
               "10.0.0.0/8, 2001:db8::/32)");
    expect_err(ROOM "bypass_from = 10.0.0.0/8,,10.1.0.0/16\n",
               "3: [room] bypass_from: empty entry in the list");
}

static void test_err_secrets(void **state)
{
    (void)state;
    expect_err("[room]\nsecret = abc\n", "2: [room] secret: must be exactly 64 hex digits (got 3 "
                                         "characters; make one with: openssl rand -hex 32)");
    expect_err("[room]\nsecret = " HEX "0\n", "2: [room] secret: must be exactly 64 hex digits "
                                              "(got 65 characters; make one with: openssl rand "
                                              "-hex 32)");
    expect_err(ROOM "previous_secret = "
                    "zz" HEX "\n",
               "3: [room] previous_secret: must be exactly 64 hex digits (got 66 characters; "
               "make one with: openssl rand -hex 32)");
    expect_err("[server]\nlisten = 127.0.0.1:1\n",
               "0: [room] no secret: set secret or secret_file (make one with: openssl rand "
               "-hex 32)");
    expect_err("[room]\nmode = on\nsecret =\n",
               "0: [room] no secret: set secret or secret_file (make one with: openssl rand "
               "-hex 32)");
}

static void test_err_routes(void **state)
{
    (void)state;
    const char *bad_match = "must be METHOD PATH-GLOB (METHOD a token or *, the glob starting "
                            "with '/', e.g. POST /appointments/*/cancel)";
    static const char *const bad[] = {"/x", "GET x", "GET", "G(T /x", "GET /a b", "GE* /x", ""};
    for (size_t i = 0; i < EL_ARRAY_LEN(bad); i++) {
        char *text = el_sprintf(ROOM "[route r]\nmatch = %s\n", bad[i]);
        char *want = el_sprintf("4: [route r] match: '%s' %s", bad[i], bad_match);
        expect_err(text, want);
        free(text);
        free(want);
    }
    expect_err(ROOM "[route r]\nmatch = GET /x\naction = allow\n",
               "5: [route r] action: 'allow' is not one of queue, bypass, priority, reject");
    expect_err(ROOM "[route r]\naction = bypass\n\n[route s]\nmatch = GET /\n",
               "3: [route r] has no match (e.g. match = GET /healthz)");
    expect_err(ROOM "[route last]\n", "3: [route last] has no match (e.g. match = GET /healthz)");

    char *text = el_strdup(ROOM);
    for (int i = 0; i <= EL_MAX_ROUTES; i++) {
        char *next = el_sprintf("%s[route r%d]\nmatch = GET /%d\n", text, i, i);
        free(text);
        text = next;
    }
    expect_err(text, "131: more than 64 route sections");
    free(text);
}

static void test_err_cross_checks(void **state)
{
    (void)state;
    expect_err(ROOM "[trigger]\nrelease_below_ms = 400\nqueue_above_ms = 300\n",
               "5: [trigger] release_below_ms (400) must not be above queue_above_ms (300)");
    expect_err(ROOM "[trigger]\nrelease_below_ms = 100\n\nqueue_above_ms = 50\n",
               "6: [trigger] release_below_ms (100) must not be above queue_above_ms (50)");
    expect_err(ROOM "admit_per_s = 200\nmax_admit_per_s = 100\n",
               "4: [room] admit_per_s (200) must not be above max_admit_per_s (100)");
    expect_err(ROOM "max_admit_per_s = 5\nadmit_per_s = 5\nmin_admit_per_s = 5.5\n",
               "5: [room] min_admit_per_s (5.5) must not be above max_admit_per_s (5)");
    expect_err(ROOM "max_admit_per_s = 6\nadmit_per_s = 5\nmin_admit_per_s = 5.5\n",
               "5: [room] min_admit_per_s (5.5) must not be above admit_per_s (5)");
    expect_err(ROOM "keep_place_s = 120\n", /* claim_s defaults to 300 */
               "3: [room] claim_s (300, the default: the file does not set claim_s; set it) "
               "must not be above keep_place_s (120)");
    expect_err(ROOM "claim_s = 700\n",
               "3: [room] claim_s (700) must not be above keep_place_s (600, the default: the "
               "file does not set keep_place_s; set it)");
    expect_err(ROOM "keep_place_s = 0\n", "3: [room] keep_place_s: 0 is below the minimum 1");
    expect_err(ROOM "[backend]\nmax_concurrency_cap = 4\nmin_concurrency = 5\n",
               "5: [backend] min_concurrency (5) must not be above max_concurrency_cap (4)");
    expect_err(ROOM "[backend]\nmin_concurrency = 0\n", "4: [backend] min_concurrency: 0 is below the minimum 1");
    expect_err(ROOM "settle_ms = -1\n", "3: [room] settle_ms: -1 is below the minimum 0");
    expect_err(ROOM "[backend]\nmax_concurrency_cap = 1\n",
               "4: [backend] min_concurrency (2, the default: the file does not set "
               "min_concurrency; set it) must not be above max_concurrency_cap (1)");
    struct el_config *cfg = load_ok(ROOM "settle_ms = 9000\n[backend]\nmin_concurrency = 3\n"
                                         "max_concurrency_cap = 40\n");
    assert_int_equal(cfg->settle_ms, 9000);
    assert_int_equal(cfg->min_concurrency, 3);
    assert_int_equal(cfg->max_concurrency_cap, 40);
    el_config_free(cfg);
}

static void test_admit_per_s_500_alone_is_accepted(void **state)
{
    (void)state;
    struct el_config *cfg = load_ok(ROOM "admit_per_s = 500\n");
    assert_true(cfg->admit_per_s == 500.0);
    assert_true(cfg->max_admit_per_s == 500.0); /* max(100, admit_per_s) */
    assert_true(cfg->min_admit_per_s == 1.0);
    el_config_free(cfg);
}

static void test_admit_per_s_half_alone_is_accepted(void **state)
{
    (void)state;
    struct el_config *cfg = load_ok(ROOM "admit_per_s = 0.5\n");
    assert_true(cfg->admit_per_s == 0.5);
    assert_true(cfg->min_admit_per_s == 0.5); /* min(1, admit_per_s) */
    assert_true(cfg->max_admit_per_s == 100.0);
    el_config_free(cfg);
}

static void test_unset_admit_per_s_follows_the_bounds_the_file_sets(void **state)
{
    (void)state;
    struct el_config *cfg = load_ok(ROOM "max_admit_per_s = 5\n");
    assert_true(cfg->admit_per_s == 5.0);
    assert_true(cfg->min_admit_per_s == 1.0);
    el_config_free(cfg);
    cfg = load_ok(ROOM "min_admit_per_s = 200\n");
    assert_true(cfg->admit_per_s == 200.0);
    assert_true(cfg->max_admit_per_s == 200.0);
    el_config_free(cfg);
    cfg = load_ok(ROOM "max_admit_per_s = 0.5\n");
    assert_true(cfg->admit_per_s == 0.5 && cfg->min_admit_per_s == 0.5);
    el_config_free(cfg);
    cfg = load_ok(ROOM "[trigger]\nqueue_above_ms = 100\n");
    assert_true(cfg->release_below_ms == 50.0); /* min(150, queue_above_ms / 2) */
    el_config_free(cfg);
}

static void test_error_about_an_unset_key_names_it(void **state)
{
    (void)state;
    expect_err(ROOM "[trigger]\nrelease_below_ms = 400\n",
               "4: [trigger] release_below_ms (400) must not be above queue_above_ms (300, the "
               "default: the file does not set queue_above_ms; set it)");
}

static void test_check_rate_refuses_what_the_file_would(void **state)
{
    (void)state;
    char why[200];
    struct el_config *cfg = load_ok(ROOM);
    assert_int_equal(el_config_check_rate(cfg, 500, why, sizeof(why)), 0);
    assert_int_equal(el_config_check_rate(cfg, 0.5, why, sizeof(why)), 0);
    assert_int_equal(el_config_check_rate(cfg, 0.001, why, sizeof(why)), -1);
    assert_string_equal(why, "[room] admit_per_s: 0.001 is below the minimum 0.01");
    assert_int_equal(el_config_check_rate(cfg, 200000, why, sizeof(why)), -1);
    assert_string_equal(why, "[room] admit_per_s: 200000 is above the maximum 100000");
    el_config_free(cfg);
    cfg = load_ok(ROOM "min_admit_per_s = 2\nmax_admit_per_s = 50\n");
    assert_int_equal(el_config_check_rate(cfg, 50, why, sizeof(why)), 0);
    assert_int_equal(el_config_check_rate(cfg, 80, why, sizeof(why)), -1);
    assert_string_equal(why, "[room] admit_per_s (80) must not be above max_admit_per_s (50)");
    assert_int_equal(el_config_check_rate(cfg, 1, why, sizeof(why)), -1);
    assert_string_equal(why, "[room] min_admit_per_s (2) must not be above admit_per_s (1)");
    el_config_free(cfg);
}

static void test_err_template(void **state)
{
    (void)state;
    char *want = el_sprintf("4: [room] template: cannot read %s/absent.html: No such file or "
                            "directory",
                            dir);
    expect_err(ROOM "\ntemplate = absent.html\n", want);
    free(want);
    char *sub = path_in("adir");
    assert_int_equal(mkdir(sub, 0700), 0);
    want = el_sprintf("3: [room] template: %s/adir is not a regular file", dir);
    expect_err(ROOM "template = adir\n", want);
    free(want);
    free(sub);
    struct el_config *cfg = load_ok(ROOM "template =\n");
    assert_string_equal(cfg->template_path, "");
    el_config_free(cfg);
}

/* workers is bounded by the key table, as the server sizes its threads:
 * 64 was once accepted and then cut to 63 without a word. */
static void test_workers_above_the_worker_slots_is_an_error(void **state)
{
    (void)state;
    struct el_config *cfg = load_ok(ROOM "[server]\nworkers = 63\n");
    assert_int_equal(cfg->workers, 63);
    el_config_free(cfg);
    expect_err(ROOM "[server]\nworkers = 64\n",
               "4: [server] workers: 64 is above the maximum 63");
    expect_err(ROOM "[server]\nworkers = 0\n", "4: [server] workers: 0 is below the minimum 1");
}

/* The enum keys parse by the words of their tables, in any case. */
static void test_enum_keys_use_the_word_tables(void **state)
{
    (void)state;
    struct el_config *cfg = load_ok(ROOM "mode = ON\nstore = Memory\n[server]\nlog_level = "
                                         "NOTICE\naccess_log = Yes\nproxy_protocol = V2\n"
                                         "trusted_proxies = 127.0.0.1/32\n");
    assert_int_equal(cfg->mode, EL_MODE_ON);
    assert_int_equal(cfg->store, EL_STORE_MEMORY);
    assert_string_equal(cfg->log_level, "notice"); /* stored as the table spells it */
    assert_int_equal(el_config_log_level(cfg), EL_LOG_NOTICE);
    assert_true(cfg->access_log);
    assert_int_equal(cfg->proxy_protocol, EL_PROXY_PROTOCOL_V2);
    el_config_free(cfg);
    expect_err(ROOM "mode = sometimes\n",
               "3: [room] mode: 'sometimes' is not one of auto, on, off");
    assert_string_equal(el_mode_name(EL_MODE_AUTO), "auto");
    assert_string_equal(el_mode_name(EL_MODE_ON), "on");
    assert_string_equal(el_mode_name(EL_MODE_OFF), "off");
    assert_string_equal(el_mode_name(7), "auto");
    int m = -1;
    assert_int_equal(el_mode_parse("Off", 3, &m), 0);
    assert_int_equal(m, EL_MODE_OFF);
    assert_int_equal(el_mode_parse("of", 2, &m), -1);
    assert_int_equal(el_mode_parse("offf", 4, &m), -1);
    assert_int_equal(m, EL_MODE_OFF); /* untouched on failure */
}

/* [room] redis takes URLs and Sentinel; the password comes from a file
 * relative to the config, never twice; redis_timeout_ms is bounded. */
static void test_redis_addresses_password_file_and_timeout(void **state)
{
    (void)state;
    struct el_config *cfg = load_ok(ROOM "redis = redis://einlass@localhost:6380/2\n");
    assert_string_equal(cfg->redis, "redis://einlass@localhost:6380/2");
    assert_string_equal(cfg->redis_password, "");
    assert_int_equal(cfg->redis_timeout_ms, 500);
    el_config_free(cfg);
    cfg = load_ok(ROOM "redis = sentinel://10.0.0.1,10.0.0.2:26380/mymaster\n"
                       "redis_timeout_ms = 1500\n");
    assert_int_equal(cfg->redis_timeout_ms, 1500);
    el_config_free(cfg);
    free(write_file("redis-pw", "s3cr:t@x\nignored\n"));
    cfg = load_ok(ROOM "redis_password_file = redis-pw\n");
    assert_string_equal(cfg->redis_password, "s3cr:t@x");
    assert_non_null(strstr(cfg->redis_password_file, "/redis-pw"));
    assert_int_equal(cfg->redis_password_file[0], '/');
    el_config_free(cfg);
    expect_err(ROOM "redis = redis://u:pw@h:6379\nredis_password_file = redis-pw\n",
               "4: [room] the password is in both redis and redis_password_file: keep it in "
               "the file");
    expect_err(ROOM "redis = redis://u:pw@h:99999\n",
               "3: [room] redis: the port must be a number 1-65535");
    expect_err(ROOM "redis = rediss://h:6379\n",
               "3: [room] redis: 'rediss://h:6379': unknown scheme (redis:// or sentinel://; "
               "for TLS run a stunnel sidecar)");
    expect_err(ROOM "redis_timeout_ms = 0\n", "3: [room] redis_timeout_ms: 0 is below the minimum 1");
    free(write_file("redis-pw-empty", "\n"));
    char *empty = path_in("redis-pw-empty"), *none = path_in("no-such-file");
    char *want = el_sprintf("3: [room] redis_password_file: %s must hold the password on its "
                            "first line (at most 255 bytes)", empty);
    expect_err(ROOM "redis_password_file = redis-pw-empty\n", want);
    free(want);
    want = el_sprintf("3: [room] redis_password_file: cannot read %s: No such file or directory",
                      none);
    expect_err(ROOM "redis_password_file = no-such-file\n", want);
    free(want);
    free(empty);
    free(none);
}

/* --- several rooms: [room NAME] ------------------------------------------ */

#define TWO_ROOMS                                                                            \
    "[room]\nsecret = " HEX "\nadmit_per_s = 30\npoll_s = 4\ntemplate = main.html\n"           \
    "[room campaign]\nhost = Book.Example.ORG., *.book.example.org\npath = /impfkampagne/**\n"   \
    "admit_per_s = 20\ntemplate = campaign.html\nstatus = 200\nmode = on\n"                       \
    "[room api]\npath = /api/**\nstatus = 429\nadapt = off\n"

/* An event with room = NAME belongs to that room's view; the others stay
 * [room]'s, in file order. */
static void test_event_room_moves_it_into_the_rooms_view(void **state)
{
    (void)state;
    free(write_file("main.html", "<p>main</p>"));
    free(write_file("campaign.html", "<p>campaign</p>"));
    struct el_config *cfg = load_ok("[event early]\nopens_at = 2027-03-01T08:00:00Z\n"
                                    "room = campaign\n" TWO_ROOMS
                                    "[event main]\nopens_at = 2027-03-01T09:00:00Z\n"
                                    "[event late]\nopens_at = 2027-03-01T10:00:00Z\n"
                                    "room = campaign\n");
    assert_int_equal(cfg->nevents, 1);
    assert_string_equal(cfg->events[0].name, "main");
    assert_string_equal(cfg->events[0].room, "");
    const struct el_config *cv = cfg->rooms[1].cfg;
    assert_int_equal(cv->nevents, 2);
    assert_string_equal(cv->events[0].name, "early");
    assert_string_equal(cv->events[1].name, "late");
    assert_string_equal(cv->events[1].room, "campaign");
    assert_int_equal(cfg->rooms[2].cfg->nevents, 0);
    el_config_free(cfg);
}

static void test_rooms_views_carry_the_overrides_and_inherit_the_rest(void **state)
{
    (void)state;
    free(write_file("main.html", "<p>main</p>"));
    free(write_file("campaign.html", "<p>campaign</p>"));
    struct el_config *cfg = load_ok(TWO_ROOMS);
    assert_int_equal(cfg->nrooms, 3);
    assert_int_equal(cfg->wait_status, 503);
    assert_ptr_equal(cfg->rooms[0].cfg, cfg);
    assert_string_equal(cfg->rooms[0].name, "");
    assert_string_equal(cfg->rooms[0].pass_cookie, "einlass_pass");
    assert_string_equal(cfg->rooms[0].ticket_cookie, "einlass_ticket");

    const struct el_room_def *c = &cfg->rooms[1];
    assert_string_equal(c->name, "campaign");
    assert_int_equal(c->line, 6);
    assert_int_equal(c->nhosts, 2);
    assert_string_equal(c->hosts[0], "book.example.org"); /* lower case, trailing dot gone */
    assert_string_equal(c->hosts[1], "*.book.example.org");
    assert_string_equal(c->path, "/impfkampagne/**");
    assert_string_equal(c->pass_cookie, "einlass_pass_campaign");
    assert_string_equal(c->ticket_cookie, "einlass_ticket_campaign");
    const struct el_config *cv = c->cfg;
    assert_non_null(cv);
    assert_ptr_not_equal(cv, cfg);
    assert_string_equal(cv->room_name, "portal.campaign");
    assert_true(cv->admit_per_s == 20.0);
    assert_int_equal(cv->wait_status, 200);
    assert_int_equal(cv->mode, EL_MODE_ON);
    char *tmpl = path_in("campaign.html");
    assert_string_equal(cv->template_path, tmpl); /* relative to the file's directory */
    free(tmpl);
    assert_int_equal(cv->poll_s, 4); /* from [room] */
    assert_true(cv->adapt);
    assert_int_equal(cv->nroutes, 0);
    assert_int_equal(cv->nevents, 0);
    assert_int_equal(cv->nrooms, 0);
    /* the rest is the whole file's, each string its own copy */
    assert_string_equal(cv->listen, cfg->listen);
    assert_ptr_not_equal(cv->listen, cfg->listen);
    assert_string_equal(cv->path, cfg->path);
    assert_string_equal(cv->dir, cfg->dir);
    assert_int_equal(cv->store, cfg->store);
    assert_memory_equal(cv->secret, cfg->secret, EL_SECRET_LEN);

    const struct el_room_def *a = &cfg->rooms[2];
    assert_string_equal(a->name, "api");
    assert_int_equal(a->nhosts, 0);
    assert_string_equal(a->path, "/api/**");
    assert_string_equal(a->pass_cookie, "einlass_pass_api");
    assert_string_equal(a->ticket_cookie, "einlass_ticket_api");
    assert_string_equal(a->cfg->room_name, "portal.api");
    assert_int_equal(a->cfg->wait_status, 429);
    assert_false(a->cfg->adapt);
    assert_true(a->cfg->admit_per_s == 30.0);
    char *main_tmpl = path_in("main.html");
    assert_string_equal(a->cfg->template_path, main_tmpl);
    free(main_tmpl);
    assert_int_equal(a->cfg->mode, EL_MODE_AUTO);

    /* [room] itself is untouched by the sections */
    assert_true(cfg->admit_per_s == 30.0);
    assert_int_equal(cfg->mode, EL_MODE_AUTO);
    el_config_free(cfg);
}

static void test_status_key(void **state)
{
    (void)state;
    struct el_config *cfg = load_ok(ROOM "status = 429\n");
    assert_int_equal(cfg->wait_status, 429);
    el_config_free(cfg);
    cfg = load_ok(ROOM "status = 200\n");
    assert_int_equal(cfg->wait_status, 200);
    el_config_free(cfg);
    expect_err(ROOM "status = 404\n", "3: [room] status: '404' is not one of 503, 429, 200");
    expect_err(ROOM "[room c]\npath = /c/**\nstatus = 302\n",
               "5: [room c] status: '302' is not one of 503, 429, 200");
}

static void test_room_before_room_inherits_its_values(void **state)
{
    (void)state;
    struct el_config *cfg = load_ok("[room c]\npath = /c/**\nadmit_per_s = 500\n"
                                    "[room]\nsecret = " HEX "\nname = shop\npoll_s = 7\n"
                                    "status = 429\n");
    const struct el_config *v = cfg->rooms[1].cfg;
    assert_string_equal(v->room_name, "shop.c");
    assert_int_equal(v->poll_s, 7);
    assert_int_equal(v->wait_status, 429);
    assert_memory_equal(v->secret, cfg->secret, EL_SECRET_LEN);
    /* the follow rule: the view's max follows admit_per_s, [room]'s does not move */
    assert_true(v->admit_per_s == 500.0);
    assert_true(v->max_admit_per_s == 500.0);
    assert_true(v->min_admit_per_s == 1.0);
    assert_true(cfg->admit_per_s == 10.0);
    assert_true(cfg->max_admit_per_s == 100.0);
    el_config_free(cfg);
}

static void test_room_follow_rule_and_cross_checks_name_the_section(void **state)
{
    (void)state;
    struct el_config *cfg = load_ok(ROOM "[room c]\npath = /c\nadmit_per_s = 500\n");
    assert_true(cfg->rooms[1].cfg->max_admit_per_s == 500.0);
    assert_false(cfg->rooms[1].cfg->max_admit_per_s_set);
    el_config_free(cfg);
    cfg = load_ok(ROOM "[room c]\npath = /c\nmax_admit_per_s = 5\n");
    assert_true(cfg->rooms[1].cfg->admit_per_s == 5.0); /* unset admit_per_s within the bound */
    assert_true(cfg->admit_per_s == 10.0);
    el_config_free(cfg);
    expect_err(ROOM "[room c]\npath = /c\nadmit_per_s = 200\nmax_admit_per_s = 100\n",
               "6: [room c] admit_per_s (200) must not be above max_admit_per_s (100)");
    expect_err(ROOM "keep_place_s = 900\n[room c]\npath = /c\nclaim_s = 1000\n",
               "6: [room c] claim_s (1000) must not be above keep_place_s (900, from [room] on "
               "line 3: this section does not set keep_place_s)");
    expect_err(ROOM "[room c]\npath = /c\nclaim_s = 700\n",
               "5: [room c] claim_s (700) must not be above keep_place_s (600, the default: the "
               "file does not set keep_place_s; set it)");
    expect_err(ROOM "[room c]\npath = /c\nadmit_per_s = 0\n",
               "5: [room c] admit_per_s: 0 is below the minimum 0.01");
}

static void test_check_rate_on_a_view(void **state)
{
    (void)state;
    char why[200];
    struct el_config *cfg =
        load_ok(ROOM "max_admit_per_s = 50\n[room c]\npath = /c\nmin_admit_per_s = 2\n"
                     "[room d]\npath = /d\nadmit_per_s = 5\n");
    const struct el_config *c = cfg->rooms[1].cfg, *d = cfg->rooms[2].cfg;
    assert_int_equal(el_config_check_rate(c, 40, why, sizeof(why)), 0);
    assert_int_equal(el_config_check_rate(c, 1, why, sizeof(why)), -1);
    assert_string_equal(why, "[room c] min_admit_per_s (2) must not be above admit_per_s (1)");
    assert_int_equal(el_config_check_rate(c, 60, why, sizeof(why)), -1); /* [room]'s bound */
    assert_string_equal(why, "[room c] admit_per_s (60) must not be above max_admit_per_s (50)");
    assert_int_equal(el_config_check_rate(d, 0.5, why, sizeof(why)), 0); /* min follows */
    assert_int_equal(el_config_check_rate(d, 0.001, why, sizeof(why)), -1);
    assert_string_equal(why, "[room d] admit_per_s: 0.001 is below the minimum 0.01");
    assert_int_equal(el_config_check_rate(cfg, 1, why, sizeof(why)), 0); /* [room] has no min */
    el_config_free(cfg);
}

static void test_inherit_reaches_the_room_views(void **state)
{
    (void)state;
    struct el_config *old = load_ok(ROOM);
    struct el_config *rotated = load_ok("[room]\nsecret = " HEX2 "\n[room c]\npath = /c\n"
                                        "[room d]\nhost = d.example\n");
    el_config_inherit(rotated, old);
    for (size_t i = 1; i < rotated->nrooms; i++) {
        const struct el_config *v = rotated->rooms[i].cfg;
        assert_true(v->has_previous_secret);
        assert_memory_equal(v->previous_secret, old->secret, EL_SECRET_LEN);
        assert_memory_equal(v->secret, rotated->secret, EL_SECRET_LEN);
    }
    el_config_free(old);
    el_config_free(rotated);
}

static void test_err_rooms(void **state)
{
    (void)state;
    expect_err(ROOM "[room c]\nmode = on\n",
               "3: [room c] matches every request: set host or path");
    expect_err(ROOM "[room c]\n[room d]\npath = /d\n",
               "3: [room c] matches every request: set host or path");
    expect_err(ROOM "[room c]\nmode = on\n[server]\n",
               "3: [room c] matches every request: set host or path");
    expect_err(ROOM "[room c.d]\npath = /\n",
               "3: [room c.d]: a room name is 1 to 32 letters, digits, '-' or '_'");
    expect_err(ROOM "[room abcdefghijklmnopqrstuvwxyz0123456]\npath = /\n",
               "3: [room abcdefghijklmnopqrstuvwxyz0123456]: a room name is 1 to 32 letters, "
               "digits, '-' or '_'");
    struct el_config *cfg =
        load_ok(ROOM "[room abcdefghijklmnopqrstuvwxyz012345]\npath = /\n"); /* 32 */
    assert_string_equal(cfg->rooms[1].pass_cookie, "einlass_pass_abcdefghijklmnopqrstuvwxyz012345");
    assert_string_equal(cfg->rooms[1].ticket_cookie,
                        "einlass_ticket_abcdefghijklmnopqrstuvwxyz012345");
    el_config_free(cfg);
    expect_err(ROOM "[room c]\npath = /c\n[room c]\npath = /d\n",
               "5: duplicate section [room c] (first on line 3)");
    expect_err(ROOM "[room c]\npath = /c\npath = /d\n",
               "5: [room c] path: duplicate key (first set on line 4)");
    expect_err(ROOM "[room c]\npath = /c\nmode = on\nmode = off\n",
               "6: [room c] mode: duplicate key (first set on line 5)");
    /* the same key in [room] and in a section is fine */
    cfg = load_ok(ROOM "mode = off\n[room c]\npath = /c\nmode = on\n");
    assert_int_equal(cfg->mode, EL_MODE_OFF);
    assert_int_equal(cfg->rooms[1].cfg->mode, EL_MODE_ON);
    el_config_free(cfg);

    static const char *const shared[] = {"store = redis", "redis = 127.0.0.1:1",
                                         "redis_timeout_ms = 9", "redis_password_file = x",
                                         "name = x", "secret = " HEX, "secret_file = x",
                                         "previous_secret = " HEX, "bypass_from = 10.0.0.0/8"};
    for (size_t i = 0; i < EL_ARRAY_LEN(shared); i++) {
        char key[32];
        sscanf(shared[i], "%31[a-z_]", key);
        char *text = el_sprintf(ROOM "[room c]\npath = /c\n%s\n", shared[i]);
        char *want = el_sprintf("5: [room c] %s: every room shares [room]'s store, redis, name, "
                                "secrets and bypass_from; set it in [room]",
                                key);
        expect_err(text, want);
        free(text);
        free(want);
    }
    expect_err(ROOM "[room c]\npath = /c\nlisten = 127.0.0.1:1\n",
               "5: [room c] unknown key 'listen' (known: host, path, mode, session_s, "
               "keep_place_s, claim_s, admit_per_s, min_admit_per_s, max_admit_per_s, adapt, "
               "settle_ms, poll_s, max_joins_per_ip_per_min, template, status)");
    expect_err(ROOM "host = x.example\n",
               "3: [room] unknown key 'host' (known: mode, store, redis, redis_password_file, "
               "redis_timeout_ms, name, secret, secret_file, previous_secret, session_s, "
               "keep_place_s, claim_s, admit_per_s, min_admit_per_s, max_admit_per_s, adapt, "
               "settle_ms, poll_s, max_joins_per_ip_per_min, template, status, bypass_from)");

    char *text = el_strdup(ROOM);
    for (int i = 0; i < EL_MAX_ROOMS; i++) {
        char *next = el_sprintf("%s[room r%d]\npath = /%d/**\n", text, i, i);
        free(text);
        text = next;
    }
    expect_err(text, "33: more than 15 room sections besides [room]");
    free(text);

    char *want = el_sprintf("5: [room c] template: cannot read %s/absent.html: No such file or "
                            "directory",
                            dir);
    expect_err(ROOM "[room c]\npath = /c\ntemplate = absent.html\n", want);
    free(want);
    expect_err("[room]\nmode = off\n[room c]\npath = /c\nmode = on\n",
               "5: [room c] mode = on needs a secret: set secret or secret_file in [room]");
}

static void test_err_room_host_and_path(void **state)
{
    (void)state;
    static const struct {
        const char *value, *want;
    } bad[] = {
        {"https://x.example", "'https://x.example': a host pattern has no scheme (e.g. "
                              "book.example.org)"},
        {"x.example:8080", "'x.example:8080': a host pattern has no port (every port matches)"},
        {"x.example/y", "'x.example/y': a host pattern has no path (set path for that)"},
        {"a.example, , b.example", "empty entry in the list"},
        {"a.example,", "empty entry in the list"},
        {"", "names no host (e.g. host = book.example.org)"},
        {"[::1]", "'[::1]': IPv6 literals are not supported (requests to one go to [room])"},
        {"*", "'*': '*' may only start a pattern, as in *.example.org"},
        {"a.*.example", "'a.*.example': '*' may only start a pattern, as in *.example.org"},
        {"*example.org", "'*example.org': '*' may only start a pattern, as in *.example.org"},
        {"a..example", "'a..example': not a host name (letters, digits, '-' and '.'), *.NAME or "
                       "an IPv4 address"},
        {"a_b.example", "'a_b.example': not a host name (letters, digits, '-' and '.'), *.NAME "
                        "or an IPv4 address"},
        {"300.1.1.1", "'300.1.1.1': not an IPv4 address"},
        {"a,b,c,d,e,f,g,h,i", "more than 8 host patterns"},
    };
    for (size_t i = 0; i < EL_ARRAY_LEN(bad); i++) {
        char *text = el_sprintf(ROOM "[room c]\nhost = %s\n", bad[i].value);
        char *want = el_sprintf("4: [room c] host: %s", bad[i].want);
        expect_err(text, want);
        free(text);
        free(want);
    }
    struct el_config *cfg =
        load_ok(ROOM "[room c]\nhost = 10.0.0.1, a-b.EXAMPLE, *.Example.org, x.\n");
    assert_int_equal(cfg->rooms[1].nhosts, 4);
    assert_string_equal(cfg->rooms[1].hosts[0], "10.0.0.1");
    assert_string_equal(cfg->rooms[1].hosts[1], "a-b.example");
    assert_string_equal(cfg->rooms[1].hosts[2], "*.example.org");
    assert_string_equal(cfg->rooms[1].hosts[3], "x");
    assert_null(cfg->rooms[1].path);
    el_config_free(cfg);
    static const char *const bad_glob[] = {"x", "impf/**", "/a b"};
    for (size_t i = 0; i < EL_ARRAY_LEN(bad_glob); i++) {
        char *text = el_sprintf(ROOM "[room c]\npath = %s\n", bad_glob[i]);
        char *want = el_sprintf("4: [room c] path: '%s' must be a path glob starting with '/' "
                                "(* within a segment, ** across; e.g. /impfkampagne/**)",
                                bad_glob[i]);
        expect_err(text, want);
        free(text);
        free(want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_when_keys_absent),
        cmocka_unit_test(test_every_value_is_read),
        cmocka_unit_test(test_listen_shared),
        cmocka_unit_test(test_bool_spellings),
        cmocka_unit_test(test_syntax_details),
        cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_mode_off_needs_no_secret),
        cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_secret_file_errors),
        cmocka_unit_test(test_bypass_from),
        cmocka_unit_test(test_trusted_proxies_and_proxy_protocol),
        cmocka_unit_test(test_restart_key),
        cmocka_unit_test(test_inherit_carries_the_old_secret_over),
        cmocka_unit_test(test_print_defaults_loads),
        cmocka_unit_test(test_shipped_conf_documents_every_key),
        cmocka_unit_test(test_redis_addresses_password_file_and_timeout),
        cmocka_unit_test(test_shipped_conf_loads),
        cmocka_unit_test(test_err_cannot_open),
        cmocka_unit_test(test_err_sections),
        cmocka_unit_test(test_err_unknown_key),
        cmocka_unit_test(test_err_duplicate_key),
        cmocka_unit_test(test_err_numbers),
        cmocka_unit_test(test_max_joins_per_ip_per_min),
        cmocka_unit_test(test_max_concurrency_auto_number_or_unlimited),
        cmocka_unit_test(test_err_words),
        cmocka_unit_test(test_err_addresses),
        cmocka_unit_test(test_err_secrets),
        cmocka_unit_test(test_err_routes),
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_err_events),
        cmocka_unit_test(test_err_cross_checks),
        cmocka_unit_test(test_admit_per_s_500_alone_is_accepted),
        cmocka_unit_test(test_admit_per_s_half_alone_is_accepted),
        cmocka_unit_test(test_unset_admit_per_s_follows_the_bounds_the_file_sets),
        cmocka_unit_test(test_error_about_an_unset_key_names_it),
        cmocka_unit_test(test_check_rate_refuses_what_the_file_would),
        cmocka_unit_test(test_err_template),
        cmocka_unit_test(test_journal_file),
        cmocka_unit_test(test_workers_above_the_worker_slots_is_an_error),
        cmocka_unit_test(test_enum_keys_use_the_word_tables),
        cmocka_unit_test(test_rooms_views_carry_the_overrides_and_inherit_the_rest),
        cmocka_unit_test(test_event_room_moves_it_into_the_rooms_view),
        cmocka_unit_test(test_status_key),
        cmocka_unit_test(test_room_before_room_inherits_its_values),
        cmocka_unit_test(test_room_follow_rule_and_cross_checks_name_the_section),
        cmocka_unit_test(test_check_rate_on_a_view),
        cmocka_unit_test(test_inherit_reaches_the_room_views),
        cmocka_unit_test(test_err_rooms),
        cmocka_unit_test(test_err_room_host_and_path),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
