// SPDX-License-Identifier: Apache-2.0
/*
 * `export NAME [-o FILE]` (upstream's `sandbox export`, which was `docker export`): a tar of the
 * sandbox's own files, made by tar inside it (every backend alike; upstream's worked on Docker
 * only) and streamed to FILE. Its own files: the root as the sandbox sees it, less what is not
 * the sandbox's — /proc, /sys, /dev, the host's directories it was given (the workspace, volumes,
 * the home view) and, on the host image, the host's read-only trees (/usr, /etc...). What arrives
 * is the sandbox's data: written like cp writes (no link followed, never a setuid bit, the name
 * appears only when complete) and bounded (--max-size).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/host-file.h"
#include "shared/parse-util.h"
#include "shared/strv.h"

#define EXPORT_MAX_DEFAULT (8ull << 30) /* 8 GiB */
#define EXPORT_VOLUMES_MAX 64

struct export_sink {
        int fd;
        uint64_t written, max;
        bool too_big;
        char err_tail[512]; /* the last of tar's stderr, for the message */
};

static int export_output(void *ctx, int stream, const void *data, size_t len)
{
        struct export_sink *s = ctx;

        if (stream == 2) {
                size_t keep = MIN(len, sizeof(s->err_tail) - 1);
                memcpy(s->err_tail, (const char *)data + len - keep, keep);
                s->err_tail[keep] = '\0';
                return 0;
        }
        if (s->written + len > s->max) {
                s->too_big = true;
                return -EFBIG; /* aborts the command */
        }
        s->written += len;
        return write_all(s->fd, data, len);
}

static int opt_max(const struct cli_option *o, const char *arg)
{
        if (parse_size(arg, o->value) < 0 || !*(uint64_t *)o->value)
                return cli_usage_error(cli_current, "--max-size: not a size (e.g. 512M, 4G): '%s'",
                                       arg);
        return 0;
}

/* "--exclude=./" and the first len bytes of path (relative to /), malloc'd, or NULL. */
static char *exclude(const char *path, int len)
{
        char *s = NULL;

        while (len > 0 && *path == '/') {
                path++;
                len--;
        }
        return asprintf(&s, "--exclude=./%.*s", len, path) < 0 ? NULL : s;
}

/* tar's argv for st: everything under / but what is not the sandbox's own. */
static int export_argv(const struct sandbox_state *st, char ***ret)
{
        static const char *const head[] = {"tar", "-C", "/", "-cf", "-"};
        static const char *const never[] = {"proc", "sys", "dev", "workspace", "home/user"};
        static const char *const host_trees[] = {"usr",   "bin",   "sbin",   "lib",
                                                 "lib32", "lib64", "libx32", "etc"};
        bool host = !st->image || !strcmp(st->image, "host");
        cleanup_strv char **v = NULL;
        int r = 0;

        for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(head); i++)
                r = strv_push(&v, head[i]);
        for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(never); i++)
                r = strv_consume(&v, exclude(never[i], (int)strlen(never[i])));
        for (size_t i = 0; r >= 0 && host && i < ARRAY_SIZE(host_trees); i++)
                r = strv_consume(&v, exclude(host_trees[i], (int)strlen(host_trees[i])));
        for (size_t i = 0; r >= 0 && st->volumes && st->volumes[i] && i < EXPORT_VOLUMES_MAX; i++) {
                const char *dest = strchr(st->volumes[i], ':');
                if (dest && dest[1] == '/')
                        r = strv_consume(&v, exclude(dest + 1, (int)strcspn(dest + 1, ":")));
        }
        if (r >= 0)
                r = strv_push(&v, ".");
        if (r < 0)
                return r;
        *ret = TAKE_PTR(v);
        return 0;
}

static int cmd_export(int argc, char **argv)
{
        cleanup_state struct sandbox_state *st = NULL;
        cleanup_strv char **tar_argv = NULL;
        const char *out = NULL;
        uint64_t max = EXPORT_MAX_DEFAULT;
        const struct cli_option options[] = {
            OPT_STRING('o', "output", &out, "FILE", "where the tar goes (default NAME.tar)"),
            OPT_CALLBACK(0, "max-size", &max, "SIZE", "the most it may be (default 8G)", opt_max),
            OPT_END(),
        };
        const struct cli_spec spec = CLI_SPEC_SANDBOX(options);
        struct out_file f = OUT_FILE_INIT;
        cleanup_manager struct manager *m = NULL;
        struct agent_exec_opts x = {0};
        struct export_sink sink = {.max = max};
        struct agent_exit ex = {0};
        struct ak_err err = {0};
        struct agent_io io = {.stdin_fd = -1, .signal_fd = -1, .tty_fd = -1};
        char dest[4096];
        struct cli_args a;
        int r = cli_parse_open(argc, argv, &spec, &a, &m);

        if (r)
                return CLI_PARSE_EXIT(r);
        if (manager_get(m, a.pos[0], &st, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        if (export_argv(st, &tar_argv) < 0) {
                cli_error("out of memory");
                return EXIT_ERROR;
        }
        x.argv = tar_argv;
        (void)snprintf(dest, sizeof(dest), "%s%s", out ? out : a.pos[0], out ? "" : ".tar");
        if (out_file_open(dest, NULL, &f, &err) < 0)
                return cli_fail(&err, EXIT_ERROR);
        sink.fd = f.fd;
        sink.max = max;
        io.on_output = export_output;
        io.ctx = &sink;
        printf("Exporting sandbox '%s' to %s...\n", a.pos[0], dest);
        r = manager_exec(m, a.pos[0], &x, &io, &ex, &err);
        if (r >= 0 && !sink.too_big && ex.code == 0)
                r = out_file_publish(&f, 0644, &err);
        out_file_abort(&f);
        if (sink.too_big) {
                cli_error("the export is larger than --max-size (%llu bytes): nothing written",
                          (unsigned long long)max);
                return EXIT_ERROR;
        }
        if (r < 0)
                return cli_fail(&err, EXIT_ERROR);
        if (ex.code != 0) {
                cli_error("tar in the sandbox failed (exit %d)%s%s: nothing written", ex.code,
                          sink.err_tail[0] ? ": " : "", sink.err_tail);
                return EXIT_ERROR;
        }
        printf("Exported %.1f MB to %s\n", (double)sink.written / 1e6, dest);
        return EXIT_OK;
}

const struct verb verb_export = {
    "export",
    cmd_export,
    "NAME [-o FILE] [--max-size SIZE]",
    "Write a tar of a sandbox's own files (tar runs inside it)",
    "The sandbox's own files as its root reads them: not /proc, /sys, /dev, the workspace,\n"
    "volumes or the home view, nor (host image) the host's /usr, /etc... The sandbox must be\n"
    "running and have tar.\n",
    0,
    NULL};
