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
 * a container can write is bounded (see "the disk" below), and info says how.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sha256.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/engine-backend.h"
#include "core/backend.h"
#include "core/paths.h"
#include "core/volume.h"
#include "engine/container.h"
#include "engine/engine.h"
#include "runtime/seccomp.h"
#include "shared/bind-mount.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/random-util.h"
#include "shared/test-hook.h"
#include "shared/time-util.h"

#define AGENT_IN "/.agentkernel/agent"
#define RESERVED_IN "/.agentkernel" /* ours in every container: no volume goes there */
#define WORKSPACE_IN "/workspace"
#define AGENT_WAIT_MS 15000
/* Host ids for what a container writes on host mounts (container id n as base + n, and root
 * where the directory is root's): the same per-sandbox ranges as native's (native.c), chosen by
 * the sandbox's id slot, so no two live sandboxes of any backend share one. */
#define STOP_GRACE_S 5
#define LABEL_UUID "agentkernel.uuid"
#define LABEL_NAME "agentkernel.sandbox"
#define LABEL_POOL "agentkernel.pool"
#define POOL_TARGET 5 /* idle containers kept per configuration (upstream's run_pooled) */
#define POOL_MAX 20   /* idle containers per engine, all configurations together */
#define POOL_KEY_UUID "00000000-0000-0000-0000-000000000000"
#define IMAGE_VOLUMES_MAX 16
#define DISK_FILE "engine-disk.json" /* what bounds a kept sandbox's disk (host only) */
#define DISK_FILE_MAX 16384

struct engine_session {
        struct engine eng;
        char container[128];
        char dir[PATH_MAX]; /* the per-run socket directory */
        int lock_fd;        /* held while the run lives: a sweep leaves it alone */
        bool pooled;        /* from the warm pool: removed in the background after the run */
};

static const char *const cap_names[] = {
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
};

static void container_name(const struct sandbox_ref *ref, bool ephemeral, char *out, size_t len)
{
        if (ephemeral)
                (void)snprintf(out, len, "agentkernel-run-%.8s%.4s", ref->uuid + 24, ref->uuid);
        else
                (void)snprintf(out, len, "agentkernel-%s", ref->name);
}

/* The container, if it is this sandbox's: 1 found (ret_running, ret_pid), 0 none, <0 error
 * (a container of that name that belongs to something else is an error). */
static int inspect_driver(const struct engine *e, const char *name, const char *uuid,
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
        return inspect_driver(e, name, uuid, ret_running, ret_pid, NULL, 0, err);
}

static int remove_container(const struct engine *e, const char *name, const char *uuid,
                            bool graceful, struct ak_err *err)
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
static int ensure_image(const struct engine *e, const char *image, json_t **ret_info,
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
                if (remove_container(&e, de->d_name + pl + 1, NULL, false, NULL) == 0)
                        (void)rm_rf_at(dirfd(d), de->d_name);
        }
        closedir(d);
}

/* ---- the disk ----
 *
 * What a container writes goes to four kinds of places, each bounded its own way:
 * - its root (the engine's writable layer, on the engine's disk): the storage driver's quota of
 *   disk_mb where the driver has one (HostConfig.StorageOpt size); an engine whose driver has
 *   none refuses the option, and the container is then made without it, which info says with
 *   the engine's reason; read-only when the profile says;
 * - its scratch places (/tmp, /var/tmp, /run, /dev/shm): one tmpfs of disk_mb that the host
 *   makes and binds at each (container_settle), charged to the container's memory cgroup;
 * - the image's VOLUMEs: no engine volume (unbounded, on the engine's disk) but the root's own
 *   directory, as on native: the engine gets a placeholder there, which the host takes away;
 * - everything else the engine mounts writable (/etc/hosts, /etc/hostname, /etc/resolv.conf
 *   from its own storage, /dev, v1's /sys/fs/cgroup): made read-only by the host.
 * The workspace and volumes are the user's own directories, bounded as on native. */

/* The image's VOLUMEs that get a placeholder (see above). */
struct image_volumes {
        size_t n;
        char path[IMAGE_VOLUMES_MAX][CONTAINER_PATH_MAX];
        const char *ptr[IMAGE_VOLUMES_MAX];
};

/* Whether path is top or below it. */
static bool path_at_or_below(const char *path, const char *top)
{
        size_t n = strlen(top);
        return strncmp(path, top, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* A plain absolute path: no empty, '.' or '..' component, no trailing slash. */
static bool plain_abs_path(const char *p)
{
        if (p[0] != '/' || !p[1] || strlen(p) >= CONTAINER_PATH_MAX)
                return false;
        for (const char *c = p; *c; c++) {
                if (*c != '/')
                        continue;
                if (c[1] == '/' || c[1] == '\0' ||
                    (c[1] == '.' && (c[2] == '/' || c[2] == '\0' ||
                                     (c[2] == '.' && (c[3] == '/' || c[3] == '\0')))))
                        return false;
        }
        return true;
}

/* The image's Config.Volumes that the container gets as its root's directories. Left to the
 * engine: none. Refused: a path that is not plain, is the kernel's or ours, or too many. Not
 * placeholders: where a scratch place or a host directory goes (those cover them anyway). */
static int image_volumes_of(json_t *image_info, const struct backend_config *cfg,
                            struct image_volumes *ret, struct ak_err *err)
{
        static const char *const scratch[] = CONTAINER_SCRATCH_PLACES;
        static const char *const refused[] = {"/proc", "/sys", "/dev", RESERVED_IN};
        json_t *vols = json_object_get(json_object_get(image_info, "Config"), "Volumes");
        struct image_volumes v = {0};
        const char *path;
        json_t *x;

        json_object_foreach (vols, path, x) {
                bool covered = cfg->workspace && path_at_or_below(path, WORKSPACE_IN);
                (void)x;
                if (!plain_abs_path(path))
                        return ak_err_set(err, EINVAL,
                                          "image '%s' declares a volume at '%.64s': not a plain "
                                          "absolute path",
                                          cfg->image, path);
                for (size_t i = 0; i < ARRAY_SIZE(refused); i++)
                        if (path_at_or_below(path, refused[i]))
                                return ak_err_set(err, EINVAL,
                                                  "image '%s' declares a volume at '%s', in %s",
                                                  cfg->image, path, refused[i]);
                for (size_t i = 0; i < ARRAY_SIZE(scratch) && !covered; i++)
                        covered = path_at_or_below(path, scratch[i]);
                for (size_t i = 0; i < cfg->n_binds && !covered; i++)
                        covered = path_at_or_below(path, cfg->binds[i].dest);
                if (covered)
                        continue;
                if (v.n == IMAGE_VOLUMES_MAX)
                        return ak_err_set(err, E2BIG, "image '%s' declares more than %d volumes",
                                          cfg->image, IMAGE_VOLUMES_MAX);
                (void)snprintf(v.path[v.n], sizeof(v.path[v.n]), "%s", path);
                v.n++;
        }
        *ret = v;
        for (size_t i = 0; i < ret->n; i++)
                ret->ptr[i] = ret->path[i]; /* into *ret's own paths */
        return 0;
}

/* An empty placeholder's tmpfs options: it only makes the mount point (podman would otherwise
 * copy the image's files into it). writable: the engine may have to make its own mount points
 * in it (an image VOLUME /etc holds /etc/hosts); only the agent runs before the host covers or
 * takes it away. */
static const char *placeholder_opts(enum engine_kind kind, bool writable)
{
        if (kind == ENGINE_PODMAN)
                return writable ? "rw,noexec,nosuid,nodev,size=4k,mode=0755,notmpcopyup"
                                : "ro,noexec,nosuid,nodev,size=4k,mode=0755,notmpcopyup";
        return writable ? "rw,noexec,nosuid,nodev,size=4k,mode=0755"
                        : "ro,noexec,nosuid,nodev,size=4k,mode=0755";
}

/* Whether the engine's refusal is of the root's size (a storage driver without quota): docker's
 * "--storage-opt is supported only for overlay over xfs with 'pquota' mount option", podman's
 * "storage option overlay.size ... only supported for backingFS XFS" or "unknown option size",
 * and their other drivers' ("--storage-opt is not supported for ...", "... quota ...",
 * devicemapper's "... size cannot be smaller than ..." its base size). */
static bool storage_opt_refused(const char *msg)
{
        static const char *const says[] = {"storage-opt", "storage opt",      "storage option",
                                           "storageopt",  "option size",      "size option",
                                           "quota",       "cannot be smaller"};
        char low[512];
        size_t i;

        for (i = 0; msg[i] && i < sizeof(low) - 1; i++)
                low[i] = (char)(msg[i] >= 'A' && msg[i] <= 'Z' ? msg[i] + 32 : msg[i]);
        low[i] = '\0';
        for (i = 0; i < ARRAY_SIZE(says); i++)
                if (strstr(low, says[i]))
                        return true;
        return false;
}

/* Creates container name from conf. When conf gives the root a size the engine cannot enforce
 * (it says so), creates it without: returns 1 with a quota, 0 without (why: the engine's
 * reason), <0 an error. */
static int create_container(const struct engine *e, const char *name, json_t *conf, char *why,
                            size_t why_len, struct ak_err *err)
{
        json_t *hc = json_object_get(conf, "HostConfig");
        bool sized = json_object_get(hc, "StorageOpt") != NULL;
        char path[256];
        int st;

        (void)snprintf(path, sizeof(path), "/containers/create?name=%s", name);
        st = engine_call(e, "POST", path, conf, NULL, err);
        if (st >= 200 && st < 300)
                return sized ? 1 : 0;
        if (st < 0 || !sized || !storage_opt_refused(ak_err_msg(err)))
                return st < 0 ? st : -err->code;
        {
                /* the engine's words, without engine_call's "POST <path>: " */
                const char *m = ak_err_msg(err);
                size_t pl = strlen(path);
                if (strncmp(m, "POST ", 5) == 0 && strncmp(m + 5, path, pl) == 0 &&
                    strncmp(m + 5 + pl, ": ", 2) == 0)
                        m += 5 + pl + 2;
                (void)snprintf(why, why_len, "%s", m);
        }
        ak_err_clear(err);
        json_object_del(hc, "StorageOpt");
        st = engine_call(e, "POST", path, conf, NULL, err);
        return st < 0 ? st : st >= 300 ? -err->code : 0;
}

static json_t *strv_json(char *const *v)
{
        json_t *a = json_array();
        for (size_t i = 0; v && v[i]; i++)
                json_array_append_new(a, json_string(v[i]));
        return a;
}

/* Whether path is a regular file of ours, written by nobody else, holding exactly text. */
static bool file_holds(const char *path, const char *text)
{
        cleanup_close int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        cleanup_buf struct buf b = BUF_INIT;
        size_t n = strlen(text);
        struct stat st;

        return fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
               !(st.st_mode & 022) && read_fd_full(fd, &b, n + 1) >= 0 && b.len == n &&
               memcmp(b.data, text, n) == 0;
}

/* The container's configuration: our agent as the entrypoint, the hardening, the limits. */
/* "seccomp=..." for the profile: the JSON inline (docker), or a file with it (podman), written
 * once per content under the data directory. NULL when it cannot be had. malloc'd. */
static char *seccomp_opt_for(enum engine_kind kind, enum seccomp_profile prof, bool host_files)
{
        const char *json = seccomp_engine_json(prof, host_files);
        cleanup_free char *data = NULL;
        char *opt = NULL, path[PATH_MAX], hex[65];

        if (!json)
                return NULL;
        if (kind == ENGINE_DOCKER)
                return asprintf(&opt, "seccomp=%s", json) < 0 ? NULL : opt;
        data = paths_data_dir();
        if (!data)
                return NULL;
        SHA256Data((const uint8_t *)json, strlen(json), hex);
        (void)snprintf(path, sizeof(path), "%s/seccomp", data);
        if (mkdir_p(path, 0700) < 0)
                return NULL;
        (void)snprintf(path, sizeof(path), "%s/seccomp/%s-%.12s.json", data,
                       seccomp_profile_name(prof), hex);
        /* the engine reads it for every container: what is there must be exactly ours (anything
         * else, a link included, is replaced by a rename over it) */
        if (!file_holds(path, json) &&
            write_file_atomic_at(AT_FDCWD, path, json, strlen(json), 0600, true) < 0)
                return NULL;
        return asprintf(&opt, "seccomp=%s", path) < 0 ? NULL : opt;
}

/* The host directories a container shows: the workspace (its owner writes there as the
 * container's root, the sandbox's other ids are its range from id_base), then the volumes (ids
 * from VOLUME_ID_BASE in every sandbox: volumes are shared). As native does (runtime.h). */
static size_t host_mounts(const struct backend_config *cfg, uint32_t id_base,
                          struct container_mount *out, size_t max)
{
        size_t n = 0;

        if (cfg->workspace && n < max)
                out[n++] =
                    (struct container_mount){cfg->workspace, WORKSPACE_IN, false, true, id_base};
        for (size_t i = 0; i < cfg->n_binds && n < max; i++)
                out[n++] = (struct container_mount){cfg->binds[i].source, cfg->binds[i].dest,
                                                    cfg->binds[i].ro, false, VOLUME_ID_BASE};
        return n;
}

/* uuid: the one the agent tells in its HELLO. inject: the host directories are attached by the
 * host after the start (idmapped), the container gets empty placeholders there; otherwise they
 * are plain binds (only where the container's root is not host root: checked after start).
 * vols (may be NULL): the image's volumes, placeholders too (see "the disk"). */
static json_t *container_config(enum engine_kind kind, const struct backend_config *cfg,
                                const char *agent, const char *uuid, const char *image_user,
                                const char *pool, bool inject, const struct image_volumes *vols)
{
        static const char *const scratch[] = CONTAINER_SCRATCH_PLACES;
        bool host_files = bind_mounts_writable(cfg->workspace, cfg->binds, cfg->n_binds);
        cleanup_free char *seccomp_opt = seccomp_opt_for(kind, cfg->profile->seccomp, host_files);
        const struct profile *p = cfg->profile;
        json_t *c = json_object(), *hc = json_object(), *binds = json_array();
        json_t *caps = json_array(), *labels = json_object(), *ports = json_object();
        json_t *exposed = json_object(), *tmpfs = json_object(), *cmd = json_array();
        struct container_mount mounts[1 + VOLUMES_PER_SANDBOX_MAX];
        size_t n_mounts = host_mounts(cfg, 0, mounts, ARRAY_SIZE(mounts));
        char bind[PATH_MAX + 64];

        json_array_append_new(cmd, json_string("--listen"));
        json_array_append_new(cmd, json_string(CONTAINER_STATE_DIR "/" CONTAINER_SOCKET));
        json_array_append_new(cmd, json_string("--state-dir"));
        json_array_append_new(cmd, json_string(CONTAINER_STATE_DIR));
        json_array_append_new(cmd, json_string("--uuid"));
        json_array_append_new(cmd, json_string(uuid));
        json_array_append_new(cmd, json_string("--workdir"));
        json_array_append_new(cmd, json_string(cfg->workspace ? WORKSPACE_IN : "/"));
        if (image_user && *image_user) {
                json_array_append_new(cmd, json_string("--user"));
                json_array_append_new(cmd, json_string(image_user));
        }
        if (host_files) /* its commands get no openat2 (agent-util.c) */
                json_array_append_new(cmd, json_string("--host-files"));
        json_object_set_new(c, "Image", json_string(cfg->image));
        json_object_set_new(c, "Entrypoint", json_pack("[s]", AGENT_IN));
        json_object_set_new(c, "Cmd", cmd);
        json_object_set_new(c, "User", json_string("0:0")); /* the agent; commands: --user */
        json_object_set_new(c, "Hostname", json_string("agentkernel"));
        json_object_set_new(c, "Env", strv_json(cfg->env));
        json_object_set_new(c, "WorkingDir", json_string("/"));
        /* an image's HEALTHCHECK would be a command the engine runs in the sandbox behind the
         * agent's back (no policy, no audit), from the moment it starts */
        json_object_set_new(c, "Healthcheck", json_pack("{s:[s]}", "Test", "NONE"));
        json_object_set_new(labels, "agentkernel.managed", json_string("true"));
        json_object_set_new(labels, LABEL_NAME, json_string(cfg->ref.name));
        json_object_set_new(labels, LABEL_UUID, json_string(uuid));
        if (cfg->ephemeral)
                json_object_set_new(labels, "agentkernel.ephemeral", json_string("true"));
        if (pool)
                json_object_set_new(labels, LABEL_POOL, json_string(pool));
        json_object_set_new(c, "Labels", labels);

        (void)snprintf(bind, sizeof(bind), "%s:%s:ro", agent, AGENT_IN);
        json_array_append_new(binds, json_string(bind));
        /* the agent's socket and records: detached from the container's tree by the host once
         * the agent holds them (container_settle) */
        json_object_set_new(tmpfs, CONTAINER_STATE_DIR,
                            json_string("rw,noexec,nosuid,nodev,size=256m,mode=0700"));
        /* the scratch places (but /dev/shm, which every engine mounts) and the image's volumes
         * get the host's disk and the root's directories after the start */
        for (size_t i = 0; i < ARRAY_SIZE(scratch); i++)
                if (!streq(scratch[i], "/dev/shm"))
                        json_object_set_new(tmpfs, scratch[i],
                                            json_string(placeholder_opts(kind, false)));
        for (size_t i = 0; vols && i < vols->n; i++)
                json_object_set_new(tmpfs, vols->path[i],
                                    json_string(placeholder_opts(kind, true)));
        for (size_t i = 0; i < n_mounts; i++) {
                if (inject) {
                        json_object_set_new(tmpfs, mounts[i].dest,
                                            json_string(placeholder_opts(kind, false)));
                        continue;
                }
                (void)snprintf(bind, sizeof(bind), "%s:%s%s", mounts[i].source, mounts[i].dest,
                               mounts[i].ro ? ":ro" : "");
                json_array_append_new(binds, json_string(bind));
        }
        json_object_set_new(hc, "Binds", binds);
        json_object_set_new(hc, "Tmpfs", tmpfs);

        /* hardening, on every container */
        json_object_set_new(hc, "CapDrop", json_pack("[s]", "ALL"));
        for (size_t i = 0; i < ARRAY_SIZE(cap_names); i++)
                if (p->caps & (1ull << i))
                        json_array_append_new(caps, json_string(cap_names[i]));
        json_object_set_new(hc, "CapAdd", caps);
        {
                /* our seccomp profile, the same rules as native's (seccomp-rules.c): docker
                 * takes the JSON itself, podman's compatible API a path to it */
                json_t *so = json_pack("[s]", "no-new-privileges:true");
                if (seccomp_opt)
                        json_array_append_new(so, json_string(seccomp_opt));
                json_object_set_new(hc, "SecurityOpt", so);
        }
        json_object_set_new(hc, "Privileged", json_false());
        json_object_set_new(hc, "ReadonlyRootfs", json_boolean(p->read_only_root));
        /* the root's size, where the storage driver can hold it to one (create_container) */
        if (!p->read_only_root && cfg->disk_mb) {
                char size[32];
                (void)snprintf(size, sizeof(size), "%llum", (unsigned long long)cfg->disk_mb);
                json_object_set_new(hc, "StorageOpt", json_pack("{s:s}", "size", size));
        }
        json_object_set_new(hc, "PidsLimit", json_integer((json_int_t)p->pids_max));
        json_object_set_new(hc, "Memory", json_integer((json_int_t)(cfg->memory_mb << 20)));
        json_object_set_new(hc, "MemorySwap", json_integer((json_int_t)(cfg->memory_mb << 20)));
        json_object_set_new(hc, "NanoCpus",
                            json_integer((json_int_t)cfg->vcpus * 10000000LL * p->cpu_percent));
        json_object_set_new(hc, "NetworkMode", json_string(cfg->network ? "bridge" : "none"));
        json_object_set_new(hc, "Init", json_false());
        for (size_t i = 0; i < cfg->n_ports; i++) {
                char key[32], hp[16];
                const char *proto = cfg->ports[i].udp ? "udp" : "tcp";
                (void)snprintf(key, sizeof(key), "%u/%s", cfg->ports[i].container_port, proto);
                (void)snprintf(hp, sizeof(hp), "%u", cfg->ports[i].host_port);
                json_object_set_new(
                    ports, key, json_pack("[{s:s,s:s}]", "HostIp", "127.0.0.1", "HostPort", hp));
                json_object_set_new(exposed, key, json_object());
        }
        json_object_set_new(hc, "PortBindings", ports);
        json_object_set_new(c, "ExposedPorts", exposed);
        json_object_set_new(c, "HostConfig", hc);
        return c;
}

/* What a start found out about the container's disk (DISK_FILE, info's disk_limit). */
struct disk_outcome {
        int root;      /* 1 the storage driver's quota, 0 none (why), -1 read-only */
        char why[512]; /* the engine's refusal */
        char driver[32];
        struct container_ro ro;
};

/* After the start: the agent reached, checked and made private, the host directories attached
 * (when inject), the disk bounded (vols: the image's volumes to uncover), as container_settle
 * does. Returns a connected, identified fd, fills *ret_rt and the read-only mounts and storage
 * driver of *out. */
static int settle(const struct engine *e, const char *name, const char *uuid,
                  const struct backend_config *cfg, bool inject, uint32_t id_base,
                  const struct image_volumes *vols, struct container_rt *ret_rt,
                  struct disk_outcome *out, struct ak_err *err)
{
        struct container_mount mounts[1 + VOLUMES_PER_SANDBOX_MAX];
        size_t n_mounts = host_mounts(cfg, id_base, mounts, ARRAY_SIZE(mounts));
        struct container_disk disk = {
            .scratch_bytes = cfg->disk_mb << 20,
            .uncover = vols ? vols->ptr : NULL,
            .n_uncover = vols ? vols->n : 0,
        };
        bool running = false;
        pid_t pid = 0;
        uid_t root_kuid = 0;
        int r = inspect_driver(e, name, uuid, &running, &pid, out->driver, sizeof(out->driver),
                               err),
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

/* ---- the warm pool (run --fast) ----
 *
 * <ephemeral dir>/pool-<kind>-<key>/<container>/ holds one idle, started container's socket
 * directory and an unlocked lock file; <key> hashes everything the container was made with, so a
 * run is only ever handed a container it would have created itself. A run claims an entry by
 * locking it and renaming it out of the pool (into an ordinary ephemeral run directory): each
 * container is used once, then destroyed like any ephemeral one. After a --fast run a detached
 * process tops the pool up. */

static bool poolable(const struct backend_config *cfg)
{
        return cfg->ephemeral && cfg->pooled && !cfg->workspace && !cfg->n_binds && !cfg->n_ports;
}

static void pool_dir(enum engine_kind kind, const struct backend_config *cfg, const char *agent,
                     char *out, size_t len, char key[17])
{
        /* each pooled container gets a uuid of its own: not part of the key */
        cleanup_json json_t *c =
            container_config(kind, cfg, agent, POOL_KEY_UUID, NULL, NULL, false, NULL);
        cleanup_free char *text = NULL;
        char hex[65];

        json_object_del(c, "Labels"); /* per run: not part of what the container is */
        text = json_dumps(c, JSON_COMPACT | JSON_SORT_KEYS);
        SHA256Data((const uint8_t *)(text ? text : ""), text ? strlen(text) : 0, hex);
        memcpy(key, hex, 16);
        key[16] = '\0';
        (void)snprintf(out, len, "%s/pool-%s-%s", cfg->ref.run_dir, engine_name(kind), key);
}

/* Claims a ready container: returns a connected agent fd and fills s, or -ENOENT. */
static int pool_claim(const struct engine *e, const char *pool, const char *eph,
                      struct engine_session *s)
{
        DIR *d = opendir(pool);
        struct dirent *de;
        int fd = -ENOENT;

        if (!d)
                return -ENOENT;
        while (fd < 0 && (de = readdir(d))) {
                char lock[PATH_MAX], dest[PATH_MAX];
                struct container_rt rt;
                int lk;
                if (de->d_name[0] == '.' || strncmp(de->d_name, "agentkernel-pool-", 17) != 0)
                        continue;
                (void)snprintf(lock, sizeof(lock), "%s/%s/lock", pool, de->d_name);
                lk = open(lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
                if (lk < 0 || flock(lk, LOCK_EX | LOCK_NB) < 0) {
                        if (lk >= 0)
                                close(lk);
                        continue; /* another run is taking it */
                }
                (void)snprintf(dest, sizeof(dest), "%s/%s-%s", eph, engine_name(e->kind),
                               de->d_name);
                if (renameat(dirfd(d), de->d_name, AT_FDCWD, dest) < 0) {
                        close(lk);
                        continue;
                }
                /* the container's agent, as the refill recorded it (host-only files) */
                fd = container_rt_read(dest, &rt, NULL);
                if (fd >= 0)
                        fd = container_connect(&rt, rt.uuid, NULL);
                if (fd < 0) { /* its container died (an engine restart): discard it */
                        (void)remove_container(e, de->d_name, NULL, false, NULL);
                        (void)rm_rf_at(AT_FDCWD, dest);
                        close(lk);
                        fd = -ENOENT;
                        continue;
                }
                s->eng = *e;
                s->lock_fd = lk;
                (void)snprintf(s->container, sizeof(s->container), "%s", de->d_name);
                (void)snprintf(s->dir, sizeof(s->dir), "%s", dest);
        }
        closedir(d);
        return fd;
}

/* Ready (visible) entries in one pool directory, or in all of kind's when pool is NULL. */
static unsigned pool_count(const char *dir, const char *prefix)
{
        DIR *d = opendir(dir);
        struct dirent *de;
        unsigned n = 0;

        if (!d)
                return 0;
        while ((de = readdir(d)))
                if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
                        n++;
        closedir(d);
        return n;
}

static unsigned pool_total(enum engine_kind kind, const char *eph)
{
        char prefix[32], path[PATH_MAX];
        DIR *d = opendir(eph);
        struct dirent *de;
        unsigned n = 0;

        if (!d)
                return 0;
        (void)snprintf(prefix, sizeof(prefix), "pool-%s-", engine_name(kind));
        while ((de = readdir(d)))
                if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) {
                        (void)snprintf(path, sizeof(path), "%s/%s", eph, de->d_name);
                        n += pool_count(path, "agentkernel-pool-");
                }
        closedir(d);
        return n;
}

/* Makes one idle container in pool: hidden until its agent answers, then published. */
static int pool_add(const struct engine *e, const struct backend_config *cfg, const char *agent,
                    const char *pool, const char *key, const char *user,
                    const struct image_volumes *vols)
{
        char name[64], hidden[PATH_MAX], ready[PATH_MAX], path[256], uuid[37];
        char hex[13], why[512];
        cleanup_json json_t *conf = NULL;
        struct container_rt rt;
        struct disk_outcome out = {0};
        struct ak_err err = {0};
        int st, fd, r = -EIO;

        random_hex(hex, 6);
        uuid_v7(uuid, (uint64_t)(now_realtime_ns() / 1000000));
        (void)snprintf(name, sizeof(name), "agentkernel-pool-%s", hex);
        (void)snprintf(hidden, sizeof(hidden), "%s/.%s", pool, name);
        (void)snprintf(ready, sizeof(ready), "%s/%s", pool, name);
        (void)snprintf(path, sizeof(path), "%s/lock", hidden);
        if (mkdir_p(hidden, 0700) < 0 ||
            (fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600)) < 0)
                return -EIO;
        close(fd);
        conf = container_config(e->kind, cfg, agent, uuid, user, key, false, vols);
        if (create_container(e, name, conf, why, sizeof(why), &err) >= 0) {
                (void)snprintf(path, sizeof(path), "/containers/%s/start", name);
                st = engine_call(e, "POST", path, NULL, NULL, NULL);
                if (st >= 200 && st < 300 &&
                    (fd = settle(e, name, uuid, cfg, false, 0, vols, &rt, &out, NULL)) >= 0) {
                        close(fd);
                        if (container_rt_write(hidden, &rt, NULL) >= 0)
                                r = rename(hidden, ready) < 0 ? -errno : 0;
                }
        }
        if (r < 0) {
                (void)remove_container(e, name, NULL, false, NULL);
                (void)rm_rf_at(AT_FDCWD, hidden);
        }
        return r;
}

/* Tops the pool up to POOL_TARGET in a detached process (one refill per pool at a time), so the
 * run that triggered it does not wait. */
static void pool_refill(const struct engine *e, const struct backend_config *cfg, const char *agent,
                        const char *pool, const char *key)
{
        int ready[2];
        pid_t pid;

        /* The run returns only once the refiller holds the pool's refill lock (or found another
         * refill at it): a `pool clear` after the run then waits for the refill instead of
         * racing it. */
        if (pipe2(ready, O_CLOEXEC) < 0)
                return;
        pid = fork();
        if (pid < 0) {
                close(ready[0]);
                close(ready[1]);
                return;
        }
        if (pid > 0) {
                struct pollfd pfd = {ready[0], POLLIN, 0};
                close(ready[1]);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                (void)poll(&pfd, 1, 5000); /* EOF: the refiller has the lock, or gave up */
                close(ready[0]);
                return;
        }
        /* the intermediate child exits at once: the refiller is nobody's child to wait for */
        if (setsid() < 0 || fork() != 0)
                _exit(0);
        {
                char lockpath[PATH_MAX + 16];
                cleanup_json json_t *info = NULL;
                struct image_volumes vols;
                const char *user;
                int null = open("/dev/null", O_RDWR | O_CLOEXEC), lk;
                if (null >= 0) {
                        (void)dup2(null, 0);
                        (void)dup2(null, 1);
                        (void)dup2(null, 2);
                }
                (void)close_all_fds_except(3, &ready[1], 1);
                (void)signal(SIGPIPE, SIG_IGN);
                (void)snprintf(lockpath, sizeof(lockpath), "%s/.refill.lock", pool);
                lk = mkdir_p(pool, 0700) < 0
                         ? -1
                         : open(lockpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (lk < 0 || flock(lk, LOCK_EX | LOCK_NB) < 0)
                        _exit(0); /* another refill is at it */
                close(ready[1]);
                if (ensure_image(e, cfg->image, &info, NULL) < 0 ||
                    image_volumes_of(info, cfg, &vols, NULL) < 0)
                        _exit(0);
                user = json_string_value(json_object_get(json_object_get(info, "Config"), "User"));
                while (pool_count(pool, "agentkernel-pool-") < POOL_TARGET &&
                       pool_total(e->kind, cfg->ref.run_dir) < POOL_MAX)
                        if (pool_add(e, cfg, agent, pool, key, user, &vols) < 0)
                                break;
                _exit(0);
        }
}

int engine_pool_clear(enum engine_kind kind, const char *ephemeral_dir, unsigned *ret_removed,
                      struct ak_err *err)
{
        char prefix[32];
        struct engine e;
        struct dirent *de;
        unsigned removed = 0;
        DIR *d;
        int r = engine_open(kind, &e, err);

        if (r < 0)
                return r;
        d = opendir(ephemeral_dir);
        (void)snprintf(prefix, sizeof(prefix), "pool-%s-", engine_name(kind));
        while (d && (de = readdir(d))) {
                char pool[PATH_MAX], lockpath[PATH_MAX + 16];
                struct dirent *ee;
                DIR *p;
                int lk;
                if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
                        continue;
                (void)snprintf(pool, sizeof(pool), "%s/%s", ephemeral_dir, de->d_name);
                /* wait for a refill in progress: it would otherwise add behind our back */
                (void)snprintf(lockpath, sizeof(lockpath), "%s/.refill.lock", pool);
                lk = open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
                if (lk >= 0)
                        (void)flock(lk, LOCK_EX);
                p = opendir(pool);
                while (p && (ee = readdir(p))) {
                        const char *n = ee->d_name[0] == '.' ? ee->d_name + 1 : ee->d_name;
                        char entry_lock[PATH_MAX + 300];
                        int el;
                        if (strncmp(n, "agentkernel-pool-", 17) != 0)
                                continue;
                        (void)snprintf(entry_lock, sizeof(entry_lock), "%s/%s/lock", pool,
                                       ee->d_name);
                        el = open(entry_lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
                        if (el >= 0 && flock(el, LOCK_EX | LOCK_NB) < 0) {
                                close(el);
                                continue; /* being claimed right now */
                        }
                        if (remove_container(&e, n, NULL, false, NULL) == 0) {
                                (void)rm_rf_at(dirfd(p), ee->d_name);
                                removed++;
                        }
                        if (el >= 0)
                                close(el);
                }
                if (p)
                        closedir(p);
                /* an emptied pool goes entirely (entries being claimed keep it) */
                (void)unlink(lockpath);
                (void)rmdir(pool);
                if (lk >= 0)
                        close(lk);
        }
        if (d)
                closedir(d);
        if (ret_removed)
                *ret_removed = removed;
        return 0;
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
         * settle() accepts only where the container's root is not host root */
        bool inject = geteuid() == 0 && (cfg->workspace || cfg->n_binds);
        uint32_t id_base = 0;
        int r, st, fd, lock_fd = -1;

        if (streq(cfg->image, "host"))
                return ak_err_set(err, EINVAL,
                                  "the %s backend runs container images, not the 'host' image; "
                                  "name one with --image (e.g. -i alpine:3.20)",
                                  engine_name(kind));
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
        if (poolable(cfg)) {
                struct engine_session *s = calloc(1, sizeof(*s));
                char pool[PATH_MAX], key[17];
                if (!s)
                        return ak_err_oom(err);
                pool_dir(kind, cfg, agent, pool, sizeof(pool), key);
                fd = pool_claim(&e, pool, cfg->ref.run_dir, s);
                pool_refill(&e, cfg, agent, pool, key);
                if (fd >= 0) {
                        s->pooled = true;
                        ret_session->chan_fd = fd;
                        ret_session->priv = s;
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
        /* a leftover of ours (an earlier start that crashed) goes first */
        r = remove_container(&e, name, cfg->ref.uuid, false, err);
        if (r >= 0)
                r = ensure_image(&e, cfg->image, &info, err);
        if (r >= 0)
                r = image_volumes_of(info, cfg, &vols, err);
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
        conf = container_config(kind, cfg, agent, cfg->ref.uuid, user, NULL, inject, &vols);
        r = create_container(&e, name, conf, out.why, sizeof(out.why), err);
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
        fd = settle(&e, name, cfg->ref.uuid, cfg, inject, id_base, &vols, &rt, &out, err);
        if (fd < 0) {
                r = fd;
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
        (void)remove_container(&e, name, cfg->ref.uuid, false, NULL);
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
        if (s->pooled) {
                /* --fast: the caller has its exit status; the container goes in the background
                 * (a detached process that holds the run's lock until it is gone, so a sweep
                 * never races it, and removes it should this one die). */
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
                        (void)remove_container(&s->eng, s->container, NULL, false, NULL);
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
        (void)remove_container(&s->eng, s->container, NULL, false, NULL);
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
        r = remove_container(&e, name, ref->uuid, graceful, err);
        if (r >= 0 && ref->run_dir) {
                int k = rm_rf_at(AT_FDCWD, ref->run_dir);
                if (k < 0)
                        r = ak_err_errno(err, -k, "remove '%s'", ref->run_dir);
        }
        return r;
}

static int engine_status(enum engine_kind kind, const struct sandbox_ref *ref,
                         struct backend_status *ret)
{
        struct engine e;
        char name[128];
        bool running = false;
        pid_t pid = 0;

        if (engine_open(kind, &e, NULL) < 0)
                return 0;
        container_name(ref, false, name, sizeof(name));
        if (inspect(&e, name, ref->uuid, &running, &pid, NULL) > 0 && running) {
                ret->running = true;
                ret->pid = pid;
        }
        return 0;
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
        return r < 0 ? r : ensure_image(&e, image, &info, err);
}

/* One thin table per engine. */
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
            .caps = BACKEND_CAP_ATTACH | BACKEND_CAP_RESIZE,                                       \
            .probe = id##_probe,                                                                   \
            .start = id##_start,                                                                   \
            .finish = engine_finish,                                                               \
            .stop = id##_stop,                                                                     \
            .cleanup = id##_cleanup,                                                               \
            .status = id##_status,                                                                 \
            .connect = engine_connect,                                                             \
            .resize = id##_resize,                                                                 \
            .prepare = id##_prepare,                                                               \
            .sweep = id##_sweep,                                                                   \
            .describe = engine_describe,                                                           \
            .pool_clear = id##_pool_clear,                                                         \
        }

ENGINE_OPS(ENGINE_DOCKER, docker, "Docker containers through the Engine API, our agent inside");
ENGINE_OPS(ENGINE_PODMAN, podman, "Podman containers through its Docker-compatible API");
