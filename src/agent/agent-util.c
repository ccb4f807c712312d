// SPDX-License-Identifier: Apache-2.0
/*
 * Helpers of the agent: user lookup in the sandbox's /etc/passwd (hostile input: bounded reads,
 * strict number parsing, never through a /proc link, never a FIFO), command environments, and
 * the last steps before a command's execve (the working directory, too, is never reached through
 * a /proc link; the command's own seccomp filter); the ERROR reply and a handler's notes to PID 1,
 * which every connection handler (agent-session.c, agent-detach.c, agent-fs.c) uses: with them
 * here, the handlers need nothing from agent.c (PID 1 and its handler pool), which needs them.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "agent-guest.h"
#include "agent.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/parse-util.h"
#include "shared/path-walk.h"
#include "shared/strv.h"

#define PASSWD_MAX (4u << 20)

struct agent_config agent_cfg = {.state_fd = -1};

static int fill_user(struct agent_user *u, const char *name, uid_t uid, gid_t gid, const char *home,
                     const char *shell)
{
        u->uid = uid;
        u->gid = gid;
        (void)snprintf(u->name, sizeof(u->name), "%s", name);
        (void)snprintf(u->home, sizeof(u->home), "%s", home);
        (void)snprintf(u->shell, sizeof(u->shell), "%s", shell);
        return 0;
}

/* Finds the passwd line whose name (by_name) or uid field matches. */
static int passwd_find(const char *key, bool by_name, struct agent_user *ret)
{
        cleanup_buf struct buf b = BUF_INIT;
        char *line, *save = NULL;
        uint32_t want_uid = 0;

        if (!by_name && safe_atou32(key, &want_uid) < 0)
                return -EINVAL;
        {
                /* the sandbox's file: not through a /proc link, and a FIFO must not hang us */
                cleanup_close int fd =
                    openat_nomagic(AT_FDCWD, "/etc/passwd", O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
                struct stat st;
                if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
                    read_fd_full(fd, &b, PASSWD_MAX) < 0 || !b.data)
                        return -ENOENT;
        }
        for (line = strtok_r(b.data, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *f[7] = {0};
                char *p = line;
                uint32_t uid, gid;
                int i;

                for (i = 0; i < 7 && p; i++) {
                        f[i] = p;
                        p = strchr(p, ':');
                        if (p)
                                *p++ = '\0';
                }
                if (i < 7 || !f[0][0])
                        continue;
                if (safe_atou32(f[2], &uid) < 0 || safe_atou32(f[3], &gid) < 0)
                        continue;
                if (by_name ? streq(f[0], key) : want_uid == uid)
                        return fill_user(ret, f[0], uid, gid, f[5][0] ? f[5] : "/", f[6]);
        }
        return -ENOENT;
}

int agent_user_lookup(const char *spec, struct agent_user *ret)
{
        uint32_t uid, gid;
        const char *colon;

        if (!spec || !*spec || streq(spec, "root") || streq(spec, "0")) {
                if (passwd_find("root", true, ret) == 0 && ret->uid == 0)
                        return 0;
                return fill_user(ret, "root", 0, 0, "/root", "/bin/sh");
        }
        if (strlen(spec) >= 64)
                return -EINVAL;
        colon = strchr(spec, ':');
        if (colon) {
                char u[64];
                memcpy(u, spec, (size_t)(colon - spec));
                u[colon - spec] = '\0';
                if (safe_atou32(u, &uid) < 0 || safe_atou32(colon + 1, &gid) < 0)
                        return -EINVAL;
                if (passwd_find(u, false, ret) < 0)
                        fill_user(ret, u, uid, gid, "/", "/bin/sh");
                ret->gid = gid;
                return 0;
        }
        if (safe_atou32(spec, &uid) == 0) {
                if (passwd_find(spec, false, ret) == 0)
                        return 0;
                return fill_user(ret, spec, uid, uid, "/", "/bin/sh");
        }
        return passwd_find(spec, true, ret);
}

static bool env_has(char *const *env, size_t n, const char *key)
{
        size_t kl = strlen(key);
        for (size_t i = 0; i < n; i++)
                if (strncmp(env[i], key, kl) == 0 && env[i][kl] == '=')
                        return true;
        return false;
}

/* Sets or replaces KEY=... in env (which has room). */
static int env_put(char **env, size_t *n, const char *entry)
{
        const char *eq = strchr(entry, '=');
        size_t kl;
        char *copy;

        if (!eq || eq == entry)
                return -EINVAL;
        kl = (size_t)(eq - entry);
        copy = strdup(entry);
        if (!copy)
                return -ENOMEM;
        for (size_t i = 0; i < *n; i++) {
                if (strncmp(env[i], entry, kl) == 0 && env[i][kl] == '=') {
                        free(env[i]);
                        env[i] = copy;
                        return 0;
                }
        }
        env[(*n)++] = copy;
        env[*n] = NULL;
        return 0;
}

char **agent_build_env(char *const *overrides, const struct agent_user *u, bool tty)
{
        size_t nb = 0, no = 0, n = 0;
        char **env;
        char tmp[512];

        for (char **p = agent_cfg.base_env; p && *p; p++)
                nb++;
        for (char *const *p = overrides; p && *p; p++)
                no++;
        env = calloc(nb + no + 8, sizeof(char *));
        if (!env)
                return NULL;
        for (size_t i = 0; i < nb; i++)
                if (env_put(env, &n, agent_cfg.base_env[i]) == -ENOMEM)
                        goto fail;
        for (size_t i = 0; i < no; i++)
                if (env_put(env, &n, overrides[i]) == -ENOMEM)
                        goto fail;
        if (u) {
                /* The user's identity wins over the base env, but not over explicit overrides. */
                const struct {
                        const char *key;
                        const char *val;
                } ident[] = {{"HOME", u->home}, {"USER", u->name}, {"LOGNAME", u->name}};
                for (size_t k = 0; k < ARRAY_SIZE(ident); k++) {
                        if (env_has(overrides, no, ident[k].key))
                                continue;
                        (void)snprintf(tmp, sizeof(tmp), "%s=%s", ident[k].key, ident[k].val);
                        if (env_put(env, &n, tmp) < 0)
                                goto fail;
                }
        }
        if (!env_has(env, n, "PATH") &&
            env_put(env, &n, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin") <
                0)
                goto fail;
        if (tty && !env_has(env, n, "TERM") && env_put(env, &n, "TERM=xterm") < 0)
                goto fail;
        return env;
fail:
        strv_free(env);
        return NULL;
}

/*
 * What every command of a sandbox that writes a host directory (--host-files) gets on top of the
 * sandbox's filter. There the sandbox's filter refuses setuid and setgid bits in open, openat,
 * creat, chmod and mknod; openat2 takes its mode behind a pointer, where no filter can see it,
 * so commands must not have it. The agent must: RESOLVE_NO_MAGICLINKS is how no sandbox path
 * leads it into its own fds, and the sandbox's filter applies to the agent too. So the agent
 * refuses openat2 to each command itself, with ENOSYS, as a kernel without openat2 would (libc and
 * programs fall back to openat). Elsewhere openat2 is harmless (the bits are inert on the
 * sandbox's own disk) and commands keep it: loading a filter costs every command ~20 us (the
 * kernel compiles it). The program is written out here because the agent is built against musl,
 * whose headers have no <linux/filter.h>; every process in a sandbox descends from a command.
 */
#define OPENAT2_NR 437 /* the same number on every architecture */
#define SECCOMP_SET_MODE_FILTER_ 1u
#define SECCOMP_RET_ALLOW_ 0x7fff0000u
#define SECCOMP_RET_ERRNO_ 0x00050000u

struct bpf_insn {
        uint16_t code;
        uint8_t jt, jf;
        uint32_t k;
};

static int command_filter(void)
{
        static const struct bpf_insn insns[] = {
            {0x20, 0, 0, 0},                           /* ld [nr] (seccomp_data.nr) */
            {0x15, 0, 1, OPENAT2_NR},                  /* jeq #openat2, next, skip 1 */
            {0x06, 0, 0, SECCOMP_RET_ERRNO_ | ENOSYS}, /* ret ERRNO(ENOSYS) */
            {0x06, 0, 0, SECCOMP_RET_ALLOW_},          /* ret ALLOW */
        };
        const struct {
                unsigned short len;
                const struct bpf_insn *filter;
        } prog = {sizeof(insns) / sizeof(insns[0]), insns};

        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER_, 0u, &prog) == 0)
                return 0;
        /* a filter needs no_new_privs (or CAP_SYS_ADMIN): every sandbox has it set already,
         * and the restrictive profile refuses prctl(), so only ask when it is missing */
        if (errno != EACCES || syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1L, 0L, 0L, 0L) < 0 ||
            syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER_, 0u, &prog) < 0)
                return -errno;
        return 0;
}

int agent_child_setup(const struct agent_user *u, const char *cwd)
{
        sigset_t all;

        /* Signals: execve resets caught signals to their default; ignored ones (only SIGPIPE in
         * the agent) must be reset by hand. Nothing stays blocked. Capabilities need nothing
         * here: the agent lowered the bounding set for all its children at start-up. */
        (void)signal(SIGPIPE, SIG_DFL);
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);

        /* Direct system calls: the C library's wrappers would coordinate with other threads
         * (musl blocks every signal around each one), and a command's child has none. */
        if (u) {
                if (syscall(SYS_setgroups, 1, &u->gid) < 0 && errno != EPERM)
                        return -errno;
                if (syscall(SYS_setresgid, u->gid, u->gid, u->gid) < 0)
                        return -errno;
                if (syscall(SYS_setresuid, u->uid, u->uid, u->uid) < 0)
                        return -errno;
        }
        if (cwd) {
                /* never through a /proc link: this process still has the agent's privileges,
                 * and /proc/<handler or PID 1>/fd/N leads to the agent's private state */
                int d = openat_nomagic(AT_FDCWD, cwd, O_PATH | O_DIRECTORY, 0), r;
                if (d < 0)
                        return d;
                r = fchdir(d) < 0 ? -errno : 0;
                close(d);
                if (r < 0)
                        return r;
        }
        /* a VM's guest: no_new_privs and the profile's filter, which `native` gives the whole
         * sandbox (agent-guest.c) */
        if (agent_guest)
                return agent_guest_command_confine();
        return agent_cfg.host_files ? command_filter() : 0;
}

int agent_send_error(int fd, int code, const char *fmt, ...)
{
        cleanup_buf struct buf out = BUF_INIT;
        char msg[1024];
        va_list ap;
        size_t s;

        va_start(ap, fmt);
        (void)vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        s = ak_msg_begin(&out, AK_ERROR);
        ak_put_u64(&out, AK_T_ERRNO, (uint64_t)(code > 0 ? code : EIO));
        ak_put_str(&out, AK_T_MSG, msg);
        ak_msg_end(&out, s);
        (void)ak_write_buf(fd, &out);
        return -(code > 0 ? code : EIO);
}

static pid_t handler_pid;        /* in a handler: its pid; 0 elsewhere */
static int handler_note_fd = -1; /* in a handler: the note pipe's write end */
static bool handler_busy_noted;  /* this connection told PID 1 it has work */

static void handler_note(bool busy)
{
        struct agent_handler_note n = {(int32_t)handler_pid, busy};
        (void)write_all(handler_note_fd, &n, sizeof(n));
}

void agent_handler_init(int note_fd)
{
        handler_pid = getpid();
        handler_note_fd = note_fd;
}

void agent_handler_conn_begin(void)
{
        handler_busy_noted = false;
}

void agent_handler_conn_end(void)
{
        if (handler_busy_noted)
                handler_note(false);
}

void agent_handler_busy(void)
{
        if (!handler_pid || handler_busy_noted)
                return;
        handler_note(true);
        handler_busy_noted = true;
}
