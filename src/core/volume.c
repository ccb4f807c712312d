// SPDX-License-Identifier: Apache-2.0
/*
 * Volumes. Creation is atomic on the data directory (mkdir), and a failed creation removes what
 * it made. A sized volume's image is formatted with mkfs.ext4 (e2fsprogs, "required" in Debian)
 * and attached with the loop driver directly (LOOP_SET_FD, autoclear), mounted nosuid,nodev.
 */
#include "volume.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "core/paths.h"
#include "core/private-dir.h"
#include "shared/bind-mount.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/parse-util.h"
#include "shared/time-util.h"

#define META_MAX (64u << 10)

struct vpaths {
        char dir[4096];   /* data directory (mount point when sized) */
        char image[4096]; /* sized volumes' filesystem image */
        char meta[4096];  /* metadata JSON */
        char lock[4096];  /* lock file for metadata updates */
};

/* The user directory and its volumes/ and volume-metadata/, created and checked as private
 * directories (0700: volume names, sizes and data are nobody else's business). *ret_base gets
 * the user directory's canonical path. */
static int volume_dirs(char **ret_base, struct ak_err *err)
{
        cleanup_free char *base = NULL;
        cleanup_close int fd = paths_user_dir_open(&base, err);

        if (fd < 0)
                return fd;
        for (int i = 0; i < 2; i++) {
                int r = private_dir_check_at(fd, base, i ? "volume-metadata" : "volumes",
                                             PRIVATE_CREATE, err);
                if (r < 0)
                        return r;
        }
        *ret_base = TAKE_PTR(base);
        return 0;
}

/* A volume's data directory as it must be before anything is mounted on it or bound from it:
 * a real directory, never a symlink (mount(2) and bind mounts follow links). */
static int volume_dir_ok(const char *dir, struct ak_err *err)
{
        struct stat st;

        if (lstat(dir, &st) < 0)
                return ak_err_errno(err, errno, "volume directory '%s'", dir);
        if (!S_ISDIR(st.st_mode))
                return ak_err_set(err, ENOTDIR,
                                  "volume directory '%s' is not a directory (a symlink?): not "
                                  "mounting it; remove it if you did not put it there",
                                  dir);
        return 0;
}

static int vpaths(const char *slug, struct vpaths *p, struct ak_err *err)
{
        cleanup_free char *base = NULL;
        int r = volume_dirs(&base, err);

        if (r < 0)
                return r;
        if ((size_t)snprintf(p->dir, sizeof(p->dir), "%s/volumes/%s", base, slug) >=
                sizeof(p->dir) ||
            (size_t)snprintf(p->image, sizeof(p->image), "%s/volumes/.%s.img", base, slug) >=
                sizeof(p->image) ||
            (size_t)snprintf(p->meta, sizeof(p->meta), "%s/volume-metadata/%s.json", base, slug) >=
                sizeof(p->meta) ||
            (size_t)snprintf(p->lock, sizeof(p->lock), "%s/volume-metadata/.%s.lock", base, slug) >=
                sizeof(p->lock))
                return ak_err_set(err, ENAMETOOLONG, "data directory path too long");
        return 0;
}

int volume_validate_slug(const char *slug, struct ak_err *err)
{
        size_t n = slug ? strlen(slug) : 0;

        if (n == 0 || n > VOLUME_SLUG_MAX)
                return ak_err_set(err, EINVAL, "volume name must be 1 to %d characters",
                                  VOLUME_SLUG_MAX);
        for (size_t i = 0; i < n; i++) {
                char c = slug[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_'))
                        return ak_err_set(err, EINVAL,
                                          "invalid volume name '%s': use letters, digits, '-' "
                                          "and '_'",
                                          slug);
        }
        if (slug[0] == '-' || slug[0] == '_')
                return ak_err_set(err, EINVAL,
                                  "invalid volume name '%s': must start with a "
                                  "letter or digit",
                                  slug);
        return 0;
}

int volume_parse_size(const char *s, uint64_t *ret, struct ak_err *err)
{
        uint64_t v;

        if (parse_size(s, &v) < 0)
                return ak_err_set(err, EINVAL, "invalid size '%s' (e.g. 512MB, 2GB)", s);
        if (v < VOLUME_SIZE_MIN || v > VOLUME_SIZE_MAX)
                return ak_err_set(err, ERANGE, "volume size must be 8MB to 16TB");
        *ret = v;
        return 0;
}

int volume_parse_spec(const char *spec, struct volume_spec *ret, struct ak_err *err)
{
        const char *colon = strchr(spec, ':');
        const char *dest, *mode;
        size_t dlen;
        int r;

        memset(ret, 0, sizeof(*ret));
        if (!colon || (size_t)(colon - spec) > VOLUME_SLUG_MAX)
                return ak_err_set(err, EINVAL, "invalid volume '%s': use NAME:/path[:ro]", spec);
        memcpy(ret->slug, spec, (size_t)(colon - spec));
        r = volume_validate_slug(ret->slug, err);
        if (r < 0)
                return r;
        dest = colon + 1;
        mode = strchr(dest, ':');
        dlen = mode ? (size_t)(mode - dest) : strlen(dest);
        if (mode && strcmp(mode + 1, "ro") != 0 && strcmp(mode + 1, "rw") != 0)
                return ak_err_set(err, EINVAL, "invalid volume '%s': the mode is 'ro' or 'rw'",
                                  spec);
        ret->ro = mode && strcmp(mode + 1, "ro") == 0;
        if (dlen == 0 || dlen >= sizeof(ret->dest) || dest[0] != '/')
                return ak_err_set(err, EINVAL, "invalid volume '%s': the path must be absolute",
                                  spec);
        memcpy(ret->dest, dest, dlen);
        if (strstr(ret->dest, "/../") || strstr(ret->dest, "/./") ||
            (dlen >= 3 && strcmp(ret->dest + dlen - 3, "/..") == 0) || strcmp(ret->dest, "/") == 0)
                return ak_err_set(err, EINVAL, "invalid volume '%s': '%s' is not a usable path",
                                  spec, ret->dest);
        for (const char *const *bad =
                 (const char *const[]){"/proc", "/sys", "/dev", "/usr", "/bin", "/sbin", "/lib",
                                       "/lib64", "/etc", NULL};
             *bad; bad++) {
                size_t bl = strlen(*bad);
                if (strncmp(ret->dest, *bad, bl) == 0 &&
                    (ret->dest[bl] == '\0' || ret->dest[bl] == '/'))
                        return ak_err_set(err, EINVAL, "invalid volume '%s': cannot mount over %s",
                                          spec, *bad);
        }
        return 0;
}

/* ---- metadata ---- */

static int meta_read(const struct vpaths *p, const char *slug, struct volume_info *v,
                     struct ak_err *err)
{
        cleanup_buf struct buf b = BUF_INIT;
        cleanup_json json_t *o = NULL;
        struct ak_err e = {0};
        /* metadata decides what gets loop-mounted: only a private file of ours is believed */
        int r = private_file_read_at(AT_FDCWD, p->meta, &b, META_MAX, &e);

        memset(v, 0, sizeof(*v));
        if (r == -ENOENT)
                return ak_err_set(err, ENOENT,
                                  "volume '%s' not found (create it with: agentkernel volume "
                                  "create %s)",
                                  slug, slug);
        if (r < 0)
                return ak_err_set(err, -r, "volume '%s': %s", slug, ak_err_msg(&e));
        o = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
        if (!json_is_object(o) || !json_is_integer(json_object_get(o, "size_bytes")))
                return ak_err_set(err, EBADMSG, "volume metadata '%s' is damaged", p->meta);
        (void)snprintf(v->slug, sizeof(v->slug), "%s", slug);
        v->size_bytes = (uint64_t)json_integer_value(json_object_get(o, "size_bytes"));
        v->mount_count = (uint64_t)json_integer_value(json_object_get(o, "mount_count"));
        (void)snprintf(v->created_at, sizeof(v->created_at), "%s",
                       json_string_value(json_object_get(o, "created_at"))
                           ? json_string_value(json_object_get(o, "created_at"))
                           : "");
        (void)snprintf(v->last_used, sizeof(v->last_used), "%s",
                       json_string_value(json_object_get(o, "last_used"))
                           ? json_string_value(json_object_get(o, "last_used"))
                           : "");
        (void)snprintf(v->path, sizeof(v->path), "%s", p->dir);
        return 0;
}

static int meta_write(const struct vpaths *p, const struct volume_info *v, struct ak_err *err)
{
        cleanup_json json_t *o =
            json_pack("{s:s,s:I,s:s,s:o,s:I}", "slug", v->slug, "size_bytes",
                      (json_int_t)v->size_bytes, "created_at", v->created_at, "last_used",
                      v->last_used[0] ? json_string(v->last_used) : json_null(), "mount_count",
                      (json_int_t)v->mount_count);
        cleanup_free char *text = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        int r;

        if (!text)
                return ak_err_oom(err);
        r = write_file_atomic_at(AT_FDCWD, p->meta, text, strlen(text), 0600, false);
        if (r < 0)
                return ak_err_errno(err, r, "cannot write '%s'", p->meta);
        return 0;
}

json_t *volume_json(const struct volume_info *v)
{
        return json_pack(
            "{s:s,s:I,s:I,s:s,s:s?,s:I,s:s,s:b}", "slug", v->slug, "size_bytes",
            (json_int_t)v->size_bytes, "used_bytes", (json_int_t)v->used_bytes, "created_at",
            v->created_at, "last_used", v->last_used[0] ? v->last_used : NULL, "mount_count",
            (json_int_t)v->mount_count, "path", v->path, "enforced_limit", v->size_bytes > 0);
}

/* ---- sized volumes: an ext4 image on a loop device ---- */

static bool is_mountpoint(const char *dir)
{
        struct stat a, b;
        char parent[4096];

        if ((size_t)snprintf(parent, sizeof(parent), "%s/..", dir) >= sizeof(parent))
                return false;
        return lstat(dir, &a) == 0 && S_ISDIR(a.st_mode) && stat(parent, &b) == 0 &&
               a.st_dev != b.st_dev;
}

static int run_mkfs(const char *image, struct ak_err *err)
{
        char opts[128];
        int status;
        pid_t pid;

        (void)snprintf(opts, sizeof(opts),
                       "lazy_itable_init=1,lazy_journal_init=1,root_owner=%u:%u", VOLUME_ID_BASE,
                       VOLUME_ID_BASE);
        pid = fork();

        if (pid < 0)
                return ak_err_errno(err, errno, "fork");
        if (pid == 0) {
                int null = open("/dev/null", O_RDWR);
                if (null >= 0) {
                        (void)dup2(null, 0);
                        (void)dup2(null, 1);
                }
                /* -m 0: no blocks reserved for root, the volume is all the sandbox's */
                /* the root belongs to the volumes' owner (VOLUME_ID_BASE), never to root */
                execlp("mkfs.ext4", "mkfs.ext4", "-q", "-F", "-m", "0", "-E", opts, image,
                       (char *)NULL);
                _exit(127);
        }
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return ak_err_errno(err, errno, "waitpid");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return ak_err_set(err, EIO,
                                  WIFEXITED(status) && WEXITSTATUS(status) == 127
                                      ? "mkfs.ext4 not found (install e2fsprogs)"
                                      : "mkfs.ext4 failed on '%s'",
                                  image);
        return 0;
}

static int loop_mount(const char *image, const char *dir, struct ak_err *err)
{
        cleanup_close int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
        /* the image we made: a regular file of ours, never a link to a device or another file */
        cleanup_close int img = private_file_open_at(AT_FDCWD, image, O_RDWR, err);
        char dev[64];
        int r;

        if (ctl < 0)
                return ak_err_set(err, errno,
                                  "/dev/loop-control: %s (sized volumes need the "
                                  "loop driver and root)",
                                  strerror(errno));
        if (img < 0)
                return img;
        if ((r = volume_dir_ok(dir, err)) < 0)
                return r;
        for (int attempt = 0; attempt < 16; attempt++) {
                struct loop_info64 info = {.lo_flags = LO_FLAGS_AUTOCLEAR};
                cleanup_close int loop = -1;
                int n = ioctl(ctl, LOOP_CTL_GET_FREE);
                if (n < 0)
                        return ak_err_errno(err, errno, "no free loop device");
                (void)snprintf(dev, sizeof(dev), "/dev/loop%d", n);
                loop = open(dev, O_RDWR | O_CLOEXEC);
                if (loop < 0)
                        return ak_err_errno(err, errno, "%s", dev);
                if (ioctl(loop, LOOP_SET_FD, img) < 0) {
                        if (errno == EBUSY)
                                continue; /* taken meanwhile by someone else */
                        return ak_err_errno(err, errno, "%s", dev);
                }
                if (ioctl(loop, LOOP_SET_STATUS64, &info) < 0 ||
                    mount(dev, dir, "ext4", MS_NOSUID | MS_NODEV, NULL) < 0) {
                        int e = errno;
                        (void)ioctl(loop, LOOP_CLR_FD, 0);
                        return ak_err_errno(err, e, "cannot mount '%s'", image);
                }
                /* the loop device goes away by itself when the filesystem is unmounted */
                return 0;
        }
        return ak_err_set(err, EBUSY, "loop devices are all busy");
}

static int ensure_mounted(const struct vpaths *p, const struct volume_info *v, struct ak_err *err)
{
        if (!v->size_bytes || is_mountpoint(p->dir))
                return 0;
        return loop_mount(p->image, p->dir, err);
}

/* ---- ownership: a volume's files are never host root's ---- */

#define MIGRATE_DEPTH_MAX 256 /* directory nesting a conversion follows */

/* The id a volume file of an older version (sandbox id k on disk as k) has now. */
static uint32_t shifted(uint32_t id)
{
        return id < VOLUME_ID_COUNT ? VOLUME_ID_BASE + id : id;
}

/* One entry of a volume being converted, never followed if it is a link: owner shifted
 * (shifted()), setuid and setgid bits dropped, file capabilities removed. The entry is pinned
 * by an O_PATH fd and changed through it, so a sandbox swapping it for a symlink meanwhile
 * changes nothing outside the volume. */
static int migrate_entry(int fd, const struct stat *st)
{
        char self[64];
        uint32_t uid = shifted((uint32_t)st->st_uid), gid = shifted((uint32_t)st->st_gid);

        if ((uid != st->st_uid || gid != st->st_gid) &&
            fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
                return -errno;
        if (S_ISLNK(st->st_mode))
                return 0;
        (void)snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
        if ((st->st_mode & (S_ISUID | S_ISGID)) &&
            chmod(self, st->st_mode & 07777 & ~(mode_t)(S_ISUID | S_ISGID)) < 0)
                return -errno;
        if (removexattr(self, "security.capability") < 0 && errno != ENODATA && errno != ENOTSUP &&
            errno != EOPNOTSUPP)
                return -errno;
        return 0;
}

static int migrate_dir(int dfd, unsigned depth, struct ak_err *err)
{
        DIR *d;
        struct dirent *de;
        int r = 0;

        if (depth > MIGRATE_DEPTH_MAX) {
                close(dfd);
                return ak_err_set(err, ELOOP, "nested deeper than %d directories",
                                  MIGRATE_DEPTH_MAX);
        }
        d = fdopendir(dfd);
        if (!d) {
                r = -errno;
                close(dfd);
                return ak_err_set(err, -r, "%s", strerror(-r));
        }
        while (r >= 0 && (de = readdir(d))) {
                cleanup_close int fd = -1;
                struct stat st;
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                fd = openat(dirfd(d), de->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0 || fstat(fd, &st) < 0) {
                        if (errno == ENOENT)
                                continue; /* gone meanwhile */
                        r = ak_err_errno(err, errno, "'%s'", de->d_name);
                        break;
                }
                if (S_ISDIR(st.st_mode)) {
                        int sub = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                        if (sub < 0 || (r = migrate_dir(sub, depth + 1, err)) < 0) {
                                if (sub < 0)
                                        r = ak_err_errno(err, errno, "'%s'", de->d_name);
                                break;
                        }
                }
                r = migrate_entry(fd, &st);
                if (r < 0)
                        r = ak_err_errno(err, r, "'%s'", de->d_name);
        }
        closedir(d);
        return r;
}

/* Makes a volume's files belong to the volumes' range (VOLUME_ID_BASE), once: volumes made by
 * earlier versions were owned by host root and the ids of the sandboxes that wrote them. The
 * root directory is converted last, so an interrupted conversion starts again. Root only. */
static int ensure_owner(const struct vpaths *p, const char *slug, struct ak_err *err)
{
        cleanup_close int root = -1;
        struct stat st;
        int r;

        if (geteuid() != 0)
                return 0; /* rootless: the caller's own files, mapped to the sandbox's root */
        root = open(p->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (root < 0 || fstat(root, &st) < 0)
                return ak_err_errno(err, errno, "volume '%s'", slug);
        if (st.st_uid == VOLUME_ID_BASE)
                return 0;
        r = migrate_dir(fcntl(root, F_DUPFD_CLOEXEC, 3), 0, err);
        if (r >= 0)
                r = migrate_entry(root, &st);
        if (r < 0)
                return ak_err_prefix(err, "volume '%s': giving its files to their new owner", slug);
        return 0;
}

/* ---- operations ---- */

static int lock_meta(const struct vpaths *p, struct ak_err *err)
{
        int fd = private_file_open_at(AT_FDCWD, p->lock, O_RDWR | O_CREAT, err);

        if (fd < 0)
                return ak_err_prefix(err, "cannot lock volume metadata");
        while (flock(fd, LOCK_EX) < 0)
                if (errno != EINTR) {
                        int e = errno;
                        close(fd);
                        return ak_err_errno(err, e, "flock");
                }
        return fd;
}

int volume_create(const char *slug, uint64_t size_bytes, struct volume_info *ret,
                  struct ak_err *err)
{
        struct vpaths p;
        struct volume_info v = {0};
        int r, lk;

        if ((r = volume_validate_slug(slug, err)) < 0 || (r = vpaths(slug, &p, err)) < 0)
                return r;
        if (size_bytes && geteuid() != 0)
                return ak_err_set(err, EPERM,
                                  "a size limit needs root (it is an ext4 filesystem "
                                  "on a loop device); create the volume without -s");
        lk = lock_meta(&p, err);
        if (lk < 0)
                return lk;
        if (access(p.meta, F_OK) == 0) {
                r = ak_err_set(err, EEXIST, "volume '%s' already exists", slug);
                goto out;
        }
        if (mkdir(p.dir, 0755) < 0) {
                r = ak_err_set(err, errno,
                               errno == EEXIST ? "volume '%s': its directory already exists"
                                               : "volume '%s': cannot create its directory",
                               slug);
                goto out;
        }
        if (!size_bytes && geteuid() == 0 && chown(p.dir, VOLUME_ID_BASE, VOLUME_ID_BASE) < 0) {
                r = ak_err_errno(err, errno, "volume '%s': cannot give it to its owner", slug);
                goto undo;
        }
        if (size_bytes) {
                cleanup_close int fd =
                    open(p.image, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (fd < 0 || ftruncate(fd, (off_t)size_bytes) < 0) {
                        r = ak_err_errno(err, errno, "cannot create '%s'", p.image);
                        goto undo;
                }
                close(fd);
                fd = -1;
                if ((r = run_mkfs(p.image, err)) < 0 || (r = loop_mount(p.image, p.dir, err)) < 0)
                        goto undo;
                /* the filesystem's root is the volume: writable by every sandbox's root */
                (void)chmod(p.dir, 0755);
                {
                        char lf[4200];
                        (void)snprintf(lf, sizeof(lf), "%s/lost+found", p.dir);
                        (void)rmdir(lf);
                }
        }
        (void)snprintf(v.slug, sizeof(v.slug), "%s", slug);
        v.size_bytes = size_bytes;
        format_rfc3339(now_realtime_ns(), v.created_at);
        r = meta_write(&p, &v, err);
        if (r < 0)
                goto undo;
        (void)snprintf(v.path, sizeof(v.path), "%s", p.dir);
        v.mounted = size_bytes > 0;
        if (ret)
                *ret = v;
        r = 0;
        goto out;
undo:
        if (is_mountpoint(p.dir))
                (void)umount2(p.dir, MNT_DETACH);
        (void)rmdir(p.dir);
        (void)unlink(p.image);
out:
        close(lk);
        return r;
}

static uint64_t dir_usage(int dfd, int depth)
{
        DIR *d;
        struct dirent *de;
        uint64_t total = 0;

        if (depth > 64) {
                close(dfd);
                return 0;
        }
        d = fdopendir(dfd);
        if (!d) {
                close(dfd);
                return 0;
        }
        while ((de = readdir(d))) {
                struct stat st;
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                total += (uint64_t)st.st_blocks * 512;
                if (S_ISDIR(st.st_mode)) {
                        int sub = openat(dirfd(d), de->d_name,
                                         O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub >= 0)
                                total += dir_usage(sub, depth + 1);
                }
        }
        closedir(d);
        return total;
}

int volume_get(const char *slug, struct volume_info *ret, struct ak_err *err)
{
        struct vpaths p;
        int r;

        if ((r = volume_validate_slug(slug, err)) < 0 || (r = vpaths(slug, &p, err)) < 0 ||
            (r = meta_read(&p, slug, ret, err)) < 0)
                return r;
        ret->mounted = ret->size_bytes && is_mountpoint(p.dir);
        if (ret->mounted) {
                struct statvfs sv;
                if (statvfs(p.dir, &sv) == 0)
                        ret->used_bytes = (uint64_t)(sv.f_blocks - sv.f_bfree) * sv.f_frsize;
        } else {
                int fd = open(p.dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd >= 0)
                        ret->used_bytes = dir_usage(fd, 0);
        }
        return 0;
}

static int cmp_volume(const void *a, const void *b)
{
        return strcmp(((const struct volume_info *)a)->slug, ((const struct volume_info *)b)->slug);
}

int volume_list(struct volume_info **ret, size_t *ret_n, struct ak_err *err)
{
        cleanup_free char *base = NULL;
        char dir[4096];
        cleanup_free struct volume_info *all = NULL;
        cleanup_closedir DIR *d = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;
        int r;

        *ret = NULL;
        *ret_n = 0;
        if ((r = volume_dirs(&base, err)) < 0)
                return r;
        (void)snprintf(dir, sizeof(dir), "%s/volume-metadata", base);
        d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : ak_err_errno(err, errno, "cannot list '%s'", dir);
        while ((de = readdir(d))) {
                size_t len = strlen(de->d_name);
                char slug[VOLUME_SLUG_MAX + 1];
                if (len < 6 || len - 5 > VOLUME_SLUG_MAX || de->d_name[0] == '.' ||
                    strcmp(de->d_name + len - 5, ".json") != 0)
                        continue;
                memcpy(slug, de->d_name, len - 5);
                slug[len - 5] = '\0';
                if (n == cap) {
                        struct volume_info *na = realloc(all, (cap ? cap * 2 : 8) * sizeof(*all));
                        if (!na)
                                return ak_err_oom(err);
                        all = na;
                        cap = cap ? cap * 2 : 8;
                }
                if (volume_get(slug, &all[n], NULL) == 0)
                        n++;
        }
        qsort(all, n, sizeof(*all), cmp_volume);
        *ret = TAKE_PTR(all);
        *ret_n = n;
        return 0;
}

static bool dir_empty(const char *path)
{
        DIR *d = opendir(path);
        struct dirent *de;
        bool empty = true;

        if (!d)
                return true;
        while (empty && (de = readdir(d)))
                empty = streq(de->d_name, ".") || streq(de->d_name, "..");
        closedir(d);
        return empty;
}

/* A volume's paths and record, read under its lock: returns the lock's fd (the caller closes
 * it) or a negative errno with nothing held. */
static int open_locked(const char *slug, struct vpaths *p, struct volume_info *v,
                       struct ak_err *err)
{
        int r, lk;

        if ((r = volume_validate_slug(slug, err)) < 0 || (r = vpaths(slug, p, err)) < 0)
                return r;
        lk = lock_meta(p, err);
        if (lk < 0)
                return lk;
        r = meta_read(p, slug, v, err);
        if (r < 0) {
                close(lk);
                return r;
        }
        return lk;
}

int volume_delete(const char *slug, bool force, struct ak_err *err)
{
        struct volume_info v;
        struct vpaths p;
        int r, lk = open_locked(slug, &p, &v, err);

        if (lk < 0)
                return lk;
        if (v.size_bytes && (r = ensure_mounted(&p, &v, err)) < 0)
                goto out;
        if (!force && !dir_empty(p.dir)) {
                r = ak_err_set(err, ENOTEMPTY,
                               "volume '%s' is not empty; delete it anyway with --force", slug);
                goto out;
        }
        if (v.size_bytes && umount2(p.dir, UMOUNT_NOFOLLOW) < 0) {
                r = ak_err_set(err, errno,
                               errno == EBUSY ? "volume '%s' is in use by a running sandbox"
                                              : "cannot unmount volume '%s'",
                               slug);
                goto out;
        }
        r = rm_rf_at(AT_FDCWD, p.dir);
        if (r < 0 && r != -ENOENT) {
                r = ak_err_errno(err, r, "cannot remove '%s'", p.dir);
                goto out;
        }
        (void)unlink(p.image);
        (void)unlink(p.meta);
        (void)unlink(p.lock);
        r = 0;
out:
        close(lk);
        return r;
}

int volume_acquire(const char *slug, char *ret_path, size_t len, struct ak_err *err)
{
        struct volume_info v;
        struct vpaths p;
        int r, lk = open_locked(slug, &p, &v, err);

        if (lk < 0)
                return lk;
        r = ensure_mounted(&p, &v, err);
        if (r >= 0)
                r = volume_dir_ok(p.dir, err); /* it is bound into the sandbox */
        if (r >= 0)
                r = ensure_owner(&p, slug, err);
        if (r >= 0) {
                v.mount_count++;
                format_rfc3339(now_realtime_ns(), v.last_used);
                (void)meta_write(&p, &v, NULL);
                (void)snprintf(ret_path, len, "%s", p.dir);
        }
        close(lk);
        return r;
}
