// SPDX-License-Identifier: Apache-2.0
/* `pool clear [-B docker|podman|microvm]`: removes the idle sandboxes `run --fast` keeps warm. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "shared/cleanup.h"

static int opt_pool_backend(const struct cli_option *o, const char *arg)
{
        const struct backend_ops *b = backend_find(arg);

        if (!b || !backend_keeps_pool(b))
                return cli_usage_error(cli_current, "only docker, podman and microvm keep a pool");
        *(const char **)o->value = arg;
        return 0;
}

static void print_cleared(void *ctx, const char *backend, unsigned n)
{
        (void)ctx;
        bool vm = streq(backend, "microvm");
        printf("%s: removed %u idle %s%s\n", backend, n, vm ? "machine" : "container",
               n == 1 ? "" : "s");
}

static int cmd_pool_clear(int argc, char **argv)
{
        const char *backend = NULL;
        const struct cli_option options[] = {
            OPT_CALLBACK('B', "backend", &backend, "NAME", "only this backend's pool",
                         opt_pool_backend),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options};
        cleanup_manager struct manager *m = NULL;
        struct ak_err err = {0};
        struct cli_args a;
        int r = cli_parse_open(argc, argv, &spec, &a, &m);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (manager_pool_clear(m, backend, print_cleared, NULL, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        return EXIT_OK;
}

static const struct verb pool_clear_verb = {"clear",
                                            cmd_pool_clear,
                                            "[-B docker|podman|microvm]",
                                            "Remove the idle sandboxes of the pools",
                                            NULL,
                                            0,
                                            NULL};
static const struct verb *const pool_verbs[] = {&pool_clear_verb, NULL};

const struct verb verb_pool = {
    "pool",
    cli_dispatch_verb,
    "clear [-B docker|podman|microvm]",
    "Remove the idle sandboxes that run --fast keeps warm",
    "`run --fast -B docker|podman` takes a started container from a pool of identical\n"
    "ones (up to 5 per configuration, 20 per engine); `run --fast -B microvm` a booted\n"
    "virtual machine (up to 2 per configuration, 6 in all: each holds its memory). Pools\n"
    "are refilled in the background; each sandbox serves one run and is then destroyed.\n"
    "'pool clear' empties the pools.\n",
    VERB_TOP_ONLY,
    pool_verbs};
