/* SPDX-License-Identifier: Apache-2.0 */
/* Build-time only: compiles a profile's rules into a BPF program with libseccomp. */
#pragma once

#include "seccomp.h"

/* Builds the BPF program; ret->filter is malloc'd (free with free()). */
int seccomp_build(enum seccomp_profile p, struct sock_fprog *ret, struct ak_err *err);
