// SPDX-License-Identifier: Apache-2.0
/*
 * The proxy's supervisor (proxy.h): owns the control socket, the registered sandboxes (their
 * policies and fds) and the worker. It answers only peers of its own uid (or root), checks what
 * each registration hands it (a listening TCP socket, a UDP socket, a listening TCP socket, a
 * pidfd, a writable regular file), forwards registrations and policies to the worker and waits
 * for its answer before replying (so a new policy holds when set_policy returns), and restarts
 * the worker when it dies (with backoff), re-sending every registration: while the worker is
 * down the listeners stay open here and connections wait in their backlog, so nothing leaves.
 *
 * Must never: parse bytes from a sandbox, or keep running without sandboxes past the idle time.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "mitm.h"
#include "proxy.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/net-policy.h"

#define MAX_CLIENTS 64
#define MAX_SANDBOXES 4096
#define WORKER_REPLY_MS 5000
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 5000

struct reg {
        char *name, *uuid;
        json_t *policy;
        int fds[PROXY_REG_FDS];
        /* secret injection (mitm.h): the grants as checked (JSON, no values) and parsed (with
         * the values that arrived), the extra upstream trust anchors, the sandbox's CA */
        json_t *secrets;
        struct grant *grants;
        size_t n_grants;
        char *upstream_ca, *ca_pem;
        uint8_t *ca_key;
        size_t ca_key_len;
};

static struct {
        const struct proxy_opts *o;
        int listen_fd;
        int clients[MAX_CLIENTS];
        size_t n_clients;
        struct reg *regs;
        size_t n_regs;
        pid_t worker_pid;
        int worker_pidfd, worker_fd;
        int64_t restart_at, backoff_ms, worker_started;
        int64_t idle_since;
        volatile sig_atomic_t quit;
} S;

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void reg_done(struct reg *r)
{
        free(r->name);
        free(r->uuid);
        json_decref(r->policy);
        json_decref(r->secrets);
        grants_free(r->grants, r->n_grants);
        free(r->upstream_ca);
        free(r->ca_pem);
        secret_free(r->ca_key, r->ca_key_len);
        for (size_t i = 0; i < PROXY_REG_FDS; i++)
                if (r->fds[i] >= 0)
                        close(r->fds[i]);
}

static struct reg *reg_find(const char *name)
{
        for (size_t i = 0; i < S.n_regs; i++)
                if (streq(S.regs[i].name, name))
                        return &S.regs[i];
        return NULL;
}

static void reg_remove(struct reg *r)
{
        size_t i = (size_t)(r - S.regs);
        reg_done(r);
        memmove(&S.regs[i], &S.regs[i + 1], (S.n_regs - i - 1) * sizeof(*r));
        S.n_regs--;
        if (S.n_regs == 0)
                S.idle_since = now_ms();
}

/* Sends req (with raw bytes after a NUL when raw) to the worker and waits for its reply (NULL
 * when the worker is down or dies). */
static json_t *worker_call_raw(const json_t *req, const void *raw, size_t raw_len, const int *fds,
                               size_t n_fds)
{
        struct pollfd p;
        int64_t until = now_ms() + WORKER_REPLY_MS;
        json_t *reply = NULL;
        size_t n = 0;
        int dummy[1];

        if (S.worker_fd < 0 || proxy_send_raw(S.worker_fd, req, raw, raw_len, fds, n_fds) < 0)
                return NULL;
        p = (struct pollfd){.fd = S.worker_fd, .events = POLLIN};
        while (now_ms() < until) {
                int r = poll(&p, 1, (int)(until - now_ms()));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        break;
                if (proxy_recv(S.worker_fd, &reply, dummy, 0, &n) < 0)
                        return NULL;
                return reply;
        }
        return NULL;
}

static json_t *worker_call(const json_t *req, const int *fds, size_t n_fds)
{
        return worker_call_raw(req, NULL, 0, fds, n_fds);
}

/* Hands grant g's value to the worker (a secret_value message like the registrant's). */
static void worker_secret_value(const struct reg *r, const struct grant *g)
{
        cleanup_json json_t *req =
            json_pack("{s:s,s:s,s:s}", "op", "secret_value", "sandbox", r->name, "name", g->name);
        cleanup_json json_t *reply =
            req ? worker_call_raw(req, g->value, g->value_len, NULL, 0) : NULL;
        if (reply && !json_is_true(json_object_get(reply, "ok")))
                fprintf(stderr, "agentkernel-proxy: worker refused a value for '%s'\n", r->name);
}

/* Hands registration r to the worker: the fds, policy, grants and CA (its key as raw bytes),
 * then every value that has arrived. */
static void worker_register(const struct reg *r)
{
        int fds[PROXY_WORKER_FDS] = {r->fds[0], r->fds[1], r->fds[2], r->fds[4]};
        cleanup_json json_t *req = json_pack("{s:s,s:s,s:s,s:O}", "op", "register", "sandbox",
                                             r->name, "uuid", r->uuid, "policy", r->policy);
        cleanup_json json_t *reply = NULL;
        if (req && r->n_grants) {
                json_object_set(req, "secrets", r->secrets);
                json_object_set_new(req, "ca", json_string(r->ca_pem));
                if (r->upstream_ca)
                        json_object_set_new(req, "upstream_ca", json_string(r->upstream_ca));
        }
        reply = req ? worker_call_raw(req, r->n_grants ? r->ca_key : NULL, r->ca_key_len, fds,
                                      PROXY_WORKER_FDS)
                    : NULL;
        if (reply && !json_is_true(json_object_get(reply, "ok"))) {
                fprintf(stderr, "agentkernel-proxy: worker refused '%s': %s\n", r->name,
                        json_string_value(json_object_get(reply, "error")));
                return;
        }
        for (size_t i = 0; reply && i < r->n_grants; i++)
                if (r->grants[i].value)
                        worker_secret_value(r, &r->grants[i]);
}

static void worker_start(void)
{
        int sv[2];
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return;
        pid = fork();
        if (pid < 0) {
                close(sv[0]);
                close(sv[1]);
                return;
        }
        if (pid == 0) {
                /* the worker keeps only its end: the listeners come to it by message */
                int keep[] = {sv[1]};
                (void)close_all_fds_except(3, keep, 1);
                _exit(worker_main(sv[1], S.o));
        }
        close(sv[1]);
        S.worker_fd = sv[0];
        S.worker_pid = pid;
        S.worker_pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        S.worker_started = now_ms();
        for (size_t i = 0; i < S.n_regs; i++)
                worker_register(&S.regs[i]);
}

static void worker_reap(void)
{
        int status;
        if (S.worker_pid > 0)
                (void)waitpid(S.worker_pid, &status, 0);
        if (S.worker_pidfd >= 0)
                close(S.worker_pidfd);
        if (S.worker_fd >= 0)
                close(S.worker_fd);
        S.worker_pid = -1;
        S.worker_pidfd = S.worker_fd = -1;
        /* quick restarts back off; a worker that ran a while restarts at once */
        if (now_ms() - S.worker_started > 10000)
                S.backoff_ms = BACKOFF_MIN_MS;
        else
                S.backoff_ms = S.backoff_ms < BACKOFF_MIN_MS       ? BACKOFF_MIN_MS
                               : S.backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                                   : S.backoff_ms * 2;
        S.restart_at = now_ms() + S.backoff_ms;
        fprintf(stderr, "agentkernel-proxy: worker exited; restarting in %lld ms\n",
                (long long)S.backoff_ms);
}

static bool valid_name(const char *s)
{
        size_t n = s ? strlen(s) : 0;
        if (n == 0 || n > PROXY_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
                        return false;
        return true;
}

static bool sock_is(int fd, int type, bool listening)
{
        int t = 0, acc = 0;
        socklen_t l = sizeof(t);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &l) < 0 || t != type)
                return false;
        l = sizeof(acc);
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l) < 0)
                return false;
        return !!acc == listening;
}

static bool is_pidfd(int fd)
{
        char path[64], target[64];
        ssize_t n;
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, target, sizeof(target) - 1);
        if (n < 0)
                return false;
        target[n] = '\0';
        return streq(target, "anon_inode:[pidfd]");
}

static bool is_log_file(int fd)
{
        struct stat st;
        int fl = fcntl(fd, F_GETFL);
        return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && fl >= 0 &&
               (fl & O_ACCMODE) != O_RDONLY;
}

/* Checks a request's policy; on success *ret is the normalised JSON. No policy at all is the
 * built-in one; a policy without "rules" (say, only [network] hosts) gets the built-in rules
 * (docs/network.md): the normalised JSON spells them out. */
static const char *check_policy(json_t *j, json_t **ret, struct ak_err *err)
{
        cleanup_net_policy struct net_policy *p = NULL, *builtin = NULL;
        if (net_policy_builtin(&builtin, err) < 0)
                return ak_err_msg(err);
        if (!j) {
                p = TAKE_PTR(builtin);
        } else {
                if (net_policy_from_json(j, &p, err) < 0)
                        return ak_err_msg(err);
                if (json_is_object(j) && !json_object_get(j, "rules")) {
                        p->rules = TAKE_PTR(builtin->rules);
                        p->n_rules = builtin->n_rules;
                        builtin->n_rules = 0;
                }
        }
        *ret = net_policy_to_json(p);
        return *ret ? NULL : "out of memory";
}

/* Is pem one or more PEM certificates OpenSSL reads, and nothing else? */
static bool pem_certs_ok(const char *pem)
{
        BIO *b = BIO_new_mem_buf(pem, -1);
        X509 *x;
        size_t n = 0;
        if (!b)
                return false;
        while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL))) {
                X509_free(x);
                n++;
        }
        ERR_clear_error();
        BIO_free(b);
        return n > 0;
}

/* A registration's "secrets" and "upstream_ca" into r, and its CA when there are grants. NULL
 * or why not. */
static const char *check_secrets(json_t *req, struct reg *r, struct ak_err *err)
{
        json_t *secrets = json_object_get(req, "secrets");
        json_t *ca = json_object_get(req, "upstream_ca");

        if (grants_parse(secrets, &r->grants, &r->n_grants, err) < 0)
                return ak_err_msg(err);
        if (ca && !json_is_null(ca)) {
                const char *pem = json_string_value(ca);
                if (!pem || json_string_length(ca) > MITM_UPSTREAM_CA_MAX ||
                    strlen(pem) != json_string_length(ca) || !pem_certs_ok(pem))
                        return "upstream_ca: PEM certificates of at most 32 KiB needed";
                r->upstream_ca = strdup(pem);
                if (!r->upstream_ca)
                        return "out of memory";
        }
        if (!r->n_grants)
                return NULL;
        r->secrets = json_deep_copy(secrets);
        if (!r->secrets)
                return "out of memory";
        if (mitm_ca_new(r->name, &r->ca_pem, &r->ca_key, &r->ca_key_len, err) < 0)
                return ak_err_msg(err);
        return NULL;
}

static json_t *op_register(json_t *req, int *fds, size_t n_fds)
{
        const char *name = json_string_value(json_object_get(req, "sandbox"));
        const char *uuid = json_string_value(json_object_get(req, "uuid"));
        struct ak_err err = {0};
        json_t *policy = NULL;
        const char *why;
        struct reg r, *old, *regs;

        if (!valid_name(name))
                return proxy_error_reply("register: 'sandbox' must be a name of 1..128 "
                                         "[A-Za-z0-9._-]");
        if (n_fds != PROXY_REG_FDS)
                return proxy_error_reply("register: 5 fds needed: tcp listener, dns udp, dns tcp "
                                         "listener, pidfd, log");
        if (!sock_is(fds[0], SOCK_STREAM, true) || !sock_is(fds[1], SOCK_DGRAM, false) ||
            !sock_is(fds[2], SOCK_STREAM, true))
                return proxy_error_reply("register: fds 0-2 must be a listening TCP socket, a UDP "
                                         "socket and a listening TCP socket");
        if (!is_pidfd(fds[3]))
                return proxy_error_reply("register: fd 3 must be a pidfd");
        if (!is_log_file(fds[4]))
                return proxy_error_reply("register: fd 4 must be a regular file open for writing");
        why = check_policy(json_object_get(req, "policy"), &policy, &err);
        if (why)
                return proxy_error_reply(why);
        old = reg_find(name);
        if (!old && S.n_regs >= MAX_SANDBOXES) {
                json_decref(policy);
                return proxy_error_reply("register: too many sandboxes");
        }
        r = (struct reg){.name = strdup(name), .uuid = strdup(uuid ? uuid : ""), .policy = policy};
        for (size_t i = 0; i < PROXY_REG_FDS; i++)
                r.fds[i] = -1;
        if (!r.name || !r.uuid) {
                reg_done(&r);
                return proxy_error_reply("out of memory");
        }
        why = check_secrets(req, &r, &err);
        if (why) {
                json_t *reply = proxy_error_reply(why);
                reg_done(&r);
                return reply;
        }
        memcpy(r.fds, fds, sizeof(r.fds));
        if (old) {
                reg_done(old);
                *old = r;
        } else {
                regs = realloc(S.regs, (S.n_regs + 1) * sizeof(*regs));
                if (!regs) {
                        r.fds[0] = r.fds[1] = r.fds[2] = r.fds[3] = r.fds[4] = -1;
                        reg_done(&r);
                        return proxy_error_reply("out of memory");
                }
                S.regs = regs;
                old = &S.regs[S.n_regs++];
                *old = r;
        }
        /* the fds are the registration's now */
        for (size_t i = 0; i < PROXY_REG_FDS; i++)
                fds[i] = -1;
        worker_register(old);
        if (old->n_grants)
                return json_pack("{s:b,s:s}", "ok", 1, "ca", old->ca_pem);
        return json_pack("{s:b}", "ok", 1);
}

/* {"op":"secret_value","sandbox":NAME,"name":KEY} NUL value: kept (replacing an earlier one) in
 * locked memory and handed to the worker. Never echoed. */
static json_t *op_secret_value(json_t *req, const uint8_t *raw, size_t raw_len)
{
        const char *name = json_string_value(json_object_get(req, "sandbox"));
        const char *key = json_string_value(json_object_get(req, "name"));
        struct reg *r = name ? reg_find(name) : NULL;
        struct grant *g;
        uint8_t *v;

        if (!r)
                return proxy_error_reply("no such sandbox");
        g = grants_find(r->grants, r->n_grants, key);
        if (!g)
                return proxy_error_reply("secret_value: no grant of that name");
        if (!raw || raw_len == 0 || raw_len > MITM_VALUE_MAX || memchr(raw, '\0', raw_len))
                return proxy_error_reply("secret_value: 1..65536 bytes without NUL must follow "
                                         "the JSON and one NUL");
        v = secret_dup(raw, raw_len);
        if (!v)
                return proxy_error_reply("out of memory");
        secret_free(g->value, g->value_len);
        g->value = v;
        g->value_len = raw_len;
        worker_secret_value(r, g);
        return json_pack("{s:b}", "ok", 1);
}

static json_t *op_set_policy(json_t *req)
{
        const char *name = json_string_value(json_object_get(req, "sandbox"));
        struct reg *r = name ? reg_find(name) : NULL;
        struct ak_err err = {0};
        json_t *policy = NULL;
        const char *why;

        if (!r)
                return proxy_error_reply("no such sandbox");
        why = check_policy(json_object_get(req, "policy"), &policy, &err);
        if (why)
                return proxy_error_reply(why);
        json_decref(r->policy);
        r->policy = policy;
        {
                cleanup_json json_t *w = json_pack("{s:s,s:s,s:O}", "op", "set_policy", "sandbox",
                                                   name, "policy", policy);
                cleanup_json json_t *reply = w ? worker_call(w, NULL, 0) : NULL;
                /* a worker that is down gets the policy with the registration at its restart */
                if (reply && !json_is_true(json_object_get(reply, "ok")))
                        return json_incref(reply);
        }
        return json_pack("{s:b}", "ok", 1);
}

static json_t *op_stats(void)
{
        cleanup_json json_t *req = json_pack("{s:s}", "op", "stats");
        json_t *reply = worker_call(req, NULL, 0);
        if (!reply)
                reply =
                    json_pack("{s:b,s:n,s:o}", "ok", 1, "worker_pid", "sandboxes", json_object());
        json_object_set_new(reply, "supervisor_pid", json_integer(getpid()));
        json_object_set_new(reply, "registered", json_integer((json_int_t)S.n_regs));
        return reply;
}

static json_t *handle(json_t *req, const uint8_t *raw, size_t raw_len, int *fds, size_t n_fds)
{
        const char *op = json_string_value(json_object_get(req, "op"));
        const char *name = json_string_value(json_object_get(req, "sandbox"));

        if (!op)
                return proxy_error_reply("'op' missing");
        if (streq(op, "register"))
                return raw ? proxy_error_reply("only secret_value takes bytes after the JSON")
                           : op_register(req, fds, n_fds);
        if (n_fds)
                return proxy_error_reply("only register takes fds");
        if (streq(op, "set_policy"))
                return op_set_policy(req);
        if (streq(op, "secret_value"))
                return op_secret_value(req, raw, raw_len);
        if (raw)
                return proxy_error_reply("only secret_value takes bytes after the JSON");
        if (streq(op, "get_policy")) {
                struct reg *r = name ? reg_find(name) : NULL;
                if (!r)
                        return proxy_error_reply("no such sandbox");
                return json_pack("{s:b,s:O}", "ok", 1, "policy", r->policy);
        }
        if (streq(op, "unregister")) {
                struct reg *r = name ? reg_find(name) : NULL;
                if (!r)
                        return proxy_error_reply("no such sandbox");
                cleanup_json json_t *w =
                    json_pack("{s:s,s:s}", "op", "unregister", "sandbox", name);
                cleanup_json json_t *reply = worker_call(w, NULL, 0);
                reg_remove(r);
                return json_pack("{s:b}", "ok", 1);
        }
        if (streq(op, "stats"))
                return op_stats();
        return proxy_error_reply("unknown op");
}

static void client_readable(size_t idx)
{
        int fd = S.clients[idx], fds[PROXY_REG_FDS];
        size_t n_fds = 0;
        json_t *req = NULL, *reply;
        uint8_t *raw = NULL;
        size_t raw_len = 0;
        int rc = proxy_recv_raw(fd, &req, &raw, &raw_len, fds, PROXY_REG_FDS, &n_fds);

        if (rc == -EAGAIN || rc == -EINTR)
                return;
        if (rc < 0) {
                if (rc == -EMSGSIZE || rc == -EBADMSG) {
                        reply = proxy_error_reply(
                            rc == -EMSGSIZE ? "message over 64 KiB of JSON (and 64 KiB of value)"
                                            : "bad message");
                        (void)proxy_send(fd, reply, NULL, 0);
                        json_decref(reply);
                        return;
                }
                close(fd);
                S.clients[idx] = S.clients[--S.n_clients];
                return;
        }
        reply = handle(req, raw, raw_len, fds, n_fds);
        secret_free(raw, raw_len);
        for (size_t i = 0; i < n_fds; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        if (reply)
                (void)proxy_send(fd, reply, NULL, 0);
        json_decref(reply);
        json_decref(req);
}

static void accept_client(void)
{
        struct ucred cred;
        socklen_t l = sizeof(cred);
        int fd = accept4(S.listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
                return;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &l) < 0 ||
            (cred.uid != getuid() && cred.uid != 0) || S.n_clients >= MAX_CLIENTS) {
                close(fd);
                return;
        }
        S.clients[S.n_clients++] = fd;
}

static void on_signal(int sig)
{
        (void)sig;
        S.quit = 1;
}

int supervisor_main(int listen_fd, const struct proxy_opts *o)
{
        struct sigaction sa = {.sa_handler = on_signal};

        S.o = o;
        S.listen_fd = listen_fd;
        S.worker_pid = -1;
        S.worker_pidfd = S.worker_fd = -1;
        S.idle_since = now_ms();
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        worker_start();
        while (!S.quit) {
                struct pollfd p[3 + MAX_CLIENTS + MAX_SANDBOXES];
                size_t n = 0, first_client, first_reg;
                int64_t now = now_ms();
                int timeout = 1000, r;

                if (S.n_regs == 0 && now - S.idle_since >= (int64_t)o->idle_exit_s * 1000)
                        break;
                if (S.worker_pid < 0 && now >= S.restart_at)
                        worker_start();
                if (S.worker_pid < 0)
                        timeout = S.restart_at - now > 1000 ? 1000
                                  : S.restart_at - now < 1  ? 1
                                                            : (int)(S.restart_at - now);
                p[n++] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
                p[n++] = (struct pollfd){.fd = S.worker_pidfd, .events = POLLIN};
                /* the worker's socket too: its end closes when it dies (a pidfd may be
                 * missing, e.g. under valgrind) */
                p[n++] = (struct pollfd){.fd = S.worker_fd, .events = POLLIN};
                first_client = n;
                for (size_t i = 0; i < S.n_clients; i++)
                        p[n++] = (struct pollfd){.fd = S.clients[i], .events = POLLIN};
                first_reg = n;
                for (size_t i = 0; i < S.n_regs; i++)
                        p[n++] = (struct pollfd){.fd = S.regs[i].fds[3], .events = POLLIN};
                r = poll(p, n, timeout);
                if (r < 0 && errno != EINTR)
                        break;
                if (r <= 0)
                        continue;
                if (p[2].revents && S.worker_fd >= 0 && !p[1].revents) {
                        /* nothing is asked of the worker now: only its end can be here */
                        json_t *stray = NULL;
                        size_t nf = 0;
                        int none[1];
                        if (proxy_recv(S.worker_fd, &stray, none, 0, &nf) < 0)
                                p[1].revents = POLLIN;
                        json_decref(stray);
                }
                if (p[1].revents && S.worker_pid > 0)
                        worker_reap();
                /* gone sandboxes first (their pidfds), from the end: indices stay valid */
                for (size_t i = S.n_regs; i-- > 0;)
                        if (p[first_reg + i].revents) {
                                cleanup_json json_t *w = json_pack("{s:s,s:s}", "op", "unregister",
                                                                   "sandbox", S.regs[i].name);
                                cleanup_json json_t *reply = worker_call(w, NULL, 0);
                                reg_remove(&S.regs[i]);
                        }
                for (size_t i = S.n_clients; i-- > 0;)
                        if (p[first_client + i].revents)
                                client_readable(i);
                if (p[0].revents)
                        accept_client();
        }
        if (S.worker_pid > 0) {
                /* the worker ends when its socket closes; one that does not within 2 s is
                 * killed */
                close(S.worker_fd);
                S.worker_fd = -1;
                for (int i = 0; i < 200 && waitpid(S.worker_pid, NULL, WNOHANG) == 0; i++)
                        usleep(10000);
                if (kill(S.worker_pid, SIGKILL) == 0)
                        (void)waitpid(S.worker_pid, NULL, 0);
        }
        for (size_t i = 0; i < S.n_regs; i++)
                reg_done(&S.regs[i]);
        free(S.regs);
        return 0;
}
