// SPDX-License-Identifier: Apache-2.0
/*
 * State files and locks. Writers hold the sandbox's lock for read-modify-write; readers never
 * lock (renames are atomic) and survive files that vanish or are corrupt under them.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/paths.h"
#include "core/private-dir.h"
#include "core/validate.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/macro.h"
#include "shared/random-util.h"
#include "shared/time-util.h"

void store_free(struct store *s)
{
        if (!s)
                return;
        free(s->data_dir);
        free(s->sandboxes_dir);
        free(s->locks_dir);
        free(s->run_dir);
        free(s);
}

int store_open(const char *data_dir, struct store **ret, struct ak_err *err)
{
        static const char *const subdirs[] = {"sandboxes", "locks", "run"};
        cleanup_store struct store *s = calloc(1, sizeof(*s));
        cleanup_close int fd = -1;
        int r;

        if (!s)
                return ak_err_oom(err);
        /* the one check every user of the data directory goes through (core/private-dir.h) */
        fd = data_dir
                 ? private_dir_open(data_dir, "data directory", PRIVATE_CREATE, &s->data_dir, err)
                 : paths_data_dir_open(&s->data_dir, err);
        if (fd < 0)
                return fd;
        if (asprintf(&s->sandboxes_dir, "%s/sandboxes", s->data_dir) < 0 ||
            asprintf(&s->locks_dir, "%s/locks", s->data_dir) < 0 ||
            asprintf(&s->run_dir, "%s/run", s->data_dir) < 0)
                return ak_err_oom(err);
        /* records hold -e values: sandboxes/ is 0700 like the rest (upstream made it 0755) */
        for (size_t i = 0; i < ARRAY_SIZE(subdirs); i++) {
                r = private_dir_check_at(fd, s->data_dir, subdirs[i], PRIVATE_CREATE, err);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

static int state_path(struct store *s, const char *name, char *out, size_t len)
{
        if ((size_t)snprintf(out, len, "%s/%s.json", s->sandboxes_dir, name) >= len)
                return -ENAMETOOLONG;
        return 0;
}

bool store_exists(struct store *s, const char *name)
{
        char p[PATH_MAX];
        return state_path(s, name, p, sizeof(p)) == 0 && access(p, F_OK) == 0;
}

/* Parses a file; fills a missing uuid (the caller decides whether to write it back). path:
 * below dirfd (AT_FDCWD: absolute). scratch (or NULL): the buffer the file is read into, kept by
 * a caller that loads many (list) so that each load does not allocate and free its own (with
 * musl's malloc, a fresh page each time). */
static int load_path_at(int dirfd, const char *path, struct buf *scratch,
                        struct sandbox_state **ret, bool *backfilled, struct ak_err *err)
{
        cleanup_buf struct buf own = BUF_INIT;
        struct buf *b = scratch ? scratch : &own;
        struct sandbox_state *st = NULL;
        int r;

        buf_reset(b);
        /* a record is trusted only if it is a regular file of ours that nobody else can write
         * (upstream's 0644 loads; it becomes 0600 when we rewrite it) */
        r = private_file_read_at(dirfd, path, b, STATE_FILE_MAX, err);
        *backfilled = false;
        if (r < 0)
                return r;
        r = state_parse(b->data ? b->data : "", b->len, &st, err);
        if (r < 0)
                return r;
        if (!st->uuid || !*st->uuid) {
                char u[37];
                uuid_v7(u, (uint64_t)(now_realtime_ns() / NSEC_PER_MSEC));
                if (state_set_str(&st->uuid, u) < 0) {
                        state_free(st);
                        return ak_err_oom(err);
                }
                *backfilled = true;
        }
        *ret = st;
        return 0;
}

static int load_path(const char *path, struct sandbox_state **ret, bool *backfilled,
                     struct ak_err *err)
{
        return load_path_at(AT_FDCWD, path, NULL, ret, backfilled, err);
}

int store_load(struct store *s, const char *name, struct sandbox_state **ret, struct ak_err *err)
{
        char p[PATH_MAX];
        struct sandbox_state *st = NULL;
        bool backfilled;
        int r;

        r = validate_name(name, err);
        if (r < 0)
                return r;
        if (state_path(s, name, p, sizeof(p)) < 0)
                return ak_err_set(err, ENAMETOOLONG, "data directory path too long");
        if (access(p, F_OK) < 0)
                return ak_err_set(err, ENOENT, "sandbox '%s' not found", name);
        r = load_path(p, &st, &backfilled, err);
        if (r < 0) {
                if (r == -ENOENT)
                        return ak_err_set(err, ENOENT, "sandbox '%s' not found", name);
                return ak_err_prefix(err, "sandbox '%s': bad state file '%s'", name, p);
        }
        if (!streq(st->name, name)) {
                state_free(st);
                return ak_err_set(err, EINVAL, "state file '%s' names a different sandbox", p);
        }
        if (backfilled)
                (void)store_save(s, st, false, NULL); /* best effort, as upstream */
        *ret = st;
        return 0;
}

int store_save(struct store *s, const struct sandbox_state *st, bool durable, struct ak_err *err)
{
        char p[PATH_MAX];
        cleanup_free char *text = NULL;
        int r;

        if (state_path(s, st->name, p, sizeof(p)) < 0)
                return ak_err_set(err, ENAMETOOLONG, "data directory path too long");
        r = state_format(st, &text);
        if (r < 0)
                return ak_err_set(err, -r, "cannot format state of '%s'", st->name);
        r = write_file_atomic_at(AT_FDCWD, p, text, strlen(text), PRIVATE_FILE_MODE, durable);
        if (r < 0)
                return ak_err_errno(err, r, "cannot write '%s'", p);
        return 0;
}

int store_delete(struct store *s, const char *name, struct ak_err *err)
{
        char p[PATH_MAX];
        cleanup_close int dfd = -1;

        if (state_path(s, name, p, sizeof(p)) < 0)
                return ak_err_set(err, ENAMETOOLONG, "data directory path too long");
        if (unlink(p) < 0 && errno != ENOENT)
                return ak_err_errno(err, errno, "cannot delete '%s'", p);
        dfd = open(s->sandboxes_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void)fsync(dfd);
        return 0;
}

static int cmp_state(const void *a, const void *b)
{
        const struct sandbox_state *x = *(struct sandbox_state *const *)a;
        const struct sandbox_state *y = *(struct sandbox_state *const *)b;
        return strcmp(x->name, y->name);
}

void state_list_done(struct state_list *l)
{
        for (size_t i = 0; i < l->n; i++)
                state_free(l->items[i]);
        free(l->items);
        l->items = NULL;
        l->n = 0;
}

/* ---- list: the records read and parsed on a few threads (thousands of sandboxes) ---- */
#define LIST_THREADS_MAX 8
#define LIST_PER_THREAD_MIN 64 /* fewer records: not worth a thread */

/* One record of a list (thousands at once: small, the error kept only when there is one). */
struct list_slot {
        char name[NAME_MAX + 1]; /* the file's name in the sandboxes directory */
        struct sandbox_state *st;
        bool backfilled, failed;
        int code;  /* the load's errno when failed */
        char *msg; /* and its message (NULL: out of memory) */
};

struct list_job {
        int dirfd; /* the sandboxes directory (fewer lookups than each whole path) */
        struct list_slot *slots;
        size_t n, stride, first;
};

static void *list_worker(void *arg)
{
        struct list_job *j = arg;
        cleanup_buf struct buf scratch = BUF_INIT;

        for (size_t i = j->first; i < j->n; i += j->stride) {
                struct list_slot *sl = &j->slots[i];
                struct ak_err e = {0};
                sl->failed =
                    load_path_at(j->dirfd, sl->name, &scratch, &sl->st, &sl->backfilled, &e) < 0;
                if (sl->failed) {
                        sl->code = e.code;
                        sl->msg = strdup(ak_err_msg(&e));
                }
        }
        return NULL;
}

static void list_load(int dirfd, struct list_slot *slots, size_t n)
{
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        size_t t = MIN((size_t)(cpus > 0 ? cpus : 1), (size_t)LIST_THREADS_MAX);
        struct list_job jobs[LIST_THREADS_MAX];
        pthread_t tids[LIST_THREADS_MAX];
        bool started[LIST_THREADS_MAX] = {false};

        t = MIN(t, n / LIST_PER_THREAD_MIN);
        if (t < 1)
                t = 1;
        for (size_t k = 0; k < t; k++) {
                jobs[k] = (struct list_job){dirfd, slots, n, t, k};
                /* this thread takes the first share; one that cannot start, the caller */
                started[k] = k > 0 && pthread_create(&tids[k], NULL, list_worker, &jobs[k]) == 0;
        }
        for (size_t k = 0; k < t; k++)
                if (!started[k])
                        (void)list_worker(&jobs[k]);
        for (size_t k = 0; k < t; k++)
                if (started[k])
                        (void)pthread_join(tids[k], NULL);
}

int store_list(struct store *s, void (*warn)(void *ctx, const char *file, const char *msg),
               void *ctx, struct state_list *ret)
{
        cleanup_closedir DIR *d = opendir(s->sandboxes_dir);
        cleanup_state_list struct state_list l = {0};
        cleanup_free struct list_slot *slots = NULL;
        size_t n = 0, cap = 0;
        struct dirent *de;

        if (!d) {
                if (errno != ENOENT)
                        return -errno;
                *ret = (struct state_list){0};
                return 0;
        }
        while ((de = readdir(d))) {
                size_t len = strlen(de->d_name);

                if (len < 6 || !streq(de->d_name + len - 5, ".json") || de->d_name[0] == '.')
                        continue;
                if (n == cap) {
                        size_t ncap = cap ? cap * 2 : 16;
                        struct list_slot *x = realloc(slots, ncap * sizeof(*x));
                        if (!x) {
                                n = 0; /* nothing loaded yet */
                                return -ENOMEM;
                        }
                        slots = x;
                        cap = ncap;
                }
                memset(&slots[n], 0, sizeof(slots[n]));
                memcpy(slots[n].name, de->d_name, len + 1); /* d_name holds NAME_MAX at most */
                n++;
        }
        list_load(dirfd(d), slots, n);
        l.items = calloc(n ? n : 1, sizeof(*l.items));
        if (!l.items) {
                for (size_t i = 0; i < n; i++) {
                        state_free(slots[i].st);
                        free(slots[i].msg);
                }
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                struct list_slot *sl = &slots[i];
                cleanup_state struct sandbox_state *st = TAKE_PTR(sl->st);
                cleanup_free char *msg = TAKE_PTR(sl->msg);
                char path[PATH_MAX];

                (void)snprintf(path, sizeof(path), "%s/%s", s->sandboxes_dir, sl->name);
                if (sl->failed) {
                        if (sl->code != ENOENT && warn)
                                warn(ctx, path, msg ? msg : "out of memory");
                        continue;
                }
                if (sl->backfilled) {
                        /* Write the uuid back under the sandbox's lock, on the latest file. */
                        int lk = store_lock(s, st->name, NULL);
                        struct sandbox_state *fresh = NULL;
                        bool backfilled;
                        if (lk >= 0) {
                                if (load_path(path, &fresh, &backfilled, NULL) == 0) {
                                        if (backfilled) {
                                                (void)state_set_str(&fresh->uuid, st->uuid);
                                                (void)store_save(s, fresh, false, NULL);
                                        }
                                        state_free(st);
                                        st = fresh;
                                }
                                store_unlock(lk);
                        }
                }
                l.items[l.n++] = TAKE_PTR(st);
        }
        if (l.n)
                qsort(l.items, l.n, sizeof(*l.items), cmp_state);
        *ret = TAKE_STRUCT(l);
        return 0;
}

static int lock_path(const char *path, struct ak_err *err)
{
        for (;;) {
                struct stat a, b;
                cleanup_close int fd = private_file_open_at(AT_FDCWD, path, O_RDWR | O_CREAT, err);
                if (fd < 0)
                        return ak_err_prefix(err, "cannot open lock '%s'", path);
                while (flock(fd, LOCK_EX) < 0)
                        if (errno != EINTR)
                                return ak_err_errno(err, errno, "cannot lock '%s'", path);
                /* The lock file may have been removed (sandbox deleted) while we waited. */
                if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
                    a.st_dev == b.st_dev)
                        return TAKE_FD(fd);
        }
}

int store_lock(struct store *s, const char *name, struct ak_err *err)
{
        char p[PATH_MAX];
        if ((size_t)snprintf(p, sizeof(p), "%s/%s.lock", s->locks_dir, name) >= sizeof(p))
                return ak_err_set(err, ENAMETOOLONG, "data directory path too long");
        return lock_path(p, err);
}

int store_lock_global(struct store *s, struct ak_err *err)
{
        char p[PATH_MAX];
        if ((size_t)snprintf(p, sizeof(p), "%s/.store.lock", s->locks_dir) >= sizeof(p))
                return ak_err_set(err, ENAMETOOLONG, "data directory path too long");
        return lock_path(p, err);
}

void store_unlock(int fd)
{
        if (fd >= 0)
                close(fd);
}

void store_unlock_remove(struct store *s, const char *name, int fd)
{
        char p[PATH_MAX];
        if ((size_t)snprintf(p, sizeof(p), "%s/%s.lock", s->locks_dir, name) < sizeof(p))
                (void)unlink(p);
        store_unlock(fd);
}

char *store_run_dir(struct store *s, const char *name)
{
        char *p = NULL;
        if (asprintf(&p, "%s/%s", s->run_dir, name) < 0)
                return NULL;
        return p;
}

/* The highest cid in use, remembered (locks/.cid-max: "<dev> <ino> <records> <names' hash>
 * <max>") for as long as the sandboxes directory holds the same records by name (listed, not
 * read): a new record is made only by a create, under the global lock, which store_cid_taken
 * writes this under; a record made otherwise (another tool, a copy) changes the names, and a
 * scan decides. A create then need not read every record, which made it slower with each
 * sandbox (2,000: ~60 ms of a create's ~20). Not caught: a record rewritten under its own name
 * by something else with a higher cid. */
static int cid_memo_path(struct store *s, char *out, size_t len)
{
        return (size_t)snprintf(out, len, "%s/.cid-max", s->locks_dir) >= len ? -ENAMETOOLONG : 0;
}

static int cid_memo_key(struct store *s, char *out, size_t len)
{
        cleanup_closedir DIR *d = opendir(s->sandboxes_dir);
        struct dirent *de;
        struct stat st;
        uint64_t sum = 0, n = 0;

        if (!d || fstat(dirfd(d), &st) < 0)
                return -errno;
        while ((de = readdir(d))) {
                size_t nl = strlen(de->d_name);
                uint64_t h = 1469598103934665603ull; /* FNV-1a of the name */
                if (nl < 6 || !streq(de->d_name + nl - 5, ".json") || de->d_name[0] == '.')
                        continue; /* as store_list */
                for (const char *c = de->d_name; *c; c++)
                        h = (h ^ (uint8_t)*c) * 1099511628211ull;
                sum += h * 0x9e3779b97f4a7c15ull + (h >> 29); /* order does not matter */
                n++;
        }
        (void)snprintf(out, len, "%llu %llu %llu %016llx", (unsigned long long)st.st_dev,
                       (unsigned long long)st.st_ino, (unsigned long long)n,
                       (unsigned long long)sum);
        return 0;
}

static bool cid_memo_read(struct store *s, uint32_t *ret_max)
{
        char path[PATH_MAX], key[128];
        cleanup_buf struct buf b = BUF_INIT;
        size_t kl;
        char *end;
        unsigned long v;

        if (cid_memo_path(s, path, sizeof(path)) < 0 || cid_memo_key(s, key, sizeof(key)) < 0 ||
            private_file_read_at(AT_FDCWD, path, &b, 256, NULL) < 0 || !b.data)
                return false;
        kl = strlen(key);
        if (b.len <= kl + 1 || memcmp(b.data, key, kl) != 0 || b.data[kl] != ' ')
                return false;
        errno = 0;
        v = strtoul(b.data + kl + 1, &end, 10);
        if (errno || end == b.data + kl + 1 || (*end && *end != '\n') || v > UINT32_MAX - 1)
                return false;
        *ret_max = (uint32_t)v;
        return true;
}

void store_cid_taken(struct store *s, uint32_t cid)
{
        char path[PATH_MAX], key[128], text[192];

        if (cid_memo_path(s, path, sizeof(path)) < 0 || cid_memo_key(s, key, sizeof(key)) < 0)
                return;
        (void)snprintf(text, sizeof(text), "%s %u\n", key, cid);
        if (write_file_atomic_at(AT_FDCWD, path, text, strlen(text), PRIVATE_FILE_MODE, false) < 0)
                (void)unlink(path); /* a stale one must not stay */
}

int store_next_cid(struct store *s, uint32_t *ret)
{
        struct state_list l;
        uint32_t max = 2;
        int r;

        if (cid_memo_read(s, &max)) {
                *ret = MAX(max, 2u) + 1;
                return 0;
        }
        r = store_list(s, NULL, NULL, &l);
        if (r < 0)
                return r;
        for (size_t i = 0; i < l.n; i++)
                if (l.items[i]->vsock_cid > max)
                        max = l.items[i]->vsock_cid;
        state_list_done(&l);
        *ret = max + 1;
        return 0;
}
