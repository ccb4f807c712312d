// SPDX-License-Identifier: Apache-2.0
/*
 * agentkernel-serve's main: the HTTP API's options, keys and listening sockets. The main thread
 * accepts connections itself, on loopback TCP and optionally a unix socket: it learns who each
 * peer is and admits it within per-peer limits (peer.h), so another local user cannot crowd out
 * the owner, and ends connections that are slow to send their headers or body; admitted ones go
 * to request handling (http.h). Without a configured key the server makes one for its owner
 * (apikey.h), so out of the box only the user who started it can use it. A reconciler thread
 * removes expired sandboxes and applies lifecycle policies every few seconds.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "backend/backends.h"
#include "build-config.h"
#include "cli/parse-options.h"
#include "core/config.h"
#include "core/manager.h"
#include "server/apikey.h"
#include "server/events.h"
#include "server/http.h"
#include "server/otel.h"
#include "server/tls.h"
#include "server/worker.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/macro.h"
#include "shared/parse-util.h"
#include "shared/strv.h"
#include "shared/time-util.h"

#define API_KEYS_MAX 64
#define API_KEY_MAX 512
#define ALLOWED_HOSTS_MAX 16
#define CONNECTIONS_MAX 512   /* all connections */
#define OTHERS_MAX 128        /* of peers other than the owner and root, together */
#define PER_PEER_MAX 32       /* of one such peer (a uid, or an address) */
#define SWEEP_INTERVAL_MS 100 /* how often deadlines are looked at */
#define LISTEN_BACKLOG 1024
#define DEFAULT_PORT 18888
#define RECONCILE_INTERVAL_S 2

struct server {
        struct http_server http; /* what request handling reads */
        char *keys[API_KEYS_MAX];
        size_t n_keys;
        struct gate_host hosts[ALLOWED_HOSTS_MAX + 1]; /* --allowed-host names, then --host */
        size_t n_hosts;
        int diag_fd;
        int wake[2]; /* the signal handler's pipe to the accept loop */
        volatile sig_atomic_t stop;
        unsigned reconcile_s;
        char *webhooks[EVENTS_WEBHOOKS_MAX];
        size_t n_webhooks;
};

static struct server srv;
static struct perm_store perms;
static char perm_warning[512];

/* ---- reconciler ---- */

static void *reconciler(void *arg)
{
        (void)arg;
        while (!srv.stop) {
                struct manager *m = NULL;
                if (manager_open(&m, NULL) == 0) {
                        char **removed = NULL;
                        /* leftovers of runs whose worker was killed (their client left) */
                        manager_sweep(m);
                        struct reconcile_result res;
                        if (manager_gc(m, NULL, false, &removed, NULL) == 0) {
                                for (char **n = removed; *n; n++)
                                        fprintf(stderr,
                                                "agentkernel serve: removed expired "
                                                "sandbox '%s'\n",
                                                *n);
                                strv_free(removed);
                        }
                        if (manager_reconcile(m, false, &res, NULL) == 0) {
                                for (size_t i = 0; i < res.n_actions; i++)
                                        fprintf(stderr, "agentkernel serve: %s '%s': %s\n",
                                                reconcile_action_name(res.actions[i].action),
                                                res.actions[i].sandbox, res.actions[i].reason);
                                reconcile_result_done(&res);
                        }
                        manager_free(m);
                }
                for (unsigned i = 0; i < srv.reconcile_s * 10 && !srv.stop; i++)
                        (void)usleep(100000);
        }
        return NULL;
}

/* ---- keys ---- */

static int add_key(const char *k, size_t n)
{
        while (n && (k[n - 1] == '\n' || k[n - 1] == '\r' || k[n - 1] == ' ' || k[n - 1] == '\t'))
                n--;
        if (n == 0)
                return 0;
        if (n > API_KEY_MAX || srv.n_keys == API_KEYS_MAX || memchr(k, '\0', n))
                return -EINVAL;
        srv.keys[srv.n_keys] = strndup(k, n);
        return srv.keys[srv.n_keys++] ? 0 : -ENOMEM;
}

/* One key per line; blank lines and # comments skipped. */
static int add_key_text(const char *text)
{
        const char *line = text, *end;
        int r;

        for (; *line; line = *end ? end + 1 : end) {
                end = line + strcspn(line, "\n");
                while (line < end && (*line == ' ' || *line == '\t'))
                        line++;
                if (line == end || *line == '#')
                        continue;
                if ((r = add_key(line, (size_t)(end - line))) < 0)
                        return r;
        }
        return 0;
}

static int add_key_file(const char *path)
{
        cleanup_buf struct buf b = BUF_INIT;
        cleanup_close int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        struct stat st;
        int r;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        if (st.st_mode & 077)
                fprintf(stderr,
                        "agentkernel serve: warning: '%s' can be read by other users (mode %03o): "
                        "they may know the key; chmod 600 it\n",
                        path, (unsigned)(st.st_mode & 07777));
        r = read_fd_full(fd, &b, 1 << 20);
        if (r < 0)
                return r;
        if (buf_append(&b, "", 1) < 0)
                return -ENOMEM;
        return add_key_text(b.data);
}

/* ---- listening ---- */

static bool loopback(const struct sockaddr_storage *a)
{
        if (a->ss_family == AF_INET)
                return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
        if (a->ss_family == AF_INET6)
                return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a)->sin6_addr);
        return false;
}

static bool wildcard(const struct sockaddr_storage *a)
{
        if (a->ss_family == AF_INET)
                return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
        if (a->ss_family == AF_INET6)
                return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
        return false;
}

static int listen_on(const char *host, unsigned port, bool *ret_loopback, bool *ret_wildcard)
{
        struct addrinfo hints = {.ai_family = AF_UNSPEC,
                                 .ai_socktype = SOCK_STREAM,
                                 .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
        struct addrinfo *ai = NULL;
        char ports[16];
        int fd, one = 1, e;

        (void)snprintf(ports, sizeof(ports), "%u", port);
        e = getaddrinfo(host, ports, &hints, &ai);
        if (e != 0) {
                fprintf(stderr, "error: cannot resolve '%s': %s\n", host, gai_strerror(e));
                return -1;
        }
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
                e = errno;
                fprintf(stderr,
                        e == EADDRINUSE
                            ? "error: port %u is already in use. Is another agentkernel server "
                              "running?\n"
                            : "error: cannot listen on port %u: %s\n",
                        port, strerror(e));
                if (fd >= 0)
                        close(fd);
                freeaddrinfo(ai);
                return -1;
        }
        {
                struct sockaddr_storage ss;
                memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
                *ret_loopback = loopback(&ss);
                *ret_wildcard = wildcard(&ss);
        }
        freeaddrinfo(ai);
        return fd;
}

/* A unix socket only its owner can connect to (0600 from the start: bound under umask 0177), in
 * a directory where nobody else can swap it. A stale socket of ours is replaced; anything else
 * in the way is refused. */
static int listen_unix(const char *path, struct stat *ret_st)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        cleanup_free char *dir = strdup(path);
        char *slash = dir ? strrchr(dir, '/') : NULL;
        struct stat st;
        mode_t old;
        int fd, e;

        if (!dir)
                return -1;
        if (strlen(path) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "error: socket path '%s' is longer than %zu bytes\n", path,
                        sizeof(sa.sun_path) - 1);
                return -1;
        }
        if (slash == dir)
                slash[1] = '\0';
        else if (slash)
                *slash = '\0';
        if (stat(slash ? dir : ".", &st) < 0) {
                fprintf(stderr, "error: cannot use the directory of '%s': %s\n", path,
                        strerror(errno));
                return -1;
        }
        if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
                fprintf(stderr,
                        "error: the directory of '%s' is writable by other users: they could "
                        "replace the socket; use a private directory such as $XDG_RUNTIME_DIR\n",
                        path);
                return -1;
        }
        if (lstat(path, &st) == 0) {
                int probe;
                if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) {
                        fprintf(stderr,
                                "error: '%s' exists and is not a socket of yours: refusing to "
                                "replace it\n",
                                path);
                        return -1;
                }
                probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                memcpy(sa.sun_path, path, strlen(path) + 1);
                if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                        close(probe);
                        fprintf(stderr, "error: '%s' is in use by another server\n", path);
                        return -1;
                }
                if (probe >= 0)
                        close(probe);
                (void)unlink(path);
        }
        memcpy(sa.sun_path, path, strlen(path) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
                fprintf(stderr, "error: socket: %s\n", strerror(errno));
                return -1;
        }
        old = umask(0177);
        e = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? errno : 0;
        (void)umask(old);
        if (e == 0 && (lstat(path, ret_st) < 0 || listen(fd, LISTEN_BACKLOG) < 0))
                e = errno;
        if (e) {
                fprintf(stderr, "error: cannot listen on '%s': %s\n", path, strerror(e));
                close(fd);
                return -1;
        }
        return fd;
}

/* ---- accepting ---- */

static void on_signal(int sig)
{
        int saved = errno;

        (void)sig;
        srv.stop = 1;
        (void)!write(srv.wake[1], "x", 1);
        errno = saved;
}

/* At most one line per peer kind every few seconds: a flood does not flood the log. */
static void log_refusal(const struct peer *p, const char *why)
{
        static int64_t last;
        int64_t now = now_monotonic_ns();
        char who[96];

        if (last && now - last < 10 * (int64_t)1000000000)
                return;
        last = now;
        peer_describe(p, who, sizeof(who));
        fprintf(stderr, "agentkernel serve: refusing connections from %s: at %s\n", who, why);
}

static void refuse_connection(int fd)
{
        static const char body[] = "{\"success\":false,\"error\":\"too many connections\"}";
        char resp[256];
        int n = snprintf(resp, sizeof(resp),
                         "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                         "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
                         sizeof(body) - 1, body);

        (void)!send(fd, resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        close(fd);
}

static void accept_from(int lfd, struct MHD_Daemon *d)
{
        for (int i = 0; i < 64; i++) {
                struct sockaddr_storage sa;
                socklen_t len = sizeof(sa);
                const char *why;
                struct conn *k;
                struct peer p;
                int fd = accept4(lfd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC | SOCK_NONBLOCK);

                if (fd < 0) {
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                            errno == ENOMEM) {
                                fprintf(stderr, "agentkernel serve: accept: %s\n", strerror(errno));
                                (void)usleep(50000);
                        }
                        return;
                }
                peer_identify(fd, srv.diag_fd, &p);
                if (conns_admit(&srv.http.conns, &p, fd, http_deadline_in(HEADERS_TIMEOUT_S), &k,
                                &why) < 0) {
                        if (why)
                                log_refusal(&p, why);
                        refuse_connection(fd);
                        continue;
                }
                http_add_connection(&srv.http, d, fd, (struct sockaddr *)&sa, len, k);
        }
}

static void serve_loop(struct MHD_Daemon *d, struct MHD_Daemon *d_unix, int tcp_fd, int unix_fd)
{
        struct pollfd p[3] = {{srv.wake[0], POLLIN, 0}, {tcp_fd, POLLIN, 0}, {unix_fd, POLLIN, 0}};
        int64_t last_sweep = 0;

        while (!srv.stop) {
                int r = poll(p, 3, SWEEP_INTERVAL_MS);
                int64_t now;
                if (r < 0 && errno != EINTR)
                        break;
                if (r > 0) {
                        for (int i = 1; i < 3; i++)
                                if (p[i].fd >= 0 && (p[i].revents & POLLIN))
                                        accept_from(p[i].fd, i == 1 ? d : d_unix);
                }
                now = now_monotonic_ns();
                if (now - last_sweep >= (int64_t)SWEEP_INTERVAL_MS * 1000000) {
                        (void)conns_sweep(&srv.http.conns, now);
                        last_sweep = now;
                }
        }
}

/* Room for the connections: the soft descriptor limit up to the hard one (each connection holds
 * two), and fewer connections when even that is short. Workers get the old limit back. */
static size_t raise_nofile(void)
{
        struct rlimit rl;
        size_t room;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return CONNECTIONS_MAX;
        worker_set_child_nofile(rl.rlim_cur);
        if (rl.rlim_cur < rl.rlim_max) {
                rlim_t want = rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
                if (want > rl.rlim_cur) {
                        rl.rlim_cur = want;
                        (void)setrlimit(RLIMIT_NOFILE, &rl);
                        (void)getrlimit(RLIMIT_NOFILE, &rl);
                }
        }
        room = rl.rlim_cur > 256 ? (size_t)(rl.rlim_cur - 128) / 2 : 64;
        return room < CONNECTIONS_MAX ? room : CONNECTIONS_MAX;
}

/* ---- startup ---- */

static int default_key(bool print, char **ret_path)
{
        cleanup_free char *dir = NULL, *text = NULL;
        struct ak_err err = {0};
        bool created = false;

        if (apikey_default_dir(&dir, &err) < 0 ||
            apikey_load_or_create(dir, &text, &created, &err) < 0) {
                fprintf(stderr, "error: %s\n", ak_err_msg(&err));
                return -err.code;
        }
        if (print) {
                const char *k = text + strspn(text, " \t\r\n");
                printf("%.*s\n", (int)strcspn(k, " \t\r\n"), k);
                return 0;
        }
        if (add_key_text(text) < 0 || !srv.n_keys) {
                fprintf(stderr, "error: '%s/%s' holds no valid API key\n", dir, APIKEY_FILE_NAME);
                return -EINVAL;
        }
        if (asprintf(ret_path, "%s/%s", dir, APIKEY_FILE_NAME) < 0)
                *ret_path = NULL;
        if (created)
                fprintf(stderr, "agentkernel serve: made a new API key in '%s/%s'\n", dir,
                        APIKEY_FILE_NAME);
        return 0;
}

/* Whether name can be a Host header's name (no port). */
static bool host_name_valid(const char *name)
{
        struct gate_host h = {name, true};
        struct gate_config g = {.hosts = &h, .n_hosts = 1};

        return !strchr(name, ':') || name[0] == '[' ? gate_host_allowed(&g, name) : false;
}

static void host_for_gate(const char *host, bool is_wildcard)
{
        static char v6[300];

        if (is_wildcard || srv.n_hosts == ARRAY_SIZE(srv.hosts))
                return;
        if (strchr(host, ':') && host[0] != '[') {
                (void)snprintf(v6, sizeof(v6), "[%s]", host);
                host = v6;
        }
        srv.hosts[srv.n_hosts++] = (struct gate_host){host, false};
}

/* ---- TLS and webhooks ---- */

#define TLS_FILE_MAX (1u << 20)
#define WEBHOOK_SECRET_FILE "webhook-secret"

/* A certificate (chain) file: public, but a regular file of bounded size. */
static char *read_cert(const char *path)
{
        cleanup_buf struct buf b = BUF_INIT;
        cleanup_close int fd = open(path, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        struct stat st;

        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
            read_fd_full(fd, &b, TLS_FILE_MAX) < 0 || buf_append(&b, "", 1) < 0) {
                fprintf(stderr, "error: cannot read the certificate '%s'%s%s\n", path,
                        fd < 0 ? ": " : "", fd < 0 ? strerror(errno) : "");
                return NULL;
        }
        return TAKE_PTR(b.data);
}

/* The webhooks' signing key: the file given (a private file of the user's), else
 * ~/.agentkernel/webhook-secret, made like the API key. */
static char *webhook_secret(const char *file)
{
        cleanup_free char *dir = NULL;
        struct ak_err err = {0};
        char *text = NULL;
        bool created = false;

        if (file) {
                if (apikey_read_private_file(file, &text, &err) < 0) {
                        fprintf(stderr, "error: --webhook-secret-file: %s\n", ak_err_msg(&err));
                        return NULL;
                }
        } else if (apikey_default_dir(&dir, &err) < 0 ||
                   apikey_secret_load_or_create(dir, WEBHOOK_SECRET_FILE, &text, &created, &err) <
                       0) {
                fprintf(stderr, "error: %s\n", ak_err_msg(&err));
                return NULL;
        } else {
                fprintf(stderr,
                        "agentkernel serve: webhooks are signed (%s: sha256=HMAC-SHA256 of the "
                        "body) with the key in '%s/%s'%s\n",
                        EVENTS_SIGNATURE_HEADER, dir, WEBHOOK_SECRET_FILE,
                        created ? " (made now)" : "");
        }
        /* the first line, trimmed: what the receiver has */
        text[strcspn(text, "\r\n")] = '\0';
        return text;
}

/* ---- options ---- */

/* The traces URL: --otel-endpoint (a base: /v1/traces added when it has no path), else
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (as is), else OTEL_EXPORTER_OTLP_ENDPOINT (a base), as
 * OpenTelemetry's exporters read them. *ret NULL: no export. -1 after saying why. */
static int otel_traces_url(const char *flag, char **ret)
{
        const char *traces = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        const char *base = flag                ? flag
                           : traces && *traces ? NULL
                                               : getenv("OTEL_EXPORTER_OTLP_ENDPOINT");
        const char *what = flag   ? "--otel-endpoint"
                           : base ? "OTEL_EXPORTER_OTLP_ENDPOINT"
                                  : "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
        const char *url = base ? base : traces;
        struct ak_err err = {0};
        size_t n;

        *ret = NULL;
        if (!url || !*url)
                return 0;
        if (otel_endpoint_check(url, what, &err) < 0) {
                fprintf(stderr, "error: %s\n", ak_err_msg(&err));
                return -1;
        }
        n = strlen(url);
        if (base) {
                /* a base: scheme://host[:port][/prefix] gets /v1/traces (once) */
                static const char suffix[] = "/v1/traces";
                size_t k = sizeof(suffix) - 1;
                while (n && url[n - 1] == '/')
                        n--;
                if (asprintf(ret, "%.*s%s", (int)n, url,
                             n >= k && !strncmp(url + n - k, suffix, k) ? "" : suffix) < 0)
                        *ret = NULL;
        } else {
                *ret = strdup(url);
        }
        if (!*ret) {
                fprintf(stderr, "error: out of memory\n");
                return -1;
        }
        if (otel_start(*ret, getenv("OTEL_SERVICE_NAME"), &err) < 0) {
                fprintf(stderr, "error: %s\n", ak_err_msg(&err));
                return -1;
        }
        return 0;
}

static int opt_webhook(const struct cli_option *o, const char *arg)
{
        struct ak_err err = {0};

        (void)o;
        if (srv.n_webhooks == EVENTS_WEBHOOKS_MAX)
                return cli_usage_error(cli_current, "at most %d --webhook-url",
                                       EVENTS_WEBHOOKS_MAX);
        if (events_webhook_url_check(arg, &err) < 0)
                return cli_usage_error(cli_current, "%s", ak_err_msg(&err));
        srv.webhooks[srv.n_webhooks] = strdup(arg);
        if (!srv.webhooks[srv.n_webhooks])
                return cli_usage_error(cli_current, "out of memory");
        srv.n_webhooks++;
        return 0;
}

static int opt_port(const struct cli_option *o, const char *arg)
{
        uint32_t v;

        if (safe_atou32(arg, &v) < 0 || v == 0 || v > 65535)
                return cli_usage_error(cli_current, "invalid port '%s'", arg);
        *(unsigned *)o->value = v;
        return 0;
}

static int opt_api_key(const struct cli_option *o, const char *arg)
{
        *(bool *)o->value = true;
        if (add_key(arg, strlen(arg)) < 0)
                return cli_usage_error(cli_current, "invalid API key (at most %d keys of %d bytes)",
                                       API_KEYS_MAX, API_KEY_MAX);
        /* every local user can read our command line (ps, /proc/PID/cmdline): the key leaves
         * it as soon as it is copied (arg points into argv) */
        memset((char *)arg, 'x', strlen(arg));
        return 0;
}

static int opt_api_key_file(const struct cli_option *o, const char *arg)
{
        *(bool *)o->value = true;
        if (add_key_file(arg) < 0)
                return cli_usage_error(cli_current, "cannot read API keys from '%s'", arg);
        return 0;
}

static int opt_allowed_host(const struct cli_option *o, const char *arg)
{
        (void)o;
        if (srv.n_hosts == ALLOWED_HOSTS_MAX || !host_name_valid(arg))
                return cli_usage_error(cli_current, "invalid --allowed-host '%s'", arg);
        srv.hosts[srv.n_hosts++] = (struct gate_host){arg, true};
        return 0;
}

static int opt_gone(const struct cli_option *o, const char *arg)
{
        (void)o;
        (void)arg;
        return cli_usage_error(cli_current,
                               "--allow-unauthenticated is gone: an API without a key is open to "
                               "every local user and web page; give keys (--api-key-file) to "
                               "whoever needs access");
}

static int opt_interval(const struct cli_option *o, const char *arg)
{
        uint32_t v;

        if (safe_atou32(arg, &v) < 0 || v > 3600)
                return cli_usage_error(cli_current, "invalid interval '%s'", arg);
        *(unsigned *)o->value = v;
        return 0;
}

static int cmd_serve(int argc, char **argv);

static const struct verb serve_verb = {
    "serve",
    cmd_serve,
    "[OPTIONS]",
    "Serve the HTTP API (the official SDKs talk to it)",
    "Only the user who starts it can use it: without a key of your own it makes one at\n"
    "first start in ~/.agentkernel/api-key (mode 0600) and requires it. Clients:\n"
    "  export AGENTKERNEL_API_KEY=$(cat ~/.agentkernel/api-key)\n\n"
    "Keys: --api-key/--api-key-file, else AGENTKERNEL_API_KEY, else [api] api_key_env /\n"
    "api_key, else the generated key. GET /health is open (it says only \"ok\").\n"
    "Browsers are kept out: a foreign Host or Origin gets 403, a body that is not\n"
    "Content-Type: application/json gets 415.\n"
    "TLS: --tls [--tls-cert --tls-key] [--require-tls], else [api.tls] of the config\n"
    "(enabled, cert, key: absolute paths, the key a private file; require_tls).\n",
    0,
    NULL};

int main(int argc, char **argv)
{
        backends_init();
        cli_current = &serve_verb;
        return cmd_serve(argc, argv);
}

static int cmd_serve(int argc, char **argv)
{
        const char *host = "127.0.0.1", *config_path = NULL, *socket_path = NULL,
                   *tls_cert_path = NULL, *tls_key_path = NULL, *webhook_secret_path = NULL,
                   *otel_endpoint = NULL;
        cleanup_free char *otel_url = NULL;
        bool no_auth = false, no_tcp = false, print_key = false, is_loopback = true,
             is_wildcard = false, keys_given = false, tls = false, require_tls = false,
             tls_from_cfg = false;
        cleanup_free char *key_path = NULL, *tls_cert = NULL, *tls_key = NULL, *hook_key = NULL;
        unsigned port = DEFAULT_PORT;
        struct MHD_Daemon *d, *d_unix;
        cleanup_config struct config *cfg = NULL;
        struct ak_err err = {0};
        struct conn_limits lim = {CONNECTIONS_MAX, OTHERS_MAX, PER_PEER_MAX};
        struct stat sock_st = {0};
        struct sigaction sa = {.sa_handler = on_signal};
        struct cli_args a;
        pthread_t rec;
        int r, tcp_fd = -1, unix_fd = -1;
        const struct cli_option options[] = {
            OPT_STRING('H', "host", &host, "ADDR",
                       "address to listen on (default 127.0.0.1); a non-loopback\n"
                       "one needs a key you give (--api-key, --api-key-file,\n"
                       "AGENTKERNEL_API_KEY) and belongs behind TLS"),
            OPT_CALLBACK('p', "port", &port, "N", "port (default 18888)", opt_port),
            OPT_CALLBACK(0, "api-key", &keys_given, "KEY",
                         "require 'Authorization: Bearer KEY' (repeatable; other\n"
                         "users may see it in ps until serve starts: prefer the\n"
                         "file or AGENTKERNEL_API_KEY)",
                         opt_api_key),
            OPT_CALLBACK(0, "api-key-file", &keys_given, "FILE", "keys, one per line (# comments)",
                         opt_api_key_file),
            OPT_STRING(0, "socket", &socket_path, "PATH",
                       "also serve on a unix socket (mode 0600); peers with your\n"
                       "uid (or root) in your namespaces need no key"),
            OPT_BOOL(0, "no-tcp", &no_tcp, "serve on the --socket only"),
            OPT_CALLBACK(0, "allowed-host", NULL, "NAME",
                         "also answer to 'Host: NAME' (a proxy's or this machine's\n"
                         "name; repeatable)",
                         opt_allowed_host),
            OPT_BOOL(0, "insecure-no-auth", &no_auth,
                     "no key at all, loopback only: every local user and process\n"
                     "can then run commands as you. Do not."),
            OPT_BOOL(0, "print-api-key", &print_key,
                     "print the generated key (made if missing) and exit"),
            OPT_CALLBACK(0, "allow-unauthenticated", NULL, NULL, NULL, opt_gone),
            OPT_CALLBACK(0, "reconcile-interval", &srv.reconcile_s, "S",
                         "seconds between TTL/lifecycle passes (default 2; 0 = off)", opt_interval),
            OPT_STRING('c', "config", &config_path, "FILE",
                       "agentkernel.toml for [api] (default ./agentkernel.toml if any)"),
            OPT_BOOL(0, "tls", &tls,
                     "serve HTTPS on the port (without --tls-cert/--tls-key: a\n"
                     "self-signed pair kept in ~/.agentkernel)"),
            OPT_STRING(0, "tls-cert", &tls_cert_path, "FILE", "certificate chain (PEM)"),
            OPT_STRING(0, "tls-key", &tls_key_path, "FILE",
                       "private key (PEM): a file of yours, mode 0600"),
            OPT_BOOL(0, "require-tls", &require_tls,
                     "refuse to start with any plain listener (no --tls, or\n"
                     "--socket)"),
            OPT_STRING(0, "otel-endpoint", &otel_endpoint, "URL",
                       "export a span per request (OTLP/HTTP JSON, POST\n"
                       "URL/v1/traces; default OTEL_EXPORTER_OTLP_ENDPOINT or\n"
                       "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); no header, body\n"
                       "or query string is exported"),
            OPT_CALLBACK(0, "webhook-url", NULL, "URL",
                         "POST every lifecycle event to URL (http or https;\n"
                         "repeatable, at most 8; signed: --webhook-secret-file)",
                         opt_webhook),
            OPT_STRING(0, "webhook-secret-file", &webhook_secret_path, "FILE",
                       "the webhooks' HMAC-SHA256 key (a file of yours, mode\n"
                       "0600; default ~/.agentkernel/webhook-secret, made once)"),
            OPT_END(),
        };
        const struct cli_spec spec = {.options = options};

        srv.reconcile_s = RECONCILE_INTERVAL_S;
        srv.diag_fd = -1;
        r = cli_parse(argc, argv, &spec, &a);
        if (r)
                return CLI_PARSE_EXIT(r);
        if (print_key)
                return default_key(true, NULL) < 0 ? 1 : 0;
        if (no_tcp && !socket_path) {
                fprintf(stderr, "error: --no-tcp needs --socket PATH\n");
                return 2;
        }
        if (!config_path)
                config_path = config_default_path(); /* read only when approved */
        if (config_path && config_load(config_path, &cfg, &err) < 0) {
                fprintf(stderr, "error: %s\n", ak_err_msg(&err));
                return 2;
        }
        /* [api.tls], where no flag says otherwise: the flags win over it */
        if (cfg && !tls && !tls_cert_path && !tls_key_path) {
                tls = cfg->tls_enabled == 1 ||
                      (cfg->tls_enabled != 0 && (cfg->tls_cert || cfg->tls_key));
                if (tls) {
                        tls_cert_path = cfg->tls_cert;
                        tls_key_path = cfg->tls_key;
                        tls_from_cfg = true;
                }
        }
        if (cfg && !require_tls && cfg->tls_require == 1)
                require_tls = true;
        if ((tls_cert_path || tls_key_path) && !tls)
                tls = true; /* a certificate given means TLS */
        if (tls && !tls_cert_path != !tls_key_path) {
                fprintf(stderr, "error: %s\n",
                        tls_from_cfg ? "[api.tls] cert and key go together"
                                     : "--tls-cert and --tls-key go together");
                return 2;
        }
        if (require_tls && (!tls || socket_path)) {
                fprintf(stderr, "error: --require-tls: %s\n",
                        !tls ? "the port would be plain HTTP: give --tls --tls-cert --tls-key"
                             : "--socket would be a plain listener: leave it out");
                return 2;
        }
        if (tls && no_tcp) {
                fprintf(stderr, "error: --tls is for the port, and --no-tcp serves none\n");
                return 2;
        }
        if (tls && !tls_cert_path) {
                /* upstream's self-signed certificate, kept so clients trust it once */
                cleanup_free char *dir = NULL;
                struct ak_err kerr = {0};
                bool made = false;
                if (apikey_default_dir(&dir, &kerr) < 0 ||
                    tls_self_signed(dir, &tls_cert, &tls_key, &made, &kerr) < 0) {
                        fprintf(stderr, "error: --tls: %s\n", ak_err_msg(&kerr));
                        return 2;
                }
                fprintf(stderr,
                        "agentkernel serve: TLS with the self-signed certificate '%s/%s'%s "
                        "(clients trust it: NODE_EXTRA_CA_CERTS=it, curl --cacert it); "
                        "--tls-cert/--tls-key give your own\n",
                        dir, TLS_CERT_FILE, made ? " (made now)" : "");
        } else if (tls) {
                struct ak_err kerr = {0};
                if (!(tls_cert = read_cert(tls_cert_path)))
                        return 2;
                /* the key is the server's identity: a file only its owner can read */
                if (apikey_read_private_file(tls_key_path, &tls_key, &kerr) < 0) {
                        fprintf(stderr, "error: %s: %s\n",
                                tls_from_cfg ? "[api.tls] key" : "--tls-key", ak_err_msg(&kerr));
                        return 2;
                }
        }
        if (srv.n_webhooks && !(hook_key = webhook_secret(webhook_secret_path)))
                return 2;
        if (otel_traces_url(otel_endpoint, &otel_url) < 0)
                return 2;
        if (cfg)
                srv.http.opts.allow_sudo_exec = cfg->allow_sudo_exec;
        /* upstream's order: flags, then the environment, then [api] */
        if (!keys_given) {
                const char *env = getenv("AGENTKERNEL_API_KEY");
                const char *named = cfg && cfg->api_key_env ? getenv(cfg->api_key_env) : NULL;
                const char *k = env && *env       ? env
                                : named && *named ? named
                                : cfg             ? cfg->api_key
                                                  : NULL;
                if (k && add_key(k, strlen(k)) < 0) {
                        fprintf(stderr, "error: invalid API key\n");
                        return 2;
                }
        }
        config_free(TAKE_PTR(cfg));
        if (no_auth && srv.n_keys) {
                fprintf(stderr, "error: --insecure-no-auth and an API key (from --api-key, "
                                "--api-key-file, AGENTKERNEL_API_KEY or [api]) contradict each "
                                "other\n");
                return 2;
        }
        if (!no_tcp) {
                tcp_fd = listen_on(host, port, &is_loopback, &is_wildcard);
                if (tcp_fd < 0)
                        return 1;
        }
        if (!is_loopback && (no_auth || !srv.n_keys)) {
                fprintf(stderr,
                        "error: refusing to serve %s %s: anyone who can reach it could run "
                        "commands. Give a key of your own (--api-key-file, AGENTKERNEL_API_KEY) "
                        "and serve TLS (--tls --require-tls, or a reverse proxy in front)\n",
                        host, no_auth ? "without authentication" : "without an API key");
                close(tcp_fd);
                return 2;
        }
        if (!no_tcp && !no_auth && !srv.n_keys && default_key(false, &key_path) < 0) {
                close(tcp_fd);
                return 2;
        }
        if (socket_path) {
                unix_fd = listen_unix(socket_path, &sock_st);
                if (unix_fd < 0) {
                        if (tcp_fd >= 0)
                                close(tcp_fd);
                        return 1;
                }
        }
        host_for_gate(host, is_wildcard);
        srv.http.gate = (struct gate_config){
            (const char *const *)srv.keys, srv.n_keys, no_auth, srv.hosts, srv.n_hosts, port};
        srv.http.opts.api_key_configured = srv.n_keys > 0;
        lim.total = raise_nofile();
        if (lim.others > lim.total / 2)
                lim.others = lim.total / 2;
        conns_init(&srv.http.conns, geteuid(), &lim);
        srv.diag_fd = peer_diag_open();
        if (pipe2(srv.wake, O_CLOEXEC | O_NONBLOCK) < 0) {
                fprintf(stderr, "error: pipe: %s\n", strerror(errno));
                return 1;
        }
        (void)signal(SIGPIPE, SIG_IGN);
        (void)sigaction(SIGINT, &sa, NULL);
        (void)sigaction(SIGTERM, &sa, NULL);
        srv.http.opts.started = time(NULL);
        /* the HTTP server's own grants (upstream: not shared with an MCP server's) */
        perm_store_init(&perms, true);
        if (perm_store_warning(&perms, perm_warning, sizeof(perm_warning)))
                fprintf(stderr, "agentkernel: warning: %s\n", perm_warning);
        srv.http.opts.perms = &perms;
        d = http_start(&srv.http, lim.total, tls ? tls_cert : NULL, tls ? tls_key : NULL);
        if (!d) {
                fprintf(stderr, "error: cannot start the HTTP server%s\n",
                        tls ? " (is the key the certificate's, both PEM?)" : "");
                return 1;
        }
        if (tls_key)
                explicit_bzero(tls_key, strlen(tls_key)); /* libmicrohttpd has its copy */
        /* the unix socket stays plain (its peers are checked by their credentials) */
        d_unix = d;
        if (tls && unix_fd >= 0 && !(d_unix = http_start(&srv.http, lim.total, NULL, NULL))) {
                fprintf(stderr, "error: cannot start the HTTP server\n");
                return 1;
        }
        if (otel_url)
                fprintf(stderr, "agentkernel serve: otel: a span per request to '%s'\n", otel_url);
        if (events_start(srv.webhooks, srv.n_webhooks, hook_key, &err) < 0) {
                fprintf(stderr, "error: %s\n", ak_err_msg(&err));
                return 1;
        }
        if (hook_key)
                explicit_bzero(hook_key, strlen(hook_key));
        if (srv.reconcile_s && pthread_create(&rec, NULL, reconciler, NULL) != 0)
                srv.reconcile_s = 0;
        if (tcp_fd >= 0)
                fprintf(stderr, "agentkernel %s serving on %s://%s%s%s:%u (%s)\n", AK_VERSION,
                        tls ? "https" : "http", strchr(host, ':') ? "[" : "", host,
                        strchr(host, ':') ? "]" : "", port,
                        no_auth ? "NO AUTHENTICATION" : "API key required");
        if (key_path)
                fprintf(stderr,
                        "agentkernel serve: the key is in '%s' (readable by you only); clients: "
                        "export AGENTKERNEL_API_KEY=$(cat '%s')\n",
                        key_path, key_path);
        if (unix_fd >= 0)
                fprintf(stderr,
                        "agentkernel %s serving on unix socket '%s' (uid %u needs no key there)\n",
                        AK_VERSION, socket_path, (unsigned)geteuid());
        if (no_auth)
                fprintf(stderr,
                        "agentkernel serve: WARNING: --insecure-no-auth: NO AUTHENTICATION. Every "
                        "local user and every process on this machine can run commands as uid %u "
                        "through %s://%s:%u. Do not use this on a shared machine; use the "
                        "generated key or --socket instead.\n",
                        (unsigned)geteuid(), tls ? "https" : "http", host, port);
        if (srv.n_webhooks)
                fprintf(stderr,
                        "agentkernel serve: %zu webhook(s): lifecycle events are posted "
                        "to them\n",
                        srv.n_webhooks);
        serve_loop(d, d_unix, tcp_fd, unix_fd);
        fprintf(stderr, "agentkernel serve: stopping\n");
        if (tcp_fd >= 0)
                close(tcp_fd);
        if (unix_fd >= 0) {
                struct stat now;
                close(unix_fd);
                /* only if it is still the socket we made */
                if (lstat(socket_path, &now) == 0 && now.st_ino == sock_st.st_ino &&
                    now.st_dev == sock_st.st_dev)
                        (void)unlink(socket_path);
        }
        if (d_unix != d)
                MHD_stop_daemon(d_unix);
        MHD_stop_daemon(d);
        events_stop();
        otel_stop();
        conns_clear(&srv.http.conns);
        for (size_t i = 0; i < srv.n_webhooks; i++)
                free(srv.webhooks[i]);
        if (srv.reconcile_s)
                pthread_join(rec, NULL);
        {
                /* streams cut by the shutdown leave ephemeral sandboxes to sweep */
                struct manager *m = NULL;
                for (int i = 0; i < 20 && manager_open(&m, NULL) == 0; i++) {
                        manager_sweep(m);
                        manager_free(m);
                        m = NULL;
                        (void)usleep(50000);
                }
        }
        for (size_t i = 0; i < srv.n_keys; i++)
                free(srv.keys[i]);
        if (srv.diag_fd >= 0)
                close(srv.diag_fd);
        return 0;
}
