// SPDX-License-Identifier: Apache-2.0
/* `pool clear [-B docker|podman]`: removes the idle containers `run --fast` keeps warm. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/engine-backend.h"
#include "cli.h"
#include "cmd.h"
#include "core/store.h"
#include "shared/cleanup.h"

static int pool_opt(int c, const char *arg, void *ctx)
{
        const char **backend = ctx;

        if (c != 'B')
                return EXIT_USAGE;
        if (strcmp(arg, "docker") != 0 && strcmp(arg, "podman") != 0)
                return cli_usage_error(cli_current, "only docker and podman keep a pool");
        *backend = arg;
        return 0;
}

int cmd_pool(int argc, char **argv)
{
        static const struct option longopts[] = {
            {"backend", required_argument, NULL, 'B'},
            {NULL, 0, NULL, 0},
        };
        const char *backend = NULL;
        const struct cli_spec spec = {.shortopts = "B:",
                                      .longopts = longopts,
                                      .on_opt = pool_opt,
                                      .ctx = &backend,
                                      .min_pos = 1,
                                      .max_pos = 1,
                                      .missing = "a pool command is required (clear)"};
        struct cli_args a;
        struct manager *m;
        cleanup_free char *dir = NULL;
        int r = cli_parse(argc, argv, &spec, &a), rc = EXIT_OK;

        if (r)
                return CLI_PARSE_EXIT(r);
        if (strcmp(a.pos[0], "clear") != 0)
                return cli_usage_error(cli_current, "unknown pool command '%s'", a.pos[0]);
        m = cli_manager();
        if (!m)
                return EXIT_ERROR;
        dir = store_run_dir(m->store, ".ephemeral");
        manager_free(m);
        for (int k = 0; k < 2 && dir; k++) {
                enum engine_kind kind = k ? ENGINE_PODMAN : ENGINE_DOCKER;
                struct ak_err err = {0};
                unsigned n = 0;
                if (backend && strcmp(backend, engine_name(kind)) != 0)
                        continue;
                if (engine_pool_clear(kind, dir, &n, &err) < 0) {
                        if (backend) /* asked for this one: its absence is an error */
                                rc = cli_fail(&err, EXIT_ERROR);
                        continue;
                }
                printf("%s: removed %u idle container%s\n", engine_name(kind), n,
                       n == 1 ? "" : "s");
        }
        return rc;
}
