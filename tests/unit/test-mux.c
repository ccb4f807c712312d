// SPDX-License-Identifier: Apache-2.0
/*
 * The channel multiplexer (src/agent/mux.c) with both of its ends: a host end accepting
 * connections and a guest end connecting each channel to an echo server, over a socketpair
 * that stands in for the virtio-serial port. Data must arrive intact in both directions, a
 * stalled reader must not hold up another channel (the window), and a peer that breaks the
 * rules must end the link rather than grow a buffer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/mux.h"
#include "shared/err.h"
#include "shared/fd-util.h"

static char dir[64], host_sock[128], echo_sock[128];
static pid_t kids[3];

static void echo_server(int lfd)
{
        for (;;) {
                int c = accept(lfd, NULL, NULL);
                if (c < 0)
                        _exit(0);
                if (fork() == 0) {
                        char b[65536];
                        ssize_t n;
                        while ((n = read(c, b, sizeof(b))) > 0)
                                if (write_all(c, b, (size_t)n) < 0)
                                        _exit(0);
                        _exit(0);
                }
                close(c);
        }
}

static int setup(void **unused)
{
        int link[2], elfd, hlfd;
        struct ak_err e = {0};
        (void)unused;

        signal(SIGPIPE, SIG_IGN);
        (void)snprintf(dir, sizeof(dir), "/tmp/ak-test-mux-XXXXXX");
        assert_non_null(mkdtemp(dir));
        (void)snprintf(host_sock, sizeof(host_sock), "%s/host.sock", dir);
        (void)snprintf(echo_sock, sizeof(echo_sock), "%s/echo.sock", dir);
        elfd = unix_listen(echo_sock, 16, &e);
        hlfd = unix_listen(host_sock, 16, &e);
        assert_true(elfd >= 0 && hlfd >= 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, link), 0);
        if ((kids[0] = fork()) == 0)
                echo_server(elfd);
        if ((kids[1] = fork()) == 0)
                _exit(mux_run(link[1], -1, echo_sock, 1, NULL) < 0);
        if ((kids[2] = fork()) == 0)
                _exit(mux_run(link[0], hlfd, NULL, 0, NULL) < 0);
        close(link[0]);
        close(link[1]);
        close(elfd);
        close(hlfd);
        return 0;
}

static int teardown(void **unused)
{
        (void)unused;
        for (size_t i = 0; i < 3; i++) {
                kill(kids[i], SIGKILL);
                waitpid(kids[i], NULL, 0);
        }
        unlink(host_sock);
        unlink(echo_sock);
        rmdir(dir);
        return 0;
}

/* Writes len pattern bytes and reads them back, interleaved (so neither side's buffers need to
 * hold it all). */
static void echo_through(int fd, size_t len)
{
        uint8_t *out = malloc(len), *in = malloc(len);
        size_t sent = 0, got = 0;

        assert_non_null(out);
        assert_non_null(in);
        for (size_t i = 0; i < len; i++)
                out[i] = (uint8_t)(i * 7 + i / 251);
        (void)fd_set_nonblock(fd, true);
        while (got < len) {
                struct pollfd p = {fd, (short)(POLLIN | (sent < len ? POLLOUT : 0)), 0};
                assert_true(poll(&p, 1, 10000) > 0);
                if ((p.revents & POLLOUT) && sent < len) {
                        ssize_t n = write(fd, out + sent, len - sent);
                        if (n > 0)
                                sent += (size_t)n;
                        if (sent == len)
                                shutdown(fd, SHUT_WR);
                }
                if (p.revents & POLLIN) {
                        ssize_t n = read(fd, in + got, len - got);
                        if (!(n > 0 || (n < 0 && errno == EAGAIN)))
                                fail_msg("read %zd (%s) after %zu of %zu bytes", n, strerror(errno),
                                         got, len);
                        if (n > 0)
                                got += (size_t)n;
                }
        }
        assert_memory_equal(in, out, len);
        {
                char c;
                (void)fd_set_nonblock(fd, false);
                assert_int_equal(read(fd, &c, 1), 0); /* the echo's end closes after ours */
        }
        free(out);
        free(in);
}

static void test_roundtrip_large(void **unused)
{
        struct ak_err e = {0};
        int fd = unix_connect(host_sock, &e);
        (void)unused;

        assert_true(fd >= 0);
        echo_through(fd, 5u << 20); /* many windows' worth */
        close(fd);
}

static void test_stalled_channel_does_not_block_others(void **unused)
{
        struct ak_err e = {0};
        int stalled = unix_connect(host_sock, &e), fd;
        static uint8_t junk[1u << 20];
        size_t sent = 0;
        (void)unused;

        /* a channel whose reader never reads: its echo fills its window and stops */
        assert_true(stalled >= 0);
        (void)fd_set_nonblock(stalled, true);
        for (int i = 0; i < 200; i++) {
                ssize_t n = write(stalled, junk, sizeof(junk));
                if (n > 0)
                        sent += (size_t)n;
                usleep(1000);
        }
        assert_true(sent >= 2 * MUX_WINDOW); /* more than a window went in */
        fd = unix_connect(host_sock, &e);
        assert_true(fd >= 0);
        echo_through(fd, 1u << 20); /* another channel still flows */
        close(fd);
        close(stalled);
}

static void test_many_channels(void **unused)
{
        struct ak_err e = {0};
        int fds[40];
        (void)unused;

        for (size_t i = 0; i < 40; i++) {
                fds[i] = unix_connect(host_sock, &e);
                assert_true(fds[i] >= 0);
        }
        for (size_t i = 0; i < 40; i++) {
                echo_through(fds[i], 1000 + i * 3000);
                close(fds[i]);
        }
}

/* A peer that breaks the rules: our end (the host's, or the guest's when is_guest) must give up
 * the link, not grow. */
static void hostile_to(const uint8_t *frame, size_t len, const struct mux_net *net, int is_guest)
{
        int link[2], status;
        struct ak_err e = {0};
        char path[160];
        int lfd;
        pid_t pid;

        (void)snprintf(path, sizeof(path), "%s/hostile.sock", dir);
        unlink(path);
        lfd = unix_listen(path, 4, &e);
        assert_true(lfd >= 0);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, link), 0);
        if ((pid = fork()) == 0)
                _exit(mux_run(link[0], is_guest ? -1 : lfd, is_guest ? path : NULL, is_guest,
                              net) == -EPROTO
                          ? 0
                          : 1);
        close(link[0]);
        assert_int_equal(write_all(link[1], frame, len), 0);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        close(link[1]);
        close(lfd);
        unlink(path);
}

static void hostile(const uint8_t *frame, size_t len)
{
        hostile_to(frame, len, NULL, 0);
}

static void test_hostile_guest_open(void **unused)
{
        /* OPEN may come only from the host */
        const uint8_t f[] = {0, 0, 0, 0, 96, 0, 5, 0};
        (void)unused;
        hostile(f, sizeof(f));
}

static void test_hostile_guest_unknown_type_and_bad_ack(void **unused)
{
        const uint8_t unknown[] = {0, 0, 0, 0, 200, 0, 1, 0};
        const uint8_t bad_ack[] = {2, 0, 0, 0, 100, 0, 1, 0, 1, 2};
        (void)unused;
        hostile(unknown, sizeof(unknown));
        hostile(bad_ack, sizeof(bad_ack));
}

/* DIAL (proxy mode): only from the guest, only to a host that lets it (its relay runs in the
 * VM's capture namespace), only on the guest's half of the ids, with exactly an address and a
 * port. */
static void test_hostile_dial(void **unused)
{
        const uint8_t dial[] = {6, 0, 0, 0, 101, 0, 0x01, 0x80, 127, 0, 0, 1, 0, 80};
        const uint8_t low_id[] = {6, 0, 0, 0, 101, 0, 0x01, 0x00, 127, 0, 0, 1, 0, 80};
        const uint8_t short_len[] = {4, 0, 0, 0, 101, 0, 0x01, 0x80, 127, 0, 0, 1};
        const uint8_t open_high[] = {0, 0, 0, 0, 96, 0, 0x01, 0x80};
        const struct mux_net dial_ok = {{-1, -1}, 1};
        (void)unused;
        hostile_to(dial, sizeof(dial), NULL, 0);                           /* no proxy mode */
        hostile_to(low_id, sizeof(low_id), &dial_ok, 0);                   /* a host's id */
        hostile_to(short_len, sizeof(short_len), &dial_ok, 0);             /* not address + port */
        hostile_to(dial, sizeof(dial), &(struct mux_net){{-1, -1}, 1}, 1); /* to a guest */
        hostile_to(open_high, sizeof(open_high), NULL, 1); /* OPEN on a guest's id */
}

/* A DIAL the host may make: it connects to the address, and the channel carries bytes both
 * ways (a listener of this test on 127.0.0.1). */
static void test_dial_connects_and_relays(void **unused)
{
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t sl = sizeof(sa);
        uint8_t f[8 + 6] = {6, 0, 0, 0, 101, 0, 0x07, 0x80, 127, 0, 0, 1};
        const uint8_t data[] = {4, 0, 0, 0, 97, 0, 0x07, 0x80, 'p', 'i', 'n', 'g'};
        uint8_t got[4], back[8 + 4];
        int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), link[2], c, status;
        pid_t pid;
        (void)unused;

        assert_true(lfd >= 0);
        assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(lfd, 4), 0);
        assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
        memcpy(f + 12, &sa.sin_port, 2);
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, link), 0);
        if ((pid = fork()) == 0) {
                close(link[1]);
                _exit(mux_run(link[0], -1, NULL, 0, &(struct mux_net){{-1, -1}, 1}) == 0 ? 0 : 1);
        }
        close(link[0]);
        assert_int_equal(write_all(link[1], f, sizeof(f)), 0);
        assert_int_equal(write_all(link[1], data, sizeof(data)), 0);
        c = accept(lfd, NULL, NULL);
        assert_true(c >= 0);
        assert_int_equal(read_exact(c, got, sizeof(got)), 0);
        assert_memory_equal(got, "ping", 4);
        assert_int_equal(write_all(c, "pong", 4), 0);
        /* the host acknowledges what it wrote out, then sends what the server answered */
        for (;;) {
                assert_int_equal(read_exact(link[1], back, 8), 0);
                if (back[4] == 97)
                        break;
                assert_int_equal(back[4], 100); /* ACK */
                assert_int_equal(read_exact(link[1], back + 8, 4), 0);
        }
        assert_int_equal(back[0], 4);
        assert_int_equal(back[6] | back[7] << 8, 0x8007);
        assert_int_equal(read_exact(link[1], back + 8, 4), 0);
        assert_memory_equal(back + 8, "pong", 4);
        close(c);
        close(lfd);
        /* the server's end is closed: the host says so on the channel (EOF or CLOSE) before the
         * link ends, so that its write never meets a closed link (a slow host, under valgrind,
         * otherwise raced the close below) */
        for (;;) {
                uint32_t len;
                assert_int_equal(read_exact(link[1], back, 8), 0);
                memcpy(&len, back, 4);
                len = le32toh(len);
                assert_true(len <= 4);
                if (len)
                        assert_int_equal(read_exact(link[1], back + 8, len), 0);
                if (back[4] == 98 || back[4] == 99)
                        break;
        }
        close(link[1]); /* the link ends: so does the host's end */
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_roundtrip_large),
            cmocka_unit_test(test_stalled_channel_does_not_block_others),
            cmocka_unit_test(test_many_channels),
            cmocka_unit_test(test_hostile_guest_open),
            cmocka_unit_test(test_hostile_guest_unknown_type_and_bad_ack),
            cmocka_unit_test(test_hostile_dial),
            cmocka_unit_test(test_dial_connects_and_relays),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
