/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the agent's two ways of running a command share (agent-session.c: interactive, streamed;
 * agent-detach.c: detached, supervised): an EXEC request, decoded and checked (agent-exec.c),
 * and the command started from it. Nothing outside src/agent/ includes this.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agent.h"

/* An EXEC request, decoded. */
struct exec_req {
        char **argv;
        char **env;
        char *cwd;
        char *user;
        uint64_t flags;
        uint64_t rows, cols;
        uint64_t timeout_ms;
        char **allow, **block; /* command policy */
};

/* Child-side failure report: which step failed and errno. */
struct spawn_fail {
        int step; /* 0: setup (user, cwd, capabilities), 1: execve */
        int err;  /* 0: no failure */
};

/* Frees what r holds. */
void exec_req_done(struct exec_req *r);

/* Decodes an EXEC request and resolves what it runs as: the user (from the sandbox's passwd) and
 * the command's environment, then checks the command policy the host sent. Sends the ERROR reply
 * itself on failure (returning < 0); on success the caller owns *req and *ret_env. */
int exec_prepare(int fd, const struct ak_msg *msg, struct exec_req *req, struct agent_user *user,
                 char ***ret_env);

/* A command's empty stdin: /dev/null when it is the real one, else a pipe with no writer. */
int exec_open_devnull(void);

/* Starts the command (vfork semantics: the handler's pages are not copied). stdio[] are the fds
 * for 0/1/2, or pty_slave the terminal to open after setsid. Returns the pid, or -errno with
 * *fail saying which step failed. */
pid_t exec_spawn(const struct exec_req *req, const struct agent_user *u, char **env,
                 const int stdio[3], const char *pty_slave, struct spawn_fail *fail);

/* The message a failed exec_spawn() leaves for the command's stderr. */
void exec_spawn_error(char *out, size_t len, const struct exec_req *req,
                      const struct spawn_fail *f);

/* A wait status as an exit code (128 + signal for a signal, *ret_signal set then). */
int exec_exit_code(int status, int *ret_signal);
