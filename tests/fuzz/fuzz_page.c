/* fuzz_page.c - libFuzzer target for the Accept-Language and Accept parsers
 * of the waiting page. Besides memory errors it checks their promises:
 *  - el_page_lang gives one of ours, and one other than English only when
 *    its tag appears in the header; el_page_wants_html is true only when
 *    "text/" does (case-insensitively);
 *  - an entry of weight 0 cannot win: putting one in front or at the end of
 *    a header that parses changes neither answer (malformed headers stay
 *    malformed: the appended entry may land inside an open quoted-string);
 *  - q-values count: with "application/json" at full weight in front, the
 *    page still wins only if the header lists a "text/" range itself;
 *  - the language switch, given the input as its query, answers a page that
 *    goes to a local path only: "url=/" not followed by '/' or '\\', and
 *    no quote or angle bracket inside the address;
 *  - the value is read only within len (the input is not NUL-terminated).
 *
 * Input: the header value; both parsers get all of it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "einlass/page.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool contains(const char *s, size_t n, const char *word)
{
    size_t w = strlen(word);
    for (size_t i = 0; i + w <= n; i++)
        if (strncasecmp(s + i, word, w) == 0) return true;
    return false;
}

/* Run parse on pre + s[0..n) + post. */
static int wrapped(int (*parse)(const char *, size_t), const char *pre, const char *s, size_t n,
                   const char *post)
{
    size_t a = strlen(pre), b = strlen(post);
    char *buf = malloc(a + n + b + 1);
    memcpy(buf, pre, a);
    memcpy(buf + a, s, n);
    memcpy(buf + a + n, post, b);
    int r = parse(buf, a + n + b);
    free(buf);
    return r;
}

static int lang_of(const char *s, size_t n)
{
    return (int)el_page_lang(s, n);
}

static int html_of(const char *s, size_t n)
{
    return el_page_wants_html(s, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    enum el_lang lang = el_page_lang(s, size);
    bool html = el_page_wants_html(s, size);
    if ((unsigned)lang >= EL_LANG_COUNT) abort();
    if (lang != EL_LANG_EN && !contains(s, size, el_page_lang_tag(lang))) abort();
    if (el_page_lang_parse(el_page_lang_tag(lang), 2) != (int)lang) abort();
    if (html && !contains(s, size, "text/")) abort();
    if (el_page_lang(NULL, 0) != EL_LANG_EN || el_page_wants_html(NULL, 0)) abort();
    static char page[EL_PAGE_MAX];
    int sw;
    size_t n = el_page_lang_switch(s, size, &sw, page, sizeof(page));
    if (n != strlen(page) || sw < -1 || sw >= EL_LANG_COUNT) abort();
    const char *url = strstr(page, "url=");
    if (url == NULL || url[4] != '/' || url[5] == '/' || url[5] == '\\') abort();
    const char *q = strchr(url, '"');
    if (q == NULL || memchr(url, '<', (size_t)(q - url)) || memchr(url, '\'', (size_t)(q - url)))
        abort();
    if (size > 4096) return 0;

    if (wrapped(lang_of, "de;q=0, ", s, size, "") != (int)lang) abort();
    if (wrapped(lang_of, "", s, size, ", de-AT;q=0") != (int)lang) abort();
    if (wrapped(html_of, "image/png;q=0.000, ", s, size, "") != html) abort();
    if (wrapped(html_of, "", s, size, ", text/*;q=0") != html) abort();
    if (wrapped(html_of, "", s, size, ", application/json;q=0") != html) abort();
    /* JSON at full weight in front: the page needs a text range listed. */
    if (wrapped(html_of, "application/json, ", s, size, "") && !contains(s, size, "text/"))
        abort();
    return 0;
}
