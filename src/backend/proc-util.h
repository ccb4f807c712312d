/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Process identity for backends that record a host pid. A recorded pid is input read back from
 * disk: it is trusted only together with what makes it that sandbox's process (struct
 * proc_ident), so neither a recycled pid nor a forged record ever gets a host process signalled.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define PROC_BOOT_ID_LEN 36

/* What must be true of a recorded process. Only pid and start_time are required. */
struct proc_ident {
        pid_t pid;
        uint64_t start_time; /* field 22 of /proc/<pid>/stat: a recycled pid has another */
        /* the boot it was recorded in (/proc/sys/kernel/random/boot_id): start times repeat
         * across reboots. NULL or "": not recorded (older runtime files). */
        const char *boot_id;
        /* a cgroup directory whose cgroup.procs must list pid (the sandbox's own), or NULL */
        const char *cgroup_dir;
        /* PID 1 of a pid namespace of its own, in a user namespace that is not ours and that
         * the caller's euid created (what a sandbox's init is; another user cannot make one) */
        bool ns_init;
        /* the sandbox's uuid, which its agent was started with (--uuid): its command line must
         * say so. Where there are no cgroups this is what ties a pid namespace's init to this
         * sandbox and not to another of the caller's (or to the caller's own containers).
         * NULL: not checked. */
        const char *uuid;
        /* the option that precedes uuid (NULL: "--uuid"; Firecracker's is "--id") */
        const char *uuid_opt;
};

int proc_start_time(pid_t pid, uint64_t *ret);
/* This boot's id (36 characters and a NUL). -errno when /proc does not say. */
int proc_boot_id(char ret[PROC_BOOT_ID_LEN + 1]);
/* Whether the process is alive and is everything id says. */
bool proc_verify(const struct proc_ident *id);
/* Waits for the process to exit (pidfd when >= 0, else polling). true when it exited. */
bool proc_wait_exit(int pidfd, pid_t pid, uint64_t start_time, int timeout_ms);
/* SIGTERM, wait, SIGKILL, wait: stops the process only if proc_verify() holds, re-checked with a
 * pidfd pinning it, so the signals reach exactly the process that was checked. */
void proc_terminate(const struct proc_ident *id, int grace_ms);

/* An executable: the path in the first of envs (secure_getenv names, NULL-terminated) that is
 * set, else name in $PATH (or the usual directories). true when out is executable. */
bool proc_find_program(const char *const *envs, const char *name, char *out, size_t len);

/* Forks a detached worker: a grandchild in a session of its own, with /dev/null as its stdio and
 * no other descriptor but *ready_fd. Returns 0 in the worker, which closes *ready_fd once the
 * caller may go on (it holds its lock, or gave up); 1 in the caller, after that (at most 5 s);
 * -errno when it could not fork. */
int proc_fork_worker(int *ready_fd);

/* Starts a detached grandchild (a session of its own) that runs child(arg) and must not return
 * (it execs or _exits); *ret_pid is its pid. */
int proc_spawn_detached(void (*child)(void *arg), void *arg, pid_t *ret_pid);
