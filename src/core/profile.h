/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Permission profiles (upstream's permissive / moderate / restrictive, reference/upstream.md
 * §6.1) and what they mean for a sandbox. Upstream's defect Q6 is fixed: a profile's memory cap
 * is the default memory of a new sandbox, never a silent replacement of the memory a sandbox was
 * created with.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "runtime/seccomp.h"

#define DEFAULT_PROFILE "moderate"
#define DEFAULT_MEMORY_MB 512
#define DEFAULT_VCPUS 1

struct profile {
        const char *name;
        bool network;    /* outbound network by default */
        bool mount_cwd;  /* current directory read-write at /workspace */
        bool mount_home; /* $HOME read-only at /home/user (credential dirs masked) */
        bool pass_env;   /* PATH HOME USER LANG LC_ALL TERM from the caller */
        bool read_only_root;
        uint64_t max_memory_mb; /* default memory for new sandboxes; 0: DEFAULT_MEMORY_MB */
        uint32_t cpu_percent;   /* share of the sandbox's vCPUs it may use */
        enum seccomp_profile seccomp;
        uint64_t pids_max; /* processes and threads in the sandbox */
        uint64_t caps;     /* capability bounding set of commands */
};

/* The profile with that name, or NULL. */
const struct profile *profile_get(const char *name);

/* Capabilities the agent itself keeps (it hands commands a subset). */
uint64_t profile_agent_caps(void);

/* Memory for a new sandbox when the user named none. */
uint64_t profile_default_memory(const struct profile *p);
