/* SPDX-License-Identifier: Apache-2.0 */
/* The MCP server (mcp.c): JSON-RPC 2.0 over stdin/stdout, one table of sandbox_* tools. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "core/manager.h"
#include "server/api.h"

/* Serves MCP on stdin/stdout until the end of input. */
int mcp_serve(struct manager *m);

/* The reply to one JSON-RPC message (a new reference), or NULL for a notification. */
json_t *mcp_handle(struct api_ctx *c, json_t *msg);
