/* SPDX-License-Identifier: Apache-2.0 */
/* Terminal side of a streamed command (run, exec, attach). */
#pragma once

#include <stdint.h>
#include <stdio.h>

#include "cli.h"

struct cli_session {
        struct agent_io io;
        struct cli_tty tty;
        FILE *record; /* asciicast v2 recording, or NULL */
        int64_t record_start;
};

/* Sets up stdin forwarding, signals, raw mode (x->tty) and recording; fills x->rows/cols.
 * Returns 0 or -errno (already reported). */
int cli_session_begin(struct cli_session *s, struct agent_exec_opts *x, bool interactive,
                      const char *record_path);
/* Restores the terminal and signal mask. */
void cli_session_end(struct cli_session *s);
