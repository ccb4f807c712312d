// SPDX-License-Identifier: Apache-2.0
/*
 * The `microvm` backend: each sandbox is a virtual machine with its own kernel, and our agent
 * as its init (src/agent/agent-guest.c). A hypervisor driver (struct vm_driver, microvm.h; the
 * `qemu` driver today) runs the machine; this file is the backend's ops table, its start (named
 * steps with one undo, as native-start.c) and what it does to a started machine.
 *
 * Two host processes make a running sandbox, both detached from the CLI: the hypervisor, and
 * the relay (agentkernel-agent --vm-relay) that owns the guest's one channel and turns each
 * connection to <run_dir>/agent.sock into a channel of the multiplexer (src/agent/mux.h). Both
 * are recorded in <run_dir>/runtime.json with their start times and the boot, and are started
 * with the sandbox's --uuid; a recorded pid is acted on only while proc_verify() holds all of
 * that. A starter killed before it recorded them leaves a hypervisor whose command line names
 * this run directory's socket: cleanup() finds it too (and the relay ends with it), so nothing
 * outlives `remove`.
 *
 * Host directories (the `host` image, workspace, home, volumes) are each served by a virtiofsd
 * of their own (microvm-fs.c), a third kind of recorded process, started before the hypervisor
 * and ended with it. Refused with the reason: a direct network, ports, and host directories
 * with a driver that has no virtio-fs device (Firecracker).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/client.h"
#include "backend/backends.h"
#include "backend/microvm-private.h"
#include "backend/microvm.h"
#include "backend/native-image.h"
#include "core/backend.h"
#include "core/egress.h"
#include "core/paths.h"
#include "core/private-dir.h"
#include "proc-util.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/parse-util.h"
#include "shared/random-util.h"
#include "shared/strv.h"
#include "shared/test-hook.h"

#define READY_TIMEOUT_S 120 /* boot to agent ready; under emulation on a busy host it is slow */
#define RELAY_STOP_GRACE_MS 1000
#define RELAY_NET_TIMEOUT_S 10 /* the relay's capture namespace made (proxy mode) */
#define GUEST_CMDLINE "console=ttyS0 panic=-1 quiet tsc_early_khz=2000000 -- --guest"
/* The minimal kernel's: QEMU appends its virtio_mmio.device=... to the command line, which
 * must not come after "--" (init would get them); "--guest" goes to init all the same (a word
 * without '=' or '.' the kernel does not know) */
#define GUEST_CMDLINE_DEVICES "console=ttyS0 panic=-1 quiet tsc_early_khz=2000000 --guest"

/* The driver of new machines: $AGENTKERNEL_VM_DRIVER (qemu or firecracker), else firecracker
 * when its binary is there (docs/backends.md), else qemu. */
const struct vm_driver *vm_driver_pick(void)
{
        const char *want = secure_getenv("AGENTKERNEL_VM_DRIVER");

        if (want && streq(want, vm_driver_firecracker.name))
                return &vm_driver_firecracker;
        if (want && streq(want, vm_driver_qemu.name))
                return &vm_driver_qemu;
        return vm_firecracker_present() ? &vm_driver_firecracker : &vm_driver_qemu;
}

/* The driver a recorded machine was started by (its runtime file's): stopping and checking it
 * never depends on the environment of the caller. */
static const struct vm_driver *driver_named(const char *name)
{
        return name && streq(name, vm_driver_firecracker.name) ? &vm_driver_firecracker
                                                               : &vm_driver_qemu;
}

/* runtime.json: the two processes of a running sandbox. Input from disk: accepted only as a
 * private file, and its pids only through proc_verify() (start time, boot, --uuid). */
struct vm_runtime {
        pid_t vmm_pid, relay_pid; /* 0: not recorded */
        uint64_t vmm_start, relay_start;
        char boot_id[PROC_BOOT_ID_LEN + 1];
        char uuid[37];
        char accel[8];
        const struct vm_driver *driver;
        unsigned n_fs; /* host directories: one virtiofsd each (microvm-fs.c) */
        pid_t fs_pid[VM_FS_MAX];
        uint64_t fs_start[VM_FS_MAX];
};

static void run_path(const char *run_dir, const char *file, char *out, size_t len)
{
        (void)snprintf(out, len, "%s/%s", run_dir, file);
}

static int read_runtime(const char *run_dir, const char *uuid, struct vm_runtime *rt)
{
        char path[PATH_MAX];
        cleanup_buf struct buf b = BUF_INIT;
        cleanup_json json_t *o = NULL;
        const char *s;

        memset(rt, 0, sizeof(*rt));
        run_path(run_dir, VM_FILE_RUNTIME, path, sizeof(path));
        if (private_file_read_at(AT_FDCWD, path, &b, 1u << 16, NULL) < 0 || !b.data)
                return -ENOENT;
        o = json_loadb(b.data, b.len, 0, NULL);
        if (!json_is_object(o))
                return -EINVAL;
        s = json_string_value(json_object_get(o, "uuid"));
        if (!s || !uuid_is_valid(s) || (uuid && !streq(s, uuid)))
                return -EINVAL; /* another sandbox's file: never act on it */
        (void)snprintf(rt->uuid, sizeof(rt->uuid), "%s", s);
        s = json_string_value(json_object_get(o, "boot_id"));
        if (!s || strlen(s) != PROC_BOOT_ID_LEN)
                return -EINVAL;
        memcpy(rt->boot_id, s, sizeof(rt->boot_id));
        s = json_string_value(json_object_get(o, "accel"));
        (void)snprintf(rt->accel, sizeof(rt->accel), "%s", s ? s : "");
        rt->driver = driver_named(json_string_value(json_object_get(o, "driver")));
        for (int i = 0; i < 2; i++) {
                json_t *p = json_object_get(o, i ? "relay" : "vmm");
                json_t *pid = json_object_get(p, "pid"), *start = json_object_get(p, "start_time");
                if (!p)
                        continue;
                if (!json_is_integer(pid) || json_integer_value(pid) <= 1 ||
                    json_integer_value(pid) > INT32_MAX || !json_is_integer(start) ||
                    json_integer_value(start) < 0)
                        return -EINVAL;
                *(i ? &rt->relay_pid : &rt->vmm_pid) = (pid_t)json_integer_value(pid);
                *(i ? &rt->relay_start : &rt->vmm_start) = (uint64_t)json_integer_value(start);
        }
        {
                json_t *fs = json_object_get(o, "fs"), *p;
                size_t i;
                if (fs && (!json_is_array(fs) || json_array_size(fs) > VM_FS_MAX))
                        return -EINVAL;
                json_array_foreach (fs, i, p) {
                        json_t *pid = json_object_get(p, "pid");
                        json_t *start = json_object_get(p, "start_time");
                        if (!json_is_integer(pid) || json_integer_value(pid) <= 1 ||
                            json_integer_value(pid) > INT32_MAX || !json_is_integer(start) ||
                            json_integer_value(start) < 0)
                                return -EINVAL;
                        rt->fs_pid[i] = (pid_t)json_integer_value(pid);
                        rt->fs_start[i] = (uint64_t)json_integer_value(start);
                        rt->n_fs = (unsigned)i + 1;
                }
        }
        return 0;
}

static int write_runtime(const char *run_dir, const struct vm_runtime *rt)
{
        char path[PATH_MAX];
        cleanup_json json_t *o = json_object();
        cleanup_free char *text = NULL;

        if (!o)
                return -ENOMEM;
        json_object_set_new(o, "uuid", json_string(rt->uuid));
        json_object_set_new(o, "boot_id", json_string(rt->boot_id));
        json_object_set_new(o, "driver", json_string(rt->driver->name));
        json_object_set_new(o, "accel", json_string(rt->accel));
        for (int i = 0; i < 2; i++) {
                pid_t pid = i ? rt->relay_pid : rt->vmm_pid;
                if (pid)
                        json_object_set_new(
                            o, i ? "relay" : "vmm",
                            json_pack("{s:i,s:I}", "pid", (int)pid, "start_time",
                                      (json_int_t)(i ? rt->relay_start : rt->vmm_start)));
        }
        if (rt->n_fs) {
                json_t *fs = json_array();
                for (unsigned i = 0; fs && i < rt->n_fs; i++)
                        json_array_append_new(fs,
                                              json_pack("{s:i,s:I}", "pid", (int)rt->fs_pid[i],
                                                        "start_time", (json_int_t)rt->fs_start[i]));
                if (!fs)
                        return -ENOMEM;
                json_object_set_new(o, "fs", fs);
        }
        text = json_dumps(o, JSON_INDENT(2));
        if (!text)
                return -ENOMEM;
        run_path(run_dir, VM_FILE_RUNTIME, path, sizeof(path));
        return write_file_atomic_at(AT_FDCWD, path, text, strlen(text), PRIVATE_FILE_MODE, false);
}

static struct proc_ident ident(const struct vm_runtime *rt, bool relay)
{
        return (struct proc_ident){
            .pid = relay ? rt->relay_pid : rt->vmm_pid,
            .start_time = relay ? rt->relay_start : rt->vmm_start,
            .boot_id = rt->boot_id,
            .uuid = rt->uuid,
            .uuid_opt = relay ? NULL : rt->driver->uuid_opt,
        };
}

static bool vmm_alive(const struct vm_runtime *rt)
{
        struct proc_ident id = ident(rt, false);
        return rt->vmm_pid && rt->driver->status(&id);
}

static bool relay_alive(const struct vm_runtime *rt)
{
        struct proc_ident id = ident(rt, true);
        return rt->relay_pid && proc_verify(&id);
}

/* A share's virtiofsd (its record: pid, start time, boot; it takes no --uuid). */
static struct proc_ident fs_ident(const struct vm_runtime *rt, unsigned i)
{
        return (struct proc_ident){
            .pid = rt->fs_pid[i], .start_time = rt->fs_start[i], .boot_id = rt->boot_id};
}

/* The first share whose virtiofsd is gone, or -1 when all run. */
static int fs_dead(const struct vm_runtime *rt)
{
        for (unsigned i = 0; i < rt->n_fs; i++) {
                struct proc_ident id = fs_ident(rt, i);
                if (!proc_verify(&id))
                        return (int)i;
        }
        return -1;
}

bool vm_running(const char *run_dir, const char *uuid)
{
        struct vm_runtime rt;
        return read_runtime(run_dir, uuid, &rt) == 0 && vmm_alive(&rt) && relay_alive(&rt) &&
               fs_dead(&rt) < 0;
}

/* Whether pid is a process of ours (the caller's, or as root one of the sandboxes' ids: the
 * hypervisor's drop) that a driver takes for its hypervisor of run_dir: what a starter killed
 * before its record leaves. (A relay needs no search: it exits when its hypervisor's channel
 * ends.) */
static bool is_stray(pid_t pid, const char *run_dir)
{
        char path[64];
        struct stat st;

        if (vm_fs_is_stray(pid, run_dir)) /* a share's server: of a mapped id, not ours */
                return true;
        (void)snprintf(path, sizeof(path), "/proc/%d", (int)pid);
        if (stat(path, &st) < 0 ||
            (st.st_uid != geteuid() && !(geteuid() == 0 && st.st_uid >= ID_RANGE_BASE)))
                return false;
        return vm_driver_qemu.is_stray(pid, run_dir) ||
               vm_driver_firecracker.is_stray(pid, run_dir);
}

static void kill_strays(const char *run_dir)
{
        DIR *d = opendir("/proc");
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                uint32_t pid;
                if (safe_atou32(de->d_name, &pid) < 0 || pid <= 1 || (pid_t)pid == getpid())
                        continue;
                if (is_stray((pid_t)pid, run_dir))
                        (void)kill((pid_t)pid, SIGKILL);
        }
        closedir(d);
}

/* Ends both processes (the recorded ones, checked) and whatever a killed starter left. */
void vm_kill(const char *run_dir, const char *uuid)
{
        struct vm_runtime rt;

        if (read_runtime(run_dir, uuid, &rt) == 0) {
                struct proc_ident relay = ident(&rt, true), vmm = ident(&rt, false);
                if (rt.relay_pid)
                        proc_terminate(&relay, RELAY_STOP_GRACE_MS);
                if (rt.vmm_pid)
                        rt.driver->stop(&vmm);
                for (unsigned i = 0; i < rt.n_fs; i++) { /* they end with QEMU's connection */
                        struct proc_ident fs = fs_ident(&rt, i);
                        proc_terminate(&fs, RELAY_STOP_GRACE_MS);
                }
        }
        kill_strays(run_dir);
}

/* --- the start --- */

struct vm_start {
        const struct backend_config *cfg;
        struct backend_session *ret_session;
        char run_dir[PATH_MAX];
        char cache[PATH_MAX], agent[PATH_MAX], kernel[PATH_MAX], kver[256], rootfs[PATH_MAX];
        char initrd[PATH_MAX], caps[32];
        char relay_id[16]; /* as root: the relay's uid and gid, the last of the sandbox's range */
        uint32_t vmm_id;   /* as root: the hypervisor's, the one before it */
        char **img_env;
        char *img_workdir, *img_user;
        enum vm_accel accel;
        struct vm_runtime rt;
        bool dir_made;
        int lock_fd;
        char lock_path[PATH_MAX];
        int chan_fd; /* a ready connection to the agent */
        bool net_proxy;
        int capture_fds[3]; /* proxy mode: the relay's listeners (struct egress_fds's order) */
        bool registered;    /* with the policy proxy */
        uint32_t id_base;   /* as root: the sandbox's host id range */
        struct vm_share shares[VM_FS_MAX];
        unsigned n_shares;
        char *fs_config[VM_FS_MAX + 2]; /* the guest's entries for them (NULL-terminated) */
        bool host_root;                 /* the `host` image: the root is shares[0] */
};

/* The `host` image as a share (what native shows of the host), then the workspace, the home and
 * the volumes: each a virtiofsd (microvm-fs.c). */
static int plan_shares(struct vm_start *st, struct ak_err *err)
{
        const struct backend_config *cfg = st->cfg;
        unsigned n = 0;

        if (st->host_root)
                st->shares[n++] =
                    (struct vm_share){.kind = VM_SHARE_HOST_ROOT, .dest = "/", .ro = true};
        if (cfg->workspace)
                st->shares[n++] = (struct vm_share){
                    .kind = VM_SHARE_DIR, .source = cfg->workspace, .dest = "/workspace"};
        if (cfg->home)
                st->shares[n++] = (struct vm_share){.kind = VM_SHARE_HOME,
                                                    .source = cfg->home,
                                                    .dest = "/home/user",
                                                    .ro = true,
                                                    .hide = cfg->own_dirs,
                                                    .n_hide = cfg->n_own_dirs};
        if (cfg->n_binds > VM_FS_MAX - n)
                return ak_err_set(err, E2BIG, "at most %u volumes in a microvm",
                                  (unsigned)(VM_FS_MAX - n));
        for (size_t i = 0; i < cfg->n_binds; i++)
                st->shares[n++] = (struct vm_share){.kind = VM_SHARE_DIR,
                                                    .source = cfg->binds[i].source,
                                                    .dest = cfg->binds[i].dest,
                                                    .ro = cfg->binds[i].ro,
                                                    .volume = true};
        for (unsigned i = 1; st->host_root && i < n; i++)
                st->shares[0].mkdirs[st->shares[0].n_mkdirs++] = st->shares[i].dest;
        for (unsigned i = 0; i < n; i++) {
                const struct vm_share *sh = &st->shares[i];
                int r = sh->kind == VM_SHARE_HOST_ROOT
                            ? asprintf(&st->fs_config[i], "root_fs=fs%u", i)
                            : asprintf(&st->fs_config[i], "fs=fs%u:%s:%s", i, sh->ro ? "ro" : "rw",
                                       sh->dest);
                if (r < 0) {
                        st->fs_config[i] = NULL;
                        return ak_err_oom(err);
                }
        }
        st->n_shares = n;
        return 0;
}

static int check_request(struct vm_start *st, struct ak_err *err)
{
        const struct backend_config *cfg = st->cfg;
        char why[512];

        if (!cfg->ref.uuid || !uuid_is_valid(cfg->ref.uuid))
                return ak_err_set(err, EINVAL, "sandbox '%s' has no valid uuid", cfg->ref.name);
        st->host_root = !cfg->image || streq(cfg->image, "host");
        if (cfg->network != NET_MODE_NONE && cfg->network != NET_MODE_PROXY)
                return ak_err_set(err, ENOTSUP,
                                  "the microvm backend has no direct network (--network full); "
                                  "use --network proxy, or --no-network");
        st->net_proxy = cfg->network == NET_MODE_PROXY;
        if (cfg->n_ports)
                return ak_err_set(err, ENOTSUP, "the microvm backend cannot publish ports yet");
        if (geteuid() == 0) {
                uint32_t base;
                int r = backend_id_base(cfg, &base, err);
                if (r < 0)
                        return r;
                (void)snprintf(st->relay_id, sizeof(st->relay_id), "%u", base + ID_RANGE_SIZE - 1);
                st->vmm_id = base + ID_RANGE_SIZE - 2;
                st->id_base = base;
        }
        st->rt.driver = vm_driver_pick();
        if (st->host_root || cfg->workspace || cfg->home || cfg->n_binds) {
                if (!st->rt.driver->virtiofs)
                        return ak_err_set(
                            err, ENOTSUP,
                            "the microvm backend's %s driver cannot share host directories (the "
                            "'host' image, workspace, home, volumes): %s has no virtio-fs "
                            "device; use the qemu driver (AGENTKERNEL_VM_DRIVER=qemu) or an OCI "
                            "image without host directories",
                            st->rt.driver->name, st->rt.driver->name);
                if (vm_fs_probe(why, sizeof(why)) != 1)
                        return ak_err_set(err, ENOENT, "%s", why);
                int r = plan_shares(st, err);
                if (r < 0)
                        return r;
        }
        if (st->rt.driver->probe(&st->accel, why, sizeof(why)) != 1)
                return ak_err_set(err, ENOENT, "%s", why);
        (void)snprintf(st->rt.uuid, sizeof(st->rt.uuid), "%s", cfg->ref.uuid);
        (void)snprintf(st->rt.accel, sizeof(st->rt.accel), "%s",
                       st->accel == VM_ACCEL_KVM ? "kvm" : "tcg");
        return proc_boot_id(st->rt.boot_id) < 0 ? ak_err_set(err, EIO, "no boot id in /proc") : 0;
}

/* Step: the run directory (an ephemeral run's own, below the shared one, with its lock). */
/* An ephemeral run's directory in the shared ephemeral_dir: named by the uuid's random tail (its
 * last 12 hex digits), because a unix socket's path has at most 107 bytes and the hypervisor's
 * socket lives inside. */
void vm_ephemeral_run_dir(const char *ephemeral_dir, const char *uuid, char *out, size_t len)
{
        size_t n = strlen(uuid);

        (void)snprintf(out, len, "%s/vm-%s", ephemeral_dir, uuid + (n > 12 ? n - 12 : 0));
}

int vm_run_lock(const char *ephemeral_dir, const char *uuid, int *ret_fd, char *path, size_t len,
                struct ak_err *err)
{
        char tmp[PATH_MAX];
        int fd, r;

        (void)snprintf(tmp, sizeof(tmp), "%s/.vm-%s.lock", ephemeral_dir, uuid);
        (void)snprintf(path, len, "%s/vm-%s.lock", ephemeral_dir, uuid);
        fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0 || rename(tmp, path) < 0) {
                r = ak_err_errno(err, errno, "lock '%s'", path);
                if (fd >= 0) {
                        (void)unlink(tmp);
                        close(fd);
                }
                path[0] = '\0';
                return r;
        }
        *ret_fd = fd;
        return 0;
}

static int make_run_dir(struct vm_start *st, struct ak_err *err)
{
        const struct backend_config *cfg = st->cfg;
        int r;

        if (cfg->ephemeral) {
                r = private_dir_ensure(cfg->ref.run_dir, err);
                if (r < 0)
                        return r;
                vm_ephemeral_run_dir(cfg->ref.run_dir, cfg->ref.uuid, st->run_dir,
                                     sizeof(st->run_dir));
                r = vm_run_lock(cfg->ref.run_dir, cfg->ref.uuid, &st->lock_fd, st->lock_path,
                                sizeof(st->lock_path), err);
                if (r < 0)
                        return r;
        } else {
                (void)snprintf(st->run_dir, sizeof(st->run_dir), "%s", cfg->ref.run_dir);
        }
        /* what an earlier start that was killed left here (processes included) goes first */
        vm_kill(st->run_dir, cfg->ref.uuid);
        (void)rm_rf_at(AT_FDCWD, st->run_dir);
        r = private_dir_ensure(st->run_dir, err);
        st->dir_made = r >= 0;
        return r;
}

/* Step: kernel, the image's erofs (built once), the initramfs with this start's config. */
static int boot_files(struct vm_start *st, struct ak_err *err)
{
        static char *const defaults[] = {
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME=/root",
            "HOSTNAME=agentkernel",
            NULL,
        };
        const struct backend_config *cfg = st->cfg;
        cleanup_strv char **env = NULL, **image_env = NULL;
        const char *args[16];
        size_t n = 0;
        int r;

        r = paths_agent_binary(st->agent, sizeof(st->agent), err);
        if (r >= 0) {
                /* it is the guest's /init: nothing else is there to load its libraries */
                cleanup_close int fd = open(st->agent, O_RDONLY | O_CLOEXEC);
                r = fd < 0 ? ak_err_errno(err, errno, "open '%s'", st->agent)
                           : native_image_agent_ok(fd, err);
        }
        if (r >= 0)
                r = vm_guest_kernel(st->kernel, sizeof(st->kernel), st->kver, sizeof(st->kver),
                                    err);
        if (r >= 0)
                r = vm_cache_dir(st->cache, sizeof(st->cache), err);
        if (r >= 0 && !st->host_root)
                r = vm_guest_rootfs(st->cache, cfg->image, st->rootfs, sizeof(st->rootfs),
                                    &st->img_env, &st->img_workdir, &st->img_user, err);
        if (r < 0)
                return r;
        image_env = strv_env_merge(st->img_env, cfg->env);
        if (st->net_proxy) { /* the proxy variables cooperative clients read, as native's */
                cleanup_strv char **with_proxy = strv_env_merge(defaults, egress_proxy_env);
                env = with_proxy && image_env ? strv_env_merge(with_proxy, image_env) : NULL;
        } else {
                env = image_env ? strv_env_merge(defaults, image_env) : NULL;
        }
        if (!env)
                return ak_err_oom(err);
        (void)snprintf(st->caps, sizeof(st->caps), "%llx", (unsigned long long)cfg->profile->caps);
        if (!vm_test_guest_root()) { /* else every capability (microvm.h) */
                args[n++] = "--caps";
                args[n++] = st->caps;
        }
        args[n++] = "--workdir";
        args[n++] = st->img_workdir && st->img_workdir[0] == '/' ? st->img_workdir : "/";
        if (st->img_user && *st->img_user) {
                args[n++] = "--user";
                args[n++] = st->img_user;
        }
        args[n++] = "--uuid";
        args[n++] = cfg->ref.uuid;
        args[n] = NULL;
        r = vm_guest_initrd(st->cache, st->agent, st->kver, st->run_dir, (char *const *)args, env,
                            cfg->disk_mb ? cfg->disk_mb : 1024, cfg->profile, st->rt.driver->vsock,
                            st->net_proxy, st->n_shares ? st->fs_config : NULL, err);
        run_path(st->run_dir, VM_FILE_INITRD, st->initrd, sizeof(st->initrd));
        return r;
}

/* Step: each share's virtiofsd, detached and recorded at once (before QEMU, which connects to
 * them while it starts). */
static int launch_fs(struct vm_start *st, struct ak_err *err)
{
        for (unsigned i = 0; i < st->n_shares; i++) {
                pid_t pid;
                int r = vm_fs_start(st->run_dir, i, &st->shares[i], st->id_base, &pid, err);
                if (r < 0)
                        return r;
                st->rt.fs_pid[i] = pid;
                st->rt.n_fs = i + 1;
                if (proc_start_time(pid, &st->rt.fs_start[i]) < 0) {
                        char tail[320];
                        vm_fs_log_tail(st->run_dir, i, tail, sizeof(tail));
                        return ak_err_set(err, ESRCH, "virtiofsd for '%s' exited at once%s%s",
                                          st->shares[i].source ? st->shares[i].source : "/",
                                          tail[0] ? ": " : "", tail);
                }
                r = write_runtime(st->run_dir, &st->rt);
                if (r < 0)
                        return ak_err_errno(err, r, "record the sandbox's processes");
        }
        return 0;
}

/* What a share's virtiofsd said when it died, for a failed start's message. */
static void fs_failure(const struct vm_start *st, struct ak_err *err)
{
        char tail[320];

        for (unsigned i = 0; i < st->rt.n_fs; i++) {
                struct proc_ident id = fs_ident(&st->rt, i);
                if (proc_verify(&id))
                        continue;
                vm_fs_log_tail(st->run_dir, i, tail, sizeof(tail));
                (void)ak_err_set(err, EIO, "virtiofsd for '%s' exited%s%s",
                                 st->shares[i].source ? st->shares[i].source : "the host image",
                                 tail[0] ? ": " : "", tail);
                return;
        }
}

/* Step: the hypervisor, recorded at once. */
static int launch_vmm(struct vm_start *st, struct ak_err *err)
{
        const struct backend_config *cfg = st->cfg;
        bool minimal =
            strncmp(st->kver, VM_MINIMAL_KERNEL_PREFIX, strlen(VM_MINIMAL_KERNEL_PREFIX)) == 0;
        struct vm_spec spec = {
            .run_dir = st->run_dir,
            .uuid = cfg->ref.uuid,
            .kernel = st->kernel,
            .initrd = st->initrd,
            .cmdline = minimal ? GUEST_CMDLINE_DEVICES : GUEST_CMDLINE,
            .root_image = st->host_root ? NULL : st->rootfs,
            .vcpus = cfg->vcpus ? cfg->vcpus : 1,
            .memory_mb = cfg->memory_mb ? cfg->memory_mb : 512,
            .accel = st->accel,
            .cmdline_devices = minimal,
            .run_as = st->vmm_id,
            .n_fs = st->n_shares,
        };
        int r = st->rt.driver->start(&spec, &st->rt.vmm_pid, err);

        if (r < 0) {
                fs_failure(st, err);
                return r;
        }
        if (proc_start_time(st->rt.vmm_pid, &st->rt.vmm_start) < 0)
                return ak_err_set(err, ESRCH, "%s exited at once (see '%s/%s')",
                                  st->rt.driver->name, st->run_dir, VM_FILE_CONSOLE);
        r = write_runtime(st->run_dir, &st->rt);
        return r < 0 ? ak_err_errno(err, r, "record the sandbox's processes") : 0;
}

/* Step: the relay, detached (a grandchild in a session of its own), given the guest's channel
 * and the listening socket; recorded. */
struct relay_exec {
        const struct vm_start *st;
        int link, listen_fd;
        int net_report; /* proxy mode: where the relay sends its capture's listeners, else -1 */
};

/* In the detached grandchild: the relay, given the channel as fd 3, the socket as fd 4 and in
 * proxy mode the report socket as fd 5. */
static void exec_relay(void *arg)
{
        const struct relay_exec *x = arg;
        const int keep[] = {3, 4, 5};
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        const char *argv[16];
        size_t n = 0;

        if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0 ||
            dup2(x->link, 3) < 0 || dup2(x->listen_fd, 4) < 0 ||
            (x->net_report >= 0 && dup2(x->net_report, 5) < 0))
                _exit(127);
        (void)close_all_fds_except(3, keep, x->net_report >= 0 ? 3 : 2);
        argv[n++] = "agentkernel-agent";
        argv[n++] = "--vm-relay";
        argv[n++] = "3";
        argv[n++] = "--listen-fd";
        argv[n++] = "4";
        argv[n++] = "--uuid";
        argv[n++] = x->st->cfg->ref.uuid;
        if (x->st->relay_id[0]) {
                argv[n++] = "--relay-id";
                argv[n++] = x->st->relay_id;
        }
        if (x->net_report >= 0) {
                argv[n++] = "--net-report";
                argv[n++] = "5";
        }
        argv[n] = NULL;
        execv(x->st->agent, (char *const *)argv);
}

/* Proxy mode: the relay's report, its capture's three listeners, or what failed. */
static int relay_capture(struct vm_start *st, int fd, struct ak_err *err)
{
        union {
                char buf[CMSG_SPACE(sizeof(int) * 3)];
                struct cmsghdr align;
        } cm;
        char msg[256];
        struct iovec iov = {msg, sizeof(msg) - 1};
        struct msghdr mh = {.msg_iov = &iov,
                            .msg_iovlen = 1,
                            .msg_control = cm.buf,
                            .msg_controllen = sizeof(cm.buf)};
        struct timeval tv = {RELAY_NET_TIMEOUT_S, 0};
        struct cmsghdr *c;
        ssize_t n;

        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        do
                n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        c = n > 0 ? CMSG_FIRSTHDR(&mh) : NULL;
        if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len == CMSG_LEN(sizeof(int) * 3)) {
                memcpy(st->capture_fds, CMSG_DATA(c), sizeof(int) * 3);
                if (n == 1 && msg[0] == 'L' && !(mh.msg_flags & MSG_CTRUNC))
                        return 0;
                return ak_err_set(err, EPROTO, "the relay's network report is malformed");
        }
        if (n <= 0)
                return ak_err_set(err, EIO, "the relay made no network namespace (%s)",
                                  n < 0 ? strerror(errno) : "it exited");
        msg[n] = '\0';
        for (char *p = msg; *p; p++)
                if ((unsigned char)*p < 0x20)
                        *p = ' ';
        return ak_err_set(err, EIO, "the VM's network (proxy mode) on the host: %s", msg);
}

static int launch_relay(struct vm_start *st, struct ak_err *err)
{
        char sock[PATH_MAX];
        cleanup_close int link = -1, listen_fd = -1;
        struct relay_exec x = {.st = st, .net_report = -1};
        int report[2] = {-1, -1};
        pid_t pid = 0;
        mode_t old;
        int r;

        link = st->rt.driver->connect(st->run_dir, err);
        if (link < 0)
                return link;
        run_path(st->run_dir, VM_FILE_AGENT, sock, sizeof(sock));
        old = umask(0177); /* srw------- */
        listen_fd = unix_listen(sock, 128, err);
        umask(old);
        if (listen_fd < 0)
                return listen_fd;
        x.link = link;
        x.listen_fd = listen_fd;
        if (st->net_proxy && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, report) < 0)
                return ak_err_errno(err, errno, "socketpair");
        x.net_report = report[1];
        r = proc_spawn_detached(exec_relay, &x, &pid);
        if (report[1] >= 0)
                close(report[1]);
        if (r < 0) {
                if (report[0] >= 0)
                        close(report[0]);
                return ak_err_set(err, EIO, "cannot start the relay");
        }
        st->rt.relay_pid = pid;
        r = proc_start_time(pid, &st->rt.relay_start) < 0 ? -ESRCH : 0;
        if (r == 0)
                r = write_runtime(st->run_dir, &st->rt);
        if (r < 0) {
                if (report[0] >= 0)
                        close(report[0]);
                return r == -ESRCH ? ak_err_set(err, ESRCH, "the relay exited at once")
                                   : ak_err_errno(err, r, "record the sandbox's processes");
        }
        if (report[0] < 0)
                return 0;
        r = relay_capture(st, report[0], err);
        close(report[0]);
        return r;
}

/* Step (proxy mode): the relay's capture listeners go to the user's policy proxy, as a native
 * sandbox's do (native-start.c register_egress): the sandbox's policy, the relay's pidfd (the
 * proxy forgets the sandbox when the relay exits, which it does when the machine ends) and the
 * decision log in the run directory. */
static int register_egress(struct vm_start *st, struct ak_err *err)
{
        const struct backend_config *cfg = st->cfg;
        struct egress_fds fds = {st->capture_fds[0], st->capture_fds[1], st->capture_fds[2]};
        char log[PATH_MAX];
        cleanup_close int pidfd = -1;
        uint64_t start = 0;
        int r;

        if (!st->net_proxy)
                return 0;
        pidfd = (int)syscall(SYS_pidfd_open, st->rt.relay_pid, 0);
        if (pidfd < 0 || proc_start_time(st->rt.relay_pid, &start) < 0 ||
            start != st->rt.relay_start)
                return ak_err_set(err, ESRCH, "the relay exited");
        (void)snprintf(log, sizeof(log), "%s/%s", st->run_dir, EGRESS_LOG_FILE);
        r = egress_register(
            cfg->ref.name, cfg->ref.uuid, cfg->net_policy, &fds, pidfd, log,
            &(struct egress_secrets){cfg->secret_grants, cfg->upstream_ca, cfg->ret_proxy_ca}, err);
        if (cfg->ephemeral)
                (void)unlink(log); /* nobody reads it later */
        if (r < 0)
                return r;
        st->registered = true;
        for (int i = 0; i < 3; i++) { /* the proxy holds them now */
                close(st->capture_fds[i]);
                st->capture_fds[i] = -1;
        }
        return 0;
}

/* The last lines of the guest's console, for a message. */
static void console_tail(const char *run_dir, char *out, size_t len)
{
        char path[PATH_MAX];
        cleanup_buf struct buf b = BUF_INIT;
        const char *s;

        out[0] = '\0';
        run_path(run_dir, VM_FILE_CONSOLE, path, sizeof(path));
        if (read_file_at(AT_FDCWD, path, &b, 1u << 20) < 0 || !b.data)
                return;
        while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
                b.data[--b.len] = '\0';
        s = b.data + (b.len > 300 ? b.len - 300 : 0);
        (void)snprintf(out, len, "%s", s);
        for (char *c = out; *c; c++)
                if (*c == '\n' || *c == '\r')
                        *c = ' ';
}

/* While the guest boots: a child that ends the hypervisor as soon as a share's virtiofsd is gone
 * (the guest would wait for that device forever; with QEMU gone the relay's channel ends and the
 * HELLO fails at once). 0: none needed. */
static pid_t fs_watchdog(const struct vm_start *st)
{
        pid_t pid;

        if (!st->rt.n_fs)
                return 0;
        pid = fork();
        if (pid != 0)
                return pid < 0 ? 0 : pid;
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        for (;;) {
                struct proc_ident vmm = ident(&st->rt, false);
                if (!proc_verify(&vmm))
                        _exit(0);
                if (fs_dead(&st->rt) >= 0) {
                        st->rt.driver->stop(&vmm);
                        _exit(0);
                }
                usleep(200 * 1000);
        }
}

/* Step: boot to agent ready: a HELLO through the relay is answered by the guest's agent. */
static int wait_ready(struct vm_start *st, struct ak_err *err)
{
        char sock[PATH_MAX], tail[320];
        struct timeval tv = {READY_TIMEOUT_S, 0};
        cleanup_close int fd = -1;
        int64_t pid;
        struct ak_err e = {0};
        pid_t watchdog;
        int r;

        run_path(st->run_dir, VM_FILE_AGENT, sock, sizeof(sock));
        fd = unix_connect(sock, err);
        if (fd < 0)
                return fd;
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        watchdog = fs_watchdog(st);
        r = agent_hello(fd, &pid, &e);
        if (watchdog > 0) {
                (void)kill(watchdog, SIGKILL);
                while (waitpid(watchdog, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        if (r >= 0) {
                tv.tv_sec = 0;
                (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                st->chan_fd = TAKE_FD(fd);
                return 0;
        }
        console_tail(st->run_dir, tail, sizeof(tail));
        r = ak_err_set(err, EIO, "the guest's agent did not answer (%s)%s%s", ak_err_msg(&e),
                       tail[0] ? "; its console ends: " : "", tail);
        fs_failure(st, err);
        return r;
}

static int hand_over(struct vm_start *st, struct ak_err *err)
{
        struct vm_session *s;

        if (!st->cfg->ephemeral)
                return 0;
        s = calloc(1, sizeof(*s));
        if (!s)
                return ak_err_oom(err);
        (void)snprintf(s->run_dir, sizeof(s->run_dir), "%s", st->run_dir);
        (void)snprintf(s->uuid, sizeof(s->uuid), "%s", st->cfg->ref.uuid);
        (void)snprintf(s->lock_path, sizeof(s->lock_path), "%s", st->lock_path);
        s->lock_fd = st->lock_fd;
        st->lock_fd = -1;
        st->ret_session->chan_fd = st->chan_fd;
        st->chan_fd = -1;
        st->ret_session->priv = s;
        return 0;
}

static void start_undo(struct vm_start *st)
{
        if (st->registered)
                (void)egress_unregister(st->cfg->ref.name, NULL);
        if (st->dir_made) {
                vm_kill(st->run_dir, st->cfg->ref.uuid);
                (void)rm_rf_at(AT_FDCWD, st->run_dir);
        }
        if (st->lock_fd >= 0) {
                (void)unlink(st->lock_path);
                close(st->lock_fd);
                st->lock_fd = -1;
        }
}

static const struct vm_start_step {
        int (*run)(struct vm_start *st, struct ak_err *err);
        const char *point;
} start_steps[] = {
    {check_request, NULL},
    {make_run_dir, "microvm-run-dir"},
    {boot_files, "microvm-boot-files"},
    {launch_fs, "microvm-fs-started"},
    {launch_vmm, "microvm-vmm-started"},
    {launch_relay, "microvm-relay-started"},
    {register_egress, NULL},
    {wait_ready, "microvm-ready"},
    {hand_over, NULL},
};

int vm_boot(const struct backend_config *cfg, struct backend_session *ret_session,
            struct ak_err *err)
{
        struct vm_start st = {.cfg = cfg,
                              .ret_session = ret_session,
                              .lock_fd = -1,
                              .chan_fd = -1,
                              .capture_fds = {-1, -1, -1}};
        int r = 0;

        for (size_t i = 0; i < ARRAY_SIZE(start_steps) && r >= 0; i++) {
                r = start_steps[i].run(&st, err);
                if (r >= 0 && start_steps[i].point && test_hook(start_steps[i].point) < 0)
                        r = ak_err_set(err, EIO, "injected failure at '%s'", start_steps[i].point);
        }
        if (r < 0)
                start_undo(&st);
        if (st.chan_fd >= 0)
                close(st.chan_fd);
        for (int i = 0; i < 3; i++)
                if (st.capture_fds[i] >= 0)
                        close(st.capture_fds[i]);
        strv_free(st.img_env);
        for (unsigned i = 0; i < ARRAY_SIZE(st.fs_config); i++)
                free(st.fs_config[i]);
        free(st.img_workdir);
        free(st.img_user);
        if (r < 0)
                return err && err->code ? -err->code : r;
        return 0;
}

/* A pooled ephemeral run takes a machine booted for its configuration when there is one (else
 * boots its own), and has the pool topped up behind it (microvm-pool.c). */
static int microvm_start(const struct backend_config *cfg, struct backend_session *ret_session,
                         struct ak_err *err)
{
        char key[VM_POOL_KEY_LEN + 1];

        int r;

        if (!vm_pool_usable(cfg) || vm_pool_key(cfg, key) < 0)
                return vm_boot(cfg, ret_session, err);
        /* the refill boots after this run's own boot, not beside it */
        r = vm_pool_claim(cfg, key, ret_session);
        if (r < 0)
                r = vm_boot(cfg, ret_session, err);
        if (r >= 0)
                vm_pool_refill(cfg, key);
        return r;
}

/* --- the ops on a started machine --- */

static int microvm_probe(char *why, size_t why_len)
{
        enum vm_accel a;
        return vm_driver_pick()->probe(&a, why, why_len);
}

static int microvm_finish(struct backend_session *bs)
{
        struct vm_session *s = bs->priv;

        if (!s)
                return 0;
        vm_kill(s->run_dir, s->uuid);
        (void)rm_rf_at(AT_FDCWD, s->run_dir);
        if (s->lock_fd >= 0) {
                (void)unlink(s->lock_path);
                close(s->lock_fd);
        }
        free(s);
        bs->priv = NULL;
        return 0;
}

/* The paused marker (VM_FILE_PAUSED) names the hypervisor process it was written for ("<pid>
 * <start time>"): input from disk, believed only as a private file of ours naming the machine's
 * current, recorded hypervisor. */
static bool paused_marker(const char *run_dir, const struct vm_runtime *rt)
{
        char path[PATH_MAX], want[64];
        cleanup_buf struct buf b = BUF_INIT;

        run_path(run_dir, VM_FILE_PAUSED, path, sizeof(path));
        if (private_file_read_at(AT_FDCWD, path, &b, 64, NULL) < 0 || !b.data)
                return false;
        (void)snprintf(want, sizeof(want), "%d %llu\n", (int)rt->vmm_pid,
                       (unsigned long long)rt->vmm_start);
        return rt->vmm_pid && streq(b.data, want);
}

bool vm_paused(const char *run_dir, const char *uuid)
{
        struct vm_runtime rt;
        return read_runtime(run_dir, uuid, &rt) == 0 && paused_marker(run_dir, &rt);
}

static int microvm_status(const struct sandbox_ref *ref, struct backend_status *ret)
{
        struct vm_runtime rt;

        if (!ref->run_dir || read_runtime(ref->run_dir, ref->uuid, &rt) < 0)
                return 0;
        if (vmm_alive(&rt) && relay_alive(&rt) && fs_dead(&rt) < 0) {
                ret->running = true;
                ret->pid = rt.vmm_pid;
                ret->paused = paused_marker(ref->run_dir, &rt);
        }
        return 0;
}

/* The driver's pause (QMP stop/cont, PATCH /vm) of the recorded, running machine, then the
 * marker status() reads: written after a pause took (undone when it cannot be written), removed
 * after a resume took. */
static int microvm_pause(const struct sandbox_ref *ref, bool pause, struct ak_err *err)
{
        char path[PATH_MAX], text[64];
        struct vm_runtime rt;
        int r;

        if (!ref->run_dir || read_runtime(ref->run_dir, ref->uuid, &rt) < 0 || !vmm_alive(&rt))
                return ak_err_set(err, ESRCH, "the sandbox's virtual machine is not running");
        run_path(ref->run_dir, VM_FILE_PAUSED, path, sizeof(path));
        r = rt.driver->pause(ref->run_dir, pause, err);
        if (r < 0)
                return r;
        if (!pause) {
                if (unlink(path) < 0 && errno != ENOENT)
                        return ak_err_errno(err, errno, "remove '%s'", path);
                return 0;
        }
        (void)snprintf(text, sizeof(text), "%d %llu\n", (int)rt.vmm_pid,
                       (unsigned long long)rt.vmm_start);
        r = write_file_atomic_at(AT_FDCWD, path, text, strlen(text), PRIVATE_FILE_MODE, false);
        if (r < 0) {
                (void)rt.driver->pause(ref->run_dir, false, NULL);
                return ak_err_errno(err, r, "write '%s'", path);
        }
        return 0;
}

static int microvm_cleanup(const struct sandbox_ref *ref, struct ak_err *err)
{
        int r;

        if (!ref->run_dir)
                return 0;
        vm_kill(ref->run_dir, ref->uuid);
        r = rm_rf_at(AT_FDCWD, ref->run_dir);
        return r < 0 && r != -ENOENT ? ak_err_errno(err, r, "remove '%s'", ref->run_dir) : 0;
}

static int microvm_stop(const struct sandbox_ref *ref, struct ak_err *err)
{
        return microvm_cleanup(ref, err);
}

static int microvm_connect(const struct sandbox_ref *ref, struct ak_err *err)
{
        char path[PATH_MAX];
        run_path(ref->run_dir, VM_FILE_AGENT, path, sizeof(path));
        return unix_connect(path, err);
}

/* The host's view (hypervisor and relay, microvm-stats.c), read between two checks that both
 * are still this machine's; then the guest's, from its agent (a guest that does not answer
 * leaves pids 0 and guest false). */
static int microvm_stats(const struct sandbox_ref *ref, struct backend_stats *ret)
{
        struct vm_runtime rt;
        struct backend_stats st = {0};
        char sock[PATH_MAX];

        pid_t pids[2 + VM_FS_MAX];

        if (!ref->run_dir || read_runtime(ref->run_dir, ref->uuid, &rt) < 0 || !vmm_alive(&rt) ||
            !relay_alive(&rt) || fs_dead(&rt) >= 0)
                return -ESRCH;
        /* the machine's host processes: the hypervisor, the relay, each share's virtiofsd */
        pids[0] = rt.vmm_pid;
        pids[1] = rt.relay_pid;
        for (unsigned i = 0; i < rt.n_fs; i++)
                pids[2 + i] = rt.fs_pid[i];
        vm_host_stats(pids, 2 + rt.n_fs, &st);
        if (!vmm_alive(&rt) || !relay_alive(&rt) || fs_dead(&rt) >= 0)
                return -ESRCH;
        run_path(ref->run_dir, VM_FILE_AGENT, sock, sizeof(sock));
        (void)vm_guest_stats(sock, &st);
        *ret = st;
        return 0;
}

static int microvm_prepare(const char *image, struct ak_err *err)
{
        char cache[PATH_MAX], rootfs[PATH_MAX];
        cleanup_strv char **env = NULL;
        cleanup_free char *workdir = NULL, *user = NULL;
        int r;

        if (!image || streq(image, "host")) {
                /* the host's files reach the guest through virtiofsd (microvm-fs.c) */
                if (!vm_driver_pick()->virtiofs)
                        return ak_err_set(err, ENOTSUP,
                                          "the microvm backend's %s driver cannot run the 'host' "
                                          "image (it has no virtio-fs device to share the host's "
                                          "files); use the qemu driver "
                                          "(AGENTKERNEL_VM_DRIVER=qemu) or name an OCI image",
                                          vm_driver_pick()->name);
                return vm_fs_probe(cache, sizeof(cache)) == 1
                           ? 0
                           : ak_err_set(err, ENOENT, "%s", cache);
        }
        r = vm_cache_dir(cache, sizeof(cache), err);
        if (r < 0)
                return r;
        return vm_guest_rootfs(cache, image, rootfs, sizeof(rootfs), &env, &workdir, &user, err);
}

/* Says what the VM is, and when its processes died under a record: that it crashed. */
static void microvm_describe(const struct sandbox_ref *ref, bool running, json_t *info)
{
        struct vm_runtime rt;
        json_t *vm;
        char tail[320];

        if (!ref->run_dir || read_runtime(ref->run_dir, ref->uuid, &rt) < 0)
                return;
        vm = json_object();
        if (!vm)
                return;
        json_object_set_new(vm, "driver", json_string(rt.driver->name));
        json_object_set_new(vm, "accel", json_string(rt.accel));
        {
                char boot[PROC_BOOT_ID_LEN + 1];
                if (!running && proc_boot_id(boot) == 0 && !streq(boot, rt.boot_id)) {
                        /* its processes ended with the host's last boot: nothing crashed */
                        json_object_set_new(vm, "state", json_string("stopped"));
                        json_object_set_new(vm, "reason", json_string("the host rebooted"));
                        json_object_set_new(info, "vm", vm);
                        return;
                }
        }
        if (!running && rt.vmm_pid) {
                bool vmm = vmm_alive(&rt);
                int fs = fs_dead(&rt);
                json_object_set_new(vm, "state", json_string("crashed"));
                json_object_set_new(
                    vm, "reason",
                    json_string(!vmm      ? "its hypervisor process exited"
                                : fs >= 0 ? "its file server (virtiofsd) of a host directory exited"
                                          : "its relay is gone"));
                console_tail(ref->run_dir, tail, sizeof(tail));
                if (tail[0])
                        json_object_set_new(vm, "console", json_string(tail));
        } else {
                json_object_set_new(vm, "state",
                                    json_string(!running                           ? "stopped"
                                                : paused_marker(ref->run_dir, &rt) ? "paused"
                                                                                   : "running"));
        }
        json_object_set_new(info, "vm", vm);
}

/* Ephemeral runs whose starter was killed: each lock nobody holds names a VM to end. */
static void microvm_sweep(const char *ephemeral_dir)
{
        DIR *d = ephemeral_dir ? opendir(ephemeral_dir) : NULL;
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                size_t len = strlen(de->d_name);
                char uuid[37], run_dir[PATH_MAX];
                cleanup_close int fd = -1;

                if (len != 3 + 36 + 5 || strncmp(de->d_name, "vm-", 3) != 0 ||
                    !streq(de->d_name + len - 5, ".lock"))
                        continue;
                memcpy(uuid, de->d_name + 3, 36);
                uuid[36] = '\0';
                if (!uuid_is_valid(uuid))
                        continue;
                fd = private_file_open_at(dirfd(d), de->d_name, O_RDWR, NULL);
                if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0)
                        continue; /* its run is still going */
                vm_ephemeral_run_dir(ephemeral_dir, uuid, run_dir, sizeof(run_dir));
                vm_kill(run_dir, uuid);
                (void)rm_rf_at(AT_FDCWD, run_dir);
                (void)unlinkat(dirfd(d), de->d_name, 0);
        }
        closedir(d);
}

const struct backend_ops microvm_backend_ops = {
    .name = "microvm",
    .description = "a virtual machine per sandbox (QEMU microvm), our agent as its init",
    .caps = BACKEND_CAP_ATTACH | BACKEND_CAP_PROXY,
    .probe = microvm_probe,
    .start = microvm_start,
    .finish = microvm_finish,
    .stop = microvm_stop,
    .cleanup = microvm_cleanup,
    .status = microvm_status,
    .pause = microvm_pause,
    .connect = microvm_connect,
    .stats = microvm_stats,
    .prepare = microvm_prepare,
    .describe = microvm_describe,
    .sweep = microvm_sweep,
    .pool_clear = vm_pool_clear,
};
