// SPDX-License-Identifier: Apache-2.0
/* Sandboxes over time: extend-ttl, gc, reconcile, archive, recover, resize and update. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "core/runtime-dir.h"
#include "core/validate.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/parse-util.h"
#include "shared/strv.h"

/* A verb on one sandbox: parses NAME and the verb's options, then runs op with a manager.
 * *ret_name is set (to NAME) only when op succeeded: --help also exits with EXIT_OK, and must not
 * be reported as the verb's success. Returns the exit code (after printing why, on failure). */
struct one_op {
        const struct cli_option *options;
        int (*op)(struct manager *m, const char *name, void *ctx, struct ak_err *err);
        void *ctx;
        /* after parsing: a usage error (printed, non-zero) or 0 */
        int (*check)(void *ctx);
};

static int run_on_one(int argc, char **argv, const struct one_op *o, const char **ret_name)
{
        const struct cli_spec spec = CLI_SPEC_SANDBOX(o->options);
        cleanup_manager struct manager *m = NULL;
        struct cli_args a;
        struct ak_err err = {0};
        int r;

        *ret_name = NULL;
        r = cli_parse(argc, argv, &spec, &a);
        if (r)
                return CLI_PARSE_EXIT(r);
        if (o->check && (r = o->check(o->ctx)) != 0)
                return r;
        m = cli_manager();
        if (!m)
                return EXIT_ERROR;
        if (o->op(m, a.pos[0], o->ctx, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        *ret_name = a.pos[0];
        return EXIT_OK;
}

/* ---- extend-ttl ---- */

struct extend_ctx {
        uint64_t by;
        char expiry[RFC3339_MAX];
};

static int extend_op(struct manager *m, const char *name, void *ctx, struct ak_err *err)
{
        struct extend_ctx *e = ctx;
        return manager_extend_ttl(m, name, e->by, e->expiry, err);
}

static int cmd_extend_ttl(int argc, char **argv)
{
        struct extend_ctx e = {.by = 3600};
        const struct cli_option options[] = {
            OPT_CALLBACK(0, "by", &e.by, "DUR", "how much later (default 1h; e.g. 30m, 2h30m, 1d)",
                         cli_opt_duration),
            OPT_END(),
        };
        const struct one_op o = {options, extend_op, &e, NULL};
        const char *name;
        int r = run_on_one(argc, argv, &o, &name);

        if (name)
                printf("Sandbox '%s' now expires at %s\n", name, e.expiry);
        return r;
}

const struct verb verb_extend_ttl = {
    "extend-ttl",
    cmd_extend_ttl,
    "NAME [--by DUR]",
    "Move a sandbox's expiry later (from now if it has passed)",
    "The new expiry is DUR after the current one, or after now where the sandbox has\n"
    "already expired or had no TTL (it gets one, as upstream).\n",
    0,
    NULL};

/* ---- clean ---- */

static void pool_done(void *ctx, const char *backend, unsigned removed)
{
        (void)ctx;
        printf("Pool %s: %u removed\n", backend, removed);
}

static int cmd_clean(int argc, char **argv)
{
        cleanup_strv char **removed = NULL, **skipped = NULL;
        cleanup_manager struct manager *m = NULL;
        bool force = false, all = false;
        const struct cli_option options[] = {
            OPT_BOOL('f', "force", &force, "running sandboxes too"),
            OPT_BOOL(0, "all", &all,
                     "also images no sandbox uses (the native store) and the\n"
                     "warm pools (native, containers, machines)"),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options};
        struct ak_err err = {0};
        struct cli_args a;
        int r = cli_parse_open(argc, argv, &spec, &a, &m);

        if (r)
                return CLI_PARSE_EXIT(r);
        r = manager_clean(m, force, &removed, &skipped, &err);
        for (char **n = removed; n && *n; n++)
                printf("  Removed '%s'\n", *n);
        for (char **n = skipped; n && *n; n++)
                printf("  Skipping '%s' (running, use --force to remove)\n", *n);
        if (r < 0)
                return cli_fail(&err, EXIT_ERROR);
        printf("Sandboxes: %zu removed, %zu skipped\n", strv_len(removed), strv_len(skipped));
        if (all) {
                /* upstream: docker rmi -f agentkernel-* and a builder prune; here the images
                 * of this data directory's store that no remaining sandbox uses, and the
                 * pools' idle containers (agentkernel's own, by label) */
                unsigned images = 0;
                struct ak_err perr = {0};
                r = images_remove_unused(&images);
                if (r != EXIT_OK)
                        return r;
                printf("Images: %u removed\n", images);
                if (manager_pool_clear(m, NULL, pool_done, NULL, &perr) < 0)
                        cli_warn("pools: %s", ak_err_msg(&perr));
        }
        printf("Done.\n");
        return EXIT_OK;
}

const struct verb verb_clean = {"clean",
                                cmd_clean,
                                "[-f] [--all]",
                                "Remove every sandbox that is not running (-f: all of them;\n"
                                "--all: unused images and pools too)",
                                "Only sandboxes of this data directory: nothing else's containers "
                                "or images\n(upstream's removed every agentkernel-* container, "
                                "running or not).\n",
                                VERB_TOP_ONLY,
                                NULL};

/* ---- gc ---- */

static int cmd_gc(int argc, char **argv)
{
        cleanup_json json_t *labels = NULL;
        cleanup_strv char **names = NULL;
        cleanup_manager struct manager *m = NULL;
        bool dry_run = false;
        const struct cli_option options[] = {
            OPT_BOOL(0, "dry-run", &dry_run, "only list what would be removed"),
            OPT_CALLBACK('l', "label", &labels, "KEY=VALUE",
                         "only expired sandboxes that also have this label (repeatable)",
                         cli_opt_label),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options};
        struct cli_args a;
        struct ak_err err = {0};
        int r = cli_parse_open(argc, argv, &spec, &a, &m);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (manager_gc(m, labels, dry_run, &names, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        /* and what ephemeral runs left when killed (their starter, the worker finishing a run's
         * teardown after it, or a --fast run's sandbox whose keeper died too): cgroups, lock
         * files, sandboxes */
        if (!dry_run) {
                manager_sweep(m);
                (void)runtime_dir_sweep(); /* deleted data directories' snapshots and sockets */
        }
        if (!names[0])
                printf("No expired sandboxes%s\n", labels ? " match" : "");
        for (char **n = names; *n; n++)
                printf("%s %s\n", dry_run ? "Would remove" : "Removed", *n);
        return EXIT_OK;
}

const struct verb verb_gc = {
    "gc",
    cmd_gc,
    "[--dry-run] [-l KEY=VALUE]...",
    "Remove expired sandboxes",
    "Also removes what killed ephemeral runs left behind (their cgroups and lock files), and the\n"
    "runtime files (/etc snapshots, proxy sockets) of data directories that no longer exist.\n",
    0,
    NULL};

/* ---- reconcile ---- */

static int cmd_reconcile(int argc, char **argv)
{
        cleanup_reconcile_result struct reconcile_result res = {0};
        cleanup_manager struct manager *m = NULL;
        bool dry_run = false, json = false;
        const struct cli_option options[] = {
            OPT_BOOL(0, "dry-run", &dry_run, "only report the decisions"),
            OPT_JSON(&json),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options};
        struct cli_args a;
        struct ak_err err = {0};
        int r = cli_parse_open(argc, argv, &spec, &a, &m);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (manager_reconcile(m, dry_run, &res, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        if (json) {
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
        return EXIT_OK;
}

const struct verb verb_reconcile = {
    "reconcile",
    cmd_reconcile,
    "[--dry-run] [--json]",
    "Apply lifecycle policies now: stop, archive or delete idle sandboxes",
    "Policies are set with 'update --auto-stop/--auto-archive/--auto-delete'; 'serve'\n"
    "applies them continuously.\n",
    0,
    NULL};

/* ---- archive, recover ---- */

static int archive_op(struct manager *m, const char *name, void *ctx, struct ak_err *err)
{
        return manager_archive(m, name, *(const char **)ctx, err);
}

static int cmd_archive(int argc, char **argv)
{
        const char *reason = NULL, *name;
        const struct cli_option options[] = {
            OPT_STRING(0, "reason", &reason, "TEXT", "why (recorded)"),
            OPT_END(),
        };
        const struct one_op o = {options, archive_op, &reason, NULL};
        int r = run_on_one(argc, argv, &o, &name);

        if (name)
                printf("Archived sandbox '%s' (recover it with: %s recover %s)\n", name, cli_prog,
                       name);
        return r;
}

const struct verb verb_archive = {"archive",
                                  cmd_archive,
                                  "NAME [--reason TEXT]",
                                  "Stop a sandbox and archive it: it cannot start until recovered",
                                  NULL,
                                  0,
                                  NULL};

static int recover_op(struct manager *m, const char *name, void *ctx, struct ak_err *err)
{
        (void)ctx;
        return manager_recover(m, name, err);
}

static int cmd_recover(int argc, char **argv)
{
        const struct one_op o = {NULL, recover_op, NULL, NULL};
        const char *name;
        int r = run_on_one(argc, argv, &o, &name);

        if (name)
                printf("Recovered sandbox '%s'\n", name);
        return r;
}

const struct verb verb_recover = {
    "recover", cmd_recover, "NAME", "Clear a sandbox's archived state so it can start again",
    NULL,      0,           NULL};

/* ---- resize ---- */

struct resize_flags {
        uint32_t cpus;
        uint64_t memory;
        enum resize_how how;
};

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

static int cmd_resize(int argc, char **argv)
{
        static const char *const how_text[] = {"recorded (applies at the next start)",
                                               "applied in place", "applied by a restart"};
        struct resize_flags f = {0, 0, RESIZE_RECORDED};
        const struct cli_option options[] = {
            OPT_CALLBACK(0, "cpus", &f.cpus, "N", "CPUs, 1 to 64", cli_opt_cpus),
            OPT_CALLBACK(0, "vcpus", &f.cpus, "N", NULL, cli_opt_cpus), /* upstream's name */
            OPT_CALLBACK(0, "memory", &f.memory, "MB", "memory in MB, 16 to 1048576",
                         cli_opt_memory),
            OPT_END(),
        };
        const struct one_op o = {options, resize_op, &f, resize_check};
        const char *name;
        int r = run_on_one(argc, argv, &o, &name);

        if (name)
                printf("Resized sandbox '%s': %s\n", name, how_text[f.how]);
        return r;
}

const struct verb verb_resize = {
    "resize",
    cmd_resize,
    "NAME [--cpus N] [--memory MB]",
    "Change a sandbox's CPU and memory limits (in place when it runs on native)",
    NULL,
    0,
    NULL};

/* ---- update (upstream's PATCH /sandboxes/{name}) ---- */

struct update_flags {
        json_t *labels; /* NULL: unchanged */
        bool clear_labels;
        const char *description;
        bool set_description;
        struct lifecycle_policy lc;
        bool set_lifecycle, clear_lifecycle;
};

static int opt_description(const struct cli_option *o, const char *arg)
{
        struct update_flags *f = o->value;

        f->description = arg; /* NULL: --clear-description */
        f->set_description = true;
        return 0;
}

/* --auto-stop, --auto-archive, --auto-delete: defval says which */
static int opt_auto(const struct cli_option *o, const char *arg)
{
        struct update_flags *f = o->value;
        struct ak_err err = {0};
        uint64_t secs;

        if (parse_ttl(arg, true, &secs, &err) < 0)
                return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
        f->set_lifecycle = true;
        if (o->defval == 0)
                f->lc.has_stop = true, f->lc.stop_after = secs;
        else if (o->defval == 1)
                f->lc.has_archive = true, f->lc.archive_after = secs;
        else
                f->lc.has_delete = true, f->lc.delete_after = secs;
        return 0;
}

static int cmd_update(int argc, char **argv)
{
        struct update_flags f = {0};
        const struct cli_option options[] = {
            OPT_CALLBACK('l', "label", &f.labels, "KEY=VALUE",
                         "the new labels (repeatable; replaces all labels)", cli_opt_label),
            OPT_BOOL(0, "clear-labels", &f.clear_labels, "remove all labels"),
            OPT_CALLBACK(0, "description", &f, "TEXT", "what the sandbox is for", opt_description),
            OPT_CALLBACK(0, "clear-description", &f, NULL, "remove the description",
                         opt_description),
            OPT_CALLBACK_INT(0, "auto-stop", &f, "DUR", "stop after DUR without activity", opt_auto,
                             0),
            OPT_CALLBACK_INT(0, "auto-archive", &f, "DUR",
                             "archive (stopped, start refused) after DUR without\n"
                             "activity",
                             opt_auto, 1),
            OPT_CALLBACK_INT(0, "auto-delete", &f, "DUR", "remove DUR after being archived",
                             opt_auto, 2),
            OPT_BOOL(0, "no-lifecycle", &f.clear_lifecycle, "remove the lifecycle policy"),
            OPT_END(),
        };
        const struct cli_spec spec = CLI_SPEC_SANDBOX(options);
        cleanup_manager struct manager *m = NULL;
        struct cli_args a;
        struct ak_err err = {0};
        int r = cli_parse(argc, argv, &spec, &a);

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
        m = cli_manager();
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
        json_decref(f.labels);
        return r;
}

const struct verb verb_update = {
    "update",
    cmd_update,
    "NAME [OPTIONS]",
    "Change a sandbox's labels, description or lifecycle",
    "Activity is any start, exec, attach, detached command or file transfer.\n",
    0,
    NULL};
