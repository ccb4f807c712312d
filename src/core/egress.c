// SPDX-License-Identifier: Apache-2.0
/*
 * Egress of proxy-mode sandboxes: their policy as the user wrote it, and the host's side of the
 * policy proxy's control protocol (egress.h; the protocol is /work/wt/EGRESS.md's, written down
 * in docs/network.md). It must never hand a sandbox's listeners to a process that is not the
 * caller's own proxy: the control socket is checked (owner, type) before and its peer (uid)
 * after connecting.
 */
#include "egress.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sha2.h>
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
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/net-mode.h"
#include "shared/parse-util.h"

#define PROXY_CONTROL "control"

extern char **environ;

/* ---- the policy ---- */

/* A host pattern: "*", "*.NAME", NAME, IPv4, or IPv4/LEN. */
static bool pattern_valid(const char *p)
{
        char ip[INET_ADDRSTRLEN];
        const char *slash = strchr(p, '/');
        struct in_addr a;
        uint32_t len;

        if (streq(p, "*"))
                return true;
        if (strncmp(p, "*.", 2) == 0)
                return net_host_name_valid(p + 2);
        if (slash) {
                if ((size_t)(slash - p) >= sizeof(ip) || safe_atou32(slash + 1, &len) < 0 ||
                    len > 32)
                        return false;
                memcpy(ip, p, (size_t)(slash - p));
                ip[slash - p] = '\0';
                return inet_pton(AF_INET, ip, &a) == 1;
        }
        return inet_pton(AF_INET, p, &a) == 1 || net_host_name_valid(p);
}

static json_t *rules_of(json_t *policy)
{
        json_t *rules = json_object_get(policy, "rules");

        if (!rules && json_object_set_new(policy, "rules", json_array()) == 0)
                rules = json_object_get(policy, "rules");
        return json_is_array(rules) ? rules : NULL;
}

int egress_policy_add_rule(json_t *policy, const char *action, const char *text, struct ak_err *err)
{
        char pat[EGRESS_PATTERN_MAX + 8];
        const char *colon = strrchr(text, ':');
        json_t *rules = rules_of(policy), *rule;
        uint32_t port = 0;

        if (!rules)
                return ak_err_oom(err);
        if (json_array_size(rules) >= EGRESS_POLICY_MAX_RULES)
                return ak_err_set(err, E2BIG, "at most %d network rules", EGRESS_POLICY_MAX_RULES);
        if (strlen(text) >= sizeof(pat))
                return ak_err_set(err, EINVAL, "host pattern '%.40s...' is too long", text);
        (void)snprintf(pat, sizeof(pat), "%s", text);
        if (colon) {
                if (safe_atou32(colon + 1, &port) < 0 || port < 1 || port > 65535)
                        return ak_err_set(err, EINVAL,
                                          "'%s': a port is a number from 1 to 65535 "
                                          "(PATTERN[:PORT])",
                                          text);
                pat[colon - text] = '\0';
        }
        if (!pattern_valid(pat))
                return ak_err_set(err, EINVAL,
                                  "'%s' is not a host pattern: use a name (api.example.com), "
                                  "*.example.com, an IPv4 address or CIDR, or *, with :PORT",
                                  text);
        rule = json_pack("{s:s, s:s}", "action", action, "host", pat);
        if (rule && port)
                json_object_set_new(rule, "ports", json_pack("[i]", (json_int_t)port));
        if (!rule || json_array_append_new(rules, rule) < 0)
                return ak_err_oom(err);
        return 0;
}

static int add_rules(json_t *policy, const char *action, char *const *list, struct ak_err *err)
{
        for (char *const *p = list; p && *p; p++) {
                int r = egress_policy_add_rule(policy, action, *p, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

int egress_policy_build(char *const *deny_hosts, char *const *allow_hosts,
                        char *const *domains_allow, char *const *domains_block, bool domains_given,
                        bool allowlist_only, const json_t *hosts, json_t **ret, struct ak_err *err)
{
        cleanup_json json_t *p = NULL;
        bool cli = (deny_hosts && *deny_hosts) || (allow_hosts && *allow_hosts);
        int r;

        if (!cli && !domains_given && !(hosts && json_object_size(hosts))) {
                *ret = NULL;
                return 0;
        }
        p = json_object();
        if (!p)
                return ak_err_oom(err);
        if ((r = add_rules(p, "deny", deny_hosts, err)) < 0 ||
            (r = add_rules(p, "allow", allow_hosts, err)) < 0)
                return ak_err_prefix(err, "--deny-host/--allow-host");
        if (domains_given && ((r = add_rules(p, "deny", domains_block, err)) < 0 ||
                              (r = add_rules(p, "allow", domains_allow, err)) < 0))
                return ak_err_prefix(err, "[security.domains]");
        /* upstream: allowlist_only = false allows what block does not name */
        if (domains_given || cli)
                json_object_set_new(
                    p, "default", json_string(!domains_given || allowlist_only ? "deny" : "allow"));
        if (hosts && json_object_size(hosts))
                json_object_set_new(p, "hosts", json_deep_copy(hosts));
        *ret = TAKE_PTR(p);
        return 0;
}

int egress_policy_check(const json_t *policy, struct ak_err *err)
{
        json_t *rules, *v, *e;
        const char *k;
        size_t i, j;

        if (!json_is_object(policy))
                return ak_err_set(err, EINVAL, "a network policy is a JSON object");
        json_object_foreach ((json_t *)policy, k, v) {
                if (streq(k, "default")) {
                        if (!json_is_string(v) || (!streq(json_string_value(v), "allow") &&
                                                   !streq(json_string_value(v), "deny")))
                                return ak_err_set(err, EINVAL,
                                                  "policy: \"default\" is \"allow\" or \"deny\"");
                } else if (streq(k, "hosts")) {
                        const char *name;
                        json_t *ip;
                        struct in_addr a;
                        if (!json_is_object(v) || json_object_size(v) > 256)
                                return ak_err_set(err, EINVAL,
                                                  "policy: \"hosts\" is an object of at most 256 "
                                                  "names");
                        json_object_foreach (v, name, ip)
                                if (!net_host_name_valid(name) || !json_is_string(ip) ||
                                    inet_pton(AF_INET, json_string_value(ip), &a) != 1)
                                        return ak_err_set(err, EINVAL,
                                                          "policy: hosts: '%s' must name an "
                                                          "IPv4 address",
                                                          name);
                } else if (streq(k, "dns_servers")) {
                        struct in_addr a;
                        if (!json_is_array(v) || json_array_size(v) > 8)
                                return ak_err_set(err, EINVAL,
                                                  "policy: \"dns_servers\" is an array of at most "
                                                  "8 IPv4 addresses");
                        json_array_foreach (v, i, e)
                                if (!json_is_string(e) ||
                                    inet_pton(AF_INET, json_string_value(e), &a) != 1)
                                        return ak_err_set(err, EINVAL,
                                                          "policy: dns_servers: expected IPv4 "
                                                          "addresses");
                } else if (!streq(k, "rules")) {
                        return ak_err_set(err, EINVAL, "policy: unknown key '%s'", k);
                }
        }
        rules = json_object_get(policy, "rules");
        if (!rules)
                return 0;
        if (!json_is_array(rules) || json_array_size(rules) > EGRESS_POLICY_MAX_RULES)
                return ak_err_set(err, EINVAL, "policy: \"rules\" is an array of at most %d rules",
                                  EGRESS_POLICY_MAX_RULES);
        json_array_foreach (rules, i, v) {
                const char *action = json_string_value(json_object_get(v, "action"));
                const char *host = json_string_value(json_object_get(v, "host"));
                json_t *ports = json_object_get(v, "ports");
                json_t *methods = json_object_get(v, "methods");
                if (!json_is_object(v) || !action ||
                    (!streq(action, "allow") && !streq(action, "deny")) || !host ||
                    strlen(host) > EGRESS_PATTERN_MAX || !pattern_valid(host))
                        return ak_err_set(err, EINVAL,
                                          "policy: rule %zu: expected {\"action\": \"allow\" or "
                                          "\"deny\", \"host\": a pattern}",
                                          i + 1);
                if (ports && (!json_is_array(ports) || json_array_size(ports) > 64))
                        return ak_err_set(err, EINVAL, "policy: rule %zu: bad \"ports\"", i + 1);
                json_array_foreach (ports, j, e)
                        if (!json_is_integer(e) || json_integer_value(e) < 1 ||
                            json_integer_value(e) > 65535)
                                return ak_err_set(err, EINVAL,
                                                  "policy: rule %zu: ports are 1 to 65535", i + 1);
                if (methods && (!json_is_array(methods) || json_array_size(methods) > 16))
                        return ak_err_set(err, EINVAL, "policy: rule %zu: bad \"methods\"", i + 1);
                json_array_foreach (methods, j, e)
                        if (!json_is_string(e) || !json_string_length(e) ||
                            json_string_length(e) > 16)
                                return ak_err_set(err, EINVAL,
                                                  "policy: rule %zu: methods are HTTP method names",
                                                  i + 1);
        }
        return 0;
}

/* ---- the control protocol ---- */

int egress_proxy_dir(char *out, size_t len, struct ak_err *err)
{
        const char *runtime = geteuid() == 0 ? "/run" : secure_getenv("XDG_RUNTIME_DIR");
        cleanup_free char *data = NULL, *top = NULL;
        cleanup_close int dfd = paths_data_dir_open(&data, err);
        char id[SHA256_DIGEST_STRING_LENGTH], sub[64];
        int fd;

        if (dfd < 0)
                return dfd;
        if (runtime && runtime[0] == '/' && asprintf(&top, "%s/agentkernel", runtime) >= 0) {
                cleanup_close int tfd =
                    private_dir_open(top, "runtime directory", PRIVATE_CREATE, NULL, NULL);
                (void)SHA256Data((const uint8_t *)data, strlen(data), id);
                (void)snprintf(sub, sizeof(sub), "%.16s/proxy", id);
                fd = tfd >= 0 ? private_dir_open_at(tfd, top, sub, PRIVATE_CREATE, NULL) : -1;
                if (fd >= 0) {
                        close(fd);
                        if ((size_t)snprintf(out, len, "%s/%s", top, sub) >= len)
                                return ak_err_set(err, ENAMETOOLONG, "runtime directory path");
                        return 0;
                }
        }
        fd = private_dir_open_at(dfd, data, "cache/proxy", PRIVATE_CREATE, err);
        if (fd < 0)
                return fd;
        close(fd);
        if ((size_t)snprintf(out, len, "%s/cache/proxy", data) >= len)
                return ak_err_set(err, ENAMETOOLONG, "data directory path");
        return 0;
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
        pid_t pid;
        int r, status;

        r = paths_helper("agentkernel-proxy", "AGENTKERNEL_PROXY", helper, sizeof(helper), err);
        if (r < 0)
                return ak_err_prefix(err, "network mode 'proxy' needs the egress proxy");
        r = posix_spawn(&pid, helper, NULL, NULL, (char *const *)argv, environ);
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

int egress_request(int ctl, const json_t *req, const int *fds, size_t n_fds, json_t **ret,
                   struct ak_err *err)
{
        union {
                char buf[CMSG_SPACE(sizeof(int) * 8)];
                struct cmsghdr align;
        } cm;
        cleanup_free char *text = json_dumps(req, JSON_COMPACT);
        cleanup_free char *reply = NULL;
        cleanup_json json_t *o = NULL;
        struct iovec iov;
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        struct pollfd pfd = {.fd = ctl, .events = POLLIN};
        json_error_t jerr;
        ssize_t n;
        int r;

        if (!text)
                return ak_err_oom(err);
        if (strlen(text) > EGRESS_MSG_MAX || n_fds > 8)
                return ak_err_set(err, E2BIG, "control message over %u bytes", EGRESS_MSG_MAX);
        iov = (struct iovec){text, strlen(text)};
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

int egress_register(const char *name, const char *uuid, const json_t *policy,
                    const struct egress_fds *fds, int pidfd, const char *log_path,
                    struct ak_err *err)
{
        cleanup_json json_t *req = json_pack("{s:s, s:s, s:s}", "op", "register", "sandbox", name,
                                             "uuid", uuid ? uuid : "");
        cleanup_close int ctl = -1, log = -1;
        int r;

        if (!req || (policy && json_object_set(req, "policy", (json_t *)policy) < 0))
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
                           (const int[]){fds->tcp, fds->dns_udp, fds->dns_tcp, pidfd, log}, 5, NULL,
                           err);
        return r < 0 ? ak_err_prefix(err, "registering sandbox '%s'", name) : 0;
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
