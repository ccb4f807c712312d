// SPDX-License-Identifier: Apache-2.0
/* The permission profiles. Changing a value here changes every sandbox's security: test it. */
#include "profile.h"

#include <linux/capability.h>
#include <string.h>

#include "shared/macro.h"

#define CAP(c) (1ull << (c))

/* Docker's default set minus NET_RAW, MKNOD, SETFCAP and FSETID, for permissive sandboxes. No
 * profile has SETFCAP (writing security.capability: a file capability planted in a workspace
 * would work on the host) or FSETID (a write that keeps an existing setuid or setgid bit, and
 * setting setgid on a file of a foreign group). */
#define CAPS_PERMISSIVE                                                                            \
        (CAP(CAP_CHOWN) | CAP(CAP_DAC_OVERRIDE) | CAP(CAP_FOWNER) | CAP(CAP_KILL) |                \
         CAP(CAP_SETGID) | CAP(CAP_SETUID) | CAP(CAP_SETPCAP) | CAP(CAP_NET_BIND_SERVICE) |        \
         CAP(CAP_SYS_CHROOT) | CAP(CAP_AUDIT_WRITE))
/* Upstream's hardened set (`--cap-drop=ALL --cap-add=CHOWN,SETUID,SETGID`). */
#define CAPS_MODERATE (CAP(CAP_CHOWN) | CAP(CAP_SETUID) | CAP(CAP_SETGID))

static const struct profile profiles[] = {
    {
        .name = "permissive",
        .network = true,
        .mount_cwd = true,
        .mount_home = true,
        .pass_env = true,
        .read_only_root = false,
        .max_memory_mb = 0,
        .cpu_percent = 100,
        .seccomp = SECCOMP_PROFILE_DEFAULT,
        .pids_max = 4096,
        .caps = CAPS_PERMISSIVE,
    },
    {
        .name = "moderate",
        .network = true,
        .max_memory_mb = 512,
        .cpu_percent = 100,
        .seccomp = SECCOMP_PROFILE_MODERATE,
        .pids_max = 1024,
        .caps = CAPS_MODERATE,
    },
    {
        .name = "restrictive",
        .network = false,
        .read_only_root = true,
        .max_memory_mb = 256,
        .cpu_percent = 50,
        .seccomp = SECCOMP_PROFILE_RESTRICTIVE,
        .pids_max = 256,
        .caps = 0,
    },
};

const struct profile *profile_get(const char *name)
{
        if (!name)
                name = DEFAULT_PROFILE;
        for (size_t i = 0; i < ARRAY_SIZE(profiles); i++)
                if (streq(profiles[i].name, name))
                        return &profiles[i];
        /* upstream accepts "custom" and treats it as moderate */
        if (streq(name, "custom"))
                return &profiles[1];
        return NULL;
}

uint64_t profile_agent_caps(void)
{
        return CAPS_PERMISSIVE | CAP(CAP_SETPCAP) | CAP(CAP_DAC_READ_SEARCH);
}

uint64_t profile_default_memory(const struct profile *p)
{
        return p && p->max_memory_mb ? p->max_memory_mb : DEFAULT_MEMORY_MB;
}
