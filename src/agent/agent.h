/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of agentkernel-agent, the program that is PID 1 of every sandbox. It runs commands,
 * moves files and keeps detached commands for the host, over the framed protocol of proto.h.
 * It runs with the sandbox's privileges and must trust nothing it reads from inside the sandbox
 * (files, /etc/passwd, command output); it trusts the host end of its channel.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"

#define AGENT_DETACH_MAX 256               /* detached records kept */
#define AGENT_DETACH_LOG_MAX (64ull << 20) /* bytes kept per detached stream */
#define AGENT_FILE_MAX (64ull << 30)       /* largest file moved in one transfer */
#define AGENT_LIST_MAX 100000              /* entries returned by one FILE_LIST */
#define AGENT_DRAIN_GRACE_MS 100           /* output still read after the command exits */
#define AGENT_STOP_GRACE_MS 2000           /* SIGTERM to SIGKILL when stopping */
#define AGENT_FIRST_FRAME_TIMEOUT_S 30     /* a connection must send its request by then */

struct agent_config {
        uint64_t child_caps; /* capability bounding set of commands */
        int state_fd;        /* private directory for detached records, or -1 */
        const char *workdir; /* default working directory of commands */
        const char *user;    /* default user of commands (an image's User), or NULL: root */
        char **base_env;     /* environment every command starts from */
        bool is_init;        /* PID 1 of its own pid namespace */
        /* commands get no openat2 (--host-files: the sandbox writes a host directory, see
         * agent_child_setup) */
        bool host_files;
};

extern struct agent_config agent_cfg;

/* A resolved user to run a command as. */
struct agent_user {
        uid_t uid;
        gid_t gid;
        char name[64];
        char home[256];
        char shell[256];
};

/* Resolves "name", "uid" or "uid:gid" against the sandbox's /etc/passwd (NULL means root). */
int agent_user_lookup(const char *spec, struct agent_user *ret);

/* Builds the environment of a command: base env, then overrides (K=V entries), then defaults
 * derived from the user (HOME, USER, LOGNAME) and PATH/TERM when missing. Caller frees. */
char **agent_build_env(char *const *overrides, const struct agent_user *u, bool tty);

/* In a spawned child: switch to the user, chdir, reset signals, and in a sandbox that writes a
 * host directory add the commands' seccomp filter (openat2 refused: its mode cannot be checked).
 * In a VM's guest: no_new_privs and the profile's filter last (agent-guest.h; the child joined
 * the commands' cgroup before it closed the agent's fds). Returns 0 or -errno (the caller
 * reports and _exits). */
int agent_child_setup(const struct agent_user *u, const char *cwd);

/* Connection handlers; each runs in a forked handler process and returns when done. */
int agent_serve_exec(int fd, const struct ak_msg *req);
int agent_serve_detach(int fd, const struct ak_msg *req);
int agent_serve_detach_query(int fd, const struct ak_msg *req);
int agent_serve_file(int fd, const struct ak_msg *req);

/* Sends an ERROR frame (errno + message). */
int agent_send_error(int fd, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* What a handler tells PID 1 through the note pipe: one record per write (less than PIPE_BUF,
 * so never interleaved with another handler's). */
struct agent_handler_note {
        int32_t pid;  /* the handler */
        int32_t busy; /* 1: it has work; 0: it is free again */
};

/* In a handler process, once after its fork: its notes go to note_fd (the note pipe's write
 * end, which PID 1 owns). Until then agent_handler_busy() is a no-op (PID 1 itself). */
void agent_handler_init(int note_fd);

/* In a handler, around each connection: begin forgets the previous connection's note; end tells
 * PID 1 the handler is free again, if this connection told it that it was busy. */
void agent_handler_conn_begin(void);
void agent_handler_conn_end(void);

/* In a handler: tells PID 1, once per connection, that this handler has work, so that PID 1 keeps
 * another one free. Called once the work has started (an exec's command runs): PID 1's wake-up
 * then does not delay it. A no-op outside handlers. */
void agent_handler_busy(void);

/* Appends a line to the agent's private log (bounded; best effort). */
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
