/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The CLI's verbs and their options as tables (git's parse-options shape): each verb's file
 * declares its options, with their help, in one table of {short, long, argument, help, kind,
 * target}; one parser reads argv against it and --help is printed from it. Verbs with
 * sub-commands (images, volume, pool, audit, `sandbox ...`) dispatch from tables of verbs too.
 * Front-end code: it prints help to stdout and usage errors to stderr.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes (docs/cli.md). A command's own status passes through unchanged. */
#define EXIT_OK 0
#define EXIT_ERROR 1       /* a management command failed */
#define EXIT_USAGE 2       /* bad arguments */
#define EXIT_RUN_ERROR 125 /* agentkernel could not run the command */
#define EXIT_CANNOT_EXEC 126
#define EXIT_NOT_FOUND 127

struct verb {
        const char *name;
        int (*fn)(int argc, char **argv);
        const char *usage;   /* one line: the arguments after the verb */
        const char *summary; /* one line */
        const char *notes;   /* --help's text after the options, or NULL */
        unsigned flags;
        const struct verb *const *subverbs; /* its sub-commands (NULL-terminated), or NULL */
};

#define VERB_TOP_ONLY (1u << 0) /* not under `agentkernel sandbox` */
#define VERB_HIDDEN (1u << 1)   /* an alias or a spelling: not listed */

/* The verb running now, for help and usage errors. */
extern const struct verb *cli_current;
/* How the user called the verb's parent: "agentkernel", "agentkernel sandbox",
 * "agentkernel images" (for hints and usage lines). */
extern const char *cli_prog;

enum cli_opt_type {
        CLI_OPT_END = 0,
        CLI_OPT_BOOL,     /* bool *value becomes true */
        CLI_OPT_SET_INT,  /* int *value becomes defval */
        CLI_OPT_STRING,   /* const char **value becomes the argument */
        CLI_OPT_CALLBACK, /* cb(opt, arg) parses it (arg NULL for an option without one) */
};

struct cli_option {
        enum cli_opt_type type;
        int short_name;        /* 0: none */
        const char *long_name; /* NULL: none */
        const char *argh;      /* the argument's name in help; NULL: the option takes none */
        const char *help;      /* may span lines ('\n'); NULL: not listed */
        void *value;           /* the target */
        /* CLI_OPT_CALLBACK: 0, or non-zero after printing a usage error */
        int (*cb)(const struct cli_option *opt, const char *arg);
        intptr_t defval;
};

/* clang-format off */
#define OPT_BOOL(s, l, v, h) {CLI_OPT_BOOL, (s), (l), NULL, (h), (v), NULL, 0}
#define OPT_SET_INT(s, l, v, i, h) {CLI_OPT_SET_INT, (s), (l), NULL, (h), (v), NULL, (i)}
#define OPT_STRING(s, l, v, a, h) {CLI_OPT_STRING, (s), (l), (a), (h), (v), NULL, 0}
#define OPT_CALLBACK(s, l, v, a, h, f) {CLI_OPT_CALLBACK, (s), (l), (a), (h), (v), (f), 0}
/* a callback shared by several options, told apart by i (the option's defval) */
#define OPT_CALLBACK_INT(s, l, v, a, h, f, i) {CLI_OPT_CALLBACK, (s), (l), (a), (h), (v), (f), (i)}
#define OPT_END() {CLI_OPT_END, 0, NULL, NULL, NULL, NULL, NULL, 0}
/* clang-format on */
/* -j, --json: every verb that can print JSON says it so. */
#define OPT_JSON(v) OPT_BOOL('j', "json", (v), "machine-readable output")

#define CLI_MAX_POS 64

struct cli_args {
        char *pos[CLI_MAX_POS + 1]; /* positional arguments (pointing into argv) */
        size_t n_pos;
        char **cmd; /* the command after the positionals or "--" */
        size_t n_cmd;
};

/* What a verb accepts. */
struct cli_spec {
        const struct cli_option *options; /* ends with OPT_END(); NULL: none */
        size_t min_pos, max_pos;          /* positional arguments; max at most CLI_MAX_POS */
        const char *missing;              /* the usage error when fewer than min_pos are given */
        bool want_cmd;           /* the rest, after the positionals or "--", is a command */
        const char *missing_cmd; /* with want_cmd: the usage error when it is empty, or NULL */
};

#define CLI_HELP_SHOWN 1000
/* What a verb returns when cli_parse() did not return 0. */
#define CLI_PARSE_EXIT(r) ((r) == CLI_HELP_SHOWN ? EXIT_OK : (r))

/* Set in the environment (by `agentkernel __complete`), cli_parse() lists the verb's options
 * instead of parsing, and returns CLI_HELP_SHOWN: nothing else of the verb runs. The helpers
 * whose options the CLI names (agentkernel-serve) parse with cli_parse() too. */
#define CLI_COMPLETE_ENV "AGENTKERNEL_COMPLETE_OPTIONS"

/* Parses a verb's arguments (argv[0] is the verb) against spec, -h/--help included. Options may
 * come before, between and after positionals, up to "--" or the command; a long option may be
 * abbreviated to a unique prefix and take its value as --opt=VALUE or --opt VALUE, a short one
 * as -oVALUE or -o VALUE, and short options without a value combine (-ti). Returns 0 to go on,
 * CLI_HELP_SHOWN after printing cli_current's help, or EXIT_USAGE after printing the error. */
int cli_parse(int argc, char **argv, const struct cli_spec *spec, struct cli_args *ret);

/* Prints v's help: summary, usage line, the options' table (options may be NULL), its
 * sub-commands, notes. */
void cli_print_help(const struct verb *v, const struct cli_option *options, FILE *f);
/* Prints "error: <msg>" and v's usage line and hint; returns EXIT_USAGE. */
int cli_usage_error(const struct verb *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The verb of table (NULL-terminated) called name, skipping those with any of skip_flags. */
const struct verb *cli_find_verb(const struct verb *const *table, const char *name,
                                 unsigned skip_flags);
/* Lists table's verbs but the hidden ones and those with skip_flags: "  NAME  SUMMARY", or with
 * their usage ("  NAME USAGE  SUMMARY") for sub-commands. */
void cli_list_verbs(const struct verb *const *table, unsigned skip_flags, bool with_usage, FILE *f);

/* Runs the sub-command of cli_current that argv[1] names, with argv + 1, as
 * "<cli_prog> <argv[0]> <name>". Without a name: -h/--help prints cli_current's help; with dflt,
 * the arguments go to dflt (`audit --json` shows the log); else a usage error, as is an unknown
 * name. Returns the exit code. */
int cli_dispatch(int argc, char **argv, int (*dflt)(int argc, char **argv));
/* cli_dispatch without a default: the fn of a verb that is only its sub-commands. */
int cli_dispatch_verb(int argc, char **argv);
