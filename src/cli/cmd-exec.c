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

static int opt_sudo(const struct cli_option *o, const char *arg)
{
        (void)arg;
        *(const char **)o->value = "root";
        return 0;
}

static int opt_user(const struct cli_option *o, const char *arg)
{
        struct ak_err err = {0};

        if (validate_user(arg, &err) < 0)
                return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
        *(const char **)o->value = arg;
        return 0;
}

static int cmd_exec(int argc, char **argv)
{
        struct exec_flags f = {0};
        struct cli_args a;
        struct ak_err err = {0};
        struct manager *m;
        int r;
        const struct cli_option options[] = {
            OPT_CALLBACK('e', "env", &f.env, "KEY=VALUE",
                         "set an environment variable (repeatable)", cli_opt_env),
            OPT_CALLBACK('w', "workdir", &f.workdir, "DIR",
                         "working directory inside the sandbox (absolute)", cli_opt_workdir),
            OPT_CALLBACK('u', "user", &f.user, "USER",
                         "run as USER (name, uid or uid:gid); default root", opt_user),
            OPT_CALLBACK(0, "sudo", &f.user, NULL, "run as root", opt_sudo),
            OPT_BOOL('t', "tty", &f.tty, "allocate a terminal (implies forwarding stdin)"),
            OPT_BOOL('i', "interactive", &f.interactive,
                     "forward stdin even when it is a terminal"),
            OPT_CALLBACK(0, "timeout", &f.timeout_ms, "DUR",
                         "kill the command after DUR (e.g. 30s, 5m)", cli_opt_timeout),
            OPT_BOOL('d', "detach", &f.detach,
                     "run in the background; prints the command's id and record"),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options,
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

static int cmd_attach(int argc, char **argv)
{
        struct exec_flags f = {0};
        struct cli_args a;
        struct ak_err err = {0};
        struct manager *m;
        int r;
        const struct cli_option options[] = {
            OPT_CALLBACK('e', "env", &f.env, "KEY=VALUE", "environment variable (repeatable)",
                         cli_opt_env),
            OPT_CALLBACK('u', "user", &f.user, "USER", "run as USER", opt_user),
            OPT_STRING(0, "record", &f.record, "FILE", "record the session as asciicast v2"),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options,
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

const struct verb verb_exec = {
    "exec",
    cmd_exec,
    "[OPTIONS] NAME -- COMMAND [ARG...]",
    "Run a command in a running sandbox",
    "The command's exit status becomes agentkernel's; 125 means the sandbox failed.\n",
    0,
    NULL};
const struct verb verb_attach = {
    "attach",
    cmd_attach,
    "[OPTIONS] NAME [-- COMMAND...]",
    "Open an interactive shell (or COMMAND) on a terminal in a running sandbox",
    NULL,
    0,
    NULL};
