// SPDX-License-Identifier: Apache-2.0
/*
 * cgroup management for the native backend. Only ever touches directories below
 * <hierarchy>/agentkernel/, and never removes a cgroup that still has processes.
 */
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shared/cleanup.h"
#include "shared/dir-cache.h"
#include "shared/fd-util.h"
#include "shared/macro.h"
#include "shared/parse-util.h"
#include "shared/time-util.h"

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

#define DESTROY_TIMEOUT_MS 5000

static const char *const v1_controllers[CGROUP_MAX_HIER] = {"memory", "pids", "cpu"};

/* A delegated parent is usable only as a plain absolute path: nothing to resolve differently
 * later ("." or ".." components, empty ones). */
static bool plain_path(const char *p)
{
        if (!p || p[0] != '/')
                return false;
        for (const char *c = p + 1, *end; *c; c = *end ? end + 1 : end) {
                size_t n;
                end = strchrnul(c, '/');
                n = (size_t)(end - c);
                if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
                        return false;
        }
        return true;
}

/* The directory under which sandbox cgroups live, per hierarchy. */
static int hier_parent(enum cgroup_mode mode, size_t i, char *out, size_t len)
{
        const char *delegated = secure_getenv("AGENTKERNEL_CGROUP_PARENT");

        if (mode == CGROUP_V2) {
                if (delegated && *delegated)
                        return !plain_path(delegated)                           ? -EINVAL
                               : snprintf(out, len, "%s", delegated) < (int)len ? 0
                                                                                : -ENAMETOOLONG;
                return snprintf(out, len, CGROUP_ROOT "/" CGROUP_PARENT) < (int)len ? 0
                                                                                    : -ENAMETOOLONG;
        }
        return snprintf(out, len, CGROUP_ROOT "/%s/" CGROUP_PARENT, v1_controllers[i]) < (int)len
                   ? 0
                   : -ENAMETOOLONG;
}

enum cgroup_mode cgroup_detect(char *why, size_t why_len)
{
        struct statfs sf;
        const char *delegated = secure_getenv("AGENTKERNEL_CGROUP_PARENT");

        if (statfs(CGROUP_ROOT, &sf) < 0) {
                (void)snprintf(why, why_len, "%s is not mounted", CGROUP_ROOT);
                return CGROUP_NONE;
        }
        if (sf.f_type == CGROUP2_SUPER_MAGIC) {
                if (geteuid() != 0 && !(delegated && *delegated && access(delegated, W_OK) == 0)) {
                        (void)snprintf(why, why_len,
                                       "cgroup v2 needs root, or a delegated writable subtree "
                                       "named by AGENTKERNEL_CGROUP_PARENT");
                        return CGROUP_NONE;
                }
                return CGROUP_V2;
        }
        for (size_t i = 0; i < CGROUP_MAX_HIER; i++) {
                char p[PATH_MAX];
                (void)snprintf(p, sizeof(p), CGROUP_ROOT "/%s/cgroup.procs", v1_controllers[i]);
                if (access(p, F_OK) < 0) {
                        (void)snprintf(why, why_len, "cgroup v1 controller '%s' is not mounted",
                                       v1_controllers[i]);
                        return CGROUP_NONE;
                }
        }
        if (geteuid() != 0) {
                (void)snprintf(why, why_len, "cgroup v1 cannot be delegated to unprivileged users");
                return CGROUP_NONE;
        }
        return CGROUP_V1;
}

/* cgroup_detect() for the checks of many records at once (list: a statfs and three access()
 * calls per record otherwise): its answer, kept for a second. What it depends on (the mounts,
 * the euid, the delegated parent) does not change between the records of one list; a change
 * is seen within the second. Any thread may refresh it (the same answer, written whole under
 * the lock). */
#define DETECT_CACHE_NS (1000 * NSEC_PER_MSEC)
static enum cgroup_mode cgroup_detect_recent(void)
{
        static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        static enum cgroup_mode mode;
        static int64_t at; /* 0: never detected */
        int64_t now = now_monotonic_ns();
        enum cgroup_mode r;

        pthread_mutex_lock(&lock);
        if (!at || now - at >= DETECT_CACHE_NS || now < at) {
                char why[256];
                mode = cgroup_detect(why, sizeof(why));
                at = now ? now : 1;
        }
        r = mode;
        pthread_mutex_unlock(&lock);
        return r;
}

/* A cgroup id names one directory: never empty, never a path. */
static bool valid_id(const char *id)
{
        if (!id || !*id || strlen(id) > 64)
                return false;
        for (const char *p = id; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                      (*p >= '0' && *p <= '9') || *p == '-'))
                        return false;
        return true;
}

int cgroup_paths(const char *id, struct cgroup_set *ret)
{
        char why[256];
        enum cgroup_mode mode;

        memset(ret, 0, sizeof(*ret));
        if (!valid_id(id))
                return -EINVAL;
        mode = cgroup_detect(why, sizeof(why));
        ret->mode = mode;
        if (mode == CGROUP_NONE)
                return 0;
        ret->n = mode == CGROUP_V2 ? 1 : CGROUP_MAX_HIER;
        for (size_t i = 0; i < ret->n; i++) {
                char parent[PATH_MAX];
                int r = hier_parent(mode, i, parent, sizeof(parent));
                if (r < 0)
                        return r;
                /* room left for the knobs' names: see CGROUP_PATH_MAX */
                if ((size_t)snprintf(ret->dirs[i], CGROUP_PATH_MAX - 64, "%s/%s", parent, id) >=
                    CGROUP_PATH_MAX - 64)
                        return -ENAMETOOLONG;
        }
        return 0;
}

static bool dir_is(const char *dir, const char *parent, const char *id)
{
        size_t n = strlen(parent);
        return strncmp(dir, parent, n) == 0 && dir[n] == '/' && streq(dir + n + 1, id);
}

/* dir_is(dir, CGROUP_ROOT "/<controller>/" CGROUP_PARENT, id), without formatting the parent
 * (three snprintf per record in `list`) */
static bool dir_is_v1(const char *dir, const char *controller, const char *id)
{
        static const char root[] = CGROUP_ROOT "/";
        size_t c = strlen(controller);

        if (strncmp(dir, root, sizeof(root) - 1))
                return false;
        dir += sizeof(root) - 1;
        return strncmp(dir, controller, c) == 0 && dir_is(dir + c, "/" CGROUP_PARENT, id);
}

bool cgroup_confined(const char *id, const struct cgroup_set *cg)
{
        const char *delegated = secure_getenv("AGENTKERNEL_CGROUP_PARENT");

        if (!valid_id(id) || cg->mode == CGROUP_NONE || cg->n == 0 ||
            cg->n != (cg->mode == CGROUP_V2 ? 1u : CGROUP_MAX_HIER) ||
            cgroup_detect_recent() != cg->mode)
                return false;
        for (size_t i = 0; i < cg->n; i++) {
                bool ok;
                if (memchr(cg->dirs[i], '\0', CGROUP_PATH_MAX) == NULL)
                        return false;
                if (cg->mode == CGROUP_V2)
                        ok = dir_is(cg->dirs[i], CGROUP_ROOT "/" CGROUP_PARENT, id) ||
                             (delegated && plain_path(delegated) &&
                              dir_is(cg->dirs[i], delegated, id));
                else
                        ok = dir_is_v1(cg->dirs[i], v1_controllers[i], id);
                if (!ok)
                        return false;
        }
        return true;
}

static int write_knob(const char *dir, const char *knob, const char *value)
{
        char p[PATH_MAX];
        (void)snprintf(p, sizeof(p), "%s/%s", dir, knob);
        return write_file_string(p, value);
}

static bool knob_exists(const char *dir, const char *knob)
{
        char p[PATH_MAX];
        (void)snprintf(p, sizeof(p), "%s/%s", dir, knob);
        return access(p, F_OK) == 0;
}

/* v2: controllers must be enabled in every ancestor's subtree_control. Whether dir's
 * cgroup.subtree_control already lists every controller we use: */
static bool v2_controllers_enabled(const char *dir)
{
        char p[PATH_MAX], *save = NULL;
        cleanup_buf struct buf b = BUF_INIT;
        const char *want[] = {"memory", "pids", "cpu"};
        unsigned found = 0;

        (void)snprintf(p, sizeof(p), "%s/cgroup.subtree_control", dir);
        if (read_file_at(AT_FDCWD, p, &b, 4096) < 0 || !b.data)
                return false;
        for (char *t = strtok_r(b.data, " \n", &save); t; t = strtok_r(NULL, " \n", &save))
                for (size_t i = 0; i < ARRAY_SIZE(want); i++)
                        if (streq(t, want[i]))
                                found |= 1u << i;
        return found == (1u << ARRAY_SIZE(want)) - 1;
}

/* Delegates our controllers down to dir's children: one read when they already are (every start
 * but the first), else one write, or one per controller where some is missing. */
static void v2_enable_in(const char *dir)
{
        const char *ctl[] = {"+memory", "+pids", "+cpu"};

        if (v2_controllers_enabled(dir) ||
            write_knob(dir, "cgroup.subtree_control", "+memory +pids +cpu") == 0)
                return;
        for (size_t i = 0; i < ARRAY_SIZE(ctl); i++)
                (void)write_knob(dir, "cgroup.subtree_control", ctl[i]);
}

static void v2_enable_controllers(const char *parent)
{
        char p[PATH_MAX];
        char *slash;

        (void)snprintf(p, sizeof(p), "%s", parent);
        slash = strrchr(p, '/');
        if (slash && slash > p) {
                *slash = '\0';
                v2_enable_in(p);
        }
        v2_enable_in(parent);
}

static int apply_limits(enum cgroup_mode mode, size_t i, const char *dir,
                        const struct cgroup_limits *lim, struct ak_err *err)
{
        char v[64];
        int r;

        if (mode == CGROUP_V2) {
                (void)snprintf(v, sizeof(v), "%llu", (unsigned long long)lim->memory_bytes);
                r = write_knob(dir, "memory.max", lim->memory_bytes ? v : "max");
                if (r < 0)
                        return ak_err_errno(err, r, "set memory.max in '%s'", dir);
                if (knob_exists(dir, "memory.swap.max"))
                        (void)write_knob(dir, "memory.swap.max", "0");
                (void)snprintf(v, sizeof(v), "%llu", (unsigned long long)lim->pids_max);
                r = write_knob(dir, "pids.max", lim->pids_max ? v : "max");
                if (r < 0)
                        return ak_err_errno(err, r, "set pids.max in '%s'", dir);
                if (lim->cpu_millis)
                        (void)snprintf(v, sizeof(v), "%llu 100000",
                                       (unsigned long long)lim->cpu_millis * 100);
                r = write_knob(dir, "cpu.max", lim->cpu_millis ? v : "max 100000");
                if (r < 0)
                        return ak_err_errno(err, r, "set cpu.max in '%s'", dir);
                return 0;
        }
        switch (i) {
        case 0: /* memory */
                (void)snprintf(v, sizeof(v), "%lld",
                               lim->memory_bytes ? (long long)lim->memory_bytes : -1LL);
                /* memsw must stay >= limit: lower memsw after raising, raise it before lowering */
                if (knob_exists(dir, "memory.memsw.limit_in_bytes")) {
                        (void)write_knob(dir, "memory.memsw.limit_in_bytes", "-1");
                        r = write_knob(dir, "memory.limit_in_bytes", v);
                        if (r == 0)
                                (void)write_knob(dir, "memory.memsw.limit_in_bytes", v);
                } else {
                        r = write_knob(dir, "memory.limit_in_bytes", v);
                }
                if (r < 0)
                        return ak_err_errno(err, r, "set memory limit in '%s'", dir);
                return 0;
        case 1: /* pids */
                (void)snprintf(v, sizeof(v), "%llu", (unsigned long long)lim->pids_max);
                r = write_knob(dir, "pids.max", lim->pids_max ? v : "max");
                if (r < 0)
                        return ak_err_errno(err, r, "set pids.max in '%s'", dir);
                return 0;
        case 2: /* cpu */
                (void)write_knob(dir, "cpu.cfs_period_us", "100000");
                (void)snprintf(v, sizeof(v), "%lld",
                               lim->cpu_millis ? (long long)lim->cpu_millis * 100 : -1LL);
                r = write_knob(dir, "cpu.cfs_quota_us", v);
                if (r < 0)
                        return ak_err_errno(err, r, "set cpu quota in '%s'", dir);
                return 0;
        default:
                return 0;
        }
}

int cgroup_set_limits(const struct cgroup_set *cg, const struct cgroup_limits *lim,
                      struct ak_err *err)
{
        for (size_t i = 0; i < cg->n; i++) {
                int r = apply_limits(cg->mode, i, cg->dirs[i], lim, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

int cgroup_create(const char *id, const struct cgroup_limits *lim, struct cgroup_set *ret,
                  struct ak_err *err)
{
        struct cgroup_set cg;
        int r = cgroup_paths(id, &cg);

        if (r < 0)
                return ak_err_errno(err, r, "cgroup path for '%s'", id);
        for (size_t i = 0; i < cg.n; i++) {
                char parent[PATH_MAX];
                (void)hier_parent(cg.mode, i, parent, sizeof(parent));
                if (mkdir(parent, 0755) < 0 && errno != EEXIST) {
                        r = ak_err_errno(err, errno, "create cgroup '%s'", parent);
                        goto fail;
                }
                if (cg.mode == CGROUP_V2)
                        v2_enable_controllers(parent);
                if (mkdir(cg.dirs[i], 0755) < 0 && errno != EEXIST) {
                        r = ak_err_errno(err, errno, "create cgroup '%s'", cg.dirs[i]);
                        goto fail;
                }
                r = apply_limits(cg.mode, i, cg.dirs[i], lim, err);
                if (r < 0)
                        goto fail;
        }
        *ret = cg;
        return 0;
fail:
        (void)cgroup_destroy(&cg, NULL);
        return r;
}

void cgroup_procs_files(const struct cgroup_set *cg, char procs[][CGROUP_PATH_MAX],
                        const char **ret, size_t max)
{
        size_t k = 0;
        for (size_t i = 0; i < cg->n && k + 1 < max; i++) {
                (void)snprintf(procs[k], CGROUP_PATH_MAX, "%s/cgroup.procs", cg->dirs[i]);
                ret[k] = procs[k];
                k++;
        }
        ret[k] = NULL;
}

/* The directory of our own cgroup in the hierarchy that mode joins first (v2: the unified one;
 * v1: pids), when /proc/self/cgroup names a plain path there that lists us. */
static int own_cgroup(enum cgroup_mode mode, char *out, size_t len)
{
        cleanup_buf struct buf b = BUF_INIT;
        char pid[16], *save = NULL;
        const char *want = mode == CGROUP_V2 ? "0::" : NULL, *path = NULL;
        bool listed = false;

        if (read_file_at(AT_FDCWD, "/proc/self/cgroup", &b, 1u << 16) < 0 || !b.data)
                return -ENOENT;
        for (char *t = strtok_r(b.data, "\n", &save); t && !path; t = strtok_r(NULL, "\n", &save)) {
                char *ctl = strchr(t, ':'), *p = ctl ? strchr(ctl + 1, ':') : NULL;
                if (!p)
                        continue;
                if (want ? strncmp(t, want, strlen(want)) == 0
                         : (size_t)(p - ctl - 1) == strlen("pids") && !strncmp(ctl + 1, "pids", 4))
                        path = p + 1;
        }
        if (!path || !plain_path(path))
                return -ENOENT;
        if ((size_t)snprintf(out, len, "%s%s%s", CGROUP_ROOT, mode == CGROUP_V2 ? "" : "/pids",
                             streq(path, "/") ? "" : path) >= len)
                return -ENAMETOOLONG;
        /* a cgroup namespace would make it another cgroup of the same path: check it has us */
        buf_reset(&b);
        {
                char procs[PATH_MAX];
                (void)snprintf(procs, sizeof(procs), "%s/cgroup.procs", out);
                if (read_file_at(AT_FDCWD, procs, &b, 1u << 22) < 0 || !b.data)
                        return -ENOENT;
        }
        (void)snprintf(pid, sizeof(pid), "%d", (int)getpid());
        save = NULL;
        for (char *t = strtok_r(b.data, "\n", &save); t && !listed; t = strtok_r(NULL, "\n", &save))
                listed = streq(t, pid);
        return listed ? 0 : -ENOENT;
}

static void *warm_main(void *arg)
{
        enum cgroup_mode mode = (enum cgroup_mode)(intptr_t)arg;
        char dir[PATH_MAX], pid[16];

        if (own_cgroup(mode, dir, sizeof(dir)) == 0) {
                (void)snprintf(pid, sizeof(pid), "%d", (int)getpid());
                (void)write_knob(dir, "cgroup.procs", pid);
        }
        return NULL;
}

void cgroup_warm_start(enum cgroup_mode mode, struct cgroup_warm *w)
{
        sigset_t all, saved;

        w->started = false;
        if (mode == CGROUP_NONE)
                return;
        /* no signal of ours is handled on its stack */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        w->started = pthread_create(&w->thread, NULL, warm_main, (void *)(intptr_t)mode) == 0;
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
}

void cgroup_warm_finish(struct cgroup_warm *w)
{
        if (w->started)
                (void)pthread_join(w->thread, NULL);
        w->started = false;
}

bool cgroup_joins_favored(void)
{
        cleanup_buf struct buf b = BUF_INIT;
        char *save = NULL;

        if (read_file_at(AT_FDCWD, "/proc/mounts", &b, 1u << 22) < 0 || !b.data)
                return false;
        for (char *t = strtok_r(b.data, "\n", &save); t; t = strtok_r(NULL, "\n", &save)) {
                /* device mountpoint type options ... */
                char *f[4] = {0}, *fs = NULL;
                size_t n = 0;
                for (char *w = strtok_r(t, " ", &fs); w && n < 4; w = strtok_r(NULL, " ", &fs))
                        f[n++] = w;
                if (n == 4 && (streq(f[2], "cgroup2") || streq(f[2], "cgroup")))
                        for (char *o = f[3], *e; o; o = e ? e + 1 : NULL) {
                                e = strchr(o, ',');
                                if (e)
                                        *e = '\0';
                                if (streq(o, "favordynmods"))
                                        return true;
                        }
        }
        return false;
}

int cgroup_favor_options(const char *opts, char *out, size_t len)
{
        /* cgroup2's own superblock options (Documentation/admin-guide/cgroup-v2.rst); per-mount
         * flags (ro, nosuid, relatime...) are not data and are kept by the remount's flags */
        static const char *const keep[] = {"nsdelegate", "memory_localevents",
                                           "memory_recursiveprot", "memory_hugetlb_accounting",
                                           "pids_localevents"};
        char buf[512];
        size_t used = 0;
        char *save = NULL;

        if (strlen(opts) >= sizeof(buf))
                return -ENAMETOOLONG;
        memcpy(buf, opts, strlen(opts) + 1);
        out[0] = '\0';
        for (char *o = strtok_r(buf, ",", &save); o; o = strtok_r(NULL, ",", &save))
                for (size_t i = 0; i < ARRAY_SIZE(keep); i++)
                        if (streq(o, keep[i])) {
                                int n = snprintf(out + used, len - used, "%s,", o);
                                if (n < 0 || (size_t)n >= len - used)
                                        return -ENAMETOOLONG;
                                used += (size_t)n;
                        }
        if (snprintf(out + used, len - used, "favordynmods") >= (int)(len - used))
                return -ENAMETOOLONG;
        return 0;
}

/* The options field of /proc/mounts for the cgroup2 mount at path, into out. */
static int cgroup2_mount_options(const char *path, char *out, size_t len)
{
        cleanup_buf struct buf b = BUF_INIT;
        char *save = NULL;

        if (read_file_at(AT_FDCWD, "/proc/mounts", &b, 1u << 22) < 0 || !b.data)
                return -EIO;
        for (char *t = strtok_r(b.data, "\n", &save); t; t = strtok_r(NULL, "\n", &save)) {
                char *f[4] = {0}, *fs = NULL;
                size_t n = 0;
                for (char *w = strtok_r(t, " ", &fs); w && n < 4; w = strtok_r(NULL, " ", &fs))
                        f[n++] = w;
                if (n == 4 && streq(f[2], "cgroup2") && streq(f[1], path)) {
                        if (strlen(f[3]) >= len)
                                return -ENAMETOOLONG;
                        memcpy(out, f[3], strlen(f[3]) + 1);
                        return 0;
                }
        }
        return -ENOENT;
}

int cgroup_favor_joins(struct ak_err *err)
{
        const char *path = access(CGROUP_ROOT "/unified/cgroup.procs", F_OK) == 0 ? CGROUP_ROOT
                               "/unified"
                                                                                  : CGROUP_ROOT;
        static const struct {
                unsigned long st, ms;
        } flags[] = {{ST_RDONLY, MS_RDONLY},    {ST_NOSUID, MS_NOSUID},
                     {ST_NODEV, MS_NODEV},      {ST_NOEXEC, MS_NOEXEC},
                     {ST_NOATIME, MS_NOATIME},  {ST_NODIRATIME, MS_NODIRATIME},
                     {ST_RELATIME, MS_RELATIME}};
        char opts[512], data[512];
        unsigned long ms = MS_REMOUNT;
        struct statvfs sv;
        int r;

        r = cgroup2_mount_options(path, opts, sizeof(opts));
        if (r < 0)
                return ak_err_errno(err, -r, "no cgroup2 hierarchy at %s", path);
        r = cgroup_favor_options(opts, data, sizeof(data));
        if (r < 0)
                return ak_err_errno(err, -r, "the options of %s", path);
        if (statvfs(path, &sv) < 0)
                return ak_err_errno(err, errno, "%s", path);
        for (size_t i = 0; i < ARRAY_SIZE(flags); i++)
                if (sv.f_flag & flags[i].st)
                        ms |= flags[i].ms;
        if (mount(NULL, path, NULL, ms, data) < 0)
                return ak_err_errno(err, errno, "remount %s with %s", path, data);
        if (cgroup2_mount_options(path, opts, sizeof(opts)) < 0 || !strstr(opts, "favordynmods"))
                return ak_err_set(err, EIO, "%s was remounted but does not say favordynmods", path);
        return 0;
}

#define KILL_BATCH 256 /* pidfds held at once; destroy calls again until the cgroup is empty */

/* Up to max pids listed in dir/cgroup.procs, sorted. */
static size_t list_procs(const char *dir, pid_t *out, size_t max)
{
        char p[PATH_MAX], *save = NULL;
        cleanup_buf struct buf b = BUF_INIT;
        size_t n = 0;

        (void)snprintf(p, sizeof(p), "%s/cgroup.procs", dir);
        if (read_file_at(AT_FDCWD, p, &b, 1u << 20) < 0 || !b.data)
                return 0;
        for (char *t = strtok_r(b.data, "\n", &save); t && n < max;
             t = strtok_r(NULL, "\n", &save)) {
                uint32_t pid;
                if (safe_atou32(t, &pid) == 0 && pid > 1 && pid <= INT32_MAX)
                        out[n++] = (pid_t)pid;
        }
        return n;
}

static bool listed(const pid_t *v, size_t n, pid_t pid)
{
        for (size_t i = 0; i < n; i++)
                if (v[i] == pid)
                        return true;
        return false;
}

/* Sends SIGKILL to the processes listed in dir/cgroup.procs, never to a pid that was recycled
 * meanwhile: each pid is pinned with a pidfd, and signalled through it only if the list read
 * after the pinning still has it (the process the pidfd holds is then the one in this cgroup,
 * or one that died: a pidfd never reaches a pid's next owner). Returns how many were listed. */
static int kill_listed(const char *dir)
{
        pid_t before[KILL_BATCH], after[KILL_BATCH];
        int fds[KILL_BATCH];
        bool no_pidfd = false;
        size_t n = list_procs(dir, before, KILL_BATCH), m;

        for (size_t i = 0; i < n; i++) {
                fds[i] = (int)syscall(SYS_pidfd_open, before[i], 0);
                no_pidfd |= fds[i] < 0 && errno == ENOSYS;
        }
        m = list_procs(dir, after, KILL_BATCH);
        for (size_t i = 0; i < n; i++) {
                /* not listed again: gone (or recycled) meanwhile */
                if (fds[i] >= 0 && listed(after, m, before[i]))
                        (void)syscall(SYS_pidfd_send_signal, fds[i], SIGKILL, NULL, 0);
                else if (fds[i] < 0 && no_pidfd && listed(after, m, before[i]))
                        (void)kill(before[i], SIGKILL); /* kernels before 5.3: as before */
                if (fds[i] >= 0)
                        close(fds[i]);
        }
        return (int)n;
}

bool cgroup_populated(const struct cgroup_set *cg)
{
        for (size_t i = 0; i < cg->n; i++) {
                char p[PATH_MAX];
                cleanup_buf struct buf b = BUF_INIT;
                (void)snprintf(p, sizeof(p), "%s/cgroup.procs", cg->dirs[i]);
                if (read_file_at(AT_FDCWD, p, &b, 1u << 20) == 0 && b.len > 0)
                        return true;
        }
        return false;
}

/* ---- the freezer (pause / resume) ---- */

#define FREEZE_TIMEOUT_MS 5000
#define FREEZE_RETRY_MS 20    /* v1: FROZEN written again while the cgroup is still FREEZING */
#define FREEZE_MOVE_PASSES 64 /* v1: rounds of moving the sandbox's processes in */
#define FREEZE_PROCS_MAX 8192 /* v1: processes of one sandbox moved (above any profile's pids) */
#define V1_FREEZER CGROUP_ROOT "/freezer/" CGROUP_PARENT

/* v1: the sandbox's cgroup in the freezer hierarchy, <freezer>/agentkernel/<id>, where id is the
 * last component of its (confined) memory cgroup. Made only by a pause: the sandbox's start does
 * not use that hierarchy. */
static int v1_freezer_dir(const struct cgroup_set *cg, char *out, size_t len)
{
        const char *id = cg->n ? strrchr(cg->dirs[0], '/') : NULL;

        if (cg->mode != CGROUP_V1 || !id || !valid_id(id + 1))
                return -EINVAL;
        return snprintf(out, len, V1_FREEZER "/%s", id + 1) < (int)len ? 0 : -ENAMETOOLONG;
}

static bool knob_is(const char *dir, const char *knob, const char *want)
{
        char p[PATH_MAX];
        cleanup_buf struct buf b = BUF_INIT;

        const char *rest;
        int at;

        (void)snprintf(p, sizeof(p), "%s/%s", dir, knob);
        at = dir_cache_at(p, 2, &rest); /* list: a kept fd of the hierarchy's parent */
        if (read_file_at(at, rest, &b, 4096) < 0 || !b.data)
                return false;
        return strstr(b.data, want) != NULL;
}

/* v1: moves every process of the memory cgroup into the freezer cgroup fz (which freezes them,
 * fz being FROZEN already), round after round, until none is left outside: a process forked
 * by one not yet moved is caught by the next round. */
static int v1_move_in(const struct cgroup_set *cg, const char *fz)
{
        cleanup_free pid_t *in_mem = calloc(FREEZE_PROCS_MAX, sizeof(pid_t));
        cleanup_free pid_t *in_fz = calloc(FREEZE_PROCS_MAX, sizeof(pid_t));
        char procs[PATH_MAX];

        if (!in_mem || !in_fz)
                return -ENOMEM;
        (void)snprintf(procs, sizeof(procs), "%s/cgroup.procs", fz);
        for (int pass = 0; pass < FREEZE_MOVE_PASSES; pass++) {
                size_t n = list_procs(cg->dirs[0], in_mem, FREEZE_PROCS_MAX);
                size_t m = list_procs(fz, in_fz, FREEZE_PROCS_MAX);
                bool all = true;
                for (size_t i = 0; i < n; i++) {
                        char v[16];
                        if (listed(in_fz, m, in_mem[i]))
                                continue;
                        all = false;
                        (void)snprintf(v, sizeof(v), "%d", (int)in_mem[i]);
                        (void)write_file_string(procs, v); /* gone meanwhile: fine */
                }
                if (all && n < FREEZE_PROCS_MAX)
                        return 0;
        }
        return -EAGAIN;
}

static int wait_knob(const char *dir, const char *knob, const char *want)
{
        int64_t until = now_monotonic_ns() + FREEZE_TIMEOUT_MS * NSEC_PER_MSEC;

        while (!knob_is(dir, knob, want)) {
                if (now_monotonic_ns() >= until)
                        return -ETIMEDOUT;
                usleep(1000);
        }
        return 0;
}

/* v1: waits for fz to say FROZEN, asking again every FREEZE_RETRY_MS. The v1 freezer freezes
 * each task once (when asked, or when the task joins); a task that went to sleep in the kernel
 * after that, where sleepers count as frozen only once told (a shell's parent waiting in vfork
 * for its frozen child: D in kernel_clone), keeps the cgroup FREEZING for good. Writing FROZEN
 * again tells every task once more. */
static int v1_wait_frozen(const char *fz)
{
        int64_t until = now_monotonic_ns() + FREEZE_TIMEOUT_MS * NSEC_PER_MSEC;
        int64_t again = now_monotonic_ns() + FREEZE_RETRY_MS * NSEC_PER_MSEC;

        while (!knob_is(fz, "freezer.state", "FROZEN")) {
                int64_t now = now_monotonic_ns();
                if (now >= until)
                        return -ETIMEDOUT;
                if (now >= again) {
                        (void)write_knob(fz, "freezer.state", "FROZEN");
                        again = now + FREEZE_RETRY_MS * NSEC_PER_MSEC;
                }
                usleep(1000);
        }
        return 0;
}

int cgroup_freeze(const struct cgroup_set *cg, bool freeze, struct ak_err *err)
{
        char fz[PATH_MAX];
        int r;

        if (cg->mode == CGROUP_V2 && cg->n == 1) {
                if (!knob_exists(cg->dirs[0], "cgroup.freeze"))
                        return ak_err_set(err, ENOTSUP,
                                          "this kernel's cgroup v2 has no freezer (cgroup.freeze, "
                                          "Linux 5.2)");
                r = write_knob(cg->dirs[0], "cgroup.freeze", freeze ? "1" : "0");
                if (r < 0)
                        return ak_err_errno(err, r, "write '%s/cgroup.freeze'", cg->dirs[0]);
                r = wait_knob(cg->dirs[0], "cgroup.events", freeze ? "frozen 1" : "frozen 0");
                if (r < 0 && freeze)
                        (void)write_knob(cg->dirs[0], "cgroup.freeze", "0");
                return r < 0 ? ak_err_errno(err, r, "the sandbox's processes did not %s",
                                            freeze ? "stop" : "go on")
                             : 0;
        }
        if (cg->mode != CGROUP_V1 || v1_freezer_dir(cg, fz, sizeof(fz)) < 0)
                return ak_err_set(err, ENOTSUP, "the sandbox has no cgroups to freeze");
        if (!freeze) {
                if (access(fz, F_OK) < 0)
                        return 0; /* never paused */
                r = write_knob(fz, "freezer.state", "THAWED");
                if (r < 0)
                        return ak_err_errno(err, r, "write '%s/freezer.state'", fz);
                r = wait_knob(fz, "freezer.state", "THAWED");
                return r < 0 ? ak_err_errno(err, r, "the sandbox's processes did not go on") : 0;
        }
        if (access(CGROUP_ROOT "/freezer/cgroup.procs", F_OK) < 0)
                return ak_err_set(err, ENOTSUP, "the cgroup v1 freezer is not mounted at '%s'",
                                  CGROUP_ROOT "/freezer");
        if ((mkdir(V1_FREEZER, 0755) < 0 && errno != EEXIST) ||
            (mkdir(fz, 0755) < 0 && errno != EEXIST))
                return ak_err_errno(err, errno, "create cgroup '%s'", fz);
        r = write_knob(fz, "freezer.state", "FROZEN");
        if (r < 0)
                return ak_err_errno(err, r, "write '%s/freezer.state'", fz);
        r = v1_move_in(cg, fz);
        if (r >= 0)
                r = v1_wait_frozen(fz);
        if (r < 0) {
                (void)write_knob(fz, "freezer.state", "THAWED");
                return ak_err_errno(err, r, "the sandbox's processes did not stop");
        }
        return 0;
}

bool cgroup_frozen(const struct cgroup_set *cg)
{
        char fz[PATH_MAX];

        if (cg->mode == CGROUP_V2 && cg->n == 1)
                return knob_is(cg->dirs[0], "cgroup.freeze", "1");
        if (cg->mode == CGROUP_V1 && v1_freezer_dir(cg, fz, sizeof(fz)) == 0) {
                const char *rest;
                int at = dir_cache_at(fz, 1, &rest);
                return faccessat(at, rest, F_OK, 0) == 0 && !knob_is(fz, "freezer.state", "THAWED");
        }
        return false;
}

int cgroup_destroy(const struct cgroup_set *cg, struct ak_err *err)
{
        int64_t until = now_monotonic_ns() + DESTROY_TIMEOUT_MS * NSEC_PER_MSEC;
        int ret = 0;

        for (size_t i = 0; i < cg->n; i++) {
                const char *dir = cg->dirs[i];
                bool killed = false;
                /* Usually the sandbox is gone already (its init was reaped): one rmdir. */
                for (;;) {
                        int e;
                        if (rmdir(dir) == 0 || errno == ENOENT)
                                break;
                        e = errno;
                        if (e != EBUSY || now_monotonic_ns() >= until) {
                                ret = ak_err_errno(err, e, "remove cgroup '%s'", dir);
                                break;
                        }
                        /* a paused sandbox's processes die only once thawed (v1) */
                        if (!killed)
                                (void)cgroup_freeze(cg, false, NULL);
                        if (!killed && cg->mode == CGROUP_V2 && knob_exists(dir, "cgroup.kill"))
                                (void)write_knob(dir, "cgroup.kill", "1");
                        killed = true;
                        (void)kill_listed(dir);
                        usleep(1000);
                }
        }
        if (cg->mode == CGROUP_V1) {
                /* the freezer cgroup a pause made: empty once the others are */
                char fz[PATH_MAX];
                if (v1_freezer_dir(cg, fz, sizeof(fz)) == 0 && rmdir(fz) < 0 && errno != ENOENT &&
                    ret == 0)
                        ret = ak_err_errno(err, errno, "remove cgroup '%s'", fz);
        }
        return ret;
}

static uint64_t read_u64_knob(const char *dir, const char *knob, const char *key)
{
        char p[PATH_MAX];
        cleanup_buf struct buf b = BUF_INIT;
        uint64_t v = 0;

        (void)snprintf(p, sizeof(p), "%s/%s", dir, knob);
        if (read_file_at(AT_FDCWD, p, &b, 1u << 16) < 0 || !b.data)
                return 0;
        if (key) {
                char *at = strstr(b.data, key);
                if (!at)
                        return 0;
                at += strlen(key);
                while (*at == ' ')
                        at++;
                return strtoull(at, NULL, 10);
        }
        b.data[strcspn(b.data, "\n")] = '\0';
        (void)safe_atou64(b.data, &v);
        return v;
}

int cgroup_stats(const struct cgroup_set *cg, struct cgroup_stats *ret)
{
        memset(ret, 0, sizeof(*ret));
        if (cg->mode == CGROUP_V2) {
                ret->memory_bytes = read_u64_knob(cg->dirs[0], "memory.current", NULL);
                ret->pids = read_u64_knob(cg->dirs[0], "pids.current", NULL);
                ret->cpu_usec = read_u64_knob(cg->dirs[0], "cpu.stat", "usage_usec");
        } else if (cg->mode == CGROUP_V1) {
                ret->memory_bytes = read_u64_knob(cg->dirs[0], "memory.usage_in_bytes", NULL);
                ret->pids = read_u64_knob(cg->dirs[1], "pids.current", NULL);
                ret->cpu_usec = read_u64_knob(cg->dirs[2], "cpuacct.usage", NULL) / 1000;
        }
        return 0;
}
