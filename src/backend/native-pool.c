// SPDX-License-Identifier: Apache-2.0
/*
 * The native backend's warm pool (run --fast): sandboxes started ahead for one configuration,
 * each handed to one run and then destroyed.
 *
 * <ephemeral dir>/np-<12 digits of the key's hash>/ is one configuration's pool. Its `key` file
 * holds the whole key: a text of everything that shapes a sandbox (the caller's uid and gid, the
 * image and the identity of the host's /etc, the agent binary's identity, the profile with its
 * seccomp filter, capabilities and limits, vCPUs, memory, disk, the network mode, the hidden
 * directories, the home bind and the environment). Each entry <tail>/ (the last 12 digits of the
 * sandbox's uuid) is a sandbox started like a kept one (runtime.json, agent.sock), with its own
 * copy of the key, a lock file and the socket of its keeper: a detached process made with it
 * that holds its init's pidfd (keeper_main). A run takes an entry only when both keys are byte for
 * byte its own, every file read back is a private one (ours, not writable by others, no link),
 * the entry's lock is free and its keeper answers; it connects to the keeper, moves the entry out
 * of the pool (renamed to <ephemeral dir>/npc-<tail>), and checks that its runtime.json names a
 * live init that is that sandbox's (native_pooled_init: start time, boot, cgroup, uuid) with a
 * pidfd held. Anything else is never claimed: an entry whose keeper died is destroyed, a foreign
 * or altered one left alone (`pool clear` has the keepers end what is ours).
 *
 * When the run's connection to the keeper ends (the run finished, or died at any point after it
 * connected), the keeper kills the init (the run has done so already when it finished), removes
 * the cgroups and the directory, then tops the pool up (NATIVE_POOL_TARGET per configuration,
 * NATIVE_POOL_MAX in all, the least recently refilled pool evicted at the bound) unless `pool
 * clear` removed the pool meanwhile. An idle entry's keeper also ends it when the entry's lock or
 * socket is deleted (the data directory removed). The run forks nothing. A run and keeper both
 * killed leave an npc- directory with a free lock, which the sweep of the next run (or gc, doctor)
 * destroys. A refill makes an entry under a hidden name with its uuid in .<tail>.id first; a refill
 * killed meanwhile leaves those, which the next refill destroys.
 *
 * Proxy mode is not pooled: its capture listeners are made in the sandbox's namespace at spawn and
 * registered with the run's own policy (the docker pool makes them at the claim, a fork and
 * a round trip to the proxy that cost more than the whole claim does here).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sha2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/client.h"
#include "backend/native.h"
#include "backend/proc-util.h"
#include "core/paths.h"
#include "core/private-dir.h"
#include "runtime/seccomp.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/macro.h"
#include "shared/random-util.h"
#include "shared/time-util.h"

#define NATIVE_POOL_TARGET 2 /* idle sandboxes kept per configuration */
#define NATIVE_POOL_MAX 8    /* idle sandboxes, all configurations together */
#define POOL_PREFIX "np-"
#define CLAIMED_PREFIX "npc-"
#define POOL_NAME_DIGITS 12
#define TAIL_LEN 12 /* an entry's name: the random end of its uuid (v7) */
#define KEY_FILE "key"
#define LOCK_FILE "lock"
#define REFILL_LOCK ".refill.lock"
#define KEEPER_SOCKET "keeper.sock"
#define CLEAR_BYTE 'x' /* sent to a keeper: end the sandbox, do not refill */
#define CLEAR_WAIT_MS 10000
#define KEY_MAX (64u << 10) /* a longer configuration (a huge environment) is not pooled */
#define KILL_WAIT_MS 5000

bool native_pool_usable(const struct backend_config *cfg)
{
        return cfg->ephemeral && cfg->pooled && streq(cfg->image, "host") && !cfg->workspace &&
               !cfg->scratch_workspace && !cfg->n_binds && !cfg->n_ports &&
               (cfg->network == NET_MODE_NONE || cfg->network == NET_MODE_FULL);
}

/* One field of the key: its name, its length, its bytes (no value can end another). */
static void key_str(struct buf *b, const char *name, const char *v)
{
        v = v ? v : "";
        (void)buf_printf(b, "%s %zu:%s\n", name, strlen(v), v);
}

static void key_stat(struct buf *b, const char *name, const struct stat *st)
{
        (void)buf_printf(b, "%s %llu:%llu:%lld:%lld.%09ld:%lld.%09ld\n", name,
                         (unsigned long long)st->st_dev, (unsigned long long)st->st_ino,
                         (long long)st->st_size, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
                         (long long)st->st_ctim.tv_sec, st->st_ctim.tv_nsec);
}

/* The whole key of cfg's configuration. The host's /etc is named by its directory's identity:
 * a file added, removed or replaced (package managers and editors rename into place) changes it,
 * and with it the key. */
static int pool_key(const struct backend_config *cfg, struct buf *b)
{
        const struct profile *p = cfg->profile;
        const char *snap = getenv("AGENTKERNEL_ETC_SNAPSHOTS");
        char agent[PATH_MAX];
        struct stat ast, est;

        if (paths_agent_binary(agent, sizeof(agent), NULL) < 0 || stat(agent, &ast) < 0 ||
            stat("/etc", &est) < 0)
                return -ENOENT;
        (void)buf_printf(b, "agentkernel native pool 1\nids %u:%u\n", (unsigned)geteuid(),
                         (unsigned)getegid());
        key_str(b, "image", cfg->image);
        key_stat(b, "etc", &est);
        key_str(b, "etc-snapshots", snap);
        key_str(b, "agent", agent);
        key_stat(b, "agent-file", &ast);
        key_str(b, "profile", p->name);
        (void)buf_printf(b, "limits %s:%llx:%llu:%u:%d:%u:%llu:%llu\n",
                         seccomp_profile_name(p->seccomp), (unsigned long long)p->caps,
                         (unsigned long long)p->pids_max, p->cpu_percent, p->read_only_root,
                         cfg->vcpus, (unsigned long long)cfg->memory_mb,
                         (unsigned long long)cfg->disk_mb);
        (void)buf_printf(b, "network %d\n", (int)cfg->network);
        key_str(b, "home", cfg->home);
        for (size_t i = 0; i < cfg->n_own_dirs; i++)
                key_str(b, "hide", cfg->own_dirs[i]);
        for (char *const *e = cfg->env; e && *e; e++)
                key_str(b, "env", *e);
        if (!b->data || b->len > KEY_MAX)
                return -E2BIG;
        return 0;
}

static void pool_name(const struct buf *key, char out[sizeof(POOL_PREFIX) + POOL_NAME_DIGITS])
{
        char hex[SHA256_DIGEST_STRING_LENGTH];

        (void)SHA256Data((const uint8_t *)key->data, key->len, hex);
        (void)snprintf(out, sizeof(POOL_PREFIX) + POOL_NAME_DIGITS, POOL_PREFIX "%.*s",
                       POOL_NAME_DIGITS, hex);
}

/* Whether dfd's key file is, byte for byte, key (a private file: ours, no link). */
static bool key_matches(int dfd, const struct buf *key)
{
        cleanup_buf struct buf b = BUF_INIT;

        return private_file_read_at(dfd, KEY_FILE, &b, KEY_MAX, NULL) >= 0 && b.len == key->len &&
               b.data && memcmp(b.data, key->data, key->len) == 0;
}

static bool is_tail(const char *s)
{
        return is_lower_hex(s, TAIL_LEN);
}

/* ".<tail>.id": the uuid file of an entry a refill is making. */
static bool is_id_file(const char *s, char tail[TAIL_LEN + 1])
{
        if (s[0] != '.' || strlen(s) != 1 + TAIL_LEN + 3 || !streq(s + 1 + TAIL_LEN, ".id"))
                return false;
        memcpy(tail, s + 1, TAIL_LEN);
        tail[TAIL_LEN] = '\0';
        return is_tail(tail);
}

static bool pidfd_wait(int pidfd, int timeout_ms)
{
        struct pollfd p = {pidfd, POLLIN, 0};
        int r;

        while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
                ;
        return r > 0;
}

/* Ends the sandbox whose directory is run_dir (tail: its entry's name): its init when the record
 * names a live one of this sandbox's (or pidfd, already pinned), its cgroups, its directory. */
static void destroy(const char *run_dir, const char *tail, int pidfd)
{
        char uuid[37] = "";
        cleanup_close int own = -1;
        pid_t pid;

        if (pidfd < 0 && native_pooled_init(run_dir, tail, uuid, &pid, &own) == 0)
                pidfd = own;
        else if (pidfd >= 0)
                (void)native_pooled_init(run_dir, tail, uuid, &pid, &own); /* for its uuid */
        if (pidfd >= 0) {
                (void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
                (void)pidfd_wait(pidfd, KILL_WAIT_MS);
        }
        (void)native_cleanup(&(struct sandbox_ref){"pool", uuid[0] ? uuid : NULL, run_dir}, NULL);
}

/* An entry a refill was making when it died: its uuid from .<tail>.id, its cgroups, its
 * directory (.<tail>). */
static void destroy_unfinished(int pfd, const char *pool, const char *id_name, const char *tail)
{
        cleanup_buf struct buf b = BUF_INIT;
        char run_dir[PATH_MAX], uuid[37];

        (void)snprintf(run_dir, sizeof(run_dir), "%s/.%s", pool, tail);
        if (private_file_read_at(pfd, id_name, &b, 64, NULL) >= 0 && b.len == 36 && b.data) {
                memcpy(uuid, b.data, 36);
                uuid[36] = '\0';
                if (uuid_is_valid(uuid) && streq(uuid + 36 - TAIL_LEN, tail)) {
                        destroy(run_dir, tail, -1);
                        /* its cgroups, made before its record */
                        (void)native_cleanup(&(struct sandbox_ref){"pool", uuid, run_dir}, NULL);
                }
        }
        (void)unlinkat(pfd, id_name, 0);
}

/* ---- refill ---- */

/* Entries in one pool (ready and being made) into *all; ready ones into *ready. */
static void pool_count(int pfd, unsigned *ready, unsigned *all)
{
        DIR *d = opendir_at(pfd);
        struct dirent *de;
        char tail[TAIL_LEN + 1];

        *ready = *all = 0;
        if (!d)
                return;
        while ((de = readdir(d))) {
                bool r = is_tail(de->d_name);
                if (r || is_id_file(de->d_name, tail))
                        (*all)++;
                *ready += r;
        }
        closedir(d);
}

static unsigned pools_total(int efd)
{
        DIR *d = opendir_at(efd);
        struct dirent *de;
        unsigned n = 0;

        if (!d)
                return NATIVE_POOL_MAX; /* unknown: add nothing */
        while ((de = readdir(d))) {
                cleanup_close int pfd = -1;
                unsigned ready, all;
                if (strncmp(de->d_name, POOL_PREFIX, strlen(POOL_PREFIX)) != 0)
                        continue;
                pfd = openat(efd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (pfd < 0)
                        continue;
                pool_count(pfd, &ready, &all);
                n += all;
        }
        closedir(d);
        return n;
}

/* What a refill finds at its start: entries a dead refill left unfinished, and ready ones
 * whose sandbox died (a reboot, a kill). */
static void drop_stale(int pfd, const char *pool)
{
        DIR *d = opendir_at(pfd);
        struct dirent *de;
        char tail[TAIL_LEN + 1];

        if (!d)
                return;
        while ((de = readdir(d))) {
                char run_dir[PATH_MAX], uuid[37];
                cleanup_close int ed = -1, lk = -1, pidfd = -1;
                pid_t pid;
                if (is_id_file(de->d_name, tail)) {
                        destroy_unfinished(pfd, pool, de->d_name, tail);
                        continue;
                }
                if (!is_tail(de->d_name))
                        continue;
                ed = private_dir_open_at(pfd, pool, de->d_name, 0, NULL);
                lk = ed < 0 ? -1 : private_file_open_at(ed, LOCK_FILE, O_RDWR, NULL);
                if (lk < 0 || flock(lk, LOCK_EX | LOCK_NB) < 0)
                        continue;
                (void)snprintf(run_dir, sizeof(run_dir), "%s/%s", pool, de->d_name);
                if (native_pooled_init(run_dir, de->d_name, uuid, &pid, &pidfd) < 0 && uuid[0])
                        destroy(run_dir, de->d_name, -1);
        }
        closedir(d);
}

/* A connection to the socket name in the entry directory ed: a socket of ours (the directory
 * is a private one), reached through ed (short, and the very directory that was checked). */
static int entry_connect(int ed, const char *name)
{
        char path[64];
        struct stat st;

        if (fstatat(ed, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISSOCK(st.st_mode) ||
            st.st_uid != geteuid())
                return -EINVAL;
        (void)snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", ed, name);
        return unix_connect(path, NULL);
}

static void refill(const struct backend_config *cfg, const struct buf *key, int efd, int pfd,
                   const char *pool, int ready_fd);
static bool evict_stalest(int efd, const char *ephemeral_dir, int pfd);

/* The entry's directory where it is now (ed's inode): claimed, in the pool, or still hidden. */
static bool entry_path(int efd, int pfd, int ed, const char *pool, const char *eph,
                       const char *tail, char *out, size_t len)
{
        struct stat me, st;
        char name[sizeof(CLAIMED_PREFIX) + TAIL_LEN + 1];

        if (fstat(ed, &me) < 0)
                return false;
        (void)snprintf(name, sizeof(name), CLAIMED_PREFIX "%s", tail);
        if (fstatat(efd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_ino == me.st_ino &&
            st.st_dev == me.st_dev)
                return (size_t)snprintf(out, len, "%s/%s", eph, name) < len;
        for (int hidden = 0; hidden < 2; hidden++) {
                (void)snprintf(name, sizeof(name), "%s%s", hidden ? "." : "", tail);
                if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_ino == me.st_ino &&
                    st.st_dev == me.st_dev)
                        return (size_t)snprintf(out, len, "%s/%s", pool, name) < len;
        }
        return false;
}

/*
 * A watch (inotify, or -1) that reports the removal of the unclaimed entry ed's lock or keeper
 * socket. Nothing removes either while its keeper lives but someone deleting the entry: the data
 * directory removed with `rm -rf`, say. A keeper holding the directory open would not otherwise
 * notice (a directory still open is never reported deleted), and would keep the sandbox forever.
 */
static int watch_entry(int ed)
{
        char path[64];
        int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);

        (void)snprintf(path, sizeof(path), "/proc/self/fd/%d", ed);
        if (fd >= 0 && inotify_add_watch(fd, path, IN_DELETE | IN_MOVED_FROM | IN_ONLYDIR) < 0) {
                close(fd);
                fd = -1;
        }
        return fd;
}

/* Whether the events waiting on the watch fd name the entry's lock or keeper socket. */
static bool entry_removed(int fd)
{
        union {
                struct inotify_event e;
                char b[4096];
        } ev;
        ssize_t n;

        while ((n = read(fd, ev.b, sizeof(ev.b))) > 0)
                for (size_t at = 0; at + sizeof(struct inotify_event) <= (size_t)n;) {
                        const struct inotify_event *e = (const void *)(ev.b + at);
                        if (e->len && (streq(e->name, LOCK_FILE) || streq(e->name, KEEPER_SOCKET)))
                                return true;
                        at += sizeof(*e) + e->len;
                }
        return false;
}

/* Whether a connection waits on the listening socket fd (a claim made just now). */
static bool connection_waiting(int fd)
{
        struct pollfd p = {fd, POLLIN, 0};

        return poll(&p, 1, 0) > 0;
}

/*
 * An entry's keeper: a detached process per pooled sandbox that ends it. It waits for a run to
 * connect (the claim) and for that connection to end (the run finished, or died at any point),
 * or for the sandbox's init to die, or for the unclaimed entry's files to be deleted; then kills
 * the init, takes the entry's lock (the run lets go of it last), removes the cgroups and the
 * directory, and, after a run, refills the pool. So the run itself forks nothing and waits for no
 * teardown.
 */
static _noreturn_ void keeper_main(const struct backend_config *cfg, const struct buf *key, int efd,
                                   int pfd, const char *pool, const char *tail, const char *uuid,
                                   int ed, int listen_fd, int pidfd)
{
        struct pollfd w[3] = {{listen_fd, POLLIN, 0}, {pidfd, POLLIN, 0}, {-1, POLLIN, 0}};
        char run_dir[PATH_MAX], buf[64];
        bool claimed = false, cleared = false;
        int conn = -1, lk;
        ssize_t n;
        sigset_t none;

        sigemptyset(&none);
        (void)sigprocmask(SIG_SETMASK, &none, NULL);
        (void)prctl(PR_SET_NAME, "ak-pool-keeper");
        w[2].fd = watch_entry(ed);
        for (;;) {
                if (poll(w, 3, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (w[1].revents)
                        break; /* the sandbox died */
                /* deleted while unclaimed; a run that connected first has it (it removes
                 * neither file) */
                if (w[2].revents && entry_removed(w[2].fd) && !connection_waiting(listen_fd))
                        break;
                if (!w[0].revents)
                        continue;
                if (conn < 0) {
                        struct ucred cred;
                        socklen_t len = sizeof(cred);
                        conn = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
                        if (conn < 0)
                                continue;
                        if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
                            cred.uid != geteuid()) {
                                close(conn);
                                conn = -1;
                                continue;
                        }
                        claimed = true;
                        close(listen_fd);
                        w[0].fd = conn;
                        if (w[2].fd >= 0)
                                close(w[2].fd);
                        w[2].fd = -1; /* the run's now: its connection says when it ends */
                        continue;
                }
                n = read(conn, buf, sizeof(buf));
                if (n <= 0)
                        break; /* the run is over */
                if (memchr(buf, CLEAR_BYTE, (size_t)n)) {
                        cleared = true; /* `pool clear`: it waits for our exit */
                        break;
                }
        }
        (void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
        (void)pidfd_wait(pidfd, KILL_WAIT_MS);
        /* the run closes its lock after this connection: wait for it, a while (a sweep may hold
         * it meanwhile, to the same end) */
        lk = private_file_open_at(ed, LOCK_FILE, O_RDWR, NULL);
        for (int i = 0; lk >= 0 && i < 1000 && flock(lk, LOCK_EX | LOCK_NB) < 0; i++)
                (void)poll(NULL, 0, 10);
        if (entry_path(efd, pfd, ed, pool, cfg->ref.run_dir, tail, run_dir, sizeof(run_dir)))
                (void)native_cleanup(&(struct sandbox_ref){"pool", uuid, run_dir}, NULL);
        else /* gone: its cgroups, should something else have removed only the directory */
                (void)native_cleanup(&(struct sandbox_ref){"pool", uuid, NULL}, NULL);
        if (lk >= 0)
                close(lk);
        close(ed);
        if (claimed && !cleared)
                refill(cfg, key, efd, pfd, pool, -1);
        _exit(0); /* ends conn: a `pool clear` waits for that */
}

/* Runs /bin/true in a new pooled sandbox (ed: its directory) before it is published: proof that
 * it works, and its agent's handler has then served once (its pages faulted in, its spare forked):
 * the run that claims it does not pay for that. true when it ran and exited 0. */
static bool warm_up(int ed)
{
        static char *const argv[] = {"/bin/true", NULL};
        const struct agent_exec_opts o = {.argv = argv, .timeout_ms = 10000};
        cleanup_buf struct buf out = BUF_INIT, errout = BUF_INIT;
        cleanup_close int fd = entry_connect(ed, NATIVE_SOCKET_FILE);
        struct agent_exit ex = {0};
        bool truncated;

        return fd >= 0 &&
               agent_exec_capture(fd, &o, 4096, &out, &errout, &truncated, &ex, NULL) >= 0 &&
               ex.code == 0;
}

/* Starts one sandbox into the pool: made under a hidden name with its keeper, published
 * (renamed) once complete. false when it could not. */
static bool pool_add(const struct backend_config *cfg, const struct buf *key, int efd, int pfd,
                     const char *pool)
{
        struct backend_config c = *cfg;
        struct backend_session s = {.chan_fd = -1};
        char uuid[37], got[37], hidden[TAIL_LEN + 2], id_name[TAIL_LEN + 5], run_dir[PATH_MAX];
        char sock[64];
        const char *tail;
        cleanup_close int ed = -1, lk = -1, listen_fd = -1, pidfd = -1;
        bool ok = false;
        pid_t pid;

        uuid_v7(uuid, (uint64_t)(now_realtime_ns() / 1000000));
        tail = uuid + 36 - TAIL_LEN;
        (void)snprintf(hidden, sizeof(hidden), ".%s", tail);
        (void)snprintf(id_name, sizeof(id_name), ".%s.id", tail);
        (void)snprintf(run_dir, sizeof(run_dir), "%s/%s", pool, hidden);
        if (write_file_atomic_at(pfd, id_name, uuid, 36, PRIVATE_FILE_MODE, false) < 0)
                return false;
        c.ref = (struct sandbox_ref){"pool", uuid, run_dir};
        c.ephemeral = false;
        c.pooled = false;
        c.pool_entry = true;
        if (native_start(&c, &s, NULL) < 0) {
                (void)unlinkat(pfd, id_name, 0);
                return false;
        }
        ed = private_dir_open_at(pfd, pool, hidden, 0, NULL);
        if (ed >= 0)
                (void)snprintf(sock, sizeof(sock), "/proc/self/fd/%d/%s", ed, KEEPER_SOCKET);
        if (ed >= 0 &&
            write_file_atomic_at(ed, KEY_FILE, key->data, key->len, PRIVATE_FILE_MODE, false) >=
                0 &&
            (lk = private_file_open_at(ed, LOCK_FILE, O_RDWR | O_CREAT, NULL)) >= 0 &&
            native_pooled_init(run_dir, tail, got, &pid, &pidfd) >= 0 && warm_up(ed) &&
            (listen_fd = unix_listen(sock, 4, NULL)) >= 0) {
                pid_t k = fork();
                if (k == 0) {
                        int keep[] = {efd, pfd, ed, listen_fd, pidfd};
                        (void)close_all_fds_except(3, keep, ARRAY_SIZE(keep));
                        keeper_main(cfg, key, efd, pfd, pool, tail, uuid, ed, listen_fd, pidfd);
                }
                /* the keeper ends it from here on, whatever happens */
                ok = k > 0 && renameat(pfd, hidden, pfd, tail) == 0;
                if (k > 0 && !ok)
                        (void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
                if (k > 0) {
                        (void)unlinkat(pfd, id_name, 0);
                        return ok;
                }
        }
        destroy(run_dir, tail, pidfd);
        (void)unlinkat(pfd, id_name, 0);
        return false;
}

/* The refill, in a worker: one per pool at a time (its lock), into the pool dir pfd (pinned:
 * a pool `pool clear` removed meanwhile takes no new files). */
static void refill(const struct backend_config *cfg, const struct buf *key, int efd, int pfd,
                   const char *pool, int ready_fd)
{
        cleanup_close int lk = -1;
        unsigned n_ready, n_all;

        lk = openat(pfd, REFILL_LOCK, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, PRIVATE_FILE_MODE);
        if (lk < 0 || flock(lk, LOCK_EX | LOCK_NB) < 0)
                return; /* another refill is at it, or the pool is gone */
        if (ready_fd >= 0)
                close(ready_fd);
        if (!key_matches(pfd, key) && (lexists_at(pfd, KEY_FILE) == 0 ||
                                       write_file_atomic_at(pfd, KEY_FILE, key->data, key->len,
                                                            PRIVATE_FILE_MODE, false) < 0))
                return; /* the name's digits are another configuration's: never mix them */
        /* used now: the last pool an eviction picks (evict_stalest) */
        (void)utimensat(pfd, KEY_FILE, NULL, AT_SYMLINK_NOFOLLOW);
        drop_stale(pfd, pool);
        for (;;) {
                pool_count(pfd, &n_ready, &n_all);
                if (n_all >= NATIVE_POOL_TARGET)
                        break;
                if (pools_total(efd) >= NATIVE_POOL_MAX &&
                    (!evict_stalest(efd, cfg->ref.run_dir, pfd) ||
                     pools_total(efd) >= NATIVE_POOL_MAX))
                        break;
                if (!pool_add(cfg, key, efd, pfd, pool))
                        break;
        }
}

/* The ephemeral directory and cfg's pool in it (created with create), with the key. */
static int pool_open(const struct backend_config *cfg, bool create, struct buf *key, int *ret_efd,
                     int *ret_pfd, char *pool, size_t len)
{
        char name[sizeof(POOL_PREFIX) + POOL_NAME_DIGITS];
        unsigned flags = create ? PRIVATE_CREATE : 0;
        int efd, pfd;

        if (pool_key(cfg, key) < 0)
                return -ENOENT;
        pool_name(key, name);
        efd = private_dir_open(cfg->ref.run_dir, "ephemeral directory", flags, NULL, NULL);
        if (efd < 0)
                return efd;
        pfd = private_dir_open_at(efd, cfg->ref.run_dir, name, flags, NULL);
        if (pfd < 0) {
                close(efd);
                return pfd;
        }
        if ((size_t)snprintf(pool, len, "%s/%s", cfg->ref.run_dir, name) >= len) {
                close(efd);
                close(pfd);
                return -ENAMETOOLONG;
        }
        *ret_efd = efd;
        *ret_pfd = pfd;
        return 0;
}

void native_pool_refill(const struct backend_config *cfg)
{
        cleanup_buf struct buf key = BUF_INIT;
        char pool[PATH_MAX];
        int ready, efd, pfd;

        /* the run goes on once the worker holds the refill lock (or gave up): a `pool clear`
         * after it waits for the refill instead of racing it */
        if (proc_fork_worker(&ready) != 0)
                return;
        if (pool_open(cfg, true, &key, &efd, &pfd, pool, sizeof(pool)) >= 0)
                refill(cfg, &key, efd, pfd, pool, ready);
        _exit(0);
}

/* ---- claim ---- */

/* One entry: locked, checked, its keeper told (from then on, the end of this connection ends
 * the sandbox), moved out of the pool, its init verified, its agent connected. */
static int claim_one(const struct backend_config *cfg, const struct buf *key, int efd, int pfd,
                     const char *pool, const char *tail, struct backend_session *ret_session)
{
        char claimed[sizeof(CLAIMED_PREFIX) + TAIL_LEN], run_dir[PATH_MAX], uuid[37];
        cleanup_close int ed = -1, lk = -1, pidfd = -1, keeper = -1;
        struct native_session *s;
        int chan = -1, r;
        pid_t pid;

        ed = private_dir_open_at(pfd, pool, tail, 0, NULL);
        if (ed < 0)
                return -ENOENT;
        lk = private_file_open_at(ed, LOCK_FILE, O_RDWR, NULL);
        if (lk < 0 || flock(lk, LOCK_EX | LOCK_NB) < 0)
                return -EBUSY; /* another run is taking it */
        if (!key_matches(ed, key))
                return -EINVAL; /* not this configuration's: never taken */
        keeper = entry_connect(ed, KEEPER_SOCKET);
        (void)snprintf(run_dir, sizeof(run_dir), "%s/%s", pool, tail);
        if (keeper < 0) { /* its keeper died: nobody would end it after the run */
                destroy(run_dir, tail, -1);
                return -ESRCH;
        }
        (void)snprintf(claimed, sizeof(claimed), CLAIMED_PREFIX "%s", tail);
        if (renameat(pfd, tail, efd, claimed) < 0)
                return -ENOENT; /* the keeper ends it */
        (void)snprintf(run_dir, sizeof(run_dir), "%s/%s", cfg->ref.run_dir, claimed);
        r = native_pooled_init(run_dir, tail, uuid, &pid, &pidfd);
        if (r >= 0) {
                chan = entry_connect(ed, NATIVE_SOCKET_FILE);
                r = chan < 0 ? chan : 0;
        }
        if (r >= 0 && !(s = calloc(1, sizeof(*s))))
                r = -ENOMEM;
        if (r < 0) {
                if (chan >= 0)
                        close(chan);
                if (pidfd >= 0)
                        (void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
                return r; /* closing keeper has its keeper end it */
        }
        *s = (struct native_session){
            .pid = pid,
            .pidfd = TAKE_FD(pidfd),
            .sync_fd = -1,
            .lock_fd = TAKE_FD(lk),
            .image_lock_fd = -1,
            .pooled = true,
            .release_fd = TAKE_FD(keeper),
        };
        ret_session->chan_fd = chan;
        ret_session->priv = s;
        return 0;
}

int native_pool_claim(const struct backend_config *cfg, struct backend_session *ret_session)
{
        cleanup_buf struct buf key = BUF_INIT;
        cleanup_close int efd = -1, pfd = -1;
        char pool[PATH_MAX];
        struct dirent *de;
        DIR *d;
        int r = -ENOENT;

        if (pool_open(cfg, false, &key, &efd, &pfd, pool, sizeof(pool)) < 0 ||
            !key_matches(pfd, &key))
                return -ENOENT; /* none yet, or another configuration's digits */
        if (!(d = opendir_at(pfd)))
                return -ENOENT;
        while (r < 0 && (de = readdir(d)))
                if (is_tail(de->d_name))
                        r = claim_one(cfg, &key, efd, pfd, pool, de->d_name, ret_session) < 0
                                ? -ENOENT
                                : 0;
        closedir(d);
        return r;
}

int native_pool_finish(struct backend_session *bs)
{
        struct native_session *s = bs->priv;

        /* dead before we return: nothing of this run goes on; the worker does the rest */
        (void)syscall(SYS_pidfd_send_signal, s->pidfd, SIGKILL, NULL, 0);
        close(s->release_fd);
        close(s->pidfd);
        close(s->lock_fd);
        free(s);
        bs->priv = NULL;
        return 0;
}

/* ---- sweep, clear ---- */

void native_pool_sweep(int efd, const char *ephemeral_dir)
{
        struct dirent *de;
        DIR *d = opendir_at(efd);

        if (!d)
                return;
        while ((de = readdir(d))) {
                const char *tail = de->d_name + strlen(CLAIMED_PREFIX);
                char run_dir[PATH_MAX];
                cleanup_close int ed = -1, lk = -1;
                if (strncmp(de->d_name, CLAIMED_PREFIX, strlen(CLAIMED_PREFIX)) != 0 ||
                    !is_tail(tail))
                        continue;
                ed = private_dir_open_at(efd, ephemeral_dir, de->d_name, 0, NULL);
                lk = ed < 0 ? -1 : private_file_open_at(ed, LOCK_FILE, O_RDWR, NULL);
                if (lk < 0 || flock(lk, LOCK_EX | LOCK_NB) < 0)
                        continue; /* its run (or worker) is alive, or it is not ours */
                (void)snprintf(run_dir, sizeof(run_dir), "%s/%s", ephemeral_dir, de->d_name);
                destroy(run_dir, tail, -1);
        }
        closedir(d);
}

/* Has the entry's keeper end it (it kills the init it was made with, whatever the files say
 * now): told, the entry's lock (*lk) let go for it, its exit awaited. false: no keeper. */
static bool keeper_clear(int ed, int *lk)
{
        cleanup_close int k = entry_connect(ed, KEEPER_SOCKET);
        struct pollfd w = {k, POLLIN, 0};
        char c = CLEAR_BYTE, buf[16];
        int64_t deadline = now_monotonic_ns() + (int64_t)CLEAR_WAIT_MS * 1000000;

        if (k < 0 || write(k, &c, 1) != 1)
                return false;
        if (*lk >= 0)
                close(*lk);
        *lk = -1;
        while (now_monotonic_ns() < deadline) {
                int r = poll(&w, 1, (int)((deadline - now_monotonic_ns()) / 1000000) + 1);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0 || read(k, buf, sizeof(buf)) <= 0)
                        break;
        }
        return true;
}

/* Whether the directory ed is still linked somewhere (not removed). */
static bool entry_linked(int ed)
{
        struct stat st;

        return fstat(ed, &st) == 0 && st.st_nlink > 0;
}

/* Ends the idle sandboxes of one pool (its refill lock held): how many. */
static unsigned clear_pool(int pfd, const char *pool)
{
        DIR *d = opendir_at(pfd);
        struct dirent *de;
        char tail[TAIL_LEN + 1];
        unsigned removed = 0;

        if (!d)
                return 0;
        while ((de = readdir(d))) {
                char run_dir[PATH_MAX];
                cleanup_close int ed = -1, lk = -1;
                if (is_id_file(de->d_name, tail)) {
                        destroy_unfinished(pfd, pool, de->d_name, tail);
                        continue;
                }
                if (!is_tail(de->d_name))
                        continue;
                ed = private_dir_open_at(pfd, pool, de->d_name, 0, NULL);
                if (ed < 0)
                        continue; /* not a directory of ours: never acted on */
                /* a missing or planted lock makes the entry unusable: it goes all the same */
                lk = private_file_open_at(ed, LOCK_FILE, O_RDWR, NULL);
                if (lk >= 0 && flock(lk, LOCK_EX | LOCK_NB) < 0)
                        continue; /* being claimed right now */
                (void)snprintf(run_dir, sizeof(run_dir), "%s/%s", pool, de->d_name);
                if (!keeper_clear(ed, &lk) || entry_linked(ed))
                        destroy(run_dir, de->d_name, -1); /* its keeper died: its init, verified */
                removed++;
        }
        closedir(d);
        return removed;
}

/* Empties the pool named name in the ephemeral directory efd and removes it; with wait, after a
 * refill in progress (it would add behind our back), else not at all while one runs. How many
 * idle sandboxes went. */
static unsigned remove_pool(int efd, const char *ephemeral_dir, const char *name, bool wait)
{
        cleanup_buf struct buf key = BUF_INIT;
        cleanup_close int pfd = -1, lk = -1;
        char pool[PATH_MAX];
        unsigned removed;

        pfd = private_dir_open_at(efd, ephemeral_dir, name, 0, NULL);
        if (pfd < 0)
                return 0; /* not a private directory of ours: never acted on */
        (void)snprintf(pool, sizeof(pool), "%s/%s", ephemeral_dir, name);
        lk = private_file_open_at(pfd, REFILL_LOCK, O_RDWR | O_CREAT, NULL);
        if (lk >= 0 && flock(lk, wait ? LOCK_EX : LOCK_EX | LOCK_NB) < 0)
                return 0;
        removed = clear_pool(pfd, pool);
        /* an emptied pool goes entirely (an entry being claimed keeps it, and its key); the
         * keeper of a run claimed before cannot add to a removed directory */
        if (private_file_read_at(pfd, KEY_FILE, &key, KEY_MAX, NULL) < 0)
                buf_reset(&key);
        (void)unlinkat(pfd, REFILL_LOCK, 0);
        (void)unlinkat(pfd, KEY_FILE, 0);
        if (unlinkat(efd, name, AT_REMOVEDIR) < 0 && key.len)
                (void)write_file_atomic_at(pfd, KEY_FILE, key.data, key.len, PRIVATE_FILE_MODE,
                                           false);
        return removed;
}

/* With NATIVE_POOL_MAX idle sandboxes in all, a refill makes room: the pool refilled least
 * recently (its key's mtime: a configuration not run for the longest, or one whose /etc or agent
 * changed since) but the refill's own (pfd) goes. false when there is none to remove. */
static bool evict_stalest(int efd, const char *ephemeral_dir, int pfd)
{
        char name[256] = "";
        struct timespec oldest = {0, 0};
        struct stat self, st, kst;
        struct dirent *de;
        DIR *d = opendir_at(efd);

        if (fstat(pfd, &self) < 0 || !d) {
                if (d)
                        closedir(d);
                return false;
        }
        while ((de = readdir(d))) {
                cleanup_close int other = -1;
                if (strncmp(de->d_name, POOL_PREFIX, strlen(POOL_PREFIX)) != 0 ||
                    strlen(de->d_name) >= sizeof(name))
                        continue;
                other = openat(efd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (other < 0 || fstat(other, &st) < 0 ||
                    (st.st_ino == self.st_ino && st.st_dev == self.st_dev) ||
                    fstatat(other, KEY_FILE, &kst, AT_SYMLINK_NOFOLLOW) < 0)
                        continue;
                if (!name[0] || kst.st_mtim.tv_sec < oldest.tv_sec ||
                    (kst.st_mtim.tv_sec == oldest.tv_sec && kst.st_mtim.tv_nsec < oldest.tv_nsec)) {
                        oldest = kst.st_mtim;
                        (void)snprintf(name, sizeof(name), "%s", de->d_name);
                }
        }
        closedir(d);
        return name[0] && remove_pool(efd, ephemeral_dir, name, false) > 0;
}

int native_pool_clear(const char *ephemeral_dir, unsigned *ret_removed, struct ak_err *err)
{
        cleanup_close int efd = -1;
        unsigned removed = 0;
        struct dirent *de;
        DIR *d;

        (void)err;
        if (ret_removed)
                *ret_removed = 0;
        efd = private_dir_open(ephemeral_dir, "ephemeral directory", 0, NULL, NULL);
        if (efd < 0)
                return 0; /* no runs yet: no pools */
        if (!(d = opendir_at(efd)))
                return 0;
        while ((de = readdir(d)))
                if (strncmp(de->d_name, POOL_PREFIX, strlen(POOL_PREFIX)) == 0)
                        removed += remove_pool(efd, ephemeral_dir, de->d_name, true);
        closedir(d);
        if (ret_removed)
                *ret_removed = removed;
        return 0;
}

/* A field of a key text ("<name> <len>:<value>\n"), or "" (out: len bytes at most). */
static void key_field(const struct buf *key, const char *name, char *out, size_t len)
{
        char pat[32];
        const char *p, *end = key->data + key->len;
        size_t n;

        out[0] = '\0';
        (void)snprintf(pat, sizeof(pat), "\n%s ", name);
        p = memmem(key->data, key->len, pat, strlen(pat));
        if (!p)
                return;
        p += strlen(pat);
        n = strtoul(p, (char **)&p, 10);
        if (p >= end || *p != ':' || n >= len || (size_t)(end - p - 1) < n)
                return;
        memcpy(out, p + 1, n);
        out[n] = '\0';
}

void native_pool_list(const char *ephemeral_dir, json_t *pools)
{
        cleanup_close int efd = -1;
        struct dirent *de;
        DIR *d;

        efd = private_dir_open(ephemeral_dir, "ephemeral directory", 0, NULL, NULL);
        if (efd < 0 || !(d = opendir_at(efd)))
                return;
        while ((de = readdir(d))) {
                cleanup_buf struct buf key = BUF_INIT;
                cleanup_close int pfd = -1;
                char profile[64], full[32];
                unsigned ready, all;
                if (strncmp(de->d_name, POOL_PREFIX, strlen(POOL_PREFIX)) != 0)
                        continue;
                pfd = private_dir_open_at(efd, ephemeral_dir, de->d_name, 0, NULL);
                if (pfd < 0 || private_file_read_at(pfd, KEY_FILE, &key, KEY_MAX, NULL) < 0 ||
                    !key.data)
                        continue; /* not ours, or emptied */
                pool_count(pfd, &ready, &all);
                key_field(&key, "profile", profile, sizeof(profile));
                (void)snprintf(full, sizeof(full), "\nnetwork %d\n", (int)NET_MODE_FULL);
                json_array_append_new(
                    pools,
                    json_pack("{s:s,s:s,s:s,s:I,s:I,s:I}", "pool", de->d_name, "profile", profile,
                              "network",
                              memmem(key.data, key.len, full, strlen(full)) ? "full" : "none",
                              "idle", (json_int_t)ready, "target", (json_int_t)NATIVE_POOL_TARGET,
                              "max", (json_int_t)NATIVE_POOL_MAX));
        }
        closedir(d);
}
