/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OCI images for the native backend (see native-image.h). A missing image is pulled by running
 * the helper and waiting for it; the CLI itself never links the network or archive libraries.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/native-image.h"
#include "core/paths.h"
#include "core/validate.h"
#include "image/image-store.h"
#include "image/ref.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/macro.h"

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
                return ak_err_set(err, errno, "pipe: %s", strerror(errno));
        pid = fork();
        if (pid < 0) {
                r = errno;
                close(pipefd[0]);
                close(pipefd[1]);
                return ak_err_set(err, r, "fork: %s", strerror(r));
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
                        return ak_err_set(err, errno, "wait for image pull: %s", strerror(errno));
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        if (out.len && strncmp(out.data, "error: ", 7) == 0) {
                size_t n = strcspn(out.data + 7, "\n");
                return ak_err_set(err, ENOENT, "%.*s", (int)n, out.data + 7);
        }
        return ak_err_set(err, ENOENT, "cannot pull image '%s' (the puller failed)", name);
}

void native_image_close(struct native_image *img)
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
        cleanup_free char *data = paths_data_dir();
        struct image_ref ref = {0};
        struct image_store s = {.dirfd = -1, .lock_fd = -1};
        struct image_record rec = {0};
        struct native_image img = {.lock_fd = -1};
        struct buf lowers = {0};
        int r;

        if (!data)
                return ak_err_set(err, ENOMEM, "out of memory");
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
                        image_store_close(&s);
                        r = run_pull(name, err);
                        if (r >= 0)
                                r = image_store_open(data, IMAGE_STORE_SHARED, &s, err);
                        if (r >= 0)
                                r = image_store_resolve(&s, &ref, &rec, err);
                } else if (r < 0) {
                        r = image_store_resolve(&s, &ref, &rec, err);
                }
        }
        image_ref_free(&ref);
        for (size_t i = rec.n_layers; r >= 0 && i-- > 0;) {
                char path[PATH_MAX];
                r = image_store_layer_path(&s, rec.layers[i].digest, path, sizeof(path));
                if (r >= 0)
                        r = buf_printf(&lowers, "%s%s", lowers.len ? ":" : "", path);
                if (r < 0)
                        ak_err_set(err, -r, "image layer path: %s", strerror(-r));
        }
        if (r >= 0 && rec.n_layers == 0)
                r = ak_err_set(err, EINVAL, "image '%s' has no layers", name);
        if (r >= 0 && rec.user && *rec.user && validate_user(rec.user, NULL) < 0)
                r = ak_err_set(err, ENOTSUP,
                               "image '%s' runs as user '%s', which this version cannot resolve "
                               "(use a name, uid or uid:gid)",
                               name, rec.user);
        if (r < 0) {
                buf_free(&lowers);
                image_record_free(&rec);
                image_store_close(&s);
                return r;
        }
        img.lowers = buf_detach(&lowers, NULL);
        img.env = TAKE_PTR(rec.env);
        img.workdir = TAKE_PTR(rec.workdir);
        img.user = TAKE_PTR(rec.user);
        img.lock_fd = s.lock_fd;
        s.lock_fd = -1;
        image_record_free(&rec);
        image_store_close(&s);
        *ret = img;
        return 0;
}

int native_image_upper(const char *dir, uid_t uid, gid_t gid, struct ak_err *err)
{
        char p[PATH_MAX];
        int r = mkdir_p(dir, 0700);

        if (r < 0)
                return ak_err_set(err, -r, "create '%s': %s", dir, strerror(-r));
        (void)snprintf(p, sizeof(p), "%s/upper", dir);
        if ((mkdir(p, 0755) < 0 && errno != EEXIST) || chown(p, uid, gid) < 0)
                return ak_err_set(err, errno, "create '%s': %s", p, strerror(errno));
        (void)snprintf(p, sizeof(p), "%s/work", dir);
        if (mkdir(p, 0700) < 0 && errno != EEXIST)
                return ak_err_set(err, errno, "create '%s': %s", p, strerror(errno));
        return 0;
}

static bool has_var(char *const *env, const char *kv)
{
        size_t n = strcspn(kv, "=");

        for (char *const *e = env; e && *e; e++)
                if (strncmp(*e, kv, n) == 0 && (*e)[n] == '=')
                        return true;
        return false;
}

char **native_image_env(const struct native_image *img, char *const *env)
{
        size_t n = strv_len(img->env) + strv_len(env), k = 0;
        char **out = calloc(n + 1, sizeof(*out));

        if (!out)
                return NULL;
        for (char *const *e = img->env; e && *e; e++)
                if (strchr(*e, '=') && !has_var(env, *e) && !(out[k++] = strdup(*e)))
                        goto fail;
        for (char *const *e = env; e && *e; e++)
                if (!(out[k++] = strdup(*e)))
                        goto fail;
        return out;
fail:
        strv_free(out);
        return NULL;
}
