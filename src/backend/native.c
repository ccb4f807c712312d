// SPDX-License-Identifier: Apache-2.0
/*
 * The `native` backend: Linux namespaces, cgroups and seccomp, no daemon. It provisions the
 * boundary (src/runtime/) and hands back the agent's channel; it never runs commands itself.
 * This file is its ops table and what it does to a started sandbox; the start is
 * native-start.c.
 *
 * A running sandbox is described by <run_dir>/runtime.json (pid, start time and boot of its
 * init, its cgroups). The pid is trusted only while /proc/<pid>/stat shows the same start time,
 * so a recycled pid is never signalled. Whatever a crashed starter left behind (cgroups, run dir)
 * is found from the sandbox's uuid and removed by cleanup().
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
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/backends.h"
#include "backend/native-image.h"
#include "backend/native.h"
#include "core/backend.h"
#include "core/private-dir.h"
#include "proc-util.h"
#include "runtime/cgroup.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/dir-cache.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/random-util.h"

#define STOP_TIMEOUT_MS 5000
#define RUNTIME_FILE "runtime.json"

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

void native_run_path(const struct sandbox_ref *ref, const char *file, char *out, size_t len)
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
        const char *boot, *id, *rest;
        size_t i;
        int at;

        memset(rt, 0, sizeof(*rt));
        native_run_path(ref, RUNTIME_FILE, path, sizeof(path));
        at = dir_cache_at(path, 2, &rest); /* list: a kept fd of the run directories' parent */
        if (private_file_read_at(at, rest, &b, 1u << 16, NULL) < 0 || !b.data)
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
                memcpy(rt->cg.dirs[i], json_string_value(d), strlen(json_string_value(d)) + 1);
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
        native_run_path(ref, RUNTIME_FILE, path, sizeof(path));
        return write_file_atomic_at(AT_FDCWD, path, text, strlen(text), PRIVATE_FILE_MODE, false);
}

int native_record(const struct sandbox_ref *ref, pid_t pid, const struct cgroup_set *cg)
{
        struct native_runtime rt = {.pid = pid, .cg = *cg};
        int r;

        r = proc_start_time(pid, &rt.start_time);
        if (r >= 0)
                r = proc_boot_id(rt.boot_id);
        if (r >= 0)
                r = write_runtime(ref, &rt);
        return r;
}

int native_pooled_init(const char *run_dir, const char *tail, char uuid[37], pid_t *ret_pid,
                       int *ret_pidfd)
{
        struct sandbox_ref ref = {"pool", NULL, run_dir};
        struct native_runtime rt;
        struct proc_ident id;
        size_t n = strlen(tail);
        int pidfd;

        uuid[0] = '\0';
        *ret_pidfd = -1;
        if (read_runtime(&ref, &rt) < 0 || !rt.uuid[0])
                return -ENOENT;
        if (n > 36 || !streq(rt.uuid + 36 - n, tail))
                return -EINVAL; /* another sandbox's record under this entry's name */
        memcpy(uuid, rt.uuid, 37);
        /* checked once, with the pidfd held: it pins whichever process had the pid, and the
         * check then says it is the sandbox's init (a reused pid fails its start time) */
        pidfd = (int)syscall(SYS_pidfd_open, rt.pid, 0);
        if (pidfd < 0)
                return -errno;
        if (!runtime_alive(&rt, &id)) {
                close(pidfd);
                return -ESRCH;
        }
        *ret_pid = rt.pid;
        *ret_pidfd = pidfd;
        return 0;
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

static int native_finish(struct backend_session *bs)
{
        struct native_session *s = bs->priv;

        if (!s)
                return 0;
        if (s->pooled)
                return native_pool_finish(bs);
        /* Killing the init of the pid namespace kills everything in it. */
        if (s->pidfd >= 0)
                (void)syscall(SYS_pidfd_send_signal, s->pidfd, SIGKILL, NULL, 0);
        else
                (void)kill(s->pid, SIGKILL);
        if (bs->detach && native_teardown_detach(s) == 0) {
                /* the worker holds its own copies, and unlinks the lock file when done */
                int *fds[] = {&s->pidfd, &s->sync_fd, &s->image_lock_fd, &s->lock_fd};
                for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
                        if (*fds[i] >= 0)
                                close(*fds[i]);
                free(s);
                bs->priv = NULL;
                return 0;
        }
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
                ret->paused = rt.cg_trusted && cgroup_frozen(&rt.cg);
        }
        return 0;
}

int native_cleanup(const struct sandbox_ref *ref, struct ak_err *err)
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
        if (read_runtime(ref, &rt) == 0 && runtime_alive(&rt, &id)) {
                if (rt.cg_trusted) /* a paused agent would not hear the SIGTERM */
                        (void)cgroup_freeze(&rt.cg, false, NULL);
                proc_terminate(&id, STOP_TIMEOUT_MS);
        }
        return native_cleanup(ref, err);
}

/* The cgroup freezer: only of cgroups that are this sandbox's own (read_runtime's check). */
static int native_pause(const struct sandbox_ref *ref, bool pause, struct ak_err *err)
{
        struct native_runtime rt;
        struct proc_ident id;

        if (read_runtime(ref, &rt) < 0 || !runtime_alive(&rt, &id))
                return ak_err_set(err, ESRCH, "sandbox '%s' is not running", ref->name);
        if (!rt.cg_trusted)
                return ak_err_set(err, ENOTSUP,
                                  "sandbox '%s' has no cgroups (started where cgroups were not "
                                  "usable): it cannot be paused",
                                  ref->name);
        return cgroup_freeze(&rt.cg, pause, err);
}

static int native_connect(const struct sandbox_ref *ref, struct ak_err *err)
{
        char path[PATH_MAX];
        native_run_path(ref, NATIVE_SOCKET_FILE, path, sizeof(path));
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
        native_pool_sweep(dirfd(d), ephemeral_dir);
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
    .caps = BACKEND_CAP_ATTACH | BACKEND_CAP_RESIZE | BACKEND_CAP_PROXY,
    .probe = native_probe,
    .start = native_start,
    .finish = native_finish,
    .stop = native_stop,
    .cleanup = native_cleanup,
    .status = native_status,
    .connect = native_connect,
    .resize = native_resize,
    .pause = native_pause,
    .stats = native_stats,
    .sweep = native_sweep,
    .prepare = native_prepare,
    .pool_clear = native_pool_clear,
    .pool_list = native_pool_list,
};
