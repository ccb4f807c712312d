/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Per-sandbox cgroups on cgroup v2 (unified) and v1 (one hierarchy per controller, including the
 * v1/v2 hybrid layout). A sandbox's cgroup is `agentkernel/<id>` in every hierarchy used; its
 * path depends only on the id, so leftovers of a crashed starter can always be found and
 * removed. Limits: memory (no swap), pids, CPU bandwidth.
 */
#pragma once

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "shared/err.h"

#define CGROUP_ROOT "/sys/fs/cgroup"
#define CGROUP_PARENT "agentkernel"
#define CGROUP_MAX_HIER 3

enum cgroup_mode {
        CGROUP_NONE, /* no usable cgroups: limits cannot be enforced */
        CGROUP_V1,
        CGROUP_V2,
};

struct cgroup_limits {
        uint64_t memory_bytes; /* 0: unlimited */
        uint64_t pids_max;     /* 0: unlimited */
        uint64_t cpu_millis;   /* CPU bandwidth in thousandths of a CPU; 0: unlimited */
};

/* A sandbox's cgroup directory, its longest knob ("/memory.memsw.limit_in_bytes") included, must
 * fit: sized to keep these structures small (they live on stacks on the start path). */
#define CGROUP_PATH_MAX 1024

struct cgroup_set {
        enum cgroup_mode mode;
        size_t n;
        char dirs[CGROUP_MAX_HIER][CGROUP_PATH_MAX]; /* v2: one directory; v1: memory, pids, cpu */
};

struct cgroup_stats {
        uint64_t memory_bytes;
        uint64_t pids;
        uint64_t cpu_usec; /* 0 where the hierarchy does not account CPU */
};

/* How cgroups can be used by this process (root: v1 or v2; unprivileged: v2 only under
 * AGENTKERNEL_CGROUP_PARENT, a delegated subtree). Fills why with a reason for CGROUP_NONE. */
enum cgroup_mode cgroup_detect(char *why, size_t why_len);

/* Computes the cgroup directories of sandbox `id` without touching anything. */
int cgroup_paths(const char *id, struct cgroup_set *ret);

/* Whether cg, read back from disk, names only the cgroups of sandbox `id`: the mode this host
 * has now (as detected within the last second), and each directory exactly
 * <hierarchy>/agentkernel/<id> (or, on v2, the delegated AGENTKERNEL_CGROUP_PARENT/<id>) for its
 * hierarchy. Anything else (another cgroup, "..", a path of another hierarchy) must not be touched:
 * destroying a cgroup kills what is in it. */
bool cgroup_confined(const char *id, const struct cgroup_set *cg);

/* Creates the cgroups of `id` with limits. On failure nothing is left behind. */
int cgroup_create(const char *id, const struct cgroup_limits *lim, struct cgroup_set *ret,
                  struct ak_err *err);

/* Applies new limits to existing cgroups. */
int cgroup_set_limits(const struct cgroup_set *cg, const struct cgroup_limits *lim,
                      struct ak_err *err);

/* Fills procs[] with the cgroup.procs files to join (NULL-terminated; room for 4). */
void cgroup_procs_files(const struct cgroup_set *cg, char procs[][CGROUP_PATH_MAX],
                        const char **ret, size_t max);

/*
 * Joining a cgroup is slow after a quiet while: the kernel takes its cgroup_threadgroup_rwsem
 * for writing, whose first writer waits for an RCU grace period (4-15 ms on a small VM), unless
 * the hierarchy was mounted with favordynmods; writers within a grace period of the last one
 * pass at once. cgroup_warm_start() has a thread of ours move this process into the cgroup it
 * is in already (read from /proc/self/cgroup and checked to list us: a no-op migration) so that
 * the grace period runs while the caller prepares the sandbox, and the sandbox's own join
 * (runtime_spawn) finds it passed. Best effort: nothing is reported, nothing else changes.
 * cgroup_warm_finish() waits for the thread, which has one system call left at most.
 */
struct cgroup_warm {
        pthread_t thread;
        bool started;
};
void cgroup_warm_start(enum cgroup_mode mode, struct cgroup_warm *w);
void cgroup_warm_finish(struct cgroup_warm *w);

/* Whether some cgroup hierarchy here is mounted with favordynmods (/proc/mounts): then joins
 * wait for no grace period at all (the lock is one for every hierarchy). A host's choice; the
 * trade is slightly costlier forks and exits, system-wide. */
bool cgroup_joins_favored(void);

/* The data of a remount that adds favordynmods to a cgroup2 mount whose /proc/mounts options are
 * opts, keeping its other superblock options (a cgroup2 remount resets every flag it is not
 * given: nsdelegate, memory_recursiveprot... would be lost). 0, or -ENAMETOOLONG when out (len)
 * is too small. Pure: for setup, and its unit test. */
int cgroup_favor_options(const char *opts, char *out, size_t len);
/* Remounts the cgroup2 hierarchy (CGROUP_ROOT, or its /unified on a hybrid host) with
 * favordynmods, every other option kept, and checks /proc/mounts says so afterwards. Needs
 * CAP_SYS_ADMIN in the initial namespaces; host-wide, and on recent kernels until reboot. */
int cgroup_favor_joins(struct ak_err *err);

/* Kills every process in the cgroups and removes them; idempotent (missing is fine). */
int cgroup_destroy(const struct cgroup_set *cg, struct ak_err *err);

/* True when any process is still in the cgroups. */
bool cgroup_populated(const struct cgroup_set *cg);

int cgroup_stats(const struct cgroup_set *cg, struct cgroup_stats *ret);

/* Freezes (pause) or thaws (resume) every process of the cgroups, and waits until the kernel
 * says they are (FREEZE_TIMEOUT_MS; a freeze that does not complete is undone). v2: the
 * cgroup's cgroup.freeze; v1: a cgroup of the freezer hierarchy, made at the first pause
 * (<freezer>/agentkernel/<id>) and removed by cgroup_destroy, into which the sandbox's
 * processes are moved. Thawing what was never frozen is not an error. -ENOTSUP (with a message)
 * without a freezer. */
int cgroup_freeze(const struct cgroup_set *cg, bool freeze, struct ak_err *err);
/* Whether the cgroups are frozen (or being frozen). */
bool cgroup_frozen(const struct cgroup_set *cg);
