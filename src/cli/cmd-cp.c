// SPDX-License-Identifier: Apache-2.0
/*
 * `cp`: files between the host and a sandbox, streamed (any size, constant memory). The host end
 * may be in a directory another user shares: a file from a sandbox is written through out_file
 * (never through a symlink or into a planted file; umask applies; no setuid, setgid or sticky
 * bit), and a source file's symlink is followed only if the caller or root owns it.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "core/validate.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/host-file.h"

/* "name:/path" names a sandbox path unless it starts with '/' or '.' (upstream's rule). */
static bool split_remote(const char *spec, char *name, size_t nlen, const char **path)
{
        const char *colon = strchr(spec, ':');

        if (!colon || spec[0] == '/' || spec[0] == '.' || (size_t)(colon - spec) >= nlen)
                return false;
        memcpy(name, spec, (size_t)(colon - spec));
        name[colon - spec] = '\0';
        *path = colon + 1;
        return true;
}

static int to_fd(void *ctx, const void *data, size_t len)
{
        return write_all(*(int *)ctx, data, len) < 0 ? -1 : 0;
}

static int cmd_cp(int argc, char **argv)
{
        struct cli_args a;
        struct ak_err err = {0};
        struct manager *m = NULL;
        char sname[64], dname[64];
        const char *spath = NULL, *dpath = NULL;
        bool src_remote, dst_remote;
        const struct cli_spec spec = {
            .min_pos = 2, .max_pos = 2, .missing = "a source and a destination are required"};
        int r = cli_parse(argc, argv, &spec, &a);

        if (r)
                return CLI_PARSE_EXIT(r);
        src_remote = split_remote(a.pos[0], sname, sizeof(sname), &spath);
        dst_remote = split_remote(a.pos[1], dname, sizeof(dname), &dpath);
        if (src_remote == dst_remote) {
                return cli_usage_error(cli_current,
                                       src_remote ? "copying between two sandboxes is not "
                                                    "supported"
                                                  : "one side must be a sandbox path (NAME:/path)");
        }
        if ((r = validate_sandbox_path(src_remote ? spath : dpath, &err)) < 0 ||
            (r = validate_name(src_remote ? sname : dname, &err)) < 0)
                return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
        m = cli_manager();
        if (!m)
                return EXIT_ERROR;
        if (src_remote) {
                /* sandbox -> host: into a directory keeps the file's name. The host writes
                 * data it does not trust to a path another user may share: see out_file. */
                struct out_file of = OUT_FILE_INIT;
                bool to_stdout = streq(a.pos[1], "-");
                struct agent_file_info info;
                cleanup_close int dup_out = -1;
                char base[PATH_MAX];
                int out;

                (void)snprintf(base, sizeof(base), "%s", spath);
                if (to_stdout) {
                        dup_out = dup(STDOUT_FILENO);
                        if (dup_out < 0) {
                                cli_error("cannot write to stdout: %s", strerror(errno));
                                r = EXIT_ERROR;
                                goto out;
                        }
                        out = dup_out;
                } else {
                        if (out_file_open(a.pos[1], basename(base), &of, &err) < 0) {
                                r = cli_fail(&err, EXIT_ERROR);
                                goto out;
                        }
                        out = of.fd;
                }
                r = manager_file_read(m, sname, spath, 0, to_fd, &out, &info, &err);
                if (r >= 0 && !to_stdout)
                        r = out_file_publish(&of, info.mode, &err);
                out_file_abort(&of);
                if (r < 0) {
                        r = cli_fail(&err, EXIT_ERROR);
                        goto out;
                }
        } else {
                cleanup_close int in = -1;
                struct stat st;
                bool from_stdin = streq(a.pos[0], "-");
                char remote[PATH_MAX];

                /* into a directory ("NAME:/dir/") keeps the file's name */
                if (dpath[strlen(dpath) - 1] == '/' && !from_stdin) {
                        char base[PATH_MAX];
                        (void)snprintf(base, sizeof(base), "%s", a.pos[0]);
                        (void)snprintf(remote, sizeof(remote), "%s%s", dpath, basename(base));
                        dpath = remote;
                }

                if (from_stdin) {
                        in = dup(STDIN_FILENO);
                        if (in < 0)
                                in = -errno;
                } else {
                        in = open_source_file(a.pos[0]);
                }
                if (in == -ELOOP) {
                        cli_error("'%s' is a symbolic link owned by another user; it is not "
                                  "followed (name its target instead)",
                                  a.pos[0]);
                        r = EXIT_ERROR;
                        goto out;
                }
                if (in < 0 || fstat(in, &st) < 0) {
                        cli_error("cannot read '%s': %s", a.pos[0], strerror(in < 0 ? -in : errno));
                        r = EXIT_ERROR;
                        goto out;
                }
                if (S_ISDIR(st.st_mode)) {
                        cli_error("'%s' is a directory; copying directories is not supported yet",
                                  a.pos[0]);
                        r = EXIT_ERROR;
                        goto out;
                }
                const struct manager_write w = {.mode = st.st_mode & 0777,
                                                .mode_given = !from_stdin,
                                                .parents = true,
                                                .src_fd = in};
                r = manager_file_write(m, dname, dpath, &w, NULL, &err);
                if (r < 0) {
                        r = cli_fail(&err, EXIT_ERROR);
                        goto out;
                }
        }
        r = EXIT_OK;
out:
        manager_free(m);
        return r;
}

const struct verb verb_cp = {
    "cp",      cmd_cp,
    "SRC DST", "Copy a file between the host and a sandbox (NAME:/path on one side; - is stdio)",
    NULL,      0,
    NULL};
