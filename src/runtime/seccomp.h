/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Seccomp filters for sandboxes, built with libseccomp in the parent and loaded by the runtime
 * child as raw BPF (so the child never allocates). Profiles follow upstream's names: `default`
 * (deny list), `moderate` (deny list plus tracing and io_uring), `restrictive` (allow list).
 * Every profile also refuses namespace creation, the new mount API, TIOCSTI, and any syscall
 * from a foreign architecture (i386, x32), which kills the process.
 */
#pragma once

#include <linux/filter.h>

#include "shared/err.h"

enum seccomp_profile {
        SECCOMP_PROFILE_DEFAULT,
        SECCOMP_PROFILE_MODERATE,
        SECCOMP_PROFILE_RESTRICTIVE,
        SECCOMP_PROFILE_MAX,
};

/* Profile by name ("default", "moderate", "restrictive"); -EINVAL for others. */
int seccomp_profile_from_name(const char *name, enum seccomp_profile *ret);
const char *seccomp_profile_name(enum seccomp_profile p);

/* Builds the BPF program; ret->filter is malloc'd (free with seccomp_prog_free). */
int seccomp_build(enum seccomp_profile p, struct sock_fprog *ret, struct ak_err *err);
void seccomp_prog_free(struct sock_fprog *p);
