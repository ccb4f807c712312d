// SPDX-License-Identifier: Apache-2.0
/* `serve`: the HTTP API, served by the agentkernel-serve helper (see src/server/http.c). */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "core/paths.h"

static int cmd_serve(int argc, char **argv)
{
        struct ak_err err = {0};
        char helper[PATH_MAX];

        if (paths_helper("agentkernel-serve", "AGENTKERNEL_SERVE", helper, sizeof(helper), &err) <
            0)
                return cli_fail(&err, EXIT_ERROR);
        argv[0] = helper;
        (void)argc;
        execv(helper, argv);
        cli_error("cannot run %s: %s", helper, strerror(errno));
        return EXIT_ERROR;
}

/* Its options are the helper's (src/server/serve.c): `serve --help` is the helper's help. */
const struct verb verb_serve = {
    "serve",
    cmd_serve,
    "[-H ADDR] [-p PORT] [--api-key KEY]... [--socket PATH]",
    "Serve the HTTP API used by the SDKs (default http://127.0.0.1:18888)",
    "Run 'agentkernel serve --help' for every option. Only you can use it: without a key of\n"
    "your own (--api-key, --api-key-file, AGENTKERNEL_API_KEY, [api] in agentkernel.toml) it\n"
    "makes one in ~/.agentkernel/api-key; clients:\n"
    "  export AGENTKERNEL_API_KEY=$(cat ~/.agentkernel/api-key)\n",
    VERB_TOP_ONLY,
    NULL};
