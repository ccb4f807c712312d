// SPDX-License-Identifier: Apache-2.0
/* `mcp-server`: MCP over stdio (see src/server/mcp.c). */
#include <signal.h>

#include "cli.h"
#include "cmd.h"
#include "server/mcp.h"

static int cmd_mcp_server(int argc, char **argv)
{
        struct cli_args a;
        const struct cli_spec spec = {0};
        struct manager *m;
        int r = cli_parse_open(argc, argv, &spec, &a, &m);

        if (r)
                return CLI_PARSE_EXIT(r);
        manager_set_notify(m, NULL, NULL); /* stdout is the protocol's */
        r = mcp_serve(m);
        manager_free(m);
        return r < 0 ? EXIT_ERROR : EXIT_OK;
}

const struct verb verb_mcp_server = {
    "mcp-server",
    cmd_mcp_server,
    "",
    "Serve MCP (Model Context Protocol) on stdin/stdout",
    "The sandbox_* tools for MCP clients (Claude Code, Codex, ...): register the command\n"
    "'agentkernel mcp-server' as a stdio server.\n",
    VERB_TOP_ONLY,
    NULL};
