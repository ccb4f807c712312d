// SPDX-License-Identifier: Apache-2.0
#include "agents.h"

#include <string.h>

#include "shared/macro.h"

static const struct agent_info agents[] = {
    {"claude", "claude", "@anthropic-ai/claude-code"},
    {"gemini", "gemini", "@google/gemini-cli"},
    {"codex", "codex", "@openai/codex"},
    {"opencode", "opencode", "opencode"},
    {"amp", "amp", "@sourcegraph/amp"},
    {"pi", "pi", "@mariozechner/pi-coding-agent"},
    {"copilot", "github-copilot-cli", "@githubnext/github-copilot-cli"},
};

const struct agent_info *agent_find(const char *name)
{
        for (size_t i = 0; name && i < ARRAY_SIZE(agents); i++)
                if (streq(agents[i].name, name))
                        return &agents[i];
        return NULL;
}
