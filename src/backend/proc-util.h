/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Process identity for backends that record a host pid: a pid is trusted only together with its
 * start time (field 22 of /proc/<pid>/stat), so a recycled pid is never signalled.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

int proc_start_time(pid_t pid, uint64_t *ret);
bool proc_same(pid_t pid, uint64_t start_time);
/* Waits for the process to exit (pidfd when >= 0, else polling). true when it exited. */
bool proc_wait_exit(int pidfd, pid_t pid, uint64_t start_time, int timeout_ms);
/* SIGTERM, wait, SIGKILL, wait: stops a verified process. */
void proc_terminate(pid_t pid, uint64_t start_time, int grace_ms);
