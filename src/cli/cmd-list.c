// SPDX-License-Identifier: Apache-2.0
/* `list` and `info`. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "core/validate.h"
#include "core/views.h"
#include "git-project.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"

static void warn_bad_file(void *ctx, const char *file, const char *msg)
{
        (void)ctx;
        cli_warn("skipping invalid state file '%s': %s", file, msg);
}

static int cmd_list(int argc, char **argv)
{
        cleanup_json json_t *filters = NULL;
        cleanup_state_list struct state_list l = {0};
        struct cli_args a;
        cleanup_manager struct manager *m = NULL;
        cleanup_free struct sandbox_state **sel = NULL;
        cleanup_free struct backend_status *status = NULL;
        size_t n = 0;
        bool json = false, project = false;
        char prefix[NAME_MAX + 2] = "";
        const struct cli_option options[] = {
            OPT_JSON(&json),
            OPT_CALLBACK('l', "label", &filters, "KEY=VALUE",
                         "only sandboxes with this label (repeatable: all must match)",
                         cli_opt_label),
            OPT_BOOL(0, "project", &project,
                     "only this git project's (named <project>-..., as 'create --branch' does)"),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options};
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (project) {
                struct ak_err err = {0};
                if (git_project(prefix, sizeof(prefix) - 1, NULL, 0, &err) < 0)
                        return cli_usage_error(cli_current, "--project: %s", ak_err_msg(&err));
                strcat(prefix, "-");
        }
        m = cli_manager();
        if (!m)
                return EXIT_ERROR;
        r = manager_list(m, warn_bad_file, NULL, &l);
        if (r < 0) {
                cli_error("cannot list sandboxes: %s", strerror(-r));
                return EXIT_ERROR;
        }
        /* the ones shown, then whether each runs (all at once: on threads when many) */
        sel = calloc(l.n ? l.n : 1, sizeof(*sel));
        status = calloc(l.n ? l.n : 1, sizeof(*status));
        if (!sel || !status) {
                cli_error("cannot list sandboxes: %s", strerror(ENOMEM));
                return EXIT_ERROR;
        }
        for (size_t i = 0; i < l.n; i++)
                if (state_labels_match(l.items[i], filters) &&
                    !strncmp(l.items[i]->name, prefix, strlen(prefix)))
                        sel[n++] = l.items[i];
        manager_status_many(m, sel, n, status);
        if (json) {
                cleanup_json json_t *arr = json_array();
                for (size_t i = 0; i < n; i++)
                        json_array_append_new(arr, manager_info_json_as(m, sel[i], &status[i]));
                cli_print_json(arr);
        } else {
                printf("%-30s %-10s %-10s %-15s %-20s %s\n", "NAME", "STATUS", "BACKEND", "IP",
                       "LABELS", "PORTS");
                for (size_t i = 0; i < n; i++) {
                        struct sandbox_state *st = sel[i];
                        char labels[256] = "-", ports[256] = "-";
                        size_t used = 0;
                        const char *k;
                        json_t *v;

                        json_object_foreach (st->labels, k, v) {
                                used += (size_t)snprintf(
                                    labels + used,
                                    used < sizeof(labels) ? sizeof(labels) - used : 0, "%s%s=%s",
                                    used ? "," : "", k, json_string_value(v));
                                if (used >= sizeof(labels))
                                        break;
                        }
                        used = 0;
                        for (size_t p = 0; p < st->n_ports && used < sizeof(ports); p++)
                                used += (size_t)snprintf(
                                    ports + used, sizeof(ports) - used, "%s%d:%u%s",
                                    used ? "," : "",
                                    st->ports[p].host_port >= 0 ? st->ports[p].host_port
                                                                : st->ports[p].container_port,
                                    st->ports[p].container_port, st->ports[p].udp ? "/udp" : "");
                        printf("%-30s %-10s %-10s %-15s %-20s %s\n", st->name,
                               manager_status_word_as(st, &status[i]), manager_backend_name(st),
                               "-", labels, ports);
                }
        }
        return EXIT_OK;
}

static int cmd_info(int argc, char **argv)
{
        cleanup_state struct sandbox_state *st = NULL;
        struct ak_err err = {0};
        struct cli_args a;
        cleanup_manager struct manager *m = NULL;
        bool json = false;
        const struct cli_option options[] = {
            OPT_JSON(&json),
            OPT_END(),
        };
        const struct cli_spec spec = CLI_SPEC_SANDBOX(options);
        int r = cli_parse_open(argc, argv, &spec, &a, &m);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (manager_get(m, a.pos[0], &st, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        {
                cleanup_json json_t *j = manager_info_json(m, st);
                if (json) {
                        cli_print_json(j);
                } else {
                        const char *k;
                        json_t *v;
                        json_object_foreach (j, k, v) {
                                if (json_is_string(v))
                                        printf("%-17s %s\n", k, json_string_value(v));
                                else if (json_is_integer(v))
                                        printf("%-17s %lld\n", k, (long long)json_integer_value(v));
                                else {
                                        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                                        printf("%-17s %s\n", k, s ? s : "");
                                        free(s);
                                }
                        }
                }
        }
        return EXIT_OK;
}

const struct verb verb_list = {
    "list", cmd_list, "[--json] [-l KEY=VALUE]...", "List sandboxes", NULL, 0, NULL};
const struct verb verb_ls = {
    "ls", cmd_list, "[--json] [-l KEY=VALUE]...", "Alias of list", NULL, VERB_HIDDEN, NULL};
const struct verb verb_info = {
    "info", cmd_info, "[--json] NAME", "Show a sandbox's record and status", NULL, 0, NULL};
