/* SPDX-License-Identifier: Apache-2.0 */
/* Upstream's JSON shapes, shared by the CLI, the HTTP API and MCP. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "agent/client.h"
#include "core/state.h"

/* SandboxInfo: name, uuid, status, backend, image, vcpus, memory_mb, created_at, and what is set
 * of profile, ports, labels, description, TTL, activity, archive and lifecycle. */
json_t *sandbox_info_json(const struct sandbox_state *st, bool running);
/* DetachedCommand: {id, sandbox, command, pid, status, exit_code, started_at}. */
json_t *detached_json(const char *sandbox, const struct agent_detached *d);
