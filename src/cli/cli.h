/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The agentkernel command line. One file per verb group, each with its verbs' option tables
 * (parse-options.h); this header holds what they share: error output, the option values several
 * verbs take, the manager, terminal handling.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "agent/client.h"
#include "cli/parse-options.h"
#include "core/manager.h"
#include "core/views.h"
#include "shared/err.h"

/* Prints "error: <msg>" to stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A hint for people ("note: ..."), on stderr. */
void cli_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reports err, returns code. */
int cli_fail(const struct ak_err *err, int code);
/* Prints a failed command request: 126 when a policy refused the command, else 125. */
int cli_exec_fail(const struct ak_err *err);

/* Option values several verbs take (CLI_OPT_CALLBACK parsers; each prints a usage error and
 * returns non-zero on a bad value). Their targets: */
int cli_opt_env(const struct cli_option *o, const char *arg);      /* char ***: KEY=VALUE */
int cli_opt_workdir(const struct cli_option *o, const char *arg);  /* const char **: absolute */
int cli_opt_timeout(const struct cli_option *o, const char *arg);  /* uint64_t *: ms, from 30s */
int cli_opt_duration(const struct cli_option *o, const char *arg); /* uint64_t *: s, not 0 */
int cli_opt_label(const struct cli_option *o, const char *arg);    /* json_t **: KEY=VALUE */
int cli_opt_cpus(const struct cli_option *o, const char *arg);     /* uint32_t *: 1 to 64 */
int cli_opt_memory(const struct cli_option *o, const char *arg);   /* uint64_t *: MB */
int cli_opt_backend(const struct cli_option *o, const char *arg);  /* const char **: a name */

/* The spec of a verb that takes one sandbox name and the given options. */
#define CLI_SPEC_SANDBOX(opts)                                                                     \
        {                                                                                          \
                .options = (opts), .min_pos = 1, .max_pos = 1,                                     \
                .missing = "a sandbox name is required"                                            \
        }

/* Opens the manager (notices go to stderr) or prints why not. */
struct manager *cli_manager(void);
/* cli_parse(), then cli_manager() into *ret_m: 0 to go on, else what CLI_PARSE_EXIT() turns into
 * the verb's exit code (help shown, a usage error, or EXIT_ERROR when the manager did not open). */
int cli_parse_open(int argc, char **argv, const struct cli_spec *spec, struct cli_args *a,
                   struct manager **ret_m);

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
