/* page.h - what a waiting client reads: the HTML waiting page (a template
 * with placeholders, German or English) and the JSON answers. Pure: renders
 * into the caller's buffer, no I/O after el_page_load().
 *
 * Template placeholders (each may appear any number of times):
 *   {{lang}}      "de" or "en"
 *   {{position}}  place in line, 1 = next
 *   {{eta}}       the wait, in words ("about 3 minutes" / "etwa 3 Minuten")
 *   {{eta_s}}     the wait in seconds
 *   {{poll_s}}    seconds between refreshes (meta refresh and script)
 *   {{t:KEY}}     a text in the page's language: title, heading, intro,
 *                 place_label, wait_label, keep_open, no_js, admitted,
 *                 note ("the estimate can change"), paused (shown in place of
 *                 the wait while admissions are on hold), and the wait phrases for
 *                 the page's script: eta_lt, eta_1m, eta_nm, eta_nh ("{n}"
 *                 in the last two stands for the number)
 * A "{{" must close with "}}" on the same line; anything else is an error.
 * Output is UTF-8 (serve as text/html; charset=utf-8).
 * The built-in template (used when template is empty) is conf/waiting-room.html
 * compiled in. */
#ifndef EL_PAGE_H
#define EL_PAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EL_PAGE_MAX (48 * 1024) /* rendered pages never exceed this */

enum el_lang { EL_LANG_EN = 0, EL_LANG_DE = 1 };

struct el_page;

/* Load a template from path ("" or NULL: the built-in page). Returns NULL
 * and sets *err (allocated) if the file cannot be read, is over 32 KiB, or
 * has an unknown placeholder. */
struct el_page *el_page_load(const char *path, char **err);
void el_page_free(struct el_page *p);

/* German if Accept-Language prefers de (by q-value, then order), else English. */
enum el_lang el_page_lang(const char *accept_language, size_t len);
/* True if Accept explicitly lists text/html or the range "text" "/" "*" with
 * q > 0. A bare wildcard (curl's default) is not enough: API clients get JSON.
 * Malformed or absent headers give false. */
bool el_page_wants_html(const char *accept, size_t len);

/* eta_s for el_page_html while paused: {{eta}} says admissions are on hold
 * (the text "paused", also {{t:paused}}) and {{eta_s}} reads 0. */
#define EL_PAGE_ETA_PAUSED UINT64_MAX

/* Render the waiting page into out (cap >= EL_PAGE_MAX). Returns its length. */
size_t el_page_html(const struct el_page *p, enum el_lang lang, uint64_t position, uint64_t eta_s,
                    int poll_s, char *out, size_t cap);

/* JSON answers (cap >= 128). Return the length. */
size_t el_page_json_waiting(uint64_t position, uint64_t eta_s, int poll_s, char *out, size_t cap);
size_t el_page_json_state(const char *state /* "open" | "admitted" */, char *out, size_t cap);

#endif
