// SPDX-License-Identifier: Apache-2.0
/*
 * Egress of proxy-mode sandboxes: their policy as the user wrote it, and the host's side of the
 * policy proxy's control protocol (egress.h; the protocol is /work/wt/EGRESS.md's, written down
 * in docs/network.md). It must never hand a sandbox's listeners to a process that is not the
 * caller's own proxy: the control socket is checked (owner, type) before and its peer (uid)
 * after connecting.
 */
#include "egress.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/paths.h"
#include "core/private-dir.h"
#include "core/runtime-dir.h"
#include "core/vault.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/net-policy.h"
#include "shared/parse-util.h"

#define PROXY_CONTROL "control"

extern char **environ;

#define PROXY_URL "http://127.0.0.1:15001"
#define NO_PROXY "localhost,127.0.0.1,::1"

char *const egress_proxy_env[] = {
    "HTTP_PROXY=" PROXY_URL, "HTTPS_PROXY=" PROXY_URL, "ALL_PROXY=" PROXY_URL,
    "NO_PROXY=" NO_PROXY,    "http_proxy=" PROXY_URL,  "https_proxy=" PROXY_URL,
    "all_proxy=" PROXY_URL,  "no_proxy=" NO_PROXY,     NULL,
};

/* ---- the policy (its language is shared/net-policy.c's) ---- */

int egress_host_rule_check(const char *text, struct ak_err *err)
{
        cleanup_net_policy struct net_policy *p = net_policy_new(NET_DENY);

        if (!p)
                return ak_err_oom(err);
        return net_policy_insert_text(p, 0, NET_ALLOW, text, err);
}

static int insert_rules(struct net_policy *p, size_t *at, enum net_action action, char *const *list,
                        struct ak_err *err)
{
        for (char *const *t = list; t && *t; t++) {
                int r = net_policy_insert_text(p, (*at)++, action, *t, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

int egress_policy_build(char *const *deny_hosts, char *const *allow_hosts,
                        char *const *domains_allow, char *const *domains_block, bool domains_given,
                        bool allowlist_only, const json_t *hosts, json_t **ret, struct ak_err *err)
{
        cleanup_net_policy struct net_policy *p = NULL, *check = NULL;
        cleanup_json json_t *j = NULL;
        bool cli = (deny_hosts && *deny_hosts) || (allow_hosts && *allow_hosts);
        size_t at = 0;
        int r;

        if (!cli && !domains_given && !(hosts && json_object_size(hosts))) {
                *ret = NULL;
                return 0;
        }
        r = domains_given
                ? net_policy_from_domains(domains_allow, domains_block, allowlist_only, &p, err)
                : net_policy_builtin(&p, err);
        if (r < 0)
                return domains_given ? ak_err_prefix(err, "[security.domains]") : r;
        if ((r = insert_rules(p, &at, NET_DENY, deny_hosts, err)) < 0)
                return ak_err_prefix(err, "--deny-host");
        if ((r = insert_rules(p, &at, NET_ALLOW, allow_hosts, err)) < 0)
                return ak_err_prefix(err, "--allow-host");
        j = net_policy_to_json(p);
        if (!j)
                return ak_err_oom(err);
        if (hosts && json_object_size(hosts) &&
            json_object_set_new(j, "hosts", json_deep_copy(hosts)) < 0)
                return ak_err_oom(err);
        r = net_policy_from_json(j, &check, err);
        if (r < 0)
                return ak_err_prefix(err, "the network policy");
        *ret = TAKE_PTR(j);
        return 0;
}

int egress_policy_check(const json_t *policy, struct ak_err *err)
{
        cleanup_net_policy struct net_policy *p = NULL;

        return net_policy_from_json(policy, &p, err);
}

/* ---- the control protocol ---- */

int egress_proxy_dir(char *out, size_t len, struct ak_err *err)
{
        return runtime_dir_sub("proxy", out, len, err);
}

/* Connects to dir/control when it is a socket of ours whose peer is us (or root). -ENOENT or
 * -ECONNREFUSED when no proxy listens there. */
static int connect_control(const char *dir, struct ak_err *err)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        cleanup_close int fd = -1;
        struct ucred cred;
        socklen_t cl = sizeof(cred);
        struct stat sb;

        if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", dir, PROXY_CONTROL) >=
            sizeof(sa.sun_path))
                return ak_err_set(err, ENAMETOOLONG, "proxy control socket path '%s' is too long",
                                  dir);
        if (lstat(sa.sun_path, &sb) < 0)
                return -errno;
        if (!S_ISSOCK(sb.st_mode) || sb.st_uid != geteuid() || (sb.st_mode & 0077))
                return ak_err_set(err, EPERM,
                                  "'%s' is not a private socket of yours: refusing to hand it a "
                                  "sandbox",
                                  sa.sun_path);
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return ak_err_errno(err, errno, "socket");
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return -errno;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0)
                return ak_err_errno(err, errno, "SO_PEERCRED");
        if (cred.uid != geteuid() && cred.uid != 0)
                return ak_err_set(err, EPERM,
                                  "the proxy at '%s' runs as uid %u, not as you: refused",
                                  sa.sun_path, (unsigned)cred.uid);
        return TAKE_FD(fd);
}

/* Starts agentkernel-proxy for dir; it detaches (double fork) and we reap its first process. */
static int start_proxy(const char *dir, struct ak_err *err)
{
        char helper[PATH_MAX];
        const char *argv[] = {"agentkernel-proxy", "--dir", dir, NULL};
        posix_spawnattr_t attr;
        sigset_t none, all;
        pid_t pid;
        int r, status;

        r = paths_helper("agentkernel-proxy", "AGENTKERNEL_PROXY", helper, sizeof(helper), err);
        if (r < 0)
                return ak_err_prefix(err, "network mode 'proxy' needs the egress proxy");
        /* it outlives us: none of the signals we block or handle (the CLI's signalfd, a server's
         * threads) may stay blocked or ignored in it */
        sigemptyset(&none);
        sigfillset(&all);
        posix_spawnattr_init(&attr);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &all);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
        r = posix_spawn(&pid, helper, NULL, &attr, (char *const *)argv, environ);
        posix_spawnattr_destroy(&attr);
        if (r)
                return ak_err_errno(err, r, "start '%s'", helper);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return ak_err_errno(err, errno, "waitpid");
        if (!WIFEXITED(status) || WEXITSTATUS(status))
                return ak_err_set(err, EIO, "'%s' failed to start (status %d)", helper, status);
        return 0;
}

int egress_connect(struct ak_err *err)
{
        char dir[PATH_MAX];
        int fd, r;

        r = egress_proxy_dir(dir, sizeof(dir), err);
        if (r < 0)
                return r;
        fd = connect_control(dir, err);
        if (fd >= 0 || (fd != -ENOENT && fd != -ECONNREFUSED))
                return fd;
        r = start_proxy(dir, err);
        if (r < 0)
                return r;
        /* it listens before its first process exits; a few tries cover a slow machine */
        for (int i = 0; i < 50; i++) {
                fd = connect_control(dir, err);
                if (fd >= 0 || (fd != -ENOENT && fd != -ECONNREFUSED))
                        return fd;
                (void)nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
        }
        return ak_err_set(err, ETIMEDOUT, "the egress proxy did not answer at '%s/%s'", dir,
                          PROXY_CONTROL);
}

static int request_raw(int ctl, const void *data, size_t len, const int *fds, size_t n_fds,
                       json_t **ret, struct ak_err *err);

int egress_request(int ctl, const json_t *req, const int *fds, size_t n_fds, json_t **ret,
                   struct ak_err *err)
{
        cleanup_free char *text = json_dumps(req, JSON_COMPACT);

        if (!text)
                return ak_err_oom(err);
        if (strlen(text) > EGRESS_MSG_MAX)
                return ak_err_set(err, E2BIG, "control message over %u bytes", EGRESS_MSG_MAX);
        return request_raw(ctl, text, strlen(text), fds, n_fds, ret, err);
}

/* One message (data, len: the JSON, and for secret_value its NUL and value) and its reply. */
static int request_raw(int ctl, const void *data, size_t len, const int *fds, size_t n_fds,
                       json_t **ret, struct ak_err *err)
{
        union {
                char buf[CMSG_SPACE(sizeof(int) * 8)];
                struct cmsghdr align;
        } cm;
        cleanup_free char *reply = NULL;
        cleanup_json json_t *o = NULL;
        struct iovec iov = {(void *)data, len};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        struct pollfd pfd = {.fd = ctl, .events = POLLIN};
        json_error_t jerr;
        ssize_t n;
        int r;

        if (n_fds > 8)
                return ak_err_set(err, E2BIG, "at most 8 fds in a control message");
        if (n_fds) {
                struct cmsghdr *c;
                memset(&cm, 0, sizeof(cm));
                mh.msg_control = cm.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }
        do
                n = sendmsg(ctl, &mh, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return ak_err_errno(err, errno, "send to the egress proxy");
        do
                r = poll(&pfd, 1, EGRESS_REPLY_TIMEOUT_MS);
        while (r < 0 && errno == EINTR);
        if (r == 0)
                return ak_err_set(err, ETIMEDOUT, "the egress proxy did not reply within %d ms",
                                  EGRESS_REPLY_TIMEOUT_MS);
        reply = malloc(EGRESS_MSG_MAX + 1);
        if (!reply)
                return ak_err_oom(err);
        do
                n = recv(ctl, reply, EGRESS_MSG_MAX + 1, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return ak_err_errno(err, errno, "read from the egress proxy");
        if (n == 0 || (size_t)n > EGRESS_MSG_MAX)
                return ak_err_set(err, EIO, "the egress proxy %s",
                                  n ? "sent an oversized reply" : "closed the connection");
        o = json_loadb(reply, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(o))
                return ak_err_set(err, EIO, "the egress proxy sent a reply that is not JSON");
        if (!json_is_true(json_object_get(o, "ok"))) {
                const char *m = json_string_value(json_object_get(o, "error"));
                return ak_err_set(err, EIO, "egress proxy: %s", m ? m : "request refused");
        }
        if (ret)
                *ret = TAKE_PTR(o);
        return 0;
}

/* One request to the running proxy (none running: -ESRCH, nothing to ask). */
static int ask(const json_t *req, bool start, json_t **ret, struct ak_err *err)
{
        char dir[PATH_MAX];
        cleanup_close int ctl = -1;
        int r;

        if (!req)
                return ak_err_oom(err);
        if (start) {
                ctl = egress_connect(err);
        } else {
                r = egress_proxy_dir(dir, sizeof(dir), err);
                if (r < 0)
                        return r;
                ctl = connect_control(dir, err);
                if (ctl == -ENOENT || ctl == -ECONNREFUSED)
                        return ak_err_set(err, ESRCH, "the egress proxy is not running");
        }
        if (ctl < 0)
                return ctl;
        return egress_request(ctl, req, NULL, 0, ret, err);
}

int egress_ca_file_read(const char *path, char **ret, struct ak_err *err)
{
        cleanup_close int fd = -1;
        cleanup_free char *pem = NULL;
        struct stat sb;
        size_t len = 0;

        *ret = NULL;
        if (!path || path[0] != '/')
                return ak_err_set(err, EINVAL, "[network] ca_file must be an absolute path");
        fd = open(path, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return ak_err_errno(err, errno,
                                    errno == ELOOP ? "[network] ca_file '%s' is a symlink: name "
                                                     "the file itself"
                                                   : "[network] ca_file '%s'",
                                    path);
        if (fstat(fd, &sb) < 0)
                return ak_err_errno(err, errno, "[network] ca_file '%s'", path);
        if (!S_ISREG(sb.st_mode))
                return ak_err_set(err, EINVAL, "[network] ca_file '%s' is not a regular file",
                                  path);
        if ((sb.st_uid != geteuid() && sb.st_uid != 0) || (sb.st_mode & 0022))
                return ak_err_set(err, EPERM,
                                  "[network] ca_file '%s' must belong to you or root and be "
                                  "writable by nobody else (the proxy would trust what it says)",
                                  path);
        if (sb.st_size <= 0 || sb.st_size > EGRESS_CA_MAX)
                return ak_err_set(err, EFBIG,
                                  "[network] ca_file '%s' must hold 1 to %d bytes of PEM "
                                  "certificates",
                                  path, EGRESS_CA_MAX);
        pem = malloc((size_t)sb.st_size + 1);
        if (!pem)
                return ak_err_oom(err);
        while (len < (size_t)sb.st_size) {
                ssize_t n = read(fd, pem + len, (size_t)sb.st_size - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return ak_err_errno(err, errno, "read '%s'", path);
                if (n == 0)
                        break;
                len += (size_t)n;
        }
        pem[len] = '\0';
        if (strlen(pem) != len || !strstr(pem, "-----BEGIN CERTIFICATE-----"))
                return ak_err_set(err, EINVAL, "[network] ca_file '%s' holds no PEM certificate",
                                  path);
        if (strstr(pem, "PRIVATE KEY"))
                return ak_err_set(err, EINVAL,
                                  "[network] ca_file '%s' holds a private key: give the "
                                  "certificates only",
                                  path);
        *ret = TAKE_PTR(pem);
        return 0;
}

/* The value of a grant's KEY: the vault's (the default backend), else -- for a grant that says
 * so, an agent's provider key -- the host environment's. Wiped by the caller. */
static int grant_value(const json_t *g, char **ret, size_t *ret_len, struct ak_err *err)
{
        const char *key = json_string_value(json_object_get(g, "name"));
        enum vault_backend vb;
        struct ak_err e = {0};
        const char *v;
        int r;

        if (!key)
                return ak_err_set(err, EINVAL, "a secret grant without a name");
        if ((r = vault_backend_default(&vb, err)) < 0)
                return r;
        r = vault_get(vb, key, ret, ret_len, &e);
        if (r >= 0 || !json_is_true(json_object_get(g, "from_env")))
                return r < 0 ? ak_err_set(err, e.code, "%s", ak_err_msg(&e)) : r;
        v = getenv(key);
        if (!v || !*v || strlen(v) > EGRESS_SECRET_MAX)
                return ak_err_set(err, ENOENT,
                                  "secret '%s' is neither in the vault nor in the "
                                  "environment",
                                  key);
        *ret_len = strlen(v);
        *ret = malloc(*ret_len + 1);
        if (!*ret)
                return ak_err_oom(err);
        memcpy(*ret, v, *ret_len + 1);
        return 0;
}

/* Sends one secret_value message: the JSON, a NUL, the value's bytes; the buffer wiped. */
static int send_value(int ctl, const char *sandbox, const json_t *g, struct ak_err *err)
{
        const char *key = json_string_value(json_object_get(g, "name"));
        cleanup_json json_t *req =
            json_pack("{s:s,s:s,s:s}", "op", "secret_value", "sandbox", sandbox, "name", key);
        cleanup_free char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
        char *value = NULL, *msg;
        size_t len = 0, tl;
        int r;

        if (!text)
                return ak_err_oom(err);
        if ((r = grant_value(g, &value, &len, err)) < 0)
                return ak_err_prefix(err, "secret '%s'", key);
        if (len == 0 || len > EGRESS_SECRET_MAX || memchr(value, '\0', len)) {
                vault_value_free(value, len);
                return ak_err_set(err, EINVAL,
                                  "secret '%s': its value must be 1 to %d bytes without NUL", key,
                                  EGRESS_SECRET_MAX);
        }
        tl = strlen(text);
        msg = malloc(tl + 1 + len);
        if (!msg) {
                vault_value_free(value, len);
                return ak_err_oom(err);
        }
        memcpy(msg, text, tl + 1);
        memcpy(msg + tl + 1, value, len);
        vault_value_free(value, len);
        r = request_raw(ctl, msg, tl + 1 + len, NULL, 0, NULL, err);
        explicit_bzero(msg, tl + 1 + len);
        free(msg);
        return r < 0 ? ak_err_prefix(err, "handing secret '%s' to the egress proxy", key) : 0;
}

/* The grants as the proxy takes them: what is only ours ("from_env") left out. */
static json_t *grants_for_proxy(const json_t *grants)
{
        json_t *out = json_array(), *g;
        size_t i;

        json_array_foreach (grants, i, g) {
                json_t *c = json_deep_copy(g);
                if (!c || json_array_append_new(out, c) < 0) {
                        json_decref(out);
                        return NULL;
                }
                (void)json_object_del(c, "from_env");
                if (!json_object_get(c, "body"))
                        (void)json_object_set_new(c, "body", json_false());
        }
        return out;
}

int egress_register(const char *name, const char *uuid, const json_t *policy,
                    const struct egress_fds *fds, int pidfd, const char *log_path,
                    const struct egress_secrets *sec, struct ak_err *err)
{
        cleanup_json json_t *req = json_pack("{s:s, s:s, s:s}", "op", "register", "sandbox", name,
                                             "uuid", uuid ? uuid : "");
        cleanup_json json_t *reply = NULL;
        cleanup_net_policy struct net_policy *builtin = NULL;
        cleanup_close int ctl = -1, log = -1;
        size_t n_grants = sec && sec->grants ? json_array_size(sec->grants) : 0;
        const char *ca;
        size_t i;
        json_t *g;
        int r;

        if (!req)
                return ak_err_oom(err);
        if (n_grants > EGRESS_GRANTS_MAX)
                return ak_err_set(err, E2BIG, "at most %d bound secrets per sandbox",
                                  EGRESS_GRANTS_MAX);
        /* no policy recorded: the built-in one, said explicitly (the proxy wants one) */
        if (!policy && net_policy_builtin(&builtin, err) < 0)
                return ak_err_prefix(err, "the built-in network policy");
        if (json_object_set_new(req, "policy",
                                policy ? json_deep_copy(policy) : net_policy_to_json(builtin)) < 0)
                return ak_err_oom(err);
        if (n_grants && json_object_set_new(req, "secrets", grants_for_proxy(sec->grants)) < 0)
                return ak_err_oom(err);
        if (n_grants && sec->upstream_ca &&
            json_object_set_new(req, "upstream_ca", json_string(sec->upstream_ca)) < 0)
                return ak_err_oom(err);
        if (pidfd < 0)
                return ak_err_set(err, ENOSYS, "network mode 'proxy' needs pidfd_open (Linux 5.3)");
        log = open(log_path ? log_path : "/dev/null",
                   O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (log < 0)
                return ak_err_errno(err, errno, "open '%s'", log_path ? log_path : "/dev/null");
        ctl = egress_connect(err);
        if (ctl < 0)
                return ctl;
        r = egress_request(ctl, req,
                           (const int[]){fds->tcp, fds->dns_udp, fds->dns_tcp, pidfd, log}, 5,
                           &reply, err);
        if (r < 0)
                return ak_err_prefix(err, "registering sandbox '%s'", name);
        if (!n_grants)
                return 0;
        /* the sandbox's CA: what it will trust (a certificate, never a key) */
        ca = json_string_value(json_object_get(reply, "ca"));
        if (!ca || strlen(ca) > EGRESS_CA_MAX ||
            strncmp(ca, "-----BEGIN CERTIFICATE-----", 27) != 0 || strstr(ca, "PRIVATE KEY"))
                r = ak_err_set(err, EPROTO,
                               "the egress proxy sent no CA certificate for sandbox '%s': it "
                               "cannot inject secrets (is agentkernel-proxy older than this "
                               "agentkernel?)",
                               name);
        json_array_foreach (sec->grants, i, g) {
                if (r < 0)
                        break;
                r = send_value(ctl, name, g, err);
        }
        if (r >= 0 && sec->ret_ca && !(*sec->ret_ca = strdup(ca)))
                r = ak_err_oom(err);
        if (r < 0) {
                /* nothing half-registered stays: the proxy forgets the sandbox and its values */
                cleanup_json json_t *un =
                    json_pack("{s:s,s:s}", "op", "unregister", "sandbox", name);
                if (un)
                        (void)egress_request(ctl, un, NULL, 0, NULL, NULL);
                return r;
        }
        return 0;
}

int egress_unregister(const char *name, struct ak_err *err)
{
        cleanup_json json_t *req = json_pack("{s:s, s:s}", "op", "unregister", "sandbox", name);
        struct ak_err e = {0};
        int r = ask(req, false, NULL, &e);

        if (r == -ESRCH)
                return 0;
        if (r < 0)
                return ak_err_set(err, e.code, "%s", ak_err_msg(&e));
        return 0;
}

int egress_get_policy(const char *name, json_t **ret, struct ak_err *err)
{
        cleanup_json json_t *req = json_pack("{s:s, s:s}", "op", "get_policy", "sandbox", name);
        cleanup_json json_t *reply = NULL;
        json_t *p;
        int r = ask(req, false, &reply, err);

        if (r < 0)
                return r;
        p = json_object_get(reply, "policy");
        if (!json_is_object(p))
                return ak_err_set(err, EIO, "the egress proxy sent no policy");
        *ret = json_incref(p);
        return 0;
}

int egress_set_policy(const char *name, const json_t *policy, struct ak_err *err)
{
        cleanup_json json_t *req = json_pack("{s:s, s:s, s:O}", "op", "set_policy", "sandbox", name,
                                             "policy", (json_t *)policy);
        int r = egress_policy_check(policy, err);

        return r < 0 ? r : ask(req, false, NULL, err);
}

int egress_stats(json_t **ret, struct ak_err *err)
{
        cleanup_json json_t *req = json_pack("{s:s}", "op", "stats");

        return ask(req, false, ret, err);
}
