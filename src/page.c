/* page.c - the waiting page and the JSON answers for waiting clients.
 *
 * Invariants: el_page_load() is the only place that parses a template; it
 * splits the text once into ops (literal slices of the template kept in the
 * struct, and placeholders resolved to an enum), so rendering is a linear
 * copy. A loaded page is immutable and may be shared by every worker. All
 * output goes through struct out, which never writes more than cap - 1 bytes
 * and always NUL-terminates when cap > 0: a too-small buffer truncates, it
 * never overflows. The texts live only here, in two tables indexed by
 * enum el_lang; the page's script receives its wait phrases through data
 * attributes, so German and English are never spelled twice. */
#include "einlass/page.h"

#include "einlass/common.h"
#include "einlass/http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "el_page_builtin.h" /* el_page_builtin[], el_page_builtin_len: conf/waiting-room.html */

#define TEMPLATE_MAX (32 * 1024)
#define PLACEHOLDER_MAX 64 /* "{{" to "}}" must close within this, on one line */

/* ---- texts ---- */

enum text {
    T_TITLE,
    T_HEADING,
    T_INTRO,
    T_PLACE_LABEL,
    T_WAIT_LABEL,
    T_NOTE,
    T_KEEP_OPEN,
    T_NO_JS,
    T_ADMITTED,
    T_ETA_LT,
    T_ETA_1M,
    T_ETA_NM,
    T_ETA_NH,
    T_PAUSED,
    T_COUNT
};

static const char *const text_names[T_COUNT] = {
    [T_TITLE] = "title",           [T_HEADING] = "heading",
    [T_INTRO] = "intro",           [T_PLACE_LABEL] = "place_label",
    [T_WAIT_LABEL] = "wait_label", [T_NOTE] = "note",
    [T_KEEP_OPEN] = "keep_open",   [T_NO_JS] = "no_js",
    [T_ADMITTED] = "admitted",     [T_ETA_LT] = "eta_lt",
    [T_ETA_1M] = "eta_1m",         [T_ETA_NM] = "eta_nm",
    [T_ETA_NH] = "eta_nh",         [T_PAUSED] = "paused",
};

/* "{n}" in the eta texts stands for the number (here and in the page's script). */
static const char *const texts[2][T_COUNT] = {
    [EL_LANG_EN] =
        {
            [T_TITLE] = "Waiting room",
            [T_HEADING] = "You are in line",
            [T_INTRO] = "Right now a great many people want to book. To keep the portal fast "
                        "for everyone, we let visitors in a few at a time. When it is your "
                        "turn, you will be let in automatically.",
            [T_PLACE_LABEL] = "Your place in line",
            [T_WAIT_LABEL] = "Estimated wait",
            [T_NOTE] = "This is an estimate and can change.",
            [T_KEEP_OPEN] = "Your place is kept as long as this page stays open. Please do not "
                            "open several tabs: they share one place and will not get you in "
                            "sooner.",
            [T_NO_JS] = "This page refreshes itself every few seconds.",
            [T_ADMITTED] = "It is your turn. Loading\u2026",
            [T_ETA_LT] = "less than a minute",
            [T_ETA_1M] = "about 1 minute",
            [T_ETA_NM] = "about {n} minutes",
            [T_ETA_NH] = "about {n} hours",
            [T_PAUSED] = "paused for now: nobody is let in at the moment, and your place is kept",
        },
    [EL_LANG_DE] =
        {
            [T_TITLE] = "Warteraum",
            [T_HEADING] = "Sie sind in der Warteschlange",
            [T_INTRO] = "Gerade m\u00f6chten sehr viele Menschen buchen. Damit das Portal f\u00fcr "
                        "alle schnell bleibt, lassen wir Besucherinnen und Besucher nach und nach "
                        "herein. Sobald Sie an der Reihe sind, geht es automatisch weiter.",
            [T_PLACE_LABEL] = "Ihr Platz in der Warteschlange",
            [T_WAIT_LABEL] = "Voraussichtliche Wartezeit",
            [T_NOTE] = "Dies ist eine Sch\u00e4tzung und kann sich \u00e4ndern.",
            [T_KEEP_OPEN] = "Ihr Platz bleibt erhalten, solange diese Seite ge\u00f6ffnet ist. "
                            "Bitte \u00f6ffnen Sie nicht mehrere Tabs: Sie teilen sich einen "
                            "Platz und kommen dadurch nicht schneller an die Reihe.",
            [T_NO_JS] = "Diese Seite aktualisiert sich alle paar Sekunden von selbst.",
            [T_ADMITTED] = "Sie sind an der Reihe. Die Seite wird geladen\u2026",
            [T_ETA_LT] = "weniger als eine Minute",
            [T_ETA_1M] = "etwa 1 Minute",
            [T_ETA_NM] = "etwa {n} Minuten",
            [T_ETA_NH] = "etwa {n} Stunden",
            [T_PAUSED] = "gerade angehalten: im Moment wird niemand eingelassen, Ihr Platz "
                         "bleibt erhalten",
        },
};

/* ---- template ---- */

enum op_kind { OP_LIT, OP_LANG, OP_POSITION, OP_ETA, OP_ETA_S, OP_POLL_S, OP_TEXT };

struct op {
    uint8_t kind; /* enum op_kind */
    uint8_t text; /* OP_TEXT: enum text */
    uint32_t off; /* OP_LIT: start of the slice in el_page.tpl */
    uint32_t len; /* OP_LIT: length of the slice */
};

struct el_page {
    char *tpl;      /* the template text; OP_LIT ops point into it */
    struct op *ops; /* the template in order: literals and placeholders */
    size_t nops;    /* entries in ops */
};

static const struct {
    const char *name;
    enum op_kind kind;
} placeholders[] = {
    {"lang", OP_LANG},   {"position", OP_POSITION}, {"eta", OP_ETA},
    {"eta_s", OP_ETA_S}, {"poll_s", OP_POLL_S},
};

/* Map a placeholder name to an op. Returns 0 or -1 if unknown. */
static int resolve(const char *name, size_t len, struct op *op)
{
    for (size_t i = 0; i < EL_ARRAY_LEN(placeholders); i++) {
        if (strlen(placeholders[i].name) == len && memcmp(placeholders[i].name, name, len) == 0) {
            op->kind = (uint8_t)placeholders[i].kind;
            return 0;
        }
    }
    if (len > 2 && memcmp(name, "t:", 2) == 0) {
        for (size_t i = 0; i < T_COUNT; i++) {
            if (strlen(text_names[i]) == len - 2 && memcmp(text_names[i], name + 2, len - 2) == 0) {
                op->kind = OP_TEXT;
                op->text = (uint8_t)i;
                return 0;
            }
        }
    }
    return -1;
}

static unsigned line_of(const char *s, size_t pos)
{
    unsigned line = 1;
    for (size_t i = 0; i < pos; i++)
        line += s[i] == '\n';
    return line;
}

/* Split tpl[0..len) into p->ops. Returns 0, or -1 with *err set (allocated). */
static int split(struct el_page *p, size_t len, const char *where, char **err)
{
    const char *s = p->tpl;
    /* Every placeholder needs at least 5 bytes, and literals alternate with them. */
    p->ops = el_calloc(len / 5 * 2 + 2, sizeof(*p->ops));
    size_t lit = 0, i = 0;
    while (i + 1 < len) {
        if (s[i] != '{' || s[i + 1] != '{') {
            i++;
            continue;
        }
        size_t name = i + 2, j = name;
        while (j + 1 < len && j - i < PLACEHOLDER_MAX && s[j] != '\n' &&
               !(s[j] == '}' && s[j + 1] == '}'))
            j++;
        if (j + 1 >= len || s[j] != '}' || s[j + 1] != '}') {
            *err = el_sprintf("%s:%u: unterminated placeholder (\"{{\" without \"}}\")", where,
                              line_of(s, i));
            goto fail;
        }
        struct op op = {0};
        if (resolve(s + name, j - name, &op) != 0) {
            *err = el_sprintf("%s:%u: unknown placeholder {{%.*s}}", where, line_of(s, i),
                              (int)(j - name), s + name);
            goto fail;
        }
        if (i > lit)
            p->ops[p->nops++] =
                (struct op){.kind = OP_LIT, .off = (uint32_t)lit, .len = (uint32_t)(i - lit)};
        p->ops[p->nops++] = op;
        i = lit = j + 2;
    }
    if (len > lit)
        p->ops[p->nops++] =
            (struct op){.kind = OP_LIT, .off = (uint32_t)lit, .len = (uint32_t)(len - lit)};
    return 0;
fail:
    return -1;
}

/* Read at most TEMPLATE_MAX bytes of path into a new NUL-terminated buffer. */
static int read_template(const char *path, char **out, size_t *out_len, char **err)
{
    char *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        *err = el_sprintf("%s: cannot open template: %s", path, strerror(errno));
        goto fail;
    }
    buf = el_malloc(TEMPLATE_MAX + 2);
    size_t n = fread(buf, 1, TEMPLATE_MAX + 1, f);
    if (ferror(f)) {
        *err = el_sprintf("%s: cannot read template: %s", path, strerror(errno));
        goto fail;
    }
    if (n > TEMPLATE_MAX) {
        *err = el_sprintf("%s: template is larger than %d bytes", path, TEMPLATE_MAX);
        goto fail;
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 0;
fail:
    if (f != NULL) fclose(f);
    free(buf);
    return -1;
}

struct el_page *el_page_load(const char *path, char **err)
{
    struct el_page *p = el_calloc(1, sizeof(*p));
    size_t len;
    const char *where = path;
    *err = NULL;
    if (path == NULL || path[0] == '\0') {
        where = "(built-in waiting-room.html)";
        len = el_page_builtin_len;
        p->tpl = el_strndup((const char *)el_page_builtin, len);
    } else if (read_template(path, &p->tpl, &len, err) != 0) {
        goto fail;
    }
    if (split(p, len, where, err) != 0) goto fail;
    return p;
fail:
    el_page_free(p);
    return NULL;
}

void el_page_free(struct el_page *p)
{
    if (p == NULL) return;
    free(p->tpl);
    free(p->ops);
    free(p);
}

/* ---- bounded output ---- */

struct out {
    char *p;    /* the caller's buffer */
    size_t len; /* bytes written, excluding the NUL */
    size_t cap; /* size of p; at most cap - 1 bytes are written */
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->cap == 0) return;
    size_t room = o->cap - 1 - o->len;
    if (n > room) n = room;
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put_str(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void put_u64(struct out *o, uint64_t v)
{
    char d[20];
    size_t n = 0;
    do {
        d[sizeof(d) - ++n] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    put(o, d + sizeof(d) - n, n);
}

static void put_int(struct out *o, int v)
{
    if (v < 0) {
        put(o, "-", 1);
        put_u64(o, (uint64_t)0 - (uint64_t)(int64_t)v);
    } else {
        put_u64(o, (uint64_t)v);
    }
}

static size_t finish(struct out *o)
{
    if (o->cap > 0) o->p[o->len] = '\0';
    return o->len;
}

/* The wait in words: under a minute; whole minutes up to 90; whole hours above. */
static void put_eta(struct out *o, enum el_lang lang, uint64_t eta_s)
{
    const char *fmt;
    uint64_t n = 0;
    if (eta_s == EL_PAGE_ETA_PAUSED) {
        put_str(o, texts[lang][T_PAUSED]);
        return;
    }
    if (eta_s < 60) {
        fmt = texts[lang][T_ETA_LT];
    } else if (eta_s <= 90 * 60) {
        n = (eta_s + 30) / 60;
        fmt = texts[lang][n == 1 ? T_ETA_1M : T_ETA_NM];
    } else {
        n = eta_s / 3600 + (eta_s % 3600 >= 1800);
        fmt = texts[lang][T_ETA_NH];
    }
    const char *at = strstr(fmt, "{n}");
    if (at == NULL) {
        put_str(o, fmt);
        return;
    }
    put(o, fmt, (size_t)(at - fmt));
    put_u64(o, n);
    put_str(o, at + 3);
}

size_t el_page_html(const struct el_page *p, enum el_lang lang, uint64_t position, uint64_t eta_s,
                    int poll_s, char *out, size_t cap)
{
    struct out o = {out, 0, cap};
    if (lang != EL_LANG_DE) lang = EL_LANG_EN;
    for (size_t i = 0; i < p->nops; i++) {
        const struct op *op = &p->ops[i];
        switch ((enum op_kind)op->kind) {
        case OP_LIT:
            put(&o, p->tpl + op->off, op->len);
            break;
        case OP_LANG:
            put_str(&o, lang == EL_LANG_DE ? "de" : "en");
            break;
        case OP_POSITION:
            put_u64(&o, position);
            break;
        case OP_ETA:
            put_eta(&o, lang, eta_s);
            break;
        case OP_ETA_S:
            put_u64(&o, eta_s == EL_PAGE_ETA_PAUSED ? 0 : eta_s);
            break;
        case OP_POLL_S:
            put_int(&o, poll_s);
            break;
        case OP_TEXT:
            put_str(&o, texts[lang][op->text]);
            break;
        }
    }
    return finish(&o);
}

size_t el_page_json_waiting(uint64_t position, uint64_t eta_s, int poll_s, char *out, size_t cap)
{
    struct out o = {out, 0, cap};
    put_str(&o, "{\"state\":\"waiting\",\"position\":");
    put_u64(&o, position);
    put_str(&o, ",\"eta_s\":");
    put_u64(&o, eta_s);
    put_str(&o, ",\"poll_s\":");
    put_int(&o, poll_s);
    put_str(&o, "}");
    return finish(&o);
}

size_t el_page_json_state(const char *state, char *out, size_t cap)
{
    struct out o = {out, 0, cap};
    put_str(&o, "{\"state\":\"");
    put_str(&o, state);
    put_str(&o, "\"}");
    return finish(&o);
}

/* ---- content negotiation ---- */

struct item {
    const char *v; /* the element's value: a media range or a language tag */
    size_t vlen;   /* its length */
    int q;         /* its weight in thousandths, 1000 without a q parameter */
};

/* qvalue = "0" ["." 0*3DIGIT] / "1" ["." 0*3"0"]; returns thousandths or -1. */
static int parse_q(const char *s, size_t n)
{
    if (n == 0 || (s[0] != '0' && s[0] != '1')) return -1;
    int q = (s[0] - '0') * 1000;
    if (n == 1) return q;
    if (s[1] != '.' || n > 5) return -1;
    int scale = 100;
    for (size_t i = 2; i < n; i++, scale /= 10) {
        if (s[i] < '0' || s[i] > '9') return -1;
        q += (s[i] - '0') * scale;
    }
    return q > 1000 ? -1 : q;
}

/* Next element of a comma-separated header list with ";name=value" parameters
 * (Accept, Accept-Language), from the list iterator at *p. Returns 1 with
 * *it filled, 0 at the end, -1 if malformed. Empty elements are skipped, as
 * HTTP lists allow. */
static int next_item(const char **p, const char *end, struct item *it)
{
    const char *s;
    size_t len;
    do
        if (!el_http_next_item(p, end, &s, &len)) return 0;
    while (len == 0);
    size_t i = 0;
    it->v = s;
    while (i < len && (el_http_is_tchar((unsigned char)s[i]) || s[i] == '/'))
        i++;
    it->vlen = i;
    it->q = 1000;
    if (it->vlen == 0) return -1;
    for (;;) {
        i = (size_t)(el_http_skip_ows(s + i, s + len) - s);
        if (i == len) break;
        if (s[i] != ';') return -1;
        i = (size_t)(el_http_skip_ows(s + i + 1, s + len) - s);
        size_t name = i;
        i = (size_t)(el_http_skip_token(s + i, s + len) - s);
        size_t name_len = i - name;
        if (name_len == 0 || i == len || s[i] != '=') return -1;
        i++;
        size_t val = i;
        if (i < len && s[i] == '"') { /* quoted-string */
            for (i++; i < len && s[i] != '"'; i++)
                if (s[i] == '\\') i++;
            if (i >= len) return -1;
            i++;
        } else {
            i = (size_t)(el_http_skip_token(s + i, s + len) - s);
        }
        if (el_strcaseeq(s + name, name_len, "q", 1) && (it->q = parse_q(s + val, i - val)) < 0)
            return -1;
    }
    return 1;
}

enum el_lang el_page_lang(const char *accept_language, size_t len)
{
    enum el_lang best = EL_LANG_EN;
    int best_q = 0;
    const char *pos = accept_language;
    struct item it;
    int r;
    if (accept_language == NULL) return EL_LANG_EN;
    while ((r = next_item(&pos, accept_language + len, &it)) == 1) {
        size_t primary = 0;
        while (primary < it.vlen && it.v[primary] != '-')
            primary++;
        for (size_t i = 0; i < it.vlen; i++) {
            char c = it.v[i];
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || (c == '*' && it.vlen == 1);
            if (!ok) return EL_LANG_EN;
        }
        enum el_lang lang;
        if (el_strcaseeq(it.v, primary, "de", 2))
            lang = EL_LANG_DE;
        else if (el_strcaseeq(it.v, primary, "en", 2) || el_strcaseeq(it.v, it.vlen, "*", 1))
            lang = EL_LANG_EN;
        else
            continue;
        if (it.q > best_q) { /* strictly greater: on a tie the earlier one wins */
            best_q = it.q;
            best = lang;
        }
    }
    return r < 0 ? EL_LANG_EN : best;
}

bool el_page_wants_html(const char *accept, size_t len)
{
    bool html = false;
    const char *pos = accept;
    struct item it;
    int r;
    if (accept == NULL) return false;
    while ((r = next_item(&pos, accept + len, &it)) == 1) {
        if (it.q > 0 && (el_strcaseeq(it.v, it.vlen, "text/html", 9) ||
                         el_strcaseeq(it.v, it.vlen, "text/*", 6)))
            html = true;
    }
    return r == 0 && html;
}
