// SPDX-License-Identifier: Apache-2.0
/*
 * The coding agents (claude, codex, ...) that a sandbox can be set up for: a fixed table, looked
 * up by name. Not the sandbox's agent (src/agent/), which runs commands inside it.
 */
#include "coding-agents.h"

#include <string.h>

#include "shared/macro.h"

static const struct coding_agent agents[] = {
    {"claude", "claude", "@anthropic-ai/claude-code", "Claude Code", "ANTHROPIC_API_KEY"},
    {"gemini", "gemini", "@google/gemini-cli", "Gemini CLI", "GEMINI_API_KEY"},
    {"codex", "codex", "@openai/codex", "Codex", "OPENAI_API_KEY"},
    {"opencode", "opencode", "opencode-ai", "OpenCode", NULL},
    {"amp", "amp", "@sourcegraph/amp", "Amp", "AMP_API_KEY"},
    {"pi", "pi", "@mariozechner/pi-coding-agent", "Pi", NULL},
    {"copilot", "github-copilot-cli", "@githubnext/github-copilot-cli", "GitHub Copilot CLI", NULL},
};

const struct coding_agent *coding_agents(size_t *ret_n)
{
        *ret_n = ARRAY_SIZE(agents);
        return agents;
}

const struct coding_agent *coding_agent_find(const char *name)
{
        for (size_t i = 0; name && i < ARRAY_SIZE(agents); i++)
                if (streq(agents[i].name, name))
                        return &agents[i];
        return NULL;
}
