// SPDX-License-Identifier: Apache-2.0
/*
 * A docker or podman sandbox's container configuration: our agent as its entrypoint, the
 * hardening every container gets (capabilities of the profile only, no-new-privileges, our
 * seccomp profile, no healthcheck), its limits, its mounts, and how what it writes is bounded.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/engine-private.h"
#include "core/backend.h"
#include "core/egress.h"
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
#include "shared/strv.h"

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
int engine_config_image_volumes(json_t *image_info, const struct backend_config *cfg,
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

/* ---- the engine's refusal of StorageOpt, remembered ----
 *
 * An engine whose driver has no quota refuses the size after it has done most of a create's
 * work (podman: ~20 ms), and every create would then be made twice. The refusal is kept in
 * <data>/engine/<kind>-storage-opt for STORAGE_OPT_MEMO_S, with the identity of the engine's
 * socket (device, inode, change time: a restarted engine makes its socket anew, and may have
 * another driver): within that, creates go without the size at once, with the same reason. */
#define STORAGE_OPT_MEMO_S 600
#define STORAGE_OPT_MEMO_MAX 1024

static int storage_opt_memo_path(const struct engine *e, char *out, size_t len, char *key,
                                 size_t key_len)
{
        cleanup_free char *data = paths_data_dir();
        struct stat st;

        if (!data || stat(e->socket, &st) < 0)
                return -ENOENT;
        (void)snprintf(key, key_len, "%s %llu %llu %lld.%09ld\n", e->socket,
                       (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
                       (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
        if (snprintf(out, len, "%s/engine/%s-storage-opt", data, engine_name(e->kind)) >= (int)len)
                return -ENAMETOOLONG;
        return 0;
}

/* Whether the memo says this engine refuses StorageOpt: why gets its reason. */
static bool storage_opt_memo_refused(const struct engine *e, char *why, size_t why_len)
{
        char path[PATH_MAX], key[PATH_MAX];
        cleanup_close int fd = -1;
        cleanup_buf struct buf b = BUF_INIT;
        struct stat st;
        struct timespec now;
        size_t kl;

        if (storage_opt_memo_path(e, path, sizeof(path), key, sizeof(key)) < 0)
                return false;
        fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        /* only a regular file of ours that nobody else can write, and a recent one */
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
            (st.st_mode & 022) || clock_gettime(CLOCK_REALTIME, &now) < 0 ||
            now.tv_sec < st.st_mtim.tv_sec || now.tv_sec - st.st_mtim.tv_sec > STORAGE_OPT_MEMO_S)
                return false;
        if (read_fd_full(fd, &b, STORAGE_OPT_MEMO_MAX) < 0 || !b.data)
                return false;
        kl = strlen(key);
        if (b.len <= kl || memcmp(b.data, key, kl) != 0 || memchr(b.data, '\0', b.len))
                return false;
        (void)snprintf(why, why_len, "%.*s", (int)(b.len - kl), b.data + kl);
        return true;
}

static void storage_opt_memo_write(const struct engine *e, const char *why)
{
        char path[PATH_MAX], key[PATH_MAX];
        cleanup_free char *text = NULL;
        char *slash;

        if (storage_opt_memo_path(e, path, sizeof(path), key, sizeof(key)) < 0 ||
            asprintf(&text, "%s%.*s", key, STORAGE_OPT_MEMO_MAX / 2, why) < 0)
                return;
        slash = strrchr(path, '/');
        *slash = '\0';
        if (mkdir_p(path, 0700) < 0)
                return;
        *slash = '/';
        (void)write_file_atomic_at(AT_FDCWD, path, text, strlen(text), 0600, true);
}

/* Creates container name from conf. When conf gives the root a size the engine cannot enforce
 * (it says so, now or within the memo's time), creates it without: returns 1 with a quota, 0
 * without (why: the engine's reason), <0 an error. */
int engine_config_create(const struct engine *e, const char *name, json_t *conf, char *why,
                         size_t why_len, struct ak_err *err)
{
        json_t *hc = json_object_get(conf, "HostConfig");
        bool sized = json_object_get(hc, "StorageOpt") != NULL;
        char path[256];
        int st;

        (void)snprintf(path, sizeof(path), "/containers/create?name=%s", name);
        if (sized && storage_opt_memo_refused(e, why, why_len)) {
                json_object_del(hc, "StorageOpt");
                st = engine_call(e, "POST", path, conf, NULL, err);
                return st < 0 ? st : st >= 300 ? -err->code : 0;
        }
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
                storage_opt_memo_write(e, m);
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
size_t engine_config_host_mounts(const struct backend_config *cfg, uint32_t id_base,
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
json_t *engine_config_container(enum engine_kind kind, const struct backend_config *cfg,
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
        size_t n_mounts = engine_config_host_mounts(cfg, 0, mounts, ARRAY_SIZE(mounts));
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
        if (cfg->network == NET_MODE_PROXY) {
                cleanup_strv char **env = strv_env_merge(egress_proxy_env, cfg->env);
                json_object_set_new(c, "Env", strv_json(env));
        } else {
                json_object_set_new(c, "Env", strv_json(cfg->env));
        }
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
        json_object_set_new(hc, "NetworkMode",
                            json_string(cfg->network == NET_MODE_FULL ? "bridge" : "none"));
        json_object_set_new(hc, "Init", json_false());
        /* the engine publishes ports in full mode only (bridge); proxy mode's go through the
         * port relay (backend/port-relay.h), none's are not published */
        for (size_t i = 0; cfg->network == NET_MODE_FULL && i < cfg->n_ports; i++) {
                char key[32], hp[16];
                const char *proto = cfg->ports[i].udp ? "udp" : "tcp";
                (void)snprintf(key, sizeof(key), "%u/%s", cfg->ports[i].container_port, proto);
                (void)snprintf(hp, sizeof(hp), "%d",
                               cfg->ports[i].host_port > 0 ? cfg->ports[i].host_port
                                                           : (int)cfg->ports[i].container_port);
                json_object_set_new(
                    ports, key, json_pack("[{s:s,s:s}]", "HostIp", "127.0.0.1", "HostPort", hp));
                json_object_set_new(exposed, key, json_object());
        }
        json_object_set_new(hc, "PortBindings", ports);
        json_object_set_new(c, "ExposedPorts", exposed);
        json_object_set_new(c, "HostConfig", hc);
        return c;
}
