// SPDX-License-Identifier: Apache-2.0
/*
 * Work inside a running sandbox on behalf of a caller: commands (foreground, detached,
 * attached), the detached commands' records, and files. One place checks the command policy and
 * the ids it is given, writes the audit log and records activity, so the CLI, the HTTP API and
 * MCP behave the same.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/audit.h"
#include "core/manager.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/cmd-policy.h"
#include "shared/json-util.h"
#include "shared/random-util.h"
#include "shared/time-util.h"

static struct cmd_policy policy_of(const struct sandbox_state *st)
{
        return (struct cmd_policy){st->commands.allow, st->commands.block,
                                   st->commands.allowlist_only};
}

static void audit_violation(const char *sandbox, const char *argv0, const char *why)
{
        char details[512];
        (void)snprintf(details, sizeof(details), "blocked command: %s (%s)", argv0, why);
        (void)audit_log("policy_violation", json_pack("{s:s,s:s,s:s}", "sandbox", sandbox, "policy",
                                                      "commands", "details", details));
}

/* The host-side check (names only; the agent checks again against what the name resolves to in
 * the sandbox). Audits and fails with -EPERM when the command is refused. */
int manager_check_command(const char *sandbox, const struct cmd_policy *p, char *const *argv,
                          struct ak_err *err)
{
        const char *why = cmd_policy_check(p, argv[0], NULL, NULL);

        if (!why)
                return 0;
        audit_violation(sandbox, argv[0], why);
        return ak_err_set(err, EPERM,
                          "command '%s' is %s (see [security.commands] in agentkernel.toml)",
                          argv[0], why);
}

/* After the agent answered: a refusal by its policy check is audited as a violation. */
static void audit_agent_refusal(const char *sandbox, const char *argv0, int r,
                                const struct ak_err *err)
{
        if (r == -EPERM)
                audit_violation(sandbox, argv0, ak_err_msg(err));
}

/* Activity is recorded at most once a second per sandbox: lifecycle thresholds are whole
 * seconds, and a busy sandbox would otherwise rewrite its record for every command. The record
 * is rewritten by rename, which on ext4 flushes the new file (~1 ms here): commands record it
 * while they start (on_sent), not after their result. */
struct touch_ctx {
        struct manager *m;
        const struct sandbox_state *st;
        bool done;
};

static void touch_unless_recent(struct manager *m, const struct sandbox_state *st);

static void touch_on_sent(void *ctx)
{
        struct touch_ctx *t = ctx;
        if (!t->done)
                touch_unless_recent(t->m, t->st);
        t->done = true;
}

static void touch_unless_recent(struct manager *m, const struct sandbox_state *st)
{
        int64_t last;

        if (st->last_activity_at && parse_rfc3339(st->last_activity_at, &last) == 0 &&
            now_realtime_ns() - last < NSEC_PER_SEC)
                return;
        (void)manager_touch(m, st->name);
}

enum exec_kind { EXEC_FOREGROUND, EXEC_ATTACH, EXEC_DETACH };

static int run_in(struct manager *m, const char *name, enum exec_kind kind,
                  const struct agent_exec_opts *x, const struct agent_io *io,
                  struct agent_exit *ret_exit, struct agent_detached *ret_detached,
                  const char **ret_backend, struct ak_err *err)
{
        struct sandbox_state *st = NULL;
        struct agent_exec_opts xx = *x;
        const struct backend_ops *b;
        struct cmd_policy pol;
        struct touch_ctx touch = {.m = m};
        int fd, r;

        fd = manager_connect(m, name, &st, err);
        if (fd < 0)
                return fd;
        if (ret_backend && manager_backend(st, &b, NULL) >= 0)
                *ret_backend = b->name;
        touch.st = st;
        pol = policy_of(st);
        xx.policy = cmd_policy_empty(&pol) ? NULL : &pol;
        r = manager_check_command(name, &pol, x->argv, err);
        if (r >= 0) {
                if (kind == EXEC_DETACH) {
                        r = agent_detach(fd, &xx, ret_detached, err);
                } else {
                        struct agent_io io2 = *io;
                        io2.on_sent = touch_on_sent;
                        io2.sent_ctx = &touch;
                        r = agent_exec(fd, &xx, &io2, ret_exit, err);
                }
                audit_agent_refusal(name, x->argv[0], r, err);
        }
        close(fd);
        if (r != -EPERM) {
                json_t *ev;
                if (kind == EXEC_ATTACH)
                        ev = json_pack("{s:s}", "sandbox", name);
                else
                        ev = json_pack("{s:s,s:o,s:o}", "sandbox", name, "command",
                                       strv_json_array(x->argv), "exit_code",
                                       r >= 0 && kind == EXEC_FOREGROUND
                                           ? json_integer(ret_exit->code)
                                           : json_null());
                (void)audit_log(kind == EXEC_ATTACH ? "session_attached" : "command_executed", ev);
        }
        touch_on_sent(&touch); /* when the command never got that far */
        state_free(st);
        return r;
}

int manager_exec(struct manager *m, const char *name, const struct agent_exec_opts *x,
                 const struct agent_io *io, struct agent_exit *ret, struct ak_err *err)
{
        return run_in(m, name, EXEC_FOREGROUND, x, io, ret, NULL, NULL, err);
}

int manager_attach(struct manager *m, const char *name, const struct agent_exec_opts *x,
                   const struct agent_io *io, struct agent_exit *ret, struct ak_err *err)
{
        char *shell[] = {"/bin/sh", "-l", NULL};
        struct agent_exec_opts xx = *x;

        if (!xx.argv) {
                /* bash when the sandbox has it (a friendlier prompt), else sh, as upstream */
                int fd = manager_connect(m, name, NULL, NULL);
                struct agent_dirent de;
                if (fd >= 0) {
                        if (agent_file_stat(fd, "/bin/bash", &de, NULL) == 0) {
                                shell[0] = "/bin/bash";
                                free(de.name);
                        }
                        close(fd);
                }
                xx.argv = shell;
        }
        return run_in(m, name, EXEC_ATTACH, &xx, io, ret, NULL, NULL, err);
}

int manager_detach(struct manager *m, const char *name, const struct agent_exec_opts *x,
                   struct agent_detached *ret, struct ak_err *err)
{
        return run_in(m, name, EXEC_DETACH, x, NULL, NULL, ret, NULL, err);
}

/* ---- detached commands ---- */

void detached_list_done(struct detached_list *l)
{
        for (size_t i = 0; i < l->n; i++)
                agent_detached_done(&l->items[i]);
        free(l->items);
        *l = (struct detached_list){0};
}

/* The id first (nothing reaches the sandbox for an id that is not one), then the sandbox. */
static int connect_detached(struct manager *m, const char *name, const char *id, struct ak_err *err)
{
        if (id && !detached_id_is_valid(id))
                return ak_err_set(err, EINVAL, "invalid detached command id");
        return manager_connect(m, name, NULL, err);
}

int manager_detached_list(struct manager *m, const char *name, struct detached_list *ret,
                          struct ak_err *err)
{
        struct detached_list l = {0};
        int fd = connect_detached(m, name, NULL, err), r;

        if (fd < 0)
                return fd;
        r = agent_detach_list(fd, &l.items, &l.n, err);
        close(fd);
        if (r < 0)
                return r;
        *ret = l;
        return 0;
}

int manager_detached_get(struct manager *m, const char *name, const char *id,
                         struct agent_detached *ret, struct ak_err *err)
{
        int fd = connect_detached(m, name, id, err), r;

        if (fd < 0)
                return fd;
        r = agent_detach_get(fd, id, ret, err);
        close(fd);
        return r;
}

int manager_detached_logs(struct manager *m, const char *name, const char *id, bool stderr_stream,
                          int (*sink)(void *ctx, const void *data, size_t len), void *ctx,
                          struct ak_err *err)
{
        int fd = connect_detached(m, name, id, err), r;

        if (fd < 0)
                return fd;
        r = agent_detach_logs(fd, id, stderr_stream, sink, ctx, err);
        close(fd);
        return r;
}

int manager_detached_kill(struct manager *m, const char *name, const char *id,
                          struct agent_detached *ret, struct ak_err *err)
{
        int fd = connect_detached(m, name, id, err), r;

        if (fd < 0)
                return fd;
        r = agent_detach_kill(fd, id, 0, ret, err);
        close(fd);
        if (r >= 0)
                (void)audit_log("command_killed",
                                json_pack("{s:s,s:s,s:o}", "sandbox", name, "id", id, "command",
                                          strv_json_array(ret->argv)));
        return r;
}

/* ---- files ---- */

static void audit_file(const char *type, const char *name, const char *path)
{
        (void)audit_log(type, json_pack("{s:s,s:s}", "sandbox", name, "path", path));
}

int manager_file_read(struct manager *m, const char *name, const char *path, uint64_t limit,
                      int (*sink)(void *ctx, const void *data, size_t len), void *ctx,
                      struct agent_file_info *ret_info, struct ak_err *err)
{
        int fd = manager_connect(m, name, NULL, err), r;

        if (fd < 0)
                return fd;
        r = agent_file_read(fd, path, limit, sink, ctx, ret_info, err);
        close(fd);
        if (r >= 0)
                audit_file("file_read", name, path);
        (void)manager_touch(m, name);
        return r;
}

int manager_file_write(struct manager *m, const char *name, const char *path,
                       const struct manager_write *w, uint64_t *ret_size, struct ak_err *err)
{
        int fd = manager_connect(m, name, NULL, err), r;

        if (fd < 0)
                return fd;
        r = agent_file_write(fd, path, w->mode, w->mode_given, w->parents, w->src_fd, w->data,
                             w->len, ret_size, err);
        close(fd);
        if (r >= 0)
                audit_file("file_written", name, path);
        (void)manager_touch(m, name);
        return r;
}

int manager_file_remove(struct manager *m, const char *name, const char *path, bool recursive,
                        struct ak_err *err)
{
        int fd = manager_connect(m, name, NULL, err), r;

        if (fd < 0)
                return fd;
        r = agent_file_remove(fd, path, recursive, err);
        close(fd);
        if (r >= 0)
                audit_file("file_deleted", name, path);
        (void)manager_touch(m, name);
        return r;
}

/* Collects a command's output for callers that reply in one piece. */
struct capture {
        struct buf *out, *err;
        size_t max;
        bool truncated;
};

static int capture_output(void *ctx, int stream, const void *data, size_t len)
{
        struct capture *c = ctx;
        struct buf *b = stream == 2 ? c->err : c->out;
        size_t room = b->len < c->max ? c->max - b->len : 0;

        if (len > room) {
                c->truncated = true;
                len = room;
        }
        return len && buf_append(b, data, len) < 0 ? -1 : 0;
}

void exec_capture_done(struct exec_capture *c)
{
        buf_done(&c->out);
        buf_done(&c->err);
}

int manager_exec_capture(struct manager *m, const char *name, const struct agent_exec_opts *x,
                         size_t max, struct exec_capture *ret, struct ak_err *err)
{
        struct capture c = {&ret->out, &ret->err, max, false};
        struct agent_io io = {
            .stdin_fd = -1, .signal_fd = -1, .tty_fd = -1, .on_output = capture_output, .ctx = &c};
        int r = run_in(m, name, EXEC_FOREGROUND, x, &io, &ret->exit, NULL, &ret->backend, err);

        ret->truncated = c.truncated;
        return r;
}
