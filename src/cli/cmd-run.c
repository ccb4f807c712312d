// SPDX-License-Identifier: Apache-2.0
/* `run`: a command in a fresh sandbox, thrown away afterwards unless --keep. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "core/paths.h"
#include "image/detect.h"
#include "image/image-store.h"
#include "image/ref.h"
#include "sandbox-flags.h"
#include "session.h"
#include "shared/cleanup.h"
#include "shared/random-util.h"

#define KEEP_DEFAULT_TTL 3600 /* upstream: `run --keep` expires after an hour */

static int run_kept(struct manager *m, struct sandbox_flags *f, struct agent_exec_opts *x)
{
        struct ak_err err = {0};
        struct cli_session s;
        struct agent_exit ex = {0};
        char name[32], hex[9];
        int r;

        random_hex(hex, 4);
        (void)snprintf(name, sizeof(name), "run-%s", hex);
        f->o.name = name;
        if (!f->o.has_ttl) {
                f->o.has_ttl = true;
                f->o.ttl_seconds = KEEP_DEFAULT_TTL;
        }
        if (manager_create(m, &f->o, &err) < 0)
                return cli_fail(&err, EXIT_RUN_ERROR);
        if (manager_start(m, name, &err) < 0) {
                struct ak_err ignore = {0};
                (void)manager_remove(m, name, &ignore);
                return cli_fail(&err, EXIT_RUN_ERROR);
        }
        fprintf(stderr, "Sandbox '%s' is kept running%s; remove it with: agentkernel remove %s\n",
                name, f->o.ttl_seconds ? " until its TTL expires" : "", name);
        if (cli_session_begin(&s, x, f->interactive, NULL) < 0)
                return EXIT_RUN_ERROR;
        r = manager_exec(m, name, x, &s.io, &ex, &err);
        cli_session_end(&s);
        return r < 0 ? cli_exec_fail(&err) : cli_exit_code(&ex);
}

/* Upstream picks an image from the command or the project (upstream.md §9). Here a detected image
 * is used only when it is already in the local store: the default must work offline and never
 * pull behind the user's back. Otherwise the host image runs it, with a hint on a terminal. */
static void detect_image(struct sandbox_flags *f, char *const *cmd)
{
        cleanup_free char *data = NULL;
        cleanup_free char *refs = NULL;
        const char *cand;
        bool stored, tty;

        if (f->o.image || (f->o.backend && !streq(f->o.backend, "native")))
                return;
        data = paths_data_dir();
        if (!data || asprintf(&refs, "%s/images/refs.json", data) < 0)
                return;
        stored = access(refs, F_OK) == 0;
        tty = isatty(STDERR_FILENO);
        if (!stored && !tty)
                return; /* nothing could be used, nobody to tell */
        cand = image_detect_command(cmd[0]);
        if (!cand)
                cand = image_detect_project(AT_FDCWD);
        if (!cand)
                return;
        if (stored) {
                struct image_store s = {.dirfd = -1, .lock_fd = -1};
                struct image_record rec;
                struct image_ref ref;
                bool found = false;
                if (image_ref_parse(cand, &ref, NULL) == 0) {
                        if (image_store_open(data, IMAGE_STORE_SHARED, &s, NULL) == 0 &&
                            image_store_resolve(&s, &ref, &rec, NULL) == 0) {
                                found = true;
                                image_record_done(&rec);
                        }
                        image_store_done(&s);
                        image_ref_done(&ref);
                }
                if (found) {
                        f->o.image = cand;
                        return;
                }
        }
        if (tty)
                cli_note("this looks like a job for image '%s', which is not pulled; running in "
                         "the host image (pull it once with: agentkernel images pull %s)",
                         cand, cand);
}

static int cmd_run(int argc, char **argv)
{
        cleanup_sandbox_flags struct sandbox_flags f = {0};
        struct cli_args a;
        struct ak_err err = {0};
        cleanup_manager struct manager *m = NULL;
        int r;

        sandbox_flags_init(&f);
        const struct cli_option options[] = {
            OPT_BOOL('k', "keep", &f.keep,
                     "keep the sandbox (named run-XXXXXXXX, TTL 1h by default)"),
            OPT_CALLBACK('i', "image", &f.o.image, "IMAGE",
                         "image to run (native: 'host', the default)", sf_opt_image),
            OPT_CALLBACK('p', "profile", &f.o.profile, "NAME",
                         "permissive, moderate (default) or restrictive", sf_opt_profile),
            OPT_CALLBACK('e', "env", &f.env, "KEY=VALUE", "environment variable (repeatable)",
                         cli_opt_env),
            OPT_CALLBACK('w', "workdir", &f.workdir, "DIR", "working directory inside the sandbox",
                         cli_opt_workdir),
            OPT_CALLBACK(0, "ttl", &f.o, "DUR",
                         "with --keep: expiry (0 = never; e.g. 30m, 2h30m, 1d)", sf_opt_ttl),
            OPT_CALLBACK('B', "backend", &f.o.backend, "NAME",
                         "native (default), docker or podman; see doctor", cli_opt_backend),
            OPT_CALLBACK('P', "publish", &f, "SPEC",
                         "publish a port: HOST:CONTAINER[/udp] (repeatable)", sf_opt_publish),
            OPT_CALLBACK('l', "label", &f.labels, "KEY=VALUE", "label (with --keep)",
                         cli_opt_label),
            OPT_BOOL('t', "tty", &f.tty, "allocate a terminal"),
            OPT_BOOL(0, "interactive", &f.interactive, "forward stdin even when it is a terminal"),
            OPT_CALLBACK(0, "timeout", &f.timeout_ms, "DUR", "kill the command after DUR",
                         cli_opt_timeout),
            OPT_BOOL('F', "fast", &f.o.fast,
                     "take a pre-started sandbox from the warm pool (see pool)"),
            OPT_STRING('c', "config", &f.config_path, "FILE",
                       "agentkernel.toml to read (default: ./agentkernel.toml if any;\n"
                       "it must be approved: see 'trust')"),
            SANDBOX_OPTIONS(&f),
            SECRET_OPTIONS(&f),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options,
                                      .want_cmd = true,
                                      .missing_cmd = "a command is required, e.g. agentkernel run "
                                                     "-- echo hi"};

        r = cli_parse(argc, argv, &spec, &a);
        if (r)
                return CLI_PARSE_EXIT(r);
        r = sandbox_flags_config(&f);
        if (r)
                return r;
        detect_image(&f, a.cmd);
        m = cli_manager();
        if (!m)
                return EXIT_RUN_ERROR;
        {
                struct agent_exec_opts x = {
                    .argv = a.cmd, .cwd = f.workdir, .tty = f.tty, .timeout_ms = f.timeout_ms};
                struct cli_session s;
                struct agent_exit ex = {0};

                if (f.keep)
                        return run_kept(m, &f, &x);
                f.o.name = "run";
                f.o.detach_teardown = true; /* we exit right after */
                manager_sweep(m);
                if (cli_session_begin(&s, &x, f.interactive, NULL) < 0)
                        return EXIT_RUN_ERROR;
                r = manager_run_ephemeral(m, &f.o, &x, &s.io, &ex, &err);
                cli_session_end(&s);
                if (r < 0)
                        r = cli_exec_fail(&err);
                else {
                        r = cli_exit_code(&ex);
                        if (ex.timed_out)
                                cli_error("command timed out and was killed");
                }
        }
        return r;
}

const struct verb verb_run = {
    "run",
    cmd_run,
    "[OPTIONS] -- COMMAND [ARG...]",
    "Run a command in a new sandbox, removed afterwards unless --keep",
    "The command's exit status becomes agentkernel's; 125 means the sandbox failed; 2 an\n"
    "invalid or refused (unapproved) agentkernel.toml.\n",
    VERB_TOP_ONLY,
    NULL};
