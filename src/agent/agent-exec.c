// SPDX-License-Identifier: Apache-2.0
/*
 * Starting commands inside the sandbox, for sessions (agent-session.c) and detached commands
 * (agent-detach.c): an EXEC request decoded, its user, environment and command policy resolved,
 * and the command started with clone(CLONE_VM | CLONE_VFORK) and a PATH search that allocates
 * nothing. Runs in a forked handler process.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent-exec.h"
#include "agent-guest.h"

#include "shared/cleanup.h"
#include "shared/cmd-policy.h"
#include "shared/fd-util.h"
#include "shared/path-walk.h"
#include "shared/sanitizer.h"
#include "shared/strv.h"

void exec_req_done(struct exec_req *r)
{
        strv_free(r->allow);
        strv_free(r->block);
        strv_free(r->argv);
        strv_free(r->env);
        free(r->cwd);
        free(r->user);
}

static int exec_req_decode(const struct ak_msg *m, struct exec_req *r)
{
        size_t argc = 0;
        int k;

        memset(r, 0, sizeof(*r));
        k = ak_get_strv(m, AK_T_ARG, AK_MAX_ARGS, &r->argv, &argc);
        if (k < 0)
                return k;
        if (argc == 0)
                return -EINVAL;
        k = ak_get_strv(m, AK_T_ENV, AK_MAX_ARGS, &r->env, NULL);
        if (k < 0)
                return k;
        for (char **e = r->env; *e; e++)
                if (!strchr(*e, '=') || **e == '=')
                        return -EINVAL;
        if ((k = ak_get_str(m, AK_T_CWD, &r->cwd)) < 0 && k != -ENOENT)
                return k;
        if ((k = ak_get_str(m, AK_T_USER, &r->user)) < 0 && k != -ENOENT)
                return k;
        if ((k = ak_get_u64(m, AK_T_FLAGS, &r->flags)) < 0 && k != -ENOENT)
                return k;
        if ((k = ak_get_u64(m, AK_T_ROWS, &r->rows)) < 0 && k != -ENOENT)
                return k;
        if ((k = ak_get_u64(m, AK_T_COLS, &r->cols)) < 0 && k != -ENOENT)
                return k;
        if ((k = ak_get_u64(m, AK_T_TIMEOUT_MS, &r->timeout_ms)) < 0 && k != -ENOENT)
                return k;
        k = ak_get_strv(m, AK_T_ALLOW, CMD_POLICY_MAX_ENTRIES, &r->allow, NULL);
        if (k < 0)
                return k;
        k = ak_get_strv(m, AK_T_BLOCK, CMD_POLICY_MAX_ENTRIES, &r->block, NULL);
        if (k < 0)
                return k;
        return 0;
}

struct resolve_ctx {
        const char *path, *cwd;
};

static char *resolve_in_sandbox(void *ctx, const char *name)
{
        const struct resolve_ctx *c = ctx;
        return cmd_resolve(name, c->path, c->cwd);
}

/* The command policy the host sent, checked against what argv[0] is here. NULL: may run. */
static const char *exec_policy_refusal(const struct exec_req *req, char **env, char **ret_target)
{
        struct cmd_policy p = {req->allow, req->block, req->flags & AK_EXEC_ALLOWLIST_ONLY};
        struct resolve_ctx c = {NULL, req->cwd ? req->cwd : agent_cfg.workdir};

        *ret_target = NULL;
        if (cmd_policy_empty(&p))
                return NULL;
        for (char **e = env; *e; e++)
                if (strncmp(*e, "PATH=", 5) == 0)
                        c.path = *e + 5;
        *ret_target = cmd_resolve(req->argv[0], c.path, c.cwd);
        return cmd_policy_check(&p, req->argv[0], resolve_in_sandbox, &c);
}

/* Decodes an EXEC request and resolves what it runs as: the user (from the sandbox's passwd) and
 * the command's environment. Sends the ERROR reply itself on failure; on success the caller owns
 * *req and *ret_env. */
int exec_prepare(int fd, const struct ak_msg *msg, struct exec_req *req, struct agent_user *user,
                 char ***ret_env)
{
        int r = exec_req_decode(msg, req);

        if (r < 0) {
                exec_req_done(req);
                return agent_send_error(fd, -r, "malformed exec request");
        }
        if (agent_user_lookup(req->user ? req->user : agent_cfg.user, user) < 0) {
                r = agent_send_error(fd, ESRCH, "user '%s' not found in the sandbox",
                                     req->user ? req->user : agent_cfg.user);
                exec_req_done(req);
                return r;
        }
        *ret_env = agent_build_env(req->env, user,
                                   (req->flags & AK_EXEC_TTY) && !(req->flags & AK_EXEC_DETACH));
        if (!*ret_env) {
                exec_req_done(req);
                return agent_send_error(fd, ENOMEM, "out of memory");
        }
        {
                cleanup_free char *target = NULL;
                const char *why = exec_policy_refusal(req, *ret_env, &target);
                if (why) {
                        r = agent_send_error(fd, EPERM, "command '%s'%s%s%s is %s", req->argv[0],
                                             target ? " (" : "", target ? target : "",
                                             target ? ")" : "", why);
                        strv_free(*ret_env);
                        *ret_env = NULL;
                        exec_req_done(req);
                        return r < 0 ? r : -EPERM;
                }
        }
        return 0;
}

/* A command's empty stdin: /dev/null when it is the real one. Where a sandbox may replace it (a
 * container's /dev is a plain tmpfs) a FIFO would hang the handler's open and a link into /proc
 * would hand the command one of the agent's own fds; then a pipe with no writer serves. */
int exec_open_devnull(void)
{
        int fd = openat_nomagic(AT_FDCWD, "/dev/null", O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
        struct stat st;
        int p[2];

        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3) &&
            fd_set_nonblock(fd, false) == 0)
                return fd;
        if (fd >= 0)
                close(fd);
        if (pipe2(p, O_CLOEXEC) < 0)
                return -1;
        close(p[1]);
        return p[0];
}

/* The child shares the handler's memory and the handler sleeps until it has called execve or
 * exited (CLONE_VFORK), so the report is written straight into the handler's struct. */
static SANITIZER_CHILD_ENTRY _noreturn_ void child_fail(struct spawn_fail *f, int step, int err)
{
        f->step = step;
        f->err = err ? err : EIO;
        _exit(step == 1 && err == ENOENT ? 127 : 126);
}

/* execvpe() without touching the parent's memory: PATH comes from the command's own
 * environment (glibc's execvpe reads the caller's), and nothing is allocated, so this is safe in
 * a vfork child. Returns only on failure, with errno set as execvp(3) would. */
static void exec_search(char *const argv[], char *const envp[])
{
        const char *file = argv[0];
        const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        char buf[4096];
        int saved = ENOENT;
        size_t flen = strlen(file);

        if (strchr(file, '/')) {
                execve(file, argv, envp);
                return;
        }
        for (char *const *e = envp; e && *e; e++)
                if (strncmp(*e, "PATH=", 5) == 0)
                        path = *e + 5;
        while (*path || saved == ENOENT) {
                const char *end = strchr(path, ':');
                size_t dlen = end ? (size_t)(end - path) : strlen(path);
                if (dlen + flen + 2 <= sizeof(buf)) {
                        if (dlen) {
                                memcpy(buf, path, dlen);
                                buf[dlen] = '/';
                                memcpy(buf + dlen + 1, file, flen + 1);
                        } else {
                                memcpy(buf, file, flen + 1); /* empty entry: current directory */
                        }
                        execve(buf, argv, envp);
                        if (errno == EACCES)
                                saved = EACCES;
                        else if (errno != ENOENT && errno != ENOTDIR)
                                return; /* found but not runnable: report that */
                }
                if (!end)
                        break;
                path = end + 1;
        }
        errno = saved;
}

struct spawn_args {
        const struct exec_req *req;
        const struct agent_user *u;
        char **env;
        const int *stdio;
        const char *pty_slave;
        struct spawn_fail *fail;
};

/* Runs in a vfork-style child sharing the handler's memory: only syscalls, no allocation, no
 * writes to shared state; ends in execve or _exit. */
static SANITIZER_CHILD_ENTRY int spawn_child(void *arg)
{
        const struct spawn_args *a = arg;
        int r;

        if (a->pty_slave) {
                int s;
                if (setsid() < 0)
                        child_fail(a->fail, 0, errno);
                s = open(a->pty_slave, O_RDWR | O_NOCTTY);
                if (s < 0 || ioctl(s, TIOCSCTTY, 0) < 0)
                        child_fail(a->fail, 0, errno);
                if (dup2(s, 0) < 0 || dup2(s, 1) < 0 || dup2(s, 2) < 0)
                        child_fail(a->fail, 0, errno);
                if (s > 2)
                        close(s);
        } else {
                (void)setpgid(0, 0);
                for (int i = 0; i < 3; i++)
                        if (dup2(a->stdio[i], i) < 0)
                                child_fail(a->fail, 0, errno);
        }
        if (agent_guest && (r = agent_guest_command_enter()) < 0) /* a VM's commands' cgroup */
                child_fail(a->fail, 0, -r);
        (void)syscall(SYS_close_range, 3u, ~0u, 0u); /* everything but stdio */
        r = agent_child_setup(a->u, a->req->cwd ? a->req->cwd : agent_cfg.workdir);
        if (r < 0)
                child_fail(a->fail, 0, -r);
        exec_search(a->req->argv, a->env);
        child_fail(a->fail, 1, errno);
}

/* Starts the command (vfork semantics: the handler's pages are not copied, which makes this
 * several times faster than fork on a busy host). stdio[] are the fds for 0/1/2, or pty_slave
 * the terminal to open after setsid. Returns the pid, or -errno with *fail saying why. */
pid_t exec_spawn(const struct exec_req *req, const struct agent_user *u, char **env,
                 const int stdio[3], const char *pty_slave, struct spawn_fail *fail)
{
        static char stack[64 * 1024] __attribute__((aligned(16)));
        struct spawn_args a = {req, u, env, stdio, pty_slave, fail};
        pid_t pid;

        *fail = (struct spawn_fail){0, 0};
        /* the last child left its frames' redzones poisoned: it never returned, it exec'd */
        sanitizer_fresh_stack(stack, sizeof(stack));
        pid = clone(spawn_child, stack + sizeof(stack), CLONE_VM | CLONE_VFORK | SIGCHLD, &a);
        if (pid < 0) {
                *fail = (struct spawn_fail){0, errno}; /* no process (the pids limit, memory) */
                return -fail->err;
        }
        if (fail->err) {
                (void)waitpid(pid, NULL, 0);
                return -fail->err;
        }
        return pid;
}

void exec_spawn_error(char *out, size_t len, const struct exec_req *req, const struct spawn_fail *f)
{
        if (f->step == 1)
                (void)snprintf(out, len, "agentkernel: cannot run '%s': %s\n", req->argv[0],
                               f->err == ENOENT ? "command not found" : strerror(f->err));
        else if (req->cwd && f->err == ELOOP)
                (void)snprintf(out, len,
                               "agentkernel: cannot start '%s': working directory '%s' leads "
                               "through a link into /proc (or too many symbolic links); "
                               "refused\n",
                               req->argv[0], req->cwd);
        else if (req->cwd && (f->err == ENOENT || f->err == ENOTDIR))
                (void)snprintf(out, len,
                               "agentkernel: cannot start '%s': working directory '%s' does not "
                               "exist\n",
                               req->argv[0], req->cwd);
        else
                (void)snprintf(out, len, "agentkernel: cannot start '%s': %s\n", req->argv[0],
                               strerror(f->err));
}

int exec_exit_code(int status, int *ret_signal)
{
        *ret_signal = 0;
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        if (WIFSIGNALED(status)) {
                *ret_signal = WTERMSIG(status);
                return 128 + WTERMSIG(status);
        }
        return 255;
}
