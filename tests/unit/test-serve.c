// SPDX-License-Identifier: Apache-2.0
/* The trust rules of `serve` on their own: the request gate (Host, Origin, Content-Type, the key,
 * their order), the generated key file, and who owns a TCP client socket. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "server/apikey.h"
#include "server/gate.h"
#include "server/peer.h"
#include "shared/fd-util.h"

static const char *const keys[] = {"k1", "a-longer-key"};
static const struct gate_host hosts[] = {
    {"myhost.example", false}, {"[fe80::1]", false}, {"proxy.example", true}};
static const struct gate_config cfg = {keys, 2, false, hosts, 3, 18888};

static void test_hosts(void **unused)
{
        static const char *const good[] = {
            "localhost",          "localhost:18888", "LocalHost:1",  "127.0.0.1",
            "127.0.0.1:80",       "[::1]",           "[::1]:18888",  "myhost.example",
            "myhost.example:443", "[fe80::1]:18888", "proxy.example"};
        static const char *const bad[] = {"",
                                          "evil.example",
                                          "evil.example:18888",
                                          "localhost.evil.example",
                                          "127.0.0.1.nip.io",
                                          "127.0.0.2",
                                          "0.0.0.0",
                                          "::1",
                                          "[::1",
                                          "[::ffff:127.0.0.1]",
                                          "localhost:",
                                          "localhost:0",
                                          "localhost:65536",
                                          "localhost:123456",
                                          "localhost:x",
                                          "local host",
                                          "localhost\t",
                                          "localhost:18888/",
                                          "user@localhost",
                                          "localhost:18888:1",
                                          "[::1]x",
                                          "[]"};
        (void)unused;
        for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
                assert_true(gate_host_allowed(&cfg, good[i]));
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
                if (gate_host_allowed(&cfg, bad[i]))
                        fail_msg("host '%s' was allowed", bad[i]);
        }
        assert_false(gate_host_allowed(&cfg, NULL));
}

static void test_origins(void **unused)
{
        static const char *const good[] = {"http://localhost:18888",      "http://127.0.0.1:18888",
                                           "HTTP://LOCALHOST:18888",      "http://[::1]:18888",
                                           "http://myhost.example:18888", "https://proxy.example",
                                           "https://proxy.example:8443"};
        static const char *const bad[] = {"null",
                                          "",
                                          "http://evil.example",
                                          "http://localhost",
                                          "http://localhost:3000",
                                          "https://localhost",
                                          "http://myhost.example",
                                          "ftp://localhost:18888",
                                          "http://localhost:18888/path",
                                          "http://localhost.evil.example:18888",
                                          "file://",
                                          "chrome-extension://abc",
                                          "localhost:18888"};
        (void)unused;
        for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
                if (!gate_origin_allowed(&cfg, good[i]))
                        fail_msg("origin '%s' was refused", good[i]);
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
                if (gate_origin_allowed(&cfg, bad[i]))
                        fail_msg("origin '%s' was allowed", bad[i]);
        /* port 80 is the default of http:// */
        assert_true(gate_origin_allowed(&(struct gate_config){.port = 80}, "http://localhost"));
}

static void test_content_types(void **unused)
{
        (void)unused;
        assert_true(gate_content_type_json("application/json"));
        assert_true(gate_content_type_json("Application/JSON"));
        assert_true(gate_content_type_json("application/json; charset=utf-8"));
        assert_true(gate_content_type_json(" application/json ;charset=utf-8"));
        assert_false(gate_content_type_json(NULL));
        assert_false(gate_content_type_json(""));
        assert_false(gate_content_type_json("text/plain"));
        assert_false(gate_content_type_json("application/x-www-form-urlencoded"));
        assert_false(gate_content_type_json("multipart/form-data; boundary=x"));
        assert_false(gate_content_type_json("application/jsonp"));
        assert_false(gate_content_type_json("application/json-patch+json"));
        assert_false(gate_content_type_json("text/plain; application/json"));
}

static int check(const struct gate_config *g, struct gate_request rq)
{
        char buf[256];
        const char *msg;
        int status = gate_check(g, &rq, buf, sizeof(buf), &msg);

        assert_true(status == 0 ? msg == NULL : msg != NULL);
        return status;
}

static void test_gate(void **unused)
{
        struct gate_request ok = {
            .http11 = true, .host = "localhost:18888", .n_host = 1, .authorization = "Bearer k1"};
        struct gate_request r;
        struct gate_config open = cfg;

        (void)unused;
        open.no_auth = true;
        assert_int_equal(check(&cfg, ok), 0);
        r = ok;
        r.authorization = "Bearer a-longer-key";
        assert_int_equal(check(&cfg, r), 0);
        r = ok;
        r.authorization = NULL;
        r.x_api_key = "k1";
        assert_int_equal(check(&cfg, r), 0);
        /* the key */
        r = ok;
        r.authorization = NULL;
        assert_int_equal(check(&cfg, r), 401);
        r.authorization = "Bearer k";
        assert_int_equal(check(&cfg, r), 401);
        r.authorization = "Bearer k1 ";
        assert_int_equal(check(&cfg, r), 401);
        r.authorization = "Bearer k12";
        assert_int_equal(check(&cfg, r), 401);
        r.authorization = "Basic k1";
        assert_int_equal(check(&cfg, r), 401);
        r.authorization = "Bearer ";
        assert_int_equal(check(&cfg, r), 401);
        r.authorization = NULL;
        r.open_route = true; /* /health */
        assert_int_equal(check(&cfg, r), 0);
        r.open_route = false;
        r.peer_trusted = true; /* the owner on the unix socket */
        assert_int_equal(check(&cfg, r), 0);
        r.peer_trusted = false;
        assert_int_equal(check(&open, r), 0);
        /* no key configured and no --insecure-no-auth: nobody gets in */
        assert_int_equal(check(&(struct gate_config){.port = 1}, r), 401);
        /* the browser rules hold before the key and without one */
        r = ok;
        r.host = "evil.example:18888";
        assert_int_equal(check(&cfg, r), 403);
        assert_int_equal(check(&open, r), 403);
        r.open_route = true;
        assert_int_equal(check(&open, r), 403);
        r = ok;
        r.origin = "http://evil.example";
        r.n_origin = 1;
        assert_int_equal(check(&open, r), 403);
        r.peer_trusted = true;
        assert_int_equal(check(&open, r), 403);
        r = ok;
        r.sec_fetch_site = "cross-site";
        assert_int_equal(check(&open, r), 403);
        r.sec_fetch_site = "same-origin";
        assert_int_equal(check(&open, r), 0);
        r.sec_fetch_site = "none";
        assert_int_equal(check(&open, r), 0);
        r = ok;
        r.content_type = "text/plain";
        r.n_content_type = 1;
        assert_int_equal(check(&open, r), 415);
        r.has_body = true;
        assert_int_equal(check(&open, r), 415);
        r.content_type = NULL;
        r.n_content_type = 0;
        assert_int_equal(check(&open, r), 415);
        r.content_type = "application/json";
        r.n_content_type = 1;
        assert_int_equal(check(&open, r), 0);
        /* ambiguity */
        r = ok;
        r.n_host = 2;
        assert_int_equal(check(&open, r), 400);
        r = ok;
        r.origin = "http://localhost:18888";
        r.n_origin = 2;
        assert_int_equal(check(&open, r), 400);
        /* HTTP/1.1 needs a Host; HTTP/1.0 may go without (not a browser) */
        r = ok;
        r.host = NULL;
        r.n_host = 0;
        assert_int_equal(check(&cfg, r), 400);
        r.http11 = false;
        assert_int_equal(check(&cfg, r), 0);
}

static void test_key_compare(void **unused)
{
        (void)unused;
        assert_true(gate_key_valid(keys, 2, "k1", 2));
        assert_true(gate_key_valid(keys, 2, "a-longer-key", 12));
        assert_false(gate_key_valid(keys, 2, "k1", 1));
        assert_false(gate_key_valid(keys, 2, "k1\0", 3));
        assert_false(gate_key_valid(keys, 2, "", 0));
        assert_false(gate_key_valid(keys, 0, "", 0));
        assert_false(gate_key_valid(keys, 2, "a-longer-kez", 12));
}

static char *tmp_dir(void)
{
        char *d = strdup("/tmp/ak-test-serve-XXXXXX");
        assert_non_null(d);
        assert_non_null(mkdtemp(d));
        return d;
}

static void test_key_file(void **unused)
{
        char *d = tmp_dir(), *text = NULL, *again = NULL, path[256], sub[256];
        struct ak_err err = {0};
        struct stat st;
        bool created;

        (void)unused;
        /* made once, 0600, 64 hex digits; read back the same */
        (void)snprintf(sub, sizeof(sub), "%s/home/.agentkernel", d);
        assert_int_equal(apikey_load_or_create(sub, &text, &created, &err), 0);
        assert_true(created);
        assert_int_equal(strlen(text), 65);
        assert_int_equal(strspn(text, "0123456789abcdef"), 64);
        (void)snprintf(path, sizeof(path), "%s/api-key", sub);
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(stat(sub, &st), 0);
        assert_int_equal(st.st_mode & 077, 0);
        assert_int_equal(apikey_load_or_create(sub, &again, &created, &err), 0);
        assert_false(created);
        assert_string_equal(text, again);
        free(again);
        again = NULL;
        /* any group/other bit: refused, not rewritten */
        assert_int_equal(chmod(path, 0640), 0);
        assert_int_equal(apikey_load_or_create(sub, &again, &created, &err), -EPERM);
        assert_null(again);
        assert_non_null(strstr(err.msg, "other users"));
        assert_int_equal(chmod(path, 0600), 0);
        /* a symlink is never followed */
        assert_int_equal(unlink(path), 0);
        assert_int_equal(symlink("/etc/hostname", path), 0);
        assert_int_equal(apikey_load_or_create(sub, &again, &created, &err), -ELOOP);
        assert_int_equal(unlink(path), 0);
        /* a directory others can write cannot hold a key */
        assert_int_equal(chmod(sub, 0777), 0);
        assert_int_equal(apikey_load_or_create(sub, &again, &created, &err), -EPERM);
        assert_non_null(strstr(err.msg, "writable by other users"));
        assert_int_equal(chmod(sub, 0700), 0);
        /* an empty file holds no key */
        assert_int_equal(close(open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600)), 0);
        assert_int_equal(apikey_load_or_create(sub, &again, &created, &err), -EINVAL);
        free(text);
        assert_int_equal(rm_rf_at(AT_FDCWD, d), 0);
        free(d);
}

static void test_tcp_owner(void **unused)
{
        struct sockaddr_in a = {.sin_family = AF_INET};
        socklen_t len = sizeof(a);
        uint8_t src[16] = {[10] = 0xff, [11] = 0xff}, dst[16] = {[10] = 0xff, [11] = 0xff};
        struct sockaddr_in cl, sv;
        int l, c, s, diag = peer_diag_open();
        uid_t uid = (uid_t)-1;

        (void)unused;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(l >= 0);
        assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(listen(l, 4), 0);
        assert_int_equal(getsockname(l, (struct sockaddr *)&a, &len), 0);
        c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_int_equal(connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
        s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        assert_true(s >= 0);
        len = sizeof(cl);
        assert_int_equal(getsockname(c, (struct sockaddr *)&cl, &len), 0);
        len = sizeof(sv);
        assert_int_equal(getsockname(s, (struct sockaddr *)&sv, &len), 0);
        memcpy(src + 12, &cl.sin_addr, 4);
        memcpy(dst + 12, &sv.sin_addr, 4);
        /* by sock_diag and by /proc/net/tcp: the client socket is ours */
        assert_int_equal(
            peer_tcp_owner(diag, src, ntohs(cl.sin_port), dst, ntohs(sv.sin_port), &uid), 0);
        assert_int_equal(uid, geteuid());
        uid = (uid_t)-1;
        assert_int_equal(peer_tcp_owner(-1, src, ntohs(cl.sin_port), dst, ntohs(sv.sin_port), &uid),
                         0);
        assert_int_equal(uid, geteuid());
        /* a socket its process closed has no owner any more (it reads as uid 0 in TIME_WAIT) */
        close(c);
        assert_int_equal(
            peer_tcp_owner(diag, src, ntohs(cl.sin_port), dst, ntohs(sv.sin_port), &uid), -ENOENT);
        assert_int_equal(peer_tcp_owner(-1, src, ntohs(cl.sin_port), dst, ntohs(sv.sin_port), &uid),
                         -ENOENT);
        close(s);
        close(l);
        if (diag >= 0)
                close(diag);
}

static void test_conn_limits(void **unused)
{
        struct conn_limits lim = {8, 4, 2};
        struct conns t;
        struct peer owner = {.kind = PEER_TCP, .uid_known = true, .uid = 1000};
        struct peer other = {.kind = PEER_TCP, .uid_known = true, .uid = 2000};
        struct peer third = {.kind = PEER_TCP, .uid_known = true, .uid = 3000};
        struct peer root = {.kind = PEER_TCP, .uid_known = true, .uid = 0};
        struct peer unknown = {.kind = PEER_TCP};
        struct peer sock_owner = {.kind = PEER_UNIX, .uid_known = true, .uid = 1000, .same_ns = 1};
        struct conn *c[16];
        const char *why;
        int fds[16];

        (void)unused;
        for (size_t i = 0; i < 16; i++)
                assert_true((fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0);
        conns_init(&t, 1000, &lim);
        /* another uid: 2, then refused; a third uid: 2, then all others (4) are used */
        assert_int_equal(conns_admit(&t, &other, fds[0], 0, &c[0], &why), 0);
        assert_int_equal(conns_admit(&t, &other, fds[1], 0, &c[1], &why), 0);
        assert_int_equal(conns_admit(&t, &other, fds[2], 0, &c[2], &why), -EUSERS);
        assert_non_null(why);
        assert_int_equal(conns_admit(&t, &third, fds[2], 0, &c[2], &why), 0);
        assert_int_equal(conns_admit(&t, &third, fds[3], 0, &c[3], &why), 0);
        assert_int_equal(conns_admit(&t, &unknown, fds[4], 0, &c[4], &why), -EUSERS);
        /* the owner and root keep the rest */
        assert_int_equal(conns_admit(&t, &owner, fds[4], 0, &c[4], &why), 0);
        assert_int_equal(conns_admit(&t, &owner, fds[5], 0, &c[5], &why), 0);
        assert_int_equal(conns_admit(&t, &root, fds[6], 0, &c[6], &why), 0);
        assert_int_equal(conns_admit(&t, &sock_owner, fds[7], 0, &c[7], &why), 0);
        assert_int_equal(conns_admit(&t, &owner, fds[8], 0, &c[8], &why), -EUSERS);
        assert_int_equal(t.n, 8);
        /* only the owner on the unix socket, in its namespaces, is trusted without a key */
        assert_false(c[0]->trusted || c[4]->trusted || c[6]->trusted);
        assert_true(c[7]->trusted);
        assert_true(c[4]->privileged && c[6]->privileged && !c[0]->privileged);
        /* a connection libmicrohttpd took, then closed: room again */
        assert_ptr_equal(conns_started(&t, fds[0]), c[0]);
        assert_null(conns_started(&t, fds[0])); /* taken once */
        conns_closed(&t, c[0]);
        assert_int_equal(t.n, 7);
        assert_int_equal(conns_admit(&t, &other, fds[8], 0, &c[8], &why), 0);
        assert_int_equal(conns_admit(&t, &owner, fds[9], 0, &c[9], &why), -EUSERS);
        /* an fd number accepted again while its old entry was never started: the old entry is
         * stale (libmicrohttpd closed the fd without taking it) and goes */
        assert_int_equal(conns_admit(&t, &other, fds[1], 0, &c[1], &why), 0);
        assert_int_equal(t.n, 8);
        /* past a deadline: a started connection is shut down and stays until it is closed; one
         * never started is dropped */
        assert_ptr_equal(conns_started(&t, fds[4]), c[4]);
        conns_set_deadline(&t, c[4], 1);
        conns_set_deadline(&t, c[8], 1);
        assert_int_equal(conns_sweep(&t, 2), 1);
        assert_true(c[4]->ended);
        assert_int_equal(t.n, 7);
        assert_int_equal(conns_sweep(&t, 3), 0);
        conns_clear(&t);
        assert_int_equal(t.n, 0);
        for (size_t i = 0; i < 16; i++)
                close(fds[i]);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_hosts),         cmocka_unit_test(test_origins),
            cmocka_unit_test(test_content_types), cmocka_unit_test(test_gate),
            cmocka_unit_test(test_key_compare),   cmocka_unit_test(test_key_file),
            cmocka_unit_test(test_tcp_owner),     cmocka_unit_test(test_conn_limits),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
