/* SPDX-License-Identifier: Apache-2.0 */
/* Build-time only: compiles a profile's rules into a BPF program with libseccomp. */
#pragma once

#include <stdbool.h>

#include "seccomp.h"

/* Builds the BPF program of profile p, with the host-files rules when host_files (see
 * seccomp.h); ret->filter is malloc'd (free with free()). */
int seccomp_build(enum seccomp_profile p, bool host_files, struct sock_fprog *ret,
                  struct ak_err *err);

/* The same profile as OCI runtime-spec seccomp JSON (what Docker and Podman take in
 * SecurityOpt "seccomp=..."): malloc'd. */
int seccomp_oci_json(enum seccomp_profile p, bool host_files, char **ret);
