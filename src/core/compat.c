// SPDX-License-Identifier: Apache-2.0
/* The compatibility modes' table (upstream's src/permissions.rs, reference/upstream-agents.md
 * §4), applied by manager_create. Changing a value here changes what every agent sandbox may
 * reach: test it. */
#include "compat.h"

#include <errno.h>
#include <stddef.h>
#include <strings.h>

#include "core/egress.h"
#include "core/manager.h"
#include "core/state.h"
#include "shared/macro.h"
#include "shared/net-mode.h"
#include "shared/strv.h"

#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})

static const struct compat_mode modes[] = {
    {
        .name = "native",
        .aliases = LIST("default"),
        .profile = "moderate",
    },
    {
        .name = "claude",
        .aliases = LIST("claude-code", "claudecode"),
        .profile = "moderate",
        .mount_cwd = true,
        .seccomp = "ai-agent",
        .allow = LIST("api.anthropic.com", "cdn.anthropic.com", "*.pypi.org", "*.npmjs.com",
                      "*.github.com", "*.githubusercontent.com", "*.crates.io"),
        .block = LIST("169.254.169.254", "metadata.google.internal"),
        .env = LIST("CLAUDE_CODE_SANDBOX=agentkernel"),
        .api_key_env = "ANTHROPIC_API_KEY",
    },
    {
        .name = "codex",
        .aliases = LIST("openai-codex"),
        .profile = "restrictive",
        .network = true,
        .mount_cwd = true,
        .seccomp = "ai-agent",
        .allow = LIST("api.openai.com", "cdn.openai.com", "*.pypi.org", "*.npmjs.com"),
        .block = LIST("169.254.169.254", "metadata.google.internal", "*.internal"),
        .api_key_env = "OPENAI_API_KEY",
    },
    {
        .name = "gemini",
        .aliases = LIST("gemini-cli"),
        .profile = "moderate",
        .mount_cwd = true,
        .seccomp = "ai-agent",
        .allow = LIST("generativelanguage.googleapis.com", "*.googleapis.com", "*.pypi.org",
                      "*.npmjs.com", "*.github.com"),
        .block = LIST("169.254.169.254"),
        .api_key_env = "GOOGLE_API_KEY",
    },
};

int compat_mode_lookup(const char *name, const struct compat_mode **ret, struct ak_err *err)
{
        if (!name) {
                *ret = &modes[0];
                return 0;
        }
        for (size_t i = 0; i < ARRAY_SIZE(modes); i++) {
                bool hit = strcasecmp(modes[i].name, name) == 0;
                for (const char *const *a = modes[i].aliases; !hit && a && *a; a++)
                        hit = strcasecmp(*a, name) == 0;
                if (hit) {
                        *ret = &modes[i];
                        return 0;
                }
        }
        return ak_err_set(err, EINVAL,
                          "unknown compatibility mode '%.64s': use native, claude, codex or gemini",
                          name);
}

bool compat_mode_is_native(const struct compat_mode *m)
{
        return m == &modes[0];
}

int compat_mode_apply(const struct compat_mode *m, const struct create_opts *o,
                      struct sandbox_state *st, struct ak_err *err)
{
        if (state_set_str(&st->compat_mode, m->name) < 0)
                return ak_err_oom(err);
        if (st->network < 0 && m->network)
                st->network = NET_MODE_ON;
        if (st->mount_cwd < 0 && m->mount_cwd && !o->source_url)
                st->mount_cwd = 1;
        if (!o->seccomp && m->seccomp && state_set_str(&st->seccomp, m->seccomp) < 0)
                return ak_err_oom(err);
        for (const char *const *e = m->env; e && *e; e++)
                if (strv_push(&st->env, *e) < 0)
                        return ak_err_oom(err);
        if (!o->network_policy && m->allow) {
                json_t *pol = NULL;
                int r = egress_policy_build(NULL, NULL, (char *const *)m->allow,
                                            (char *const *)m->block, true, true, NULL, &pol, err);
                if (r < 0)
                        return r;
                json_decref(st->network_policy);
                st->network_policy = pol;
        }
        return 0;
}
