// SPDX-License-Identifier: Apache-2.0
/*
 * Streaming a command between this terminal and a sandbox: stdin forwarding rules, signal
 * forwarding, raw mode for terminals, and optional asciicast v2 recording (a file of sandbox
 * output: written as out_file writes, see fd-util.h). Shared by run, exec and attach.
 */
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "shared/fd-util.h"
#include "shared/host-file.h"
#include "shared/json-util.h"
#include "shared/time-util.h"

static int record_output(void *ctx, int stream, const void *data, size_t len)
{
        struct cli_session *s = ctx;

        if (s->record) {
                double t = (double)(now_monotonic_ns() - s->record_start) / 1e9;
                json_t *ev = json_pack("[f,s,s%]", t, "o", (const char *)data, len);
                if (!ev) /* not UTF-8: record it lossily rather than not at all */
                        ev = json_pack("[f,s,s]", t, "o", "\xef\xbf\xbd");
                if (ev) {
                        char *line = json_dumps(ev, JSON_COMPACT);
                        if (line) {
                                fprintf(s->record, "%s\n", line);
                                free(line);
                        }
                        json_decref(ev);
                }
        }
        return cli_output(NULL, stream, data, len);
}

int cli_session_begin(struct cli_session *s, struct agent_exec_opts *x, bool interactive,
                      const char *record_path)
{
        struct winsize ws;

        memset(s, 0, sizeof(*s));
        s->tty.fd = -1;
        s->io.stdin_fd = -1;
        s->io.tty_fd = -1;
        s->io.on_output = cli_output;
        /* stdin: always for pipes and files; for a terminal only when asked (-t or -i). */
        if (interactive || x->tty || !isatty(STDIN_FILENO))
                s->io.stdin_fd = STDIN_FILENO;
        if (x->tty) {
                int tfd = isatty(STDOUT_FILENO) ? STDOUT_FILENO : STDIN_FILENO;
                if (ioctl(tfd, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
                        x->rows = ws.ws_row;
                        x->cols = ws.ws_col;
                }
                s->io.tty_fd = tfd;
                if (isatty(STDIN_FILENO))
                        (void)cli_tty_raw(&s->tty, STDIN_FILENO);
        }
        s->io.signal_fd = cli_signalfd();
        if (record_path) {
                /* the recording is the sandbox's output, at a path another user may share: made
                 * as out_file makes files (never through a symlink, never into a planted file),
                 * published at once and then appended to through its own fd */
                struct out_file of = OUT_FILE_INIT;
                struct ak_err err = {0};
                int e = 0;
                if (out_file_open(record_path, NULL, &of, &err) < 0 ||
                    out_file_publish(&of, 0666, &err) < 0)
                        e = err.code;
                else if (!(s->record = fdopen(of.fd, "w")))
                        e = errno;
                else
                        of.fd = -1; /* the FILE has it */
                out_file_abort(&of);
                if (e) {
                        cli_session_end(s);
                        cli_error("cannot record to '%s': %s", record_path,
                                  err.code ? ak_err_msg(&err) : strerror(e));
                        return -e;
                }
                fprintf(s->record,
                        "{\"version\": 2, \"width\": %u, \"height\": %u, \"timestamp\": %lld}\n",
                        x->cols ? x->cols : 80, x->rows ? x->rows : 24,
                        (long long)(now_realtime_ns() / NSEC_PER_SEC));
                s->record_start = now_monotonic_ns();
                s->io.on_output = record_output;
                s->io.ctx = s;
        }
        return 0;
}

void cli_session_end(struct cli_session *s)
{
        sigset_t m;

        cli_tty_restore(&s->tty);
        if (s->record) {
                fclose(s->record);
                s->record = NULL;
        }
        if (s->io.signal_fd >= 0) {
                close(s->io.signal_fd);
                s->io.signal_fd = -1;
        }
        sigemptyset(&m);
        sigprocmask(SIG_SETMASK, &m, NULL);
}
