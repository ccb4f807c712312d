/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where agentkernel keeps things: the data directory (upstream's ~/.local/share/agentkernel),
 * the user directory (upstream's ~/.agentkernel: audit log, volumes) and its own helper
 * binaries. Both directories are private (core/private-dir.h): every entry point reaches them
 * through paths_data_dir_open() / paths_user_dir_open(), which create them 0700 and refuse them
 * when another user could change them. There is never a fixed place in a shared directory.
 */
#pragma once

#include <stdbool.h>

#include <stddef.h>

#include "shared/err.h"

/* Where the data directory is, touching nothing: $AGENTKERNEL_DATA_DIR (made absolute), else
 * $HOME/.local/share/agentkernel, else the same under the effective uid's home in /etc/passwd.
 * Without any of them: -ENOENT with a message naming HOME and AGENTKERNEL_DATA_DIR. *ret is
 * malloc'd. */
int paths_data_dir_path(char **ret, struct ak_err *err);

/* Where the user directory is, touching nothing: $AGENTKERNEL_DATA_DIR when set (one directory
 * for everything, as the tests and multi-instance setups want), else ~/.agentkernel (HOME, or
 * the passwd entry's home as above). *ret is malloc'd. */
int paths_user_dir_path(char **ret, struct ak_err *err);

/* The data directory, created (0700) if missing and checked as a private directory: its
 * ancestors root's or the caller's and not writable by others (unless sticky), itself the
 * caller's, no symlink, not writable by others, tightened to 0700. Every user of the data
 * directory gets it from here. *ret_path (may be NULL) gets its canonical path (malloc'd), to
 * be used from then on. Returns an O_DIRECTORY fd, or -errno with a message that says what is
 * wrong and how to fix it. */
int paths_data_dir_open(char **ret_path, struct ak_err *err);

/* The same for the user directory. */
int paths_user_dir_open(char **ret_path, struct ak_err *err);
/* paths_user_dir_open() for a writer (create); a reader gets -ENOENT, with nothing set in err,
 * where the user directory does not exist yet (nothing of it to read). */
int paths_user_dir_open_for(bool create, struct ak_err *err);

/* paths_data_dir_open() for callers that cannot report why it failed: the checked canonical
 * path (malloc'd), or NULL. */
char *paths_data_dir(void);

/* Finds a helper program: $env_var, next to this executable, or the libexec dir. */
int paths_helper(const char *name, const char *env_var, char *out, size_t len, struct ak_err *err);

/* Finds agentkernel-agent: $AGENTKERNEL_AGENT, next to this executable, or the libexec dir. */
int paths_agent_binary(char *out, size_t len, struct ak_err *err);
