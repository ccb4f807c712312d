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

static int opt_flag(int c, const char *arg, void *ctx)
{
        (void)arg;
        if (c != 'j' && c != 's')
                return EXIT_USAGE;
        *(bool *)ctx = true;
        return 0;
}

int cmd_exec_list(int argc, char **argv)
{
        static const struct option longopts[] = {{"json", no_argument, NULL, 'j'},
                                                 {NULL, 0, NULL, 0}};
        static const char *const status[] = {"running", "completed", "failed"};
        struct agent_detached *list = NULL;
        struct ak_err err = {0};
        struct cli_args a;
        struct manager *m = NULL;
        bool json = false;
        size_t n = 0;
        const struct cli_spec spec = {.shortopts = "j",
                                      .longopts = longopts,
                                      .on_opt = opt_flag,
                                      .ctx = &json,
                                      .min_pos = 1,
                                      .max_pos = 1,
                                      .missing = "a sandbox name is required"};
        int fd, r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        fd = cli_connect(a.pos[0], EXIT_ERROR, &m);
        if (fd < 0) {
                r = -fd;
                goto out;
        }
        r = agent_detach_list(fd, &list, &n, &err);
        close(fd);
        if (r < 0) {
                r = cli_fail(&err, EXIT_ERROR);
                goto out;
        }
        if (json) {
                cleanup_json json_t *arr = json_array();
                for (size_t i = 0; i < n; i++)
                        json_array_append_new(arr, detached_json(a.pos[0], &list[i]));
                cli_print_json(arr);
        } else {
                printf("%-10s %-8s %-10s %-5s %-33s %s\n", "ID", "PID", "STATUS", "EXIT", "STARTED",
                       "COMMAND");
                for (size_t i = 0; i < n; i++) {
                        char started[RFC3339_MAX], code[16] = "-";
                        cleanup_buf struct buf cmd = BUF_INIT;
                        format_rfc3339(list[i].started_ns, started);
                        if (list[i].has_code)
                                (void)snprintf(code, sizeof(code), "%lld", (long long)list[i].code);
                        for (char **p = list[i].argv; p && *p; p++)
                                buf_printf(&cmd, "%s%s", cmd.len ? " " : "", *p);
                        printf("%-10s %-8lld %-10s %-5s %-33s %s\n", list[i].id,
                               (long long)list[i].pid, status[list[i].status % 3], code, started,
                               cmd.data ? cmd.data : "");
                }
        }
        r = EXIT_OK;
out:
        for (size_t i = 0; i < n; i++)
                agent_detached_done(&list[i]);
        free(list);
        manager_free(m);
        return r;
}

static int to_stdout(void *ctx, const void *data, size_t len)
{
        (void)ctx;
        return write_all(STDOUT_FILENO, data, len) < 0 ? -1 : 0;
}

int cmd_exec_logs(int argc, char **argv)
{
        static const struct option longopts[] = {{"stderr", no_argument, NULL, 's'},
                                                 {NULL, 0, NULL, 0}};
        struct ak_err err = {0};
        struct cli_args a;
        struct manager *m = NULL;
        bool stderr_stream = false;
        const struct cli_spec spec = {.longopts = longopts,
                                      .on_opt = opt_flag,
                                      .ctx = &stderr_stream,
                                      .min_pos = 2,
                                      .max_pos = 2,
                                      .missing = "a sandbox name and a command id are required"};
        int fd, r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        fd = cli_connect(a.pos[0], EXIT_ERROR, &m);
        if (fd < 0) {
                r = -fd;
        } else {
                r = agent_detach_logs(fd, a.pos[1], stderr_stream, to_stdout, NULL, &err) < 0
                        ? cli_fail(&err, EXIT_ERROR)
                        : EXIT_OK;
                close(fd);
        }
        manager_free(m);
        return r;
}

int cmd_exec_kill(int argc, char **argv)
{
        struct ak_err err = {0};
        struct agent_detached d;
        struct cli_args a;
        struct manager *m = NULL;
        const struct cli_spec spec = {
            .min_pos = 2, .max_pos = 2, .missing = "a sandbox name and a command id are required"};
        int fd, r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        fd = cli_connect(a.pos[0], EXIT_ERROR, &m);
        if (fd < 0) {
                r = -fd;
        } else {
                r = agent_detach_kill(fd, a.pos[1], 0, &d, &err);
                close(fd);
                if (r < 0) {
                        r = cli_fail(&err, EXIT_ERROR);
                } else {
                        cleanup_json json_t *j = detached_json(a.pos[0], &d);
                        cli_print_json(j);
                        agent_detached_done(&d);
                        r = EXIT_OK;
                }
        }
        manager_free(m);
        return r;
}
