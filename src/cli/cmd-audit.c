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

#define AUDIT_DEFAULT_LAST 20
#define AUDIT_LAST_MAX 1000000

struct audit_flags {
        const char *sandbox;
        size_t last;
        bool json, path;
};

enum { OPT_PATH = 1000 };

static int audit_opt(int c, const char *arg, void *ctx)
{
        struct audit_flags *f = ctx;
        struct ak_err err = {0};
        uint64_t n;

        switch (c) {
        case 's':
                if (validate_name(arg, &err) < 0)
                        return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
                f->sandbox = arg;
                return 0;
        case 'l':
                if (safe_atou64(arg, &n) < 0 || n > AUDIT_LAST_MAX)
                        return cli_usage_error(cli_current,
                                               "--last must be a number from 0 (all) to %d",
                                               AUDIT_LAST_MAX);
                f->last = (size_t)n;
                return 0;
        case 'j':
                f->json = true;
                return 0;
        case OPT_PATH:
                f->path = true;
                return 0;
        default:
                return EXIT_USAGE;
        }
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

static int audit_verify_cmd(const char *path)
{
        struct audit_verdict v;
        struct ak_err err = {0};
        int r = audit_verify(path, &v, &err);

        if (r == -EBADMSG) {
                cli_error("audit log '%s' is not intact: line %zu: %s", path, v.bad_line, v.reason);
                return EXIT_ERROR;
        }
        if (r < 0)
                return cli_fail(&err, EXIT_ERROR);
        printf("audit log '%s' is intact: %zu entries, %zu chained\n", path, v.lines, v.chained);
        return EXIT_OK;
}

int cmd_audit(int argc, char **argv)
{
        static const struct option longopts[] = {
            {"sandbox", required_argument, NULL, 's'},
            {"last", required_argument, NULL, 'l'},
            {"json", no_argument, NULL, 'j'},
            {"path", no_argument, NULL, OPT_PATH},
            {NULL, 0, NULL, 0},
        };
        struct audit_flags f = {.last = AUDIT_DEFAULT_LAST};
        const struct cli_spec spec = {.shortopts = "s:l:j",
                                      .longopts = longopts,
                                      .on_opt = audit_opt,
                                      .ctx = &f,
                                      .max_pos = 1};
        struct cli_args a;
        struct ak_err err = {0};
        cleanup_free char *path = NULL;
        cleanup_json json_t *entries = NULL;
        size_t i;
        json_t *e;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (a.n_pos && !streq(a.pos[0], "verify"))
                return cli_usage_error(cli_current, "unknown audit command '%s' (try: verify)",
                                       a.pos[0]);
        if (audit_path_get(&path, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        if (f.path) {
                printf("%s\n", path);
                return EXIT_OK;
        }
        if (a.n_pos)
                return audit_verify_cmd(path);
        if (audit_read(path, f.sandbox, f.last, &entries, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        if (f.json) {
                cli_print_json(entries);
                return EXIT_OK;
        }
        if (json_array_size(entries) == 0) {
                printf("No audit entries%s%s.\n", f.sandbox ? " for " : "",
                       f.sandbox ? f.sandbox : "");
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
