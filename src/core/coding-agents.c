// SPDX-License-Identifier: Apache-2.0
/*
 * The coding agents (claude, codex, ...) that a sandbox can be set up for: a fixed table, looked
 * up by name. Not the sandbox's agent (src/agent/), which runs commands inside it.
 */
#include "coding-agents.h"

#include <stdio.h>
#include <string.h>

#include "shared/macro.h"

#define ANTHROPIC                                                                                  \
        {                                                                                          \
                "ANTHROPIC_API_KEY", "api.anthropic.com", "x-api-key"                              \
        }
#define OPENAI                                                                                     \
        {                                                                                          \
                "OPENAI_API_KEY", "api.openai.com", NULL                                           \
        }
#define GOOGLE                                                                                     \
        {                                                                                          \
                "GOOGLE_API_KEY", "generativelanguage.googleapis.com", "x-goog-api-key"            \
        }
#define GEMINI                                                                                     \
        {                                                                                          \
                "GEMINI_API_KEY", "generativelanguage.googleapis.com", "x-goog-api-key"            \
        }

/* The keys: which variables upstream's start copied in for each agent (reference/
 * upstream-secrets.md §7, step 2), with their provider's host and header. */
static const struct coding_agent agents[] = {
    {"claude", "claude", "@anthropic-ai/claude-code", "Claude Code", {ANTHROPIC}},
    {"gemini", "gemini", "@google/gemini-cli", "Gemini CLI", {GOOGLE, GEMINI}},
    {"codex", "codex", "@openai/codex", "Codex", {OPENAI}},
    {"opencode", "opencode", "opencode-ai", "OpenCode", {ANTHROPIC, OPENAI, GOOGLE}},
    {"amp", "amp", "@sourcegraph/amp", "Amp", {ANTHROPIC}},
    {"pi", "pi", "@mariozechner/pi-coding-agent", "Pi", {ANTHROPIC, OPENAI}},
    {"copilot",
     "github-copilot-cli",
     "@githubnext/github-copilot-cli",
     "GitHub Copilot CLI",
     {{"GITHUB_TOKEN", "api.github.com", NULL}}},
};

const struct coding_agent *coding_agents(size_t *ret_n)
{
        *ret_n = ARRAY_SIZE(agents);
        return agents;
}

int coding_agent_key_binding(const struct agent_key *k, char *buf, size_t len)
{
        int n = snprintf(buf, len, "%s:%s%s%s", k->env, k->host, k->header ? ":" : "",
                         k->header ? k->header : "");

        return n < 0 || (size_t)n >= len ? -1 : n;
}

const struct coding_agent *coding_agent_find(const char *name)
{
        for (size_t i = 0; name && i < ARRAY_SIZE(agents); i++)
                if (streq(agents[i].name, name))
                        return &agents[i];
        return NULL;
}
