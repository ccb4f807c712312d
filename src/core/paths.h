/* SPDX-License-Identifier: Apache-2.0 */
/* Where agentkernel keeps things: the data directory (upstream's) and its own helper binaries. */
#pragma once

#include <stddef.h>

#include "shared/err.h"

/* AGENTKERNEL_DATA_DIR, else $HOME/.local/share/agentkernel, else /tmp/agentkernel (as upstream
 * when HOME is unset). Returns a malloc'd path. */
char *paths_data_dir(void);

/* Upstream's ~/.agentkernel (audit log, volumes): AGENTKERNEL_DATA_DIR when set (one directory
 * for everything, as the tests and multi-instance setups want), else $HOME/.agentkernel, else
 * /tmp/agentkernel. malloc'd. */
char *paths_user_dir(void);

/* Finds a helper program: $env_var, next to this executable, or the libexec dir. */
int paths_helper(const char *name, const char *env_var, char *out, size_t len, struct ak_err *err);

/* Finds agentkernel-agent: $AGENTKERNEL_AGENT, next to this executable, or the libexec dir. */
int paths_agent_binary(char *out, size_t len, struct ak_err *err);
