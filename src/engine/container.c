// SPDX-License-Identifier: Apache-2.0
/*
 * Reaching and preparing a started container from the host (see container.h). The recipe of
 * container_settle is linear: pin the agent's process, connect through the container's own root
 * (only the agent has run in it yet), check the peer, find the agent's state directory fd, then
 * in a forked child that joins the container's mount namespace: detach the state tmpfs and attach
 * the idmapped host mounts. It never follows a path the container could have changed since.
 */
#include "container.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/client.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/mount-api.h"
#include "shared/random-util.h"
#include "shared/time-util.h"

#define RESERVED_DIR "/.agentkernel"   /* ours in every container */
#define STATE_REL ".agentkernel/state" /* CONTAINER_STATE_DIR below the container's root */
#define SOCKET_REL STATE_REL "/" CONTAINER_SOCKET
#define CONTAINER_IDS 65536u /* container ids given a place on host mounts: 0..65535 */
#define IDMAP_LINES_MAX 64   /* of an idmapped mount's user namespace (the kernel allows 340) */
#define RT_FILE_MAX 4096
#define MOUNTS_MAX 64

static int openat2_fd(int dirfd, const char *path, uint64_t flags, uint64_t resolve)
{
        struct open_how how = {.flags = flags | O_CLOEXEC, .resolve = resolve};
        int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
        return fd < 0 ? -errno : fd;
}

/* An O_PATH fd of /proc/<pid>: lookups through it fail once that process is gone, so a pid
 * recycled meanwhile is never mistaken for it. */
static int pin_process(pid_t pid, uint64_t *ret_start_time)
{
        cleanup_close int pin = -1;
        cleanup_close int stat_fd = -1;
        cleanup_buf struct buf b = BUF_INIT;
        char path[32];
        const char *p;
        int field = 2;

        if (pid <= 0)
                return -ESRCH;
        (void)snprintf(path, sizeof(path), "/proc/%d", (int)pid);
        pin = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (pin < 0)
                return errno == ENOENT ? -ESRCH : -errno;
        stat_fd = openat(pin, "stat", O_RDONLY | O_CLOEXEC);
        if (stat_fd < 0 || read_fd_full(stat_fd, &b, 8192) < 0 || !b.data)
                return -ESRCH;
        p = strrchr(b.data, ')');
        if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X' || p[2] == 'x')
                return -ESRCH; /* malformed, or a zombie: gone for every purpose of ours */
        for (p++; *p && field < 22; p++)
                if (*p == ' ')
                        field++;
        *ret_start_time = strtoull(p, NULL, 10);
        return TAKE_FD(pin);
}

static bool pin_alive(int pin)
{
        struct stat st;
        return fstatat(pin, "stat", &st, 0) == 0;
}

/* Whether the pinned process shares this one's namespace ns ("ns/mnt", "ns/user"). */
static bool same_ns(int pin, const char *ns)
{
        char self[32];
        struct stat a, b;

        (void)snprintf(self, sizeof(self), "/proc/self/%s", ns);
        return stat(self, &a) == 0 && fstatat(pin, ns, &b, 0) == 0 && a.st_dev == b.st_dev &&
               a.st_ino == b.st_ino;
}

/* Connects to the unix socket that the O_PATH fd sock names (no path is looked up again). */
static int connect_opath(int sock)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -errno;
        (void)snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d", sock);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/* The peer must be pid itself (the agent made its socket; nothing else in the container did). */
static int check_peer(int fd, pid_t pid, struct ak_err *err)
{
        struct ucred cr;
        socklen_t len = sizeof(cr);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
                return ak_err_errno(err, errno, "peer credentials");
        if (cr.pid != pid)
                return ak_err_set(err, EPERM,
                                  "the socket found is not the agent's (its peer is pid %d, the "
                                  "agent is pid %d)",
                                  (int)cr.pid, (int)pid);
        return 0;
}

/* Checks that the connection fd reaches the agent: the pinned process, serving uuid. */
static int check_agent(int fd, int pin, pid_t pid, const char *uuid, struct ak_err *err)
{
        int r = check_peer(fd, pid, err);

        if (r < 0)
                return r;
        /* the pid checked is still the process we pinned (not a recycled number) */
        if (!pin_alive(pin))
                return ak_err_set(err, ESRCH, "the agent exited");
        return agent_identify(fd, uuid, err);
}

/* Connects to the socket at sock (O_PATH), checks the peer and the uuid. */
static int connect_checked(int sock, int pin, pid_t pid, const char *uuid, struct ak_err *err)
{
        struct stat st;
        cleanup_close int fd = -1;
        int r;

        if (fstat(sock, &st) < 0 || !S_ISSOCK(st.st_mode))
                return ak_err_set(err, ENOTSOCK, "the agent's socket is not a socket");
        fd = connect_opath(sock);
        if (fd < 0)
                return ak_err_errno(err, -fd, "connect to the agent");
        r = check_agent(fd, pin, pid, uuid, err);
        return r < 0 ? r : TAKE_FD(fd);
}

/* The agent's socket (O_PATH) reached through the pinned agent's own descriptor of its state
 * directory, with a connection to it checked (peer = the agent, serving uuid) in *conn. */
static int agent_socket_checked(const struct container_rt *rt, const char *uuid, int *conn,
                                struct ak_err *err)
{
        cleanup_close int pin = -1;
        cleanup_close int dir = -1;
        cleanup_close int sock = -1;
        uint64_t start = 0;
        struct stat st;
        char path[32];

        pin = pin_process(rt->pid, &start);
        if (pin < 0 || start != rt->start_time)
                return ak_err_set(err, ESRCH, "its agent (pid %d) is gone", (int)rt->pid);
        (void)snprintf(path, sizeof(path), "fd/%d", rt->state_fd);
        dir = openat(pin, path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0 || fstat(dir, &st) < 0 || st.st_dev != rt->state_dev ||
            st.st_ino != rt->state_ino)
                return ak_err_set(err, ESRCH, "its agent no longer holds its state directory");
        sock = openat(dir, CONTAINER_SOCKET, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (sock < 0)
                return ak_err_errno(err, errno, "the agent's socket");
        *conn = connect_checked(sock, pin, rt->pid, uuid, err);
        return *conn < 0 ? *conn : TAKE_FD(sock);
}

int container_agent_socket(const struct container_rt *rt, const char *uuid, struct ak_err *err)
{
        cleanup_close int conn = -1;

        return agent_socket_checked(rt, uuid, &conn, err); /* checked: it is the agent's */
}

int container_connect(const struct container_rt *rt, const char *uuid, struct ak_err *err)
{
        cleanup_close int sock = -1;
        int conn = -1;

        sock = agent_socket_checked(rt, uuid, &conn, err);
        return sock < 0 ? sock : conn;
}

/* Waits for the agent's socket in the container's tree (before anything but the agent ran). */
static int wait_socket(int pin, int root, pid_t pid, const char *uuid, int timeout_ms,
                       struct ak_err *err)
{
        int64_t deadline = now_monotonic_ns() + (int64_t)timeout_ms * NSEC_PER_MSEC;

        for (;;) {
                cleanup_close int sock = openat2_fd(root, SOCKET_REL, O_PATH | O_NOFOLLOW,
                                                    RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
                struct stat st;

                if (sock >= 0 && fstat(sock, &st) == 0 && S_ISSOCK(st.st_mode)) {
                        cleanup_close int fd = connect_opath(sock);
                        if (fd >= 0) { /* it listens */
                                int r = check_agent(fd, pin, pid, uuid, err);
                                return r < 0 ? r : TAKE_FD(fd);
                        }
                }
                if (!pin_alive(pin))
                        return ak_err_set(err, EIO,
                                          "it exited before its agent started (is the "
                                          "image's platform this machine's?)");
                if (now_monotonic_ns() > deadline)
                        return ak_err_set(err, ETIMEDOUT, "its agent did not start within %d s",
                                          timeout_ms / 1000);
                (void)poll(NULL, 0, 5);
        }
}

/* The agent's fd (as /proc/<pid>/fd/N) of the directory with this device and inode. */
static int find_fd(int pin, const struct stat *want)
{
        cleanup_close int fds = openat(pin, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *d;
        struct dirent *de;
        int found = -ENOENT;

        if (fds < 0)
                return -errno;
        d = fdopendir(fds);
        if (!d)
                return -errno;
        fds = -1; /* the DIR has it */
        while ((de = readdir(d))) {
                struct stat st;
                char *end;
                long n = strtol(de->d_name, &end, 10);
                if (*end || end == de->d_name || n < 0 || n > 65535)
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode) &&
                    st.st_dev == want->st_dev && st.st_ino == want->st_ino &&
                    (found < 0 || n < found))
                        found = (int)n;
        }
        closedir(d);
        return found;
}

/* ---- idmapped host mounts ---- */

struct id_range {
        uint32_t inner, outer, count; /* a line of a uid_map: inner id, host id, count */
};

static int read_id_map(int pin, const char *file, struct id_range *out, size_t max, size_t *ret_n)
{
        cleanup_close int fd = openat(pin, file, O_RDONLY | O_CLOEXEC);
        cleanup_buf struct buf b = BUF_INIT;
        size_t n = 0;
        char *line, *save = NULL;

        if (fd < 0 || read_fd_full(fd, &b, 65536) < 0 || !b.data)
                return -ESRCH;
        for (line = strtok_r(b.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                unsigned long a, h, c;
                if (sscanf(line, "%lu %lu %lu", &a, &h, &c) != 3)
                        return -EBADMSG;
                if (n == max)
                        return -E2BIG;
                out[n++] = (struct id_range){(uint32_t)a, (uint32_t)h, (uint32_t)c};
        }
        *ret_n = n;
        return 0;
}

/* The host id of container id 0 under map, or -ENOENT. */
static int64_t map_root(const struct id_range *map, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (map[i].inner == 0 && map[i].count > 0)
                        return map[i].outer;
        return -ENOENT;
}

/* The lines of an idmapped mount's user namespace, as "disk id, host id, count": disk owner is
 * container root (its host id under the container's own map), disk base + k is container id k
 * (0 < k < CONTAINER_IDS). The kernel shows the mount's files through this: a container process
 * writes as the disk id its host id maps from. An owner that is root, or that lies in the range,
 * becomes base (as if the directory were mounted plain for a container whose ids are base + k). */
static int build_idmap(const struct id_range *cmap, size_t n, uint32_t owner, uint32_t base,
                       char *out, size_t len)
{
        size_t off = 0, lines = 0;
        int64_t root = map_root(cmap, n);

        if (root < 0)
                return -ENOENT;
        if (owner == 0 || (owner >= base && owner - base < CONTAINER_IDS))
                owner = base;
        off += (size_t)snprintf(out + off, len - off, "%u %u 1\n", owner, (uint32_t)root);
        lines++;
        for (size_t i = 0; i < n; i++) {
                uint64_t lo = MAX((uint64_t)cmap[i].inner, (uint64_t)1);
                uint64_t hi = MIN((uint64_t)cmap[i].inner + cmap[i].count, (uint64_t)CONTAINER_IDS);
                if (lo >= hi)
                        continue;
                if (++lines > IDMAP_LINES_MAX || off >= len)
                        return -E2BIG;
                off += (size_t)snprintf(out + off, len - off, "%u %u %u\n", base + (uint32_t)lo,
                                        cmap[i].outer + (uint32_t)(lo - cmap[i].inner),
                                        (uint32_t)(hi - lo));
        }
        return off < len ? 0 : -E2BIG;
}

/* A user namespace with these maps (for MOUNT_ATTR_IDMAP), as an fd. */
static int make_userns(const char *uid_map, const char *gid_map, struct ak_err *err)
{
        int ready[2] = {-1, -1}, hold[2] = {-1, -1};
        char path[64], c;
        int fd = -1, r = 0;
        pid_t pid;

        if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(hold, O_CLOEXEC) < 0) {
                r = ak_err_errno(err, errno, "pipe");
                goto out;
        }
        pid = fork();
        if (pid < 0) {
                r = ak_err_errno(err, errno, "fork");
                goto out;
        }
        if (pid == 0) {
                /* only system calls from here: the parent may have threads */
                char ok = unshare(CLONE_NEWUSER) == 0 ? 'y' : 'n';
                close(hold[1]);
                if (write(ready[1], &ok, 1) != 1)
                        _exit(1);
                /* until the parent has the namespace */
                _exit(read(hold[0], &c, 1) < 0 ? 1 : 0);
        }
        close(ready[1]);
        ready[1] = -1;
        if (read(ready[0], &c, 1) != 1 || c != 'y') {
                r = ak_err_set(err, EPERM, "cannot create a user namespace for an idmapped mount");
        } else {
                (void)snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
                r = write_file_string(path, uid_map);
                if (r >= 0) {
                        (void)snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
                        r = write_file_string(path, gid_map);
                }
                if (r < 0) {
                        r = ak_err_errno(err, -r, "write the id map of an idmapped mount");
                } else {
                        (void)snprintf(path, sizeof(path), "/proc/%d/ns/user", (int)pid);
                        fd = open(path, O_RDONLY | O_CLOEXEC);
                        if (fd < 0)
                                r = ak_err_errno(err, errno, "open '%s'", path);
                }
        }
        close(hold[1]);
        hold[1] = -1;
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
out:
        for (int i = 0; i < 2; i++) {
                if (ready[i] >= 0)
                        close(ready[i]);
                if (hold[i] >= 0)
                        close(hold[i]);
        }
        return r < 0 ? r : fd;
}

/* A detached, idmapped, nosuid, nodev copy of the host tree at m->source (recursive, as the
 * engines bind). */
static int idmapped_tree(const struct container_mount *m, const struct id_range *umap, size_t nu,
                         const struct id_range *gmap, size_t ng, struct ak_err *err)
{
        cleanup_close int tree = -1;
        cleanup_close int userns = -1;
        char uids[IDMAP_LINES_MAX * 40], gids[IDMAP_LINES_MAX * 40];
        struct mount_attr attr = {
            .attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                        (m->ro ? MOUNT_ATTR_RDONLY : 0),
        };
        struct stat st;
        int r;

        tree = open_tree(AT_FDCWD, m->source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
        if (tree < 0)
                return ak_err_errno(err, errno, "cannot mount '%s'", m->source);
        /* the owner of what was opened, not of whatever the path names now */
        if (fstat(tree, &st) < 0)
                return ak_err_errno(err, errno, "stat '%s'", m->source);
        r = build_idmap(umap, nu, m->by_owner ? (uint32_t)st.st_uid : 0, m->base, uids,
                        sizeof(uids));
        if (r >= 0)
                r = build_idmap(gmap, ng, m->by_owner ? (uint32_t)st.st_gid : 0, m->base, gids,
                                sizeof(gids));
        if (r < 0)
                return ak_err_errno(err, -r, "no id mapping for '%s' (owner %u)", m->source,
                                    (unsigned)st.st_uid);
        userns = make_userns(uids, gids, err);
        if (userns < 0)
                return userns;
        attr.userns_fd = (uint64_t)userns;
        if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
                return ak_err_set(err, errno,
                                  "cannot idmap '%s' for the container: %s (files the sandbox "
                                  "writes there would be owned by root; put it on a filesystem "
                                  "that supports idmapped mounts, or use the native backend)",
                                  m->source, strerror(errno));
        return TAKE_FD(tree);
}

/* ---- the engine's mounts, as the container sees them ---- */

/* Whether path is top or below it. */
static bool at_or_below(const char *path, const char *top)
{
        size_t n = strlen(top);

        if (streq(top, "/"))
                return true;
        return strncmp(path, top, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/* Undoes mountinfo's octal escapes (\040 for a space, ...) in place. */
static void unescape_mountinfo(char *s)
{
        char *w = s;

        for (const char *r = s; *r; r++, w++) {
                if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
                    r[3] >= '0' && r[3] <= '7') {
                        *w = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
                        r += 3;
                } else {
                        *w = *r;
                }
        }
        *w = '\0';
}

/* The kernel's own filesystems: they hold no data a container could pile up (proc and sysfs
 * files, pty devices, cgroup control files; POSIX message queues are bounded by
 * RLIMIT_MSGQUEUE and the ipc namespace's queue limits). */
static bool kernel_fs(const char *type)
{
        static const char *const types[] = {"proc",   "sysfs",  "devpts",
                                            "mqueue", "cgroup", "cgroup2"};

        for (size_t i = 0; i < ARRAY_SIZE(types); i++)
                if (streq(type, types[i]))
                        return true;
        return false;
}

/* The engine's writable mounts that nothing of ours accounts for, from the container's
 * mountinfo (read before anything but the agent ran in it): what the engine bound from its own
 * storage (/etc/hosts, /etc/hostname, /etc/resolv.conf: files on the host's disk) and its memory
 * filesystems (/dev, v1's /sys/fs/cgroup). Left out: the root (the storage driver's business),
 * ours (/.agentkernel, the scratch places and what lies below them, which our disk covers, the
 * placeholders to uncover) and the host directories. */
static int plan_read_only(int pin, const struct container_mount *mounts, size_t n_mounts,
                          const struct container_disk *disk, struct container_ro *ret,
                          struct ak_err *err)
{
        static const char *const scratch[] = CONTAINER_SCRATCH_PLACES;
        cleanup_close int fd = openat(pin, "mountinfo", O_RDONLY | O_CLOEXEC);
        cleanup_buf struct buf b = BUF_INIT;
        struct container_ro ro = {0};
        char *line, *save = NULL;

        if (fd < 0 || read_fd_full(fd, &b, 4u << 20) < 0 || !b.data)
                return ak_err_set(err, EIO, "its mounts: cannot read its mountinfo");
        for (line = strtok_r(b.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *f[6], *p = line, *type = NULL, *tok;
                bool skip = false;
                size_t i;

                for (i = 0; i < 6 && (tok = strsep(&p, " ")); i++)
                        f[i] = tok;
                while (i == 6 && (tok = strsep(&p, " ")))
                        if (streq(tok, "-")) {
                                type = strsep(&p, " ");
                                break;
                        }
                if (i < 6 || !type)
                        return ak_err_set(err, EBADMSG, "its mounts: malformed mountinfo");
                unescape_mountinfo(f[4]);
                if (strncmp(f[5], "ro", 2) == 0 && (f[5][2] == ',' || f[5][2] == '\0'))
                        continue; /* read-only already */
                /* below /proc: the runtimes' masks (binds of a null device) and read-only parts */
                if (streq(f[4], "/") || kernel_fs(type) || at_or_below(f[4], RESERVED_DIR) ||
                    at_or_below(f[4], "/proc"))
                        continue;
                for (i = 0; i < ARRAY_SIZE(scratch) && !skip; i++)
                        skip = disk && disk->scratch_bytes && at_or_below(f[4], scratch[i]);
                for (i = 0; disk && i < disk->n_uncover && !skip; i++)
                        skip = at_or_below(f[4], disk->uncover[i]);
                for (i = 0; i < n_mounts && !skip; i++)
                        skip = at_or_below(f[4], mounts[i].dest);
                for (i = 0; i < ro.n && !skip; i++)
                        skip = streq(ro.path[i], f[4]); /* stacked: the top one is reached */
                if (skip)
                        continue;
                if (ro.n == CONTAINER_RO_MAX || strlen(f[4]) >= CONTAINER_PATH_MAX ||
                    f[4][0] != '/')
                        return ak_err_set(err, E2BIG,
                                          "its mounts: more than %d writable mounts of the "
                                          "engine's, or one at a path too long ('%.64s')",
                                          CONTAINER_RO_MAX, f[4]);
                (void)snprintf(ro.path[ro.n++], CONTAINER_PATH_MAX, "%s", f[4]);
        }
        *ret = ro;
        return 0;
}

/* ---- inside the container's mount namespace ---- */

struct join_result {
        int step; /* what failed: 0 none */
        int index;
        int err;
};

enum {
        JOIN_USERNS = 1,
        JOIN_MNTNS,
        JOIN_DETACH,
        JOIN_TARGET,
        JOIN_ATTACH,
        JOIN_DISK,
        JOIN_SCRATCH,
        JOIN_UNCOVER,
        JOIN_READONLY,
};

/* What the child does, all of it prepared by the parent (the child only makes system calls). */
struct join_plan {
        int userns, mntns;
        const int *trees; /* attached at mounts[i].dest */
        const struct container_mount *mounts;
        size_t n_trees;
        const struct container_disk *disk; /* may be NULL */
        char disk_opts[3][24];             /* size, uid, gid of the scratch tmpfs, as text */
        uid_t disk_uid;                    /* the same ids */
        gid_t disk_gid;
        const struct container_ro *ro;
};

static int open_target(const char *path, uint64_t flags)
{
        return openat2_fd(AT_FDCWD, path, O_PATH | flags,
                          RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
}

/* The scratch disk: a tmpfs attached for a moment where the agent's state was (nothing else has
 * run in the container; our binds need it attached to be cloned on older kernels), a directory
 * of it bound at each scratch place, then detached again: the binds keep it. */
static struct join_result scratch_disk(const struct join_plan *p)
{
        static const char *const places[] = CONTAINER_SCRATCH_PLACES;
        static const char *const names[] = {"tmp", "var-tmp", "run", "shm"};
        static const mode_t modes[] = {01777, 01777, 0755, 01777};
        cleanup_close int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
        cleanup_close int disk = -1;
        cleanup_close int at = -1;
        uid_t uid = p->disk_uid;
        gid_t gid = p->disk_gid;

        _Static_assert(ARRAY_SIZE(places) == CONTAINER_SCRATCH_N &&
                           ARRAY_SIZE(names) == CONTAINER_SCRATCH_N &&
                           ARRAY_SIZE(modes) == CONTAINER_SCRATCH_N,
                       "one name and mode per scratch place");
        if (fs < 0 || fsconfig(fs, FSCONFIG_SET_STRING, "size", p->disk_opts[0], 0) < 0 ||
            fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0755", 0) < 0 ||
            fsconfig(fs, FSCONFIG_SET_STRING, "uid", p->disk_opts[1], 0) < 0 ||
            fsconfig(fs, FSCONFIG_SET_STRING, "gid", p->disk_opts[2], 0) < 0 ||
            fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0 ||
            (disk = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV)) < 0)
                return (struct join_result){JOIN_DISK, 0, errno};
        at = open_target(CONTAINER_STATE_DIR, O_DIRECTORY);
        if (at < 0)
                return (struct join_result){JOIN_DISK, 0, -at};
        if (move_mount(disk, "", at, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                return (struct join_result){JOIN_DISK, 0, errno};
        for (size_t i = 0; i < CONTAINER_SCRATCH_N; i++) {
                struct mount_attr noexec = {.attr_set = MOUNT_ATTR_NOEXEC};
                cleanup_close int tree = -1;
                cleanup_close int t = -1;
                if (mkdirat(disk, names[i], 0700) < 0 ||
                    fchownat(disk, names[i], uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ||
                    fchmodat(disk, names[i], modes[i], 0) < 0 ||
                    (tree = open_tree(disk, names[i], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)) < 0 ||
                    /* as the engines mount /dev/shm, and native does */
                    (streq(names[i], "shm") &&
                     mount_setattr(tree, "", AT_EMPTY_PATH, &noexec, sizeof(noexec)) < 0))
                        return (struct join_result){JOIN_DISK, (int)i, errno};
                t = open_target(places[i], O_DIRECTORY);
                if (t < 0)
                        return (struct join_result){JOIN_SCRATCH, (int)i, -t};
                if (move_mount(tree, "", t, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) <
                    0)
                        return (struct join_result){JOIN_SCRATCH, (int)i, errno};
        }
        if (umount2(CONTAINER_STATE_DIR, MNT_DETACH | UMOUNT_NOFOLLOW) < 0)
                return (struct join_result){JOIN_DISK, 0, errno};
        return (struct join_result){0};
}

/* In a forked child: joins the container's namespaces (only system calls: the parent may have
 * threads), detaches the agent's state tmpfs, uncovers the image's volumes, attaches each tree
 * at its destination, gives the container its scratch disk and makes the planned mounts
 * read-only. */
static _noreturn_ void join_child(const struct join_plan *p, int report)
{
        struct join_result res = {0};

        if (p->userns >= 0 && setns(p->userns, CLONE_NEWUSER) < 0) {
                res = (struct join_result){JOIN_USERNS, 0, errno};
                goto out;
        }
        /* our root and working directory become the container's root */
        if (setns(p->mntns, CLONE_NEWNS) < 0) {
                res = (struct join_result){JOIN_MNTNS, 0, errno};
                goto out;
        }
        if (umount2(CONTAINER_STATE_DIR, MNT_DETACH | UMOUNT_NOFOLLOW) < 0) {
                res = (struct join_result){JOIN_DETACH, 0, errno};
                goto out;
        }
        /* first (the engine may have made other mount points inside them): the engine's
         * placeholder goes; the root's own directory shows (paths checked by
         * the caller: absolute, no '..', nothing of the kernel's or ours) */
        for (size_t i = 0; p->disk && i < p->disk->n_uncover; i++)
                if (umount2(p->disk->uncover[i], MNT_DETACH | UMOUNT_NOFOLLOW) < 0) {
                        res = (struct join_result){JOIN_UNCOVER, (int)i, errno};
                        goto out;
                }
        for (size_t i = 0; i < p->n_trees; i++) {
                int t = open_target(p->mounts[i].dest, O_DIRECTORY);
                if (t < 0) {
                        res = (struct join_result){JOIN_TARGET, (int)i, -t};
                        goto out;
                }
                if (move_mount(p->trees[i], "", t, "",
                               MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) {
                        res = (struct join_result){JOIN_ATTACH, (int)i, errno};
                        goto out;
                }
                close(t);
        }
        if (p->disk && p->disk->scratch_bytes) {
                res = scratch_disk(p);
                if (res.step)
                        goto out;
        }
        for (size_t i = 0; i < p->ro->n; i++) {
                struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
                int t = open_target(p->ro->path[i], 0);
                if (t < 0 || mount_setattr(t, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0) {
                        res = (struct join_result){JOIN_READONLY, (int)i, t < 0 ? -t : errno};
                        goto out;
                }
                close(t);
        }
out:
        _exit(write(report, &res, sizeof(res)) == (ssize_t)sizeof(res) && !res.step ? 0 : 1);
}

static int join(int pin, struct join_plan *p, struct ak_err *err)
{
        static const char *const places[] = CONTAINER_SCRATCH_PLACES;
        cleanup_close int mntns = openat(pin, "ns/mnt", O_RDONLY | O_CLOEXEC);
        cleanup_close int userns = -1;
        struct join_result res = {JOIN_MNTNS, 0, EIO};
        int report[2];
        pid_t pid;

        if (mntns < 0)
                return ak_err_errno(err, errno, "its mount namespace");
        /* rootless: the container's user namespace (ours to enter) owns its mounts */
        if (geteuid() != 0 && !same_ns(pin, "ns/user"))
                userns = openat(pin, "ns/user", O_RDONLY | O_CLOEXEC);
        p->mntns = mntns;
        p->userns = userns;
        if (pipe2(report, O_CLOEXEC) < 0)
                return ak_err_errno(err, errno, "pipe");
        pid = fork();
        if (pid < 0) {
                close(report[0]);
                close(report[1]);
                return ak_err_errno(err, errno, "fork");
        }
        if (pid == 0)
                join_child(p, report[1]);
        close(report[1]);
        if (read(report[0], &res, sizeof(res)) != (ssize_t)sizeof(res))
                res = (struct join_result){JOIN_MNTNS, 0, EIO};
        close(report[0]);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        switch (res.step) {
        case 0:
                return 0;
        case JOIN_USERNS:
        case JOIN_MNTNS:
                return ak_err_errno(err, res.err, "cannot enter its namespaces");
        case JOIN_DETACH:
                return ak_err_errno(err, res.err, "cannot detach the agent's state from it");
        case JOIN_TARGET:
                return ak_err_set(err, res.err,
                                  "'%s' in the container is not a plain directory (%s): refusing "
                                  "to mount there",
                                  p->mounts[res.index].dest, strerror(res.err));
        case JOIN_DISK:
                return ak_err_errno(err, res.err, "cannot make its scratch disk (tmpfs)");
        case JOIN_SCRATCH:
                return ak_err_set(err, res.err,
                                  "cannot mount its scratch disk at '%s' (%s): is it a plain "
                                  "directory in the image?",
                                  places[res.index % CONTAINER_SCRATCH_N], strerror(res.err));
        case JOIN_UNCOVER:
                return ak_err_errno(err, res.err, "cannot uncover the image's volume '%s'",
                                    p->disk->uncover[res.index]);
        case JOIN_READONLY:
                return ak_err_errno(err, res.err, "cannot make the engine's mount '%s' read-only",
                                    p->ro->path[res.index]);
        default:
                return ak_err_errno(err, res.err, "cannot mount '%s' at '%s'",
                                    p->mounts[res.index].source, p->mounts[res.index].dest);
        }
}

/* true when a mount of device dev is still in the process's mount tree */
static int still_mounted(int pin, dev_t dev)
{
        cleanup_close int fd = openat(pin, "mountinfo", O_RDONLY | O_CLOEXEC);
        cleanup_buf struct buf b = BUF_INIT;
        char want[32];
        char *line, *save = NULL;

        if (fd < 0 || read_fd_full(fd, &b, 4u << 20) < 0 || !b.data)
                return -EIO;
        (void)snprintf(want, sizeof(want), "%u:%u", major(dev), minor(dev));
        for (line = strtok_r(b.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char majmin[32];
                if (sscanf(line, "%*s %*s %31s", majmin) == 1 && streq(majmin, want))
                        return 1;
        }
        return 0;
}

int container_settle(pid_t pid, const char *uuid, const struct container_mount *mounts,
                     size_t n_mounts, bool attach, const struct container_disk *disk,
                     int timeout_ms, struct container_rt *ret_rt, uid_t *ret_root_kuid,
                     struct container_ro *ret_ro, struct ak_err *err)
{
        struct id_range umap[IDMAP_LINES_MAX], gmap[IDMAP_LINES_MAX];
        size_t nu = 0, ng = 0, made = 0, n_trees = attach ? n_mounts : 0;
        int trees[MOUNTS_MAX];
        cleanup_close int pin = -1;
        cleanup_close int root = -1;
        cleanup_close int fd = -1;
        cleanup_close int state = -1;
        struct container_rt rt = {.pid = pid};
        struct container_ro ro = {0};
        struct join_plan plan = {
            .trees = trees, .mounts = mounts, .n_trees = n_trees, .disk = disk, .ro = &ro};
        struct stat st;
        int64_t root_kuid, root_kgid;
        int r;

        if (n_mounts > MOUNTS_MAX)
                return ak_err_set(err, E2BIG, "more than %d host mounts", MOUNTS_MAX);
        if (n_trees && geteuid() != 0)
                return ak_err_set(err, EPERM, "idmapped mounts need root");
        if (!uuid_is_valid(uuid))
                return ak_err_set(err, EINVAL, "invalid sandbox id '%s'", uuid);
        pin = pin_process(pid, &rt.start_time);
        if (pin < 0)
                return ak_err_set(err, EIO,
                                  "it exited before its agent started (is the image's "
                                  "platform this machine's?)");
        /* a container always has a mount namespace of its own: anything else is not the
         * container (its pid was reused after it exited) */
        if (same_ns(pin, "ns/mnt"))
                return ak_err_set(err, EIO,
                                  "it exited before its agent started (is the image's "
                                  "platform this machine's?)");
        /* the agent is not dumpable: /proc/<pid> belongs to the root of its user namespace */
        if (geteuid() != 0 && (fstat(pin, &st) < 0 || st.st_uid != geteuid()))
                return ak_err_set(err, EPERM,
                                  "it runs as another user (uid %u) than agentkernel (uid %u): "
                                  "without root, agentkernel can only use a rootless engine of "
                                  "its own user (e.g. podman system service as this user), or "
                                  "the native backend",
                                  (unsigned)st.st_uid, (unsigned)geteuid());
        root = openat(pin, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (root < 0)
                return ak_err_errno(err, errno, "its root");
        fd = wait_socket(pin, root, pid, uuid, timeout_ms, err);
        if (fd < 0)
                return fd;
        state = openat2_fd(root, STATE_REL, O_PATH | O_DIRECTORY,
                           RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
        if (state < 0 || fstat(state, &st) < 0)
                return ak_err_errno(err, state < 0 ? -state : errno, "the agent's state directory");
        rt.state_dev = st.st_dev;
        rt.state_ino = st.st_ino;
        r = find_fd(pin, &st);
        if (r < 0)
                return ak_err_set(err, -r, "the agent holds no fd of its state directory");
        rt.state_fd = r;
        r = read_id_map(pin, "uid_map", umap, ARRAY_SIZE(umap), &nu);
        if (r >= 0)
                r = read_id_map(pin, "gid_map", gmap, ARRAY_SIZE(gmap), &ng);
        if (r < 0)
                return ak_err_errno(err, -r, "its id maps");
        root_kuid = map_root(umap, nu);
        root_kgid = map_root(gmap, ng);
        if (root_kuid < 0 || root_kgid < 0)
                return ak_err_set(err, EIO, "its root has no host id");
        /* the scratch disk belongs to the container's root: in ids of the user namespace the
         * child makes it in (the container's own when rootless, where its root is 0) */
        if (disk && disk->scratch_bytes) {
                bool in_userns = geteuid() != 0 && !same_ns(pin, "ns/user");
                plan.disk_uid = in_userns ? 0 : (uid_t)root_kuid;
                plan.disk_gid = in_userns ? 0 : (gid_t)root_kgid;
                (void)snprintf(plan.disk_opts[0], sizeof(plan.disk_opts[0]), "%llu",
                               (unsigned long long)disk->scratch_bytes);
                (void)snprintf(plan.disk_opts[1], sizeof(plan.disk_opts[1]), "%u",
                               (unsigned)plan.disk_uid);
                (void)snprintf(plan.disk_opts[2], sizeof(plan.disk_opts[2]), "%u",
                               (unsigned)plan.disk_gid);
        }
        r = plan_read_only(pin, mounts, n_mounts, disk, &ro, err);
        if (r < 0)
                return r;
        for (; made < n_trees; made++) {
                r = idmapped_tree(&mounts[made], umap, nu, gmap, ng, err);
                if (r < 0)
                        break;
                trees[made] = r;
        }
        if (r >= 0)
                r = join(pin, &plan, err);
        for (size_t i = 0; i < made; i++)
                close(trees[i]);
        if (r < 0)
                return r;
        r = still_mounted(pin, (dev_t)rt.state_dev);
        if (r != 0)
                return ak_err_set(err, EIO, "the agent's state is still visible in it");
        (void)snprintf(rt.uuid, sizeof(rt.uuid), "%s", uuid);
        *ret_rt = rt;
        if (ret_root_kuid)
                *ret_root_kuid = (uid_t)root_kuid;
        if (ret_ro)
                *ret_ro = ro;
        return TAKE_FD(fd);
}

/* ---- the runtime record ---- */

int container_rt_write(const char *dir, const struct container_rt *rt, struct ak_err *err)
{
        cleanup_json json_t *o = json_pack(
            "{s:i,s:I,s:i,s:I,s:I,s:s}", "pid", (int)rt->pid, "start_time",
            (json_int_t)rt->start_time, "state_fd", rt->state_fd, "state_dev",
            (json_int_t)rt->state_dev, "state_ino", (json_int_t)rt->state_ino, "uuid", rt->uuid);
        cleanup_free char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
        cleanup_close int d = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int r;

        if (!text)
                return ak_err_oom(err);
        if (d < 0)
                return ak_err_errno(err, errno, "open '%s'", dir);
        r = write_file_atomic_at(d, CONTAINER_RT_FILE, text, strlen(text), 0600, false);
        if (r < 0)
                return ak_err_errno(err, -r, "write '%s/%s'", dir, CONTAINER_RT_FILE);
        return 0;
}

static bool json_uint(json_t *o, const char *key, uint64_t max, uint64_t *ret)
{
        json_t *v = json_object_get(o, key);
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            (uint64_t)json_integer_value(v) > max)
                return false;
        *ret = (uint64_t)json_integer_value(v);
        return true;
}

int container_rt_read(const char *dir, struct container_rt *ret, struct ak_err *err)
{
        cleanup_close int d = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        cleanup_close int fd = -1;
        cleanup_buf struct buf b = BUF_INIT;
        cleanup_json json_t *o = NULL;
        struct container_rt rt = {0};
        uint64_t pid, state_fd;
        const char *uuid;
        struct stat st;

        if (d < 0)
                return errno == ENOENT ? -ENOENT : ak_err_errno(err, errno, "open '%s'", dir);
        fd = openat(d, CONTAINER_RT_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return errno == ENOENT
                           ? -ENOENT
                           : ak_err_errno(err, errno, "open '%s/%s'", dir, CONTAINER_RT_FILE);
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
            (st.st_mode & 022))
                return ak_err_set(err, EPERM,
                                  "'%s/%s' is not a file of ours that only we can write: not "
                                  "trusted",
                                  dir, CONTAINER_RT_FILE);
        if (read_fd_full(fd, &b, RT_FILE_MAX) < 0 || !b.data ||
            !(o = json_loadb(b.data, b.len, 0, NULL)) || !json_uint(o, "pid", INT32_MAX, &pid) ||
            !json_uint(o, "start_time", UINT64_MAX >> 1, &rt.start_time) ||
            !json_uint(o, "state_fd", 65535, &state_fd) ||
            !json_uint(o, "state_dev", UINT64_MAX >> 1, &rt.state_dev) ||
            !json_uint(o, "state_ino", UINT64_MAX >> 1, &rt.state_ino) ||
            !(uuid = json_string_value(json_object_get(o, "uuid"))) || !uuid_is_valid(uuid))
                return ak_err_set(err, EBADMSG, "'%s/%s' is malformed", dir, CONTAINER_RT_FILE);
        rt.pid = (pid_t)pid;
        rt.state_fd = (int)state_fd;
        (void)snprintf(rt.uuid, sizeof(rt.uuid), "%s", uuid);
        *ret = rt;
        return 0;
}
