/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agent as a virtual machine's init (agent-guest.c): the guest's boot before the agent
 * serves, and the multiplexer child that joins the host's virtio-serial port to the agent.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "shared/macro.h"

/* Set by agent_guest_boot(): this agent is a guest's init. */
extern bool agent_guest;

/* Boots the guest (see agent-guest.c) and replaces *argv with the agent's own options from the
 * initramfs's /ak/config (the sockets it made come first). Returns only on success: a failure
 * powers the machine off with its reason on the console. */
int agent_guest_boot(int *argc, char ***argv);
/* Forks the multiplexer (after PID 1's signal setup: the child restores an empty mask). */
void agent_guest_start_mux(void);
/* PID 1 reaped pid: when it was the multiplexer, starts another and returns true. */
bool agent_guest_reaped(pid_t pid);
/* In a command's child (a vfork child: no allocation), before it closes the agent's fds: joins
 * the commands' cgroup (pids_max), if there is one. Returns 0 or -errno. */
int agent_guest_command_enter(void);
/* The commands' cgroup.procs, which handlers keep open (agent_guest_command_enter), or -1. */
int agent_guest_cgroup_fd(void);
/* In a command's child, last before execve: no_new_privs and the profile's seccomp filter.
 * Returns 0 or -errno. */
int agent_guest_command_confine(void);

/* Answers STATS (docs/protocol.md) on fd: OK with PIDS (the guest's user-space processes, the
 * agent and its handlers included: every /proc entry but the kernel's threads), MEM_USED and
 * MEM_TOTAL (the guest's /proc/meminfo: MemTotal - MemAvailable, MemTotal). Returns what
 * the write returned. */
int agent_guest_serve_stats(int fd);
_noreturn_ void agent_guest_poweroff(void);
_noreturn_ void agent_guest_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
