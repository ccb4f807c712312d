// SPDX-License-Identifier: Apache-2.0
/*
 * The `native` backend: Linux namespaces, cgroups and seccomp, no daemon. It provisions the
 * boundary (src/runtime/) and hands back the agent's channel; it never runs commands itself.
 *
 * A running sandbox is described by <run_dir>/runtime.json (pid and start time of its init, its
 * cgroups, its pasta). The pid is trusted only while /proc/<pid>/stat shows the same start time,
 * so a recycled pid is never signalled. Whatever a crashed starter left behind (cgroups, run dir)
 * is found from the sandbox's uuid and removed by cleanup().
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sha2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/native-image.h"
#include "core/backend.h"
#include "core/paths.h"
#include "core/private-dir.h"
#include "proc-util.h"
#include "runtime/cgroup.h"
#include "runtime/net.h"
#include "runtime/rootfs.h"
#include "runtime/runtime.h"
#include "runtime/seccomp.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/parse-util.h"
#include "shared/random-util.h"
#include "shared/strv.h"
#include "shared/test-hook.h"
#include "shared/time-util.h"

#define STATE_TMPFS_OPTS "mode=0700,size=256m,nr_inodes=65536"
#define STOP_TIMEOUT_MS 5000
#define RUNTIME_FILE "runtime.json"
#define SOCKET_FILE "agent.sock"

struct native_session {
        pid_t pid;
        int pidfd;
        int sync_fd;
        int lock_fd; /* held while the ephemeral cgroup is ours */
        char lock_path[PATH_MAX];
        int image_lock_fd;     /* the image store's shared lock, or -1 */
        char merged[PATH_MAX]; /* an ephemeral copy-fallback root to delete, or "" */
        struct cgroup_set cg;
};

/* runtime.json: written by start, read back by status, stop, remove, resize and stats. It is
 * input from disk like any other: read_runtime() accepts it only as a private file (ours, not
 * writable by others, no link), keeps its cgroups only when they are this sandbox's own
 * (cgroup_confined), and its pid is acted on only when runtime_alive() holds: proc_verify()
 * of the recorded start time and boot, and membership of the sandbox's cgroup (or, on a host
 * without cgroups, PID 1 of a pid namespace in a user namespace we created). */
struct native_runtime {
        pid_t pid;
        uint64_t start_time;
        char boot_id[PROC_BOOT_ID_LEN + 1]; /* "" in files of older versions */
        bool cg_trusted;                    /* cg names this sandbox's own cgroups */
        /* not to be believed at all: cgroups other than the sandbox's, none on a host that has
         * them, or another sandbox's uuid */
        bool forged;
        struct cgroup_set cg;
        char uuid[37]; /* the sandbox's, which its agent was started with */
};

static void run_path(const struct sandbox_ref *ref, const char *file, char *out, size_t len)
{
        (void)snprintf(out, len, "%s/%s", ref->run_dir, file);
}

/* The sandbox's cgroup id: its uuid (kept sandboxes; ephemeral ones have no runtime file). */
static const char *runtime_cgroup_id(const struct sandbox_ref *ref, json_t *o)
{
        const char *u = json_string_value(json_object_get(o, "uuid"));

        if (ref->uuid && uuid_is_valid(ref->uuid))
                return u && !streq(u, ref->uuid) ? NULL : ref->uuid; /* another sandbox's file */
        return u && uuid_is_valid(u) ? u : NULL; /* a record too damaged to name it */
}

static int read_runtime(const struct sandbox_ref *ref, struct native_runtime *rt)
{
        char path[PATH_MAX];
        cleanup_buf struct buf b = BUF_INIT;
        cleanup_json json_t *o = NULL;
        json_t *dirs, *d, *pid, *start;
        const char *boot, *id;
        size_t i;

        memset(rt, 0, sizeof(*rt));
        run_path(ref, RUNTIME_FILE, path, sizeof(path));
        if (private_file_read_at(AT_FDCWD, path, &b, 1u << 16, NULL) < 0 || !b.data)
                return -ENOENT;
        o = json_loadb(b.data, b.len, 0, NULL);
        if (!json_is_object(o))
                return -EINVAL;
        pid = json_object_get(o, "pid");
        start = json_object_get(o, "start_time");
        if (!json_is_integer(pid) || json_integer_value(pid) <= 1 ||
            json_integer_value(pid) > INT32_MAX || !json_is_integer(start) ||
            json_integer_value(start) < 0)
                return -EINVAL;
        rt->pid = (pid_t)json_integer_value(pid);
        rt->start_time = (uint64_t)json_integer_value(start);
        boot = json_string_value(json_object_get(o, "boot_id"));
        if (boot && strlen(boot) == PROC_BOOT_ID_LEN)
                memcpy(rt->boot_id, boot, sizeof(rt->boot_id));
        else if (boot)
                return -EINVAL;
        rt->cg.mode = json_integer_value(json_object_get(o, "cgroup_mode")) == 2   ? CGROUP_V2
                      : json_integer_value(json_object_get(o, "cgroup_mode")) == 1 ? CGROUP_V1
                                                                                   : CGROUP_NONE;
        dirs = json_object_get(o, "cgroups");
        json_array_foreach (dirs, i, d) {
                if (i >= CGROUP_MAX_HIER || !json_is_string(d) ||
                    strlen(json_string_value(d)) >= CGROUP_PATH_MAX - 64) {
                        rt->forged = true; /* never act on a cut or extra path */
                        break;
                }
                (void)snprintf(rt->cg.dirs[i], CGROUP_PATH_MAX, "%s", json_string_value(d));
                rt->cg.n = i + 1;
        }
        id = runtime_cgroup_id(ref, o);
        if (id)
                (void)snprintf(rt->uuid, sizeof(rt->uuid), "%s", id);
        if (!id)
                rt->forged = true;
        else if (rt->cg.n && !rt->forged)
                rt->cg_trusted = cgroup_confined(id, &rt->cg);
        if (rt->cg.n && !rt->cg_trusted)
                rt->forged = true;
        /* A sandbox started where cgroups work records them, and its init is checked to be in
         * them: a file without any, on a host with cgroups, would skip that check. */
        if (!rt->cg.n) {
                char why[256];
                if (cgroup_detect(why, sizeof(why)) != CGROUP_NONE)
                        rt->forged = true;
        }
        if (rt->forged)
                rt->cg.n = 0;
        return 0;
}

/* What the recorded pid must be for us to act on it (see struct native_runtime). */
static bool runtime_alive(const struct native_runtime *rt, struct proc_ident *ret)
{
        /* Membership of the sandbox's own cgroup (where only we can put a process) is the
         * proof; where there are no cgroups, being the init of a pid namespace in a user
         * namespace we created, started as this sandbox's agent (--uuid), is: the first alone
         * would also hold for another of the caller's sandboxes or containers. */
        *ret = (struct proc_ident){
            .pid = rt->pid,
            .start_time = rt->start_time,
            .boot_id = rt->boot_id,
            .cgroup_dir = rt->cg_trusted ? rt->cg.dirs[0] : NULL,
            .ns_init = !rt->cg_trusted,
            .uuid = rt->cg_trusted ? NULL : rt->uuid,
        };
        return !rt->forged && proc_verify(ret);
}

static int write_runtime(const struct sandbox_ref *ref, const struct native_runtime *rt)
{
        char path[PATH_MAX];
        cleanup_json json_t *o = json_object();
        json_t *dirs = json_array();
        cleanup_free char *text = NULL;

        if (!o || !dirs)
                return -ENOMEM;
        json_object_set_new(o, "pid", json_integer(rt->pid));
        json_object_set_new(o, "start_time", json_integer((json_int_t)rt->start_time));
        if (rt->boot_id[0])
                json_object_set_new(o, "boot_id", json_string(rt->boot_id));
        if (ref->uuid)
                json_object_set_new(o, "uuid", json_string(ref->uuid));
        json_object_set_new(o, "cgroup_mode",
                            json_integer(rt->cg.mode == CGROUP_V2   ? 2
                                         : rt->cg.mode == CGROUP_V1 ? 1
                                                                    : 0));
        for (size_t i = 0; i < rt->cg.n; i++)
                json_array_append_new(dirs, json_string(rt->cg.dirs[i]));
        json_object_set_new(o, "cgroups", dirs);
        text = json_dumps(o, JSON_INDENT(2));
        if (!text)
                return -ENOMEM;
        run_path(ref, RUNTIME_FILE, path, sizeof(path));
        return write_file_atomic_at(AT_FDCWD, path, text, strlen(text), PRIVATE_FILE_MODE, false);
}

static int native_probe(char *why, size_t why_len)
{
        int fd = open("/proc/self/ns/user", O_RDONLY | O_CLOEXEC);

        if (fd < 0) {
                (void)snprintf(why, why_len, "this kernel has no user namespaces");
                return 0;
        }
        close(fd);
        return 1;
}

/* Builds the agent's environment: defaults, then the sandbox's own. Caller frees (strv). */
static char **agent_env(char *const *env)
{
        static char *const defaults[] = {
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/root",
            "HOSTNAME=agentkernel",
            NULL,
        };
        return strv_env_merge(defaults, env);
}

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
 * $XDG_RUNTIME_DIR rootless, both private places of their owner): <runtime>/agentkernel/<id>/etc,
 * <id> a hash of the data directory's path (each data directory has its own cache, as before).
 * Without a usable runtime directory, <data>/cache/etc. 0, or -1 when there is none.
 */
static int snapshot_cache(char *out, size_t len)
{
        const char *runtime = geteuid() == 0 ? "/run" : secure_getenv("XDG_RUNTIME_DIR");
        cleanup_free char *data = NULL, *top = NULL;
        cleanup_close int dfd = paths_data_dir_open(&data, NULL);
        char id[SHA256_DIGEST_STRING_LENGTH], sub[64];
        int fd;

        if (dfd < 0)
                return -1;
        if (runtime && runtime[0] == '/' && asprintf(&top, "%s/agentkernel", runtime) >= 0) {
                cleanup_close int tfd =
                    private_dir_open(top, "runtime directory", PRIVATE_CREATE, NULL, NULL);
                (void)SHA256Data((const uint8_t *)data, strlen(data), id);
                (void)snprintf(sub, sizeof(sub), "%.16s/etc", id);
                fd = tfd >= 0 ? private_dir_open_at(tfd, top, sub, PRIVATE_CREATE, NULL) : -1;
                if (fd >= 0) {
                        close(fd);
                        return (size_t)snprintf(out, len, "%s/%s", top, sub) < len ? 0 : -1;
                }
        }
        fd = private_dir_open_at(dfd, data, "cache/etc", PRIVATE_CREATE, NULL);
        if (fd < 0)
                return -1;
        close(fd);
        return (size_t)snprintf(out, len, "%s/cache/etc", data) < len ? 0 : -1;
}

static int native_start(const struct backend_config *cfg, struct backend_session *ret_session,
                        struct ak_err *err)
{
        const struct profile *p = cfg->profile;
        struct cgroup_limits lim = {
            .memory_bytes = cfg->memory_mb << 20,
            .pids_max = p->pids_max,
            .cpu_millis = (uint64_t)cfg->vcpus * 10 * p->cpu_percent,
        };
        struct rootfs_opts ro = {.workspace = cfg->workspace,
                                 .home = cfg->home,
                                 .binds = cfg->binds,
                                 .n_binds = cfg->n_binds,
                                 .idmap = geteuid() == 0};
        cleanup_mount_plan struct mount_plan plan = {0};
        struct sock_fprog filter = {0};
        struct cgroup_set cg = {.mode = CGROUP_NONE};
        struct runtime_child child = {.pid = -1, .pidfd = -1, .sync_fd = -1};
        struct native_runtime rt = {0};
        cleanup_close int exe_fd = -1;
        cleanup_close int ws_fd = -1; /* the workspace, held until the sandbox has bound it */
        char ws_path[32];
        cleanup_close int chan = -1;
        cleanup_close int peer = -1;
        cleanup_strv char **envp = NULL;
        char agent[PATH_MAX], path[PATH_MAX], cgid[64], caps[32], why[256];
        int hold[2] = {-1, -1};
        int etc_lock = -1; /* the /etc snapshot's shared lock: the agent inherits it */
        int held[RUNTIME_HOLD_MAX] = {-1, -1}; /* what the agent keeps open: fds 6, 7 there */
        size_t n_held = 0;
        char procs_buf[4][CGROUP_PATH_MAX], lock_path[PATH_MAX] = "", snapshots[PATH_MAX] = "";
        int lock_fd = -1;
        struct net_launch_ctx net = {.cfg = cfg, .exit_fd = -1, .net = {0, -1}, .r = -1};
        const char *procs[5];
        const char *argv[24];
        uint32_t id_base = 0;
        bool cgroups_made = false, host_files = false;
        cleanup_native_image struct native_image img = NATIVE_IMAGE_INIT;
        bool oci = !streq(cfg->image, "host");
        char merged[PATH_MAX] = ""; /* the copy fallback's root (the image, read-only to it) */
        const char *workdir = cfg->workspace ? "/workspace" : "/";
        size_t n = 0;
        int r;

        r = backend_id_base(cfg, &id_base, err);
        if (r < 0)
                return r;
        r = paths_agent_binary(agent, sizeof(agent), err);
        if (r < 0)
                return r;
        if (cfg->ephemeral && cfg->n_ports)
                return ak_err_set(err, ENOTSUP,
                                  "publishing ports needs a kept sandbox (use --keep or create)");
        if (cfg->network) {
                if (!net_available(why, sizeof(why)))
                        return ak_err_set(err, ENOENT, "%s", why);
                ro.resolv_conf = NET_RESOLV_CONF;
                /* The agent holds the write end: slirp4netns exits when the sandbox does. */
                if (pipe2(hold, O_CLOEXEC) < 0)
                        return ak_err_errno(err, errno, "pipe");
        }
        if (!oci && etc_snapshots_enabled()) {
                /* without a cache directory /etc is filled the slow way */
                if (snapshot_cache(snapshots, sizeof(snapshots)) == 0)
                        ro.etc_snapshots = snapshots;
        }
        if (cfg->workspace) {
                /* The recorded workspace is canonical, but a directory of its path may be in
                 * another sandbox's workspace, swapped since for a symlink (to /etc...): it is
                 * opened now without following any. Rootful, it is bound from this very fd
                 * (the parent clones it through its /proc/self/fd name, which no one can
                 * swap); rootless, the child binds the path it checked here (a mount in our
                 * namespace cannot be bound in its own), a window only the caller's own files
                 * are behind. */
                struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                                       .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS};
                ws_fd = (int)syscall(SYS_openat2, AT_FDCWD, cfg->workspace, &how, sizeof(how));
                if (ws_fd < 0 && errno == ELOOP)
                        return ak_err_set(err, EPERM,
                                          "the workspace '%s' is reached through a symlink now "
                                          "(something replaced a directory of its path): "
                                          "refused; check it, then recreate the sandbox",
                                          cfg->workspace);
                if (ws_fd < 0)
                        return ak_err_errno(err, errno, "the workspace '%s'", cfg->workspace);
                (void)snprintf(ws_path, sizeof(ws_path), "/proc/self/fd/%d", ws_fd);
                if (ro.idmap) /* rootful: prepared (open_tree) by the parent */
                        ro.workspace = ws_path;
        }
        if (!cfg->ephemeral) {
                /* Leftovers of an earlier run of this sandbox (a crashed starter) go first. */
                (void)backend_cleanup(&native_backend_ops, &cfg->ref, NULL);
                r = private_dir_ensure(cfg->ref.run_dir, err);
                if (r < 0)
                        return r;
        }

        /* Everything the child will need, prepared here (it must not allocate). */
        (void)snprintf(cgid, sizeof(cgid), "%s%s", cfg->ephemeral ? "run-" : "", cfg->ref.uuid);
        if (oci) {
                r = native_image_open(cfg->image, &img, err);
                if (r < 0)
                        goto fail;
                if (!cfg->workspace && img.workdir && img.workdir[0] == '/')
                        workdir = img.workdir;
                /* What the sandbox writes goes to its disk (a tmpfs of disk_mb that vanishes
                 * with it: nothing on the host's disk, nothing to clean up even after a crash),
                 * kept or not. The copy fallback copies the image next to the sandbox's runtime
                 * files, as the overlay's one lower layer: the host writes it, the sandbox never
                 * does. */
                bool copy = native_image_use_copy();
                if (copy && cfg->ephemeral)
                        (void)snprintf(merged, sizeof(merged), "%s/%s.rootfs", cfg->ref.run_dir,
                                       cgid);
                else if (copy)
                        (void)snprintf(merged, sizeof(merged), "%s/rootfs", cfg->ref.run_dir);
        }
        r = oci ? rootfs_plan_image(&ro, img.lowers, merged[0] ? merged : NULL, img.workdir, &plan)
                : rootfs_plan_host(&ro, &plan, &etc_lock);
        if (r < 0) {
                ak_err_errno(err, r, "building the root filesystem plan");
                goto fail;
        }
        host_files = bind_mounts_writable(ro.workspace, ro.binds, ro.n_binds);
        r = seccomp_program(p->seccomp, host_files, &filter);
        if (r < 0) {
                ak_err_set(err, -r, "no seccomp program for profile '%s'", p->name);
                goto fail;
        }
        exe_fd = open(agent, O_RDONLY | O_CLOEXEC);
        if (exe_fd < 0) {
                r = ak_err_errno(err, errno, "open '%s'", agent);
                goto fail;
        }
        if (oci && (r = native_image_agent_ok(exe_fd, err)) < 0)
                goto fail;
        if (cfg->ephemeral) {
                int sp[2];
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
                        r = ak_err_errno(err, errno, "socketpair");
                        goto fail;
                }
                chan = sp[1];
                peer = sp[0];
        } else {
                run_path(&cfg->ref, SOCKET_FILE, path, sizeof(path));
                chan = unix_listen(path, 128, err);
                if (chan < 0) {
                        r = chan;
                        goto fail;
                }
        }
        if (oci) {
                /* the image's Env under the sandbox's own */
                cleanup_strv char **image_env = strv_env_merge(img.env, cfg->env);
                envp = image_env ? agent_env(image_env) : NULL;
        } else {
                envp = agent_env(cfg->env);
        }
        if (!envp) {
                r = ak_err_oom(err);
                goto fail;
        }
        (void)snprintf(caps, sizeof(caps), "%llx", (unsigned long long)p->caps);
        argv[n++] = "agentkernel-agent";
        argv[n++] = cfg->ephemeral ? "--conn-fd" : "--listen-fd";
        argv[n++] = "3";
        argv[n++] = "--sync-fd";
        argv[n++] = "4";
        argv[n++] = "--state-fd";
        argv[n++] = "5";
        argv[n++] = "--caps";
        argv[n++] = caps;
        argv[n++] = "--workdir";
        argv[n++] = workdir;
        if (img.user && *img.user && geteuid() == 0) {
                /* the image's User runs commands unless a request names one (--sudo: root);
                 * rootless maps only root, so there it runs as root */
                argv[n++] = "--user";
                argv[n++] = img.user;
        }
        if (hold[1] >= 0)
                held[n_held++] = hold[1];
        if (etc_lock >= 0)
                held[n_held++] = etc_lock;
        for (size_t i = 0; i < n_held; i++) {
                argv[n++] = "--hold-fd";
                argv[n++] = (const char *[]){"6", "7"}[i];
        }
        if (host_files)
                argv[n++] = "--host-files"; /* its commands get no openat2 (agent-util.c) */
        if (cfg->ref.uuid && uuid_is_valid(cfg->ref.uuid)) {
                /* what ties this process to this sandbox where there are no cgroups
                 * (runtime_alive), and what its HELLO replies say */
                argv[n++] = "--uuid";
                argv[n++] = cfg->ref.uuid;
        }
        argv[n] = NULL;

        if (cfg->ephemeral) {
                /* An ephemeral cgroup has no record; a lock file held for its lifetime tells a
                 * later sweep whether its owner is still alive. */
                r = private_dir_ensure(cfg->ref.run_dir, err);
                if (r < 0)
                        goto fail;
                /* Locked under a name a sweep ignores, then renamed into place: a sweep never
                 * sees the file unlocked, so it can neither take it for a dead run's nor make
                 * our flock fail by probing it at the wrong moment. */
                {
                        char tmp[PATH_MAX];
                        (void)snprintf(tmp, sizeof(tmp), "%s/.%s.lock", cfg->ref.run_dir, cgid);
                        (void)snprintf(lock_path, sizeof(lock_path), "%s/%s.lock", cfg->ref.run_dir,
                                       cgid);
                        lock_fd =
                            open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
                        if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) < 0 ||
                            rename(tmp, lock_path) < 0) {
                                r = ak_err_errno(err, errno, "lock '%s'", lock_path);
                                if (lock_fd >= 0)
                                        (void)unlink(tmp);
                                lock_path[0] = '\0';
                                goto fail;
                        }
                }
        }
        if (cgroup_detect(why, sizeof(why)) != CGROUP_NONE) {
                r = cgroup_create(cgid, &lim, &cg, err);
                if (r < 0)
                        goto fail;
                cgroups_made = true;
        }
        test_hook("native-cgroup-created");
        if (merged[0]) {
                /* After the lock file: a sweep removes an ephemeral copy only unlocked. Owned
                 * by the sandbox's root: its id range's base, or (rootless) ourselves. */
                r = native_image_copy(&img, merged, geteuid() == 0 ? id_base : 0, err);
                if (r < 0)
                        goto fail;
        }
        cgroup_procs_files(&cg, procs_buf, procs, ARRAY_SIZE(procs));

        {
                struct runtime_spec spec = {
                    .rootless = geteuid() != 0,
                    .id_base = id_base,
                    .id_count = ID_RANGE_SIZE,
                    .host_uid = geteuid(),
                    .host_gid = getegid(),
                    .hostname = "agentkernel",
                    .read_only_root = p->read_only_root,
                    .plan = &plan,
                    .disk_bytes = (cfg->disk_mb ? cfg->disk_mb : cfg->memory_mb) << 20,
                    .workdir = workdir,
                    .cgroup_procs = procs,
                    .seccomp = &filter,
                    .agent_caps = profile_agent_caps() | p->caps,
                    .state_tmpfs_opts = STATE_TMPFS_OPTS,
                    .agent_exe_fd = exe_fd,
                    .chan_fd = chan,
                    .hold_fds = {held[0], held[1]},
                    .n_hold = n_held,
                    .agent_argv = (char *const *)argv,
                    .agent_envp = envp,
                    .on_namespaces = hold[1] >= 0 ? launch_network : NULL,
                    .ctx = &net,
                };
                if (hold[1] >= 0) {
                        net.exit_fd = TAKE_FD(hold[0]);
                        run_path(&cfg->ref, "slirp.sock", net.api, sizeof(net.api));
                }
                r = runtime_spawn(&spec, &child, err);
                if (r < 0) {
                        if (net.r >= 0)
                                net_abort(&net.net);
                        if (net.exit_fd >= 0)
                                close(net.exit_fd);
                        goto fail;
                }
        }
        rt.pid = child.pid;
        rt.cg = cg;
        if (etc_lock >= 0) { /* the agent holds it now */
                close(etc_lock);
                etc_lock = -1;
        }
        test_hook("native-spawned");
        if (hold[1] >= 0) {
                close(hold[1]); /* from now on only the agent holds it */
                hold[1] = -1;
                if (net.r < 0) {
                        r = ak_err_set(err, net.err.code ? net.err.code : EIO, "%s",
                                       ak_err_msg(&net.err));
                        goto fail;
                }
                r = net_wait(&net.net, net.api, cfg->ports, cfg->n_ports, err);
                if (cfg->n_ports)
                        (void)unlink(net.api); /* ports are set; nobody needs the socket */
                if (r < 0)
                        goto fail;
        }

        if (cfg->ephemeral) {
                struct native_session *s = calloc(1, sizeof(*s));
                if (!s) {
                        r = ak_err_oom(err);
                        goto fail;
                }
                s->pid = child.pid;
                s->pidfd = child.pidfd;
                s->sync_fd = child.sync_fd;
                s->cg = cg;
                s->lock_fd = TAKE_FD(lock_fd);
                memcpy(s->lock_path, lock_path, sizeof(lock_path));
                s->image_lock_fd = TAKE_FD(img.lock_fd);
                memcpy(s->merged, merged, sizeof(merged));
                ret_session->chan_fd = TAKE_FD(peer);
                ret_session->priv = s;
        } else {
                r = proc_start_time(child.pid, &rt.start_time);
                if (r >= 0)
                        r = proc_boot_id(rt.boot_id);
                if (r >= 0)
                        r = write_runtime(&cfg->ref, &rt);
                if (r < 0) {
                        ak_err_errno(err, r, "recording the sandbox");
                        goto fail;
                }
                test_hook("native-recorded");
                /* From here on the sandbox outlives us. */
                r = runtime_commit(&child);
                if (child.pidfd >= 0)
                        close(child.pidfd);
                if (r < 0) {
                        ak_err_set(err, -r, "sandbox exited during start");
                        goto fail_committed;
                }
        }
        return 0;

fail:
        if (child.pid > 0) {
                (void)kill(child.pid, SIGKILL);
                (void)waitpid(child.pid, NULL, 0);
                if (child.pidfd >= 0)
                        close(child.pidfd);
                if (child.sync_fd >= 0)
                        close(child.sync_fd);
        }
fail_committed:
        for (int i = 0; i < 2; i++)
                if (hold[i] >= 0)
                        close(hold[i]);
        if (etc_lock >= 0)
                close(etc_lock);
        if (cgroups_made)
                (void)cgroup_destroy(&cg, NULL);
        if (!cfg->ephemeral)
                (void)rm_rf_at(AT_FDCWD, cfg->ref.run_dir);
        else if (merged[0])
                (void)rm_rf_at(AT_FDCWD, merged);
        if (lock_fd >= 0) {
                (void)unlink(lock_path);
                close(lock_fd);
        }
        return err && err->code ? -err->code : (r < 0 ? r : -EIO);
}

static int native_finish(struct backend_session *bs)
{
        struct native_session *s = bs->priv;

        if (!s)
                return 0;
        /* Killing the init of the pid namespace kills everything in it. */
        if (s->pidfd >= 0)
                (void)syscall(SYS_pidfd_send_signal, s->pidfd, SIGKILL, NULL, 0);
        else
                (void)kill(s->pid, SIGKILL);
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
                ;
        if (s->pidfd >= 0)
                close(s->pidfd);
        if (s->sync_fd >= 0)
                close(s->sync_fd);
        (void)cgroup_destroy(&s->cg, NULL);
        if (s->merged[0])
                (void)rm_rf_at(AT_FDCWD, s->merged);
        if (s->image_lock_fd >= 0)
                close(s->image_lock_fd);
        if (s->lock_fd >= 0) {
                (void)unlink(s->lock_path);
                close(s->lock_fd);
        }
        free(s);
        bs->priv = NULL;
        return 0;
}

static int native_status(const struct sandbox_ref *ref, struct backend_status *ret)
{
        struct native_runtime rt;
        struct proc_ident id;

        if (read_runtime(ref, &rt) < 0)
                return 0;
        if (runtime_alive(&rt, &id)) {
                ret->running = true;
                ret->pid = rt.pid;
        }
        return 0;
}

static int native_cleanup(const struct sandbox_ref *ref, struct ak_err *err)
{
        struct native_runtime rt;
        struct cgroup_set cg;
        int r = 0;

        /* only cgroups confined to this sandbox's own (read_runtime drops others) */
        if (read_runtime(ref, &rt) == 0 && rt.cg_trusted)
                r = cgroup_destroy(&rt.cg, err);
        /* Also the cgroups a starter killed before it wrote runtime.json. */
        if (ref->uuid && uuid_is_valid(ref->uuid) && cgroup_paths(ref->uuid, &cg) == 0 && cg.n) {
                int k = cgroup_destroy(&cg, r < 0 ? NULL : err);
                if (k < 0 && r == 0)
                        r = k;
        }
        if (ref->run_dir) {
                int k = rm_rf_at(AT_FDCWD, ref->run_dir);
                if (k < 0 && r == 0)
                        r = ak_err_errno(err, k, "remove '%s'", ref->run_dir);
        }
        return r;
}

static int native_stop(const struct sandbox_ref *ref, struct ak_err *err)
{
        struct native_runtime rt;
        struct proc_ident id;

        /* The agent stops its commands (SIGTERM, grace, SIGKILL) and exits; its exit ends the
         * pid namespace and everything left in it. Only a process that is this sandbox's init
         * is signalled (proc_terminate re-checks it through a pidfd). */
        if (read_runtime(ref, &rt) == 0 && runtime_alive(&rt, &id))
                proc_terminate(&id, STOP_TIMEOUT_MS);
        return native_cleanup(ref, err);
}

static int native_connect(const struct sandbox_ref *ref, struct ak_err *err)
{
        char path[PATH_MAX];
        run_path(ref, SOCKET_FILE, path, sizeof(path));
        return unix_connect(path, err);
}

static int native_resize(const struct sandbox_ref *ref, const struct backend_config *cfg,
                         struct ak_err *err)
{
        struct native_runtime rt;
        struct proc_ident id;
        struct cgroup_limits lim = {
            .memory_bytes = cfg->memory_mb << 20,
            .pids_max = cfg->profile->pids_max,
            .cpu_millis = (uint64_t)cfg->vcpus * 10 * cfg->profile->cpu_percent,
        };

        if (read_runtime(ref, &rt) < 0 || !runtime_alive(&rt, &id))
                return ak_err_set(err, ESRCH, "sandbox '%s' is not running", ref->name);
        if (!rt.cg_trusted)
                return ak_err_set(err, ENOTSUP, "sandbox '%s' has no cgroups to resize", ref->name);
        return cgroup_set_limits(&rt.cg, &lim, err);
}

static int native_stats(const struct sandbox_ref *ref, struct backend_stats *ret)
{
        struct native_runtime rt;
        struct proc_ident id;
        struct cgroup_stats cs = {0};
        int r;

        if (read_runtime(ref, &rt) < 0 || !runtime_alive(&rt, &id))
                return -ESRCH;
        if (!rt.cg_trusted)
                return -EOPNOTSUPP;
        r = cgroup_stats(&rt.cg, &cs);
        if (r < 0)
                return r;
        *ret = (struct backend_stats){cs.memory_bytes, cs.pids, cs.cpu_usec};
        return 0;
}

/* Removes what ephemeral runs killed before their teardown left: for each lock file nobody holds
 * any more, the cgroup it names (empty: the sandbox died with its starter) and the file. */
static void native_sweep(const char *ephemeral_dir)
{
        DIR *d = ephemeral_dir ? opendir(ephemeral_dir) : NULL;
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                size_t len = strlen(de->d_name);
                char id[64];
                struct cgroup_set cg;
                cleanup_close int fd = -1;

                if (len < 10 || strncmp(de->d_name, "run-", 4) != 0 ||
                    !streq(de->d_name + len - 5, ".lock") || len - 5 >= sizeof(id))
                        continue;
                memcpy(id, de->d_name, len - 5);
                id[len - 5] = '\0';
                if (!uuid_is_valid(id + 4))
                        continue; /* not a name this code makes: never act on it */
                fd = private_file_open_at(dirfd(d), de->d_name, O_RDWR, NULL);
                if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
                        continue; /* its run is still going */
                if (cgroup_paths(id, &cg) == 0 && cgroup_destroy(&cg, NULL) < 0)
                        continue;
                {
                        char merged[128];
                        (void)snprintf(merged, sizeof(merged), "%s.rootfs", id);
                        (void)rm_rf_at(dirfd(d), merged); /* the copy fallback's root */
                }
                (void)unlinkat(dirfd(d), de->d_name, 0);
        }
        closedir(d);
}

static int native_prepare(const char *image, struct ak_err *err)
{
        cleanup_native_image struct native_image img = NATIVE_IMAGE_INIT;

        if (streq(image, "host"))
                return 0;
        return native_image_open(image, &img, err);
}

const struct backend_ops native_backend_ops = {
    .name = "native",
    .description = "Linux namespaces, cgroups and seccomp; no daemon",
    .caps = BACKEND_CAP_ATTACH | BACKEND_CAP_RESIZE,
    .probe = native_probe,
    .start = native_start,
    .finish = native_finish,
    .stop = native_stop,
    .cleanup = native_cleanup,
    .status = native_status,
    .connect = native_connect,
    .resize = native_resize,
    .stats = native_stats,
    .sweep = native_sweep,
    .prepare = native_prepare,
};
