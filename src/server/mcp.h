/* SPDX-License-Identifier: Apache-2.0 */
/* The MCP server on stdin/stdout; returns at end of input. */
#pragma once

#include "core/manager.h"

int mcp_serve(struct manager *m);
