/* SPDX-License-Identifier: Apache-2.0 */
/* The coding agents agentkernel knows: their CLI and the npm package that installs it (the
 * seed's table). Not to be confused with the sandbox's own agent (src/agent/). */
#pragma once

#include <stddef.h>

/* A provider key an agent's CLI reads from its environment, and where that key belongs: the
 * binding (core/secrets.h) it becomes once the egress proxy injects secrets (issue 15, part B).
 * Upstream copied these variables into the sandbox in clear; here they are data only, applied
 * nowhere yet (docs/secrets.md, "Agent keys"). */
struct agent_key {
        const char *env;    /* the variable, and the vault secret's name */
        const char *host;   /* the provider's API host */
        const char *header; /* NULL: Authorization: Bearer <value> */
};

#define AGENT_KEYS_MAX 3

struct coding_agent {
        const char *name;
        const char *binary;                    /* the command it installs */
        const char *npm_package;               /* npm install -g <this> */
        const char *display;                   /* its name for people */
        struct agent_key keys[AGENT_KEYS_MAX]; /* upstream's list per agent; env NULL ends it */
};

/* The coding agent called name, or NULL for an unknown one (or NULL name). */
const struct coding_agent *coding_agent_find(const char *name);

/* All of them, in the order `agents` lists them; *ret_n of them. */
const struct coding_agent *coding_agents(size_t *ret_n);

/* The binding text of k ("ENV:host" or "ENV:host:header") into buf; its length, or -1 when
 * buf is too small. */
int coding_agent_key_binding(const struct agent_key *k, char *buf, size_t len);
