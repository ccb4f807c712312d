/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agentkernel command line. One file per verb group; this header holds what they share:
 * exit codes, argument parsing, error output, terminal handling.
 */
#pragma once

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "agent/client.h"
#include "core/manager.h"
#include "core/views.h"
#include "shared/err.h"

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
        const char *usage;   /* one line: arguments after the verb */
        const char *summary; /* one line */
        const char *help;    /* the rest of --help: options and notes */
};

/* Prints "error: <msg>" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A hint for people ("note: ..."), on stderr. */
void cli_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reports err, returns code. */
int cli_fail(const struct ak_err *err, int code);
/* Prints a failed command request: 126 when a policy refused the command, else 125. */
int cli_exec_fail(const struct ak_err *err);
/* Prints a usage error for verb and returns EXIT_USAGE. */
int cli_usage_error(const struct verb *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void cli_print_help(const struct verb *v, FILE *f);

/* The verb currently running (for help and messages). */
extern const struct verb *cli_current;
/* "agentkernel" or "agentkernel sandbox": how the user called us, for hints. */
extern const char *cli_prog;

#define CLI_MAX_POS 64

struct cli_args {
        char *pos[CLI_MAX_POS + 1]; /* positional arguments (pointing into argv) */
        size_t n_pos;
        char **cmd; /* the command after the positionals or "--" */
        size_t n_cmd;
};

/* What a verb accepts. */
struct cli_spec {
        const char *shortopts;
        const struct option *longopts;
        int (*on_opt)(int c, const char *arg, void *ctx); /* non-zero: stop (error printed) */
        void *ctx;
        size_t min_pos, max_pos; /* positional arguments; max at most CLI_MAX_POS */
        const char *missing;     /* the usage error when fewer than min_pos are given */
        bool want_cmd;           /* the rest, after the positionals or "--", is a command */
        const char *missing_cmd; /* with want_cmd: the usage error when it is empty, or NULL */
};

#define CLI_HELP_SHOWN 1000
/* What a verb returns when cli_parse() did not return 0. */
#define CLI_PARSE_EXIT(r) ((r) == CLI_HELP_SHOWN ? EXIT_OK : (r))

/* Parses a verb's arguments against spec, -h/--help included. Returns 0 to go on,
 * CLI_HELP_SHOWN after printing help, or EXIT_USAGE after printing the error. */
int cli_parse(int argc, char **argv, const struct cli_spec *spec, struct cli_args *ret);

/* Option values shared by several verbs; each prints a usage error and returns non-zero on a bad
 * value. */
int cli_opt_workdir(const char *arg, const char **ret);
int cli_opt_timeout(const char *arg, uint64_t *ret_ms);

/* Opens the manager (notices go to stderr) or prints why not. */
struct manager *cli_manager(void);

/* Writes data to fd entirely (for command output). */
int cli_output(void *ctx, int stream, const void *data, size_t len);

/* Terminal raw mode for attach and -t. */
struct cli_tty {
        int fd;
        bool active;
        char saved[64]; /* struct termios, opaque here */
};
int cli_tty_raw(struct cli_tty *t, int fd);
void cli_tty_restore(struct cli_tty *t);

/* Signals forwarded to remote commands, read through a signalfd (blocked here). */
int cli_signalfd(void);

/* Maps an agent exit to our exit code. */
int cli_exit_code(const struct agent_exit *e);

/* Prints JSON (pretty) to stdout with a newline. */
void cli_print_json(json_t *j);

/* Parses -e KEY=VALUE into the list after validation. Returns 0 or EXIT_USAGE. */
int cli_add_env(char ***env, const char *entry);
