/* page.h - what a waiting client reads: the HTML waiting page (a template
 * with placeholders, in seven languages) and the JSON answers. Pure: renders
 * into the caller's buffer, no I/O after el_page_load().
 *
 * Template placeholders (each may appear any number of times):
 *   {{lang}}        the page's language tag: "de", "en", "tr", "ar", "ru", "uk", "pl"
 *   {{dir}}         "rtl" for Arabic, else "ltr"
 *   {{position}}    place in line, 1 = next, as a number of the language
 *                   (Arabic-Indic digits in Arabic, grouped thousands)
 *   {{eta}}         the wait in words, as a range ("about 10-15 minutes")
 *   {{eta_s}}       the wait in seconds (at most EL_PAGE_ETA_CAP_S)
 *   {{eta_low_s}}   the range's ends in seconds
 *   {{eta_high_s}}
 *   {{poll_s}}      seconds between refreshes (meta refresh and script)
 *   {{keep_place}}  how long a place is kept, in words ("10 minutes")
 *   {{lang_links}}  the language switch: one <li> per language, the others
 *                   links to /_einlass/lang that come back to this page
 *   {{t:KEY}}       a text in the page's language: title, heading, intro,
 *                   place_label, wait_label, note, keep_open (says how long
 *                   the place is kept), no_js, admitted, turn_title, sound,
 *                   lang_label, say ("{place}" and "{wait}" stand for the
 *                   place and the wait: the script's announcement), paused
 *                   (shown in place of the wait while admissions are on
 *                   hold; {{eta}} says it then too), prequeue_place,
 *                   prequeue_opens, prequeue_note (an event's pre-queue:
 *                   {{position}}, {{eta}} and {{t:note}} show these then;
 *                   "{time}" is the opening), and the
 *                   wait phrases of older templates: eta_lt, eta_1m, eta_nm,
 *                   eta_nh ("{n}" in the last two stands for the number)
 * A "{{" must close with "}}" on the same line; anything else is an error.
 * Output is UTF-8 (serve as text/html; charset=utf-8). Every text is free of
 * '"', '<', '>' and '&', so it may stand in an attribute.
 * The built-in template (used when template is empty) is conf/waiting-room.html
 * compiled in. */
#ifndef EL_PAGE_H
#define EL_PAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EL_PAGE_MAX (48 * 1024) /* rendered pages never exceed this */
#define EL_PAGE_ETA_CAP_S 86400 /* waits stop here: JSON 86400 = "a day or more" */
#define EL_PAGE_LANG_PATH "/_einlass/lang" /* ?set=TAG&to=PATH: the language switch */
#define EL_PAGE_LANG_COOKIE "einlass_lang" /* the switch's choice, read before Accept-Language */

/* The order is the switch's order; EN and DE keep their old values. */
enum el_lang {
    EL_LANG_EN = 0,
    EL_LANG_DE = 1,
    EL_LANG_TR,
    EL_LANG_AR,
    EL_LANG_RU,
    EL_LANG_UK,
    EL_LANG_PL,
    EL_LANG_COUNT
};

struct el_page;

/* What one rendering shows. */
struct el_page_view {
    enum el_lang lang;  /* the page's language */
    uint64_t position;  /* place in line, 1 = next */
    uint64_t eta_s;     /* the room's estimate; capped and ranged by the page */
    uint64_t eta_low_s; /* the room's range (eta.h), rounded out by the page; */
    uint64_t eta_high_s; /* eta_high_s = 0: 4/5..5/4 of eta_s */
    int poll_s;         /* seconds between polls */
    int keep_place_s;   /* a place is kept this long since last seen ("" if <= 0) */
    const char *target; /* the request's path and query as received, for the
                           language links' way back; NULL: "/" */
    size_t target_len;
    bool paused;        /* admissions are on hold (POST /pause): the wait reads
                           "paused" and the place is kept */
    bool prequeue;      /* an event's pre-queue (event.h): the place reads "drawn at
                           the opening", the wait when it opens, the note why */
    int64_t opens_at_ms; /* prequeue: the opening (unix ms) */
    int opens_offset_min; /* ... shown in this UTC offset */
    int64_t now_ms;     /* prequeue: now, for "opens_in_s" */
    const char *event;  /* prequeue: the event's name (letters, digits, -_.) */
};

/* The wait as shown: the estimate capped at EL_PAGE_ETA_CAP_S and the range
 * the words say, its ends rounded to whole minutes (to 5 minutes above
 * 15 minutes, to hours above 90 minutes). low_s <= s <= high_s <= cap. */
struct el_page_eta {
    uint64_t s;      /* the estimate in seconds */
    uint64_t low_s;  /* the range's lower end */
    uint64_t high_s; /* ... and upper end */
};
void el_page_eta(uint64_t eta_s, struct el_page_eta *out);
/* The same for the range low_s..high_s the room measured (taken to include
 * eta_s; below an hour's estimate, at most 90 minutes high, so the words keep
 * one unit). */
void el_page_eta_range(uint64_t eta_s, uint64_t low_s, uint64_t high_s, struct el_page_eta *out);

/* Load a template from path ("" or NULL: the built-in page). Returns NULL
 * and sets *err (allocated) if the file cannot be read, is over 32 KiB, or
 * has an unknown placeholder. */
struct el_page *el_page_load(const char *path, char **err);
void el_page_free(struct el_page *p);

/* The language Accept-Language prefers most (by q-value, then order; a
 * primary subtag matches: "de-AT" is de; "*" is English); English if none
 * of ours is listed or the header is malformed. */
enum el_lang el_page_lang(const char *accept_language, size_t len);
/* A language by its tag exactly ("tr", case-insensitive), as the switch and
 * its cookie spell it. Returns -1 if it is none of ours. */
int el_page_lang_parse(const char *tag, size_t len);
const char *el_page_lang_tag(enum el_lang lang);
/* True if Accept prefers the page to JSON: the weight of text/html (else
 * of all text) is above 0 and not below that of application/json (else of
 * all application types). A bare wildcard (curl's default) speaks for neither, so
 * API clients get JSON. Malformed or absent headers give false. */
bool el_page_wants_html(const char *accept, size_t len);

/* Render the waiting page into out (cap >= EL_PAGE_MAX). Returns its length. */
size_t el_page_html(const struct el_page *p, const struct el_page_view *v, char *out, size_t cap);

/* JSON answers (cap >= 128; >= 512 with words). Return the length.
 * waiting: {"state":"waiting","position":N,"eta_s":S,"eta_low_s":L,
 * "eta_high_s":H,"poll_s":P}; with words (the page's own poll) it adds
 * "lang", "place_text" and "eta_text" in v->lang, so the script formats
 * nothing. While v->paused it ends with "paused":true and eta_text is the
 * paused text (the estimate's numbers stay as they are). */
size_t el_page_json_waiting(const struct el_page_view *v, bool words, char *out, size_t cap);
/* The pre-queue answer: {"state":"prequeue","event":NAME,"opens_at":RFC
 * 3339,"opens_in_s":S,"order":"drawn at the opening","poll_s":P}; with
 * words also "lang", "place_text" and "eta_text" (the page's texts). */
size_t el_page_json_prequeue(const struct el_page_view *v, bool words, char *out, size_t cap);
size_t el_page_json_state(const char *state /* "open" | "admitted" */, char *out, size_t cap);

/* The language switch, GET EL_PAGE_LANG_PATH?set=TAG&to=PATH: *lang is the
 * language asked for (-1 if set is absent or unknown), and out receives a
 * small page that goes on to PATH at once (meta refresh and a link; no
 * script needed). PATH is percent-decoded and must be a local path ("/x",
 * not "//host" or "/\host", printable ASCII without quotes or angle
 * brackets, at most 1024 bytes); anything else goes to "/". Returns the
 * length of the page (cap >= 2048). */
size_t el_page_lang_switch(const char *query, size_t query_len, int *lang, char *out, size_t cap);

#endif
