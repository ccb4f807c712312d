// SPDX-License-Identifier: Apache-2.0
/*
 * Directory descriptors kept for one batch of opens (dir-cache.h). A handful of directories at
 * most (a list of sandboxes opens below three or four: the run directory, /proc, one cgroup
 * hierarchy's parent); a lookup is a string compare under a lock.
 */
#include "dir-cache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#define DIR_CACHE_MAX 8

struct kept_dir {
        char path[PATH_MAX];
        size_t len;
        int fd; /* -1: could not be opened (the whole path is then used) */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned batches; /* how many dir_cache_begin() are open, in all threads */
/* this thread's: only a thread within a batch uses the kept fds, which are closed only when no
 * thread is in one (another thread's fd number could otherwise be closed and reused under it) */
static __thread unsigned in_batch;
static struct kept_dir kept[DIR_CACHE_MAX];
static size_t n_kept;

void dir_cache_begin(void)
{
        pthread_mutex_lock(&lock);
        batches++;
        in_batch++;
        pthread_mutex_unlock(&lock);
}

void dir_cache_end(void)
{
        pthread_mutex_lock(&lock);
        if (in_batch)
                in_batch--;
        if (batches && --batches == 0) {
                for (size_t i = 0; i < n_kept; i++)
                        if (kept[i].fd >= 0)
                                close(kept[i].fd);
                n_kept = 0;
        }
        pthread_mutex_unlock(&lock);
}

/* The kept descriptor of the directory path[0..len) (opened now if it is not kept yet), or -1. */
static int kept_fd(const char *path, size_t len)
{
        int fd = -1;

        pthread_mutex_lock(&lock);
        if (in_batch && len < PATH_MAX) {
                size_t i;
                for (i = 0; i < n_kept; i++)
                        if (kept[i].len == len && memcmp(kept[i].path, path, len) == 0)
                                break;
                if (i == n_kept && n_kept < DIR_CACHE_MAX) {
                        struct kept_dir *k = &kept[n_kept++];
                        memcpy(k->path, path, len);
                        k->path[len] = '\0';
                        k->len = len;
                        k->fd = open(k->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
                }
                if (i < n_kept)
                        fd = kept[i].fd;
        }
        pthread_mutex_unlock(&lock);
        return fd;
}

int dir_cache_at(const char *path, unsigned depth, const char **rest)
{
        const char *r = path + strlen(path);
        int dfd;

        *rest = path;
        if (path[0] != '/' || depth == 0 || !*path)
                return AT_FDCWD;
        /* r: where the last `depth` components start */
        for (unsigned k = 0; k < depth; k++) {
                if (k > 0)
                        r--; /* onto the '/' before the component found last */
                while (r > path && r[-1] != '/')
                        r--;
                if (r <= path + 1)
                        return AT_FDCWD; /* fewer components than that, or "/" itself */
        }
        if (!*r)
                return AT_FDCWD;
        dfd = kept_fd(path, (size_t)(r - 1 - path));
        if (dfd < 0)
                return AT_FDCWD;
        *rest = r;
        return dfd;
}
