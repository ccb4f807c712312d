// SPDX-License-Identifier: Apache-2.0
/*
 * `setup [-y]`: first-run checks and preparation for the chosen backend (upstream's setup,
 * reference/upstream-agents.md §3). It reports what `doctor` checks, then does what is missing,
 * each step only when needed (idempotent: a second run finds nothing to do): the data and user
 * directories (private, core/paths.h), the backend's image for container backends (pulled), and
 * for native as root the cgroup2 hierarchy remounted with favordynmods (--keep-cgroups: not).
 * -y does it without asking; at a terminal it asks for each step; with neither (a script, a
 * pipe) it only reports what it would do. Upstream's Firecracker kernel, rootfs and binary
 * downloads have no counterpart: the native backend needs none, and for the microvm backend the
 * probe's line says which guest kernel a VM gets (the minimal one, or Debian's with how to build
 * the minimal one: scripts/build-microvm-kernel.sh, docs/backends.md).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "core/backend.h"
#include "core/paths.h"
#include "runtime/cgroup.h"
#include "shared/cleanup.h"

enum mode { REPORT, ASK, YES };

static bool want(enum mode mode, const char *what)
{
        char line[16];

        if (mode == YES)
                return true;
        if (mode == REPORT) {
                printf("  would: %s (run 'setup -y' to do it)\n", what);
                return false;
        }
        fprintf(stderr, "%s? [Y/n] ", what);
        fflush(stderr);
        if (!fgets(line, sizeof(line), stdin))
                return false;
        return line[0] != 'n' && line[0] != 'N';
}

static bool exists(int (*where)(char **, struct ak_err *))
{
        cleanup_free char *p = NULL;
        struct stat st;

        return where(&p, NULL) == 0 && lstat(p, &st) == 0;
}

static int cmd_setup(int argc, char **argv)
{
        bool yes = false, quiet = false, keep_cgroups = false;
        const char *backend = NULL, *image = NULL;
        const struct cli_option options[] = {
            OPT_BOOL('y', "yes", &yes, "do what is missing without asking"),
            OPT_CALLBACK('B', "backend", &backend, "NAME",
                         "the backend to prepare (default: the default backend)", cli_opt_backend),
            OPT_STRING('i', "image", &image, "IMAGE",
                       "the image to prepare (docker, podman: default alpine:3.20)"),
            OPT_BOOL('q', "quiet", &quiet, "skip the doctor report"),
            OPT_BOOL(0, "keep-cgroups", &keep_cgroups,
                     "native: leave the cgroup hierarchy's mount options as they are"),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options};
        const struct backend_ops *b;
        struct cli_args a;
        struct ak_err err = {0};
        enum mode mode;
        char why[512];
        int r = cli_parse(argc, argv, &spec, &a), todo = 0, failed = 0, doctor_rc = EXIT_OK;

        if (r)
                return CLI_PARSE_EXIT(r);
        mode = yes ? YES : isatty(STDIN_FILENO) ? ASK : REPORT;
        b = backend ? backend_find(backend) : backend_default();
        if (!b) {
                cli_error("unknown backend '%s'", backend);
                return EXIT_USAGE;
        }
        printf("Preparing backend '%s':\n", b->name);
        why[0] = '\0';
        if (backend_probe(b, why, sizeof(why)) != 1) {
                printf("  backend '%s' is not usable here: %s\n", b->name, why);
                failed++;
        } else {
                printf("  backend '%s': %s\n", b->name, why[0] ? why : "usable");
        }
        if (!exists(paths_data_dir_path)) {
                todo++;
                if (want(mode, "create the data directory")) {
                        cleanup_free char *p = NULL;
                        int fd = paths_data_dir_open(&p, &err);
                        if (fd < 0) {
                                cli_error("%s", ak_err_msg(&err));
                                failed++;
                        } else {
                                close(fd);
                                printf("  created the data directory %s\n", p);
                        }
                }
        } else {
                cleanup_free char *p = NULL;
                int fd = paths_data_dir_open(&p, &err); /* checked: private, ours */
                if (fd < 0) {
                        cli_error("%s", ak_err_msg(&err));
                        failed++;
                } else {
                        close(fd);
                        printf("  data directory %s: ok\n", p);
                }
        }
        if (!exists(paths_user_dir_path)) {
                todo++;
                if (want(mode, "create the user directory")) {
                        int fd = paths_user_dir_open_for(true, &err);
                        if (fd < 0) {
                                cli_error("%s", ak_err_msg(&err));
                                failed++;
                        } else {
                                close(fd);
                                printf("  created the user directory\n");
                        }
                }
        }
        /* native starts join cgroups; without favordynmods the first join after a quiet while
         * waits for an RCU grace period (docs/performance.md): the largest fixed cost of a
         * start that bwrap, which joins none, does not pay */
        if (streq(b->name, "native") && geteuid() == 0 && !keep_cgroups &&
            cgroup_detect(why, sizeof(why)) != CGROUP_NONE && !cgroup_joins_favored()) {
                todo++;
                if (want(mode, "favor cgroup joins host-wide (remount the cgroup2 hierarchy with "
                               "favordynmods: starts stop waiting for an RCU grace period, forks "
                               "and exits cost slightly more; until reboot)")) {
                        if (cgroup_favor_joins(&err) < 0) {
                                cli_error("%s", ak_err_msg(&err));
                                failed++;
                        } else {
                                printf("  cgroup joins: favored (favordynmods)\n");
                        }
                }
        } else if (streq(b->name, "native") && cgroup_joins_favored()) {
                printf("  cgroup joins: favored (favordynmods)\n");
        }
        if (!image && (streq(b->name, "docker") || streq(b->name, "podman")))
                image = "alpine:3.20";
        if (image && !failed) {
                /* preparing an image that is there already is a check, not a download */
                if (want(mode, "prepare the image (a pull when it is missing)")) {
                        if (backend_prepare(b, image, &err) < 0) {
                                cli_error("image %s: %s", image, ak_err_msg(&err));
                                failed++;
                        } else {
                                printf("  image %s: ready\n", image);
                        }
                }
        }
        /* doctor last: it uses the data directory, which a report-only run must not create */
        if (!quiet && !failed && (mode != REPORT || !todo)) {
                char *dargv[] = {"doctor", NULL};
                printf("\nChecking this host (agentkernel doctor):\n");
                fflush(stdout);
                doctor_rc = verb_doctor.fn(1, dargv);
                printf("\n");
        } else if (!quiet && mode == REPORT && todo) {
                printf("(doctor's checks run once the directories exist)\n");
        }
        if (failed) {
                printf("Setup is not complete: fix what is said above and run setup again.\n");
                return EXIT_ERROR;
        }
        if (mode == REPORT && todo) {
                printf("Nothing was changed (no terminal to ask, and no -y).\n");
                return EXIT_OK;
        }
        printf(todo ? "agentkernel is set up (backend %s).\n"
                    : "agentkernel is already set up (backend %s).\n",
               b->name);
        if (doctor_rc != EXIT_OK)
                printf("doctor reported errors above: some sandboxes will not work until they "
                       "are fixed.\n");
        return doctor_rc == EXIT_OK ? EXIT_OK : EXIT_ERROR;
}

const struct verb verb_setup = {
    "setup",
    cmd_setup,
    "[-y] [-B BACKEND] [-i IMAGE] [--keep-cgroups]",
    "First-run checks and preparation (idempotent)",
    "Creates what is missing (data and user directories; for docker and podman,\n"
    "pulls the image; for native as root, remounts the cgroup2 hierarchy with\n"
    "favordynmods unless --keep-cgroups: see docs/performance.md), then reports what\n"
    "'doctor' checks. -y: without asking; at a terminal: asks for each step;\n"
    "otherwise it only reports what it would do.\n",
    VERB_TOP_ONLY,
    NULL};
