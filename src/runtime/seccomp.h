/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Seccomp filters for sandboxes. Profiles follow upstream's names: `default` (deny list),
 * `moderate` (deny list plus tracing and io_uring), `restrictive` (allow list), `ai-agent` (the
 * compatibility modes' allow list: restrictive's and what agent runtimes use). Every profile
 * also refuses namespace creation, the new mount API, TIOCSTI, and any syscall from a foreign
 * architecture (i386, x32), which kills the process. The rules live in seccomp-rules.c; they are
 * compiled into BPF at build time (seccomp-gen), so starting a sandbox compiles nothing.
 */
#pragma once

#include <linux/filter.h>
#include <stdbool.h>

#include "shared/err.h"

enum seccomp_profile {
        SECCOMP_PROFILE_DEFAULT,
        SECCOMP_PROFILE_MODERATE,
        SECCOMP_PROFILE_RESTRICTIVE,
        SECCOMP_PROFILE_AI_AGENT, /* restrictive's allow-list and what coding agents' runtimes use
                                   */
        SECCOMP_PROFILE_MAX,
};

/* Profile by name ("default", "moderate", "restrictive", "ai-agent"); -EINVAL for others. */
int seccomp_profile_from_name(const char *name, enum seccomp_profile *ret);
const char *seccomp_profile_name(enum seccomp_profile p);

/* Every profile comes in two variants. host_files: the sandbox writes a host directory (a
 * workspace or a volume), and no file it creates or changes may get the setuid or setgid bit
 * (chmod, fchmod, fchmodat, fchmodat2, creat, open/openat with O_CREAT or O_TMPFILE, mknod: EPERM),
 * since such a file would outlive the sandbox on the host. Without host directories those calls
 * are as the profile says: everything the sandbox writes stays on its own disk, where the bits
 * are inert (nosuid, no_new_privs), and package managers can install setuid programs. */

/* The compiled program of a profile (static storage; nothing to free). */
int seccomp_program(enum seccomp_profile p, bool host_files, struct sock_fprog *ret);

/* The profile as OCI seccomp JSON for container engines (static storage), or NULL. */
const char *seccomp_engine_json(enum seccomp_profile p, bool host_files);

/* Which libseccomp compiled the programs, for `doctor`. */
extern const char seccomp_compiler[];
