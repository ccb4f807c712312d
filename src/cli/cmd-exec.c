// SPDX-License-Identifier: Apache-2.0
/* `exec` and `attach`: commands in a running sandbox. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "core/validate.h"
#include "session.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/parse-util.h"
#include "shared/strv.h"

struct exec_flags {
        char **env;
        const char *workdir;
        const char *user;
        const char *record;
        bool detach, tty, interactive;
        uint64_t timeout_ms;
};

enum { OPT_SUDO = 1000, OPT_TIMEOUT, OPT_RECORD };

static int exec_opt(int c, const char *arg, void *ctx)
{
        struct exec_flags *f = ctx;
        struct ak_err err = {0};

        switch (c) {
        case 'e':
                return cli_add_env(&f->env, arg);
        case 'w':
                return cli_opt_workdir(arg, &f->workdir);
        case 'u':
                if (validate_user(arg, &err) < 0)
                        return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
                f->user = arg;
                return 0;
        case OPT_SUDO:
                f->user = "root";
                return 0;
        case 'd':
                f->detach = true;
                return 0;
        case 't':
                f->tty = true;
                return 0;
        case 'i':
                f->interactive = true;
                return 0;
        case OPT_TIMEOUT:
                return cli_opt_timeout(arg, &f->timeout_ms);
        case OPT_RECORD:
                f->record = arg;
                return 0;
        default:
                return EXIT_USAGE;
        }
}

static const struct option exec_longopts[] = {
    {"env", required_argument, NULL, 'e'},
    {"workdir", required_argument, NULL, 'w'},
    {"user", required_argument, NULL, 'u'},
    {"sudo", no_argument, NULL, OPT_SUDO},
    {"detach", no_argument, NULL, 'd'},
    {"tty", no_argument, NULL, 't'},
    {"interactive", no_argument, NULL, 'i'},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {NULL, 0, NULL, 0},
};

int cmd_exec(int argc, char **argv)
{
        struct exec_flags f = {0};
        struct cli_args a;
        struct ak_err err = {0};
        struct manager *m;
        int r;

        const struct cli_spec spec = {.shortopts = "e:w:u:dti",
                                      .longopts = exec_longopts,
                                      .on_opt = exec_opt,
                                      .ctx = &f,
                                      .min_pos = 1,
                                      .max_pos = 1,
                                      .missing = "a sandbox name is required",
                                      .want_cmd = true,
                                      .missing_cmd = "a command is required (after --)"};

        r = cli_parse(argc, argv, &spec, &a);
        if (r) {
                r = CLI_PARSE_EXIT(r);
                goto out_args;
        }
        if (f.detach && f.tty) {
                r = cli_usage_error(cli_current, "--detach and --tty cannot be combined");
                goto out_args;
        }
        m = cli_manager();
        if (!m) {
                r = EXIT_RUN_ERROR;
                goto out_args;
        }
        {
                struct agent_exec_opts x = {
                    .argv = a.cmd,
                    .env = f.env,
                    .cwd = f.workdir,
                    .user = f.user,
                    .tty = f.tty,
                    .timeout_ms = f.timeout_ms,
                };
                if (f.detach) {
                        struct agent_detached d;
                        r = manager_detach(m, a.pos[0], &x, &d, &err);
                        if (r >= 0) {
                                cleanup_json json_t *j = detached_json(a.pos[0], &d);
                                cli_print_json(j);
                                agent_detached_done(&d);
                                r = EXIT_OK;
                        } else {
                                r = cli_exec_fail(&err);
                        }
                } else {
                        struct cli_session s;
                        struct agent_exit ex = {0};
                        if (cli_session_begin(&s, &x, f.interactive, NULL) < 0) {
                                r = EXIT_RUN_ERROR;
                        } else {
                                r = manager_exec(m, a.pos[0], &x, &s.io, &ex, &err);
                                cli_session_end(&s);
                                r = r < 0 ? cli_exec_fail(&err) : cli_exit_code(&ex);
                                if (ex.timed_out)
                                        cli_error("command timed out and was killed");
                        }
                }
        }
        manager_free(m);
out_args:
        strv_free(f.env);
        return r;
}

int cmd_attach(int argc, char **argv)
{
        static const struct option longopts[] = {
            {"env", required_argument, NULL, 'e'},
            {"record", required_argument, NULL, OPT_RECORD},
            {"user", required_argument, NULL, 'u'},
            {NULL, 0, NULL, 0},
        };
        struct exec_flags f = {0};
        struct cli_args a;
        struct ak_err err = {0};
        struct manager *m;
        int r;

        const struct cli_spec spec = {.shortopts = "e:u:",
                                      .longopts = longopts,
                                      .on_opt = exec_opt,
                                      .ctx = &f,
                                      .min_pos = 1,
                                      .max_pos = 1,
                                      .missing = "a sandbox name is required",
                                      .want_cmd = true};

        r = cli_parse(argc, argv, &spec, &a);
        if (r) {
                r = CLI_PARSE_EXIT(r);
                goto out_args;
        }
        m = cli_manager();
        if (!m) {
                r = EXIT_RUN_ERROR;
                goto out_args;
        }
        {
                /* no command: the manager picks the sandbox's login shell */
                struct agent_exec_opts x = {
                    .argv = a.n_cmd ? a.cmd : NULL, .env = f.env, .user = f.user, .tty = true};
                struct cli_session s;
                struct agent_exit ex = {0};
                if (cli_session_begin(&s, &x, true, f.record) < 0) {
                        r = EXIT_RUN_ERROR;
                } else {
                        r = manager_attach(m, a.pos[0], &x, &s.io, &ex, &err);
                        cli_session_end(&s);
                        r = r < 0 ? cli_exec_fail(&err) : cli_exit_code(&ex);
                }
        }
        manager_free(m);
out_args:
        strv_free(f.env);
        return r;
}
