// SPDX-License-Identifier: Apache-2.0
/* `doctor`: what works on this host, what does not, and how to fix it. */
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "core/backend.h"
#include "core/paths.h"
#include "runtime/cgroup.h"
#include "runtime/net.h"
#include "runtime/runtime.h"
#include "runtime/seccomp.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/time-util.h"

enum level { OK, INFO, WARN, ERR };
static const char *const level_name[] = {"ok", "info", "warning", "error"};

struct report {
        json_t *checks;
        bool json;
        int errors;
};

static void check(struct report *rep, enum level lvl, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void check(struct report *rep, enum level lvl, const char *name, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;

        va_start(ap, fmt);
        (void)vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        if (lvl == ERR)
                rep->errors++;
        json_array_append_new(rep->checks, json_pack("{s:s,s:s,s:s}", "name", name, "status",
                                                     level_name[lvl], "message", msg));
        if (!rep->json)
                printf("[%-7s] %-18s %s\n", level_name[lvl], name, msg);
}

/* Can this process create the namespaces a sandbox needs? Tries it in a child. */
static int try_namespaces(char *why, size_t len)
{
        pid_t pid = fork();
        int status;

        if (pid < 0)
                return -errno;
        if (pid == 0)
                _exit(unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET |
                              CLONE_NEWUTS | CLONE_NEWIPC) < 0
                          ? errno
                          : 0);
        if (waitpid(pid, &status, 0) < 0)
                return -errno;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        (void)snprintf(why, len, "%s", strerror(WIFEXITED(status) ? WEXITSTATUS(status) : EIO));
        return -EPERM;
}

static void check_sandbox(struct report *rep, struct manager *m)
{
        struct create_opts o = {.name = "doctor", .network = 0, .mount_cwd = 0};
        char *argv[] = {"/bin/true", NULL};
        struct agent_exec_opts x = {.argv = argv};
        struct agent_io io = {.stdin_fd = -1, .signal_fd = -1, .tty_fd = -1};
        struct agent_exit ex = {0};
        struct ak_err err = {0};
        int64_t t0 = now_monotonic_ns();

        if (manager_run_ephemeral(m, &o, &x, &io, &ex, &err) < 0)
                check(rep, ERR, "sandbox", "a test sandbox failed: %s", ak_err_msg(&err));
        else if (ex.code != 0)
                check(rep, ERR, "sandbox", "/bin/true in a test sandbox exited with %d", ex.code);
        else
                check(rep, OK, "sandbox", "a test sandbox ran /bin/true in %.1f ms",
                      (double)(now_monotonic_ns() - t0) / 1e6);
}

static int cmd_doctor(int argc, char **argv)
{
        struct report rep = {.checks = json_array()};
        struct cli_args a;
        struct utsname u;
        struct manager *m = NULL;
        char why[512], path[4096];
        const struct cli_option options[] = {
            OPT_JSON(&rep.json),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options};
        int r = cli_parse(argc, argv, &spec, &a);
        long ll;

        if (r) {
                json_decref(rep.checks);
                return CLI_PARSE_EXIT(r);
        }

        if (uname(&u) == 0)
                check(&rep, INFO, "kernel", "%s %s %s", u.sysname, u.release, u.machine);
        check(&rep, INFO, "user",
              geteuid() == 0 ? "running as root: sandboxes get a private uid "
                               "range, root inside is unprivileged outside"
                             : "running unprivileged (rootless): one uid is "
                               "mapped into each sandbox");

        if (try_namespaces(why, sizeof(why)) == 0)
                check(&rep, OK, "namespaces",
                      "user, mount, pid, network, uts and ipc namespaces "
                      "can be created");
        else
                check(&rep, ERR, "namespaces",
                      "cannot create namespaces (%s); enable unprivileged user namespaces "
                      "(sysctl user.max_user_namespaces, kernel.unprivileged_userns_clone=1, or "
                      "the AppArmor userns restriction on Ubuntu)",
                      why);

        switch (cgroup_detect(why, sizeof(why))) {
        case CGROUP_V2:
                check(&rep, OK, "cgroups", "cgroup v2: memory, pids and CPU limits are enforced");
                break;
        case CGROUP_V1:
                check(&rep, OK, "cgroups",
                      "cgroup v1 (or hybrid): memory, pids and CPU limits are enforced through "
                      "the v1 controllers");
                break;
        case CGROUP_NONE:
        default:
                check(&rep, WARN, "cgroups", "limits cannot be enforced: %s", why);
                break;
        }
        if (cgroup_detect(why, sizeof(why)) != CGROUP_NONE && !cgroup_joins_favored()) {
                bool hybrid = access(CGROUP_ROOT "/unified/cgroup.procs", F_OK) == 0;
                check(&rep, INFO, "cgroup joins",
                      "each start waits for an RCU grace period to join its cgroups (a few ms; "
                      "overlapped with the sandbox's setup); remounting a cgroup v2 hierarchy "
                      "with favordynmods removes the wait host-wide: 'agentkernel setup' does it "
                      "(mount -o remount,favordynmods %s)",
                      hybrid ? CGROUP_ROOT "/unified" : CGROUP_ROOT);
        }

        if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0)
                check(&rep, OK, "seccomp", "seccomp filters available (programs compiled by %s)",
                      seccomp_compiler);
        else
                check(&rep, ERR, "seccomp", "this kernel has no seccomp filters");

        ll = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
        if (ll > 0)
                check(&rep, INFO, "landlock", "Landlock ABI %ld available (not used yet)", ll);
        else
                check(&rep, INFO, "landlock", "Landlock not available");

        if (net_available(why, sizeof(why)))
                check(&rep, OK, "network full", "slirp4netns found: --network full works");
        else
                check(&rep, WARN, "network full", "%s", why);
        {
                struct ak_err err = {0};
                char helper[PATH_MAX];
                if (paths_helper("agentkernel-proxy", "AGENTKERNEL_PROXY", helper, sizeof(helper),
                                 &err) == 0)
                        check(&rep, OK, "network proxy", "the egress proxy: %s", helper);
                else
                        check(&rep, WARN, "network proxy", "--network proxy will fail: %s",
                              ak_err_msg(&err));
        }

        {
                struct ak_err err = {0};
                if (paths_agent_binary(path, sizeof(path), &err) == 0)
                        check(&rep, OK, "agent", "%s", path);
                else
                        check(&rep, ERR, "agent", "%s", ak_err_msg(&err));
        }

        {
                struct ak_err err = {0};
                char helper[PATH_MAX];
                if (geteuid() != 0)
                        check(&rep, INFO, "images",
                              "OCI images: rootless, the sandbox mounts overlayfs itself "
                              "(Linux 6.8+); files appear owned by root");
                else if (!runtime_image_roots_supported(why, sizeof(why)))
                        check(&rep, WARN, "images",
                              "OCI images are copied at every start (slower): %s", why);
                else if (paths_helper("agentkernel-image", "AGENTKERNEL_IMAGE_HELPER", helper,
                                      sizeof(helper), &err) < 0)
                        check(&rep, WARN, "images", "%s", ak_err_msg(&err));
                else
                        check(&rep, OK, "images",
                              "OCI images: overlayfs over idmapped layers works; puller %s",
                              helper);
        }

        for (int k = 0; k < 2; k++) {
                const struct backend_ops *b = backend_find(k ? "podman" : "docker");
                if (backend_probe(b, why, sizeof(why)) == 1)
                        check(&rep, OK, b->name, "%s", why);
                else
                        check(&rep, INFO, b->name, "%s", why);
        }

        {
                /* the microvm backend's probe says which accelerator a VM would get (it boots
                 * a probe guest under KVM once per host boot: /dev/kvm may open and still not
                 * run a guest) */
                const struct backend_ops *b = backend_find("microvm");
                if (b && backend_probe(b, why, sizeof(why)) == 1)
                        check(&rep, OK, "microvm", "%s", why);
                else if (b)
                        check(&rep, INFO, "microvm", "%s", why);
        }

        m = cli_manager();
        if (m) {
                struct state_list l = {0};
                int running = 0;
                check(&rep, OK, "data", "state in %s", manager_data_dir(m));
                if (manager_list(m, NULL, NULL, &l) == 0) {
                        for (size_t i = 0; i < l.n; i++)
                                running += manager_is_running(m, l.items[i]);
                        check(&rep, INFO, "sandboxes", "%zu recorded, %d running", l.n, running);
                        state_list_done(&l);
                }
                manager_sweep(m);
                {
                        cleanup_json json_t *pools = manager_pool_list(m);
                        json_int_t idle = 0;
                        json_t *p;
                        size_t i;
                        json_array_foreach (pools, i, p)
                                idle += json_integer_value(json_object_get(p, "idle"));
                        check(&rep, INFO, "pools",
                              "native warm pools (run --fast): %zu, %lld idle sandboxes; see "
                              "'pool list'",
                              json_array_size(pools), (long long)idle);
                }
                check(&rep, INFO, "backend", "default backend: %s", manager_default_backend());
                check_sandbox(&rep, m);
                manager_free(m);
        } else {
                check(&rep, ERR, "data", "the data directory is not usable");
        }

        if (rep.json) {
                cleanup_json json_t *o = json_pack("{s:o,s:b}", "checks", json_incref(rep.checks),
                                                   "healthy", rep.errors == 0);
                cli_print_json(o);
        }
        json_decref(rep.checks);
        return rep.errors ? EXIT_ERROR : EXIT_OK;
}

const struct verb verb_doctor = {
    "doctor",   cmd_doctor,
    "[--json]", "Check what works on this host and how to fix what does not",
    NULL,       VERB_TOP_ONLY,
    NULL};
