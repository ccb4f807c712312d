// SPDX-License-Identifier: Apache-2.0
/*
 * Root filesystem plans. Deciding what a sandbox can see is a security decision: the host /etc is
 * exposed only through the allow-list below, never wholesale, and no path under /home, /root,
 * /var or /srv of the host is ever a bind source unless the user asked for it.
 */
#include "rootfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/etc-snapshot.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"

/* Host /etc entries that configure programs and hold no secrets. A trailing '*' is a prefix. */
static const char *const etc_allow[] = {
    "alternatives",
    "bash.bashrc",
    "bash_completion",
    "bash_completion.d",
    "bindresvport.blacklist",
    "ca-certificates",
    "ca-certificates.conf",
    "debian_version",
    "environment",
    "fonts",
    "gai.conf",
    "host.conf",
    "inputrc",
    "issue",
    "java-*",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "locale.alias",
    "locale.conf",
    "locale.gen",
    "localtime",
    "login.defs",
    "lsb-release",
    "magic",
    "magic.mime",
    "mailcap",
    "mime.types",
    "nanorc",
    "networks",
    "nsswitch.conf",
    "os-release",
    "perl",
    "profile",
    "profile.d",
    "protocols",
    "python3*",
    "rpc",
    "services",
    "shells",
    "skel",
    "ssl",
    "terminfo",
    "timezone",
    "vim",
    "wgetrc",
    "xattr.conf",
};

/* Files of the fresh /proc that leak host information or allow host-wide actions. */
static const char *const proc_mask_files[] = {
    "/proc/kcore",         "/proc/keys",     "/proc/timer_list", "/proc/sched_debug",
    "/proc/latency_stats", "/proc/kallsyms", "/proc/kpagecount", "/proc/kpageflags",
};
static const char *const proc_mask_dirs[] = {"/proc/acpi", "/proc/scsi", "/proc/driver"};
/* Credentials in a home directory; masked when the home is shown to a sandbox (permissive). */
const char *const rootfs_home_mask_dirs[] = {
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".config/gcloud",
    ".docker",
    ".kube",
    ".password-store",
    ".config/gh",
    ".config/hub",
    ".local/share/agentkernel",
    ".agentkernel",
    ".terraform.d",
    ".cargo/registry/.credentials",
    ".vault-token.d",
    NULL,
};
const char *const rootfs_home_mask_files[] = {
    ".netrc",
    ".git-credentials",
    ".npmrc",
    ".pypirc",
    ".pgpass",
    ".vault-token",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".gem/credentials",
    ".m2/settings.xml",
    ".bash_history",
    ".zsh_history",
    ".python_history",
    ".psql_history",
    ".mysql_history",
    NULL,
};

static const char *const proc_ro[] = {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus",
                                      "/proc/fs"};

static bool etc_allowed(const char *name)
{
        for (size_t i = 0; i < ARRAY_SIZE(etc_allow); i++) {
                const char *a = etc_allow[i];
                size_t n = strlen(a);
                if (a[n - 1] == '*' ? strncmp(name, a, n - 1) == 0 : streq(name, a))
                        return true;
        }
        return false;
}

bool rootfs_etc_allowed(const char *name)
{
        return etc_allowed(name);
}

#define COPY_MAX (64u << 10) /* small files are copied in: cheaper than a bind mount each */

/* Mirrors a host path at the same place: a symlink stays a symlink, a small file is copied (the
 * root is read-only afterwards, like a bind would be), a directory or large file is bound
 * read-only. Missing or unreadable paths are skipped. */
static int mirror_ro(struct mount_plan *p, const char *path)
{
        struct stat st;
        char target[PATH_MAX];
        ssize_t n;

        if (lstat(path, &st) < 0)
                return 0;
        if (S_ISLNK(st.st_mode)) {
                n = readlink(path, target, sizeof(target) - 1);
                if (n < 0)
                        return 0;
                target[n] = '\0';
                return mount_plan_add(p, MOP_SYMLINK, target, path, NULL, 0, 0);
        }
        if (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))
                return mount_plan_add(p, MOP_BIND_RO, path, path, NULL, 0, MOP_OPTIONAL);
        return 0;
}

/* What a sandbox's /etc holds, host entries of the allow-list and generated files alike. */
struct etc_list {
        struct etc_item *v;
        size_t n, cap;
        struct str_pool strings; /* what the items point into */
};

static void etc_list_done(struct etc_list *l)
{
        str_pool_done(&l->strings);
        free(l->v);
}

static int etc_add(struct etc_list *l, const struct etc_item *it)
{
        struct etc_item *nv;

        if (l->n == ETC_SNAPSHOT_ITEMS_MAX)
                return -E2BIG;
        nv = array_reserve_one(l->v, l->n, &l->cap, sizeof(*nv), 64);
        if (!nv)
                return -ENOMEM;
        l->v = nv;
        l->v[l->n++] = *it;
        return 0;
}

/* One allow-listed host entry: a small world-readable file is copied, a symlink stays a
 * symlink, a directory or another file is bound read-only over a mount point. */
static int etc_add_host(struct etc_list *l, const char *name)
{
        struct etc_item it = {0};
        char path[PATH_MAX], target[PATH_MAX];
        ssize_t n;

        (void)snprintf(path, sizeof(path), "/etc/%s", name);
        if (lstat(path, &it.st) < 0)
                return 0;
        if (!(it.name = str_pool_add(&l->strings, name, strlen(name))))
                return -ENOMEM;
        if (S_ISLNK(it.st.st_mode)) {
                n = readlink(path, target, sizeof(target) - 1);
                if (n < 0)
                        return 0;
                it.kind = ETC_SYMLINK;
                it.data = str_pool_add(&l->strings, target, (size_t)n);
        } else if (S_ISREG(it.st.st_mode) && it.st.st_size <= COPY_MAX && (it.st.st_mode & 0004)) {
                it.kind = ETC_COPY;
                it.mode = it.st.st_mode & 0755;
                it.source = str_pool_add(&l->strings, path, strlen(path));
        } else if (S_ISDIR(it.st.st_mode)) {
                it.kind = ETC_MOUNT_DIR;
        } else if (S_ISREG(it.st.st_mode)) {
                it.kind = ETC_MOUNT_FILE;
        } else {
                return 0;
        }
        if ((it.kind == ETC_SYMLINK && !it.data) || (it.kind == ETC_COPY && !it.source))
                return -ENOMEM;
        return etc_add(l, &it);
}

static int etc_add_data(struct etc_list *l, const char *name, const char *text)
{
        struct etc_item it = {.kind = ETC_DATA, .name = name, .mode = 0644};

        it.data = str_pool_add(&l->strings, text, strlen(text));
        it.len = strlen(text);
        return it.data ? etc_add(l, &it) : -ENOMEM;
}

static int etc_collect(struct etc_list *l, const struct rootfs_opts *o)
{
        const char *shell = access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh";
        char passwd[512];
        DIR *d = opendir("/etc");
        struct dirent *de;
        int r = 0;

        while (d && r >= 0 && (de = readdir(d)))
                if (de->d_name[0] != '.' && etc_allowed(de->d_name))
                        r = etc_add_host(l, de->d_name);
        if (d)
                closedir(d);
        if (r < 0)
                return r;
        (void)snprintf(passwd, sizeof(passwd),
                       "root:x:0:0:root:/root:%s\n"
                       "user:x:1000:1000:user:/home/user:%s\n"
                       "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                       shell, shell);
        if ((r = etc_add_data(l, "passwd", passwd)) < 0 ||
            (r = etc_add_data(
                 l, "group",
                 "root:x:0:\ntty:x:5:\nusers:x:100:\nuser:x:1000:\nnogroup:x:65534:\n")) < 0 ||
            (r = etc_add_data(l, "hostname", "agentkernel\n")) < 0 ||
            (r = etc_add_data(l, "hosts",
                              "127.0.0.1\tlocalhost agentkernel\n"
                              "::1\tlocalhost ip6-localhost ip6-loopback\n")) < 0 ||
            (r = etc_add(l, &(struct etc_item){.kind = ETC_SYMLINK,
                                               .name = "mtab",
                                               .data = "../proc/self/mounts"})) < 0)
                return r;
        if (o->resolv_conf && (r = etc_add_data(l, "resolv.conf", o->resolv_conf)) < 0)
                return r;
        return 0;
}

/* /etc the slow way: a directory on the root tmpfs, filled by the sandbox's setup. */
static int plan_etc_inline(struct mount_plan *p, const struct etc_list *l)
{
        int r = mount_plan_add(p, MOP_MKDIR, NULL, "/etc", NULL, 0755, 0);

        for (size_t i = 0; r >= 0 && i < l->n; i++) {
                const struct etc_item *it = &l->v[i];
                char path[PATH_MAX];
                (void)snprintf(path, sizeof(path), "/etc/%s", it->name);
                switch (it->kind) {
                case ETC_COPY:
                        r = mount_plan_add(p, MOP_COPY, it->source, path, NULL, it->mode,
                                           MOP_OPTIONAL);
                        if (r >= 0) /* the size seen now: one sendfile() when it still holds */
                                p->ops[p->n - 1].len = (size_t)it->st.st_size;
                        break;
                case ETC_DATA:
                        r = mount_plan_add_bytes(p, path, it->data, it->len, it->mode);
                        break;
                case ETC_SYMLINK:
                        r = mount_plan_add(p, MOP_SYMLINK, it->data, path, NULL, 0, 0);
                        break;
                case ETC_MOUNT_DIR:
                case ETC_MOUNT_FILE:
                        r = mount_plan_add(p, MOP_BIND_RO, path, path, NULL, 0, MOP_OPTIONAL);
                        break;
                default:
                        r = -EINVAL;
                }
        }
        return r;
}

static int plan_etc(struct mount_plan *p, const struct rootfs_opts *o, int *ret_lock)
{
        struct etc_list l = {0};
        char dir[PATH_MAX];
        int r, lock = -1;

        r = etc_collect(&l, o);
        if (r >= 0 && o->etc_snapshots)
                lock = etc_snapshot(o->etc_snapshots, l.v, l.n, dir, sizeof(dir));
        if (r >= 0 && lock >= 0) {
                /* one bind of the snapshot, then what is bound over its mount points */
                r = mount_plan_add(p, MOP_BIND_RO, dir, "/etc", NULL, 0, o->idmap ? MOP_IDMAP : 0);
                for (size_t i = 0; r >= 0 && i < l.n; i++) {
                        char path[PATH_MAX];
                        if (l.v[i].kind != ETC_MOUNT_DIR && l.v[i].kind != ETC_MOUNT_FILE)
                                continue;
                        (void)snprintf(path, sizeof(path), "/etc/%s", l.v[i].name);
                        r = mount_plan_add(p, MOP_BIND_RO, path, path, NULL, 0, MOP_OPTIONAL);
                }
        } else if (r >= 0) {
                r = plan_etc_inline(p, &l);
        }
        etc_list_done(&l);
        if (r < 0 && lock >= 0)
                close(lock);
        else if (lock >= 0)
                *ret_lock = lock;
        return r;
}

/* The length of path without trailing slashes. */
static size_t trimmed_len(const char *path)
{
        size_t n = strlen(path);

        while (n > 0 && path[n - 1] == '/')
                n--;
        return n;
}

/* Whether path is dir or inside it (both absolute and canonical, trailing slashes aside). */
static bool path_in(const char *path, const char *dir)
{
        size_t n = trimmed_len(dir), m = trimmed_len(path);

        return n <= m && strncmp(path, dir, n) == 0 && (path[n] == '/' || n == m);
}

/* Whether the sandbox gets a view of the home: there is one, and it is not one of agentkernel's
 * own directories (o->hide) nor inside one. home: its canonical path (the own directories are
 * canonical). */
static bool home_visible(const struct rootfs_opts *o, char home[PATH_MAX])
{
        if (!o->home)
                return false;
        if (!realpath(o->home, home))
                (void)snprintf(home, PATH_MAX, "%s", o->home);
        for (size_t i = 0; i < o->n_hide; i++)
                if (o->hide[i] && path_in(home, o->hide[i]))
                        return false;
        return true;
}

/* Masks dir in the view of home (at /home/user) where dir lies inside home: agentkernel's own
 * directories moved by AGENTKERNEL_DATA_DIR are not in the fixed list above. */
static int hide_in_home(struct mount_plan *p, const char *home, const char *dir)
{
        char path[PATH_MAX];
        size_t n = trimmed_len(home);

        if (!dir || !path_in(dir, home) || trimmed_len(dir) == n)
                return 0;
        if (snprintf(path, sizeof(path), "/home/user%s", dir + n) >= (int)sizeof(path))
                return -ENAMETOOLONG;
        return mount_plan_add(p, MOP_MASK_DIR, NULL, path, NULL, 0, 0);
}

int rootfs_plan_common(const struct rootfs_opts *o, struct mount_plan *p)
{
        static const char *const devs[] = {"null", "zero", "full", "random", "urandom", "tty"};
        char home[PATH_MAX];
        int r = 0;

        /* /dev: a small tmpfs with the harmless device nodes of the host and a private devpts */
        r = mount_plan_add(p, MOP_TMPFS, NULL, "/dev", "mode=0755,size=64k,nr_inodes=64", 0,
                           MOP_NOEXEC);
        for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(devs); i++) {
                char path[32];
                (void)snprintf(path, sizeof(path), "/dev/%s", devs[i]);
                r = mount_plan_add(p, MOP_BIND_DEV, path, path, NULL, 0, 0);
        }
        if (r >= 0)
                r = mount_plan_add(p, MOP_DEVPTS, NULL, "/dev/pts", NULL, 0, 0);
        if (r >= 0)
                r = mount_plan_add(p, MOP_SYMLINK, "pts/ptmx", "/dev/ptmx", NULL, 0, 0);
        if (r >= 0)
                r = mount_plan_add(p, MOP_DISK_DIR, "/shm", "/dev/shm", NULL, 01777, MOP_NOEXEC);
        if (r >= 0)
                r = mount_plan_add(p, MOP_SYMLINK, "/proc/self/fd", "/dev/fd", NULL, 0, 0);
        if (r >= 0)
                r = mount_plan_add(p, MOP_SYMLINK, "/proc/self/fd/0", "/dev/stdin", NULL, 0, 0);
        if (r >= 0)
                r = mount_plan_add(p, MOP_SYMLINK, "/proc/self/fd/1", "/dev/stdout", NULL, 0, 0);
        if (r >= 0)
                r = mount_plan_add(p, MOP_SYMLINK, "/proc/self/fd/2", "/dev/stderr", NULL, 0, 0);

        /* /proc: fresh for the sandbox's pid namespace, with host-wide knobs masked */
        if (r >= 0)
                r = mount_plan_add(p, MOP_PROC, NULL, "/proc", NULL, 0, 0);
        for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(proc_mask_files); i++)
                r = mount_plan_add(p, MOP_MASK_FILE, NULL, proc_mask_files[i], NULL, 0, 0);
        for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(proc_mask_dirs); i++)
                r = mount_plan_add(p, MOP_MASK_DIR, NULL, proc_mask_dirs[i], NULL, 0, 0);
        for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(proc_ro); i++)
                r = mount_plan_add(p, MOP_REMOUNT_RO, NULL, proc_ro[i], NULL, 0, 0);

        /* private writable places: directories of the sandbox's disk, one size for all */
        if (r >= 0)
                r = mount_plan_add(p, MOP_DISK_DIR, "/tmp", "/tmp", NULL, 01777, 0);
        if (r >= 0)
                r = mount_plan_add(p, MOP_DISK_DIR, "/run", "/run", NULL, 0755, 0);
        if (r >= 0)
                r = mount_plan_add(p, MOP_MKDIR, NULL, "/sys", NULL, 0555, 0);
        /* host directories a sandbox writes: never as host root (see MOP_OWNER, MOP_VOLUME) */
        if (r >= 0 && o->workspace)
                r = mount_plan_add(p, MOP_BIND, o->workspace, "/workspace", NULL, 0,
                                   o->idmap ? MOP_OWNER : 0);
        else if (r >= 0 && o->scratch_workspace) /* a source's clone (core/source.h) */
                r = mount_plan_add(p, MOP_DISK_DIR, "/workspace", "/workspace", NULL, 0755, 0);
        for (size_t i = 0; r >= 0 && i < o->n_binds; i++)
                r = mount_plan_add(p, o->binds[i].ro ? MOP_BIND_RO : MOP_BIND, o->binds[i].source,
                                   o->binds[i].dest, NULL, 0, o->idmap ? MOP_VOLUME : 0);
        if (r >= 0 && home_visible(o, home)) {
                r = mount_plan_add(p, MOP_MKDIR, NULL, "/home", NULL, 0755, 0);
                if (r >= 0)
                        r = mount_plan_add(p, MOP_BIND_RO, o->home, "/home/user", NULL, 0, 0);
                for (size_t i = 0; r >= 0 && rootfs_home_mask_dirs[i]; i++) {
                        char path[PATH_MAX];
                        (void)snprintf(path, sizeof(path), "/home/user/%s",
                                       rootfs_home_mask_dirs[i]);
                        r = mount_plan_add(p, MOP_MASK_DIR, NULL, path, NULL, 0, 0);
                }
                for (size_t i = 0; r >= 0 && rootfs_home_mask_files[i]; i++) {
                        char path[PATH_MAX];
                        (void)snprintf(path, sizeof(path), "/home/user/%s",
                                       rootfs_home_mask_files[i]);
                        r = mount_plan_add(p, MOP_MASK_FILE, NULL, path, NULL, 0, 0);
                }
                for (size_t i = 0; r >= 0 && i < o->n_hide; i++)
                        r = hide_in_home(p, home, o->hide[i]);
        }
        return r;
}

int rootfs_plan_host(const struct rootfs_opts *o, struct mount_plan *p, int *ret_etc_lock)
{
        static const char *const top[] = {"/usr",   "/bin",   "/sbin",  "/lib",
                                          "/lib32", "/lib64", "/libx32"};
        int r = 0;

        for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(top); i++)
                r = mirror_ro(p, top[i]);
        *ret_etc_lock = -1;
        if (r >= 0)
                r = plan_etc(p, o, ret_etc_lock);
        if (r >= 0)
                r = rootfs_plan_common(o, p);
        if (r >= 0)
                r = mount_plan_add(p, MOP_DISK_DIR, "/var", "/var", NULL, 0755, 0);
        if (r >= 0)
                r = mount_plan_add(p, MOP_MKDIR, NULL, "/var/tmp", NULL, 01777, 0);
        if (r >= 0)
                r = mount_plan_add(p, MOP_MKDIR, NULL, "/var/cache", NULL, 0755, 0);
        if (r >= 0)
                r = mount_plan_add(p, MOP_MKDIR, NULL, "/var/log", NULL, 0755, 0);
        if (r >= 0)
                r = mount_plan_add(p, MOP_MKDIR, NULL, "/var/lib", NULL, 0755, 0);
        if (r >= 0)
                r = mount_plan_add(p, MOP_DISK_DIR, "/root", "/root", NULL, 0700, 0);
        if (r >= 0 && !home_visible(o, (char[PATH_MAX]){0}))
                r = mount_plan_add(p, MOP_MKDIR, NULL, "/home", NULL, 0755, 0);
        for (size_t i = 0; r >= 0 && i < 4; i++)
                r = mount_plan_add(p, MOP_MKDIR, NULL,
                                   (const char *[]){"/mnt", "/opt", "/srv", "/media"}[i], NULL,
                                   0755, 0);
        return r;
}

int rootfs_plan_image(const struct rootfs_opts *o, const char *lowers, const char *merged,
                      const char *workdir, struct mount_plan *p)
{
        static const struct {
                const char *path, *content;
        } etc[] = {
            {"/etc/hostname", "agentkernel\n"},
            {"/etc/hosts", "127.0.0.1\tlocalhost agentkernel\n"
                           "::1\tlocalhost ip6-localhost ip6-loopback\n"},
        };
        int r;

        /* The image, writable through an upper layer on the sandbox's disk, becomes the root;
         * everything else is mounted on top of it. The copy fallback (a private copy of the
         * layers, already owned right) is the one lower layer: what the sandbox writes never
         * lands in it, on the host's disk. */
        if (merged)
                r = mount_plan_add(p, MOP_OVERLAY, merged, "/", NULL, 0,
                                   o->idmap ? MOP_DETACHED : 0);
        else
                r = mount_plan_add(p, MOP_OVERLAY, lowers, "/", NULL, 0, o->idmap ? MOP_IDMAP : 0);
        if (r >= 0)
                r = mount_plan_add(p, MOP_MKDIR, NULL, "/etc", NULL, 0755, MOP_OPTIONAL);
        for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(etc) + 1; i++) {
                const char *path = i < ARRAY_SIZE(etc) ? etc[i].path : "/etc/resolv.conf";
                const char *text = i < ARRAY_SIZE(etc) ? etc[i].content : o->resolv_conf;
                if (!text)
                        continue;
                /* The image's own file may be a symlink (to /run/...): replaced, not followed. */
                r = mount_plan_add_file(p, path, text, 0644);
                if (r >= 0)
                        p->ops[p->n - 1].flags |= MOP_REPLACE;
        }
        if (r >= 0)
                r = rootfs_plan_common(o, p);
        if (r >= 0 && workdir && *workdir == '/')
                r = mount_plan_add(p, MOP_MKDIR, NULL, workdir, NULL, 0755, MOP_OPTIONAL);
        return r;
}
