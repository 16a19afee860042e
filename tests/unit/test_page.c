/* test_page.c - waiting page: language choice, HTML-or-JSON choice, template
 * loading and its errors, rendering of the built-in page, the wait in words,
 * bounded output, and the exact JSON answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "einlass/page.h"

/* Header values are handed over in an exactly-sized heap copy without a NUL,
 * so ASan catches any read past len. */
static char *heap_copy(const char *s, size_t n)
{
    char *copy = malloc(n ? n : 1);
    memcpy(copy, s, n);
    return copy;
}

static enum el_lang lang_of(const char *s)
{
    char *copy = heap_copy(s, strlen(s));
    enum el_lang l = el_page_lang(copy, strlen(s));
    free(copy);
    return l;
}

static bool html_of(const char *s)
{
    char *copy = heap_copy(s, strlen(s));
    bool b = el_page_wants_html(copy, strlen(s));
    free(copy);
    return b;
}

static void test_lang(void **state)
{
    assert_int_equal(lang_of("en-US,en;q=0.9,de;q=0.8"), EL_LANG_EN);
    assert_int_equal(lang_of("de-DE,de;q=0.9"), EL_LANG_DE);
    assert_int_equal(lang_of("fr, de;q=0.5"), EL_LANG_DE);
    assert_int_equal(lang_of("*"), EL_LANG_EN);
    assert_int_equal(lang_of("de"), EL_LANG_DE);
    assert_int_equal(lang_of("DE-at"), EL_LANG_DE);
    assert_int_equal(lang_of("de-CH-1996"), EL_LANG_DE);
    assert_int_equal(lang_of("de;q=0.5, en;q=0.9"), EL_LANG_EN);
    assert_int_equal(lang_of("en;q=0.5, de;q=0.9"), EL_LANG_DE);
    assert_int_equal(lang_of("en, de"), EL_LANG_EN); /* equal q: order decides */
    assert_int_equal(lang_of("de, en"), EL_LANG_DE);
    assert_int_equal(lang_of("fr;q=1, de;q=0.001"), EL_LANG_DE);
    assert_int_equal(lang_of("de;q=0"), EL_LANG_EN);
    assert_int_equal(lang_of("fr, it"), EL_LANG_EN);
    assert_int_equal(lang_of("*;q=0.9, de;q=0.8"), EL_LANG_EN);
    assert_int_equal(lang_of("  de ; q=1.0 ,en;q=0.3"), EL_LANG_DE);
    assert_int_equal(lang_of(",, de,"), EL_LANG_DE);
    assert_int_equal(lang_of("dex"), EL_LANG_EN); /* primary subtag compared whole */
    assert_int_equal(lang_of(""), EL_LANG_EN);
    assert_int_equal(el_page_lang(NULL, 0), EL_LANG_EN);
    /* Malformed: English. */
    assert_int_equal(lang_of("de;q=2"), EL_LANG_EN);
    assert_int_equal(lang_of("de;q=abc"), EL_LANG_EN);
    assert_int_equal(lang_of("de;q=0.5000"), EL_LANG_EN);
    assert_int_equal(lang_of("de;q="), EL_LANG_EN);
    assert_int_equal(lang_of("de;"), EL_LANG_EN);
    assert_int_equal(lang_of("de en"), EL_LANG_EN);
    assert_int_equal(lang_of("de/x"), EL_LANG_EN);
    assert_int_equal(lang_of("de\x01"), EL_LANG_EN);
    /* Only len bytes count. */
    assert_int_equal(el_page_lang("de-DE,en", 5), EL_LANG_DE);
    assert_int_equal(el_page_lang("de", 0), EL_LANG_EN);
    assert_int_equal(el_page_lang("en;q=0.1, de", 9), EL_LANG_EN);
}

static void test_wants_html(void **state)
{
    assert_true(html_of("text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
                        "image/webp,*/*;q=0.8"));
    assert_true(html_of("text/html, */*"));
    assert_true(html_of("text/*"));
    assert_true(html_of("TEXT/HTML"));
    assert_true(html_of("application/json;q=0.5, text/html;level=1"));
    assert_true(html_of("text/html;foo=\"a,b;c\";q=0.4"));
    assert_true(html_of("text/html;q=0.001"));
    assert_false(html_of("*/*"));
    assert_false(html_of("application/json"));
    assert_false(html_of("application/json, */*;q=0.1"));
    assert_false(html_of("text/html;q=0"));
    assert_false(html_of("text/html;q=0.000, */*"));
    assert_false(html_of("text/plain"));
    assert_false(html_of("text/htmlx"));
    assert_false(html_of(""));
    assert_false(el_page_wants_html(NULL, 0));
    /* Malformed: JSON. */
    assert_false(html_of("text/html;q=x"));
    assert_false(html_of("text/html;foo=\"unterminated"));
    assert_false(html_of("text/html junk"));
    assert_false(el_page_wants_html("text/html", 8));
}

static char *write_temp(const char *content, size_t len)
{
    char *path = strdup("/tmp/el_test_page_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

static struct el_page *load_text(const char *content, char **err)
{
    char *path = write_temp(content, strlen(content));
    struct el_page *p = el_page_load(path, err);
    unlink(path);
    free(path);
    return p;
}

static char out[EL_PAGE_MAX];

static size_t html(const struct el_page *p, enum el_lang lang, uint64_t position, uint64_t eta_s,
                   int poll_s, char *buf, size_t cap)
{
    struct el_page_view v = {.lang = lang,
                             .position = position,
                             .eta_s = eta_s,
                             .poll_s = poll_s,
                             .keep_place_s = 600,
                             .target = "/book?x=1",
                             .target_len = 9};
    return el_page_html(p, &v, buf, cap);
}

static size_t json(uint64_t position, uint64_t eta_s, int poll_s, char *buf, size_t cap)
{
    struct el_page_view v = {.lang = EL_LANG_EN, .position = position, .eta_s = eta_s,
                             .poll_s = poll_s};
    return el_page_json_waiting(&v, false, buf, cap);
}

static void test_builtin_english(void **state)
{
    char *err = NULL;
    struct el_page *p = el_page_load(NULL, &err);
    assert_non_null(p);
    assert_null(err);
    size_t n = html(p, EL_LANG_EN, 42, 180, 5, out, sizeof(out));
    assert_int_equal(strlen(out), n);
    assert_true(n < 32 * 1024);
    assert_non_null(strstr(out, "<html lang=\"en\" dir=\"ltr\">"));
    assert_non_null(strstr(out, "id=\"place\">42<"));
    assert_non_null(strstr(out, ">about 2\u20134\u00a0minutes<"));
    assert_non_null(strstr(out, "for 10\u00a0minutes."));
    assert_non_null(strstr(out, "<meta http-equiv=\"refresh\" content=\"5\">"));
    assert_non_null(strstr(out, "var poll = 5,"));
    /* The live region is small and says what changed; the card is not live. */
    assert_non_null(strstr(out, "<p class=\"sr\" id=\"say\" aria-live=\"polite\" "
                                "data-say=\"You are now number {place} in line. Estimated wait: "
                                "{wait}.\"></p>"));
    assert_null(strstr(out, "aria-atomic"));
    assert_non_null(strstr(out, "visibilitychange"));
    assert_non_null(strstr(out, "pageshow"));
    assert_non_null(strstr(out, "href=\"/_einlass/lang?set=de&amp;to=/book%3Fx%3D1\""));
    assert_non_null(strstr(out, "name=\"viewport\""));
    assert_non_null(strstr(out, "/_einlass/status"));
    assert_non_null(strstr(out, "Your place in line"));
    assert_non_null(strstr(out, "can change"));
    assert_null(strstr(out, "{{"));
    assert_null(strstr(out, "Warteschlange"));
    el_page_free(p);
}

static void test_builtin_german(void **state)
{
    char *err = NULL;
    struct el_page *p = el_page_load("", &err);
    assert_non_null(p);
    size_t n = html(p, EL_LANG_DE, 7, 30, 10, out, sizeof(out));
    assert_true(n < 32 * 1024);
    assert_non_null(strstr(out, "<html lang=\"de\" dir=\"ltr\">"));
    assert_non_null(strstr(out, "id=\"place\">7<"));
    assert_non_null(strstr(out, ">weniger als eine Minute<"));
    assert_non_null(strstr(out, "content=\"10\""));
    assert_non_null(strstr(out, "Ihr Platz in der Warteschlange"));
    assert_non_null(strstr(out, "kann sich \xc3\xa4ndern")); /* UTF-8 */
    assert_non_null(strstr(out, "bleibt Ihr Platz 10\u00a0Minuten lang erhalten"));
    assert_null(strstr(out, "{{"));
    assert_null(strstr(out, "Your place"));
    /* The largest numbers still fit well under the limit. */
    n = html(p, EL_LANG_DE, UINT64_MAX, UINT64_MAX, 2147483647, out, sizeof(out));
    assert_true(n < 32 * 1024);
    assert_non_null(strstr(out, "18.446.744.073.709.551.615"));
    el_page_free(p);
}

static void expect_eta(struct el_page *p, enum el_lang lang, uint64_t eta_s, const char *want)
{
    char buf[256];
    html(p, lang, 1, eta_s, 5, buf, sizeof(buf));
    assert_string_equal(buf, want);
}

static void test_eta_words(void **state)
{
    char *err = NULL;
    struct el_page *p = load_text("{{eta}}", &err);
    assert_non_null(p);
    expect_eta(p, EL_LANG_EN, 0, "less than a minute");
    expect_eta(p, EL_LANG_EN, 59, "less than a minute");
    expect_eta(p, EL_LANG_EN, 60, "about 1\u20132\u00a0minutes");
    expect_eta(p, EL_LANG_EN, 180, "about 2\u20134\u00a0minutes");
    expect_eta(p, EL_LANG_EN, 600, "about 8\u201313\u00a0minutes");
    expect_eta(p, EL_LANG_EN, 720, "about 10\u201315\u00a0minutes");
    expect_eta(p, EL_LANG_EN, 1800, "about 25\u201340\u00a0minutes");
    expect_eta(p, EL_LANG_EN, 5400, "about 1\u20132\u00a0hours");
    expect_eta(p, EL_LANG_EN, 7200, "about 2\u20133\u00a0hours");
    expect_eta(p, EL_LANG_EN, 72000, "about 16\u201324\u00a0hours");
    expect_eta(p, EL_LANG_EN, 86399, "about 19\u201324\u00a0hours");
    expect_eta(p, EL_LANG_EN, 86400, "more than a day");
    expect_eta(p, EL_LANG_EN, UINT64_MAX, "more than a day");
    expect_eta(p, EL_LANG_DE, 59, "weniger als eine Minute");
    expect_eta(p, EL_LANG_DE, 150, "etwa 2\u20134\u00a0Minuten");
    expect_eta(p, EL_LANG_DE, 7200, "etwa 2\u20133\u00a0Stunden");
    expect_eta(p, EL_LANG_DE, 100000, "mehr als ein Tag");
    el_page_free(p);
}

/* The range always holds the estimate, stays within the cap, and its
 * words match it. */
static void test_eta_range(void **state)
{
    for (uint64_t s = 0; s < 2 * EL_PAGE_ETA_CAP_S; s += s < 7200 ? 1 : 97) {
        struct el_page_eta e;
        el_page_eta(s, &e);
        assert_true(e.low_s <= e.s);
        assert_true(e.s <= e.high_s);
        assert_true(e.high_s <= EL_PAGE_ETA_CAP_S);
        assert_true(e.s == (s < EL_PAGE_ETA_CAP_S ? s : EL_PAGE_ETA_CAP_S));
        if (s >= 60 && s < EL_PAGE_ETA_CAP_S) assert_true(e.low_s < e.high_s);
    }
}

/* The room's measured range (eta.h) is rounded outward the same way, keeps
 * the estimate inside, and below an hour stays in minutes. */
static void test_eta_range_from_room(void **state)
{
    struct el_page_eta e;
    el_page_eta_range(600, 480, 1200, &e); /* 8..20 min: a change under way */
    assert_int_equal(e.s, 600);
    assert_int_equal(e.low_s, 600); /* to the nearest 5 minutes above a quarter hour */
    assert_int_equal(e.high_s, 1200);
    el_page_eta_range(600, 540, 700, &e); /* narrower than 4/5..5/4: kept */
    assert_int_equal(e.low_s, 540);
    assert_int_equal(e.high_s, 720);
    el_page_eta_range(3000, 2400, 6000, &e); /* 40..100 min: high capped at 90 */
    assert_int_equal(e.low_s, 2400);
    assert_int_equal(e.high_s, 5400);
    el_page_eta_range(40, 30, 80, &e); /* under a minute: "less than a minute" */
    assert_int_equal(e.low_s, 0);
    assert_int_equal(e.high_s, 60);
    for (uint64_t s = 0; s < 2 * EL_PAGE_ETA_CAP_S; s += s < 7200 ? 7 : 997) {
        uint64_t ends[][2] = {{0, 2 * s}, {s, s}, {s / 2, s * 3 / 2}, {2 * s, s / 2}};
        for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
            el_page_eta_range(s, ends[i][0], ends[i][1], &e);
            assert_true(e.low_s <= e.s);
            assert_true(e.s <= e.high_s);
            assert_true(e.high_s <= EL_PAGE_ETA_CAP_S);
            if (s < 3600) assert_true(e.high_s <= 90 * 60);
            if (s >= 60 && s < EL_PAGE_ETA_CAP_S) assert_true(e.low_s > 0);
        }
    }
}

static void test_custom_template(void **state)
{
    char *err = NULL;
    struct el_page *p = load_text("<{{lang}}|{{position}}|{{eta_s}}|{{poll_s}}|{{t:title}}|"
                                  "{{position}}>\n{{t:admitted}}",
                                  &err);
    assert_non_null(p);
    assert_null(err);
    char buf[512];
    size_t n = html(p, EL_LANG_EN, 12, 345, 6, buf, sizeof(buf));
    const char *want = "<en|12|345|6|Waiting room|12>\nIt is your turn. Loading\xe2\x80\xa6";
    assert_string_equal(buf, want);
    assert_int_equal(n, strlen(want));
    el_page_free(p);

    p = load_text("no placeholders at all { } }} {", &err);
    assert_non_null(p);
    html(p, EL_LANG_DE, 1, 1, 1, buf, sizeof(buf));
    assert_string_equal(buf, "no placeholders at all { } }} {");
    el_page_free(p);

    p = load_text("", &err);
    assert_non_null(p);
    assert_int_equal(html(p, EL_LANG_EN, 1, 1, 1, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    el_page_free(p);
}

static void expect_load_error(const char *content, const char *part1, const char *part2)
{
    char *err = NULL;
    struct el_page *p = load_text(content, &err);
    assert_null(p);
    assert_non_null(err);
    assert_non_null(strstr(err, part1));
    if (part2 != NULL) assert_non_null(strstr(err, part2));
    free(err);
}

static void test_placeholder_errors(void **state)
{
    expect_load_error("<p>\n<p>\n{{position}} {{nope}}\n", ":3: ", "{{nope}}");
    expect_load_error("{{t:nope}}", ":1: ", "{{t:nope}}");
    expect_load_error("{{t:}}", ":1: ", "{{t:}}");
    expect_load_error("{{}}", ":1: ", "{{}}");
    expect_load_error("{{Lang}}", ":1: ", "{{Lang}}");
    expect_load_error("x\n{{eta", ":2: ", "unterminated");
    expect_load_error("{{eta\n}}", ":1: ", "unterminated");
    expect_load_error("{{eta}", ":1: ", "unterminated");

    char *err = NULL;
    assert_null(el_page_load("/nonexistent/el-waiting.html", &err));
    assert_non_null(strstr(err, "/nonexistent/el-waiting.html"));
    free(err);
}

static void test_size_limit(void **state)
{
    size_t n = 32 * 1024;
    char *big = malloc(n + 1);
    memset(big, 'x', n + 1);
    char *err = NULL;
    char *path = write_temp(big, n);
    struct el_page *p = el_page_load(path, &err);
    assert_non_null(p); /* exactly 32 KiB is allowed */
    el_page_free(p);
    unlink(path);
    free(path);
    path = write_temp(big, n + 1);
    assert_null(el_page_load(path, &err));
    assert_non_null(strstr(err, "larger"));
    free(err);
    unlink(path);
    free(path);
    free(big);
}

static void test_truncation(void **state)
{
    char *err = NULL;
    struct el_page *p = el_page_load(NULL, &err);
    assert_non_null(p);
    size_t full = html(p, EL_LANG_EN, 3, 100, 5, out, sizeof(out));
    for (size_t cap = 1; cap < 64; cap += 7) {
        char *buf = malloc(cap); /* exact size: ASan catches any overflow */
        size_t n = html(p, EL_LANG_EN, 3, 100, 5, buf, cap);
        assert_int_equal(n, cap - 1);
        assert_int_equal(buf[n], '\0');
        assert_memory_equal(buf, out, n);
        free(buf);
    }
    assert_int_equal(html(p, EL_LANG_EN, 3, 100, 5, NULL, 0), 0);
    char small[16];
    assert_int_equal(json(1, 2, 3, small, sizeof(small)), 15);
    assert_string_equal(small, "{\"state\":\"waiti");
    assert_true(full > 64);
    el_page_free(p);
}

static void test_json(void **state)
{
    char buf[512];
    size_t n = json(1, 0, 5, buf, sizeof(buf));
    assert_string_equal(buf, "{\"state\":\"waiting\",\"position\":1,\"eta_s\":0,\"eta_low_s\":0,"
                             "\"eta_high_s\":60,\"poll_s\":5}");
    assert_int_equal(n, strlen(buf));
    n = json(1234567, 720, 30, buf, sizeof(buf));
    assert_string_equal(buf, "{\"state\":\"waiting\",\"position\":1234567,\"eta_s\":720,"
                             "\"eta_low_s\":600,\"eta_high_s\":900,\"poll_s\":30}");
    assert_int_equal(n, strlen(buf));
    json(UINT64_MAX, UINT64_MAX, 2147483647, buf, sizeof(buf));
    assert_string_equal(buf, "{\"state\":\"waiting\",\"position\":18446744073709551615,"
                             "\"eta_s\":86400,\"eta_low_s\":86400,\"eta_high_s\":86400,"
                             "\"poll_s\":2147483647}");
    /* The page's own poll gets the words, in its language. */
    struct el_page_view v = {.lang = EL_LANG_DE, .position = 12345, .eta_s = 720, .poll_s = 5};
    n = el_page_json_waiting(&v, true, buf, sizeof(buf));
    assert_int_equal(n, strlen(buf));
    assert_non_null(strstr(buf, ",\"poll_s\":5,\"lang\":\"de\",\"place_text\":\"12.345\","
                                "\"eta_text\":\"etwa 10\u201315\u00a0Minuten\"}"));
    v.lang = EL_LANG_RU;
    n = el_page_json_waiting(&v, true, buf, sizeof(buf));
    assert_int_equal(n, strlen(buf));
    assert_non_null(strstr(buf, ",\"poll_s\":5,\"lang\":\"ru\",\"place_text\":\"12\u00a0345\","
                                "\"eta_text\":\"\u043f\u0440\u0438\u043c\u0435\u0440\u043d\u043e "
                                "10\u201315\u00a0\u043c\u0438\u043d\u0443\u0442\"}"));
    n = el_page_json_state("open", buf, sizeof(buf));
    assert_string_equal(buf, "{\"state\":\"open\"}");
    assert_int_equal(n, 16);
    n = el_page_json_state("admitted", buf, sizeof(buf));
    assert_string_equal(buf, "{\"state\":\"admitted\"}");
    assert_int_equal(n, strlen(buf));
}

/* Issue 11: "Accept: application/json, text/html;q=0.1" got HTML because
 * q-values were ignored. The client prefers JSON: it gets JSON. */
static void test_accept_q_values_prefer_json(void **state)
{
    assert_false(html_of("application/json, text/html;q=0.1"));
    assert_false(html_of("text/html;q=0.5, application/json"));
    assert_false(html_of("application/*, text/html;q=0.9"));
    assert_true(html_of("application/json;q=0.1, text/html"));
    assert_true(html_of("text/html, application/json")); /* a tie: the page */
}

/* Issue 11: after POST /rate 0.01 the JSON said "eta_s":2791277391 and the
 * page "about 15644 hours" at place 1. A wait over a day is "more than a day"
 * on the page, and the JSON's seconds stop at a day. */
static void test_eta_after_rate_0_01_is_capped_not_15644_hours(void **state)
{
    char *err = NULL;
    struct el_page *p = load_text("{{eta}}|{{eta_s}}", &err);
    assert_non_null(p);
    char buf[256];
    html(p, EL_LANG_EN, 1, 2791277391u, 5, buf, sizeof(buf));
    assert_null(strstr(buf, "15644"));
    assert_string_equal(buf, "more than a day|86400");
    el_page_free(p);
    json(1, 2791277391u, 5, buf, sizeof(buf));
    assert_null(strstr(buf, "2791277391"));
    assert_non_null(strstr(buf, "\"eta_s\":86400,"));
}

static void test_berlin_languages(void **state)
{
    assert_int_equal(lang_of("tr-TR,tr;q=0.9,de;q=0.8"), EL_LANG_TR);
    assert_int_equal(lang_of("ar-SY, en;q=0.5"), EL_LANG_AR);
    assert_int_equal(lang_of("ru"), EL_LANG_RU);
    assert_int_equal(lang_of("uk-UA,uk;q=0.9,ru;q=0.8"), EL_LANG_UK);
    assert_int_equal(lang_of("pl-PL"), EL_LANG_PL);
    /* q-values, not order, decide; then order */
    assert_int_equal(lang_of("ar;q=0.2, ru;q=0.5, uk, pl;q=0.9"), EL_LANG_UK);
    assert_int_equal(lang_of("fa, ar;q=0.3, tr;q=0.4"), EL_LANG_TR);
    assert_int_equal(lang_of("pl;q=0.5, ru;q=0.5"), EL_LANG_PL);
    assert_int_equal(lang_of("ru;q=0, uk;q=0.1"), EL_LANG_UK);
    assert_int_equal(lang_of("ua"), EL_LANG_EN); /* a country, not a language */
    assert_int_equal(el_page_lang_parse("TR", 2), EL_LANG_TR);
    assert_int_equal(el_page_lang_parse("tr-TR", 5), -1);
    assert_int_equal(el_page_lang_parse("", 0), -1);
    for (int l = 0; l < EL_LANG_COUNT; l++)
        assert_int_equal(el_page_lang_parse(el_page_lang_tag(l), 2), l);
}

static void expect_words(const char *tpl, enum el_lang lang, uint64_t eta_s, int keep_s,
                         const char *want)
{
    char *err = NULL;
    struct el_page *p = load_text(tpl, &err);
    assert_non_null(p);
    char buf[512];
    struct el_page_view v = {.lang = lang, .position = 1, .eta_s = eta_s, .poll_s = 5,
                             .keep_place_s = keep_s};
    el_page_html(p, &v, buf, sizeof(buf));
    assert_string_equal(buf, want);
    el_page_free(p);
}

/* one/few/many: the form follows the range's upper end. */
static void test_plural_forms(void **state)
{
    const char *k = "{{keep_place}}", *w = "{{eta}}";
    expect_words(k, EL_LANG_RU, 0, 60, "1\u00a0минута");
    expect_words(k, EL_LANG_RU, 0, 120, "2\u00a0минуты");
    expect_words(k, EL_LANG_RU, 0, 300, "5\u00a0минут");
    expect_words(k, EL_LANG_RU, 0, 11 * 60, "11\u00a0минут");
    expect_words(k, EL_LANG_RU, 0, 21 * 60, "21\u00a0минута");
    expect_words(k, EL_LANG_RU, 0, 22 * 60, "22\u00a0минуты");
    expect_words(k, EL_LANG_RU, 0, 12 * 60, "12\u00a0минут");
    expect_words(k, EL_LANG_RU, 0, 3 * 3600, "3\u00a0часа");
    expect_words(k, EL_LANG_RU, 0, 5 * 3600, "5\u00a0часов");
    expect_words(k, EL_LANG_UK, 0, 60, "1\u00a0хвилина");
    expect_words(k, EL_LANG_UK, 0, 240, "4\u00a0хвилини");
    expect_words(k, EL_LANG_UK, 0, 600, "10\u00a0хвилин");
    expect_words(k, EL_LANG_PL, 0, 60, "1\u00a0minuta");
    expect_words(k, EL_LANG_PL, 0, 180, "3\u00a0minuty");
    expect_words(k, EL_LANG_PL, 0, 21 * 60, "21\u00a0minut"); /* Polish: 21 is many */
    expect_words(k, EL_LANG_PL, 0, 24 * 60, "24\u00a0minuty");
    expect_words(k, EL_LANG_PL, 0, 14 * 60, "14\u00a0minut");
    expect_words(k, EL_LANG_PL, 0, 2 * 3600, "2\u00a0godziny");
    expect_words(k, EL_LANG_AR, 0, 60, "دقيقة واحدة");
    expect_words(k, EL_LANG_AR, 0, 120, "دقيقتين");
    expect_words(k, EL_LANG_AR, 0, 600, "١٠\u00a0دقائق");
    expect_words(k, EL_LANG_AR, 0, 15 * 60, "١٥\u00a0دقيقة");
    expect_words(k, EL_LANG_TR, 0, 600, "10\u00a0dakika");
    expect_words(k, EL_LANG_DE, 0, 60, "1\u00a0Minute");
    expect_words(k, EL_LANG_EN, 0, 7200, "2\u00a0hours");
    expect_words(k, EL_LANG_EN, 0, 30, "less than a minute");
    expect_words(w, EL_LANG_RU, 720, 0, "примерно 10–15\u00a0минут");
    expect_words(w, EL_LANG_RU, 180, 0, "примерно 2–4\u00a0минуты");
    expect_words(w, EL_LANG_UK, 180, 0, "приблизно 2–4\u00a0хвилини");
    expect_words(w, EL_LANG_PL, 180, 0, "mniej więcej 2–4\u00a0minuty");
    expect_words(w, EL_LANG_PL, 720, 0, "mniej więcej 10–15\u00a0minut");
    expect_words(w, EL_LANG_AR, 60, 0, "حوالي ١–٢\u00a0دقيقة"); /* "two" has no number: other */
    expect_words(w, EL_LANG_AR, 180, 0, "حوالي ٢–٤\u00a0دقائق");
    expect_words(w, EL_LANG_TR, 7200, 0, "yaklaşık 2–3\u00a0saat");
    expect_words(w, EL_LANG_UK, 100000, 0, "понад добу");
    /* numbers as the language writes them */
    expect_words("{{position}}", EL_LANG_EN, 0, 0, "1");
    char *err = NULL;
    struct el_page *p = load_text("{{position}}", &err);
    static const char *const want[EL_LANG_COUNT] = {
        [EL_LANG_EN] = "12,345", [EL_LANG_DE] = "12.345", [EL_LANG_TR] = "12.345",
        [EL_LANG_AR] = "١٢٬٣٤٥", [EL_LANG_RU] = "12\u00a0345", [EL_LANG_UK] = "12\u00a0345",
        [EL_LANG_PL] = "12\u00a0345",
    };
    char buf[64];
    for (int l = 0; l < EL_LANG_COUNT; l++) {
        struct el_page_view v = {.lang = l, .position = 12345};
        el_page_html(p, &v, buf, sizeof(buf));
        assert_string_equal(buf, want[l]);
    }
    struct el_page_view v = {.lang = EL_LANG_PL, .position = 1234};
    el_page_html(p, &v, buf, sizeof(buf));
    assert_string_equal(buf, "1234"); /* Polish groups from five digits */
    el_page_free(p);
}

/* Paused (POST /pause): the wait reads "paused" in the page's language, on
 * the page and in the words of the status JSON, which ends "paused":true;
 * the estimate's numbers stay. Not paused: no "paused" key. */
static void test_paused_in_every_language(void **state)
{
    static const char *const want[EL_LANG_COUNT] = {
        [EL_LANG_EN] = "Admissions are paused for a moment. Your place is kept.",
        [EL_LANG_DE] = "Der Einlass ist kurz angehalten. Ihr Platz bleibt erhalten.",
        [EL_LANG_TR] = "Girişler kısa bir süreliğine durduruldu. Yeriniz korunuyor.",
        [EL_LANG_AR] = "الدخول متوقف مؤقتًا لفترة قصيرة. مكانك محفوظ.",
        [EL_LANG_RU] = "Пропуск ненадолго приостановлен. Ваше место сохраняется.",
        [EL_LANG_UK] = "Пропуск ненадовго призупинено. Ваше місце зберігається.",
        [EL_LANG_PL] = "Wpuszczanie jest na chwilę wstrzymane. Twoje miejsce jest zachowane.",
    };
    char *err = NULL;
    struct el_page *p = el_page_load(NULL, &err);
    assert_non_null(p);
    char buf[512], span[256];
    for (int l = 0; l < EL_LANG_COUNT; l++) {
        struct el_page_view v = {.lang = l, .position = 3, .eta_s = 720, .poll_s = 5,
                                 .keep_place_s = 600, .paused = true};
        el_page_html(p, &v, out, sizeof(out));
        snprintf(span, sizeof(span), "data-paused=\"%s\">%s</span>", want[l], want[l]);
        assert_non_null(strstr(out, span)); /* {{eta}} says it too */
        size_t n = el_page_json_waiting(&v, true, buf, sizeof(buf));
        assert_int_equal(n, strlen(buf));
        assert_non_null(strstr(buf, "\"eta_s\":720,\"eta_low_s\":600,\"eta_high_s\":900,"));
        snprintf(span, sizeof(span), "\"eta_text\":\"%s\",\"paused\":true}", want[l]);
        assert_non_null(strstr(buf, span));
        n = el_page_json_waiting(&v, false, buf, sizeof(buf));
        assert_string_equal(buf, "{\"state\":\"waiting\",\"position\":3,\"eta_s\":720,"
                                 "\"eta_low_s\":600,\"eta_high_s\":900,\"poll_s\":5,"
                                 "\"paused\":true}");
        v.paused = false;
        el_page_html(p, &v, out, sizeof(out));
        snprintf(span, sizeof(span), "\">%s", want[l]);
        assert_null(strstr(out, span));
        el_page_json_waiting(&v, true, buf, sizeof(buf));
        assert_null(strstr(buf, "paused"));
    }
    el_page_free(p);
}

/* Every language: under 32 KiB with the largest numbers, in its own
 * language and direction, with a switch to all the others, and no text that
 * could break out of an attribute. */
static void test_every_language_page(void **state)
{
    char *err = NULL;
    struct el_page *p = el_page_load(NULL, &err);
    assert_non_null(p);
    static const char *const keys[] = {"name", "title", "heading", "intro", "place_label",
                                       "wait_label", "note", "keep_open", "no_js", "admitted",
                                       "turn_title", "sound", "lang_label", "say", "about",
                                       "eta_lt", "over_day", "eta_1m", "eta_nm", "eta_nh",
                                       "paused"};
    char tpl[1024] = "";
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        strcat(tpl, "{{t:");
        strcat(tpl, keys[i]);
        strcat(tpl, "}}|");
    }
    struct el_page *all = load_text(tpl, &err);
    assert_non_null(all);
    for (int l = 0; l < EL_LANG_COUNT; l++) {
        char want[64];
        struct el_page_view v = {.lang = l, .position = UINT64_MAX, .eta_s = UINT64_MAX,
                                 .poll_s = 2147483647, .keep_place_s = 2147483647,
                                 .target = "/appointments/new?when=2024-06-01&who=%C3%BC",
                                 .target_len = 44};
        size_t n = el_page_html(p, &v, out, sizeof(out));
        assert_true(n < 32 * 1024);
        snprintf(want, sizeof(want), "<html lang=\"%s\" dir=\"%s\">", el_page_lang_tag(l),
                 l == EL_LANG_AR ? "rtl" : "ltr");
        assert_non_null(strstr(out, want));
        assert_null(strstr(out, "{{"));
        assert_null(strstr(out, "{keep}"));
        for (int o = 0; o < EL_LANG_COUNT; o++) {
            snprintf(want, sizeof(want), "/_einlass/lang?set=%s&amp;to=", el_page_lang_tag(o));
            if (o == l) assert_null(strstr(out, want));
            else assert_non_null(strstr(out, want));
        }
        assert_non_null(strstr(out, "to=/appointments/new%3Fwhen%3D2024-06-01%26who%3D%25C3%25BC\""));
        assert_non_null(strstr(out, "aria-current=\"true\""));
        n = el_page_html(all, &v, out, sizeof(out));
        assert_true(n > 40);
        assert_null(strpbrk(out, "\"<>&"));
    }
    el_page_free(all);
    el_page_free(p);
}

static size_t lang_switch(const char *q, int *lang)
{
    char *copy = heap_copy(q, strlen(q));
    size_t n = el_page_lang_switch(copy, strlen(q), lang, out, sizeof(out));
    free(copy);
    return n;
}

/* The switch goes back to a local path only: never to another host. */
static void test_lang_switch(void **state)
{
    int lang;
    size_t n = lang_switch("?set=tr&to=%2Fbook%3Fa%3D1%26b%3D2", &lang);
    assert_int_equal(lang, EL_LANG_TR);
    assert_int_equal(n, strlen(out));
    assert_non_null(strstr(out, "content=\"0; url=/book?a=1&amp;b=2\""));
    assert_non_null(strstr(out, "<a href=\"/book?a=1&amp;b=2\">"));
    assert_non_null(strstr(out, "lang=\"tr\" dir=\"ltr\""));
    lang_switch("to=/x&set=ar", &lang);
    assert_int_equal(lang, EL_LANG_AR);
    assert_non_null(strstr(out, "url=/x\""));
    assert_non_null(strstr(out, "dir=\"rtl\""));
    static const char *const away[] = {
        "set=de&to=%2F%2Fevil.example", "set=de&to=//evil.example", "set=de&to=%2F%5Cevil",
        "set=de&to=https%3A%2F%2Fevil", "set=de&to=%2Fa%22onload%3D", "set=de&to=%2Fa%3Cb",
        "set=de&to=%2Fa%0d%0aX:1",      "set=de&to=%2Fa%2",           "set=de&to=",
        "set=de&to=%2Fa+b",             "set=de",
    };
    for (size_t i = 0; i < sizeof(away) / sizeof(away[0]); i++) {
        lang_switch(away[i], &lang);
        assert_int_equal(lang, EL_LANG_DE);
        assert_non_null(strstr(out, "url=/\""));
    }
    lang_switch("set=xx&to=/y", &lang);
    assert_int_equal(lang, -1);
    assert_non_null(strstr(out, "url=/y\""));
    lang_switch("", &lang);
    assert_int_equal(lang, -1);
}

/* An event's pre-queue: the place reads "drawn at the opening", the wait
 * when it opens (in the event's own offset), the note why; every language
 * has its three texts; the JSON says the same. */
static void test_prequeue_page_and_json(void **state)
{
    (void)state;
    char *err = NULL;
    struct el_page *p = el_page_load(NULL, &err);
    assert_non_null(p);
    struct el_page_view v = {.lang = EL_LANG_EN, .poll_s = 5, .keep_place_s = 600,
                             .prequeue = true, .opens_at_ms = 1803888000000LL,
                             .opens_offset_min = 60, .now_ms = 1803888000000LL - 90500,
                             .event = "vaccination"};
    el_page_html(p, &v, out, sizeof(out));
    assert_non_null(strstr(out, "id=\"place\">drawn at the opening<"));
    assert_non_null(strstr(out, ">Opens 2027-03-01 09:00 (UTC+01:00)<"));
    assert_non_null(strstr(out, "gets a place drawn at random"));
    assert_null(strstr(out, "This is an estimate"));
    for (int l = 0; l < EL_LANG_COUNT; l++) {
        v.lang = (enum el_lang)l;
        el_page_html(p, &v, out, sizeof(out));
        assert_non_null(strstr(out, "2027-03-01 09:00 (UTC+01:00)"));
        assert_null(strstr(out, "{time}"));
        if (l != EL_LANG_EN) assert_null(strstr(out, "drawn at the opening"));
    }
    v.lang = EL_LANG_EN;
    size_t n = el_page_json_prequeue(&v, false, out, sizeof(out));
    assert_int_equal(strlen(out), n);
    assert_string_equal(out, "{\"state\":\"prequeue\",\"event\":\"vaccination\","
                             "\"opens_at\":\"2027-03-01T09:00:00+01:00\",\"opens_in_s\":91,"
                             "\"order\":\"drawn at the opening\",\"poll_s\":5}");
    v.lang = EL_LANG_DE;
    el_page_json_prequeue(&v, true, out, sizeof(out));
    assert_non_null(strstr(out, ",\"lang\":\"de\",\"place_text\":\"wird bei der \u00d6ffnung "
                                "ausgelost\",\"eta_text\":\"\u00d6ffnet 2027-03-01 09:00 "
                                "(UTC+01:00)\"}"));
    el_page_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prequeue_page_and_json),
        cmocka_unit_test(test_lang),
        cmocka_unit_test(test_wants_html),
        cmocka_unit_test(test_builtin_english),
        cmocka_unit_test(test_builtin_german),
        cmocka_unit_test(test_eta_words),
        cmocka_unit_test(test_eta_range),
        cmocka_unit_test(test_eta_range_from_room),
        cmocka_unit_test(test_custom_template),
        cmocka_unit_test(test_placeholder_errors),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_json),
        cmocka_unit_test(test_berlin_languages),
        cmocka_unit_test(test_plural_forms),
        cmocka_unit_test(test_every_language_page),
        cmocka_unit_test(test_paused_in_every_language),
        cmocka_unit_test(test_lang_switch),
        cmocka_unit_test(test_accept_q_values_prefer_json),
        cmocka_unit_test(test_eta_after_rate_0_01_is_capped_not_15644_hours),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
