/* SPDX-License-Identifier: Apache-2.0 */
/* The coding agents agentkernel knows: their CLI and the npm package that installs it (the
 * seed's table). Not to be confused with the sandbox's own agent (src/agent/). */
#pragma once

struct coding_agent {
        const char *name;
        const char *binary;      /* the command it installs */
        const char *npm_package; /* npm install -g <this> */
};

/* The coding agent called name, or NULL for an unknown one (or NULL name). */
const struct coding_agent *coding_agent_find(const char *name);
