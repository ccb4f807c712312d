// SPDX-License-Identifier: Apache-2.0
/*
 * slirp4netns integration. The options below are the network policy of an "on" sandbox:
 * outbound only, no host loopback, ports only where published (and only on 127.0.0.1). Change
 * them only together with tests/integration/test_isolation.py.
 */
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"

#define READY_TIMEOUT_MS 10000

extern char **environ;

static const char *slirp_path(void)
{
        static const char *const candidates[] = {"/usr/bin/slirp4netns",
                                                 "/usr/local/bin/slirp4netns"};
        const char *env = secure_getenv("AGENTKERNEL_SLIRP4NETNS");

        if (env && *env)
                return access(env, X_OK) == 0 ? env : NULL;
        for (size_t i = 0; i < ARRAY_SIZE(candidates); i++)
                if (access(candidates[i], X_OK) == 0)
                        return candidates[i];
        return NULL;
}

bool net_available(char *why, size_t why_len)
{
        if (!slirp_path()) {
                (void)snprintf(why, why_len,
                               "slirp4netns was not found (apt-get install slirp4netns), so "
                               "sandboxes cannot have network; use --no-network");
                return false;
        }
        /* Unprivileged, slirp4netns opens the tun device itself inside the sandbox. */
        if (geteuid() != 0 && access("/dev/net/tun", R_OK | W_OK) < 0) {
                (void)snprintf(why, why_len,
                               "rootless sandboxes need read-write access to /dev/net/tun for "
                               "network (here: %s); run as root, make it mode 0666, or use "
                               "--no-network",
                               strerror(errno));
                return false;
        }
        return true;
}

/* One request on slirp4netns' API socket. */
static int api_hostfwd(const char *api_socket, const struct port_spec *p, struct ak_err *err)
{
        cleanup_close int fd = -1;
        char req[256], resp[512];
        ssize_t n;
        int r;

        fd = unix_connect(api_socket, err);
        if (fd < 0)
                return fd;
        (void)snprintf(req, sizeof(req),
                       "{\"execute\": \"add_hostfwd\", \"arguments\": {\"proto\": \"%s\", "
                       "\"host_addr\": \"127.0.0.1\", \"host_port\": %d, \"guest_addr\": \"%s\", "
                       "\"guest_port\": %u}}",
                       p->udp ? "udp" : "tcp", p->host_port > 0 ? p->host_port : p->container_port,
                       NET_GUEST_ADDR, (unsigned)p->container_port);
        r = write_all(fd, req, strlen(req));
        if (r < 0)
                return ak_err_errno(err, r, "slirp4netns API");
        (void)shutdown(fd, SHUT_WR);
        n = read(fd, resp, sizeof(resp) - 1);
        if (n <= 0)
                return ak_err_set(err, EIO, "slirp4netns API: no answer");
        resp[n] = '\0';
        if (!strstr(resp, "\"return\""))
                return ak_err_set(err, EADDRINUSE, "cannot publish port %d: %s",
                                  p->host_port > 0 ? p->host_port : p->container_port, resp);
        return 0;
}

int net_launch(pid_t pid, int exit_fd, const char *api_socket, struct net_handle *ret,
               struct ak_err *err)
{
        const char *slirp = slirp_path();
        char pidbuf[16], userns[64], api_arg[4200];
        const char *argv[20];
        size_t n = 0;
        int ready[2] = {-1, -1};
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        sigset_t none, def;
        pid_t child;
        int r;

        if (!slirp) {
                close(exit_fd);
                return ak_err_set(err, ENOENT,
                                  "network requested but slirp4netns is not installed (apt-get "
                                  "install slirp4netns), or start with --no-network");
        }
        if (pipe2(ready, O_CLOEXEC) < 0) {
                r = errno;
                close(exit_fd);
                return ak_err_errno(err, r, "pipe");
        }
        (void)snprintf(pidbuf, sizeof(pidbuf), "%d", (int)pid);
        (void)snprintf(userns, sizeof(userns), "--userns-path=/proc/%d/ns/user", (int)pid);
        argv[n++] = "slirp4netns";
        argv[n++] = "--configure";
        argv[n++] = "--mtu=65520";
        argv[n++] = "--disable-host-loopback";
        argv[n++] = "--enable-sandbox";
        argv[n++] = "--enable-seccomp";
        argv[n++] = "--ready-fd=3";
        argv[n++] = "--exit-fd=4";
        if (geteuid() != 0)
                argv[n++] = userns;
        if (api_socket) {
                (void)snprintf(api_arg, sizeof(api_arg), "--api-socket=%s", api_socket);
                argv[n++] = api_arg;
        }
        argv[n++] = pidbuf;
        argv[n++] = "tap0";
        argv[n] = NULL;

        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        if (!secure_getenv("AGENTKERNEL_DEBUG"))
                posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, ready[1], 3);
        posix_spawn_file_actions_adddup2(&fa, exit_fd, 4);
        /* slirp4netns gets a clean signal state, not the caller's blocked or ignored signals,
         * and its own session, so a terminal's Ctrl-C never reaches it. */
        sigemptyset(&none);
        sigemptyset(&def);
        sigaddset(&def, SIGPIPE);
        sigaddset(&def, SIGINT);
        sigaddset(&def, SIGTERM);
        sigaddset(&def, SIGHUP);
        sigaddset(&def, SIGQUIT);
        sigaddset(&def, SIGCHLD);
        posix_spawnattr_init(&attr);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &def);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                            POSIX_SPAWN_SETSID);
        r = posix_spawn(&child, slirp, &fa, &attr, (char *const *)argv, environ);
        posix_spawnattr_destroy(&attr);
        posix_spawn_file_actions_destroy(&fa);
        close(ready[1]);
        close(exit_fd);
        if (r != 0) {
                close(ready[0]);
                return ak_err_errno(err, r, "cannot run slirp4netns");
        }
        ret->pid = child;
        ret->ready_fd = ready[0];
        return 0;
}

void net_abort(struct net_handle *h)
{
        if (h->pid > 0) {
                (void)kill(h->pid, SIGKILL);
                (void)waitpid(h->pid, NULL, 0);
        }
        if (h->ready_fd >= 0)
                close(h->ready_fd);
        h->pid = 0;
        h->ready_fd = -1;
}

int net_wait(struct net_handle *h, const char *api_socket, const struct port_spec *ports,
             size_t n_ports, struct ak_err *err)
{
        struct pollfd p = {h->ready_fd, POLLIN, 0};
        char c = 0;
        int pr, r;

        do
                pr = poll(&p, 1, READY_TIMEOUT_MS);
        while (pr < 0 && errno == EINTR);
        if (pr <= 0 || read(h->ready_fd, &c, 1) != 1 || c != '1') {
                net_abort(h);
                return ak_err_set(err, EIO, "slirp4netns failed to set up the sandbox network%s",
                                  pr == 0 ? " (timed out)" : "");
        }
        close(h->ready_fd);
        h->ready_fd = -1;
        for (size_t i = 0; i < n_ports; i++) {
                r = api_hostfwd(api_socket, &ports[i], err);
                if (r < 0) {
                        net_abort(h);
                        return r;
                }
        }
        /* slirp4netns stays our child until we exit, then init reaps it. */
        return 0;
}
