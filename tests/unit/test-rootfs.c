// SPDX-License-Identifier: Apache-2.0
/* Mount plans (runtime/rootfs.c, runtime/mount-plan.c): what the host image and an OCI image
 * plan for a sandbox — its workspace, volumes, read-only home, the directories of its disk, the
 * masks over /proc and the home's credentials — and the order the child needs them in. Plans are
 * data: built here without privileges, nothing is mounted. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/volume.h"
#include "runtime/etc-snapshot.h"
#include "runtime/rootfs.h"
#include "runtime/runtime.h"
#include "shared/fd-util.h"
#include "shared/macro.h"

/* The index of the op at dst (the first, or the last with last), or -1. */
static int find_op(const struct mount_plan *p, const char *dst, bool last)
{
        int found = -1;

        for (size_t i = 0; i < p->n; i++)
                if (streq(p->ops[i].dst, dst)) {
                        found = (int)i;
                        if (!last)
                                break;
                }
        return found;
}

static const struct mount_op *op_at(const struct mount_plan *p, const char *dst)
{
        int i = find_op(p, dst, false);

        assert_true(i >= 0);
        return &p->ops[i];
}

/* Whether path is below (not at) top. */
static bool below(const char *path, const char *top)
{
        size_t n = strlen(top);

        if (streq(top, "/"))
                return path[1] != '\0';
        return strncmp(path, top, n) == 0 && path[n] == '/';
}

/* Whether op places a filesystem at its dst (covering what was there). */
static bool covers(const struct mount_op *op)
{
        switch (op->type) {
        case MOP_TMPFS:
        case MOP_BIND:
        case MOP_BIND_RO:
        case MOP_BIND_DEV:
        case MOP_PROC:
        case MOP_DEVPTS:
        case MOP_OVERLAY:
        case MOP_DISK_DIR:
        case MOP_MASK_DIR:
                return true;
        case MOP_MKDIR:
        case MOP_SYMLINK:
        case MOP_FILE:
        case MOP_COPY:
        case MOP_REMOUNT_RO:
        case MOP_MASK_FILE:
        default:
                return false;
        }
}

/* The child runs the plan in order: nothing may be placed at a path that a later op then covers
 * with a mount of a directory above it (it would vanish under it), and every op's dst is
 * absolute. */
static void assert_ordered(const struct mount_plan *p)
{
        for (size_t i = 0; i < p->n; i++) {
                assert_true(p->ops[i].dst[0] == '/');
                for (size_t j = i + 1; j < p->n; j++)
                        if (covers(&p->ops[j]) && below(p->ops[i].dst, p->ops[j].dst))
                                fail_msg("op %zu (%s) is covered by later op %zu (%s)", i,
                                         p->ops[i].dst, j, p->ops[j].dst);
        }
}

/* No host path under these is ever a bind or copy source unless the user named it. */
static void assert_no_private_sources(const struct mount_plan *p, const char *const *named,
                                      size_t n_named)
{
        static const char *const private_tops[] = {"/home", "/root", "/var",
                                                   "/srv",  "/tmp",  "/run"};

        for (size_t i = 0; i < p->n; i++) {
                const struct mount_op *op = &p->ops[i];
                bool user = false;
                if (op->type != MOP_BIND && op->type != MOP_BIND_RO && op->type != MOP_COPY)
                        continue;
                for (size_t k = 0; k < n_named; k++)
                        user = user || streq(op->src, named[k]);
                if (user)
                        continue;
                for (size_t k = 0; k < ARRAY_SIZE(private_tops); k++)
                        if (streq(op->src, private_tops[k]) || below(op->src, private_tops[k]))
                                fail_msg("host '%s' is a source of %s", op->src, op->dst);
        }
}

static size_t count_prepared(const struct mount_plan *p)
{
        size_t n = 0;

        for (size_t i = 0; i < p->n; i++)
                n += (p->ops[i].flags & MOP_PREPARED) != 0;
        return n;
}

static void assert_disk_dir(const struct mount_plan *p, const char *dst, const char *src,
                            unsigned mode)
{
        const struct mount_op *op = op_at(p, dst);

        assert_int_equal(op->type, MOP_DISK_DIR);
        assert_string_equal(op->src, src);
        assert_int_equal(op->mode, mode);
}

static void test_plan_owns_its_strings(void **unused)
{
        struct mount_plan p = {0};
        char src[16] = "/src", dst[16] = "/dst";
        const char bytes[] = {'a', '\0', 'b'};

        (void)unused;
        assert_int_equal(mount_plan_add(&p, MOP_BIND, src, dst, NULL, 0, 0), 0);
        memcpy(src, "/xxx", 5);
        memcpy(dst, "/yyy", 5);
        assert_string_equal(p.ops[0].src, "/src");
        assert_string_equal(p.ops[0].dst, "/dst");
        assert_null(p.ops[0].data);
        /* a file's contents are bytes: a NUL inside is kept, with the length */
        assert_int_equal(mount_plan_add_bytes(&p, "/f", bytes, sizeof(bytes), 0600), 0);
        assert_int_equal(p.ops[1].type, MOP_FILE);
        assert_int_equal(p.ops[1].len, 3);
        assert_memory_equal(p.ops[1].src, bytes, 3);
        assert_int_equal(p.ops[1].mode, 0600);
        /* every dst is absolute */
        assert_int_equal(mount_plan_add(&p, MOP_MKDIR, NULL, "rel", NULL, 0755, 0), -EINVAL);
        assert_int_equal(mount_plan_add(&p, MOP_MKDIR, NULL, NULL, NULL, 0755, 0), -EINVAL);
        assert_int_equal(p.n, 2);
        /* many ops: the list grows */
        for (int i = 0; i < 1000; i++)
                assert_int_equal(mount_plan_add_file(&p, "/etc/x", "text", 0644), 0);
        assert_int_equal(p.n, 1002);
        assert_string_equal(p.ops[1001].src, "text");
        mount_plan_done(&p);
        assert_int_equal(p.n, 0);
        assert_null(p.ops);
        mount_plan_done(&p); /* done twice is harmless */
}

static void test_host_image(void **unused)
{
        struct rootfs_opts o = {0};
        struct mount_plan p = {0};
        const struct mount_op *op;
        int lock = 42;

        (void)unused;
        assert_int_equal(rootfs_plan_host(&o, &p, &lock), 0);
        assert_int_equal(lock, -1); /* no snapshot asked for: none held */
        assert_ordered(&p);
        assert_no_private_sources(&p, NULL, 0);
        /* the host's programs, read-only, as the host has them (a merged-/usr link stays one) */
        op = op_at(&p, "/usr");
        assert_int_equal(op->type, MOP_BIND_RO);
        assert_string_equal(op->src, "/usr");
        op = op_at(&p, "/bin");
        assert_true(op->type == MOP_SYMLINK || op->type == MOP_BIND_RO);
        /* /etc: generated identity, never the host's */
        assert_int_equal(op_at(&p, "/etc")->type, MOP_MKDIR);
        op = op_at(&p, "/etc/passwd");
        assert_int_equal(op->type, MOP_FILE);
        assert_non_null(memmem(op->src, op->len, "root:x:0:0:", 11));
        assert_int_equal(op_at(&p, "/etc/group")->type, MOP_FILE);
        op = op_at(&p, "/etc/hostname");
        assert_int_equal(op->type, MOP_FILE);
        assert_memory_equal(op->src, "agentkernel\n", op->len);
        op = op_at(&p, "/etc/mtab");
        assert_int_equal(op->type, MOP_SYMLINK);
        assert_string_equal(op->src, "../proc/self/mounts");
        assert_int_equal(find_op(&p, "/etc/resolv.conf", false), -1); /* no network: none */
        /* secrets of the host's /etc are never in it, whatever the host has */
        for (size_t i = 0; i < p.n; i++)
                if (p.ops[i].src && p.ops[i].type != MOP_FILE && p.ops[i].type != MOP_SYMLINK) {
                        assert_false(streq(p.ops[i].src, "/etc/shadow"));
                        assert_false(streq(p.ops[i].src, "/etc/gshadow"));
                        assert_false(streq(p.ops[i].src, "/etc/sudoers"));
                        assert_false(streq(p.ops[i].src, "/etc/ssh"));
                        assert_false(streq(p.ops[i].src, "/etc/machine-id"));
                }
        /* what the sandbox writes for itself: directories of its one disk */
        assert_disk_dir(&p, "/tmp", "/tmp", 01777);
        assert_disk_dir(&p, "/run", "/run", 0755);
        assert_disk_dir(&p, "/dev/shm", "/shm", 01777);
        assert_true(op_at(&p, "/dev/shm")->flags & MOP_NOEXEC);
        assert_disk_dir(&p, "/var", "/var", 0755);
        assert_disk_dir(&p, "/root", "/root", 0700);
        assert_int_equal(op_at(&p, "/var/tmp")->type, MOP_MKDIR);
        /* a fresh /proc with host-wide files masked and knobs read-only, after it */
        assert_int_equal(op_at(&p, "/proc")->type, MOP_PROC);
        assert_int_equal(op_at(&p, "/proc/kcore")->type, MOP_MASK_FILE);
        assert_int_equal(op_at(&p, "/proc/keys")->type, MOP_MASK_FILE);
        assert_int_equal(op_at(&p, "/proc/acpi")->type, MOP_MASK_DIR);
        assert_int_equal(op_at(&p, "/proc/sys")->type, MOP_REMOUNT_RO);
        assert_int_equal(op_at(&p, "/proc/sysrq-trigger")->type, MOP_REMOUNT_RO);
        assert_true(find_op(&p, "/proc", false) < find_op(&p, "/proc/kcore", false));
        assert_true(find_op(&p, "/proc", false) < find_op(&p, "/proc/sys", false));
        /* /dev: a tmpfs of a few host nodes and a private devpts */
        assert_int_equal(op_at(&p, "/dev")->type, MOP_TMPFS);
        assert_true(op_at(&p, "/dev")->flags & MOP_NOEXEC);
        op = op_at(&p, "/dev/null");
        assert_int_equal(op->type, MOP_BIND_DEV);
        assert_string_equal(op->src, "/dev/null");
        assert_int_equal(find_op(&p, "/dev/sda", false), -1);
        assert_int_equal(op_at(&p, "/dev/pts")->type, MOP_DEVPTS);
        assert_string_equal(op_at(&p, "/dev/ptmx")->src, "pts/ptmx");
        /* nothing of the user's: no workspace, no home, and nothing prepared by the parent */
        assert_int_equal(find_op(&p, "/workspace", false), -1);
        assert_int_equal(find_op(&p, "/home/user", false), -1);
        assert_int_equal(op_at(&p, "/home")->type, MOP_MKDIR);
        assert_int_equal(count_prepared(&p), 0);
        mount_plan_done(&p);
}

static const struct bind_mount vols[] = {
    {"/data/vol-a", "/data", false},
    {"/data/vol-b", "/opt/ref", true},
};

/* What a sandbox gets of the user's: the workspace read-write, volumes (read-only ones so),
 * the home read-only with its credentials masked; idmapped (prepared by the parent) as root. */
static void check_user_dirs(bool idmap)
{
        struct rootfs_opts o = {.workspace = "/proj/ws",
                                .home = "/users/me",
                                .binds = vols,
                                .n_binds = ARRAY_SIZE(vols),
                                .resolv_conf = "nameserver 10.0.2.3\n",
                                .idmap = idmap};
        static const char *const named[] = {"/proj/ws", "/users/me", "/data/vol-a", "/data/vol-b"};
        struct mount_plan p = {0};
        const struct mount_op *op;
        int lock = -1, ws, a, b, home;

        assert_int_equal(rootfs_plan_host(&o, &p, &lock), 0);
        assert_ordered(&p);
        assert_no_private_sources(&p, named, ARRAY_SIZE(named));
        op = op_at(&p, "/workspace");
        assert_int_equal(op->type, MOP_BIND);
        assert_string_equal(op->src, "/proj/ws");
        assert_int_equal(op->flags, idmap ? MOP_OWNER : 0);
        op = op_at(&p, "/data");
        assert_int_equal(op->type, MOP_BIND);
        assert_string_equal(op->src, "/data/vol-a");
        assert_int_equal(op->flags, idmap ? MOP_VOLUME : 0);
        op = op_at(&p, "/opt/ref");
        assert_int_equal(op->type, MOP_BIND_RO);
        assert_int_equal(op->flags, idmap ? MOP_VOLUME : 0);
        /* volumes after the workspace, in the order given */
        ws = find_op(&p, "/workspace", false);
        a = find_op(&p, "/data", false);
        b = find_op(&p, "/opt/ref", false);
        assert_true(ws < a && a < b);
        /* the home: read-only, never idmapped (the sandbox cannot write it), credentials masked */
        op = op_at(&p, "/home/user");
        assert_int_equal(op->type, MOP_BIND_RO);
        assert_string_equal(op->src, "/users/me");
        assert_int_equal(op->flags, 0);
        home = find_op(&p, "/home/user", false);
        assert_true(find_op(&p, "/home", false) < home);
        assert_int_equal(find_op(&p, "/home", true), find_op(&p, "/home", false)); /* once */
        assert_int_equal(op_at(&p, "/home/user/.ssh")->type, MOP_MASK_DIR);
        assert_int_equal(op_at(&p, "/home/user/.aws")->type, MOP_MASK_DIR);
        assert_int_equal(op_at(&p, "/home/user/.netrc")->type, MOP_MASK_FILE);
        assert_int_equal(op_at(&p, "/home/user/.git-credentials")->type, MOP_MASK_FILE);
        assert_true(home < find_op(&p, "/home/user/.ssh", false));
        assert_true(home < find_op(&p, "/home/user/.netrc", false));
        /* with a network, the sandbox's resolver */
        op = op_at(&p, "/etc/resolv.conf");
        assert_int_equal(op->type, MOP_FILE);
        assert_memory_equal(op->src, "nameserver 10.0.2.3\n", op->len);
        /* as root: exactly the user's writable directories are prepared by the parent */
        assert_int_equal(count_prepared(&p), idmap ? 3 : 0);
        mount_plan_done(&p);
}

static void test_user_directories_rootless(void **unused)
{
        (void)unused;
        check_user_dirs(false);
}

static void test_user_directories_rootful(void **unused)
{
        (void)unused;
        check_user_dirs(true);
}

/* agentkernel's own directories where the home shows them (a data directory moved by
 * AGENTKERNEL_DATA_DIR): masked at their place in /home/user; elsewhere, or merely sharing a
 * prefix with the home's name, nothing. */
static void test_home_hides_own_directories(void **unused)
{
        static const char *const own[] = {"/users/me/work/ak-data", NULL, "/users/meX/data",
                                          "/elsewhere/data"};
        static const char *const above[] = {"/users"};
        struct rootfs_opts o = {.home = "/users/me/", .hide = own, .n_hide = ARRAY_SIZE(own)};
        struct mount_plan p = {0};
        int lock = -1;

        (void)unused;
        assert_int_equal(rootfs_plan_host(&o, &p, &lock), 0);
        assert_ordered(&p);
        assert_int_equal(op_at(&p, "/home/user/work/ak-data")->type, MOP_MASK_DIR);
        assert_true(find_op(&p, "/home/user", false) <
                    find_op(&p, "/home/user/work/ak-data", false));
        assert_int_equal(find_op(&p, "/home/userX/data", false), -1);
        assert_int_equal(find_op(&p, "/home/user/data", false), -1);
        assert_int_equal(op_at(&p, "/home/user")->type, MOP_BIND_RO); /* not masked whole */
        mount_plan_done(&p);
        /* a home inside an own directory (or one itself): no view of it at all */
        o.hide = above;
        o.n_hide = ARRAY_SIZE(above);
        assert_int_equal(rootfs_plan_host(&o, &p, &lock), 0);
        assert_int_equal(find_op(&p, "/home/user", false), -1);
        assert_int_equal(op_at(&p, "/home")->type, MOP_MKDIR);
        mount_plan_done(&p);
        o.home = "/users";
        assert_int_equal(rootfs_plan_host(&o, &p, &lock), 0);
        assert_int_equal(find_op(&p, "/home/user", false), -1);
        mount_plan_done(&p);
}

static void test_oci_image(void **unused)
{
        struct rootfs_opts o = {.workspace = "/proj/ws", .idmap = true};
        struct mount_plan p = {0};
        const struct mount_op *op;

        (void)unused;
        assert_int_equal(rootfs_plan_image(&o, "/store/l2:/store/l1", NULL, "/app", &p), 0);
        assert_ordered(&p);
        assert_no_private_sources(&p, (const char *const[]){"/proj/ws"}, 1);
        /* the image is the root, first: everything else goes on top of it */
        op = &p.ops[0];
        assert_int_equal(op->type, MOP_OVERLAY);
        assert_string_equal(op->dst, "/");
        assert_string_equal(op->src, "/store/l2:/store/l1");
        assert_int_equal(op->flags, MOP_IDMAP);
        /* none of the host's programs or /etc */
        assert_int_equal(find_op(&p, "/usr", false), -1);
        assert_int_equal(find_op(&p, "/etc/passwd", false), -1);
        /* the image's /etc kept (created only where missing), our identity written over its own
         * files, which may be symlinks: replaced, never followed */
        op = op_at(&p, "/etc");
        assert_int_equal(op->type, MOP_MKDIR);
        assert_true(op->flags & MOP_OPTIONAL);
        op = op_at(&p, "/etc/hostname");
        assert_int_equal(op->type, MOP_FILE);
        assert_true(op->flags & MOP_REPLACE);
        assert_true(op_at(&p, "/etc/hosts")->flags & MOP_REPLACE);
        assert_int_equal(find_op(&p, "/etc/resolv.conf", false), -1);
        /* the common part: /dev, /proc and its masks, the disk's directories, the workspace */
        assert_int_equal(op_at(&p, "/proc")->type, MOP_PROC);
        assert_int_equal(op_at(&p, "/proc/kcore")->type, MOP_MASK_FILE);
        assert_disk_dir(&p, "/tmp", "/tmp", 01777);
        assert_disk_dir(&p, "/dev/shm", "/shm", 01777);
        assert_int_equal(op_at(&p, "/workspace")->flags, MOP_OWNER);
        /* an image's /var and /root are its own (in its upper layer), not disk directories */
        assert_int_equal(find_op(&p, "/var", false), -1);
        assert_int_equal(find_op(&p, "/root", false), -1);
        /* the image's WorkingDir made where the image lacks it, last */
        op = &p.ops[p.n - 1];
        assert_string_equal(op->dst, "/app");
        assert_int_equal(op->type, MOP_MKDIR);
        assert_true(op->flags & MOP_OPTIONAL);
        assert_int_equal(count_prepared(&p), 2); /* the overlay and the workspace */
        mount_plan_done(&p);
}

static void test_oci_image_variants(void **unused)
{
        struct rootfs_opts o = {.resolv_conf = "nameserver 10.0.2.3\n"};
        struct mount_plan p = {0};
        const struct mount_op *op;

        (void)unused;
        /* rootless: the sandbox's own user namespace mounts the overlay */
        assert_int_equal(rootfs_plan_image(&o, "/store/l1", NULL, "relative", &p), 0);
        assert_int_equal(p.ops[0].flags, 0);
        assert_int_equal(op_at(&p, "/etc/resolv.conf")->type, MOP_FILE);
        assert_true(op_at(&p, "/etc/resolv.conf")->flags & MOP_REPLACE);
        assert_int_equal(find_op(&p, "relative", false), -1); /* not a path: not made */
        assert_int_equal(count_prepared(&p), 0);
        mount_plan_done(&p);
        /* the copy fallback: one host directory, lent detached as root, never idmapped */
        o.idmap = true;
        assert_int_equal(rootfs_plan_image(&o, "/store/l1", "/run/x/rootfs", NULL, &p), 0);
        op = &p.ops[0];
        assert_int_equal(op->type, MOP_OVERLAY);
        assert_string_equal(op->src, "/run/x/rootfs");
        assert_int_equal(op->flags, MOP_DETACHED);
        assert_int_equal(find_op(&p, "/app", false), -1); /* no WorkingDir: nothing made */
        mount_plan_done(&p);
        o.idmap = false;
        assert_int_equal(rootfs_plan_image(&o, "/store/l1", "/run/x/rootfs", NULL, &p), 0);
        assert_int_equal(p.ops[0].flags, 0);
        mount_plan_done(&p);
}

/* The most a sandbox can ask for fits what the parent can lend the child at once: its disk, the
 * overlay, the /etc snapshot, the workspace and every volume. */
static void test_prepared_mounts_fit(void **unused)
{
        struct bind_mount many[VOLUMES_PER_SANDBOX_MAX];
        char names[VOLUMES_PER_SANDBOX_MAX][32];
        struct rootfs_opts o = {.workspace = "/proj/ws",
                                .binds = many,
                                .n_binds = VOLUMES_PER_SANDBOX_MAX,
                                .idmap = true};
        struct mount_plan p = {0};

        (void)unused;
        for (size_t i = 0; i < VOLUMES_PER_SANDBOX_MAX; i++) {
                (void)snprintf(names[i], sizeof(names[i]), "/vol/%zu", i);
                many[i] = (struct bind_mount){names[i], names[i], i % 2 == 0};
        }
        assert_int_equal(rootfs_plan_image(&o, "/store/l1", NULL, NULL, &p), 0);
        assert_int_equal(count_prepared(&p), 1 + 1 + VOLUMES_PER_SANDBOX_MAX);
        assert_true(count_prepared(&p) + 1 /* etc */ + 1 /* disk */ <= RUNTIME_IDMAP_MAX);
        mount_plan_done(&p);
}

/* With a snapshot cache, the host image's /etc is one read-only bind of the snapshot (idmapped
 * as root), whose lock the caller keeps; what the snapshot leaves as mount points is bound on
 * top, after it. */
static void test_host_etc_snapshot(void **unused)
{
        char cache[] = "/tmp/ak-test-rootfs-XXXXXX";
        struct rootfs_opts o = {.idmap = true};
        struct mount_plan p = {0};
        const struct mount_op *op;
        int lock = -1, at;

        (void)unused;
        assert_non_null(mkdtemp(cache));
        o.etc_snapshots = cache;
        assert_int_equal(rootfs_plan_host(&o, &p, &lock), 0);
        if (lock < 0) { /* no snapshot could be made here: /etc is filled the slow way */
                assert_int_equal(op_at(&p, "/etc")->type, MOP_MKDIR);
        } else {
                op = op_at(&p, "/etc");
                assert_int_equal(op->type, MOP_BIND_RO);
                assert_int_equal(op->flags, MOP_IDMAP);
                assert_true(strncmp(op->src, cache, strlen(cache)) == 0);
                assert_int_equal(find_op(&p, "/etc/passwd", false), -1); /* in the snapshot */
                at = find_op(&p, "/etc", false);
                for (size_t i = 0; i < p.n; i++)
                        if (below(p.ops[i].dst, "/etc"))
                                assert_true((int)i > at);
                close(lock);
        }
        assert_ordered(&p);
        mount_plan_done(&p);
        (void)rm_rf_at(AT_FDCWD, cache);
}

/* A snapshot cache is removed (etc_snapshot_cache_remove) only when nothing uses it: a snapshot
 * whose lock a sandbox holds stays, with the cache; released, all of it goes. */
static void test_etc_snapshot_cache_remove(void **unused)
{
        char parent[] = "/tmp/ak-test-rootfs-XXXXXX", cache[PATH_MAX];
        struct rootfs_opts o = {.idmap = true};
        struct mount_plan p = {0};
        struct stat st;
        int lock = -1, pfd;

        (void)unused;
        assert_non_null(mkdtemp(parent));
        (void)snprintf(cache, sizeof(cache), "%s/etc", parent);
        pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        assert_true(pfd >= 0);
        assert_int_equal(etc_snapshot_cache_remove(pfd, "etc"), 0); /* none: nothing to do */
        o.etc_snapshots = cache;
        assert_int_equal(rootfs_plan_host(&o, &p, &lock), 0);
        mount_plan_done(&p);
        if (lock >= 0) { /* where a snapshot can be made */
                assert_int_equal(etc_snapshot_cache_remove(pfd, "etc"), -EBUSY);
                assert_int_equal(fstatat(pfd, "etc/key", &st, 0), 0);
                close(lock);
                assert_int_equal(etc_snapshot_cache_remove(pfd, "etc"), 0);
                assert_int_equal(fstatat(pfd, "etc", &st, 0), -1);
                assert_int_equal(errno, ENOENT);
        }
        /* what is not the cache's own keeps it */
        assert_int_equal(mkdirat(pfd, "etc", 0700), 0);
        assert_int_equal(mkdirat(pfd, "etc/other", 0700), 0);
        assert_int_equal(etc_snapshot_cache_remove(pfd, "etc"), -ENOTEMPTY);
        assert_int_equal(fstatat(pfd, "etc/other", &st, 0), 0);
        /* nor is one that others can write touched */
        assert_int_equal(fchmodat(pfd, "etc", 0777, 0), 0);
        assert_int_equal(etc_snapshot_cache_remove(pfd, "etc"), -EPERM);
        close(pfd);
        (void)rm_rf_at(AT_FDCWD, parent);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_plan_owns_its_strings),
            cmocka_unit_test(test_host_image),
            cmocka_unit_test(test_user_directories_rootless),
            cmocka_unit_test(test_user_directories_rootful),
            cmocka_unit_test(test_home_hides_own_directories),
            cmocka_unit_test(test_oci_image),
            cmocka_unit_test(test_oci_image_variants),
            cmocka_unit_test(test_prepared_mounts_fit),
            cmocka_unit_test(test_host_etc_snapshot),
            cmocka_unit_test(test_etc_snapshot_cache_remove),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
