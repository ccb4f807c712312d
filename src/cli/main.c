// SPDX-License-Identifier: Apache-2.0
/*
 * agentkernel: run AI coding agents' commands in isolated sandboxes. The table of verbs and
 * the dispatch from it; each verb, its options and its help live in its own cmd-*.c. Verbs exist
 * both at the top level (as upstream's first CLI) and under `sandbox`/`sb` (as its current one),
 * but for the top-level-only ones.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backends.h"
#include "build-config.h"
#include "cli.h"
#include "cmd.h"
#include "shared/json-cache.h"

static const struct verb verb_sandbox, verb_sb, verb_help, verb_help_long, verb_help_short,
    verb_version, verb_version_long, verb_version_short;

/* In the order --help lists them. */
static const struct verb *const verbs[] = {
    &verb_run,
    &verb_create,
    &verb_start,
    &verb_stop,
    &verb_pause,
    &verb_suspend,
    &verb_resume,
    &verb_remove,
    &verb_rm,
    &verb_list,
    &verb_ls,
    &verb_info,
    &verb_exec,
    &verb_attach,
    &verb_exec_list,
    &verb_exec_logs,
    &verb_exec_kill,
    &verb_extend_ttl,
    &verb_gc,
    &verb_clean,
    &verb_reconcile,
    &verb_archive,
    &verb_recover,
    &verb_resize,
    &verb_update,
    &verb_cp,
    &verb_export,
    &verb_export_config,
    &verb_import_config,
    &verb_init,
    &verb_template,
    &verb_setup,
    &verb_trust,
    &verb_untrust,
    &verb_audit,
    &verb_stats,
    &verb_volume,
    &verb_images,
    &verb_network,
    &verb_secret,
    &verb_pool,
    &verb_serve,
    &verb_mcp_server,
    &verb_doctor,
    &verb_plugin,
    &verb_agents,
    &verb_completions,
    &verb_complete,
    &verb_sandbox,
    &verb_sb,
    &verb_help,
    &verb_help_long,
    &verb_help_short,
    &verb_version,
    &verb_version_long,
    &verb_version_short,
    NULL,
};

const struct verb *const *cli_verbs(void)
{
        return verbs;
}

static void usage(FILE *f, bool group)
{
        fprintf(f, "%s\n\nUsage: %s <COMMAND> [ARGS]\n\nCommands:\n",
                group ? "Manage sandboxes"
                      : "Run AI coding agents' commands in secure, isolated sandboxes",
                cli_prog);
        cli_list_verbs(verbs, group ? VERB_TOP_ONLY : 0, false, f);
        fprintf(f, "\nRun '%s <COMMAND> --help' for a command's options.\n", cli_prog);
        if (!group)
                fprintf(f, "Exit codes: 0 ok, 1 failure, 2 usage error, 125 sandbox error, "
                           "else the command's own status.\n");
}

static int run_verb(const struct verb *v, int argc, char **argv)
{
        cli_current = v;
        return v->fn(argc, argv);
}

/* `agentkernel sandbox VERB ...`: the verbs that are not top-level only. */
static int cmd_sandbox(int argc, char **argv)
{
        const struct verb *v;

        cli_prog = "agentkernel sandbox";
        if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
                usage(argc < 2 ? stderr : stdout, true);
                return argc < 2 ? EXIT_USAGE : EXIT_OK;
        }
        v = cli_find_verb(verbs, argv[1], VERB_TOP_ONLY);
        if (!v) {
                fprintf(stderr, "error: unknown command '%s'\n", argv[1]);
                usage(stderr, true);
                return EXIT_USAGE;
        }
        return run_verb(v, argc - 1, argv + 1);
}

/* `agentkernel help [VERB]`: a verb's help is what its own --help prints. */
static int cmd_help(int argc, char **argv)
{
        const struct verb *v = argc > 1 ? cli_find_verb(verbs, argv[1], 0) : NULL;
        char *help_argv[] = {argc > 1 ? argv[1] : NULL, "--help", NULL};

        if (!v || v == &verb_help || v == &verb_help_long || v == &verb_help_short) {
                usage(stdout, false);
                return EXIT_OK;
        }
        return run_verb(v, 2, help_argv);
}

static int cmd_version(int argc, char **argv)
{
        (void)argc;
        (void)argv;
        printf("agentkernel %s\n", AK_VERSION);
        return EXIT_OK;
}

static const struct verb verb_sandbox = {
    "sandbox",     cmd_sandbox, "<COMMAND> [ARGS]", "The same sandbox commands (alias: sb)", NULL,
    VERB_TOP_ONLY, NULL};
static const struct verb verb_sb = {
    "sb", cmd_sandbox, "<COMMAND> [ARGS]", "Alias of sandbox", NULL, VERB_TOP_ONLY | VERB_HIDDEN,
    NULL};
#define HIDDEN_VERB(id, name, fn, summary)                                                         \
        static const struct verb id = {name, fn, "", summary, NULL, VERB_TOP_ONLY | VERB_HIDDEN,   \
                                       NULL}
HIDDEN_VERB(verb_help, "help", cmd_help, "Show help");
HIDDEN_VERB(verb_help_long, "--help", cmd_help, "Show help");
HIDDEN_VERB(verb_help_short, "-h", cmd_help, "Show help");
HIDDEN_VERB(verb_version, "version", cmd_version, "Show the version");
HIDDEN_VERB(verb_version_long, "--version", cmd_version, "Show the version");
HIDDEN_VERB(verb_version_short, "-V", cmd_version, "Show the version");

int main(int argc, char **argv)
{
        const struct verb *v;

        json_cache_install(); /* before any JSON value exists */
        /* A closed pipe on stdout is an error to report, not a reason to die. */
        (void)signal(SIGPIPE, SIG_IGN);
        backends_init();
        if (argc < 2) {
                usage(stderr, false);
                return EXIT_USAGE;
        }
        v = cli_find_verb(verbs, argv[1], 0);
        if (!v) {
                fprintf(stderr, "error: unknown command '%s'\n", argv[1]);
                usage(stderr, false);
                return EXIT_USAGE;
        }
        return run_verb(v, argc - 1, argv + 1);
}
