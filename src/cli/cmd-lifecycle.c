// SPDX-License-Identifier: Apache-2.0
/* `create`, `start`, `stop`, `remove`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "sandbox-flags.h"

int cmd_create(int argc, char **argv)
{
        cleanup_sandbox_flags struct sandbox_flags f = {0};
        struct cli_args a;
        struct ak_err err = {0};
        cleanup_manager struct manager *m = NULL;
        int r;

        sandbox_flags_init(&f, false);
        const struct cli_spec spec = {.shortopts = CREATE_SHORTOPTS,
                                      .longopts = create_longopts,
                                      .on_opt = sandbox_flags_opt,
                                      .ctx = &f,
                                      .max_pos = 1};

        r = cli_parse(argc, argv, &spec, &a);
        if (r)
                return CLI_PARSE_EXIT(r);
        r = sandbox_flags_config(&f);
        if (r)
                return r;
        f.o.name = a.n_pos ? a.pos[0] : f.cfg ? f.cfg->name : NULL;
        if (!f.o.name)
                return cli_usage_error(cli_current, "a sandbox name is required (or [sandbox] name "
                                                    "in agentkernel.toml)");
        m = cli_manager();
        if (!m)
                return EXIT_ERROR;
        if (manager_create(m, &f.o, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        if (f.no_start) {
                printf("Created sandbox '%s'\nStart it with: %s start %s\n", f.o.name, cli_prog,
                       f.o.name);
                return EXIT_OK;
        }
        if (manager_start(m, f.o.name, &err) < 0) {
                /* The record stays, as upstream: the user can fix the cause and start again. */
                cli_error("%s", ak_err_msg(&err));
                fprintf(stderr,
                        "The sandbox was created but not started; after fixing the "
                        "cause run: %s start %s\n",
                        cli_prog, f.o.name);
                return EXIT_ERROR;
        }
        printf("Created and started sandbox '%s'\n", f.o.name);
        return EXIT_OK;
}

static int backend_opt(int c, const char *arg, void *ctx)
{
        if (c != 'B')
                return EXIT_USAGE;
        if (!backend_find(arg))
                return cli_usage_error(cli_current, "unknown backend '%s'", arg);
        *(const char **)ctx = arg;
        return 0;
}

/* start, stop and remove take one or more names and act on each in turn. */
struct per_name {
        int (*op)(struct manager *m, const char *name, void *ctx, struct ak_err *err);
        void *ctx;
        const char *done; /* "Stopped", printed as "<done> sandbox 'x'" */
};

static int for_each_name(int argc, char **argv, const struct cli_spec *spec,
                         const struct per_name *p)
{
        struct cli_args a;
        struct manager *m;
        int r = cli_parse(argc, argv, spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        m = cli_manager();
        if (!m)
                return EXIT_ERROR;
        for (size_t i = 0; i < a.n_pos; i++) {
                struct ak_err err = {0};
                int k = p->op(m, a.pos[i], p->ctx, &err);
                if (k < 0)
                        r = cli_fail(&err, EXIT_ERROR);
                else if (k == 0)
                        printf("%s sandbox '%s'\n", p->done, a.pos[i]);
        }
        manager_free(m);
        return r;
}

/* Returns 1 (nothing to print) for a sandbox already running. */
static int start_one(struct manager *m, const char *name, void *ctx, struct ak_err *err)
{
        const char *backend = *(const char **)ctx;
        cleanup_state struct sandbox_state *st = NULL;
        int r;

        if (backend && manager_get(m, name, &st, NULL) == 0 &&
            !streq(manager_backend_name(st), backend))
                return ak_err_set(err, EINVAL, "sandbox '%s' uses backend '%s', not '%s'", name,
                                  manager_backend_name(st), backend);
        r = manager_start(m, name, err);
        if (r == -EALREADY) {
                printf("Sandbox '%s' is already running\n", name);
                return 1;
        }
        return r;
}

static int stop_one(struct manager *m, const char *name, void *ctx, struct ak_err *err)
{
        (void)ctx;
        return manager_stop(m, name, err);
}

static int remove_one(struct manager *m, const char *name, void *ctx, struct ak_err *err)
{
        (void)ctx;
        return manager_remove(m, name, err);
}

#define NAMES_SPEC .min_pos = 1, .max_pos = CLI_MAX_POS, .missing = "a sandbox name is required"

int cmd_start(int argc, char **argv)
{
        static const struct option longopts[] = {{"backend", required_argument, NULL, 'B'},
                                                 {NULL, 0, NULL, 0}};
        const char *backend = NULL;
        const struct cli_spec spec = {.shortopts = "B:",
                                      .longopts = longopts,
                                      .on_opt = backend_opt,
                                      .ctx = &backend,
                                      NAMES_SPEC};
        const struct per_name p = {start_one, &backend, "Started"};

        return for_each_name(argc, argv, &spec, &p);
}

int cmd_stop(int argc, char **argv)
{
        const struct cli_spec spec = {NAMES_SPEC};
        const struct per_name p = {stop_one, NULL, "Stopped"};

        return for_each_name(argc, argv, &spec, &p);
}

int cmd_remove(int argc, char **argv)
{
        const struct cli_spec spec = {NAMES_SPEC};
        const struct per_name p = {remove_one, NULL, "Removed"};

        return for_each_name(argc, argv, &spec, &p);
}
