// SPDX-License-Identifier: Apache-2.0
/*
 * `template add github:OWNER/REPO[/PATH][@REF]`: one file of a git repository as a template
 * (upstream fetched https://raw.githubusercontent.com/OWNER/REPO/main/PATH with curl). Here git
 * fetches it on the host: a shallow clone without a checkout (nothing of the repository is ever
 * written as files or run: no work tree, so no hooks, filters, attributes or symbolic links
 * take effect), then the one blob is read out of git's object store, after its tree entry said
 * it is a regular file of at most TEMPLATE_MAX_BYTES. The repository cannot make the path mean
 * anything else: PATH is checked (no "..", no "."), and git looks it up in its own trees, where
 * a symbolic link is a blob of its own mode (refused) and never a directory to descend into.
 *
 * git runs with no configuration of the user's or the system's (nothing there can redirect it or
 * run a helper), its home a private temporary directory, only the transport of the base URL
 * allowed, no prompt, a deadline (GIT_FETCH_TIMEOUT_S, its process group killed) and a bound on
 * every file it writes (RLIMIT_FSIZE): a huge repository fails instead of filling the disk.
 * AGENTKERNEL_GITHUB_URL replaces https://github.com (a mirror, or a local repository in tests:
 * https, http, git and file URLs).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/source.h"
#include "core/template.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/macro.h"
#include "shared/time-util.h"

#define GIT_FETCH_TIMEOUT_S 120
#define GIT_FILE_MAX (256ull << 20) /* any file git writes (its pack) */
#define GIT_STDERR_MAX 2048
#define GITHUB_PART_MAX 100
#define GITHUB_PATH_MAX 255
#define GITHUB_DEFAULT_BASE "https://github.com"

/* OWNER or REPO: GitHub's characters, not "." or "..", no leading '-' or '.'. */
static bool part_ok(const char *s, size_t n)
{
        if (n == 0 || n > GITHUB_PART_MAX || s[0] == '-' || s[0] == '.')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
                        return false;
        return true;
}

/* PATH: components as part_ok's (so no "", ".", ".." and no leading '-'), at most
 * GITHUB_PATH_MAX bytes. */
static bool path_ok(const char *p)
{
        size_t n = strlen(p);

        if (n == 0 || n > GITHUB_PATH_MAX)
                return false;
        for (const char *c = p, *end; *c; c = *end ? end + 1 : end) {
                end = strchrnul(c, '/');
                if (!part_ok(c, (size_t)(end - c)))
                        return false;
                if (*end == '/' && !end[1])
                        return false; /* a trailing '/' */
        }
        return true;
}

struct github_spec {
        char owner[GITHUB_PART_MAX + 1], repo[GITHUB_PART_MAX + 1];
        char path[GITHUB_PATH_MAX + 8]; /* + ".toml" */
        char ref[256];                  /* "" : the repository's default branch */
};

static int parse_spec(const char *spec, struct github_spec *g, struct ak_err *err)
{
        const char *s = spec + strlen("github:"), *at = strrchr(s, '@'), *slash;
        char body[GITHUB_PART_MAX * 2 + GITHUB_PATH_MAX + 8];
        size_t n = at ? (size_t)(at - s) : strlen(s);
        char *repo, *path;

        memset(g, 0, sizeof(*g));
        if (n >= sizeof(body))
                return ak_err_set(err, EINVAL, "template spec too long");
        memcpy(body, s, n);
        body[n] = '\0';
        if (at && (source_check("https://github.com/o/r", at + 1, err) < 0 ||
                   strlen(at + 1) >= sizeof(g->ref)))
                return ak_err_prefix(err, "github template");
        if (at)
                (void)snprintf(g->ref, sizeof(g->ref), "%s", at + 1);
        slash = strchr(body, '/');
        if (!slash)
                goto bad;
        repo = body + (slash - body) + 1;
        path = strchr(repo, '/');
        if (path)
                *path++ = '\0';
        if (!part_ok(body, (size_t)(slash - body)) || !part_ok(repo, strlen(repo)) ||
            (path && !path_ok(path)))
                goto bad;
        memcpy(g->owner, body, (size_t)(slash - body));
        n = strlen(repo);
        if (n > 4 && !strcmp(repo + n - 4, ".git"))
                repo[n - 4] = '\0';
        (void)snprintf(g->repo, sizeof(g->repo), "%s", repo);
        if (!path)
                path = "agentkernel.toml";
        n = strlen(path);
        (void)snprintf(g->path, sizeof(g->path), "%s%s", path,
                       n > 5 && !strcmp(path + n - 5, ".toml") ? "" : ".toml");
        return 0;
bad:
        return ak_err_set(err, EINVAL,
                          "github template '%.128s': use github:OWNER/REPO[/PATH][@REF] (names of "
                          "letters, digits and -_.; no '..')",
                          spec);
}

/* The base URL (AGENTKERNEL_GITHUB_URL or GitHub), without a trailing '/'; its scheme into
 * scheme ("https", "http", "git" or "file"). */
static int base_url(char *out, size_t len, char *scheme, size_t scheme_len, struct ak_err *err)
{
        static const char *const schemes[] = {"https", "http", "git", "file"};
        const char *b = secure_getenv("AGENTKERNEL_GITHUB_URL");
        size_t n;

        if (!b || !*b)
                b = GITHUB_DEFAULT_BASE;
        n = strlen(b);
        while (n > 1 && b[n - 1] == '/')
                n--;
        if (n >= len)
                return ak_err_set(err, EINVAL, "AGENTKERNEL_GITHUB_URL is too long");
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)b[i] <= ' ' || b[i] == 0x7f)
                        return ak_err_set(err, EINVAL,
                                          "AGENTKERNEL_GITHUB_URL has spaces or control "
                                          "characters");
        memcpy(out, b, n);
        out[n] = '\0';
        for (size_t i = 0; i < ARRAY_SIZE(schemes); i++) {
                size_t k = strlen(schemes[i]);
                if (!strncmp(out, schemes[i], k) && !strncmp(out + k, "://", 3)) {
                        (void)snprintf(scheme, scheme_len, "%s", schemes[i]);
                        return 0;
                }
        }
        return ak_err_set(err, EINVAL,
                          "AGENTKERNEL_GITHUB_URL must be an https://, http://, git:// or "
                          "file:// URL");
}

/* Runs git (argv after "git" and the fixed options) in dir with the isolation above: its stdout
 * into *out (at most out_max bytes; NULL: discarded), its last words into why. The exit status,
 * or <0. */
static int run_git(const char *home, const char *scheme, char *const *args, struct buf *out,
                   size_t out_max, char *why, size_t why_len)
{
        char allow[64], homev[4096], hooks[] = "core.hooksPath=/dev/null";
        const char *keep[] = {"PATH",     "http_proxy", "https_proxy", "HTTPS_PROXY",
                              "no_proxy", "NO_PROXY",   "ALL_PROXY",   "all_proxy"};
        char *envp[ARRAY_SIZE(keep) + 8], *argv[32];
        char keepv[ARRAY_SIZE(keep)][4096];
        size_t k = 0, a = 0;
        int outp[2], errp[2], status = 0;
        char errbuf[GIT_STDERR_MAX + 1];
        size_t errlen = 0;
        int64_t until = now_monotonic_ns() + GIT_FETCH_TIMEOUT_S * NSEC_PER_SEC;
        pid_t pid;

        (void)snprintf(allow, sizeof(allow), "protocol.%s.allow=always", scheme);
        (void)snprintf(homev, sizeof(homev), "HOME=%s", home);
        envp[k++] = homev;
        envp[k++] = "GIT_CONFIG_NOSYSTEM=1";
        envp[k++] = "GIT_CONFIG_GLOBAL=/dev/null";
        envp[k++] = "GIT_TERMINAL_PROMPT=0";
        envp[k++] = "GIT_ASKPASS=/bin/false";
        envp[k++] = "LC_ALL=C";
        for (size_t i = 0; i < ARRAY_SIZE(keep); i++) {
                const char *v = getenv(keep[i]);
                if (v && (size_t)snprintf(keepv[i], sizeof(keepv[i]), "%s=%s", keep[i], v) <
                             sizeof(keepv[i]))
                        envp[k++] = keepv[i];
        }
        envp[k] = NULL;
        argv[a++] = "git";
        argv[a++] = "-c";
        argv[a++] = "protocol.allow=never";
        argv[a++] = "-c";
        argv[a++] = allow;
        argv[a++] = "-c";
        argv[a++] = hooks;
        argv[a++] = "-c";
        argv[a++] = "transfer.fsckObjects=true";
        argv[a++] = "-c";
        argv[a++] = "core.symlinks=false";
        for (size_t i = 0; args[i] && a + 1 < ARRAY_SIZE(argv); i++)
                argv[a++] = args[i];
        argv[a] = NULL;
        if (pipe2(outp, O_CLOEXEC) < 0)
                return -errno;
        if (pipe2(errp, O_CLOEXEC) < 0) {
                close(outp[0]);
                close(outp[1]);
                return -errno;
        }
        pid = fork();
        if (pid < 0) {
                int e = -errno;
                close(outp[0]);
                close(outp[1]);
                close(errp[0]);
                close(errp[1]);
                return e;
        }
        if (pid == 0) {
                struct rlimit fs = {GIT_FILE_MAX, GIT_FILE_MAX};
                int null = open("/dev/null", O_RDONLY);
                (void)setpgid(0, 0);
                (void)setrlimit(RLIMIT_FSIZE, &fs);
                if (null < 0 || dup2(null, 0) < 0 || dup2(outp[1], 1) < 0 || dup2(errp[1], 2) < 0 ||
                    chdir(home) < 0)
                        _exit(127);
                execvpe("git", argv, envp);
                _exit(127);
        }
        close(outp[1]);
        close(errp[1]);
        /* both pipes to their end or the deadline */
        for (int open_fds = 2; open_fds > 0;) {
                struct pollfd p[2] = {{outp[0], POLLIN, 0}, {errp[0], POLLIN, 0}};
                int64_t left = (until - now_monotonic_ns()) / NSEC_PER_MSEC;
                char chunk[4096];
                if (left <= 0) {
                        (void)kill(-pid, SIGKILL);
                        (void)snprintf(why, why_len, "git took longer than %d s",
                                       GIT_FETCH_TIMEOUT_S);
                        break;
                }
                if (poll(p, 2, (int)left) <= 0)
                        continue;
                for (int i = 0; i < 2; i++) {
                        ssize_t n;
                        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)) || p[i].fd < 0)
                                continue;
                        n = read(p[i].fd, chunk, sizeof(chunk));
                        if (n <= 0) {
                                close(i ? errp[0] : outp[0]);
                                if (i)
                                        errp[0] = -1;
                                else
                                        outp[0] = -1;
                                open_fds--;
                                continue;
                        }
                        if (i == 0 && out) {
                                if (out->len + (size_t)n > out_max) {
                                        (void)kill(-pid, SIGKILL);
                                        (void)snprintf(why, why_len, "more than %zu bytes",
                                                       out_max);
                                        status = -EFBIG;
                                        open_fds = 0;
                                        break;
                                }
                                if (buf_append(out, chunk, (size_t)n) < 0) {
                                        (void)kill(-pid, SIGKILL);
                                        status = -ENOMEM;
                                        open_fds = 0;
                                        break;
                                }
                        } else if (i == 1) {
                                /* the last GIT_STDERR_MAX bytes: git ends with the reason */
                                if ((size_t)n >= GIT_STDERR_MAX) {
                                        memcpy(errbuf, chunk + n - GIT_STDERR_MAX, GIT_STDERR_MAX);
                                        errlen = GIT_STDERR_MAX;
                                } else {
                                        if (errlen + (size_t)n > GIT_STDERR_MAX) {
                                                size_t drop = errlen + (size_t)n - GIT_STDERR_MAX;
                                                memmove(errbuf, errbuf + drop, errlen - drop);
                                                errlen -= drop;
                                        }
                                        memcpy(errbuf + errlen, chunk, (size_t)n);
                                        errlen += (size_t)n;
                                }
                        }
                }
        }
        if (outp[0] >= 0)
                close(outp[0]);
        if (errp[0] >= 0)
                close(errp[0]);
        (void)kill(-pid, SIGKILL); /* what it left behind (a transport helper) */
        {
                int ws = 0;
                while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
                        ;
                if (status < 0)
                        return status;
                if (!why[0]) {
                        errbuf[errlen] = '\0';
                        while (errlen && (errbuf[errlen - 1] == '\n' || errbuf[errlen - 1] == ' '))
                                errbuf[--errlen] = '\0';
                        for (size_t i = 0; i < errlen; i++)
                                if ((unsigned char)errbuf[i] < ' ' || errbuf[i] == 0x7f)
                                        errbuf[i] = ' ';
                        (void)snprintf(why, why_len, "%s", errbuf);
                }
                if (WIFEXITED(ws))
                        return WEXITSTATUS(ws);
                if (WIFSIGNALED(ws) && WTERMSIG(ws) == SIGXFSZ)
                        (void)snprintf(why, why_len, "the repository is larger than %llu MiB",
                                       GIT_FILE_MAX >> 20);
                return 128 + (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
        }
}

int template_fetch_github(const char *spec, char **ret_name, struct buf *ret_text,
                          struct ak_err *err)
{
        struct github_spec g;
        char base[2048], scheme[8], url[2400], tmpl[] = "/tmp/agentkernel-template-XXXXXX";
        char repo_dir[64], why[GIT_STDERR_MAX + 64] = "", mode[16], type[16], sha[80];
        cleanup_buf struct buf ls = BUF_INIT, size = BUF_INIT, text = BUF_INIT;
        const char *name, *slash;
        char *tab;
        unsigned long long bytes;
        int r;

        if ((r = parse_spec(spec, &g, err)) < 0)
                return r;
        if ((r = base_url(base, sizeof(base), scheme, sizeof(scheme), err)) < 0)
                return r;
        (void)snprintf(url, sizeof(url), "%s/%s/%s", base, g.owner, g.repo);
        if (!mkdtemp(tmpl))
                return ak_err_errno(err, errno, "make a temporary directory");
        (void)snprintf(repo_dir, sizeof(repo_dir), "%s/repo", tmpl);
        {
                char *clone[16];
                size_t k = 0;
                clone[k++] = "clone";
                clone[k++] = "--quiet";
                clone[k++] = "--depth=1";
                clone[k++] = "--no-checkout";
                clone[k++] = "--no-tags";
                clone[k++] = "--single-branch";
                if (g.ref[0]) {
                        clone[k++] = "--branch";
                        clone[k++] = g.ref;
                }
                clone[k++] = "--";
                clone[k++] = url;
                clone[k++] = repo_dir;
                clone[k] = NULL;
                r = run_git(tmpl, scheme, clone, NULL, 0, why, sizeof(why));
        }
        if (r != 0) {
                r = ak_err_set(err, EIO, "fetching '%s'%s%s failed: %s", url,
                               g.ref[0] ? " at " : "", g.ref, why[0] ? why : "git failed");
                goto out;
        }
        {
                char *args[] = {"-C", repo_dir, "ls-tree", "HEAD", "--", g.path, NULL};
                r = run_git(tmpl, scheme, args, &ls, 4096, why, sizeof(why));
        }
        if (r != 0 || !ls.data || !(tab = memchr(ls.data, '\t', ls.len))) {
                r = ak_err_set(err, ENOENT, "'%s' has no file '%s'%s%s", url, g.path,
                               g.ref[0] ? " at " : "", g.ref);
                goto out;
        }
        *tab = '\0';
        if (sscanf(ls.data, "%15s %15s %79s", mode, type, sha) != 3 ||
            strspn(sha, "0123456789abcdef") != strlen(sha)) {
                r = ak_err_set(err, EIO, "git listed '%s' unreadably", g.path);
                goto out;
        }
        if (strcmp(type, "blob") || (strcmp(mode, "100644") && strcmp(mode, "100755"))) {
                r = ak_err_set(err, EMEDIUMTYPE, "'%s' in '%s' is %s, not a regular file", g.path,
                               url,
                               !strcmp(mode, "120000")   ? "a symbolic link"
                               : !strcmp(type, "tree")   ? "a directory"
                               : !strcmp(type, "commit") ? "a submodule"
                                                         : "something else");
                goto out;
        }
        {
                char *args[] = {"-C", repo_dir, "cat-file", "-s", sha, NULL};
                r = run_git(tmpl, scheme, args, &size, 64, why, sizeof(why));
        }
        if (r != 0 || !size.data || sscanf(size.data, "%llu", &bytes) != 1) {
                r = ak_err_set(err, EIO, "git could not read '%s': %s", g.path, why);
                goto out;
        }
        if (bytes > TEMPLATE_MAX_BYTES) {
                r = ak_err_set(err, EFBIG, "'%s' is larger than a template may be (%u KiB)", g.path,
                               TEMPLATE_MAX_BYTES >> 10);
                goto out;
        }
        {
                char *args[] = {"-C", repo_dir, "cat-file", "blob", sha, NULL};
                r = run_git(tmpl, scheme, args, &text, TEMPLATE_MAX_BYTES, why, sizeof(why));
        }
        if (r != 0) {
                r = ak_err_set(err, EIO, "git could not read '%s': %s", g.path, why);
                goto out;
        }
        if (memchr(text.data ? text.data : "", '\0', text.len)) {
                r = ak_err_set(err, EMEDIUMTYPE, "'%s' is not text", g.path);
                goto out;
        }
        /* the name: the file's, without .toml (agentkernel.toml: the repository's) */
        slash = strrchr(g.path, '/');
        name = slash ? slash + 1 : g.path;
        if (!strcmp(name, "agentkernel.toml"))
                *ret_name = strdup(g.repo);
        else
                *ret_name = strndup(name, strlen(name) - 5);
        if (!*ret_name) {
                r = ak_err_oom(err);
                goto out;
        }
        *ret_text = text;
        text = (struct buf)BUF_INIT;
        r = 0;
out:
        (void)rm_rf_at(AT_FDCWD, tmpl);
        return r;
}
