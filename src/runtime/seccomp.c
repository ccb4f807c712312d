// SPDX-License-Identifier: Apache-2.0
/* Seccomp profiles at run time: names, and the BPF programs compiled at build time. */
#include "seccomp.h"

#include <errno.h>
#include <string.h>

#include "shared/macro.h"

static const char *const names[SECCOMP_PROFILE_MAX] = {
    [SECCOMP_PROFILE_DEFAULT] = "default",
    [SECCOMP_PROFILE_MODERATE] = "moderate",
    [SECCOMP_PROFILE_RESTRICTIVE] = "restrictive",
    [SECCOMP_PROFILE_AI_AGENT] = "ai-agent",
};

int seccomp_profile_from_name(const char *name, enum seccomp_profile *ret)
{
        for (int i = 0; i < SECCOMP_PROFILE_MAX; i++)
                if (streq(name, names[i])) {
                        *ret = (enum seccomp_profile)i;
                        return 0;
                }
        return -EINVAL;
}

const char *seccomp_profile_name(enum seccomp_profile p)
{
        return p < SECCOMP_PROFILE_MAX ? names[p] : "unknown";
}

#ifndef SECCOMP_GEN /* seccomp-gen itself is built before the programs exist */
#include "seccomp-bpf.h"

int seccomp_program(enum seccomp_profile p, bool host_files, struct sock_fprog *ret)
{
        if (p >= SECCOMP_PROFILE_MAX)
                return -EINVAL;
        ret->filter = (struct sock_filter *)seccomp_bpf[p][host_files];
        ret->len = seccomp_bpf_len[p][host_files];
        return 0;
}

const char *seccomp_engine_json(enum seccomp_profile p, bool host_files)
{
        return p < SECCOMP_PROFILE_MAX ? seccomp_oci[p][host_files] : NULL;
}
#endif
