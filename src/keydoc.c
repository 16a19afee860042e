/* keydoc.c - the build's documentation generator: prints the config key
 * table (src/config.c) and the metric names (src/metrics.c) as Markdown for
 * docs/interface.md, or fills a man page template for einlass.conf(5). The
 * interface documents thus follow the code they describe; a ctest check
 * (tests/check_interface.py) fails when docs/interface.md falls behind.
 *
 *   keydoc keys-md             the key tables (Markdown)
 *   keydoc metrics-md          the metric list (Markdown)
 *   keydoc man TEMPLATE        TEMPLATE with the line "@KEYS@" replaced by the
 *                              key table in roff */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "einlass/config.h"
#include "einlass/metrics.h"

/* Every "# HELP name text" and "# TYPE name type" of an exposition. */
static void metrics_md(void)
{
    struct evbuffer *b = evbuffer_new();
    el_metrics_render(b, NULL);
    size_t n = evbuffer_get_length(b);
    char *text = malloc(n + 1);
    if (text == NULL) abort();
    evbuffer_copyout(b, text, n);
    text[n] = '\0';
    evbuffer_free(b);
    printf("| metric | type | meaning |\n|---|---|---|\n");
    char *help = NULL;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        if (strncmp(line, "# HELP ", 7) == 0) {
            help = line + 7;
        } else if (strncmp(line, "# TYPE ", 7) == 0 && help != NULL) {
            char *name = line + 7, *type = strchr(name, ' ');
            char *h = strchr(help, ' ');
            if (type == NULL || h == NULL) continue;
            *type++ = '\0';
            printf("| `%s` | %s | %s |\n", name, type, h + 1);
            help = NULL;
        }
    }
    free(text);
}

static int man(const char *template)
{
    FILE *t = fopen(template, "r");
    if (t == NULL) {
        perror(template);
        return 1;
    }
    char line[4096];
    while (fgets(line, sizeof(line), t) != NULL) {
        if (strcmp(line, "@KEYS@\n") == 0)
            el_config_print_keys(stdout, EL_CONFIG_DOC_ROFF);
        else
            fputs(line, stdout);
    }
    fclose(t);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "keys-md") == 0) {
        el_config_print_keys(stdout, EL_CONFIG_DOC_MARKDOWN);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "metrics-md") == 0) {
        metrics_md();
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "man") == 0) return man(argv[2]);
    fprintf(stderr, "usage: keydoc keys-md | metrics-md | man TEMPLATE\n");
    return 2;
}
