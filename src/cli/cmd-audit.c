// SPDX-License-Identifier: Apache-2.0
/* `audit`: read the audit log; `audit verify`: check its hash chain. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "core/audit.h"
#include "core/validate.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/parse-util.h"
#include "shared/time-util.h"

#define AUDIT_DEFAULT_LAST 20
#define AUDIT_LAST_MAX 1000000

static int opt_sandbox(const struct cli_option *o, const char *arg)
{
        struct ak_err err = {0};

        if (validate_name(arg, &err) < 0)
                return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
        *(const char **)o->value = arg;
        return 0;
}

static int opt_last(const struct cli_option *o, const char *arg)
{
        uint64_t n;

        if (safe_atou64(arg, &n) < 0 || n > AUDIT_LAST_MAX)
                return cli_usage_error(cli_current, "--last must be a number from 0 (all) to %d",
                                       AUDIT_LAST_MAX);
        *(size_t *)o->value = (size_t)n;
        return 0;
}

/* The event's own fields, as k=v, after the common ones. */
static void print_details(json_t *e)
{
        static const char *const common[] = {"timestamp", "pid",  "user",    "type", "seq",
                                             "prev",      "hash", "sandbox", "name"};
        const char *k;
        json_t *v;
        bool first = true;

        json_object_foreach (e, k, v) {
                bool skip = false;
                for (size_t i = 0; i < ARRAY_SIZE(common); i++)
                        skip = skip || streq(k, common[i]);
                if (skip)
                        continue;
                cleanup_free char *text = json_is_string(v)
                                              ? strdup(json_string_value(v))
                                              : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
                printf("%s%s=%s", first ? "" : " ", k, text ? text : "?");
                first = false;
        }
}

static int cmd_audit_verify(int argc, char **argv)
{
        const struct cli_spec spec = {0};
        struct audit_verdict v;
        struct cli_args a;
        struct ak_err err = {0};
        cleanup_free char *path = NULL;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (audit_path_get(&path, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        r = audit_verify(path, &v, &err);
        if (r == -EBADMSG) {
                cli_error("audit log '%s' is not intact: line %zu: %s", path, v.bad_line, v.reason);
                return EXIT_ERROR;
        }
        if (r < 0)
                return cli_fail(&err, EXIT_ERROR);
        printf("audit log '%s' is intact: %zu entries, %zu chained\n", path, v.lines, v.chained);
        return EXIT_OK;
}

/* ---- stats ---- */

static void print_top(const char *label, json_t *list)
{
        size_t i;
        json_t *e;

        printf("%-16s", label);
        json_array_foreach (list, i, e)
                printf("%s%s (%" JSON_INTEGER_FORMAT ")", i ? ", " : "",
                       json_string_value(json_array_get(e, 0)),
                       json_integer_value(json_array_get(e, 1)));
        printf("%s\n", json_array_size(list) ? "" : "none");
}

static int cmd_stats(int argc, char **argv)
{
        bool json = false;
        const struct cli_option options[] = {
            OPT_JSON(&json),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options};
        cleanup_free char *path = NULL;
        cleanup_json json_t *st = NULL;
        struct ak_err err = {0};
        struct cli_args a;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (audit_path_get(&path, &err) < 0 || audit_stats(path, now_realtime_ns(), &st, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        if (json) {
                cli_print_json(st);
                return EXIT_OK;
        }
        printf("%-16s%" JSON_INTEGER_FORMAT " total (last 30d: %" JSON_INTEGER_FORMAT ")\n",
               "Executions:", json_integer_value(json_object_get(st, "total_executions")),
               json_integer_value(json_object_get(st, "executions_last_30d")));
        printf("%-16s%" JSON_INTEGER_FORMAT " created, %" JSON_INTEGER_FORMAT
               " removed, %" JSON_INTEGER_FORMAT " active\n",
               "Sandboxes:", json_integer_value(json_object_get(st, "sandboxes_created")),
               json_integer_value(json_object_get(st, "sandboxes_removed")),
               json_integer_value(json_object_get(st, "sandboxes_active")));
        print_top("Top images:", json_object_get(st, "top_images"));
        print_top("Top backends:", json_object_get(st, "top_backends"));
        if (json_is_string(json_object_get(st, "first_entry")))
                printf("%-16s%s  Last: %s\n",
                       "First entry:", json_string_value(json_object_get(st, "first_entry")),
                       json_string_value(json_object_get(st, "last_entry")));
        return EXIT_OK;
}

const struct verb verb_stats = {
    "stats",
    cmd_stats,
    "[--json]",
    "Usage figures from the audit log",
    "Executions, sandboxes created and removed, the images and backends "
    "used most.\n",
    VERB_TOP_ONLY,
    NULL};

/* `audit` without a sub-command: the log. */
static int cmd_audit_show(int argc, char **argv)
{
        const char *sandbox = NULL;
        size_t last = AUDIT_DEFAULT_LAST;
        bool json = false, show_path = false;
        const struct cli_option options[] = {
            OPT_CALLBACK('s', "sandbox", &sandbox, "NAME", "only events of this sandbox",
                         opt_sandbox),
            OPT_CALLBACK('l', "last", &last, "N", "the last N events (default 20; 0 = all)",
                         opt_last),
            OPT_JSON(&json),
            OPT_BOOL(0, "path", &show_path, "print where the log is and exit"),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options};
        struct cli_args a;
        struct ak_err err = {0};
        cleanup_free char *path = NULL;
        cleanup_json json_t *entries = NULL;
        size_t i;
        json_t *e;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (audit_path_get(&path, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        if (show_path) {
                printf("%s\n", path);
                return EXIT_OK;
        }
        if (audit_read(path, sandbox, last, &entries, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        if (json) {
                cli_print_json(entries);
                return EXIT_OK;
        }
        if (json_array_size(entries) == 0) {
                printf("No audit entries%s%s.\n", sandbox ? " for " : "", sandbox ? sandbox : "");
                return EXIT_OK;
        }
        printf("%-33s %-18s %-20s %s\n", "TIMESTAMP", "EVENT", "SANDBOX", "DETAILS");
        json_array_foreach (entries, i, e) {
                const char *ts = json_string_value(json_object_get(e, "timestamp"));
                const char *type = json_string_value(json_object_get(e, "type"));
                const char *sb = json_string_value(json_object_get(e, "sandbox"));
                if (!sb)
                        sb = json_string_value(json_object_get(e, "name"));
                printf("%-33s %-18s %-20s ", ts ? ts : "-", type ? type : "-", sb ? sb : "-");
                print_details(e);
                putchar('\n');
        }
        return EXIT_OK;
}

static const struct verb audit_verify_verb = {
    "verify", cmd_audit_verify,
    "",       "Check every entry's hash and its link to the one before",
    NULL,     0,
    NULL};
static const struct verb *const audit_verbs[] = {&audit_verify_verb, NULL};

static int cmd_audit(int argc, char **argv)
{
        return cli_dispatch(argc, argv, cmd_audit_show);
}

const struct verb verb_audit = {
    "audit",
    cmd_audit,
    "[-s NAME] [-l N] [--json] [--path] | verify",
    "Show the audit log, or check that it was not altered",
    "'audit verify' checks every entry's hash and its link to the one before, and that\n"
    "the log ends where it was last written: an edited, deleted, inserted or reordered line\n"
    "fails it. The log is at ~/.agentkernel/audit.jsonl (AGENTKERNEL_AUDIT_PATH overrides);\n"
    "AGENTKERNEL_AUDIT=0 turns logging off.\n",
    VERB_TOP_ONLY,
    audit_verbs};
