// SPDX-License-Identifier: Apache-2.0
/*
 * The parent's side of a start (runtime_spawn): the child's stack and pipes, the clone with
 * every new namespace, its cgroups (joined by a thread of ours meanwhile: see struct joiner) and
 * id maps, the prepared mounts and go byte (prepare.c), then one wait for the child's report or
 * its execve of the agent; and the commit that lets the sandbox outlive its starter. From the go
 * byte until the child has executed the agent, this thread does nothing but that wait: the child
 * shares its memory (runtime.c).
 */
#include "child.h"
#include "prepare.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shared/fd-util.h"
#include "shared/sanitizer.h"
#include "shared/test-hook.h"

#define CHILD_STACK_SIZE (256u << 10) /* the child's deepest frames are ~20 KiB */
#define CHILD_STACK_GUARD 4096u

static int write_id_maps(pid_t pid, const struct runtime_spec *s, struct ak_err *err)
{
        char path[64], map[128];
        int r;

        if (s->rootless) {
                (void)snprintf(path, sizeof(path), "/proc/%d/setgroups", (int)pid);
                r = write_file_string(path, "deny");
                if (r < 0 && r != -ENOENT)
                        return ak_err_errno(err, r, "write %s", path);
                (void)snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)s->host_uid);
        } else {
                (void)snprintf(map, sizeof(map), "0 %u %u\n", s->id_base, s->id_count);
        }
        (void)snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
        r = write_file_string(path, map);
        if (r < 0)
                return ak_err_errno(err, r, "write uid map");
        if (s->rootless)
                (void)snprintf(map, sizeof(map), "0 %u 1\n", (unsigned)s->host_gid);
        (void)snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
        r = write_file_string(path, map);
        if (r < 0)
                return ak_err_errno(err, r, "write gid map");
        return 0;
}

static void kill_and_reap(pid_t pid)
{
        (void)kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}

struct child_start {
        const struct runtime_spec *spec;
        int sync_fd, errfd, join_fd;              /* the child's ends (join_fd: -1 or a socket) */
        int parent_sync, parent_err, parent_join; /* ours, which the child closes */
};

static SANITIZER_CHILD_ENTRY int child_entry(void *arg)
{
        const struct child_start *c = arg;

        close(c->parent_sync);
        close(c->parent_err);
        if (c->parent_join >= 0)
                close(c->parent_join);
        runtime_child_main(c->spec, c->sync_fd, c->errfd, c->join_fd);
}

/*
 * Joining the sandbox's cgroups, off the critical path. Moving a process into a cgroup takes the
 * kernel's cgroup_threadgroup_rwsem for writing, and the first writer after a quiet while waits
 * for an RCU grace period first (rcu_sync_enter: 4-15 ms on a 2-vCPU VM, HZ=250), unless the
 * hierarchy is mounted with favordynmods. bwrap joins no cgroup; we must. So a thread of ours
 * writes the child's pid into its cgroup.procs files while the child builds its mount tree, and
 * the child waits for the verdict (one byte, 'J' when every write took) only before it unshares
 * its cgroup namespace, which must be rooted at its own cgroup, and executes the agent: nothing
 * of the sandbox's runs outside its cgroups. The thread has its own stack and errno; the child
 * shares our memory, not the thread's. What the child's own setup charges before that (its mount
 * tree's tmpfs pages and kernel objects: fixed, bounded by the plan, not by the sandbox's code)
 * stays with the starter's cgroup.
 */
struct joiner {
        const char *const *procs;
        char pid[16];
        int fd;             /* our end of the child's join socket; closed by the thread */
        int err;            /* 0, or the negative errno of the write that failed */
        const char *failed; /* that cgroup.procs */
        pthread_t thread;
        bool started;
};

static void join_write(struct joiner *j)
{
        for (const char *const *cg = j->procs; *cg; cg++) {
                int r = write_file_string(*cg, j->pid);
                if (r < 0) {
                        j->err = r;
                        j->failed = *cg;
                        break;
                }
        }
}

static void *joiner_main(void *arg)
{
        struct joiner *j = arg;

        if (test_hook("runtime-cgroup-join") < 0) { /* fail:runtime-cgroup-join */
                j->err = -EIO;
                j->failed = j->procs[0];
        } else {
                join_write(j);
        }
        (void)send(j->fd, j->err ? "E" : "J", 1, MSG_NOSIGNAL);
        close(j->fd);
        j->fd = -1;
        return NULL;
}

/* Starts the thread; where none can be made, joins here and now, before the go byte, as the
 * child's recvmsg() leaves us free to. Either way the verdict is on its way to the child. */
static void joiner_start(struct joiner *j, pid_t pid)
{
        (void)snprintf(j->pid, sizeof(j->pid), "%d", (int)pid);
        /* it inherits our mask, every signal blocked: none is handled on its stack either */
        j->started = pthread_create(&j->thread, NULL, joiner_main, j) == 0;
        if (!j->started)
                (void)joiner_main(j);
}

/* Waits for the thread (a grace period at most) and turns its failure into err. */
static int joiner_finish(struct joiner *j, struct ak_err *err)
{
        if (j->started)
                (void)pthread_join(j->thread, NULL);
        j->started = false;
        if (j->fd >= 0) {
                close(j->fd);
                j->fd = -1;
        }
        return j->err ? ak_err_errno(err, j->err, "join cgroup '%s'", j->failed) : 0;
}

/* Creates the child on its own stack. CLONE_VM: it shares our memory until it executes the agent,
 * so the clone copies no page tables and neither side takes copy-on-write faults (fork() of this
 * process costs ~0.8 ms on a VM, this ~0.1 ms). That is safe because the child allocates nothing,
 * takes no lock, and keeps its state on its own stack, and because from the go byte to its
 * execve we only wait on errfd with every signal blocked, so nothing of ours touches the errno
 * it shares with us. Where CLONE_VM is refused (valgrind), the child gets a copy as with fork. */
static pid_t clone_child(struct child_start *c, void *stack, size_t stack_size)
{
        const int ns = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC |
                       CLONE_NEWNET | SIGCHLD;
        char *top = (char *)stack + stack_size;
        pid_t pid;

#ifndef RUNTIME_NO_SHARED_CHILD
        pid = clone(child_entry, top, ns | CLONE_VM, c);
        if (pid >= 0 || errno != EINVAL)
                return pid;
#endif
        pid = clone(child_entry, top, ns, c);
        return pid;
}

/* The listeners the child made in proxy mode: sent before its execve, so already queued. */
static int recv_capture(int sync_fd, int fds[3], struct ak_err *err)
{
        union {
                char buf[CMSG_SPACE(sizeof(int) * 3)];
                struct cmsghdr align;
        } cm;
        char tag = 0;
        struct iovec iov = {&tag, 1};
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof(cm)};
        ssize_t n;
        size_t got = 0;

        do
                n = recvmsg(sync_fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        for (struct cmsghdr *c = n == 1 ? CMSG_FIRSTHDR(&mh) : NULL; c; c = CMSG_NXTHDR(&mh, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                        got = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                        if (got == 3)
                                memcpy(fds, CMSG_DATA(c), sizeof(int) * 3);
                        else
                                for (size_t i = 0; i < got; i++)
                                        close(((int *)(void *)CMSG_DATA(c))[i]);
                }
        if (n != 1 || tag != 'L' || got != 3 || (mh.msg_flags & MSG_CTRUNC)) {
                if (got == 3)
                        for (int i = 0; i < 3; i++)
                                close(fds[i]), fds[i] = -1;
                return ak_err_set(err, EIO, "the sandbox did not hand over its proxy listeners");
        }
        return 0;
}

static void close_pair(int p[2])
{
        if (p[0] >= 0)
                close(p[0]);
        if (p[1] >= 0)
                close(p[1]);
}

int runtime_spawn(const struct runtime_spec *s, struct runtime_child *ret, struct ak_err *err)
{
        int sync[2] = {-1, -1}, errp[2] = {-1, -1}, joinp[2] = {-1, -1};
        struct joiner join = {.procs = s->cgroup_procs, .fd = -1};
        struct child_report rep;
        struct child_start start;
        sigset_t all, saved;
        void *stack;
        ssize_t n;
        pid_t pid;
        int r;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync) < 0 ||
            pipe2(errp, O_CLOEXEC) < 0 ||
            (s->cgroup_procs && s->cgroup_procs[0] &&
             socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, joinp) < 0)) {
                r = ak_err_errno(err, errno, "the child's channels");
                close_pair(sync);
                close_pair(errp);
                return r;
        }
        /* the child's stack; its lowest page stays a guard */
        stack = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
        if (stack == MAP_FAILED || mprotect(stack, CHILD_STACK_GUARD, PROT_NONE) < 0) {
                r = errno;
                if (stack != MAP_FAILED)
                        (void)munmap(stack, CHILD_STACK_SIZE);
                close_pair(sync);
                close_pair(errp);
                close_pair(joinp);
                return ak_err_errno(err, r, "child stack");
        }
        sanitizer_fresh_stack(stack, CHILD_STACK_SIZE);
        start = (struct child_start){.spec = s,
                                     .sync_fd = sync[1],
                                     .errfd = errp[1],
                                     .join_fd = joinp[1],
                                     .parent_sync = sync[0],
                                     .parent_err = errp[0],
                                     .parent_join = joinp[0]};

        /* Every signal stays blocked in this thread until the child has executed the agent: the
         * child starts with them blocked (the agent sets its own mask), no handler of ours can run
         * on its stack, and our wait for it cannot be interrupted. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        pid = clone_child(&start, stack, CHILD_STACK_SIZE);
        if (pid < 0) {
                r = errno;
                pthread_sigmask(SIG_SETMASK, &saved, NULL);
                (void)munmap(stack, CHILD_STACK_SIZE);
                close_pair(sync);
                close_pair(errp);
                close_pair(joinp);
                return ak_err_set(err, r, "cannot create namespaces: %s%s", strerror(r),
                                  r == EPERM || r == ENOSPC
                                      ? " (are user namespaces enabled? see: agentkernel doctor)"
                                      : "");
        }
        close(sync[1]);
        close(errp[1]);
        if (joinp[1] >= 0)
                close(joinp[1]);

        /* Until the go byte the child waits in recvmsg(): we may use errno freely. */
        if (joinp[0] >= 0) {
                join.fd = joinp[0];
                joiner_start(&join, pid);
        }
        r = write_id_maps(pid, s, err);
        if (r < 0)
                goto fail;
        if (s->on_namespaces)
                s->on_namespaces(pid, s->ctx);
        r = prepare_release_child(pid, s, sync[0], err);
        if (r < 0)
                goto fail;
        /* From the go byte on, only this read: it cannot fail with signals blocked, and we must
         * not look at errno while the child may be writing it. */
        n = read(errp[0], &rep, sizeof(rep));
        if (n != 0) {
                /* the joiner's own failure (the child only saw 'E') says more */
                r = joiner_finish(&join, err);
                if (r < 0)
                        goto fail;
                if (n == (ssize_t)sizeof(rep)) {
                        rep.what[sizeof(rep.what) - 1] = '\0';
                        r = ak_err_errno(err, rep.err, "sandbox setup failed at %s", rep.what);
                } else {
                        r = ak_err_set(err, EIO, "sandbox setup failed");
                }
                goto fail;
        }
        /* end of file: the child has executed the agent, so it read 'J' (the thread is done or
         * about to return), and no longer uses our memory */
        (void)joiner_finish(&join, NULL);
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        (void)munmap(stack, CHILD_STACK_SIZE);
        close(errp[0]);
        ret->capture_fds[0] = ret->capture_fds[1] = ret->capture_fds[2] = -1;
        if (s->net_capture && (r = recv_capture(sync[0], ret->capture_fds, err)) < 0) {
                close(sync[0]);
                kill_and_reap(pid);
                return r;
        }
        ret->pid = pid;
        ret->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        ret->sync_fd = sync[0];
        return 0;
fail:
        close(errp[0]);
        close(sync[0]);
        kill_and_reap(pid);
        (void)joiner_finish(&join, NULL);
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        (void)munmap(stack, CHILD_STACK_SIZE);
        return r;
}

int runtime_commit(struct runtime_child *c)
{
        int r = write_all(c->sync_fd, "C", 1);
        close(c->sync_fd);
        c->sync_fd = -1;
        return r;
}
