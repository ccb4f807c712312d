/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What microvm.c (the backend: its start, its ops) and microvm-pool.c (the warm pool of booted
 * machines behind `run --fast`) share. Not for other backends.
 */
#pragma once

#include <limits.h>
#include <stdbool.h>

#include "core/backend.h"
#include "shared/err.h"

/* What an ephemeral run keeps until backend_finish(): the machine's run directory, the uuid it
 * was booted with (a pooled machine's own, not the run's), and the run's lock. */
struct vm_session {
        char run_dir[PATH_MAX];
        char uuid[37];
        int lock_fd;
        char lock_path[PATH_MAX];
};

/* The driver of new machines ($AGENTKERNEL_VM_DRIVER, else firecracker when installed, else
 * qemu). */
const struct vm_driver *vm_driver_pick(void);
/* Boots a machine for cfg, as backend start() (no pool). */
int vm_boot(const struct backend_config *cfg, struct backend_session *ret_session,
            struct ak_err *err);
/* Ends a machine's recorded processes (checked) and what a killed starter left of it. */
void vm_kill(const char *run_dir, const char *uuid);
/* Whether a machine's hypervisor and relay both run (as recorded, checked). */
bool vm_running(const char *run_dir, const char *uuid);
/* Whether a machine was paused by the host (its marker names its current hypervisor, checked). */
bool vm_paused(const char *run_dir, const char *uuid);
/* An ephemeral machine's run directory in ephemeral_dir (vm-<the uuid's last 12 digits>). */
void vm_ephemeral_run_dir(const char *ephemeral_dir, const char *uuid, char *out, size_t len);
/* Makes and holds ephemeral_dir/vm-<uuid>.lock (while held, the machine is in use; an unheld
 * one names a machine microvm_sweep() ends). */
int vm_run_lock(const char *ephemeral_dir, const char *uuid, int *ret_fd, char *path, size_t len,
                struct ak_err *err);

/* --- microvm-pool.c --- */

#define VM_POOL_KEY_LEN 64 /* SHA-256, hex */

/* Whether cfg's run may take a pooled machine (an ephemeral run asked with --fast, no network). */
bool vm_pool_usable(const struct backend_config *cfg);
/* The pool of cfg's configuration: a hash of everything a machine is booted with, so a run only
 * ever gets a machine it would have booted itself. */
int vm_pool_key(const struct backend_config *cfg, char key[VM_POOL_KEY_LEN + 1]);
/* Takes a ready machine of the pool: 0 with ret_session as vm_boot() fills it, or -ENOENT. */
int vm_pool_claim(const struct backend_config *cfg, const char *key,
                  struct backend_session *ret_session);
/* Tops the pool up in a detached process (one per pool at a time). */
void vm_pool_refill(const struct backend_config *cfg, const char *key);
/* backend_ops.pool_clear: ends every idle pooled machine. */
int vm_pool_clear(const char *ephemeral_dir, unsigned *ret_removed, struct ak_err *err);
