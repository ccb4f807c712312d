/* SPDX-License-Identifier: Apache-2.0 */
/* Docker Engine API client (see engine.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/uhttp.h"
#include "shared/cleanup.h"
#include "shared/macro.h"

const char *engine_name(enum engine_kind kind)
{
        return kind == ENGINE_PODMAN ? "podman" : "docker";
}

static int from_url(const char *var, const char *url, char *out, size_t len, struct ak_err *err)
{
        if (strncmp(url, "unix://", 7) != 0)
                return ak_err_set(err, ENOTSUP,
                                  "%s='%s': only unix:// sockets are supported (a remote engine "
                                  "would run sandboxes elsewhere than this agentkernel expects)",
                                  var, url);
        if (strlen(url + 7) >= len)
                return ak_err_set(err, ENAMETOOLONG, "%s: socket path too long", var);
        (void)snprintf(out, len, "%s", url + 7);
        return 0;
}

int engine_socket(enum engine_kind kind, char *out, size_t len, struct ak_err *err)
{
        const char *var = kind == ENGINE_PODMAN ? "CONTAINER_HOST" : "DOCKER_HOST";
        const char *env = getenv(var);
        char tried[512] = "";

        if (env && *env)
                return from_url(var, env, out, len, err);
        if (kind == ENGINE_DOCKER) {
                (void)snprintf(out, len, "/var/run/docker.sock");
                if (access(out, F_OK) == 0)
                        return 0;
                (void)snprintf(tried, sizeof(tried), "%s", out);
        } else {
                const char *xdg = getenv("XDG_RUNTIME_DIR");
                if (geteuid() == 0)
                        (void)snprintf(out, len, "/run/podman/podman.sock");
                else if (xdg && *xdg)
                        (void)snprintf(out, len, "%s/podman/podman.sock", xdg);
                else
                        (void)snprintf(out, len, "/run/user/%u/podman/podman.sock",
                                       (unsigned)geteuid());
                if (access(out, F_OK) == 0)
                        return 0;
                (void)snprintf(tried, sizeof(tried), "%s", out);
        }
        return ak_err_set(err, ENOENT,
                          "no %s engine: %s does not exist (set %s=unix:///path, or start it%s)",
                          engine_name(kind), tried, var,
                          kind == ENGINE_PODMAN ? ": podman system service --time=0" : "");
}

/* The engine's own words: {"message": "..."} */
static void engine_message(json_t *j, int status, const char *method, const char *path,
                           struct ak_err *err)
{
        const char *m = json_string_value(json_object_get(j, "message"));
        int code = status == 404 ? ENOENT : status == 409 ? EEXIST : EIO;

        ak_err_set(err, code, "%s %s: %s", method, path, m ? m : "failed");
}

static int call(const struct engine *e, const char *method, const char *path, json_t *body,
                int timeout_ms, size_t max, struct uhttp_response *res, struct ak_err *err)
{
        cleanup_free char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        char target[2048];

        if (body && !text)
                return ak_err_oom(err);
        if (snprintf(target, sizeof(target), "/v%s%s", e->version, path) >= (int)sizeof(target))
                return ak_err_set(err, ENAMETOOLONG, "engine path too long");
        return uhttp_request(e->socket, method, target, text, max, timeout_ms, res, err);
}

int engine_call(const struct engine *e, const char *method, const char *path, json_t *body,
                json_t **ret, struct ak_err *err)
{
        struct uhttp_response res = {0};
        json_t *j = NULL;
        int r = call(e, method, path, body, ENGINE_TIMEOUT_MS, ENGINE_BODY_MAX, &res, err);

        if (r < 0)
                return r;
        if (res.body.len)
                j = json_loadb(res.body.data, res.body.len, 0, NULL);
        r = res.status;
        if (r >= 400)
                engine_message(j, r, method, path, err);
        uhttp_response_done(&res);
        if (ret)
                *ret = j;
        else
                json_decref(j);
        return r;
}

int engine_call_stream(const struct engine *e, const char *method, const char *path,
                       struct ak_err *err)
{
        struct uhttp_response res = {0};
        int r = call(e, method, path, NULL, ENGINE_PULL_TIMEOUT_MS, ENGINE_STREAM_MAX, &res, err);
        const char *line;

        if (r < 0)
                return r;
        r = res.status;
        if (r >= 400) {
                json_t *j = json_loadb(res.body.data ? res.body.data : "", res.body.len, 0, NULL);
                engine_message(j, r, method, path, err);
                json_decref(j);
        } else {
                /* progress lines; an {"error": ...} among them means it failed */
                for (line = res.body.data; line && *line;) {
                        const char *nl = strchr(line, '\n');
                        size_t n = nl ? (size_t)(nl - line) : strlen(line);
                        json_t *j = json_loadb(line, n, 0, NULL);
                        const char *m = json_string_value(json_object_get(j, "error"));
                        if (m) {
                                ak_err_set(err, EIO, "%s", m);
                                r = 500;
                        }
                        json_decref(j);
                        line = nl ? nl + 1 : NULL;
                }
        }
        uhttp_response_done(&res);
        return r;
}

int engine_open(enum engine_kind kind, struct engine *e, struct ak_err *err)
{
        struct engine t = {.kind = kind};
        struct uhttp_response res = {0};
        const char *v;
        int r;

        /* this process asked the same engine already (a run probes the backend, then starts):
         * the version it negotiated then holds (the socket's identity too: a new engine at that
         * path is asked again) */
        static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
        static struct engine last;
        static struct stat last_st;
        struct engine seen;
        struct stat st, seen_st;

        r = engine_socket(kind, t.socket, sizeof(t.socket), err);
        if (r < 0)
                return r;
        (void)pthread_mutex_lock(&lock);
        seen = last;
        seen_st = last_st;
        (void)pthread_mutex_unlock(&lock);
        if (seen.version[0] && seen.kind == kind && streq(seen.socket, t.socket) &&
            stat(t.socket, &st) == 0 && st.st_dev == seen_st.st_dev &&
            st.st_ino == seen_st.st_ino && st.st_ctim.tv_sec == seen_st.st_ctim.tv_sec &&
            st.st_ctim.tv_nsec == seen_st.st_ctim.tv_nsec) {
                *e = seen;
                return 0;
        }
        /* /_ping answers at once with the API version in a header (podman's /version takes
         * over a second: it asks its runtime and conmon for theirs) */
        r = uhttp_request(t.socket, "GET", "/_ping", NULL, 1 << 16, 10000, &res, err);
        if (r < 0)
                return ak_err_prefix(err, "%s engine at %s", engine_name(kind), t.socket);
        v = res.api_version[0] ? res.api_version : NULL;
        if (res.status != 200 || !v) {
                r = ak_err_set(err, EPROTO,
                               "%s engine at %s answered /_ping with HTTP %d and no API version",
                               engine_name(kind), t.socket, res.status);
        } else {
                /* the lower of theirs and ours (as the docker CLI negotiates) */
                unsigned a = 0, b = 0, x = 0, y = 0;
                (void)sscanf(v, "%u.%u", &a, &b);
                (void)sscanf(ENGINE_API_VERSION, "%u.%u", &x, &y);
                if (a < 1 || (a == 1 && b < 40))
                        r = ak_err_set(err, ENOTSUP, "%s engine API %s is older than 1.40",
                                       engine_name(kind), v);
                else if (a > x || (a == x && b > y))
                        (void)snprintf(t.version, sizeof(t.version), "%s", ENGINE_API_VERSION);
                else
                        (void)snprintf(t.version, sizeof(t.version), "%u.%u", a, b);
        }
        uhttp_response_done(&res);
        if (r < 0)
                return r;
        *e = t;
        if (stat(t.socket, &st) == 0) {
                (void)pthread_mutex_lock(&lock);
                last = t;
                last_st = st;
                (void)pthread_mutex_unlock(&lock);
        }
        return 0;
}
