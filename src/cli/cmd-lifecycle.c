// SPDX-License-Identifier: Apache-2.0
/* `create`, `start`, `stop`, `remove` (`rm`), `pause` (`suspend`), `resume`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "core/source.h"
#include "git-project.h"
#include "sandbox-flags.h"

static int cmd_create(int argc, char **argv)
{
        cleanup_sandbox_flags struct sandbox_flags f = {0};
        struct cli_args a;
        struct ak_err err = {0};
        cleanup_manager struct manager *m = NULL;
        char branch_name[64];
        bool branch = false;
        int r;

        sandbox_flags_init(&f);
        const struct cli_option options[] = {
            OPT_CALLBACK('i', "image", &f.o.image, "IMAGE", "image (native: 'host', the default)",
                         sf_opt_image),
            OPT_BOOL(0, "branch", &branch,
                     "name it <git project>-<branch> of the current directory\n"
                     "(instead of NAME; 'list --project' finds them)"),
            OPT_CALLBACK(0, "profile", &f.o.profile, "NAME",
                         "permissive, moderate (default) or restrictive", sf_opt_profile),
            OPT_CALLBACK('p', "publish", &f, "SPEC",
                         "publish a port: HOST:CONTAINER[/udp] (repeatable)", sf_opt_publish),
            OPT_CALLBACK('e', "env", &f.env, "KEY=VALUE",
                         "environment variable for every command (repeatable)", cli_opt_env),
            OPT_CALLBACK(0, "ttl", &f.o, "DUR", "expire after DUR (e.g. 30m, 2h30m, 1d); 0 = never",
                         sf_opt_ttl),
            OPT_CALLBACK('B', "backend", &f.o.backend, "NAME", "native (default), docker or podman",
                         cli_opt_backend),
            OPT_CALLBACK('l', "label", &f.labels, "KEY=VALUE", "label (repeatable)", cli_opt_label),
            OPT_STRING('a', "agent", &f.o.agent, "NAME",
                       "the coding agent this sandbox is for: claude, codex, gemini,\n"
                       "opencode...; with --network proxy its provider key (vault, else\n"
                       "your environment) is injected by the proxy, a placeholder inside"),
            OPT_CALLBACK('d', "dir", &f.o, "DIR", "mount DIR read-write at /workspace", sf_opt_dir),
            OPT_STRING(0, "description", &f.o.description, "TEXT", "what the sandbox is for"),
            OPT_BOOL(0, "no-start", &f.no_start, "record the sandbox without starting it"),
            OPT_STRING(0, "source", &f.o.source_url, "URL",
                       "clone a git repository into /workspace (https://, http://,\n"
                       "ssh://, git://, user@host:path; git runs inside, so the\n"
                       "network policy must allow the host: --allow-host HOST)"),
            OPT_STRING(0, "git-ref", &f.o.source_ref, "REF",
                       "check out REF (branch, tag, commit) after --source"),
            OPT_STRING('c', "config", &f.config_path, "FILE",
                       "agentkernel.toml to read (default: ./agentkernel.toml if any;\n"
                       "it must be approved: see 'trust'); flags win over the file.\n"
                       "NAME defaults to its [sandbox] name"),
            SANDBOX_OPTIONS(&f),
            SECRET_OPTIONS(&f),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options, .max_pos = 1};

        r = cli_parse(argc, argv, &spec, &a);
        if (r)
                return CLI_PARSE_EXIT(r);
        r = sandbox_flags_config(&f);
        if (r)
                return r;
        if (branch && a.n_pos)
                return cli_usage_error(cli_current, "--branch names the sandbox: give no NAME");
        if (branch && git_sandbox_name(branch_name, sizeof(branch_name), &err) < 0)
                return cli_usage_error(cli_current, "--branch: %s", ak_err_msg(&err));
        f.o.name = branch ? branch_name : a.n_pos ? a.pos[0] : f.cfg ? f.cfg->name : NULL;
        if (!f.o.name)
                return cli_usage_error(cli_current, "a sandbox name is required (or [sandbox] name "
                                                    "in agentkernel.toml)");
        if (f.o.source_url && f.no_start)
                return cli_usage_error(cli_current, "--source clones into the started sandbox: "
                                                    "it cannot be combined with --no-start");
        if (source_check(f.o.source_url, f.o.source_ref, &err) < 0)
                return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
        m = cli_manager();
        if (!m)
                return EXIT_ERROR;
        if (manager_create(m, &f.o, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        if (f.no_start) {
                printf("Created sandbox '%s'\nStart it with: %s start %s\n", f.o.name, cli_prog,
                       f.o.name);
                return EXIT_OK;
        }
        if (manager_start(m, f.o.name, &err) < 0) {
                /* The record stays, as upstream: the user can fix the cause and start again. */
                cli_error("%s", ak_err_msg(&err));
                fprintf(stderr,
                        "The sandbox was created but not started; after fixing the "
                        "cause run: %s start %s\n",
                        cli_prog, f.o.name);
                return EXIT_ERROR;
        }
        if (f.o.source_url) {
                fprintf(stderr, "Cloning %s into /workspace...\n", f.o.source_url);
                if (manager_clone_source(m, f.o.name, &err) < 0) {
                        struct ak_err rm = {0};
                        /* a failed clone fails the create: nothing of it stays */
                        cli_error("%s", ak_err_msg(&err));
                        if (manager_remove(m, f.o.name, &rm) < 0)
                                cli_error("removing sandbox '%s': %s", f.o.name, ak_err_msg(&rm));
                        else
                                fprintf(stderr, "Removed sandbox '%s'\n", f.o.name);
                        return EXIT_ERROR;
                }
        }
        printf("Created and started sandbox '%s'\n", f.o.name);
        if (f.o.template_help_text && f.o.template_name)
                printf("\nTemplate '%s':\n%s", f.o.template_name, f.o.template_help_text);
        return EXIT_OK;
}

const struct verb verb_create = {
    "create", cmd_create, "[OPTIONS] [NAME]", "Create a sandbox (and start it)", NULL, 0, NULL};

/* start, stop and remove take one or more names and act on each in turn. */
struct per_name {
        int (*op)(struct manager *m, const char *name, void *ctx, struct ak_err *err);
        void *ctx;
        const char *done; /* "Stopped", printed as "<done> sandbox 'x'" */
};

static int for_each_name(int argc, char **argv, const struct cli_option *options,
                         const struct per_name *p)
{
        const struct cli_spec spec = {.options = options,
                                      .min_pos = 1,
                                      .max_pos = CLI_MAX_POS,
                                      .missing = "a sandbox name is required"};
        cleanup_manager struct manager *m = NULL;
        struct cli_args a;
        int r = cli_parse_open(argc, argv, &spec, &a, &m);

        if (r)
                return CLI_PARSE_EXIT(r);
        for (size_t i = 0; i < a.n_pos; i++) {
                struct ak_err err = {0};
                int k = p->op(m, a.pos[i], p->ctx, &err);
                if (k < 0)
                        r = cli_fail(&err, EXIT_ERROR);
                else if (k == 0)
                        printf("%s sandbox '%s'\n", p->done, a.pos[i]);
        }
        return r;
}

/* Returns 1 (nothing to print) for a sandbox already running. */
static int start_one(struct manager *m, const char *name, void *ctx, struct ak_err *err)
{
        const char *backend = *(const char **)ctx;
        cleanup_state struct sandbox_state *st = NULL;
        int r;

        if (backend && manager_get(m, name, &st, NULL) == 0 &&
            !streq(manager_backend_name(st), backend))
                return ak_err_set(err, EINVAL, "sandbox '%s' uses backend '%s', not '%s'", name,
                                  manager_backend_name(st), backend);
        r = manager_start(m, name, err);
        if (r == -EALREADY) {
                printf("Sandbox '%s' is already running\n", name);
                return 1;
        }
        return r;
}

static int stop_one(struct manager *m, const char *name, void *ctx, struct ak_err *err)
{
        (void)ctx;
        return manager_stop(m, name, err);
}

static int remove_one(struct manager *m, const char *name, void *ctx, struct ak_err *err)
{
        (void)ctx;
        return manager_remove(m, name, err);
}

/* Returns 1 (nothing more to print) for one already in that state. */
static int pause_one(struct manager *m, const char *name, void *ctx, struct ak_err *err)
{
        bool pause = ctx != NULL;
        int r = manager_pause(m, name, pause, err);

        if (r == -EALREADY) {
                printf("Sandbox '%s' is %s\n", name, pause ? "already paused" : "not paused");
                return 1;
        }
        return r;
}

static int cmd_pause(int argc, char **argv)
{
        const struct per_name p = {pause_one, (void *)1, "Paused"};

        return for_each_name(argc, argv, NULL, &p);
}

static int cmd_resume(int argc, char **argv)
{
        const struct per_name p = {pause_one, NULL, "Resumed"};

        return for_each_name(argc, argv, NULL, &p);
}

static int cmd_start(int argc, char **argv)
{
        const char *backend = NULL;
        const struct cli_option options[] = {
            OPT_CALLBACK('B', "backend", &backend, "NAME", "refuse a sandbox of another backend",
                         cli_opt_backend),
            OPT_END(),
        };
        const struct per_name p = {start_one, &backend, "Started"};

        return for_each_name(argc, argv, options, &p);
}

static int cmd_stop(int argc, char **argv)
{
        const struct per_name p = {stop_one, NULL, "Stopped"};

        return for_each_name(argc, argv, NULL, &p);
}

static int cmd_remove(int argc, char **argv)
{
        const struct per_name p = {remove_one, NULL, "Removed"};

        return for_each_name(argc, argv, NULL, &p);
}

const struct verb verb_start = {"start",
                                cmd_start,
                                "[-B NAME] NAME...",
                                "Start sandboxes",
                                "Starting a running sandbox is not an error.\n",
                                0,
                                NULL};
const struct verb verb_stop = {
    "stop", cmd_stop, "NAME...", "Stop sandboxes (every process in them ends)", NULL, 0, NULL};
const struct verb verb_remove = {
    "remove", cmd_remove, "NAME...", "Stop and delete sandboxes; nothing of them remains",
    NULL,     0,          NULL};
const struct verb verb_rm = {"rm", cmd_remove,  "NAME...", "Alias of remove",
                             NULL, VERB_HIDDEN, NULL};

#define PAUSE_HELP                                                                                 \
        "Every process of the sandbox, its agent's included, stops where it is, keeping its\n"     \
        "memory, files and network; 'resume' continues them. native: the cgroup freezer;\n"        \
        "docker/podman: the engine's pause; microvm: the hypervisor stops the VM's vCPUs.\n"       \
        "While paused, exec, cp, attach and background commands fail; 'stop',\n"                   \
        "'remove' and 'gc' resume it first. Pausing a paused sandbox is not an error.\n"
const struct verb verb_pause = {
    "pause",    cmd_pause, "NAME...", "Pause sandboxes (processes stop, state is kept)",
    PAUSE_HELP, 0,         NULL};
const struct verb verb_suspend = {"suspend", cmd_pause,   "NAME...", "Alias of pause",
                                  NULL,      VERB_HIDDEN, NULL};
const struct verb verb_resume = {"resume",
                                 cmd_resume,
                                 "NAME...",
                                 "Resume paused sandboxes",
                                 "Resuming a sandbox that is not paused is not an error.\n",
                                 0,
                                 NULL};
