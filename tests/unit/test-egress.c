// SPDX-License-Identifier: Apache-2.0
/* core/egress.c: the policy a sandbox is created with (command-line rules, upstream's
 * [security.domains] exactly as upstream documents it, [network] hosts, the built-in list under
 * the command line's rules), the policy checker (net-policy's parser),
 * and the control protocol spoken to a fake proxy (a test double: a thread on the other end of a
 * SOCK_SEQPACKET socketpair that records what it got and answers as agentkernel-proxy would). */
#include <errno.h>
#include <pthread.h>
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

#include "core/egress.h"
#include "shared/json-util.h"

static json_t *load(const char *text)
{
        json_error_t e;
        json_t *j = json_loads(text, 0, &e);
        assert_non_null(j);
        return j;
}

static void assert_json(const json_t *got, const char *want)
{
        json_t *w = load(want);
        if (!json_equal(got, w)) {
                char *s = got ? json_dumps(got, JSON_COMPACT) : NULL;
                fail_msg("got %s, want %s", s ? s : "NULL", want);
        }
        json_decref(w);
}

static const char *rule_host(const json_t *p, size_t i)
{
        return json_string_value(
            json_object_get(json_array_get(json_object_get(p, "rules"), i), "host"));
}

static const char *rule_action(const json_t *p, size_t i)
{
        return json_string_value(
            json_object_get(json_array_get(json_object_get(p, "rules"), i), "action"));
}

static void test_build(void **unused)
{
        char *deny[] = {"evil.example.com", NULL};
        char *allow[] = {"*.example.com:443", "198.18.0.0/24", NULL};
        char *d_allow[] = {"*.github.com", "pypi.org", NULL};
        char *d_block[] = {"gist.github.com", NULL};
        struct ak_err err = {0};
        json_t *p = (json_t *)1, *hosts = load("{\"api.internal\": \"198.18.0.2\"}");
        size_t n;

        (void)unused;
        /* nothing asked: no policy (the proxy's built-in one applies) */
        assert_int_equal(egress_policy_build(NULL, NULL, NULL, NULL, false, false, NULL, &p, &err),
                         0);
        assert_null(p);
        /* command line only: its rules, deny first, before the built-in ones; default deny */
        assert_int_equal(egress_policy_build(deny, allow, NULL, NULL, false, false, NULL, &p, &err),
                         0);
        assert_string_equal(json_string_value(json_object_get(p, "default")), "deny");
        assert_string_equal(rule_action(p, 0), "deny");
        assert_string_equal(rule_host(p, 0), "evil.example.com");
        assert_string_equal(rule_action(p, 1), "allow");
        assert_string_equal(rule_host(p, 1), "*.example.com");
        assert_json(json_object_get(json_array_get(json_object_get(p, "rules"), 1), "ports"),
                    "[443]");
        assert_string_equal(rule_host(p, 2), "198.18.0.0/24");
        assert_true(json_array_size(json_object_get(p, "rules")) > 10); /* the built-in list */
        assert_int_equal(egress_policy_check(p, &err), 0);
        json_decref(p);
        /* upstream's domains: block first, then allow; allowlist_only decides the default; no
         * built-in list under them */
        assert_int_equal(
            egress_policy_build(NULL, NULL, d_allow, d_block, true, true, hosts, &p, &err), 0);
        n = json_array_size(json_object_get(p, "rules"));
        assert_int_equal(n, 3);
        assert_string_equal(json_string_value(json_object_get(p, "default")), "deny");
        assert_string_equal(rule_action(p, 0), "deny");
        assert_string_equal(rule_host(p, 0), "gist.github.com");
        assert_string_equal(rule_host(p, 1), "*.github.com");
        assert_string_equal(rule_host(p, 2), "pypi.org");
        assert_json(json_object_get(p, "hosts"), "{\"api.internal\":\"198.18.0.2\"}");
        assert_int_equal(egress_policy_check(p, &err), 0);
        json_decref(p);
        assert_int_equal(
            egress_policy_build(NULL, NULL, d_allow, d_block, true, false, NULL, &p, &err), 0);
        assert_string_equal(json_string_value(json_object_get(p, "default")), "allow");
        json_decref(p);
        /* the command line comes before the config */
        assert_int_equal(egress_policy_build(deny, NULL, d_allow, NULL, true, true, NULL, &p, &err),
                         0);
        assert_string_equal(rule_host(p, 0), "evil.example.com");
        assert_string_equal(rule_host(p, 1), "*.github.com");
        json_decref(p);
        /* static names alone keep the built-in rules */
        assert_int_equal(egress_policy_build(NULL, NULL, NULL, NULL, false, false, hosts, &p, &err),
                         0);
        assert_true(json_array_size(json_object_get(p, "rules")) > 10);
        assert_json(json_object_get(p, "hosts"), "{\"api.internal\":\"198.18.0.2\"}");
        json_decref(p);
        /* a bad pattern is refused with its source named */
        char *bad[] = {"a..b", NULL};
        assert_int_equal(egress_policy_build(NULL, bad, NULL, NULL, false, false, NULL, &p, &err),
                         -EINVAL);
        assert_non_null(strstr(ak_err_msg(&err), "--allow-host"));
        json_decref(hosts);
}

static void test_rule_text(void **unused)
{
        static const char *const good[] = {"*",           "*.example.com", "example.com.",
                                           "a-b.c_d.org", "198.18.0.7",    "198.18.0.0/24",
                                           "host:1",      "host:65535"};
        static const char *const bad[] = {"",          "a..b",       "*.*.com", "ex ample.com",
                                          "host:0",    "host:65536", "host:x",  "198.18.0.0/33",
                                          "[::1]:443", "a/b"};
        struct ak_err err = {0};

        (void)unused;
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
                if (egress_host_rule_check(good[i], &err) < 0)
                        fail_msg("'%s' was refused: %s", good[i], ak_err_msg(&err));
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (egress_host_rule_check(bad[i], &err) != -EINVAL)
                        fail_msg("'%s' was accepted", bad[i]);
}

static void test_check(void **unused)
{
        static const char *const good[] = {
            "{\"default\":\"allow\"}",
            "{\"default\":\"deny\",\"rules\":[{\"action\":\"allow\",\"host\":\"*.x.org\","
            "\"ports\":[80,443],\"methods\":[\"GET\"]}],\"hosts\":{\"a.internal\":\"10.0.0.1\"},"
            "\"dns_servers\":[\"198.18.0.53\"]}",
        };
        static const char *const bad[] = {
            "[]",
            "{\"default\":\"maybe\"}",
            "{\"default\":\"deny\",\"rules\":{}}",
            "{\"default\":\"deny\",\"rules\":[{\"action\":\"allow\"}]}",
            "{\"default\":\"deny\",\"rules\":[{\"action\":\"permit\",\"host\":\"x.org\"}]}",
            "{\"default\":\"deny\",\"rules\":[{\"action\":\"allow\",\"host\":\"x..org\"}]}",
            "{\"default\":\"deny\",\"rules\":[{\"action\":\"allow\",\"host\":\"x.org\","
            "\"ports\":[0]}]}",
            "{\"default\":\"deny\",\"hosts\":{\"a.internal\":\"fe80::1\"}}",
            "{\"default\":\"deny\",\"frobnicate\":true}",
        };
        struct ak_err err = {0};

        (void)unused;
        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                json_t *p = load(good[i]);
                if (egress_policy_check(p, &err) < 0)
                        fail_msg("refused %s: %s", good[i], ak_err_msg(&err));
                json_decref(p);
        }
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                json_t *p = load(bad[i]);
                if (egress_policy_check(p, &err) >= 0)
                        fail_msg("accepted %s", bad[i]);
                json_decref(p);
        }
}

/* ---- the fake proxy ---- */

struct fake {
        int fd;
        const char *reply;
        char got[4096];
        int n_fds;
        int fds[8];
};

static void *fake_proxy(void *arg)
{
        struct fake *f = arg;
        union {
                char buf[CMSG_SPACE(sizeof(int) * 8)];
                struct cmsghdr align;
        } cm;
        struct iovec iov = {f->got, sizeof(f->got) - 1};
        struct msghdr mh = {
            .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf, .msg_controllen = sizeof(cm)};
        ssize_t n = recvmsg(f->fd, &mh, MSG_CMSG_CLOEXEC);

        if (n > 0) {
                f->got[n] = '\0';
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
                        if (c->cmsg_type == SCM_RIGHTS) {
                                f->n_fds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                                memcpy(f->fds, CMSG_DATA(c), sizeof(int) * (size_t)f->n_fds);
                        }
        }
        if (f->reply)
                (void)send(f->fd, f->reply, strlen(f->reply), 0);
        else
                (void)shutdown(f->fd, SHUT_RDWR); /* the proxy died: no reply */
        return NULL;
}

static json_t *exchange(const char *reply, const json_t *req, const int *fds, size_t n_fds,
                        struct fake *f, int *ret)
{
        int sp[2];
        pthread_t t;
        struct ak_err err = {0};
        json_t *out = NULL;

        assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
        memset(f, 0, sizeof(*f));
        f->fd = sp[1];
        f->reply = reply;
        assert_int_equal(pthread_create(&t, NULL, fake_proxy, f), 0);
        *ret = egress_request(sp[0], req, fds, n_fds, &out, &err);
        assert_int_equal(pthread_join(t, NULL), 0);
        close(sp[0]);
        close(sp[1]);
        if (*ret < 0)
                assert_true(strlen(ak_err_msg(&err)) > 0);
        return out;
}

static void test_protocol(void **unused)
{
        json_t *req = load("{\"op\":\"register\",\"sandbox\":\"s\",\"uuid\":\"u\"}");
        int fds[5], r;
        struct fake f;
        json_t *out, *got;
        struct stat a, b;

        (void)unused;
        for (size_t i = 0; i < 5; i++)
                fds[i] = dup(2);
        out = exchange("{\"ok\":true}", req, fds, 5, &f, &r);
        assert_int_equal(r, 0);
        assert_non_null(out);
        got = load(f.got);
        assert_json(got, "{\"op\":\"register\",\"sandbox\":\"s\",\"uuid\":\"u\"}");
        json_decref(got);
        /* the fds arrive in order, as the proxy's own */
        assert_int_equal(f.n_fds, 5);
        for (int i = 0; i < 5; i++) {
                assert_int_equal(fstat(fds[i], &a), 0);
                assert_int_equal(fstat(f.fds[i], &b), 0);
                assert_true(a.st_ino == b.st_ino);
                close(f.fds[i]);
                close(fds[i]);
        }
        json_decref(out);
        /* a refusal is an error with the proxy's message */
        out = exchange("{\"ok\":false,\"error\":\"no such sandbox 's'\"}", req, NULL, 0, &f, &r);
        assert_int_equal(r, -EIO);
        assert_null(out);
        /* garbage, a non-object, or no reply at all (closed) is an error, never a success */
        out = exchange("not json", req, NULL, 0, &f, &r);
        assert_int_equal(r, -EIO);
        out = exchange("[true]", req, NULL, 0, &f, &r);
        assert_int_equal(r, -EIO);
        out = exchange("{\"ok\":1}", req, NULL, 0, &f, &r);
        assert_int_equal(r, -EIO);
        out = exchange(NULL, req, NULL, 0, &f, &r);
        assert_true(r < 0);
        json_decref(req);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_build),
            cmocka_unit_test(test_rule_text),
            cmocka_unit_test(test_check),
            cmocka_unit_test(test_protocol),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
