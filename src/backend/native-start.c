// SPDX-License-Identifier: Apache-2.0
/*
 * A native sandbox's start (native_start, the backend's start op): a list of named steps that
 * each acquire part of the sandbox, and one undo that releases exactly what the steps so far
 * acquired, so that a start failing at any step leaves nothing behind — no process, mount,
 * cgroup, lock file, run directory or image copy. The steps prepare everything the runtime's
 * child needs (runtime/runtime.h: it must not allocate); they never run commands.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/native-image.h"
#include "backend/native.h"
#include "backend/port-relay.h"
#include "core/egress.h"
#include "core/paths.h"
#include "core/private-dir.h"
#include "core/runtime-dir.h"
#include "runtime/cgroup.h"
#include "runtime/net.h"
#include "runtime/rootfs.h"
#include "runtime/runtime.h"
#include "runtime/seccomp.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/macro.h"
#include "shared/random-util.h"
#include "shared/strv.h"
#include "shared/test-hook.h"

#define STATE_TMPFS_OPTS "mode=0700,size=256m,nr_inodes=65536"

/* Networking starts as soon as the sandbox's namespaces exist (runtime_spec.on_namespaces). */
struct net_launch_ctx {
        const struct backend_config *cfg;
        int exit_fd; /* read end of the pipe the agent holds */
        char api[PATH_MAX];
        struct net_handle net;
        struct ak_err err;
        int r;
};

static void launch_network(pid_t pid, void *ctx)
{
        struct net_launch_ctx *n = ctx;

        n->r = net_launch(pid, n->exit_fd, n->cfg->n_ports ? n->api : NULL, &n->net, &n->err);
        n->exit_fd = -1; /* consumed */
}

/* The `host` image's /etc comes from a shared snapshot (runtime/etc-snapshot.h) unless
 * AGENTKERNEL_ETC_SNAPSHOTS=0, which fills it at every start as before. */
static bool etc_snapshots_enabled(void)
{
        const char *v = getenv("AGENTKERNEL_ETC_SNAPSHOTS");
        return !(v && (streq(v, "0") || streq(v, "false")));
}

/*
 * Where /etc snapshots are kept (etc-snapshot.h), private like the rest: etc_snapshot() checks
 * each snapshot's owner and mode too. A sandbox reads the snapshot's path in its mount table
 * (the kernel prints a bind's root as its path within its filesystem), so the cache is not in
 * the data directory, whose path names a home, but in the runtime directory (/run as root,
 * $XDG_RUNTIME_DIR rootless, both private places of their owner): <runtime>/agentkernel/<id>/etc
 * (core/runtime-dir.h: each data directory has its own, removed once the data directory is
 * gone). Without a usable runtime directory, <data>/cache/etc. 0, or -1 when there is none.
 */
static int snapshot_cache(char *out, size_t len)
{
        return runtime_dir_sub("etc", out, len, NULL) < 0 ? -1 : 0;
}

/*
 * ---- start: named steps, one undo ----
 *
 * A start is a list of steps (start_steps, below), each acquiring part of the sandbox into one
 * struct start. Whichever step fails, start_undo() releases exactly what the steps before it
 * acquired — no process, cgroup, lock file, run directory or image copy is left — and
 * start_done() frees the memory and fds that every start holds until it returns. From the last
 * step (commit) on, the sandbox outlives us or, ephemeral, belongs to the session.
 *
 * Each step that acquires something ends at a test point named after what it did (all but the
 * first, which only refuses, and the commit, after which nothing can fail; shared/test-hook.h):
 * AGENTKERNEL_TEST_HOOK=<point> stops the starter there for a crash test, fail:<point> fails the
 * start there.
 */
struct start {
        const struct backend_config *cfg;
        const struct profile *p;
        struct backend_session *ret_session;
        uint32_t id_base;
        bool oci;
        char agent[PATH_MAX]; /* the agent binary's path */
        char cgid[64];        /* the sandbox's cgroup name: its uuid ("run-<uuid>" ephemeral) */
        const char *workdir;  /* where the agent starts commands */
        /* plan_root */
        struct rootfs_opts ro;
        struct mount_plan plan;
        struct native_image img;
        int ws_fd; /* the workspace, held until the sandbox has bound it */
        char ws_path[32];
        int etc_lock;      /* the /etc snapshot's shared lock: the agent inherits it */
        bool run_dir_made; /* kept: the run directory is this start's to remove on failure */
        char snapshots[PATH_MAX];
        char merged[PATH_MAX]; /* the copy fallback's root (the image, read-only to it), or "" */
        /* prepare_agent */
        struct sock_fprog filter;
        bool host_files;
        int exe_fd;
        int chan, peer;             /* the agent's end (its fd 3) and, ephemeral, ours */
        int hold[2];                /* slirp4netns' exit pipe: the agent holds [1] */
        int held[RUNTIME_HOLD_MAX]; /* what the agent keeps open: fds 6, 7 there */
        size_t n_held;
        /* a proxy-mode run's published ports: the agent's second socket (the run's own is a
         * socket pair), for the port relay; held[ports_held] */
        int ports_listen, ports_held;
        char ports_sock[PATH_MAX];
        char **envp;
        const char *argv[24];
        char caps[32], dormant_ms[16];
        /* take_lock: an ephemeral run's lock file, held while its cgroup is ours */
        int lock_fd;
        char lock_path[PATH_MAX];
        /* make_cgroups, copy_root */
        struct cgroup_set cg;
        bool cgroups_made, copy_started;
        char procs_buf[4][CGROUP_PATH_MAX];
        const char *procs[5];
        /* spawn, wait_network */
        struct runtime_child child;
        struct net_launch_ctx net;
        /* register_egress */
        bool registered;
        /* the whole start: makes make_cgroups' join fast (runtime/cgroup.h) */
        struct cgroup_warm warm;
};

static struct start start_new(const struct backend_config *cfg, struct backend_session *ret_session)
{
        return (struct start){
            .cfg = cfg,
            .p = cfg->profile,
            .ret_session = ret_session,
            .oci = !streq(cfg->image, "host"),
            .workdir = cfg->workspace || cfg->scratch_workspace ? "/workspace" : "/",
            .ro = {.workspace = cfg->workspace,
                   .scratch_workspace = cfg->scratch_workspace,
                   .home = cfg->home,
                   .hide = cfg->own_dirs,
                   .n_hide = cfg->n_own_dirs,
                   .binds = cfg->binds,
                   .n_binds = cfg->n_binds,
                   .idmap = geteuid() == 0},
            .img = NATIVE_IMAGE_INIT,
            .ws_fd = -1,
            .etc_lock = -1,
            .exe_fd = -1,
            .chan = -1,
            .peer = -1,
            .hold = {-1, -1},
            .held = {-1, -1},
            .ports_listen = -1,
            .ports_held = -1,
            .lock_fd = -1,
            .cg = {.mode = CGROUP_NONE},
            .child = {.pid = -1, .pidfd = -1, .sync_fd = -1, .capture_fds = {-1, -1, -1}},
            .net = {.cfg = cfg, .exit_fd = -1, .net = {0, -1}, .r = -1},
        };
}

static void drop_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

/* What every start holds until it returns, success or not: memory, and fds that the agent has
 * inherited by then (or that a failed start no longer needs). */
static void start_done(struct start *st)
{
        int *fds[] = {&st->ws_fd,
                      &st->etc_lock,
                      &st->exe_fd,
                      &st->chan,
                      &st->peer,
                      &st->hold[0],
                      &st->hold[1],
                      &st->ports_listen,
                      &st->net.exit_fd,
                      &st->child.capture_fds[0],
                      &st->child.capture_fds[1],
                      &st->child.capture_fds[2]};

        cgroup_warm_finish(&st->warm);
        mount_plan_done(&st->plan);
        native_image_done(&st->img);
        strv_free(st->envp);
        st->envp = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
                drop_fd(fds[i]);
}
DEFINE_CLEANUP_DONE(struct start, start_done)
#define cleanup_start CLEANUP_FUNC(start_done)

/* Releases what the steps so far acquired outside this process's memory, newest first. */
static void start_undo(struct start *st)
{
        if (st->registered)
                (void)egress_unregister(st->cfg->ref.name, NULL);
        if (st->child.pid > 0) {
                /* not committed (or it exited at the commit): its namespaces die with it */
                (void)kill(st->child.pid, SIGKILL);
                while (waitpid(st->child.pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                drop_fd(&st->child.pidfd);
                drop_fd(&st->child.sync_fd);
                st->child.pid = -1;
        }
        if (st->net.r >= 0)
                net_abort(&st->net.net); /* launched, never waited for */
        if (st->cgroups_made)
                (void)cgroup_destroy(&st->cg, NULL);
        if (st->run_dir_made)
                (void)rm_rf_at(AT_FDCWD, st->cfg->ref.run_dir);
        else if (st->copy_started)
                (void)rm_rf_at(AT_FDCWD, st->merged);
        if (st->lock_fd >= 0) {
                (void)unlink(st->lock_path);
                drop_fd(&st->lock_fd);
        }
        if (st->ports_sock[0])
                (void)unlink(st->ports_sock);
}

/* Refuses what cannot start here before anything is acquired. */
static int check_request(struct start *st, struct ak_err *err)
{
        const struct backend_config *cfg = st->cfg;
        char why[256];
        int r;

        r = backend_id_base(cfg, &st->id_base, err);
        if (r < 0)
                return r;
        r = paths_agent_binary(st->agent, sizeof(st->agent), err);
        if (r < 0)
                return r;
        if (cfg->n_ports && cfg->network == NET_MODE_PROXY &&
            (r = port_relay_check(cfg->ports, cfg->n_ports, err)) < 0)
                return r;
        if (cfg->network == NET_MODE_FULL && !net_available(why, sizeof(why)))
                return ak_err_set(err, ENOENT, "%s", why);
        (void)snprintf(st->cgid, sizeof(st->cgid), "%s%s", cfg->ephemeral ? "run-" : "",
                       cfg->ref.uuid);
        return 0;
}

/* The workspace, opened without following any symlink. The recorded workspace is canonical,
 * but a directory of its path may be in another sandbox's workspace, swapped since for a
 * symlink (to /etc...). Rootful, it is bound from this very fd (the parent clones it through
 * its /proc/self/fd name, which no one can swap); rootless, the child binds the path it checked
 * here (a mount in our namespace cannot be bound in its own), a window only the caller's own
 * files are behind. */
static int open_workspace(struct start *st, struct ak_err *err)
{
        const char *ws = st->cfg->workspace;
        struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                               .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};

        st->ws_fd = (int)syscall(SYS_openat2, AT_FDCWD, ws, &how, sizeof(how));
        if (st->ws_fd < 0 && errno == ELOOP)
                return ak_err_set(err, EPERM,
                                  "the workspace '%s' is reached through a symlink now "
                                  "(something replaced a directory of its path): refused; "
                                  "check it, then recreate the sandbox",
                                  ws);
        if (st->ws_fd < 0)
                return ak_err_errno(err, errno, "the workspace '%s'", ws);
        (void)snprintf(st->ws_path, sizeof(st->ws_path), "/proc/self/fd/%d", st->ws_fd);
        if (st->ro.idmap) /* rootful: prepared (open_tree) by the parent */
                st->ro.workspace = st->ws_path;
        return 0;
}

/* Step (kept): its run directory, the leftovers of a crashed starter removed first. */
static int make_run_dir(struct start *st, struct ak_err *err)
{
        const struct backend_config *cfg = st->cfg;
        int r;

        if (cfg->ephemeral)
                return 0;
        /* this backend's own cleanup, not the core's wrapper: a backend never goes through
         * core/backend.c to reach itself */
        (void)native_cleanup(&cfg->ref, NULL);
        r = private_dir_ensure(cfg->ref.run_dir, err);
        if (r < 0)
                return r;
        st->run_dir_made = true;
        return 0;
}

/* Step: what the sandbox will see: its image, and the mount plan of its root
 * (runtime/rootfs.h). */
static int plan_root(struct start *st, struct ak_err *err)
{
        const struct backend_config *cfg = st->cfg;
        int r;

        if (cfg->network == NET_MODE_FULL)
                st->ro.resolv_conf = NET_RESOLV_CONF;
        else if (cfg->network == NET_MODE_PROXY)
                st->ro.resolv_conf = "nameserver 127.0.0.1\n"; /* port 53 ends at the proxy */
        /* without a cache directory /etc is filled the slow way */
        if (!st->oci && etc_snapshots_enabled() &&
            snapshot_cache(st->snapshots, sizeof(st->snapshots)) == 0)
                st->ro.etc_snapshots = st->snapshots;
        if (cfg->workspace && (r = open_workspace(st, err)) < 0)
                return r;
        if (st->oci) {
                r = native_image_open(cfg->image, &st->img, err);
                if (r < 0)
                        return r;
                if (!cfg->workspace && !cfg->scratch_workspace && st->img.workdir &&
                    st->img.workdir[0] == '/')
                        st->workdir = st->img.workdir;
                /* What the sandbox writes goes to its disk (a tmpfs of disk_mb that vanishes
                 * with it: nothing on the host's disk, nothing to clean up even after a crash),
                 * kept or not. The copy fallback copies the image next to the sandbox's runtime
                 * files, as the overlay's one lower layer: the host writes it, the sandbox never
                 * does. */
                if (native_image_use_copy() && cfg->ephemeral)
                        (void)snprintf(st->merged, sizeof(st->merged), "%s/%s.rootfs",
                                       cfg->ref.run_dir, st->cgid);
                else if (native_image_use_copy())
                        (void)snprintf(st->merged, sizeof(st->merged), "%s/rootfs",
                                       cfg->ref.run_dir);
        }
        r = st->oci ? rootfs_plan_image(&st->ro, st->img.lowers, st->merged[0] ? st->merged : NULL,
                                        st->img.workdir, &st->plan)
                    : rootfs_plan_host(&st->ro, &st->plan, &st->etc_lock);
        if (r < 0)
                return ak_err_errno(err, r, "building the root filesystem plan");
        return 0;
}

/* Builds the agent's environment: defaults (in proxy mode with the proxy variables that
 * cooperative clients read: the capture catches the others), then the image's, then the
 * sandbox's own. */
static int agent_env(struct start *st, struct ak_err *err)
{
        static char *const plain[] = {
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/root",
            "HOSTNAME=agentkernel",
            NULL,
        };
        cleanup_strv char **defaults = st->cfg->network == NET_MODE_PROXY
                                           ? strv_env_merge(plain, egress_proxy_env)
                                           : strv_dup(plain);

        if (!defaults)
                return ak_err_oom(err);
        if (st->oci) {
                cleanup_strv char **image_env = strv_env_merge(st->img.env, st->cfg->env);
                st->envp = image_env ? strv_env_merge(defaults, image_env) : NULL;
        } else {
                st->envp = strv_env_merge(defaults, st->cfg->env);
        }
        return st->envp ? 0 : ak_err_oom(err);
}

/* The agent's command line: the fds it is given (runtime_spec: 3 channel, 4 sync, 5 state, 6...
 * held), its capabilities and where it starts commands. */
static void agent_argv(struct start *st)
{
        const struct backend_config *cfg = st->cfg;
        const char **argv = st->argv;
        size_t n = 0;

        (void)snprintf(st->caps, sizeof(st->caps), "%llx", (unsigned long long)st->p->caps);
        argv[n++] = "agentkernel-agent";
        argv[n++] = cfg->ephemeral ? "--conn-fd" : "--listen-fd";
        argv[n++] = "3";
        argv[n++] = "--sync-fd";
        argv[n++] = "4";
        argv[n++] = "--state-fd";
        argv[n++] = "5";
        argv[n++] = "--caps";
        argv[n++] = st->caps;
        argv[n++] = "--workdir";
        argv[n++] = st->workdir;
        if (st->img.user && *st->img.user && geteuid() == 0) {
                /* the image's User runs commands unless a request names one (--sudo: root);
                 * rootless maps only root, so there it runs as root */
                argv[n++] = "--user";
                argv[n++] = st->img.user;
        }
        for (size_t i = 0; i < st->n_held; i++) {
                argv[n++] = (int)i == st->ports_held ? "--ports-fd" : "--hold-fd";
                argv[n++] = (const char *[]){"6", "7"}[i];
        }
        if (st->host_files)
                argv[n++] = "--host-files"; /* its commands get no openat2 (agent-util.c) */
        if (cfg->pool_entry) {
                /* a warm pool's sandbox waits for one run, which must not wait for a fork */
                argv[n++] = "--dormant-ms";
                argv[n++] = "0";
        } else {
                /* AGENTKERNEL_DORMANT_MS: how long an idle sandbox keeps its handlers (the
                 * agent's default otherwise; 0: always; tests and benches shorten it) */
                const char *d = secure_getenv("AGENTKERNEL_DORMANT_MS");
                uint32_t ms;
                if (d && safe_atou32(d, &ms) == 0) {
                        (void)snprintf(st->dormant_ms, sizeof(st->dormant_ms), "%u", ms);
                        argv[n++] = "--dormant-ms";
                        argv[n++] = st->dormant_ms;
                }
        }
        if (cfg->ref.uuid && uuid_is_valid(cfg->ref.uuid)) {
                /* what ties this process to this sandbox where there are no cgroups
                 * (runtime_alive), and what its HELLO replies say */
                argv[n++] = "--uuid";
                argv[n++] = cfg->ref.uuid;
        }
        argv[n] = NULL;
}

/* Step: everything the agent is started with (the child must not allocate): its binary, its
 * seccomp program, its channel, the fds it holds for us, its environment and arguments. */
static int prepare_agent(struct start *st, struct ak_err *err)
{
        const struct backend_config *cfg = st->cfg;
        char path[PATH_MAX];
        int r;

        st->host_files = bind_mounts_writable(st->ro.workspace, st->ro.binds, st->ro.n_binds);
        r = seccomp_program(st->p->seccomp, st->host_files, &st->filter);
        if (r < 0)
                return ak_err_set(err, -r, "no seccomp program for profile '%s'", st->p->name);
        st->exe_fd = open(st->agent, O_RDONLY | O_CLOEXEC);
        if (st->exe_fd < 0)
                return ak_err_errno(err, errno, "open '%s'", st->agent);
        if (st->oci && (r = native_image_agent_ok(st->exe_fd, err)) < 0)
                return r;
        if (cfg->ephemeral) {
                int sp[2];
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0)
                        return ak_err_errno(err, errno, "socketpair");
                st->chan = sp[1];
                st->peer = sp[0];
        } else {
                native_run_path(&cfg->ref, NATIVE_SOCKET_FILE, path, sizeof(path));
                st->chan = unix_listen(path, 128, err);
                if (st->chan < 0)
                        return st->chan;
        }
        if (cfg->ephemeral && cfg->network == NET_MODE_PROXY && cfg->n_ports) {
                /* named for the run (ephemeral runs share the directory), unlinked once the
                 * relay holds it (publish_ports) */
                char name[48];
                size_t n = strlen(st->cgid);
                (void)snprintf(name, sizeof(name), "ports-%s.sock",
                               st->cgid + (n > 12 ? n - 12 : 0));
                native_run_path(&cfg->ref, name, st->ports_sock, sizeof(st->ports_sock));
                r = private_dir_ensure(cfg->ref.run_dir, err);
                if (r < 0) {
                        st->ports_sock[0] = '\0';
                        return r;
                }
                st->ports_listen = unix_listen(st->ports_sock, 128, err);
                if (st->ports_listen < 0) {
                        st->ports_sock[0] = '\0';
                        return st->ports_listen;
                }
                st->ports_held = (int)st->n_held;
                st->held[st->n_held++] = st->ports_listen;
        }
        /* The agent holds the write end: slirp4netns exits when the sandbox does. */
        if (cfg->network == NET_MODE_FULL && pipe2(st->hold, O_CLOEXEC) < 0)
                return ak_err_errno(err, errno, "pipe");
        if (st->hold[1] >= 0)
                st->held[st->n_held++] = st->hold[1];
        if (st->etc_lock >= 0)
                st->held[st->n_held++] = st->etc_lock;
        r = agent_env(st, err);
        if (r < 0)
                return r;
        agent_argv(st);
        return 0;
}

/* Step (ephemeral): the lock file an ephemeral run holds for its cgroup's lifetime. It has no
 * record; the lock tells a later sweep whether its owner is still alive. Locked under a name a
 * sweep ignores, then renamed into place: a sweep never sees the file unlocked, so it can
 * neither take it for a dead run's nor make our flock fail by probing it at the wrong moment. */
static int take_lock(struct start *st, struct ak_err *err)
{
        const char *run_dir = st->cfg->ref.run_dir;
        char tmp[PATH_MAX];
        int r;

        if (!st->cfg->ephemeral)
                return 0;
        r = private_dir_ensure(run_dir, err);
        if (r < 0)
                return r;
        (void)snprintf(tmp, sizeof(tmp), "%s/.%s.lock", run_dir, st->cgid);
        (void)snprintf(st->lock_path, sizeof(st->lock_path), "%s/%s.lock", run_dir, st->cgid);
        st->lock_fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (st->lock_fd < 0 || flock(st->lock_fd, LOCK_EX | LOCK_NB) < 0 ||
            rename(tmp, st->lock_path) < 0) {
                r = ak_err_errno(err, errno, "lock '%s'", st->lock_path);
                if (st->lock_fd >= 0)
                        (void)unlink(tmp);
                drop_fd(&st->lock_fd);
                return r;
        }
        return 0;
}

/* Step: the sandbox's cgroups with its limits, where this host has cgroups. */
static int make_cgroups(struct start *st, struct ak_err *err)
{
        const struct backend_config *cfg = st->cfg;
        struct cgroup_limits lim = {
            .memory_bytes = cfg->memory_mb << 20,
            .pids_max = st->p->pids_max,
            .cpu_millis = (uint64_t)cfg->vcpus * 10 * st->p->cpu_percent,
        };
        char why[256];
        int r;

        if (cgroup_detect(why, sizeof(why)) != CGROUP_NONE) {
                r = cgroup_create(st->cgid, &lim, &st->cg, err);
                if (r < 0)
                        return r;
                st->cgroups_made = true;
                /* after the mkdirs, which the warming write would hold up (cgroup_mutex) */
                cgroup_warm_start(st->cg.mode, &st->warm);
        }
        cgroup_procs_files(&st->cg, st->procs_buf, st->procs, ARRAY_SIZE(st->procs));
        return 0;
}

/* Step (the copy fallback only): the image's private copy. After the lock file: a sweep removes
 * an ephemeral copy only unlocked. Owned by the sandbox's root: its id range's base, or
 * (rootless) ourselves. */
static int copy_root(struct start *st, struct ak_err *err)
{
        if (!st->merged[0])
                return 0;
        st->copy_started = true;
        return native_image_copy(&st->img, st->merged, geteuid() == 0 ? st->id_base : 0, err);
}

/* Step: the sandbox's namespaces and its agent as PID 1 (runtime_spawn), networking launched
 * meanwhile. Not committed yet: the agent stops everything if we die. */
static int spawn(struct start *st, struct ak_err *err)
{
        const struct backend_config *cfg = st->cfg;
        struct runtime_spec spec = {
            .rootless = geteuid() != 0,
            .id_base = st->id_base,
            .id_count = ID_RANGE_SIZE,
            .host_uid = geteuid(),
            .host_gid = getegid(),
            .hostname = "agentkernel",
            .read_only_root = st->p->read_only_root,
            .plan = &st->plan,
            .disk_bytes = (cfg->disk_mb ? cfg->disk_mb : cfg->memory_mb) << 20,
            .workdir = st->workdir,
            .cgroup_procs = st->procs,
            .seccomp = &st->filter,
            .agent_caps = profile_agent_caps() | st->p->caps,
            .state_tmpfs_opts = STATE_TMPFS_OPTS,
            .agent_exe_fd = st->exe_fd,
            .chan_fd = st->chan,
            .hold_fds = {st->held[0], st->held[1]},
            .n_hold = st->n_held,
            .agent_argv = (char *const *)st->argv,
            .agent_envp = st->envp,
            .net_capture = cfg->network == NET_MODE_PROXY,
            .on_namespaces = st->hold[1] >= 0 ? launch_network : NULL,
            .ctx = &st->net,
        };
        int r;

        if (st->hold[1] >= 0) {
                st->net.exit_fd = TAKE_FD(st->hold[0]);
                /* ephemeral runs share one directory: the socket is named for the run (the
                 * uuid's random tail: a unix socket's path has 107 bytes at most) */
                char sock[32];
                size_t n = strlen(st->cgid);
                (void)snprintf(sock, sizeof(sock), "slirp%s%s.sock", cfg->ephemeral ? "-" : "",
                               cfg->ephemeral ? st->cgid + (n > 12 ? n - 12 : 0) : "");
                native_run_path(&cfg->ref, sock, st->net.api, sizeof(st->net.api));
                if (cfg->n_ports &&
                    strlen(st->net.api) >= sizeof(((struct sockaddr_un *)0)->sun_path))
                        return ak_err_set(err, ENAMETOOLONG,
                                          "publishing ports needs slirp4netns' socket at '%s', "
                                          "longer than a unix socket's path may be; use a data "
                                          "directory with a shorter path",
                                          st->net.api);
        }
        r = runtime_spawn(&spec, &st->child, err);
        if (r < 0)
                return r;
        /* the agent holds these now; from here on only it holds slirp4netns' exit pipe */
        drop_fd(&st->etc_lock);
        drop_fd(&st->hold[1]);
        drop_fd(&st->ports_listen);
        return 0;
}

/* Step: the sandbox's network configured and its ports published. */
static int wait_network(struct start *st, struct ak_err *err)
{
        const struct backend_config *cfg = st->cfg;
        int r;

        if (cfg->network != NET_MODE_FULL)
                return 0;
        if (st->net.r < 0)
                return ak_err_set(err, st->net.err.code ? st->net.err.code : EIO, "%s",
                                  ak_err_msg(&st->net.err));
        r = net_wait(&st->net.net, st->net.api, cfg->ports, cfg->n_ports, err);
        st->net.r = -1; /* the handle is consumed either way */
        if (cfg->n_ports)
                (void)unlink(st->net.api); /* ports are set; nobody needs the socket */
        return r;
}

/* Step (proxy mode): the listeners the sandbox made go to the user's policy proxy, with the
 * sandbox's policy, its init's pidfd (the proxy forgets it when it exits) and its decision log
 * (<run dir>/network.jsonl; an ephemeral run's is unlinked at once: nobody reads it later). One
 * control message and its reply: the proxy is started once per user, not per sandbox. */
static int register_egress(struct start *st, struct ak_err *err)
{
        const struct backend_config *cfg = st->cfg;
        struct egress_fds fds = {st->child.capture_fds[0], st->child.capture_fds[1],
                                 st->child.capture_fds[2]};
        char log[PATH_MAX];
        int r;

        if (cfg->network != NET_MODE_PROXY)
                return 0;
        if (cfg->ephemeral)
                (void)snprintf(log, sizeof(log), "%s/%s.%s", cfg->ref.run_dir, st->cgid,
                               EGRESS_LOG_FILE);
        else
                (void)snprintf(log, sizeof(log), "%s/%s", cfg->ref.run_dir, EGRESS_LOG_FILE);
        r = egress_register(
            cfg->ref.name, cfg->ref.uuid, cfg->net_policy, &fds, st->child.pidfd, log,
            &(struct egress_secrets){cfg->secret_grants, cfg->upstream_ca, cfg->ret_proxy_ca}, err);
        if (cfg->ephemeral)
                (void)unlink(log);
        if (r < 0)
                return r;
        st->registered = true;
        /* the proxy holds them now */
        for (int i = 0; i < 3; i++)
                drop_fd(&st->child.capture_fds[i]);
        return 0;
}

/* Step (proxy mode): published ports, through a relay that asks the agent for each connection
 * (port-relay.h) on its socket (a run's: the second one, made for it); it exits with the
 * sandbox. */
static int publish_ports(struct start *st, struct ak_err *err)
{
        const struct backend_config *cfg = st->cfg;
        cleanup_close int sock = -1;
        cleanup_close int netns = -1;
        char path[PATH_MAX];

        if (cfg->network != NET_MODE_PROXY || !cfg->n_ports)
                return 0;
        if (cfg->ephemeral)
                (void)snprintf(path, sizeof(path), "%s", st->ports_sock);
        else
                native_run_path(&cfg->ref, NATIVE_SOCKET_FILE, path, sizeof(path));
        sock = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (sock < 0)
                return ak_err_errno(err, errno, "the agent's socket '%s'", path);
        if (cfg->ephemeral) { /* the relay reaches it through its fd */
                (void)unlink(st->ports_sock);
                st->ports_sock[0] = '\0';
        }
        (void)snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)st->child.pid);
        netns = open(path, O_RDONLY | O_CLOEXEC);
        if (netns < 0)
                return ak_err_errno(err, errno, "the sandbox's network namespace");
        return port_relay_start(cfg->ports, cfg->n_ports, sock, st->child.pidfd, netns, err);
}

/* Step (kept): runtime.json, what later commands find the sandbox by. */
static int record(struct start *st, struct ak_err *err)
{
        int r;

        if (st->cfg->ephemeral)
                return 0;
        r = native_record(&st->cfg->ref, st->child.pid, &st->cg);
        return r < 0 ? ak_err_errno(err, r, "recording the sandbox") : 0;
}

/* Step, the last: a kept sandbox is committed and outlives us; an ephemeral one's session takes
 * the process, its cgroups, its lock and its image. Nothing can fail after this. */
static int commit(struct start *st, struct ak_err *err)
{
        struct native_session *s;
        int r;

        if (!st->cfg->ephemeral) {
                drop_fd(&st->child.pidfd);
                r = runtime_commit(&st->child);
                if (r < 0)
                        return ak_err_set(err, -r, "sandbox exited during start");
                st->child.pid = -1; /* the sandbox's own now */
                return 0;
        }
        s = calloc(1, sizeof(*s));
        if (!s)
                return ak_err_oom(err);
        *s = (struct native_session){
            .pid = st->child.pid,
            .pidfd = TAKE_FD(st->child.pidfd),
            .sync_fd = TAKE_FD(st->child.sync_fd),
            .lock_fd = TAKE_FD(st->lock_fd),
            .image_lock_fd = TAKE_FD(st->img.lock_fd),
            .cg = st->cg,
        };
        memcpy(s->lock_path, st->lock_path, sizeof(s->lock_path));
        memcpy(s->merged, st->merged, sizeof(s->merged));
        st->child.pid = -1;
        st->ret_session->chan_fd = TAKE_FD(st->peer);
        st->ret_session->priv = s;
        return 0;
}

/* The steps of a start, in order, with the test point that follows each (NULL: none). */
static const struct start_step {
        int (*run)(struct start *st, struct ak_err *err);
        const char *point;
} start_steps[] = {
    {check_request, NULL},
    {make_run_dir, "native-run-dir-made"},
    {take_lock, "native-locked"},
    /* early: the grace period of the cgroups' join runs while the next two steps work */
    {make_cgroups, "native-cgroup-created"},
    {plan_root, "native-root-planned"},
    {prepare_agent, "native-agent-prepared"},
    {copy_root, "native-root-copied"},
    {spawn, "native-spawned"},
    {wait_network, "native-network-ready"},
    {register_egress, "native-egress-registered"},
    {publish_ports, "native-ports-published"},
    {record, "native-recorded"},
    {commit, NULL},
};

int native_start(const struct backend_config *cfg, struct backend_session *ret_session,
                 struct ak_err *err)
{
        cleanup_start struct start st = start_new(cfg, ret_session);
        bool pool = native_pool_usable(cfg);
        int r = 0;

        /* run --fast: a sandbox made ahead for this very configuration (native-pool.c), whose
         * worker tops the pool up after the run; without one, a start of our own that does */
        if (pool && native_pool_claim(cfg, ret_session) == 0)
                return 0;
        for (size_t i = 0; i < ARRAY_SIZE(start_steps) && r >= 0; i++) {
                const struct start_step *step = &start_steps[i];
                r = step->run(&st, err);
                if (r >= 0 && step->point && test_hook(step->point) < 0)
                        r = ak_err_set(err, EIO, "injected failure at '%s' (cgroup '%s')",
                                       step->point, st.cgid);
        }
        if (r < 0) {
                start_undo(&st);
                return err && err->code ? -err->code : r;
        }
        if (pool)
                native_pool_refill(cfg);
        return 0;
}
