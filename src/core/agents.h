/* SPDX-License-Identifier: Apache-2.0 */
/* The coding agents agentkernel knows: their CLI and the npm package that installs it (the
 * seed's table). */
#pragma once

struct agent_info {
        const char *name;
        const char *binary;      /* the command it installs */
        const char *npm_package; /* npm install -g <this> */
};

/* NULL for an unknown agent. */
const struct agent_info *agent_find(const char *name);
