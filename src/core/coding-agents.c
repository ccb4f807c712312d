// SPDX-License-Identifier: Apache-2.0
/*
 * The coding agents (claude, codex, ...) that a sandbox can be set up for: a fixed table, looked
 * up by name. Not the sandbox's agent (src/agent/), which runs commands inside it.
 */
#include "coding-agents.h"

#include <string.h>

#include "shared/macro.h"

static const struct coding_agent agents[] = {
    {"claude", "claude", "@anthropic-ai/claude-code"},
    {"gemini", "gemini", "@google/gemini-cli"},
    {"codex", "codex", "@openai/codex"},
    {"opencode", "opencode", "opencode"},
    {"amp", "amp", "@sourcegraph/amp"},
    {"pi", "pi", "@mariozechner/pi-coding-agent"},
    {"copilot", "github-copilot-cli", "@githubnext/github-copilot-cli"},
};

const struct coding_agent *coding_agent_find(const char *name)
{
        for (size_t i = 0; name && i < ARRAY_SIZE(agents); i++)
                if (streq(agents[i].name, name))
                        return &agents[i];
        return NULL;
}
