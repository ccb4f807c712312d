// SPDX-License-Identifier: Apache-2.0
/* `pool clear [-B native|docker|podman|microvm]`: removes the idle sandboxes `run --fast` keeps
 * warm. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"

static int opt_pool_backend(const struct cli_option *o, const char *arg)
{
        const struct backend_ops *b = backend_find(arg);

        if (!b || !backend_keeps_pool(b))
                return cli_usage_error(cli_current,
                                       "only native, docker, podman and microvm keep a pool");
        *(const char **)o->value = arg;
        return 0;
}

static void print_cleared(void *ctx, const char *backend, unsigned n)
{
        (void)ctx;
        const char *what = streq(backend, "microvm")  ? "machine"
                           : streq(backend, "native") ? "sandbox"
                                                      : "container";
        printf("%s: removed %u idle %s%s\n", backend, n, what,
               n == 1                   ? ""
               : streq(what, "sandbox") ? "es"
                                        : "s");
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

static int cmd_pool_list(int argc, char **argv)
{
        bool json = false;
        const struct cli_option options[] = {
            OPT_BOOL(0, "json", &json, "print JSON"),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options};
        cleanup_manager struct manager *m = NULL;
        cleanup_json json_t *pools = NULL;
        struct cli_args a;
        json_t *p;
        size_t i;
        int r = cli_parse_open(argc, argv, &spec, &a, &m);

        if (r)
                return CLI_PARSE_EXIT(r);
        pools = manager_pool_list(m);
        if (!pools)
                return EXIT_ERROR;
        if (json) {
                cli_print_json(pools);
                return EXIT_OK;
        }
        if (!json_array_size(pools)) {
                printf("no native pools (run --fast fills one per configuration)\n");
                return EXIT_OK;
        }
        printf("%-8s %-16s %-12s %-8s %s\n", "BACKEND", "POOL", "PROFILE", "NETWORK", "IDLE");
        json_array_foreach (pools, i, p)
                printf("%-8s %-16s %-12s %-8s %lld/%lld\n",
                       json_string_value(json_object_get(p, "backend")),
                       json_string_value(json_object_get(p, "pool")),
                       json_string_value(json_object_get(p, "profile")),
                       json_string_value(json_object_get(p, "network")),
                       (long long)json_integer_value(json_object_get(p, "idle")),
                       (long long)json_integer_value(json_object_get(p, "target")));
        return EXIT_OK;
}

static const struct verb pool_list_verb = {
    "list", cmd_pool_list, "[--json]", "Show the native pools and their idle sandboxes", NULL,
    0,      NULL};
static const struct verb pool_clear_verb = {"clear",
                                            cmd_pool_clear,
                                            "[-B native|docker|podman|microvm]",
                                            "Remove the idle sandboxes of the pools",
                                            NULL,
                                            0,
                                            NULL};
static const struct verb *const pool_verbs[] = {&pool_list_verb, &pool_clear_verb, NULL};

const struct verb verb_pool = {
    "pool",
    cli_dispatch_verb,
    "list [--json] | clear [-B native|docker|podman|microvm]",
    "Show or remove the idle sandboxes that run --fast keeps warm",
    "`run --fast` (native) takes a started sandbox from a pool of identical ones (up to 2\n"
    "per configuration, 8 in all; --network none or full, the host image, no workspace,\n"
    "volume or port); `run --fast -B docker|podman` a started container (up to 5 per\n"
    "configuration, 20 per engine); `run --fast -B microvm` a booted virtual machine (up to\n"
    "2 per configuration, 6 in all: each holds its memory). Pools are refilled in the\n"
    "background; each sandbox serves one run and is then destroyed. 'pool list' shows the\n"
    "native pools; 'pool clear' empties the pools.\n",
    VERB_TOP_ONLY,
    pool_verbs};
