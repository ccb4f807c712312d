// SPDX-License-Identifier: Apache-2.0
/*
 * Sandbox names from the git project of the current directory (upstream's `create --branch` and
 * `list --project`). The work tree's top is the nearest directory upwards with a `.git` (a
 * directory, or a file as in worktrees and submodules: `gitdir: PATH`); the branch is what its
 * HEAD names. Nothing is executed, and every file read is small and bounded.
 */
#include "git-project.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"

#define GIT_FILE_MAX 4096 /* .git files and HEAD are a line */

/* The top of the work tree containing cwd into top, and its git directory into gitdir. */
static int find_top(char top[PATH_MAX], char gitdir[PATH_MAX], struct ak_err *err)
{
        struct stat st;

        if (!getcwd(top, PATH_MAX))
                return ak_err_errno(err, errno, "cannot tell the current directory");
        for (;;) {
                char dotgit[PATH_MAX + 8];
                (void)snprintf(dotgit, sizeof(dotgit), "%s/.git", strcmp(top, "/") ? top : "");
                if (lstat(dotgit, &st) == 0) {
                        cleanup_buf struct buf b = BUF_INIT;
                        const char *p;
                        if (S_ISDIR(st.st_mode)) {
                                (void)snprintf(gitdir, PATH_MAX, "%s", dotgit);
                                return 0;
                        }
                        if (!S_ISREG(st.st_mode) ||
                            read_file_at(AT_FDCWD, dotgit, &b, GIT_FILE_MAX) < 0 || !b.data ||
                            strncmp(b.data, "gitdir: ", 8) != 0)
                                return ak_err_set(err, EINVAL,
                                                  "'%s' is not a git directory or "
                                                  "a 'gitdir:' file",
                                                  dotgit);
                        p = b.data + 8;
                        (void)snprintf(gitdir, PATH_MAX, "%s%s%.*s", p[0] == '/' ? "" : top,
                                       p[0] == '/' ? "" : "/", (int)strcspn(p, "\r\n"), p);
                        return 0;
                }
                if (!strcmp(top, "/"))
                        return ak_err_set(err, ENOENT,
                                          "the current directory is not in a git project");
                *strrchr(top, '/') = '\0';
                if (!top[0])
                        (void)snprintf(top, PATH_MAX, "/");
        }
}

/* Makes s a sandbox-name part in place: [A-Za-z0-9_-] kept, the rest '-', no separator runs. */
static void sanitize(char *s)
{
        char *w = s;

        for (const char *r = s; *r; r++) {
                char c = isalnum((unsigned char)*r) || *r == '_' ? *r : '-';
                if ((c == '-' || c == '_') && (w == s || w[-1] == '-' || w[-1] == '_'))
                        continue;
                *w++ = c;
        }
        while (w > s && (w[-1] == '-' || w[-1] == '_'))
                w--;
        *w = '\0';
}

int git_project(char *name, size_t name_len, char *branch, size_t branch_len, struct ak_err *err)
{
        char top[PATH_MAX], gitdir[PATH_MAX], head[PATH_MAX + 8];
        cleanup_buf struct buf b = BUF_INIT;
        int r = find_top(top, gitdir, err);

        if (r < 0)
                return r;
        (void)snprintf(name, name_len, "%s", strrchr(top, '/')[1] ? strrchr(top, '/') + 1 : "root");
        sanitize(name);
        if (!name[0])
                return ak_err_set(err, EINVAL,
                                  "the git project's directory name '%s' makes no "
                                  "sandbox name",
                                  top);
        if (!branch)
                return 0;
        (void)snprintf(head, sizeof(head), "%s/HEAD", gitdir);
        if (read_file_at(AT_FDCWD, head, &b, GIT_FILE_MAX) < 0 || !b.data ||
            strncmp(b.data, "ref: refs/heads/", 16) != 0)
                return ak_err_set(err, EINVAL,
                                  "the git project has no branch checked out "
                                  "(a detached HEAD?): name the sandbox instead");
        (void)snprintf(branch, branch_len, "%.*s", (int)strcspn(b.data + 16, "\r\n"), b.data + 16);
        return 0;
}

int git_sandbox_name(char *out, size_t len, struct ak_err *err)
{
        char project[NAME_MAX + 1], branch[256];
        int r = git_project(project, sizeof(project), branch, sizeof(branch), err);

        if (r < 0)
                return r;
        (void)snprintf(out, len, "%s-%s", project, branch);
        sanitize(out);
        if (strlen(out) > 63) {
                out[63] = '\0';
                sanitize(out);
        }
        return 0;
}
