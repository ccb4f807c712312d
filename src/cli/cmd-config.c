// SPDX-License-Identifier: Apache-2.0
/* `export-config` and `import-config` (upstream's): a sandbox's portable configuration out as
 * TOML, and a sandbox created from one (core/portable.c says what travels). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "core/portable.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/host-file.h"
#include "shared/strv.h"

#define IMPORT_FILE_MAX (1u << 20)

static int cmd_export_config(int argc, char **argv)
{
        cleanup_state struct sandbox_state *st = NULL;
        cleanup_manager struct manager *m = NULL;
        const struct cli_spec spec = CLI_SPEC_SANDBOX(NULL);
        cleanup_free char *text = NULL;
        struct ak_err err = {0};
        struct cli_args a;
        int r = cli_parse_open(argc, argv, &spec, &a, &m);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (manager_get(m, a.pos[0], &st, &err) < 0 || portable_export(st, &text, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        fputs(text, stdout);
        return EXIT_OK;
}

const struct verb verb_export_config = {
    "export-config",
    cmd_export_config,
    "NAME",
    "Print a sandbox's portable configuration (TOML)",
    "Name, image, init script, resources, agent and ports: nothing of this host's (workspace,\n"
    "volumes, files, secrets) and no security settings.\n",
    VERB_TOP_ONLY,
    NULL};

static int cmd_import_config(int argc, char **argv)
{
        const char *as = NULL, *backend = NULL;
        const struct cli_option options[] = {
            OPT_STRING(0, "as", &as, "NAME", "the new sandbox's name (default: the file's)"),
            OPT_CALLBACK('B', "backend", &backend, "NAME", "its backend", cli_opt_backend),
            OPT_END(),
        };
        const struct cli_spec spec = {
            .options = options, .min_pos = 1, .max_pos = 1, .missing = "name the file to import"};
        struct port_spec ports[CONFIG_MAX_PORTS];
        cleanup_config struct config *c = NULL;
        cleanup_manager struct manager *m = NULL;
        cleanup_buf struct buf text = BUF_INIT;
        cleanup_strv char **ignored = NULL;
        cleanup_close int fd = -1;
        struct create_opts o;
        struct ak_err err = {0};
        struct cli_args a;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        /* a file the user names: no link another user planted is followed, a FIFO cannot hang
         * us, and its size is bounded */
        fd = open_source_file(a.pos[0]);
        if (fd < 0) {
                cli_error("cannot open '%s': %s", a.pos[0], strerror(-fd));
                return EXIT_ERROR;
        }
        r = read_fd_full(fd, &text, IMPORT_FILE_MAX);
        if (r < 0) {
                cli_error("cannot read '%s': %s", a.pos[0],
                          r == -EFBIG ? "larger than 1 MiB" : strerror(-r));
                return EXIT_ERROR;
        }
        if (config_parse(text.data ? text.data : "", text.len, NULL, &c, &err) < 0 ||
            portable_import(c, as, &o, ports, &ignored, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        for (char **w = c->warnings; *w; w++)
                fprintf(stderr, "warning: %s\n", *w);
        for (char **i = ignored; *i; i++)
                fprintf(stderr, "note: not imported: %s\n", *i);
        o.backend = backend;
        m = cli_manager();
        if (!m)
                return EXIT_ERROR;
        printf("Importing config as sandbox '%s' (image: %s)...\n", o.name,
               o.image ? o.image : "the backend's default");
        if (manager_create(m, &o, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        printf("Sandbox '%s' created from config (start it with: %s start %s)\n", o.name, cli_prog,
               o.name);
        return EXIT_OK;
}

const struct verb verb_import_config = {
    "import-config",
    cmd_import_config,
    "FILE [--as NAME] [-B BACKEND]",
    "Create a sandbox (not started) from an exported configuration",
    "What export-config writes: name, image, init script, resources, agent, ports. Anything\n"
    "else a file says (security settings, files to copy) is named and not applied.\n",
    VERB_TOP_ONLY,
    NULL};
