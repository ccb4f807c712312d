// SPDX-License-Identifier: Apache-2.0
/*
 * The `docker` and `podman` backends: a sandbox is a container made through the Docker Engine
 * API (Podman serves the same API), with our static agent (bind-mounted read-only) as its
 * entrypoint. Exec, files, attach and detached commands then go to the agent exactly as with
 * `native`; the engine is used only to create, inspect, update and remove containers. Every
 * container is hardened, not only pooled ones (upstream Q1): no capabilities beyond the
 * profile's, no-new-privileges, our seccomp profile, pids/memory/CPU limits, read-only root when
 * the profile says, network none or bridge. A container is named agentkernel-<name> and labelled
 * with the sandbox's uuid; an operation never touches a container whose label does not match (a
 * name clash is refused).
 *
 * Nothing a container can write is trusted: no host directory of ours is bound into it (the
 * agent's socket and state live in a container tmpfs that the host detaches from the container's
 * tree once the agent holds it, engine/container.c), the agent is reached through its own process
 * and must prove it serves this sandbox, and the runtime record, locks and pool live only on the
 * host. Host directories (workspace, volumes) are attached by the host as idmapped mounts: the
 * container's root writes there as the directory's owner, never as host root. Every other place
 * a container can write is bounded (see "the disk" in engine-config.c), and info says how.
 *
 * This file is the ops and what a start finds out; engine-config.c makes a container's
 * configuration, engine-pool.c keeps the warm pool (engine-private.h is what they share).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/backends.h"
#include "backend/engine-private.h"
#include "backend/port-relay.h"
#include "core/backend.h"
#include "core/egress.h"
#include "core/paths.h"
#include "core/volume.h"
#include "engine/container.h"
#include "engine/engine.h"
#include "runtime/net-capture.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/random-util.h"
#include "shared/test-hook.h"

#define AGENT_WAIT_MS 15000
#define STOP_GRACE_S 5
#define DISK_FILE "engine-disk.json" /* what bounds a kept sandbox's disk (host only) */
#define DISK_FILE_MAX 16384

static void container_name(const struct sandbox_ref *ref, bool ephemeral, char *out, size_t len)
{
        if (ephemeral)
                (void)snprintf(out, len, "agentkernel-run-%.8s%.4s", ref->uuid + 24, ref->uuid);
        else
                (void)snprintf(out, len, "agentkernel-%s", ref->name);
}

/* The container, if it is this sandbox's: 1 found (ret_running, ret_pid), 0 none, <0 error
 * (a container of that name that belongs to something else is an error). */
int engine_backend_inspect(const struct engine *e, const char *name, const char *uuid,
                           bool *ret_running, pid_t *ret_pid, char *ret_driver, size_t driver_len,
                           struct ak_err *err)
{
        cleanup_json json_t *j = NULL;
        char path[256];
        const char *owner;
        int st;

        (void)snprintf(path, sizeof(path), "/containers/%s/json", name);
        st = engine_call(e, "GET", path, NULL, &j, err);
        if (st == 404) {
                ak_err_clear(err);
                return 0;
        }
        if (st < 0 || st >= 400)
                return st < 0 ? st : -EIO;
        owner = json_string_value(
            json_object_get(json_object_get(json_object_get(j, "Config"), "Labels"), LABEL_UUID));
        if (uuid && (!owner || !streq(owner, uuid)))
                return ak_err_set(err, EEXIST,
                                  "container '%s' exists and is not this sandbox's (labels "
                                  "differ); remove it, or pick another sandbox name",
                                  name);
        if (ret_running)
                *ret_running =
                    json_is_true(json_object_get(json_object_get(j, "State"), "Running"));
        if (ret_pid)
                *ret_pid =
                    (pid_t)json_integer_value(json_object_get(json_object_get(j, "State"), "Pid"));
        if (ret_driver) {
                const char *d =
                    json_string_value(json_object_get(json_object_get(j, "GraphDriver"), "Name"));
                (void)snprintf(ret_driver, driver_len, "%s", d ? d : "");
        }
        return 1;
}

static int inspect(const struct engine *e, const char *name, const char *uuid, bool *ret_running,
                   pid_t *ret_pid, struct ak_err *err)
{
        return engine_backend_inspect(e, name, uuid, ret_running, ret_pid, NULL, 0, err);
}

int engine_backend_remove(const struct engine *e, const char *name, const char *uuid, bool graceful,
                          struct ak_err *err)
{
        char path[256];
        int r = inspect(e, name, uuid, NULL, NULL, err);

        if (r <= 0)
                return r;
        if (graceful) {
                (void)snprintf(path, sizeof(path), "/containers/%s/stop?t=%d", name, STOP_GRACE_S);
                (void)engine_call(e, "POST", path, NULL, NULL, NULL);
        }
        (void)snprintf(path, sizeof(path), "/containers/%s?force=1&v=1", name);
        r = engine_call(e, "DELETE", path, NULL, NULL, err);
        if (r == 404)
                r = 0;
        return r < 0 ? r : r >= 400 ? -err->code : 0;
}

/* Pulls image through the engine unless it has it. */
int engine_backend_ensure_image(const struct engine *e, const char *image, json_t **ret_info,
                                struct ak_err *err)
{
        char path[1024];
        const char *at, *colon, *slash;
        int st;

        (void)snprintf(path, sizeof(path), "/images/%s/json", image);
        st = engine_call(e, "GET", path, NULL, ret_info, err);
        if (st == 200)
                return 0;
        if (st != 404)
                return st < 0 ? st : -err->code;
        json_decref(*ret_info); /* the 404's message */
        *ret_info = NULL;
        ak_err_clear(err);
        /* fromImage=name&tag=tag (a digest stays in fromImage) */
        at = strchr(image, '@');
        slash = strrchr(image, '/');
        colon = strrchr(slash ? slash : image, ':');
        if (!at && colon)
                (void)snprintf(path, sizeof(path), "/images/create?fromImage=%.*s&tag=%s",
                               (int)(colon - image), image, colon + 1);
        else
                (void)snprintf(path, sizeof(path), "/images/create?fromImage=%s%s", image,
                               at ? "" : "&tag=latest");
        st = engine_call_stream(e, "POST", path, err);
        if (st < 0 || st >= 400)
                return ak_err_prefix(err, "%s cannot pull image '%s'", engine_name(e->kind), image);
        (void)snprintf(path, sizeof(path), "/images/%s/json", image);
        st = engine_call(e, "GET", path, NULL, ret_info, err);
        return st == 200 ? 0 : st < 0 ? st : -err->code;
}

/* Makes dir (under a hidden name, locked, then renamed into place: a sweep never sees it
 * unlocked while its run lives) and returns the held lock. */
static int lock_run_dir(const char *dir, struct ak_err *err)
{
        char tmp[PATH_MAX], lock[PATH_MAX + 8];
        const char *base = strrchr(dir, '/');
        int fd;

        (void)snprintf(tmp, sizeof(tmp), "%.*s", (int)(base - dir), dir);
        fd = mkdir_p(tmp, 0700);
        if (fd < 0)
                return ak_err_errno(err, -fd, "create '%s'", tmp);
        (void)snprintf(tmp, sizeof(tmp), "%.*s/.%s", (int)(base - dir), dir, base + 1);
        if (mkdir(tmp, 0700) < 0)
                return ak_err_errno(err, errno, "create '%s'", tmp);
        (void)snprintf(lock, sizeof(lock), "%s/lock", tmp);
        fd = open(lock, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0 || rename(tmp, dir) < 0) {
                int e = errno;
                if (fd >= 0)
                        close(fd);
                (void)rm_rf_at(AT_FDCWD, tmp);
                return ak_err_errno(err, e, "lock '%s'", dir);
        }
        return fd;
}

/* Removes what killed ephemeral runs of this engine left: each unlocked <kind>-agentkernel-run-*
 * directory, and its container. Opens the engine only when there is something to remove. */
static void engine_sweep(enum engine_kind kind, const char *ephemeral_dir)
{
        DIR *d = ephemeral_dir ? opendir(ephemeral_dir) : NULL;
        const char *prefix = engine_name(kind);
        size_t pl = strlen(prefix);
        struct engine e;
        bool opened = false;
        struct dirent *de;

        if (!d)
                return;
        while ((de = readdir(d))) {
                char lock[NAME_MAX + 8];
                cleanup_close int fd = -1;
                /* <kind>-agentkernel-run-* and claimed <kind>-agentkernel-pool-* */
                if (strncmp(de->d_name, prefix, pl) != 0 ||
                    strncmp(de->d_name + pl, "-agentkernel-", 13) != 0)
                        continue;
                (void)snprintf(lock, sizeof(lock), "%s/lock", de->d_name);
                fd = openat(dirfd(d), lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
                if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0)
                        continue; /* its run is alive */
                if (!opened && engine_open(kind, &e, NULL) < 0)
                        break; /* the engine is gone: its containers with it, or later */
                opened = true;
                if (engine_backend_remove(&e, de->d_name + pl + 1, NULL, false, NULL) == 0)
                        (void)rm_rf_at(dirfd(d), de->d_name);
        }
        closedir(d);
}

/* After the start: the agent reached, checked and made private, the host directories attached
 * (when inject), the disk bounded (vols: the image's volumes to uncover), as container_settle
 * does. Returns a connected, identified fd, fills *ret_rt and the read-only mounts and storage
 * driver of *out. */
int engine_backend_settle(const struct engine *e, const char *name, const char *uuid,
                          const struct backend_config *cfg, bool inject, uint32_t id_base,
                          const struct image_volumes *vols, struct container_rt *ret_rt,
                          struct disk_outcome *out, struct ak_err *err)
{
        struct container_mount mounts[1 + VOLUMES_PER_SANDBOX_MAX];
        size_t n_mounts = engine_config_host_mounts(cfg, id_base, mounts, ARRAY_SIZE(mounts));
        struct container_disk disk = {
            .scratch_bytes = cfg->disk_mb << 20,
            .uncover = vols ? vols->ptr : NULL,
            .n_uncover = vols ? vols->n : 0,
        };
        bool running = false;
        pid_t pid = 0;
        uid_t root_kuid = 0;
        int r = engine_backend_inspect(e, name, uuid, &running, &pid, out->driver,
                                       sizeof(out->driver), err),
            fd;

        if (r == 0 || (r > 0 && (!running || pid <= 0)))
                return ak_err_set(err, EIO,
                                  "container '%s' exited before its agent started (is the "
                                  "image's platform this machine's?)",
                                  name);
        if (r < 0)
                return r;
        fd = container_settle(pid, uuid, mounts, n_mounts, inject, &disk, AGENT_WAIT_MS, ret_rt,
                              &root_kuid, &out->ro, err);
        if (fd < 0)
                return ak_err_prefix(err, "container '%s'", name);
        if (n_mounts && !inject && root_kuid == 0) {
                close(fd);
                return ak_err_set(err, EPERM,
                                  "the %s engine runs containers as host root, and only root can "
                                  "give them host directories safely (idmapped): files the "
                                  "sandbox wrote to '%s' would be owned by root; run agentkernel "
                                  "as root, use a rootless engine of this user (podman system "
                                  "service as this user), or the native backend",
                                  engine_name(e->kind), mounts[0].source);
        }
        return fd;
}

/* info's disk_limit of a started container: what bounds each of its writable places. */
static json_t *disk_json(enum engine_kind kind, const struct backend_config *cfg,
                         const struct image_volumes *vols, const struct disk_outcome *o)
{
        static const char *const scratch[] = CONTAINER_SCRATCH_PLACES;
        json_t *d = json_object(), *root, *places = json_array(), *ro = json_array();
        char why[768];

        if (o->root < 0) {
                root = json_pack("{s:s,s:s}", "enforced", "read-only", "why",
                                 "the profile's read-only root");
        } else if (o->root > 0) {
                root = json_pack("{s:s,s:I,s:s}", "enforced", "storage driver quota", "mb",
                                 (json_int_t)cfg->disk_mb, "driver", o->driver);
        } else {
                (void)snprintf(why, sizeof(why),
                               "the %s engine's storage driver (%s) has no per-container size "
                               "limit here ('%s'): the root's writes go to the engine's storage "
                               "without a limit",
                               engine_name(kind), o->driver[0] ? o->driver : "?", o->why);
                root =
                    json_pack("{s:s,s:s,s:s}", "enforced", "none", "driver", o->driver, "why", why);
        }
        json_object_set_new(d, "root", root);
        for (size_t i = 0; i < ARRAY_SIZE(scratch); i++)
                json_array_append_new(places, json_string(scratch[i]));
        json_object_set_new(d, "scratch",
                            json_pack("{s:s,s:I,s:o,s:b,s:s}", "enforced", "tmpfs", "mb",
                                      (json_int_t)cfg->disk_mb, "places", places, "shared", 1,
                                      "also_bounded_by", "the memory limit"));
        if (vols && vols->n) {
                json_t *v = json_array();
                for (size_t i = 0; i < vols->n; i++)
                        json_array_append_new(v, json_string(vols->path[i]));
                json_object_set_new(d, "image_volumes",
                                    json_pack("{s:s,s:o}", "enforced", "as the root", "places", v));
        }
        for (size_t i = 0; i < o->ro.n; i++)
                json_array_append_new(ro, json_string(o->ro.path[i]));
        json_object_set_new(d, "read_only", ro);
        return d;
}

/* Keeps d as dir/DISK_FILE (0600), for info. */
static int disk_record_write(const char *dir, json_t *d, struct ak_err *err)
{
        cleanup_free char *text = d ? json_dumps(d, JSON_COMPACT) : NULL;
        cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int r;

        if (!text)
                return ak_err_oom(err);
        if (fd < 0)
                return ak_err_errno(err, errno, "open '%s'", dir);
        r = write_file_atomic_at(fd, DISK_FILE, text, strlen(text), 0600, false);
        return r < 0 ? ak_err_errno(err, -r, "write '%s/%s'", dir, DISK_FILE) : 0;
}

/* dir/DISK_FILE, believed only as a regular file of ours that nobody else can write; NULL when
 * there is none or it is not. */
static json_t *disk_record_read(const char *dir)
{
        cleanup_close int d = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        cleanup_close int fd = -1;
        cleanup_buf struct buf b = BUF_INIT;
        struct stat st;
        json_t *o;

        if (d < 0)
                return NULL;
        fd = openat(d, DISK_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
            (st.st_mode & 022) || read_fd_full(fd, &b, DISK_FILE_MAX) < 0 || !b.data)
                return NULL;
        o = json_loadb(b.data, b.len, 0, NULL);
        if (!json_is_object(o)) {
                json_decref(o);
                return NULL;
        }
        return o;
}

/* What the capture helper sends back: its result, and what failed. */
struct capture_reply {
        int r;
        char what[200];
};

/* The capture (runtime/net-capture.h) in the network namespace of the process pidfd names, made
 * by a forked child: it joins that namespace — and first the namespace's user namespace when we
 * are not root (rootless podman: the container's network belongs to podman's user namespace,
 * where its owner, this user, holds every capability; a threaded process could not join it,
 * and no process can leave it again) — installs the route and the table, makes the listeners
 * and sends them back (SCM_RIGHTS), then exits. The caller never leaves its own namespaces.
 * fds: the listeners, in NET_CAPTURE_FDS order. */
static int capture_in(int pidfd, pid_t pid, int fds[NET_CAPTURE_FDS], struct ak_err *err)
{
        struct capture_reply rep = {.r = -EIO};
        char path[64];
        struct stat self, theirs;
        int sp[2], flags = CLONE_NEWNET, status;
        size_t n = 0;
        ssize_t k;
        pid_t child;

        /* the user namespace: joined only where it differs and we are not root (root holds
         * CAP_SYS_ADMIN over every namespace already) */
        (void)snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
        if (geteuid() != 0) {
                if (stat("/proc/self/ns/user", &self) < 0 || stat(path, &theirs) < 0)
                        return ak_err_errno(err, errno, "the container's user namespace");
                if (self.st_ino != theirs.st_ino || self.st_dev != theirs.st_dev)
                        flags |= CLONE_NEWUSER;
        }
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
                return ak_err_errno(err, errno, "socketpair");
        child = fork();
        if (child < 0) {
                k = -errno;
                close(sp[0]);
                close(sp[1]);
                return ak_err_errno(err, (int)-k, "fork");
        }
        if (child == 0) {
                const char *what = "join the container's namespaces (setns)";
                int mine[NET_CAPTURE_FDS] = {-1, -1, -1};
                rep.r = setns(pidfd, flags) < 0 ? -errno : 0;
                if (rep.r == 0)
                        rep.r = net_capture_install(&what);
                if (rep.r == 0)
                        rep.r = net_capture_listeners(mine, &what);
                if (rep.r < 0)
                        (void)snprintf(rep.what, sizeof(rep.what), "%s", what);
                (void)fd_send(sp[1], &rep, sizeof(rep), mine, rep.r == 0 ? NET_CAPTURE_FDS : 0);
                _exit(0);
        }
        close(sp[1]);
        k = fd_recv(sp[0], &rep, sizeof(rep), fds, NET_CAPTURE_FDS, &n);
        close(sp[0]);
        while (waitpid(child, &status, 0) < 0 && errno == EINTR)
                ;
        if (k < 0 || (k > 0 && (size_t)k != sizeof(rep)) || (rep.r == 0 && n != NET_CAPTURE_FDS)) {
                for (size_t i = 0; k >= 0 && i < n; i++)
                        close(fds[i]);
                return ak_err_set(err, EIO, "proxy mode: the capture helper failed");
        }
        if (k == 0)
                return ak_err_set(err, EIO, "proxy mode: the capture helper died");
        if (rep.r < 0) {
                for (size_t i = 0; i < n; i++)
                        close(fds[i]);
                rep.what[sizeof(rep.what) - 1] = '\0';
                return ak_err_errno(err, -rep.r, "proxy mode: %s%s", rep.what,
                                    (flags & CLONE_NEWUSER) && rep.r == -EPERM
                                        ? " (rootless: joining the container's user namespace, "
                                          "then its network namespace)"
                                        : "");
        }
        return 0;
}

/* Proxy mode for a container the engine made with no network: its namespace gets the capture
 * native sandboxes make for themselves (capture_in), and the listeners go to the user's proxy
 * with the agent's pidfd (which names that very process, whatever happens to its pid) and the
 * decision log in dir. */
static int engine_egress(const struct backend_config *cfg, pid_t pid, const char *dir,
                         struct ak_err *err)
{
        cleanup_close int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        int fds[NET_CAPTURE_FDS] = {-1, -1, -1};
        char log[PATH_MAX];
        int r;

        if (pidfd < 0)
                return ak_err_errno(err, errno, "the container's agent (pidfd)");
        r = capture_in(pidfd, pid, fds, err);
        if (r < 0)
                return r;
        (void)snprintf(log, sizeof(log), "%s/%s", dir, EGRESS_LOG_FILE);
        r = egress_register(
            cfg->ref.name, cfg->ref.uuid, cfg->net_policy,
            &(struct egress_fds){fds[0], fds[1], fds[2]}, pidfd, log,
            &(struct egress_secrets){cfg->secret_grants, cfg->upstream_ca, cfg->ret_proxy_ca}, err);
        for (int i = 0; i < NET_CAPTURE_FDS; i++)
                close(fds[i]);
        if (cfg->ephemeral)
                (void)unlink(log);
        return r;
}

static int engine_finish(struct backend_session *bs);

/* Proxy mode for a container claimed from the warm pool: its agent as the refill recorded it
 * (host-only files, in the run's directory now). */
static int pool_egress(const struct backend_config *cfg, const struct engine_session *s,
                       struct ak_err *err)
{
        struct container_rt rt;
        int r = container_rt_read(s->dir, &rt, err);

        return r < 0 ? r : engine_egress(cfg, rt.pid, s->dir, err);
}

/* Proxy mode's published ports (backend/port-relay.h): a relay that asks the container's agent
 * (its socket checked once here, then kept open by O_PATH) for each connection. */
static int engine_publish(const struct backend_config *cfg, const struct container_rt *rt,
                          struct ak_err *err)
{
        cleanup_close int sock = -1;
        cleanup_close int pidfd = -1;
        cleanup_close int netns = -1;
        char path[64];

        if (!cfg->n_ports)
                return 0;
        pidfd = (int)syscall(SYS_pidfd_open, rt->pid, 0);
        (void)snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)rt->pid);
        netns = open(path, O_RDONLY | O_CLOEXEC);
        if (pidfd < 0 || netns < 0)
                return ak_err_errno(err, errno, "the container's agent (pidfd, network namespace)");
        /* checked after: the process that pidfd and netns name is still the agent */
        sock = container_agent_socket(rt, cfg->ref.uuid, err);
        if (sock < 0)
                return sock;
        return port_relay_start(cfg->ports, cfg->n_ports, sock, pidfd, netns, err);
}

static int engine_start(enum engine_kind kind, const struct backend_config *cfg,
                        struct backend_session *ret_session, struct ak_err *err)
{
        struct engine e;
        char agent[PATH_MAX], name[128], dir[PATH_MAX], path[256];
        cleanup_json json_t *conf = NULL;
        cleanup_json json_t *info = NULL;
        struct container_rt rt;
        struct image_volumes vols;
        struct disk_outcome out = {0};
        const char *user;
        /* host directories: attached idmapped by us when we can (root), else plain binds that
         * engine_backend_settle() accepts only where the container's root is not host root */
        bool inject = geteuid() == 0 && (cfg->workspace || cfg->n_binds);
        uint32_t id_base = 0;
        int r, st, fd, lock_fd = -1;

        if (streq(cfg->image, "host"))
                return ak_err_set(err, EINVAL,
                                  "the %s backend runs container images, not the 'host' image; "
                                  "name one with --image (e.g. -i alpine:3.20)",
                                  engine_name(kind));
        if (cfg->network == NET_MODE_PROXY &&
            (r = port_relay_check(cfg->ports, cfg->n_ports, err)) < 0)
                return r;
        if (!uuid_is_valid(cfg->ref.uuid))
                return ak_err_set(err, EINVAL, "sandbox '%s' has no valid uuid ('%s')",
                                  cfg->ref.name, cfg->ref.uuid);
        for (size_t i = 0; i < cfg->n_binds; i++) {
                const char *d = cfg->binds[i].dest;
                size_t rl = strlen(RESERVED_IN);
                if ((strncmp(d, RESERVED_IN, rl) == 0 && (d[rl] == '\0' || d[rl] == '/')) ||
                    (cfg->workspace && streq(d, WORKSPACE_IN)))
                        return ak_err_set(err, EINVAL,
                                          "a volume cannot go at '%s' in a container: %s is "
                                          "agentkernel's%s",
                                          d, RESERVED_IN,
                                          cfg->workspace ? ", /workspace the workspace's" : "");
        }
        r = backend_id_base(cfg, &id_base, err);
        if (r < 0)
                return r;
        r = engine_open(kind, &e, err);
        if (r < 0)
                return r;
        r = paths_agent_binary(agent, sizeof(agent), err);
        if (r < 0)
                return r;
        if (engine_pool_usable(cfg)) {
                struct engine_session *s = calloc(1, sizeof(*s));
                char pool[PATH_MAX], key[17];
                if (!s)
                        return ak_err_oom(err);
                engine_pool_dir(kind, cfg, agent, pool, sizeof(pool), key);
                fd = engine_pool_claim(&e, pool, cfg->ref.run_dir, s);
                engine_pool_refill(&e, cfg, agent, pool, key);
                if (fd >= 0) {
                        s->pooled = true;
                        ret_session->priv = s;
                        /* proxy mode: a pooled container (made with no network, like any proxy
                         * one: the pool's key holds the mode) gets its capture now, before the
                         * run's command */
                        if (cfg->network == NET_MODE_PROXY && (r = pool_egress(cfg, s, err)) < 0) {
                                close(fd);
                                (void)engine_finish(ret_session);
                                return r;
                        }
                        ret_session->chan_fd = fd;
                        return 0;
                }
                free(s); /* the pool is empty: start one the ordinary way */
        }
        container_name(&cfg->ref, cfg->ephemeral, name, sizeof(name));
        if (cfg->ephemeral) {
                /* <kind>-<container>/, with a lock held for the run's life: the sweep of a later
                 * run removes what a killed one left (container and directory) */
                (void)snprintf(dir, sizeof(dir), "%s/%s-%s", cfg->ref.run_dir, engine_name(kind),
                               name);
                lock_fd = lock_run_dir(dir, err);
                if (lock_fd < 0)
                        return lock_fd;
        } else {
                (void)snprintf(dir, sizeof(dir), "%s", cfg->ref.run_dir);
        }
        /* a leftover of ours (an earlier start that crashed) goes first; an ephemeral run's
         * name is new (its uuid's): nothing to ask the engine about */
        r = cfg->ephemeral ? 0 : engine_backend_remove(&e, name, cfg->ref.uuid, false, err);
        if (r >= 0)
                r = engine_backend_ensure_image(&e, cfg->image, &info, err);
        if (r >= 0)
                r = engine_config_image_volumes(info, cfg, &vols, err);
        if (r < 0)
                goto fail;
        user = json_string_value(json_object_get(json_object_get(info, "Config"), "User"));
        r = mkdir_p(dir, 0700);
        if (r < 0) {
                ak_err_errno(err, -r, "create '%s'", dir);
                goto fail;
        }
        if (!cfg->ephemeral) { /* an earlier start's records: of a container that is gone */
                char rtf[PATH_MAX + 32];
                (void)snprintf(rtf, sizeof(rtf), "%s/%s", dir, CONTAINER_RT_FILE);
                (void)unlink(rtf);
                (void)snprintf(rtf, sizeof(rtf), "%s/%s", dir, DISK_FILE);
                (void)unlink(rtf);
        }
        conf = engine_config_container(kind, cfg, agent, cfg->ref.uuid, user, NULL, inject, &vols);
        r = engine_config_create(&e, name, conf, out.why, sizeof(out.why), err);
        if (r < 0)
                goto fail;
        out.root = cfg->profile->read_only_root ? -1 : r;
        (void)snprintf(path, sizeof(path), "/containers/%s/start", name);
        st = engine_call(&e, "POST", path, NULL, NULL, err);
        if (st < 0 || (st >= 400 && st != 304)) {
                r = st < 0 ? st : -err->code;
                goto fail_created;
        }
        test_hook("engine-container-started");
        fd = engine_backend_settle(&e, name, cfg->ref.uuid, cfg, inject, id_base, &vols, &rt, &out,
                                   err);
        if (fd < 0) {
                r = fd;
                goto fail_created;
        }
        if (cfg->network == NET_MODE_PROXY && (r = engine_egress(cfg, rt.pid, dir, err)) < 0) {
                close(fd);
                goto fail_created;
        }
        if (cfg->network == NET_MODE_PROXY && (r = engine_publish(cfg, &rt, err)) < 0) {
                close(fd);
                goto fail_created;
        }
        if (!cfg->ephemeral) {
                cleanup_json json_t *d = disk_json(kind, cfg, &vols, &out);
                r = container_rt_write(dir, &rt, err);
                if (r >= 0)
                        r = disk_record_write(dir, d, err);
                if (r < 0) {
                        close(fd);
                        goto fail_created;
                }
        }
        if (cfg->ephemeral) {
                struct engine_session *s = calloc(1, sizeof(*s));
                if (!s) {
                        close(fd);
                        r = ak_err_oom(err);
                        goto fail_created;
                }
                s->eng = e;
                s->lock_fd = lock_fd;
                (void)snprintf(s->container, sizeof(s->container), "%s", name);
                (void)snprintf(s->dir, sizeof(s->dir), "%s", dir);
                ret_session->chan_fd = fd;
                ret_session->priv = s;
        } else {
                close(fd);
        }
        return 0;
fail_created:
        (void)engine_backend_remove(&e, name, cfg->ref.uuid, false, NULL);
fail:
        if (cfg->ephemeral) {
                (void)rm_rf_at(AT_FDCWD, dir);
                close(lock_fd);
        }
        return r;
}

static int engine_finish(struct backend_session *bs)
{
        struct engine_session *s = bs->priv;

        if (!s)
                return 0;
        {
                /* the caller has its exit status; the container goes in the background (a
                 * detached process that holds the run's lock until it is gone, so a sweep never
                 * races it; should that process die, the lock is free and the next run of this
                 * engine sweeps the container and its directory). The engine's removal (~70 ms
                 * for podman) is then off the run's critical path. */
                pid_t pid = fork();
                if (pid == 0) {
                        int null;
                        if (setsid() < 0 || fork() != 0)
                                _exit(0);
                        /* not the caller's output: whoever reads it must see it end now */
                        null = open("/dev/null", O_RDWR | O_CLOEXEC);
                        if (null >= 0) {
                                (void)dup2(null, 0);
                                (void)dup2(null, 1);
                                (void)dup2(null, 2);
                        }
                        (void)close_all_fds_except(3, &s->lock_fd, 1);
                        (void)test_hook("engine-remove-detached");
                        (void)engine_backend_remove(&s->eng, s->container, NULL, false, NULL);
                        (void)rm_rf_at(AT_FDCWD, s->dir);
                        _exit(0);
                }
                if (pid > 0) {
                        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                                ;
                        close(s->lock_fd);
                        free(s);
                        bs->priv = NULL;
                        return 0;
                }
        }
        (void)engine_backend_remove(&s->eng, s->container, NULL, false, NULL);
        (void)rm_rf_at(AT_FDCWD, s->dir);
        close(s->lock_fd);
        free(s);
        bs->priv = NULL;
        return 0;
}

static int engine_remove_ref(enum engine_kind kind, const struct sandbox_ref *ref, bool graceful,
                             struct ak_err *err)
{
        struct engine e;
        char name[128];
        int r = engine_open(kind, &e, err);

        if (r < 0)
                return r;
        container_name(ref, false, name, sizeof(name));
        r = engine_backend_remove(&e, name, ref->uuid, graceful, err);
        if (r >= 0 && ref->run_dir) {
                int k = rm_rf_at(AT_FDCWD, ref->run_dir);
                if (k < 0)
                        r = ak_err_errno(err, -k, "remove '%s'", ref->run_dir);
        }
        return r;
}

/* One inspect of this sandbox's own container (another's is none): running, its pid, and
 * State.Paused. */
static void inspect_state(const struct engine *e, const char *name, const char *uuid,
                          struct backend_status *ret)
{
        cleanup_json json_t *j = NULL;
        char path[256];
        const char *owner;
        json_t *state;

        (void)snprintf(path, sizeof(path), "/containers/%s/json", name);
        if (engine_call(e, "GET", path, NULL, &j, NULL) != 200)
                return;
        owner = json_string_value(
            json_object_get(json_object_get(json_object_get(j, "Config"), "Labels"), LABEL_UUID));
        state = json_object_get(j, "State");
        if ((uuid && (!owner || !streq(owner, uuid))) ||
            !json_is_true(json_object_get(state, "Running")))
                return;
        ret->running = true;
        ret->pid = (pid_t)json_integer_value(json_object_get(state, "Pid"));
        ret->paused = json_is_true(json_object_get(state, "Paused"));
}

static int engine_status(enum engine_kind kind, const struct sandbox_ref *ref,
                         struct backend_status *ret)
{
        struct engine e;
        char name[128];

        if (engine_open(kind, &e, NULL) < 0)
                return 0;
        container_name(ref, false, name, sizeof(name));
        inspect_state(&e, name, ref->uuid, ret);
        return 0;
}

/* The engine's pause/unpause (its cgroup freezer), of this sandbox's own container only. */
static int engine_pause(enum engine_kind kind, const struct sandbox_ref *ref, bool pause,
                        struct ak_err *err)
{
        struct engine e;
        char name[128], path[256];
        bool running = false;
        int r = engine_open(kind, &e, err), st;

        if (r < 0)
                return r;
        container_name(ref, false, name, sizeof(name));
        r = inspect(&e, name, ref->uuid, &running, NULL, err);
        if (r < 0)
                return r;
        if (r == 0 || !running)
                return ak_err_set(err, ESRCH, "sandbox '%s' is not running", ref->name);
        if (!pause) {
                struct backend_status bs = {0};
                inspect_state(&e, name, ref->uuid, &bs);
                if (!bs.paused)
                        return 0;
        }
        (void)snprintf(path, sizeof(path), "/containers/%s/%s", name, pause ? "pause" : "unpause");
        st = engine_call(&e, "POST", path, NULL, NULL, err);
        return st < 0 ? st : st >= 400 ? -err->code : 0;
}

static int engine_connect(const struct sandbox_ref *ref, struct ak_err *err)
{
        struct container_rt rt;
        int r = container_rt_read(ref->run_dir, &rt, err);

        if (r == -ENOENT)
                return ak_err_set(err, ENOENT,
                                  "sandbox '%s' has no record of its agent (started by an older "
                                  "agentkernel, or its start was interrupted); restart it: "
                                  "agentkernel stop %s && agentkernel start %s",
                                  ref->name, ref->name, ref->name);
        if (r < 0)
                return r;
        r = container_connect(&rt, ref->uuid, err);
        return r < 0 ? ak_err_prefix(err, "sandbox '%s'", ref->name) : r;
}

static int engine_resize(enum engine_kind kind, const struct sandbox_ref *ref,
                         const struct backend_config *cfg, struct ak_err *err)
{
        struct engine e;
        char name[128], path[256];
        cleanup_json json_t *body = NULL;
        int r = engine_open(kind, &e, err), st;

        if (r < 0)
                return r;
        container_name(ref, false, name, sizeof(name));
        r = inspect(&e, name, ref->uuid, NULL, NULL, err);
        if (r <= 0)
                return r < 0 ? r : ak_err_set(err, ESRCH, "sandbox '%s' is not running", ref->name);
        body = json_pack("{s:I,s:I,s:I,s:I}", "Memory", (json_int_t)(cfg->memory_mb << 20),
                         "MemorySwap", (json_int_t)(cfg->memory_mb << 20), "NanoCpus",
                         (json_int_t)cfg->vcpus * 10000000LL * cfg->profile->cpu_percent,
                         "PidsLimit", (json_int_t)cfg->profile->pids_max);
        (void)snprintf(path, sizeof(path), "/containers/%s/update", name);
        st = engine_call(&e, "POST", path, body, NULL, err);
        return st < 0 ? st : st >= 400 ? -err->code : 0;
}

/* info's disk_limit: what the last start recorded, while it runs. */
static void engine_describe(const struct sandbox_ref *ref, bool running, json_t *info)
{
        json_t *d = running && ref->run_dir ? disk_record_read(ref->run_dir) : NULL;

        if (!d)
                d = json_pack("{s:s}", "enforced",
                              running ? "unknown: no record of its start that can be trusted "
                                        "(started by an older agentkernel?); restart it"
                                      : "decided when it starts");
        json_object_set_new(info, "disk_limit", d);
}

static int engine_probe(enum engine_kind kind, char *why, size_t why_len)
{
        struct engine e;
        struct ak_err err = {0};

        if (engine_open(kind, &e, &err) < 0) {
                (void)snprintf(why, why_len, "%s", ak_err_msg(&err));
                return 0;
        }
        (void)snprintf(why, why_len, "%s engine at %s, API %s", engine_name(kind), e.socket,
                       e.version);
        return 1;
}

static int engine_prepare(enum engine_kind kind, const char *image, struct ak_err *err)
{
        struct engine e;
        cleanup_json json_t *info = NULL;
        int r;

        if (streq(image, "host"))
                return ak_err_set(err, EINVAL,
                                  "the %s backend runs container images, not the 'host' image; "
                                  "name one with --image (e.g. -i alpine:3.20)",
                                  engine_name(kind));
        r = engine_open(kind, &e, err);
        return r < 0 ? r : engine_backend_ensure_image(&e, image, &info, err);
}

/* One thin table per engine. */
static int docker_pool_clear(const char *ephemeral_dir, unsigned *ret_removed, struct ak_err *err)
{
        return engine_pool_clear(ENGINE_DOCKER, ephemeral_dir, ret_removed, err);
}

static int podman_pool_clear(const char *ephemeral_dir, unsigned *ret_removed, struct ak_err *err)
{
        return engine_pool_clear(ENGINE_PODMAN, ephemeral_dir, ret_removed, err);
}

#define ENGINE_OPS(kind, id, desc)                                                                 \
        static int id##_probe(char *why, size_t len)                                               \
        {                                                                                          \
                return engine_probe(kind, why, len);                                               \
        }                                                                                          \
        static int id##_start(const struct backend_config *cfg, struct backend_session *s,         \
                              struct ak_err *err)                                                  \
        {                                                                                          \
                return engine_start(kind, cfg, s, err);                                            \
        }                                                                                          \
        static int id##_stop(const struct sandbox_ref *ref, struct ak_err *err)                    \
        {                                                                                          \
                return engine_remove_ref(kind, ref, true, err);                                    \
        }                                                                                          \
        static int id##_cleanup(const struct sandbox_ref *ref, struct ak_err *err)                 \
        {                                                                                          \
                return engine_remove_ref(kind, ref, false, err);                                   \
        }                                                                                          \
        static int id##_status(const struct sandbox_ref *ref, struct backend_status *ret)          \
        {                                                                                          \
                return engine_status(kind, ref, ret);                                              \
        }                                                                                          \
        static int id##_resize(const struct sandbox_ref *ref, const struct backend_config *cfg,    \
                               struct ak_err *err)                                                 \
        {                                                                                          \
                return engine_resize(kind, ref, cfg, err);                                         \
        }                                                                                          \
        static int id##_pause(const struct sandbox_ref *ref, bool pause, struct ak_err *err)       \
        {                                                                                          \
                return engine_pause(kind, ref, pause, err);                                        \
        }                                                                                          \
        static int id##_images_list(json_t **ret, struct ak_err *err)                              \
        {                                                                                          \
                return engine_images_list(kind, ret, err);                                         \
        }                                                                                          \
        static int id##_image_remove(const char *name, char *const *used, char *const *users,      \
                                     struct ak_err *err)                                           \
        {                                                                                          \
                return engine_image_remove(kind, name, used, users, err);                          \
        }                                                                                          \
        static int id##_prepare(const char *image, struct ak_err *err)                             \
        {                                                                                          \
                return engine_prepare(kind, image, err);                                           \
        }                                                                                          \
        static void id##_sweep(const char *dir)                                                    \
        {                                                                                          \
                engine_sweep(kind, dir);                                                           \
        }                                                                                          \
        const struct backend_ops id##_backend_ops = {                                              \
            .name = #id,                                                                           \
            .description = desc,                                                                   \
            .caps = BACKEND_CAP_ATTACH | BACKEND_CAP_RESIZE | BACKEND_CAP_PROXY,                   \
            .probe = id##_probe,                                                                   \
            .start = id##_start,                                                                   \
            .finish = engine_finish,                                                               \
            .stop = id##_stop,                                                                     \
            .cleanup = id##_cleanup,                                                               \
            .status = id##_status,                                                                 \
            .connect = engine_connect,                                                             \
            .resize = id##_resize,                                                                 \
            .pause = id##_pause,                                                                   \
            .prepare = id##_prepare,                                                               \
            .sweep = id##_sweep,                                                                   \
            .describe = engine_describe,                                                           \
            .pool_clear = id##_pool_clear,                                                         \
            .images_list = id##_images_list,                                                       \
            .image_remove = id##_image_remove,                                                     \
        }

ENGINE_OPS(ENGINE_DOCKER, docker, "Docker containers through the Engine API, our agent inside");

ENGINE_OPS(ENGINE_PODMAN, podman, "Podman containers through its Docker-compatible API");
