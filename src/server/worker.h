/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Work that starts sandboxes runs in a short-lived forked worker, never in the long-running
 * server itself: a sandbox's processes (its PID 1, slirp4netns) are children of whoever started
 * them, and in a server they would pile up as zombies or have their exit statuses stolen by a
 * reaper. A worker's children are reparented to init when it exits. A worker also dies with
 * the server (PR_SET_PDEATHSIG), and an ephemeral sandbox dies with its worker.
 */
#pragma once

#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "core/manager.h"
#include "shared/err.h"

/* The soft RLIMIT_NOFILE a worker (and so the sandboxes it starts) gets back, when the server
 * raised its own to hold many connections. */
void worker_set_child_nofile(rlim_t soft);

/* Runs fn in a worker and waits; fn's return value and error come back. */
int worker_call(int (*fn)(struct manager *m, void *ctx, struct ak_err *err), void *ctx,
                struct ak_err *err);

/* A command in a throw-away sandbox, run by a worker that streams its output back. */
struct worker_run {
        pid_t pid;
        int fd;
};

enum worker_event_type {
        WORKER_STDOUT = 1,
        WORKER_STDERR = 2,
        WORKER_EXIT = 3,  /* code, timed_out */
        WORKER_ERROR = 4, /* code (errno), msg */
};

#define WORKER_CHUNK_MAX (64u << 10)

struct worker_event {
        enum worker_event_type type;
        char data[WORKER_CHUNK_MAX + 1]; /* output, or the error message (NUL-terminated) */
        size_t len;
        int code;
        int signal;
        int timed_out;
};

int worker_run_start(const struct create_opts *o, const struct agent_exec_opts *x,
                     struct worker_run *ret, struct ak_err *err);
/* Waits up to timeout_ms (-1: forever) for the next event. 1: an event; 0: timeout; -EPIPE:
 * the worker ended without a final event; other -errno on error. */
int worker_run_next(struct worker_run *w, int timeout_ms, struct worker_event *ev);
/* Ends the run: kills the worker when it is still going (the client went away), reaps it. */
void worker_run_end(struct worker_run *w);
