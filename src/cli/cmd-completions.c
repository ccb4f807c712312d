// SPDX-License-Identifier: Apache-2.0
/*
 * Shell completion. `completions bash|zsh|fish` prints a script that asks the CLI itself, at
 * every Tab, what may come next (`__complete CWORD WORD...`): verbs and sub-verbs from the verb
 * tables, a verb's options from its own option table (cli_parse() lists them when
 * CLI_COMPLETE_ENV is set, so nothing else of the verb runs), and sandbox names from the store.
 * Nothing is generated twice, and a new option completes the day it is added.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "core/paths.h"
#include "core/store.h"
#include "shared/cleanup.h"

#define COMPLETE_WORDS_MAX 64 /* words of a command line considered */

/* The bash function (zsh runs it through bashcompinit). */
static const char bash_function[] =
    "_agentkernel() {\n"
    "    local IFS=$'\\n'\n"
    "    COMPREPLY=($(compgen -W \"$(\"${COMP_WORDS[0]}\" __complete \"$COMP_CWORD\" "
    "\"${COMP_WORDS[@]:0:COMP_CWORD+1}\" 2>/dev/null)\" -- \"${COMP_WORDS[COMP_CWORD]}\"))\n"
    "}\n"
    "complete -o default -F _agentkernel agentkernel\n";

static const char bash_script[] =
    "# agentkernel completion for bash: eval \"$(agentkernel completions bash)\"\n";

static const char zsh_script[] =
    "# agentkernel completion for zsh: eval \"$(agentkernel completions zsh)\"\n"
    "autoload -U +X bashcompinit && bashcompinit\n";

static const char fish_script[] =
    "# agentkernel completion for fish: agentkernel completions fish | source\n"
    "function __agentkernel_complete\n"
    "    set -l words (commandline -opc) (commandline -ct)\n"
    "    agentkernel __complete (math (count $words) - 1) $words 2>/dev/null\n"
    "end\n"
    "complete -c agentkernel -f -a '(__agentkernel_complete)'\n";

static int cmd_completions(int argc, char **argv)
{
        static const char *const shells[] = {"bash", "zsh", "fish"};
        static const char *const scripts[] = {bash_script, zsh_script, fish_script};
        const struct cli_spec spec = {
            .min_pos = 1, .max_pos = 1, .missing = "name a shell: bash, zsh or fish"};
        struct cli_args a;
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        for (size_t i = 0; i < ARRAY_SIZE(shells); i++)
                if (!strcmp(a.pos[0], shells[i])) {
                        fputs(scripts[i], stdout);
                        if (scripts[i] != fish_script)
                                fputs(bash_function, stdout);
                        return EXIT_OK;
                }
        return cli_usage_error(cli_current, "unknown shell '%s': bash, zsh or fish", a.pos[0]);
}

const struct verb verb_completions = {
    "completions",
    cmd_completions,
    "bash|zsh|fish",
    "Print a shell completion script",
    "bash: eval \"$(agentkernel completions bash)\" in ~/.bashrc; zsh: the same in ~/.zshrc;\n"
    "fish: agentkernel completions fish > ~/.config/fish/completions/agentkernel.fish\n",
    VERB_TOP_ONLY,
    NULL};

static void print_verbs(const struct verb *const *table)
{
        for (const struct verb *const *v = table; v && *v; v++)
                if (!((*v)->flags & VERB_HIDDEN))
                        printf("%s\n", (*v)->name);
}

/* The sandboxes' names, quietly: completion never prints an error or creates a data directory
 * (the store is opened only where it exists). */
static void print_sandboxes(void)
{
        cleanup_state_list struct state_list l = {0};
        cleanup_manager struct manager *m = NULL;
        cleanup_free char *dir = NULL;

        if (paths_data_dir_path(&dir, NULL) < 0 || access(dir, F_OK) < 0 ||
            manager_open(&m, NULL) < 0 || manager_list(m, NULL, NULL, &l) < 0)
                return;
        for (size_t i = 0; i < l.n; i++)
                printf("%s\n", l.items[i]->name);
}

/* `__complete CWORD WORD...`: WORD 0 is the program, WORD CWORD the one being completed. */
static int cmd_complete(int argc, char **argv)
{
        const struct verb *const *table = cli_verbs(), *verb = NULL;
        char *vargv[] = {NULL, NULL};
        const char *cur;
        long cword;
        char *end;

        if (argc < 3)
                return EXIT_USAGE;
        cword = strtol(argv[1], &end, 10);
        if (*end || cword < 1 || cword > argc - 3 || cword > COMPLETE_WORDS_MAX)
                return EXIT_USAGE;
        argv += 2; /* argv[0]: the program, argv[cword]: the word being completed */
        cur = argv[cword];
        for (long i = 1; i < cword; i++) {
                const struct verb *v;
                if (!strcmp(argv[i], "--"))
                        return EXIT_OK; /* the command in the sandbox: the shell's own files */
                if (argv[i][0] == '-')
                        continue;
                if (!strcmp(argv[i], "sandbox") || !strcmp(argv[i], "sb"))
                        continue; /* the same verbs below it */
                v = table ? cli_find_verb(table, argv[i], 0) : NULL;
                if (!v) {
                        table = NULL; /* a positional: the verb is found */
                        continue;
                }
                verb = v;
                table = v->subverbs;
        }
        if (cur[0] == '-' && verb && !verb->subverbs) {
                vargv[0] = (char *)verb->name;
                cli_current = verb;
                if (setenv(CLI_COMPLETE_ENV, "1", 1) == 0)
                        (void)verb->fn(1, vargv);
                return EXIT_OK;
        }
        if (table) {
                print_verbs(table);
                if (verb)
                        return EXIT_OK;
        }
        if (verb && strstr(verb->usage, "NAME"))
                print_sandboxes();
        return EXIT_OK;
}

const struct verb verb_complete = {"__complete",
                                   cmd_complete,
                                   "CWORD WORD...",
                                   "Completion candidates (for the completion scripts)",
                                   NULL,
                                   VERB_TOP_ONLY | VERB_HIDDEN,
                                   NULL};
