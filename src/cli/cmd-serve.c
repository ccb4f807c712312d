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

/* Its options, their help and their parsing are the helper's (src/server/serve.c):
 * `agentkernel serve --help` is the helper's help. */
const struct verb verb_serve = {
    "serve",     cmd_serve,
    "[OPTIONS]", "Serve the HTTP API used by the SDKs (default http://127.0.0.1:18888)",
    NULL,        VERB_TOP_ONLY,
    NULL};
