/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OCI images for the native backend (see native-image.h). A missing image is pulled by running
 * the helper and waiting for it; the CLI itself never links the network or archive libraries.
 */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "backend/native-image.h"
#include "core/paths.h"
#include "core/validate.h"
#include "image/image-store.h"
#include "image/manifest.h"
#include "image/ref.h"
#include "runtime/runtime.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/macro.h"
#include "shared/strv.h"

/* Runs `agentkernel-image pull --porcelain NAME`: its progress goes to our stderr as it comes
 * (for people); its one-line result, the id or the reason it failed, to us (for the API). */
static int run_pull(const char *name, struct ak_err *err)
{
        char helper[PATH_MAX];
        cleanup_buf struct buf out = {0};
        int pipefd[2], status, r;
        pid_t pid;

        r = paths_helper("agentkernel-image", "AGENTKERNEL_IMAGE_HELPER", helper, sizeof(helper),
                         err);
        if (r < 0)
                return r;
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return ak_err_errno(err, errno, "pipe");
        pid = fork();
        if (pid < 0) {
                r = errno;
                close(pipefd[0]);
                close(pipefd[1]);
                return ak_err_errno(err, r, "fork");
        }
        if (pid == 0) {
                const char *argv[] = {"agentkernel-image", "pull", "--porcelain", name, NULL};
                if (dup2(pipefd[1], STDOUT_FILENO) < 0)
                        _exit(127);
                execv(helper, (char *const *)argv);
                _exit(127);
        }
        close(pipefd[1]);
        (void)read_fd_full(pipefd[0], &out, 4096);
        close(pipefd[0]);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return ak_err_errno(err, errno, "wait for image pull");
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        if (out.len && strncmp(out.data, "error: ", 7) == 0) {
                size_t n = strcspn(out.data + 7, "\n");
                return ak_err_set(err, ENOENT, "%.*s", (int)n, out.data + 7);
        }
        return ak_err_set(err, ENOENT, "cannot pull image '%s' (the puller failed)", name);
}

void native_image_done(struct native_image *img)
{
        if (!img)
                return;
        free(img->lowers);
        strv_free(img->env);
        free(img->workdir);
        free(img->user);
        if (img->lock_fd >= 0)
                close(img->lock_fd);
        *img = (struct native_image){.lock_fd = -1};
}

int native_image_open(const char *name, struct native_image *ret, struct ak_err *err)
{
        cleanup_free char *data = NULL;
        cleanup_image_ref struct image_ref ref = {0};
        cleanup_image_store struct image_store s = IMAGE_STORE_INIT;
        cleanup_image_record struct image_record rec = {0};
        cleanup_buf struct buf lowers = BUF_INIT;
        struct native_image img = NATIVE_IMAGE_INIT;
        int r = paths_data_dir_open(&data, err);

        if (r < 0)
                return r;
        close(r);
        if (strchr(data, ':'))
                return ak_err_set(err, EINVAL,
                                  "the data directory '%s' contains ':', which overlayfs cannot "
                                  "take in a layer path; set AGENTKERNEL_DATA_DIR",
                                  data);
        r = image_ref_parse(name, &ref, err);
        if (r < 0)
                return r;
        r = image_store_open(data, IMAGE_STORE_SHARED, &s, err);
        if (r >= 0) {
                r = image_store_resolve(&s, &ref, &rec, NULL);
                if (r == -ENOENT) {
                        /* The helper takes the store lock itself. */
                        image_store_done(&s);
                        r = run_pull(name, err);
                        if (r >= 0)
                                r = image_store_open(data, IMAGE_STORE_SHARED, &s, err);
                        if (r >= 0)
                                r = image_store_resolve(&s, &ref, &rec, err);
                } else if (r < 0) {
                        r = image_store_resolve(&s, &ref, &rec, err);
                }
        }
        for (size_t i = rec.n_layers; r >= 0 && i-- > 0;) {
                char path[PATH_MAX];
                r = image_store_layer_path(&s, rec.layers[i].digest, path, sizeof(path));
                if (r >= 0)
                        r = buf_printf(&lowers, "%s%s", lowers.len ? ":" : "", path);
                if (r < 0)
                        ak_err_errno(err, r, "image layer path");
        }
        if (r >= 0 && rec.n_layers == 0)
                r = ak_err_set(err, EINVAL, "image '%s' has no layers", name);
        /* The store's record of the config is checked again: it may come from a version that
         * did not check it at pull time, and the setup and the agent act on these values. */
        if (r >= 0 && rec.user && *rec.user && image_user_check(rec.user, err) < 0)
                r = ak_err_prefix(err, "image '%s'", name);
        if (r >= 0 && rec.workdir && *rec.workdir && image_workdir_normalize(rec.workdir, err) < 0)
                r = ak_err_prefix(err, "image '%s'", name);
        if (r >= 0 && image_env_check(rec.env, err) < 0)
                r = ak_err_prefix(err, "image '%s'", name);
        if (r < 0)
                return r;
        img.lowers = buf_detach(&lowers, NULL);
        img.env = TAKE_PTR(rec.env);
        img.workdir = TAKE_PTR(rec.workdir);
        img.user = TAKE_PTR(rec.user);
        img.lock_fd = TAKE_FD(s.lock_fd);
        *ret = img;
        return 0;
}

/* ---- the copy fallback ---- */

#define COPY_DEPTH_MAX 256 /* directory nesting followed; deeper trees are refused */

struct copier {
        uint32_t shift; /* added to the layer's owners (rootful); rootless keeps ours */
        bool owners;
        struct ak_err *err;
};

static bool is_whiteout(const struct stat *st)
{
        return S_ISCHR(st->st_mode) && st->st_rdev == 0;
}

static bool is_opaque(int dirfd)
{
        char v[2];
        return fgetxattr(dirfd, "trusted.overlay.opaque", v, sizeof(v)) == 1 ||
               fgetxattr(dirfd, "user.overlay.opaque", v, sizeof(v)) == 1;
}

static int copy_meta(struct copier *c, int dst, const char *name, int fd, const struct stat *st)
{
        struct timespec ts[2] = {st->st_atim, st->st_mtim};
        int r = 0;

        if (c->owners)
                r = fd >= 0 ? fchown(fd, st->st_uid + c->shift, st->st_gid + c->shift)
                            : fchownat(dst, name, st->st_uid + c->shift, st->st_gid + c->shift,
                                       AT_SYMLINK_NOFOLLOW);
        if (r == 0 && !S_ISLNK(st->st_mode))
                r = fd >= 0 ? fchmod(fd, st->st_mode & 07777)
                            : fchmodat(dst, name, st->st_mode & 07777, 0);
        if (r == 0)
                r = fd >= 0 ? futimens(fd, ts) : utimensat(dst, name, ts, AT_SYMLINK_NOFOLLOW);
        return r < 0 ? -errno : 0;
}

static int copy_file(int src, const char *name, int dst, const struct stat *st)
{
        cleanup_close int in = openat(src, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        cleanup_close int out = -1;
        off_t left = st->st_size;

        if (in < 0)
                return -errno;
        out = openat(dst, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (out < 0)
                return -errno;
        while (left > 0) {
                ssize_t n = sendfile(out, in, NULL, left > (1 << 30) ? (1 << 30) : (size_t)left);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                left -= n;
        }
        return TAKE_FD(out);
}

/* Copies the layer directory src over dst, applying its whiteouts, as overlayfs would show it. */
static int copy_layer_dir(struct copier *c, int src, int dst, unsigned depth)
{
        DIR *d;
        struct dirent *de;
        int fd = openat(src, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;

        if (depth > COPY_DEPTH_MAX)
                return ak_err_set(c->err, ELOOP, "image tree deeper than %d directories",
                                  COPY_DEPTH_MAX);
        d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) {
                if (fd >= 0)
                        close(fd);
                return ak_err_errno(c->err, errno, "read image layer");
        }
        while (r >= 0 && (de = readdir(d))) {
                const char *name = de->d_name;
                struct stat st, cur;
                bool have;
                if (streq(name, ".") || streq(name, ".."))
                        continue;
                if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = ak_err_errno(c->err, errno, "stat '%s'", name);
                        break;
                }
                have = fstatat(dst, name, &cur, AT_SYMLINK_NOFOLLOW) == 0;
                if (is_whiteout(&st)) {
                        if (have)
                                r = rm_rf_at(dst, name);
                        continue;
                }
                if (S_ISDIR(st.st_mode)) {
                        cleanup_close int sub = -1;
                        cleanup_close int out = -1;
                        sub =
                            openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub < 0) {
                                r = -errno;
                                break;
                        }
                        /* an opaque directory, or one replacing a non-directory, starts empty */
                        if (have && (!S_ISDIR(cur.st_mode) || is_opaque(sub)) &&
                            (r = rm_rf_at(dst, name)) < 0)
                                break;
                        if ((!have || !S_ISDIR(cur.st_mode) || is_opaque(sub)) &&
                            mkdirat(dst, name, 0700) < 0) {
                                r = -errno;
                                break;
                        }
                        out = openat(dst, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (out < 0) {
                                r = -errno;
                                break;
                        }
                        r = copy_layer_dir(c, sub, out, depth + 1);
                        if (r >= 0)
                                r = copy_meta(c, dst, name, out, &st);
                        continue;
                }
                if (have && (r = rm_rf_at(dst, name)) < 0)
                        break;
                if (S_ISREG(st.st_mode)) {
                        int out = copy_file(dirfd(d), name, dst, &st);
                        r = out < 0 ? out : copy_meta(c, dst, name, out, &st);
                        if (out >= 0)
                                close(out);
                } else if (S_ISLNK(st.st_mode)) {
                        char target[PATH_MAX];
                        ssize_t n = readlinkat(dirfd(d), name, target, sizeof(target) - 1);
                        if (n < 0) {
                                r = -errno;
                                break;
                        }
                        target[n] = '\0';
                        r = symlinkat(target, dst, name) < 0 ? -errno
                                                             : copy_meta(c, dst, name, -1, &st);
                } else if (S_ISFIFO(st.st_mode)) {
                        r = mkfifoat(dst, name, 0600) < 0 ? -errno
                                                          : copy_meta(c, dst, name, -1, &st);
                }
                /* the store holds no other kinds (unpack.c creates no devices) */
        }
        closedir(d);
        if (r < 0 && !c->err->code)
                ak_err_errno(c->err, r, "copy the image");
        return r < 0 ? -c->err->code : 0;
}

int native_image_copy(const struct native_image *img, const char *dir, uint32_t shift,
                      struct ak_err *err)
{
        struct copier c = {.shift = shift, .owners = geteuid() == 0, .err = err};
        cleanup_close int out = -1;
        const char *end;
        int r = mkdir_p(dir, 0700);

        if (r < 0)
                return ak_err_errno(err, r, "create '%s'", dir);
        out = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (out < 0)
                return ak_err_errno(err, errno, "open '%s'", dir);
        /* lowers is top first: copy from the last (the base) up */
        end = img->lowers + strlen(img->lowers);
        while (end > img->lowers) {
                const char *start = end;
                char path[PATH_MAX];
                cleanup_close int src = -1;
                while (start > img->lowers && start[-1] != ':')
                        start--;
                if ((size_t)(end - start) >= sizeof(path))
                        return ak_err_set(err, ENAMETOOLONG, "layer path too long");
                memcpy(path, start, (size_t)(end - start));
                path[end - start] = '\0';
                src = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (src < 0)
                        return ak_err_errno(err, errno, "open layer '%s'", path);
                r = copy_layer_dir(&c, src, out, 0);
                if (r < 0)
                        return r;
                end = start > img->lowers ? start - 1 : start;
        }
        /* the root directory itself belongs to the sandbox's root */
        if (c.owners && fchown(out, shift, shift) < 0)
                return ak_err_errno(err, errno, "chown '%s'", dir);
        return fchmod(out, 0755) < 0 ? ak_err_errno(err, errno, "chmod") : 0;
}

bool native_image_use_copy(void)
{
        const char *mode = getenv("AGENTKERNEL_IMAGE_ROOTFS");
        char why[256];

        if (mode && streq(mode, "copy"))
                return true;
        if (mode && streq(mode, "overlay"))
                return false;
        /* rootful needs idmapped layers by fd; rootless mounts in its own namespace */
        return geteuid() == 0 && !runtime_image_roots_supported(why, sizeof(why));
}

int native_image_agent_ok(int agent_fd, struct ak_err *err)
{
        Elf64_Ehdr eh;
        Elf64_Phdr ph;

        /* An interpreter (PT_INTERP) would be looked up in the image, which lacks the host's. */
        if (pread(agent_fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) ||
            memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
            eh.e_phentsize != sizeof(ph) || eh.e_phnum > 128)
                return 0; /* not ours to judge: execve will say */
        for (unsigned i = 0; i < eh.e_phnum; i++) {
                if (pread(agent_fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))) !=
                    (ssize_t)sizeof(ph))
                        return 0;
                if (ph.p_type == PT_INTERP)
                        return ak_err_set(err, ENOEXEC,
                                          "OCI images need a statically linked agent, and this "
                                          "build's agentkernel-agent is dynamic (built with "
                                          "-Dagent_static=false)");
        }
        return 0;
}
