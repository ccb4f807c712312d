// SPDX-License-Identifier: Apache-2.0
/* Sandboxes over time: extend-ttl, gc, reconcile, archive, recover, resize and update. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "core/validate.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/parse-util.h"
#include "shared/strv.h"

enum {
        OPT_BY = 1000,
        OPT_DRY_RUN,
        OPT_JSON,
        OPT_REASON,
        OPT_CPUS,
        OPT_MEMORY,
        OPT_DESCRIPTION,
        OPT_CLEAR_DESCRIPTION,
        OPT_CLEAR_LABELS,
        OPT_AUTO_STOP,
        OPT_AUTO_ARCHIVE,
        OPT_AUTO_DELETE,
        OPT_NO_LIFECYCLE,
};

static const struct cli_spec one_name = {
    .min_pos = 1, .max_pos = 1, .missing = "a sandbox name is required"};

static struct manager *open_manager(void)
{
        return cli_manager();
}

/* A verb on one sandbox: parses NAME and the verb's options, then runs op with a manager.
 * EXIT_OK with *ret_name set, or the exit code after printing why. */
struct one_op {
        const struct option *longopts;
        int (*on_opt)(int c, const char *arg, void *ctx);
        void *opt_ctx;
        int (*op)(struct manager *m, const char *name, void *ctx, struct ak_err *err);
        void *op_ctx;
        /* after parsing: a usage error (printed, non-zero) or 0 */
        int (*check)(void *opt_ctx);
};

static int run_on_one(int argc, char **argv, const struct one_op *o, const char **ret_name)
{
        struct cli_spec spec = one_name;
        struct cli_args a;
        struct ak_err err = {0};
        struct manager *m;
        int r;

        spec.longopts = o->longopts;
        spec.on_opt = o->on_opt;
        spec.ctx = o->opt_ctx;
        r = cli_parse(argc, argv, &spec, &a);
        if (r)
                return CLI_PARSE_EXIT(r);
        if (o->check && (r = o->check(o->opt_ctx)) != 0)
                return r;
        m = open_manager();
        if (!m)
                return EXIT_ERROR;
        r = o->op(m, a.pos[0], o->op_ctx, &err);
        manager_free(m);
        if (r < 0)
                return cli_fail(&err, EXIT_ERROR);
        *ret_name = a.pos[0];
        return EXIT_OK;
}

static int opt_duration(const char *arg, uint64_t *ret)
{
        struct ak_err err = {0};
        if (parse_ttl(arg, false, ret, &err) < 0)
                return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
        return 0;
}

/* ---- extend-ttl ---- */

static int extend_opt(int c, const char *arg, void *ctx)
{
        return c == OPT_BY ? opt_duration(arg, ctx) : EXIT_USAGE;
}

struct extend_ctx {
        uint64_t by;
        char expiry[RFC3339_MAX];
};

static int extend_op(struct manager *m, const char *name, void *ctx, struct ak_err *err)
{
        struct extend_ctx *e = ctx;
        return manager_extend_ttl(m, name, e->by, e->expiry, err);
}

int cmd_extend_ttl(int argc, char **argv)
{
        static const struct option longopts[] = {{"by", required_argument, NULL, OPT_BY},
                                                 {NULL, 0, NULL, 0}};
        struct extend_ctx e = {.by = 3600};
        const struct one_op o = {longopts, extend_opt, &e.by, extend_op, &e, NULL};
        const char *name;
        int r = run_on_one(argc, argv, &o, &name);

        if (r == EXIT_OK)
                printf("Sandbox '%s' now expires at %s\n", name, e.expiry);
        return r;
}

/* ---- gc ---- */

struct gc_flags {
        bool dry_run;
        json_t *labels;
};

static int gc_opt(int c, const char *arg, void *ctx)
{
        struct gc_flags *f = ctx;
        struct ak_err err = {0};
        char *k = NULL, *v = NULL;

        switch (c) {
        case OPT_DRY_RUN:
                f->dry_run = true;
                return 0;
        case 'l':
                if (parse_label(arg, '=', &k, &v, &err) < 0)
                        return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
                json_object_set_new(f->labels, k, json_string(v));
                free(k);
                free(v);
                return 0;
        default:
                return EXIT_USAGE;
        }
}

int cmd_gc(int argc, char **argv)
{
        static const struct option longopts[] = {{"dry-run", no_argument, NULL, OPT_DRY_RUN},
                                                 {"label", required_argument, NULL, 'l'},
                                                 {NULL, 0, NULL, 0}};
        struct gc_flags f = {false, json_object()};
        const struct cli_spec spec = {
            .shortopts = "l:", .longopts = longopts, .on_opt = gc_opt, .ctx = &f};
        cleanup_strv char **names = NULL;
        struct cli_args a;
        struct ak_err err = {0};
        struct manager *m = NULL;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r) {
                r = CLI_PARSE_EXIT(r);
                goto out;
        }
        m = open_manager();
        if (!m) {
                r = EXIT_ERROR;
                goto out;
        }
        r = manager_gc(m, json_object_size(f.labels) ? f.labels : NULL, f.dry_run, &names, &err);
        if (r < 0) {
                r = cli_fail(&err, EXIT_ERROR);
                goto out;
        }
        if (!names[0])
                printf("No expired sandboxes%s\n", json_object_size(f.labels) ? " match" : "");
        for (char **n = names; *n; n++)
                printf("%s %s\n", f.dry_run ? "Would remove" : "Removed", *n);
        r = EXIT_OK;
out:
        manager_free(m);
        json_decref(f.labels);
        return r;
}

/* ---- reconcile ---- */

static int flag_opt(int c, const char *arg, void *ctx)
{
        bool *f = ctx;
        (void)arg;
        if (c == OPT_DRY_RUN)
                f[0] = true;
        else if (c == OPT_JSON)
                f[1] = true;
        else
                return EXIT_USAGE;
        return 0;
}

int cmd_reconcile(int argc, char **argv)
{
        static const struct option longopts[] = {{"dry-run", no_argument, NULL, OPT_DRY_RUN},
                                                 {"json", no_argument, NULL, OPT_JSON},
                                                 {NULL, 0, NULL, 0}};
        bool flags[2] = {false, false};
        const struct cli_spec spec = {.longopts = longopts, .on_opt = flag_opt, .ctx = flags};
        struct reconcile_result res;
        struct cli_args a;
        struct ak_err err = {0};
        struct manager *m;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        m = open_manager();
        if (!m)
                return EXIT_ERROR;
        r = manager_reconcile(m, flags[0], &res, &err);
        manager_free(m);
        if (r < 0)
                return cli_fail(&err, EXIT_ERROR);
        if (flags[1]) {
                cleanup_json json_t *o = reconcile_json(&res);
                cli_print_json(o);
        } else if (res.n_actions == 0) {
                printf("Nothing to do\n");
        } else {
                for (size_t i = 0; i < res.n_actions; i++)
                        printf("%s%-8s %-30s %s\n", res.dry_run ? "(dry run) " : "",
                               reconcile_action_name(res.actions[i].action), res.actions[i].sandbox,
                               res.actions[i].reason);
        }
        reconcile_result_done(&res);
        return EXIT_OK;
}

/* ---- archive, recover ---- */

static int reason_opt(int c, const char *arg, void *ctx)
{
        if (c != OPT_REASON)
                return EXIT_USAGE;
        *(const char **)ctx = arg;
        return 0;
}

static int archive_op(struct manager *m, const char *name, void *ctx, struct ak_err *err)
{
        return manager_archive(m, name, *(const char **)ctx, err);
}

int cmd_archive(int argc, char **argv)
{
        static const struct option longopts[] = {{"reason", required_argument, NULL, OPT_REASON},
                                                 {NULL, 0, NULL, 0}};
        const char *reason = NULL, *name;
        const struct one_op o = {longopts, reason_opt, &reason, archive_op, &reason, NULL};
        int r = run_on_one(argc, argv, &o, &name);

        if (r == EXIT_OK)
                printf("Archived sandbox '%s' (recover it with: %s recover %s)\n", name, cli_prog,
                       name);
        return r;
}

static int recover_op(struct manager *m, const char *name, void *ctx, struct ak_err *err)
{
        (void)ctx;
        return manager_recover(m, name, err);
}

int cmd_recover(int argc, char **argv)
{
        const struct one_op o = {NULL, NULL, NULL, recover_op, NULL, NULL};
        const char *name;
        int r = run_on_one(argc, argv, &o, &name);

        if (r == EXIT_OK)
                printf("Recovered sandbox '%s'\n", name);
        return r;
}

/* ---- resize ---- */

struct resize_flags {
        uint32_t cpus;
        uint64_t memory;
        enum resize_how how;
};

static int resize_opt(int c, const char *arg, void *ctx)
{
        struct resize_flags *f = ctx;

        if (c == OPT_CPUS) {
                if (safe_atou32(arg, &f->cpus) < 0 || f->cpus < 1 || f->cpus > 64)
                        return cli_usage_error(cli_current, "invalid cpus '%s': 1 to 64", arg);
                return 0;
        }
        if (c == OPT_MEMORY) {
                if (safe_atou64(arg, &f->memory) < 0 || f->memory < 16 || f->memory > (1u << 20))
                        return cli_usage_error(
                            cli_current, "invalid memory '%s': a number of MB, 16 to 1048576", arg);
                return 0;
        }
        return EXIT_USAGE;
}

static int resize_op(struct manager *m, const char *name, void *ctx, struct ak_err *err)
{
        struct resize_flags *f = ctx;
        return manager_resize(m, name, f->cpus, f->memory, &f->how, err);
}

static int resize_check(void *ctx)
{
        const struct resize_flags *f = ctx;
        return f->cpus || f->memory ? 0
                                    : cli_usage_error(cli_current, "give --cpus and/or --memory");
}

int cmd_resize(int argc, char **argv)
{
        static const struct option longopts[] = {{"cpus", required_argument, NULL, OPT_CPUS},
                                                 {"vcpus", required_argument, NULL, OPT_CPUS},
                                                 {"memory", required_argument, NULL, OPT_MEMORY},
                                                 {NULL, 0, NULL, 0}};
        static const char *const how_text[] = {"recorded (applies at the next start)",
                                               "applied in place", "applied by a restart"};
        struct resize_flags f = {0, 0, RESIZE_RECORDED};
        const struct one_op o = {longopts, resize_opt, &f, resize_op, &f, resize_check};
        const char *name;
        int r = run_on_one(argc, argv, &o, &name);

        if (r == EXIT_OK)
                printf("Resized sandbox '%s': %s\n", name, how_text[f.how]);
        return r;
}

/* ---- update (upstream's PATCH /sandboxes/{name}) ---- */

struct update_flags {
        json_t *labels; /* NULL: unchanged */
        bool clear_labels;
        const char *description;
        bool set_description;
        struct lifecycle_policy lc;
        bool set_lifecycle, clear_lifecycle;
};

static int update_opt(int c, const char *arg, void *ctx)
{
        struct update_flags *f = ctx;
        struct ak_err err = {0};
        char *k = NULL, *v = NULL;
        uint64_t secs;

        switch (c) {
        case 'l':
                if (parse_label(arg, '=', &k, &v, &err) < 0)
                        return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
                if (!f->labels)
                        f->labels = json_object();
                json_object_set_new(f->labels, k, json_string(v));
                free(k);
                free(v);
                return 0;
        case OPT_CLEAR_LABELS:
                f->clear_labels = true;
                return 0;
        case OPT_DESCRIPTION:
                f->description = arg;
                f->set_description = true;
                return 0;
        case OPT_CLEAR_DESCRIPTION:
                f->description = NULL;
                f->set_description = true;
                return 0;
        case OPT_AUTO_STOP:
        case OPT_AUTO_ARCHIVE:
        case OPT_AUTO_DELETE:
                if (parse_ttl(arg, true, &secs, &err) < 0)
                        return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
                f->set_lifecycle = true;
                if (c == OPT_AUTO_STOP)
                        f->lc.has_stop = true, f->lc.stop_after = secs;
                else if (c == OPT_AUTO_ARCHIVE)
                        f->lc.has_archive = true, f->lc.archive_after = secs;
                else
                        f->lc.has_delete = true, f->lc.delete_after = secs;
                return 0;
        case OPT_NO_LIFECYCLE:
                f->clear_lifecycle = true;
                return 0;
        default:
                return EXIT_USAGE;
        }
}

int cmd_update(int argc, char **argv)
{
        static const struct option longopts[] = {
            {"label", required_argument, NULL, 'l'},
            {"clear-labels", no_argument, NULL, OPT_CLEAR_LABELS},
            {"description", required_argument, NULL, OPT_DESCRIPTION},
            {"clear-description", no_argument, NULL, OPT_CLEAR_DESCRIPTION},
            {"auto-stop", required_argument, NULL, OPT_AUTO_STOP},
            {"auto-archive", required_argument, NULL, OPT_AUTO_ARCHIVE},
            {"auto-delete", required_argument, NULL, OPT_AUTO_DELETE},
            {"no-lifecycle", no_argument, NULL, OPT_NO_LIFECYCLE},
            {NULL, 0, NULL, 0},
        };
        struct update_flags f = {0};
        struct cli_spec spec = one_name;
        struct cli_args a;
        struct ak_err err = {0};
        struct manager *m = NULL;
        int r;

        spec.shortopts = "l:";
        spec.longopts = longopts;
        spec.on_opt = update_opt;
        spec.ctx = &f;
        r = cli_parse(argc, argv, &spec, &a);
        if (r) {
                r = CLI_PARSE_EXIT(r);
                goto out;
        }
        if (f.set_lifecycle && f.clear_lifecycle) {
                r = cli_usage_error(cli_current, "--no-lifecycle cannot be combined with --auto-*");
                goto out;
        }
        if (!f.labels && !f.clear_labels && !f.set_description && !f.set_lifecycle &&
            !f.clear_lifecycle) {
                r = cli_usage_error(cli_current, "nothing to update (see --help)");
                goto out;
        }
        m = open_manager();
        if (!m) {
                r = EXIT_ERROR;
                goto out;
        }
        if (f.clear_labels && !f.labels)
                f.labels = json_object();
        r = 0;
        if (f.labels)
                r = manager_set_labels(m, a.pos[0], f.labels, &err);
        if (r >= 0 && f.set_description)
                r = manager_set_description(m, a.pos[0], f.description, &err);
        if (r >= 0 && (f.set_lifecycle || f.clear_lifecycle))
                r = manager_set_lifecycle(m, a.pos[0], f.clear_lifecycle ? NULL : &f.lc, &err);
        r = r < 0 ? cli_fail(&err, EXIT_ERROR) : EXIT_OK;
        if (r == EXIT_OK)
                printf("Updated sandbox '%s'\n", a.pos[0]);
out:
        manager_free(m);
        json_decref(f.labels);
        return r;
}
