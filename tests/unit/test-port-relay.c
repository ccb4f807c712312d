// SPDX-License-Identifier: Apache-2.0
/* Published ports in proxy mode (backend/port-relay): the relay against a fake agent that hands
 * back what a hostile sandbox could — a UDP socket, a unix socket, a pipe, two fds, no fd, a TCP
 * socket connected to another port, a TCP socket of another network namespace — and the one
 * thing it must take: a TCP socket connected to 127.0.0.1:PORT in the sandbox's namespace (here,
 * this test's own). Only that one carries a byte. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/proto.h"
#include "backend/port-relay.h"
#include "shared/fd-util.h"

enum reply { R_GOOD, R_UDP, R_UNIX, R_PIPE, R_TWO, R_NONE, R_OTHER_PORT, R_OTHER_NS, R_ERROR };

struct world {
        char dir[64], sock_path[128];
        int agent_listen, agent_opath;
        int server, decoy; /* 127.0.0.1:sb_port (the sandbox's server), 127.0.0.1:decoy_port */
        uint16_t host_port, sb_port, decoy_port;
        pid_t sandbox; /* stands for the sandbox's first process */
        int pidfd;
        bool no_pidfd; /* pidfd_open is ENOSYS: under valgrind (3.19 lacks it), not the kernel */
};

static struct world w;

static int tcp_listen(uint16_t *port)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof(sa);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        assert_true(fd >= 0);
        sa.sin_port = htons(*port);
        assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(fd, 16), 0);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
        *port = ntohs(sa.sin_port);
        return fd;
}

static int tcp_connect(int type, uint16_t port)
{
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons(port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);

        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        return fd;
}

/* A TCP connection made in a network namespace of its own (root only), -1 where it cannot; its
 * server there says "evil" and waits until ns_end(). */
static pid_t ns_child = -1;
static int ns_sp = -1;

static int other_ns_socket(void)
{
        int sp[2], fd = -1;
        size_t n = 0;
        char b;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        ns_child = fork();
        if (ns_child == 0) {
                struct ifreq ifr = {0};
                uint16_t port = w.sb_port; /* the same port, in another namespace */
                int s, l = -1, c = -1, a = -1;
                close(sp[0]);
                if (unshare(CLONE_NEWNET) == 0 && (s = socket(AF_INET, SOCK_DGRAM, 0)) >= 0) {
                        memcpy(ifr.ifr_name, "lo", 3);
                        ifr.ifr_flags = IFF_UP;
                        (void)ioctl(s, SIOCSIFFLAGS, &ifr);
                        l = tcp_listen(&port);
                        c = tcp_connect(SOCK_STREAM, port);
                        a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
                }
                (void)fd_send(sp[1], "x", 1, &c, c >= 0 ? 1 : 0);
                if (a >= 0)
                        (void)!write(a, "evil", 4);
                (void)!read(sp[1], &b, 1); /* until ns_end() */
                _exit(0);
        }
        close(sp[1]);
        if (fd_recv(sp[0], &b, 1, &fd, 1, &n) < 0 || n != 1)
                fd = -1;
        ns_sp = sp[0];
        return fd;
}

static void ns_end(void)
{
        if (ns_child > 0) {
                close(ns_sp);
                (void)waitpid(ns_child, NULL, 0);
        }
        ns_child = -1;
}

/* Serves one TCP_CONNECT as the fake agent; returns the server side of a good connection. */
static int fake_agent(enum reply how)
{
        uint8_t req[64], ok[AK_FRAME_HDR] = {0, 0, 0, 0, AK_OK};
        struct pollfd p = {.fd = w.agent_listen, .events = POLLIN};
        int a, fds[2] = {-1, -1}, p2[2], n = 1, mine = -1;

        assert_int_equal(poll(&p, 1, 5000), 1);
        a = accept4(w.agent_listen, NULL, NULL, SOCK_CLOEXEC);
        assert_true(a >= 0);
        assert_true(read(a, req, sizeof(req)) == AK_FRAME_HDR + 14);
        assert_int_equal(req[4], AK_TCP_CONNECT);
        assert_int_equal(req[14] | req[15] << 8, w.sb_port);
        switch (how) {
        case R_GOOD:
                fds[0] = tcp_connect(SOCK_STREAM, w.sb_port);
                mine = accept4(w.server, NULL, NULL, SOCK_CLOEXEC);
                break;
        case R_UDP:
                fds[0] = tcp_connect(SOCK_DGRAM, w.sb_port);
                break;
        case R_UNIX:
                assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p2), 0);
                fds[0] = p2[0];
                mine = p2[1];
                break;
        case R_PIPE:
                assert_int_equal(pipe2(p2, O_CLOEXEC), 0);
                fds[0] = p2[1];
                mine = p2[0];
                break;
        case R_TWO:
                fds[0] = tcp_connect(SOCK_STREAM, w.sb_port);
                fds[1] = tcp_connect(SOCK_STREAM, w.sb_port);
                mine = accept4(w.server, NULL, NULL, SOCK_CLOEXEC);
                close(accept4(w.server, NULL, NULL, SOCK_CLOEXEC));
                n = 2;
                break;
        case R_NONE:
                n = 0;
                break;
        case R_OTHER_PORT:
                fds[0] = tcp_connect(SOCK_STREAM, w.decoy_port);
                mine = accept4(w.decoy, NULL, NULL, SOCK_CLOEXEC);
                break;
        case R_OTHER_NS:
                fds[0] = other_ns_socket();
                assert_true(fds[0] >= 0);
                break;
        case R_ERROR:
                n = 0;
                ok[4] = AK_ERROR;
                break;
        default:
                fail();
        }
        if (n && fds[0] < 0)
                n = 0;
        assert_int_equal(fd_send(a, ok, sizeof(ok), fds, (size_t)n), 0);
        for (int i = 0; i < 2; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        close(a);
        return mine;
}

/* The host's side: what the relay lets through of "ping", and what comes back. */
static void check(enum reply how, bool passes)
{
        int c = tcp_connect(SOCK_STREAM, w.host_port), mine;
        struct timeval tv = {5, 0};
        char buf[16] = {0};
        ssize_t k;

        assert_true(c >= 0);
        (void)setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        mine = fake_agent(how);
        (void)send(c, "ping", 4, MSG_NOSIGNAL);
        if (passes) {
                assert_true(mine >= 0);
                (void)setsockopt(mine, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                assert_int_equal(read(mine, buf, 4), 4);
                assert_memory_equal(buf, "ping", 4);
                assert_int_equal(write(mine, "pong", 4), 4);
                assert_int_equal(read(c, buf, 4), 4);
                assert_memory_equal(buf, "pong", 4);
        } else {
                /* what the sandbox's end says never reaches the host's */
                if (mine >= 0)
                        (void)!write(mine, "evil", 4);
                k = read(c, buf, sizeof(buf));
                assert_true(k == 0 || (k < 0 && errno == ECONNRESET)); /* closed, nothing */
                if (mine >= 0) { /* whatever the sandbox handed back got no byte */
                        (void)fcntl(mine, F_SETFL, O_NONBLOCK);
                        assert_true(read(mine, buf, sizeof(buf)) <= 0);
                }
        }
        if (mine >= 0)
                close(mine);
        close(c);
        ns_end();
}

static int setup(void **state)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct port_spec ps = {0};
        struct ak_err err = {0};
        int netns;
        (void)state;

        memset(&w, 0, sizeof(w));
        (void)snprintf(w.dir, sizeof(w.dir), "/tmp/test-port-relay-XXXXXX");
        assert_non_null(mkdtemp(w.dir));
        (void)snprintf(w.sock_path, sizeof(w.sock_path), "%s/agent.sock", w.dir);
        w.agent_listen = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        memcpy(sa.sun_path, w.sock_path, strlen(w.sock_path) + 1);
        assert_int_equal(bind(w.agent_listen, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(w.agent_listen, 16), 0);
        w.agent_opath = open(w.sock_path, O_PATH | O_CLOEXEC);
        assert_true(w.agent_opath >= 0);
        w.server = tcp_listen(&w.sb_port);
        w.decoy = tcp_listen(&w.decoy_port);
        close(tcp_listen(&w.host_port)); /* a free port */
        w.sandbox = fork();
        if (w.sandbox == 0) {
                pause();
                _exit(0);
        }
        w.pidfd = (int)syscall(SYS_pidfd_open, w.sandbox, 0);
        if (w.pidfd < 0 && errno == ENOSYS) {
                /* the relay needs a pidfd: the tests that run it are skipped, nothing is left */
                w.no_pidfd = true;
                return 0;
        }
        assert_true(w.pidfd >= 0);
        netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
        ps.host_port = w.host_port;
        ps.container_port = w.sb_port;
        assert_int_equal(port_relay_start(&ps, 1, w.agent_opath, w.pidfd, netns, &err), 0);
        close(netns);
        return 0;
}

static int teardown(void **state)
{
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons(w.host_port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int one = 1, fd = -1, i;
        (void)state;

        kill(w.sandbox, SIGKILL);
        (void)waitpid(w.sandbox, NULL, 0);
        if (w.no_pidfd) {
                close(w.agent_opath);
                close(w.agent_listen);
                close(w.server);
                close(w.decoy);
                unlink(w.sock_path);
                rmdir(w.dir);
                return 0;
        }
        /* the relay is gone with the sandbox: its port is free again */
        for (i = 0; i < 100; i++) {
                fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
                if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
                        break;
                close(fd);
                fd = -1;
                usleep(20 * 1000);
        }
        assert_true(fd >= 0);
        close(fd);
        close(w.pidfd);
        close(w.agent_opath);
        close(w.agent_listen);
        close(w.server);
        close(w.decoy);
        unlink(w.sock_path);
        rmdir(w.dir);
        return 0;
}

static void test_good_socket_relays(void **unused)
{
        (void)unused;
        if (w.no_pidfd) { /* meson's TAP reading takes cmocka's skip for a failure */
                print_message("# no pidfd_open here (valgrind): the relay cannot run\n");
                return;
        }
        check(R_GOOD, true);
        check(R_GOOD, true); /* and again: the relay serves one connection after another */
}

static void test_hostile_replies_carry_nothing(void **unused)
{
        static const enum reply bad[] = {R_UDP,  R_UNIX,       R_PIPE,     R_TWO,
                                         R_NONE, R_OTHER_PORT, R_OTHER_NS, R_ERROR};
        (void)unused;
        if (w.no_pidfd) { /* meson's TAP reading takes cmocka's skip for a failure */
                print_message("# no pidfd_open here (valgrind): the relay cannot run\n");
                return;
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                if (bad[i] == R_OTHER_NS && geteuid() != 0)
                        continue; /* a namespace of its own needs root here */
                check(bad[i], false);
        }
        check(R_GOOD, true); /* none of them broke the relay */
}

static void test_check_refuses_what_proxy_mode_cannot_publish(void **unused)
{
        struct port_spec udp = {.host_port = 5353, .container_port = 53, .udp = true};
        struct port_spec proxy = {.host_port = 8080, .container_port = 15001};
        struct port_spec dns = {.host_port = 8080, .container_port = 15053};
        struct port_spec fine = {.host_port = 8080, .container_port = 80};
        struct ak_err err = {0};
        (void)unused;

        assert_int_equal(port_relay_check(&udp, 1, &err), -ENOTSUP);
        assert_non_null(strstr(ak_err_msg(&err), "--network full"));
        assert_int_equal(port_relay_check(&proxy, 1, &err), -EINVAL);
        assert_int_equal(port_relay_check(&dns, 1, &err), -EINVAL);
        assert_int_equal(port_relay_check(&fine, 1, &err), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(test_good_socket_relays, setup, teardown),
            cmocka_unit_test_setup_teardown(test_hostile_replies_carry_nothing, setup, teardown),
            cmocka_unit_test(test_check_refuses_what_proxy_mode_cannot_publish),
        };
        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
