/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Host side of the agent protocol: one request per connection. Everything the agent sends is
 * treated as untrusted input (a compromised sandbox controls its agent): sizes are bounded and
 * malformed frames end the request with -EBADMSG.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/cmd-policy.h"
#include "shared/err.h"

struct agent_exec_opts {
        char *const *argv; /* exact argv, never joined into a shell string */
        char *const *env;  /* KEY=VALUE overrides, may be NULL */
        const char *cwd;   /* NULL: the sandbox's default */
        const char *user;  /* NULL: root */
        bool tty;
        bool detach;
        unsigned rows, cols;
        uint64_t timeout_ms;             /* 0: none; the agent kills the command's process group */
        const struct cmd_policy *policy; /* checked by the agent too; NULL: none */
};

/* Where output goes and where input and signals come from. */
struct agent_io {
        int stdin_fd;  /* forwarded until EOF; -1: the command gets /dev/null */
        int signal_fd; /* signalfd: INT/TERM/HUP/QUIT are forwarded, WINCH resizes; -1: none */
        int tty_fd;    /* terminal to read the window size from on WINCH; -1: none */
        /* Called for each chunk; stream is 1 (stdout) or 2 (stderr). Non-zero return aborts. */
        int (*on_output)(void *ctx, int stream, const void *data, size_t len);
        void *ctx;
        /* Optional: called once, when the request has been sent in full (the command is
         * starting): work that need not wait for the result overlaps the command. */
        void (*on_sent)(void *ctx);
        void *sent_ctx;
};

struct agent_exit {
        int code;   /* exit status, or 128+signal */
        int signal; /* terminating signal, 0 if it exited */
        bool timed_out;
};

/* Runs a command and streams it. Returns 0 when the command ran (whatever its exit code). */
int agent_exec(int fd, const struct agent_exec_opts *o, const struct agent_io *io,
               struct agent_exit *ret, struct ak_err *err);

/* Runs a command and collects its output (each stream at most max bytes; beyond that the
 * command keeps running but the excess is dropped and *truncated set). */
int agent_exec_capture(int fd, const struct agent_exec_opts *o, size_t max, struct buf *out,
                       struct buf *errout, bool *truncated, struct agent_exit *ret,
                       struct ak_err *err);

struct agent_detached {
        char id[9];
        int64_t pid;
        int status; /* enum ak_detach_status */
        bool has_code;
        int64_t code;
        int64_t started_ns;
        char **argv; /* owned */
};
/* Frees what d holds (d itself is the caller's) and zeroes it. */
void agent_detached_done(struct agent_detached *d);
DEFINE_CLEANUP_DONE(struct agent_detached, agent_detached_done)
#define cleanup_agent_detached CLEANUP_FUNC(agent_detached_done)

int agent_detach(int fd, const struct agent_exec_opts *o, struct agent_detached *ret,
                 struct ak_err *err);
/* Lists detached commands; *ret is a malloc'd array of n entries (clear each, free array). */
int agent_detach_list(int fd, struct agent_detached **ret, size_t *ret_n, struct ak_err *err);
int agent_detach_get(int fd, const char *id, struct agent_detached *ret, struct ak_err *err);
/* sig 0: SIGTERM then SIGKILL after a grace period. */
int agent_detach_kill(int fd, const char *id, int sig, struct agent_detached *ret,
                      struct ak_err *err);
/* Streams a log to sink(ctx, data, len). */
int agent_detach_logs(int fd, const char *id, bool stderr_stream,
                      int (*sink)(void *ctx, const void *data, size_t len), void *ctx,
                      struct ak_err *err);

struct agent_file_info {
        uint64_t size;
        uint32_t mode;
};

/* Reads a file into sink (at most limit bytes; 0 = the protocol maximum). */
int agent_file_read(int fd, const char *path, uint64_t limit,
                    int (*sink)(void *ctx, const void *data, size_t len), void *ctx,
                    struct agent_file_info *ret_info, struct ak_err *err);
/* Writes a file from src_fd (read to EOF) or, when src_fd < 0, from data/len. */
int agent_file_write(int fd, const char *path, uint32_t mode, bool mode_given, bool parents,
                     int src_fd, const void *data, size_t len, uint64_t *ret_size,
                     struct ak_err *err);
/* Writes data to path (mode, parents created 0755) where no component of the path is a symlink:
 * one anywhere fails the write (-ENOTDIR/-ELOOP) rather than lead it elsewhere. For the host's
 * own files in places the sandbox may have prepared. */
int agent_file_write_nofollow(int fd, const char *path, uint32_t mode, const void *data, size_t len,
                              struct ak_err *err);
int agent_file_remove(int fd, const char *path, bool recursive, struct ak_err *err);
int agent_mkdir(int fd, const char *path, uint32_t mode, bool parents, struct ak_err *err);

struct agent_dirent {
        char *name;
        int type; /* enum ak_file_type */
        uint64_t size;
        uint32_t mode;
        int64_t mtime_ns;
};
int agent_file_list(int fd, const char *path, struct agent_dirent **ret, size_t *ret_n,
                    struct ak_err *err);
int agent_file_stat(int fd, const char *path, struct agent_dirent *ret, struct ak_err *err);
void agent_dirents_free(struct agent_dirent *d, size_t n);

/* Round trip to check the agent answers; returns its pid (inside the sandbox). */
int agent_hello(int fd, int64_t *ret_pid, struct ak_err *err);

#define AGENT_IDENTIFY_TIMEOUT_S 10

/* HELLO, then checks that the agent serves the sandbox with this uuid (the id it was started
 * with, told in its reply). -EPERM when it serves another, -EPROTO when it does not say (an older
 * agent); a silent agent fails after AGENT_IDENTIFY_TIMEOUT_S. The connection stays usable. */
int agent_identify(int fd, const char *uuid, struct ak_err *err);
