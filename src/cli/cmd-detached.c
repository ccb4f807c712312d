// SPDX-License-Identifier: Apache-2.0
/* `exec-list`, `exec-logs`, `exec-kill`: detached commands, kept by the sandbox's agent, so any
 * process sees the ones any other process started (upstream's Q4 fixed). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/time-util.h"

static int cmd_exec_list(int argc, char **argv)
{
        static const char *const status[] = {"running", "completed", "failed"};
        cleanup_detached_list struct detached_list l = {0};
        cleanup_manager struct manager *m = NULL;
        struct ak_err err = {0};
        struct cli_args a;
        bool json = false;
        const struct cli_option options[] = {
            OPT_JSON(&json),
            OPT_END(),
        };
        const struct cli_spec spec = CLI_SPEC_SANDBOX(options);
        int r = cli_parse_open(argc, argv, &spec, &a, &m);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (manager_detached_list(m, a.pos[0], &l, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        if (json) {
                cleanup_json json_t *arr = json_array();
                for (size_t i = 0; i < l.n; i++)
                        json_array_append_new(arr, detached_json(a.pos[0], &l.items[i]));
                cli_print_json(arr);
                return EXIT_OK;
        }
        printf("%-10s %-8s %-10s %-5s %-33s %s\n", "ID", "PID", "STATUS", "EXIT", "STARTED",
               "COMMAND");
        for (size_t i = 0; i < l.n; i++) {
                const struct agent_detached *d = &l.items[i];
                char started[RFC3339_MAX], code[16] = "-";
                cleanup_buf struct buf cmd = BUF_INIT;
                format_rfc3339(d->started_ns, started);
                if (d->has_code)
                        (void)snprintf(code, sizeof(code), "%lld", (long long)d->code);
                for (char **p = d->argv; p && *p; p++)
                        buf_printf(&cmd, "%s%s", cmd.len ? " " : "", *p);
                printf("%-10s %-8lld %-10s %-5s %-33s %s\n", d->id, (long long)d->pid,
                       status[d->status % 3], code, started, cmd.data ? cmd.data : "");
        }
        return EXIT_OK;
}

static int to_stdout(void *ctx, const void *data, size_t len)
{
        (void)ctx;
        return write_all(STDOUT_FILENO, data, len) < 0 ? -1 : 0;
}

static int cmd_exec_logs(int argc, char **argv)
{
        cleanup_manager struct manager *m = NULL;
        struct ak_err err = {0};
        struct cli_args a;
        bool stderr_stream = false;
        const struct cli_option options[] = {
            OPT_BOOL(0, "stderr", &stderr_stream,
                     "print its standard error instead of its standard output"),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options,
                                      .min_pos = 2,
                                      .max_pos = 2,
                                      .missing = "a sandbox name and a command id are required"};
        int r = cli_parse_open(argc, argv, &spec, &a, &m);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (manager_detached_logs(m, a.pos[0], a.pos[1], stderr_stream, to_stdout, NULL, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        return EXIT_OK;
}

static int cmd_exec_kill(int argc, char **argv)
{
        cleanup_manager struct manager *m = NULL;
        cleanup_agent_detached struct agent_detached d = {0};
        cleanup_json json_t *j = NULL;
        struct ak_err err = {0};
        struct cli_args a;
        const struct cli_spec spec = {
            .min_pos = 2, .max_pos = 2, .missing = "a sandbox name and a command id are required"};
        int r = cli_parse_open(argc, argv, &spec, &a, &m);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (manager_detached_kill(m, a.pos[0], a.pos[1], &d, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        j = detached_json(a.pos[0], &d);
        cli_print_json(j);
        return EXIT_OK;
}

const struct verb verb_exec_list = {
    "exec-list", cmd_exec_list, "[--json] NAME", "List a sandbox's detached commands", NULL,
    0,           NULL};
const struct verb verb_exec_logs = {
    "exec-logs", cmd_exec_logs, "[--stderr] NAME ID", "Print a detached command's output", NULL,
    0,           NULL};
const struct verb verb_exec_kill = {
    "exec-kill", cmd_exec_kill,
    "NAME ID",   "Stop a detached command (SIGTERM, then SIGKILL after 2 s)",
    NULL,        0,
    NULL};
