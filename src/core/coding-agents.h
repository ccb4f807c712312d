/* SPDX-License-Identifier: Apache-2.0 */
/* The coding agents agentkernel knows: their CLI and the npm package that installs it (the
 * seed's table). Not to be confused with the sandbox's own agent (src/agent/). */
#pragma once

#include <stddef.h>

struct coding_agent {
        const char *name;
        const char *binary;      /* the command it installs */
        const char *npm_package; /* npm install -g <this> */
        const char *display;     /* its name for people */
        const char *key_env;     /* the environment variable of its provider's API key, or NULL */
};

/* The coding agent called name, or NULL for an unknown one (or NULL name). */
const struct coding_agent *coding_agent_find(const char *name);

/* All of them, in the order `agents` lists them; *ret_n of them. */
const struct coding_agent *coding_agents(size_t *ret_n);
