/* main.c - command line, then the server: einlass -c FILE runs in the
 * foreground (systemd style, logs on stderr); -t checks FILE; -v; -h. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "einlass/admin.h"
#include "einlass/common.h"
#include "einlass/config.h"
#include "einlass/page.h"
#include "einlass/server.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: einlass [-t] -c FILE | -v | -h\n"
               "  -c FILE  run with this configuration, in the foreground\n"
               "  -t       check the configuration and exit (0 valid, 1 invalid)\n"
               "  -v       print the version\n"
               "  -h       print this help\n"
               "signals: HUP reloads FILE, TERM/INT drain and stop\n");
}

/* -t: everything a start would check short of binding sockets. */
static int check(const char *path)
{
    struct el_config *cfg = NULL;
    char *err = NULL;
    if (el_config_load(path, &cfg, &err) == -1) {
        fprintf(stderr, "%s\n", err);
        free(err);
        return 1;
    }
    struct el_page *page = el_page_load(cfg->template_path, &err);
    if (page == NULL) {
        fprintf(stderr, "%s:0: [room] template: %s\n", path, err);
        free(err);
        el_config_free(cfg);
        return 1;
    }
    el_page_free(page);
    char *warn = el_admin_exposure_warning(cfg->admin_listen, cfg->admin_token);
    if (warn != NULL) fprintf(stderr, "%s: warning: %s\n", path, warn);
    free(warn);
    el_config_free(cfg);
    fprintf(stderr, "%s: configuration ok\n", path);
    return 0;
}

int main(int argc, char **argv)
{
    const char *conf = NULL;
    bool test = false;
    int opt;
    while ((opt = getopt(argc, argv, "c:tvh")) != -1) {
        switch (opt) {
        case 'c':
            conf = optarg;
            break;
        case 't':
            test = true;
            break;
        case 'v':
            printf("einlass %s\n", EL_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (conf == NULL || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (test) return check(conf);
    static struct el_server srv;
    if (el_server_start(&srv, conf) == -1) return 1;
    return el_server_run(&srv);
}
