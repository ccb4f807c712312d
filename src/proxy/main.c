// SPDX-License-Identifier: Apache-2.0
/*
 * agentkernel-proxy: the egress proxy of proxy-mode sandboxes (docs/network.md, "The proxy").
 * One per user and data directory: `agentkernel-proxy --dir DIR` takes DIR/lock (flock: a second
 * one exits at once, status 0, saying so), listens on DIR/control (SOCK_SEQPACKET, 0600), then
 * detaches (unless --foreground) once the socket accepts, so the caller may connect as soon as it
 * returns. Its errors go to DIR/proxy.log when detached.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "proxy/proxy.h"
#include "shared/cleanup.h"

static void usage(FILE *f)
{
        fprintf(f, "usage: agentkernel-proxy --dir DIR [--foreground] [--max-conns N]\n"
                   "         [--max-conns-per-sandbox N] [--header-timeout MS]\n"
                   "         [--idle-timeout MS] [--connect-timeout MS] [--idle-exit S]\n");
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret)
{
        char *end;
        unsigned long v;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (!*s || *end || errno || v < min || v > max)
                return -EINVAL;
        *ret = (unsigned)v;
        return 0;
}

int main(int argc, char **argv)
{
        static const struct option longopts[] = {
            {"dir", required_argument, NULL, 'd'},
            {"foreground", no_argument, NULL, 'f'},
            {"max-conns", required_argument, NULL, 'm'},
            {"max-conns-per-sandbox", required_argument, NULL, 's'},
            {"header-timeout", required_argument, NULL, 'H'},
            {"idle-timeout", required_argument, NULL, 'I'},
            {"connect-timeout", required_argument, NULL, 'C'},
            {"idle-exit", required_argument, NULL, 'x'},
            {"help", no_argument, NULL, 'h'},
            {0},
        };
        struct proxy_opts o = {
            .max_conns = 8192,
            .max_conns_per_sandbox = 1024,
            .header_timeout_ms = 10000,
            .idle_timeout_ms = 300000,
            .connect_timeout_ms = 10000,
            .idle_exit_s = 30,
        };
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        cleanup_close int dirfd = -1, lockfd = -1, lfd = -1;
        int c, idx = 0, pipefd[2];
        char ok;

        while ((c = getopt_long(argc, argv, "d:fh", longopts, &idx)) != -1) {
                int rc = 0;
                switch (c) {
                case 'd':
                        o.dir = optarg;
                        break;
                case 'f':
                        o.foreground = true;
                        break;
                case 'm':
                        rc = parse_uint(optarg, 1, 1 << 20, &o.max_conns);
                        break;
                case 's':
                        rc = parse_uint(optarg, 1, 1 << 20, &o.max_conns_per_sandbox);
                        break;
                case 'H':
                        rc = parse_uint(optarg, 10, 3600000, &o.header_timeout_ms);
                        break;
                case 'I':
                        rc = parse_uint(optarg, 10, 86400000, &o.idle_timeout_ms);
                        break;
                case 'C':
                        rc = parse_uint(optarg, 10, 3600000, &o.connect_timeout_ms);
                        break;
                case 'x':
                        rc = parse_uint(optarg, 0, 86400, &o.idle_exit_s);
                        break;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
                if (rc < 0) {
                        fprintf(stderr, "agentkernel-proxy: bad value '%s' for --%s\n", optarg,
                                longopts[idx].name);
                        return 2;
                }
        }
        if (!o.dir || optind != argc) {
                usage(stderr);
                return 2;
        }
        /* secrets' values and the sandboxes' CA keys live in this process (and its worker): no
         * core dump, no ptrace by the user's other processes (inherited by the worker) */
        (void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        if (mkdir(o.dir, 0700) < 0 && errno != EEXIST) {
                fprintf(stderr, "agentkernel-proxy: cannot create '%s': %m\n", o.dir);
                return 1;
        }
        dirfd = open(o.dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (dirfd < 0) {
                fprintf(stderr, "agentkernel-proxy: cannot open '%s': %m\n", o.dir);
                return 1;
        }
        {
                struct stat st;
                if (fstat(dirfd, &st) < 0 || st.st_uid != getuid() || (st.st_mode & 0077)) {
                        fprintf(stderr,
                                "agentkernel-proxy: '%s' must be a directory of yours that "
                                "nobody else can use (0700)\n",
                                o.dir);
                        return 1;
                }
        }
        lockfd = openat(dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (lockfd < 0) {
                fprintf(stderr, "agentkernel-proxy: cannot open '%s/lock': %m\n", o.dir);
                return 1;
        }
        if (flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
                if (errno == EWOULDBLOCK) {
                        fprintf(stderr, "agentkernel-proxy: already running for '%s'\n", o.dir);
                        return 0;
                }
                fprintf(stderr, "agentkernel-proxy: cannot lock '%s/lock': %m\n", o.dir);
                return 1;
        }
        /* bound by name under the directory: chdir keeps sun_path short */
        if (fchdir(dirfd) < 0)
                return 1;
        (void)unlinkat(dirfd, "control", 0);
        lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "control");
        {
                mode_t old = umask(0177);
                int rc = lfd < 0 ? -1 : bind(lfd, (struct sockaddr *)&sa, sizeof(sa));
                umask(old);
                if (rc < 0 || listen(lfd, 64) < 0) {
                        fprintf(stderr, "agentkernel-proxy: cannot listen on '%s/control': %m\n",
                                o.dir);
                        return 1;
                }
        }
        if (fchmodat(dirfd, "control", 0600, 0) < 0)
                return 1;
        if (o.foreground)
                return supervisor_main(lfd, &o);

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return 1;
        switch (fork()) {
        case -1:
                return 1;
        case 0:
                break;
        default:
                /* the caller returns once the socket is ready */
                close(pipefd[1]);
                return read(pipefd[0], &ok, 1) == 1 ? 0 : 1;
        }
        close(pipefd[0]);
        if (setsid() < 0)
                _exit(1);
        switch (fork()) {
        case -1:
                _exit(1);
        case 0:
                break;
        default:
                _exit(0);
        }
        {
                int null = open("/dev/null", O_RDWR | O_CLOEXEC);
                int logfd = openat(dirfd, "proxy.log",
                                   O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (null >= 0) {
                        dup2(null, 0);
                        dup2(null, 1);
                }
                if (logfd >= 0)
                        dup2(logfd, 2);
                else if (null >= 0)
                        dup2(null, 2);
                if (null > 2)
                        close(null);
                if (logfd > 2)
                        close(logfd);
        }
        ok = 1;
        (void)!write(pipefd[1], &ok, 1);
        close(pipefd[1]);
        _exit(supervisor_main(lfd, &o));
}
