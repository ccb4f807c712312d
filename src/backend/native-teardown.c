// SPDX-License-Identifier: Apache-2.0
/*
 * An ephemeral run's teardown, finished after its starter has exited (native_teardown_detach).
 *
 * When the command's result is in, the sandbox's PID 1 is killed; what remains is waiting for
 * it to die (its pid namespace, mounts and network namespace go with it) and removing its
 * cgroups and lock file: 0.5-1.5 ms on a small VM, which bwrap, whose PID 1 dies after bwrap has
 * returned, does not wait for. A caller that exits right after the run (the CLI's `run`) may
 * leave that to a worker: a process sharing our memory (clone(CLONE_VM): no page tables copied,
 * ~0.05 ms) on a stack of its own, which outlives us. It inherits copies of the pidfd, the lock
 * file (whose lock stays held through them, so a sweep leaves the run alone until the worker is
 * done) and the image lock, closes every other fd at once (the caller's stdout must reach end of
 * file when we exit), waits on the pidfd for PID 1's death, removes the cgroups, unlinks the lock
 * file and exits. PID 1, a child of ours, is reaped by init once we have exited, as bwrap's is.
 *
 * Like the runtime's child, the worker allocates nothing and takes no lock: our heap and stdio
 * are in use by our exit while it runs. It only makes system calls, with every signal blocked
 * (our handlers are not to run on its stack). Their errno is our main thread's (shared TLS),
 * which nothing reads any more. If it is killed (kill -9), or a cgroup stays busy past
 * TEARDOWN_TIMEOUT_MS, the lock file stays, unlocked: the next `run`'s sweep, or `gc`, removes
 * what is left (native_sweep), as after a starter killed mid-run.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "backend/native.h"
#include "shared/fd-util.h"
#include "shared/macro.h"
#include "shared/sanitizer.h"
#include "shared/time-util.h"

#define TEARDOWN_TIMEOUT_MS 10000
#define WORKER_STACK_SIZE (64u << 10)

struct reaper {
        int pidfd, lock_fd, image_lock_fd;
        bool stop; /* test hook: stop before the teardown (a crash test kills us there) */
        struct cgroup_set cg;
        char lock_path[PATH_MAX];
};

static int64_t left_ms(int64_t until)
{
        int64_t now = now_monotonic_ns();
        return now >= until ? 0 : (until - now) / NSEC_PER_MSEC + 1;
}

static SANITIZER_CHILD_ENTRY _noreturn_ void reaper_exit(int code)
{
        _exit(code);
}

static SANITIZER_CHILD_ENTRY int reaper_main(void *arg)
{
        const struct reaper *rp = arg;
        int keep[3], n = 0;
        int64_t until;
        struct pollfd p = {.fd = rp->pidfd, .events = POLLIN};

        keep[n++] = rp->pidfd;
        if (rp->lock_fd >= 0)
                keep[n++] = rp->lock_fd;
        if (rp->image_lock_fd >= 0)
                keep[n++] = rp->image_lock_fd;
        (void)close_all_fds_except(0, keep, (size_t)n);
        (void)setsid(); /* no terminal's signals */
        if (rp->stop)
                (void)kill(getpid(), SIGSTOP); /* blocked signals aside, SIGSTOP always stops */
        until = now_monotonic_ns() + TEARDOWN_TIMEOUT_MS * NSEC_PER_MSEC;
        /* the pidfd reads as ready once PID 1 has exited: its namespaces are gone */
        for (;;) {
                int r = poll(&p, 1, (int)left_ms(until));
                if (r > 0)
                        break;
                if (r == 0 || errno != EINTR)
                        reaper_exit(1);
        }
        for (size_t i = 0; i < rp->cg.n; i++)
                while (rmdir(rp->cg.dirs[i]) < 0 && errno != ENOENT) {
                        struct timespec ms = {0, 1000000};
                        if (errno != EBUSY || left_ms(until) == 0)
                                reaper_exit(1); /* the lock file stays: a sweep finishes */
                        (void)nanosleep(&ms, NULL);
                }
        if (rp->lock_fd >= 0)
                (void)unlink(rp->lock_path); /* still locked: no sweep takes it meanwhile */
        reaper_exit(0);
}

int native_teardown_detach(struct native_session *s)
{
        /* a crash test's point: the worker stops itself before the teardown (test-hook.h) */
        const char *hook = getenv("AGENTKERNEL_TEST_HOOK");
        sigset_t all, saved;
        struct reaper *rp;
        void *stack;
        pid_t pid;

        if (s->pidfd < 0 || s->merged[0])
                return -EOPNOTSUPP; /* no pidfd to wait on; a copy to delete (that allocates) */
        stack = mmap(NULL, WORKER_STACK_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
        if (stack == MAP_FAILED)
                return -errno;
        sanitizer_fresh_stack(stack, WORKER_STACK_SIZE);
        /* its arguments at the top of its mapping, its stack below them */
        rp = (struct reaper *)((char *)stack + WORKER_STACK_SIZE - sizeof(*rp));
        *rp = (struct reaper){.pidfd = s->pidfd,
                              .lock_fd = s->lock_fd,
                              .image_lock_fd = s->image_lock_fd,
                              .stop = hook && streq(hook, "native-teardown-detached"),
                              .cg = s->cg};
        memcpy(rp->lock_path, s->lock_path, sizeof(rp->lock_path));
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        pid = clone(reaper_main, (char *)rp - 64, CLONE_VM | SIGCHLD, rp);
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (pid < 0) {
                int r = -errno;
                (void)munmap(stack, WORKER_STACK_SIZE);
                return r; /* valgrind refuses CLONE_VM: the caller tears down itself */
        }
        /* The mapping stays: the worker runs on it, and we exit soon. */
        return 0;
}
