// SPDX-License-Identifier: Apache-2.0
/* `pool clear [-B docker|podman]`: removes the idle containers `run --fast` keeps warm. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "shared/cleanup.h"

static int pool_opt(int c, const char *arg, void *ctx)
{
        const struct backend_ops *b = backend_find(arg);

        if (c != 'B')
                return EXIT_USAGE;
        if (!b || !backend_keeps_pool(b))
                return cli_usage_error(cli_current, "only docker and podman keep a pool");
        *(const char **)ctx = arg;
        return 0;
}

static void print_cleared(void *ctx, const char *backend, unsigned n)
{
        (void)ctx;
        printf("%s: removed %u idle container%s\n", backend, n, n == 1 ? "" : "s");
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
        cleanup_manager struct manager *m = NULL;
        struct ak_err err = {0};
        struct cli_args a;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (strcmp(a.pos[0], "clear") != 0)
                return cli_usage_error(cli_current, "unknown pool command '%s'", a.pos[0]);
        m = cli_manager();
        if (!m)
                return EXIT_ERROR;
        if (manager_pool_clear(m, backend, print_cleared, NULL, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        return EXIT_OK;
}
