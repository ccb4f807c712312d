// SPDX-License-Identifier: Apache-2.0
/* `plugin install|list` (core/plugins.c writes the files) and `agents`: which coding agents are
 * known, installed and have their API key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "core/coding-agents.h"
#include "core/plugins.h"
#include "shared/cleanup.h"
#include "shared/cmd-policy.h"

/* Prints one target's install and returns whether every file went well. */
static bool install_one(const struct plugin_target *t, const char *root, bool force, bool dry)
{
        struct plugin_report reps[PLUGIN_FILES_MAX];
        struct ak_err err = {0};
        bool ok = true;
        size_t n;

        printf("Installing %s plugin%s...\n", t->name, dry ? " (dry run)" : "");
        if (plugin_install(t, root, force, dry, reps, &n, &err) < 0) {
                cli_error("%s", ak_err_msg(&err));
                return false;
        }
        for (size_t i = 0; i < n; i++) {
                const struct plugin_report *r = &reps[i];
                switch (r->outcome) {
                case PLUGIN_CREATED:
                        printf("  + %s\n", r->path);
                        break;
                case PLUGIN_MERGED:
                        printf("  ~ %s (merged)\n", r->path);
                        break;
                case PLUGIN_UP_TO_DATE:
                case PLUGIN_SKIPPED:
                        printf("  - %s (%s)\n", r->path, r->why);
                        break;
                case PLUGIN_FAILED:
                default:
                        printf("  ! %s ERROR: %s\n", r->path, r->why);
                        ok = false;
                        break;
                }
        }
        if (ok && !dry)
                printf("  %s\n", t->next_steps);
        return ok;
}

static int cmd_plugin_install(int argc, char **argv)
{
        bool global = false, force = false, dry = false, ok = true;
        const struct cli_option options[] = {
            OPT_BOOL(0, "global", &global, "into your home (~/.mcp.json...) instead of here"),
            OPT_BOOL(0, "force", &force, "replace files and entries that differ from ours"),
            OPT_BOOL(0, "dry-run", &dry, "say what would be written; write nothing"),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options,
                                      .min_pos = 1,
                                      .max_pos = 1,
                                      .missing = "name a target: claude, codex, gemini, opencode, "
                                                 "mcp or all"};
        const struct plugin_target *all, *t = NULL;
        char cwd[PATH_MAX];
        const char *root;
        struct cli_args a;
        size_t n_all;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        all = plugin_targets(&n_all);
        if (strcasecmp(a.pos[0], "all") != 0 && !(t = plugin_target_find(a.pos[0])))
                return cli_usage_error(cli_current,
                                       "unknown plugin target '%s': claude, codex, gemini, "
                                       "opencode, mcp or all",
                                       a.pos[0]);
        if (global && t && t->project_only)
                return cli_usage_error(cli_current,
                                       "%s plugins are per project: run this in your project's "
                                       "directory without --global",
                                       t->name);
        root = global ? getenv("HOME") : getcwd(cwd, sizeof(cwd));
        if (!root || root[0] != '/') {
                cli_error("cannot tell %s", global ? "your home ($HOME)" : "this directory");
                return EXIT_ERROR;
        }
        for (size_t i = 0; i < n_all; i++) {
                if (t ? &all[i] != t : global && all[i].project_only)
                        continue;
                ok = install_one(&all[i], root, force, dry) && ok;
        }
        if (!ok) {
                cli_error("some files failed to install");
                return EXIT_ERROR;
        }
        return EXIT_OK;
}

static int cmd_plugin_list(int argc, char **argv)
{
        const struct cli_spec spec = {0};
        const struct plugin_target *all;
        char cwd[PATH_MAX];
        struct cli_args a;
        size_t n;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (!getcwd(cwd, sizeof(cwd))) {
                cli_error("cannot tell this directory");
                return EXIT_ERROR;
        }
        all = plugin_targets(&n);
        printf("%-12s%-40s%s\n", "TARGET", "DESCRIPTION", "STATUS");
        for (size_t i = 0; i < n; i++)
                printf("%-12s%-40s%s\n", all[i].name, all[i].description,
                       plugin_installed(&all[i], cwd) ? "installed" : "not installed");
        return EXIT_OK;
}

static const struct verb verb_plugin_install = {
    "install",
    cmd_plugin_install,
    "TARGET [--global] [--force] [--dry-run]",
    "Write a coding agent's files for agentkernel's MCP server",
    "TARGET: claude (also claude-code), codex, gemini (gemini-cli), opencode, mcp, all.\n"
    "JSON configs get our 'agentkernel' entry merged in (other entries are kept); files that\n"
    "differ from ours are left alone without --force; nothing is written through a symbolic\n"
    "link.\n",
    0,
    NULL};
static const struct verb verb_plugin_list = {
    "list", cmd_plugin_list, "", "Which plugins are installed in this directory", NULL, 0, NULL};
static const struct verb *const plugin_verbs[] = {&verb_plugin_install, &verb_plugin_list, NULL};

const struct verb verb_plugin = {
    "plugin", cli_dispatch_verb, "install|list ...", "Plug agentkernel into coding agents",
    NULL,     VERB_TOP_ONLY,     plugin_verbs};

/* ---- agents ---- */

static int cmd_agents(int argc, char **argv)
{
        const struct cli_spec spec = {0};
        const struct coding_agent *all;
        struct cli_args a;
        size_t n;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        all = coding_agents(&n);
        printf("%-20s%-15s%s\n", "AGENT", "STATUS", "API KEY");
        for (size_t i = 0; i < n; i++) {
                cleanup_free char *found = cmd_resolve(all[i].binary, getenv("PATH"), "/");
                bool installed = found != NULL;
                const char *key = all[i].keys[0].env ? "missing" : "-";
                for (size_t k = 0; k < AGENT_KEYS_MAX && all[i].keys[k].env; k++) {
                        const char *v = getenv(all[i].keys[k].env);
                        if (v && *v)
                                key = "set";
                }
                printf("%-20s%-15s%s", all[i].display, installed ? "installed" : "not installed",
                       key);
                if (!installed)
                        printf("  (npm install -g %s)", all[i].npm_package);
                if (!strcmp(key, "missing"))
                        printf("  (%s)", all[i].keys[0].env);
                printf("\n");
        }
        return EXIT_OK;
}

const struct verb verb_agents = {
    "agents", cmd_agents,    "",  "Which coding agents are installed and have an API key",
    NULL,     VERB_TOP_ONLY, NULL};
