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
        struct sandbox_flags f;
        struct cli_args a;
        struct ak_err err = {0};
        struct manager *m = NULL;
        int r;

        sandbox_flags_init(&f, false);
        r = cli_parse(argc, argv, CREATE_SHORTOPTS, create_longopts, 1, false, sandbox_flags_opt,
                      &f, &a);
        if (r) {
                r = CLI_PARSE_EXIT(r);
                goto out;
        }
        if (a.n_pos != 1) {
                r = cli_usage_error(cli_current, "a sandbox name is required");
                goto out;
        }
        f.o.name = a.pos[0];
        m = cli_manager();
        if (!m) {
                r = EXIT_FAILURE_;
                goto out;
        }
        if (manager_create(m, &f.o, &err) < 0) {
                r = cli_fail(&err, EXIT_FAILURE_);
                goto out;
        }
        if (f.no_start) {
                printf("Created sandbox '%s'\nStart it with: %s start %s\n", f.o.name, cli_prog,
                       f.o.name);
                r = EXIT_OK;
                goto out;
        }
        if (manager_start(m, f.o.name, &err) < 0) {
                /* The record stays, as upstream: the user can fix the cause and start again. */
                cli_error("%s", ak_err_msg(&err));
                fprintf(stderr,
                        "The sandbox was created but not started; after fixing the "
                        "cause run: %s start %s\n",
                        cli_prog, f.o.name);
                r = EXIT_FAILURE_;
                goto out;
        }
        printf("Created and started sandbox '%s'\n", f.o.name);
        r = EXIT_OK;
out:
        manager_free(m);
        sandbox_flags_free(&f);
        free(a.pos);
        return r;
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

int cmd_start(int argc, char **argv)
{
        static const struct option longopts[] = {{"backend", required_argument, NULL, 'B'},
                                                 {NULL, 0, NULL, 0}};
        const char *backend = NULL;
        struct cli_args a;
        struct ak_err err = {0};
        struct manager *m;
        int r = cli_parse(argc, argv, "B:", longopts, 64, false, backend_opt, &backend, &a);

        if (r) {
                free(a.pos);
                return CLI_PARSE_EXIT(r);
        }
        if (a.n_pos == 0) {
                free(a.pos);
                return cli_usage_error(cli_current, "a sandbox name is required");
        }
        m = cli_manager();
        if (!m) {
                free(a.pos);
                return EXIT_FAILURE_;
        }
        r = EXIT_OK;
        for (size_t i = 0; i < a.n_pos; i++) {
                struct sandbox_state *st = NULL;
                ak_err_clear(&err);
                if (backend && store_load(m->store, a.pos[i], &st, &err) == 0 &&
                    !streq(manager_backend_name(st), backend)) {
                        cli_error("sandbox '%s' uses backend '%s', not '%s'", a.pos[i],
                                  manager_backend_name(st), backend);
                        state_free(st);
                        r = EXIT_FAILURE_;
                        continue;
                }
                state_free(st);
                if (manager_start(m, a.pos[i], &err) < 0) {
                        if (err.code == EALREADY) {
                                printf("Sandbox '%s' is already running\n", a.pos[i]);
                                continue;
                        }
                        r = cli_fail(&err, EXIT_FAILURE_);
                        continue;
                }
                printf("Started sandbox '%s'\n", a.pos[i]);
        }
        manager_free(m);
        free(a.pos);
        return r;
}

static int many(int argc, char **argv, int (*op)(struct manager *, const char *, struct ak_err *),
                const char *done)
{
        struct cli_args a;
        struct ak_err err = {0};
        struct manager *m;
        int r = cli_parse(argc, argv, "", NULL, 64, false, NULL, NULL, &a);

        if (r) {
                free(a.pos);
                return CLI_PARSE_EXIT(r);
        }
        if (a.n_pos == 0) {
                free(a.pos);
                return cli_usage_error(cli_current, "a sandbox name is required");
        }
        m = cli_manager();
        if (!m) {
                free(a.pos);
                return EXIT_FAILURE_;
        }
        for (size_t i = 0; i < a.n_pos; i++) {
                ak_err_clear(&err);
                if (op(m, a.pos[i], &err) < 0)
                        r = cli_fail(&err, EXIT_FAILURE_);
                else
                        printf("%s sandbox '%s'\n", done, a.pos[i]);
        }
        manager_free(m);
        free(a.pos);
        return r;
}

int cmd_stop(int argc, char **argv)
{
        return many(argc, argv, manager_stop, "Stopped");
}

int cmd_remove(int argc, char **argv)
{
        return many(argc, argv, manager_remove, "Removed");
}
