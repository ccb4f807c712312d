// SPDX-License-Identifier: Apache-2.0
/* The agent protocol codec: round trips, and every way a hostile peer can lie about lengths. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "agent/client.h"
#include "agent/proto.h"
#include "shared/cleanup.h"
#include "shared/strv.h"

static void test_roundtrip(void **unused)
{
        cleanup_buf struct buf b = BUF_INIT;
        struct ak_msg m;
        char **argv = NULL;
        size_t n = 0;
        uint64_t v = 0;
        char *cwd = NULL;
        const char nonutf8[] = "\xff\xfe bytes";
        size_t st;
        (void)unused;

        st = ak_msg_begin(&b, AK_EXEC);
        ak_put_str(&b, AK_T_ARG, "echo");
        ak_put_str(&b, AK_T_ARG, "a  b\nnew\"line'");
        ak_put_str(&b, AK_T_ARG, nonutf8);
        ak_put_str(&b, AK_T_ARG, "");
        ak_put_str(&b, AK_T_CWD, "/tmp");
        ak_put_u64(&b, AK_T_FLAGS, AK_EXEC_TTY | AK_EXEC_STDIN);
        assert_int_equal(ak_msg_end(&b, st), 0);

        assert_int_equal(ak_frame_parse((const uint8_t *)b.data, b.len, &m), (ssize_t)b.len);
        assert_int_equal(m.type, AK_EXEC);
        assert_int_equal(ak_msg_validate(&m), 0);
        assert_int_equal(ak_get_strv(&m, AK_T_ARG, 100, &argv, &n), 0);
        assert_int_equal(n, 4);
        assert_string_equal(argv[1], "a  b\nnew\"line'");
        assert_string_equal(argv[2], nonutf8);
        assert_string_equal(argv[3], "");
        assert_null(argv[4]);
        assert_int_equal(ak_get_str(&m, AK_T_CWD, &cwd), 0);
        assert_string_equal(cwd, "/tmp");
        assert_int_equal(ak_get_u64(&m, AK_T_FLAGS, &v), 0);
        assert_true(v == (AK_EXEC_TTY | AK_EXEC_STDIN));
        assert_int_equal(ak_get_u64(&m, AK_T_TIMEOUT_MS, &v), -ENOENT);
        strv_free(argv);
        free(cwd);
}

static void test_partial_frames(void **unused)
{
        cleanup_buf struct buf b = BUF_INIT;
        struct ak_msg m;
        (void)unused;
        ak_put_frame(&b, AK_STDOUT, "hello", 5);
        for (size_t i = 0; i < b.len; i++)
                assert_int_equal(ak_frame_parse((const uint8_t *)b.data, i, &m), 0);
        assert_int_equal(ak_frame_parse((const uint8_t *)b.data, b.len, &m), 13);
        assert_memory_equal(m.payload, "hello", 5);
}

static void test_hostile_lengths(void **unused)
{
        uint8_t frame[64] = {0};
        struct ak_msg m;
        (void)unused;
        /* a header announcing more than the maximum is refused outright */
        frame[0] = 0xff;
        frame[1] = 0xff;
        frame[2] = 0xff;
        frame[3] = 0x7f;
        assert_int_equal(ak_frame_parse(frame, sizeof(frame), &m), -EBADMSG);

        /* a field claiming more bytes than the frame has */
        memset(frame, 0, sizeof(frame));
        frame[0] = 10; /* payload length */
        frame[4] = AK_EXEC;
        frame[8] = AK_T_ARG; /* tag */
        frame[10] = 0xff;    /* field length 255 > 4 remaining */
        assert_int_equal(ak_frame_parse(frame, 18, &m), 18);
        assert_int_equal(ak_msg_validate(&m), -EBADMSG);

        /* a truncated field header */
        frame[0] = 3;
        assert_int_equal(ak_frame_parse(frame, 11, &m), 11);
        assert_int_equal(ak_msg_validate(&m), -EBADMSG);
}

static void test_nul_in_strings(void **unused)
{
        cleanup_buf struct buf b = BUF_INIT;
        struct ak_msg m;
        char **v = NULL;
        char *s = NULL;
        size_t st;
        (void)unused;
        st = ak_msg_begin(&b, AK_EXEC);
        ak_put_bytes(&b, AK_T_ARG, "a\0b", 3);
        ak_put_bytes(&b, AK_T_CWD, "/x\0/y", 5);
        ak_msg_end(&b, st);
        assert_true(ak_frame_parse((const uint8_t *)b.data, b.len, &m) > 0);
        assert_int_equal(ak_msg_validate(&m), 0);
        /* strings become C strings: an embedded NUL would silently truncate, so it is refused */
        assert_int_equal(ak_get_strv(&m, AK_T_ARG, 10, &v, NULL), -EBADMSG);
        assert_int_equal(ak_get_str(&m, AK_T_CWD, &s), -EBADMSG);
}

static void test_limits(void **unused)
{
        cleanup_buf struct buf b = BUF_INIT;
        struct ak_msg m;
        char **v = NULL;
        size_t st;
        (void)unused;
        st = ak_msg_begin(&b, AK_EXEC);
        for (int i = 0; i < 20; i++)
                ak_put_str(&b, AK_T_ARG, "x");
        ak_msg_end(&b, st);
        assert_true(ak_frame_parse((const uint8_t *)b.data, b.len, &m) > 0);
        assert_int_equal(ak_get_strv(&m, AK_T_ARG, 10, &v, NULL), -E2BIG);
        /* a message too large to send is refused by the encoder */
        buf_reset(&b);
        st = ak_msg_begin(&b, AK_EXEC);
        {
                char *big = malloc(AK_FRAME_MAX);
                memset(big, 'a', AK_FRAME_MAX - 1);
                big[AK_FRAME_MAX - 1] = 0;
                ak_put_str(&b, AK_T_ARG, big);
                free(big);
        }
        assert_int_equal(ak_msg_end(&b, st), -EMSGSIZE);
}

static void test_read_frame_eof(void **unused)
{
        int sv[2];
        cleanup_buf struct buf b = BUF_INIT;
        struct ak_msg m;
        (void)unused;
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        assert_int_equal(ak_write_frame(sv[0], AK_PING, NULL, 0), 0);
        assert_int_equal(write(sv[0], "\x05\x00", 2), 2); /* half a header */
        close(sv[0]);
        assert_int_equal(ak_read_frame(sv[1], &b, &m), 0);
        assert_int_equal(m.type, AK_PING);
        assert_int_equal(ak_read_frame(sv[1], &b, &m), -EBADMSG);
        assert_int_equal(ak_read_frame(sv[1], &b, &m), -EPIPE);
        close(sv[1]);
}

static void test_conn(void **unused)
{
        int sv[2];
        struct ak_conn c;
        struct ak_msg m;
        cleanup_buf struct buf b = BUF_INIT;
        (void)unused;
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
        ak_put_frame(&b, AK_STDOUT, "one", 3);
        ak_put_frame(&b, AK_STDERR, "two", 3);
        assert_int_equal(write(sv[0], b.data, b.len), (ssize_t)b.len);
        ak_conn_init(&c, sv[1]);
        assert_true(ak_conn_fill(&c) > 0);
        assert_int_equal(ak_conn_next(&c, &m), 1);
        assert_int_equal(m.type, AK_STDOUT);
        assert_int_equal(ak_conn_next(&c, &m), 1);
        assert_int_equal(m.type, AK_STDERR);
        assert_memory_equal(m.payload, "two", 3);
        assert_int_equal(ak_conn_next(&c, &m), 0);
        close(sv[0]);
        assert_int_equal(ak_conn_fill(&c), 0);
        assert_true(c.eof);
        ak_conn_done(&c);
        close(sv[1]);
}

/* Output read straight into frames: each read becomes one whole frame after what is queued,
 * and a read that gets nothing adds nothing. */
static void test_put_frame_from_fd(void **unused)
{
        int p[2];
        cleanup_buf struct buf b = BUF_INIT;
        struct ak_msg m;
        ssize_t n, used;
        (void)unused;
        assert_int_equal(pipe2(p, O_NONBLOCK), 0);
        ak_put_frame(&b, AK_STDERR, "first", 5);
        assert_int_equal(ak_put_frame_from_fd(&b, AK_STDOUT, p[0], AK_CHUNK), -EAGAIN);
        assert_int_equal(b.len, AK_FRAME_HDR + 5);
        assert_int_equal(write(p[1], "hello world", 11), 11);
        assert_int_equal(ak_put_frame_from_fd(&b, AK_STDOUT, p[0], 5), 5); /* capped */
        assert_int_equal(ak_put_frame_from_fd(&b, AK_STDOUT, p[0], AK_CHUNK), 6);
        close(p[1]);
        assert_int_equal(ak_put_frame_from_fd(&b, AK_STDOUT, p[0], AK_CHUNK), 0);
        assert_int_equal(ak_put_frame_from_fd(&b, AK_STDOUT, p[0], AK_FRAME_MAX + 1), -EMSGSIZE);
        close(p[0]);
        used = ak_frame_parse((const uint8_t *)b.data, b.len, &m);
        assert_true(used > 0);
        assert_int_equal(m.type, AK_STDERR);
        n = ak_frame_parse((const uint8_t *)b.data + used, b.len - (size_t)used, &m);
        assert_true(n > 0);
        assert_int_equal(m.type, AK_STDOUT);
        assert_int_equal(m.len, 5);
        assert_memory_equal(m.payload, "hello", 5);
        used += n;
        n = ak_frame_parse((const uint8_t *)b.data + used, b.len - (size_t)used, &m);
        assert_true(n > 0);
        assert_int_equal(m.len, 6);
        assert_memory_equal(m.payload, " world", 6);
        assert_int_equal((size_t)(used + n), b.len);
}

/* A peer that answers HELLO with uuid (NULL: without one) on the other end of a socketpair. */
static int identify_against(const char *uuid)
{
        cleanup_buf struct buf out = BUF_INIT;
        struct ak_err err = {0};
        int sv[2], r;
        size_t st;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        st = ak_msg_begin(&out, AK_HELLO);
        ak_put_u64(&out, AK_T_VERSION, AK_PROTO_VERSION);
        ak_put_u64(&out, AK_T_PID, 1);
        if (uuid)
                ak_put_str(&out, AK_T_UUID, uuid);
        assert_int_equal(ak_msg_end(&out, st), 0);
        assert_int_equal(ak_write_buf(sv[1], &out), 0);
        r = agent_identify(sv[0], "01a24cb1-e720-7533-895d-2a94d49c7424", &err);
        close(sv[0]);
        close(sv[1]);
        return r;
}

static void test_identify(void **unused)
{
        (void)unused;
        assert_int_equal(identify_against("01a24cb1-e720-7533-895d-2a94d49c7424"), 0);
        assert_int_equal(identify_against("01A24CB1-E720-7533-895D-2A94D49C7424"), 0);
        /* another sandbox's agent, an older agent, a lying one */
        assert_int_equal(identify_against("01a24cb1-e720-7533-895d-2a94d49c7425"), -EPERM);
        assert_int_equal(identify_against(NULL), -EPROTO);
        assert_int_equal(identify_against("01a24cb1-e720-7533-895d-2a94d49c7424\n"), -EBADMSG);
        assert_int_equal(identify_against(""), -EBADMSG);
}

static void test_identify_silent_or_gone(void **unused)
{
        struct ak_err err = {0};
        int sv[2];
        (void)unused;
        (void)signal(SIGPIPE, SIG_IGN); /* as every host program does */
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        close(sv[1]); /* the agent is gone */
        assert_true(agent_identify(sv[0], "01a24cb1-e720-7533-895d-2a94d49c7424", &err) < 0);
        close(sv[0]);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_roundtrip),
            cmocka_unit_test(test_partial_frames),
            cmocka_unit_test(test_hostile_lengths),
            cmocka_unit_test(test_nul_in_strings),
            cmocka_unit_test(test_limits),
            cmocka_unit_test(test_read_frame_eof),
            cmocka_unit_test(test_conn),
            cmocka_unit_test(test_put_frame_from_fd),
            cmocka_unit_test(test_identify),
            cmocka_unit_test(test_identify_silent_or_gone),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
