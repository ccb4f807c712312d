// SPDX-License-Identifier: Apache-2.0
/* The API's operations on top of the manager. Never prints; every failure becomes a status and
 * a message for the envelope. */
#include "api.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/proto.h"
#include "core/audit.h"
#include "core/profile.h"
#include "core/validate.h"
#include "core/views.h"
#include "server/worker.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/random-util.h"
#include "shared/strv.h"
#include "shared/text-util.h"
#include "shared/time-util.h"

#define BATCH_MAX 64
#define BATCH_PARALLEL 8
#define FILES_BATCH_MAX 1024

void api_result_done(struct api_result *r)
{
        json_decref(r->data);
        json_decref(r->extra);
        memset(r, 0, sizeof(*r));
}

int api_fail(struct api_result *r, int status, const char *fmt, ...)
{
        va_list ap;

        r->status = status;
        va_start(ap, fmt);
        (void)vsnprintf(r->error, sizeof(r->error), fmt, ap);
        va_end(ap);
        return -1;
}

int api_status_of(int code)
{
        switch (code) {
        case ENOENT:
                return 404;
        case EINVAL:
        case ENAMETOOLONG:
        case E2BIG:
        case ERANGE:
                return 400;
        case EEXIST:
        case EALREADY:
        case ESRCH:
        case ENOTEMPTY:
        case ECANCELED:
                return 409;
        case EPERM:
        case EACCES:
                return 403;
        case EFBIG:
                return 413;
        case ENOTSUP:
                return 501;
        default:
                return 500;
        }
}

static int fail_err(struct api_result *r, const struct ak_err *err)
{
        return api_fail(r, api_status_of(err->code), "%s", ak_err_msg(err));
}

static int ok(struct api_result *r, int status, json_t *data)
{
        r->status = status;
        r->data = data ? data : json_null();
        return 0;
}

static int ok_text(struct api_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int ok_text(struct api_result *r, const char *fmt, ...)
{
        char text[1024];
        va_list ap;

        va_start(ap, fmt);
        (void)vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        return ok(r, 200, json_string(text));
}

/* ---- request fields ---- */

static int want_name(const char *name, struct api_result *r)
{
        struct ak_err err = {0};
        if (validate_name(name, &err) < 0)
                return api_fail(r, 400, "%s", ak_err_msg(&err));
        return 0;
}

/* An array of strings (argv, env, volumes); NULL-terminated copy in *ret. */
static int string_array(json_t *body, const char *key, bool required, size_t max, char ***ret,
                        struct api_result *r)
{
        json_t *v = json_object_get(body, key), *e;
        size_t i;

        *ret = NULL;
        if (!v || json_is_null(v)) {
                if (required)
                        return api_fail(r, 400, "%s is required", key);
                return 0;
        }
        if (!json_is_array(v))
                return api_fail(r, 400, "%s must be an array of strings", key);
        if (json_array_size(v) > max)
                return api_fail(r, 400, "%s has more than %zu entries", key, max);
        *ret = calloc(json_array_size(v) + 1, sizeof(char *));
        if (!*ret)
                return api_fail(r, 500, "out of memory");
        json_array_foreach (v, i, e) {
                if (!json_is_string(e) ||
                    memchr(json_string_value(e), '\0', json_string_length(e))) {
                        strv_free(*ret);
                        *ret = NULL;
                        return api_fail(r, 400, "%s must be an array of strings", key);
                }
                if (!((*ret)[i] = strdup(json_string_value(e)))) {
                        strv_free(*ret);
                        *ret = NULL;
                        return api_fail(r, 500, "out of memory");
                }
        }
        return 0;
}

static int command_of(json_t *body, char ***ret, struct api_result *r)
{
        if (string_array(body, "command", false, AK_MAX_ARGS, ret, r) < 0)
                return -1;
        if (!*ret || !(*ret)[0]) {
                strv_free(*ret);
                *ret = NULL;
                return api_fail(r, 400, "command is required");
        }
        return 0;
}

/* env: ["K=V", ...] (HTTP) or {"K": "V"} (MCP); validated. */
static int env_of(json_t *body, char ***ret, struct api_result *r)
{
        json_t *v = json_object_get(body, "env");
        struct ak_err err = {0};

        *ret = NULL;
        if (json_is_object(v)) {
                const char *k;
                json_t *val;
                json_object_foreach (v, k, val) {
                        cleanup_free char *e = NULL;
                        if (!json_is_string(val))
                                return api_fail(r, 400, "env values must be strings");
                        if (asprintf(&e, "%s=%s", k, json_string_value(val)) < 0)
                                return api_fail(r, 500, "out of memory");
                        if (strv_len(*ret) >= AK_MAX_ARGS)
                                return api_fail(r, 400, "too many environment variables");
                        if (strv_consume(ret, TAKE_PTR(e)) < 0)
                                return api_fail(r, 500, "out of memory");
                }
        } else if (string_array(body, "env", false, AK_MAX_ARGS, ret, r) < 0) {
                return -1;
        }
        for (char **e = *ret; e && *e; e++)
                if (validate_env_entry(*e, &err) < 0) {
                        strv_free(*ret);
                        *ret = NULL;
                        return api_fail(r, 400, "%s", ak_err_msg(&err));
                }
        return 0;
}

static const char *opt_string(json_t *body, const char *key, struct api_result *r, bool *bad)
{
        json_t *v = json_object_get(body, key);
        if (!v || json_is_null(v))
                return NULL;
        if (!json_is_string(v)) {
                *bad = true;
                (void)api_fail(r, 400, "%s must be a string", key);
                return NULL;
        }
        return json_string_value(v);
}

static int opt_uint(json_t *body, const char *key, uint64_t max, uint64_t *ret,
                    struct api_result *r)
{
        json_t *v = json_object_get(body, key);
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            (uint64_t)json_integer_value(v) > max)
                return api_fail(r, 400, "%s must be an integer from 0 to %llu", key,
                                (unsigned long long)max);
        *ret = (uint64_t)json_integer_value(v);
        return 0;
}

/* disk_mb: absent, null, or DISK_MB_MIN..DISK_MB_MAX. */
static int opt_disk(json_t *body, uint64_t *ret, struct api_result *r)
{
        json_t *v = json_object_get(body, "disk_mb");
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < DISK_MB_MIN ||
            json_integer_value(v) > DISK_MB_MAX)
                return api_fail(r, 400, "disk_mb must be an integer from %u to %u", DISK_MB_MIN,
                                DISK_MB_MAX);
        *ret = (uint64_t)json_integer_value(v);
        return 0;
}

static int opt_bool(json_t *body, const char *key, int *ret, struct api_result *r)
{
        json_t *v = json_object_get(body, key);
        if (!v || json_is_null(v))
                return 0;
        if (!json_is_boolean(v))
                return api_fail(r, 400, "%s must be true or false", key);
        *ret = json_is_true(v);
        return 0;
}

/* ---- output of a finished command ---- */

/* Upstream's combined output: stdout, then stderr after a newline when both have text. */
static json_t *combined(const struct buf *out, const struct buf *err)
{
        cleanup_buf struct buf b = BUF_INIT;

        if (out->len)
                (void)buf_append(&b, out->data, out->len);
        if (out->len && err->len)
                (void)buf_append(&b, "\n", 1);
        if (err->len)
                (void)buf_append(&b, err->data, err->len);
        if (!utf8_valid(b.data ? b.data : "", b.len)) {
                /* JSON strings are text: invalid bytes become U+FFFD */
                cleanup_buf struct buf fixed = BUF_INIT;
                size_t i = 0;
                while (i < b.len) {
                        size_t ok_len = utf8_invalid_at((unsigned char *)b.data + i, b.len - i);
                        (void)buf_append(&fixed, b.data + i, ok_len);
                        i += ok_len;
                        if (i < b.len) {
                                (void)buf_append(&fixed, "\xEF\xBF\xBD", 3);
                                i++;
                        }
                }
                return json_stringn(fixed.data ? fixed.data : "", fixed.len);
        }
        return json_stringn(b.data ? b.data : "", b.len);
}

/* 200 {output}, or upstream's 409 with exit_code and output for a failed command. */
static int command_reply(struct api_result *r, const struct agent_exit *ex, const struct buf *out,
                         const struct buf *err)
{
        json_t *output = combined(out, err);

        if (!output)
                return api_fail(r, 500, "out of memory");
        if (ex->code != 0) {
                const char *text = json_string_value(output);
                size_t n = strlen(text);
                api_fail(r, 409, "Command exited with code %d%s: %.*s", ex->code,
                         ex->timed_out ? " (timed out)" : "", (int)(n > 512 ? 512 : n), text);
                r->extra = json_pack("{s:i,s:o}", "exit_code", ex->code, "output", output);
                return -1;
        }
        return ok(r, 200, json_pack("{s:o}", "output", output));
}

/* ---- run ---- */

int api_run_prepare(json_t *body, struct create_opts *o, struct agent_exec_opts *x,
                    char ***argv_out, char ***env_out, struct api_result *r)
{
        const char *image, *profile, *cwd;
        uint64_t timeout = API_EXEC_TIMEOUT_MS, mem = 0, disk = 0;
        bool bad = false;
        int network = -1;

        memset(o, 0, sizeof(*o));
        memset(x, 0, sizeof(*x));
        *argv_out = *env_out = NULL;
        if (!json_is_object(body))
                return api_fail(r, 400, "the body must be a JSON object");
        image = opt_string(body, "image", r, &bad);
        profile = opt_string(body, "profile", r, &bad);
        cwd = opt_string(body, "cwd", r, &bad);
        if (!cwd)
                cwd = opt_string(body, "workdir", r, &bad);
        if (bad || opt_uint(body, "timeout_ms", 86400000ull, &timeout, r) < 0 ||
            opt_uint(body, "memory_mb", 1u << 20, &mem, r) < 0 || opt_disk(body, &disk, r) < 0 ||
            opt_bool(body, "network", &network, r) < 0)
                return -1;
        if (profile && !profile_get(profile))
                return api_fail(r, 400,
                                "invalid profile '%s': use permissive, moderate or restrictive",
                                profile);
        if (json_array_size(json_object_get(body, "ports")))
                return api_fail(r, 400, "a run cannot publish ports; create a sandbox instead");
        if (command_of(body, argv_out, r) < 0 || env_of(body, env_out, r) < 0)
                return -1;
        if (cwd && cwd[0] != '/')
                return api_fail(r, 400, "cwd must be an absolute path");
        /* An image the client names is used (and pulled) as named; none means the default. */
        o->image = image;
        o->profile = profile;
        o->network = network;
        o->mount_cwd = 0;
        o->memory_mb = mem;
        o->disk_mb = disk;
        o->name = "run";
        x->argv = *argv_out;
        x->env = *env_out;
        x->cwd = cwd;
        x->timeout_ms = timeout ? timeout : API_EXEC_TIMEOUT_MS;
        return 0;
}

int api_run(struct api_ctx *c, json_t *body, struct api_result *r)
{
        struct create_opts o;
        struct agent_exec_opts x;
        cleanup_strv char **argv = NULL, **env = NULL;
        cleanup_buf struct buf out = BUF_INIT, err = BUF_INIT;
        struct worker_run w;
        struct ak_err e = {0};
        struct agent_exit ex = {0};
        struct worker_event *ev;
        int got;

        (void)c;
        if (api_run_prepare(body, &o, &x, &argv, &env, r) < 0)
                return -1;
        if (worker_run_start(&o, &x, &w, &e) < 0)
                return fail_err(r, &e);
        ev = malloc(sizeof(*ev));
        if (!ev) {
                worker_run_end(&w);
                return api_fail(r, 500, "out of memory");
        }
        for (;;) {
                got = worker_run_next(&w, -1, ev);
                if (got <= 0) {
                        api_fail(r, 500, "the sandbox ended without a result");
                        break;
                }
                if (ev->type == WORKER_STDOUT || ev->type == WORKER_STDERR) {
                        struct buf *b = ev->type == WORKER_STDOUT ? &out : &err;
                        if (b->len + ev->len <= API_OUTPUT_MAX)
                                (void)buf_append(b, ev->data, ev->len);
                        continue;
                }
                if (ev->type == WORKER_ERROR) {
                        api_fail(r, api_status_of(ev->code), "%s", ev->data);
                        got = -1;
                        break;
                }
                ex.code = ev->code;
                ex.signal = ev->signal;
                ex.timed_out = ev->timed_out;
                break;
        }
        free(ev);
        worker_run_end(&w);
        if (got <= 0 || r->status)
                return -1;
        return command_reply(r, &ex, &out, &err);
}

struct batch_slot {
        struct worker_run w;
        struct buf out, err;
        json_t *result;
        bool running;
};

int api_batch_run(struct api_ctx *c, json_t *body, struct api_result *r)
{
        json_t *cmds = json_object_get(body, "commands"), *results;
        struct batch_slot *slots;
        size_t n, next = 0, done = 0;

        (void)c;
        if (!json_is_array(cmds) || json_array_size(cmds) == 0)
                return api_fail(r, 400, "commands must be a non-empty array");
        n = json_array_size(cmds);
        if (n > BATCH_MAX)
                return api_fail(r, 400, "at most %d commands per batch", BATCH_MAX);
        slots = calloc(n, sizeof(*slots));
        results = json_array();
        if (!slots || !results) {
                free(slots);
                json_decref(results);
                return api_fail(r, 500, "out of memory");
        }
        /* at most BATCH_PARALLEL at once, results in input order */
        while (done < n) {
                size_t running = 0;
                for (size_t i = 0; i < n; i++)
                        running += slots[i].running;
                while (next < n && running < BATCH_PARALLEL) {
                        struct batch_slot *s = &slots[next];
                        struct api_result one = {0};
                        struct create_opts o;
                        struct agent_exec_opts x;
                        char **argv = NULL, **env = NULL;
                        struct ak_err e = {0};
                        if (api_run_prepare(json_array_get(cmds, next), &o, &x, &argv, &env, &one) <
                            0) {
                                s->result = json_pack("{s:n,s:s}", "output", "error", one.error);
                                done++;
                        } else if (worker_run_start(&o, &x, &s->w, &e) < 0) {
                                s->result =
                                    json_pack("{s:n,s:s}", "output", "error", ak_err_msg(&e));
                                done++;
                        } else {
                                s->running = true;
                                running++;
                        }
                        strv_free(argv);
                        strv_free(env);
                        next++;
                }
                for (size_t i = 0; i < n; i++) {
                        struct batch_slot *s = &slots[i];
                        struct worker_event ev;
                        int got;
                        if (!s->running)
                                continue;
                        got = worker_run_next(&s->w, 10, &ev);
                        if (got == 0)
                                continue;
                        if (got > 0 && (ev.type == WORKER_STDOUT || ev.type == WORKER_STDERR)) {
                                struct buf *b = ev.type == WORKER_STDOUT ? &s->out : &s->err;
                                if (b->len + ev.len <= API_OUTPUT_MAX)
                                        (void)buf_append(b, ev.data, ev.len);
                                continue;
                        }
                        if (got > 0 && ev.type == WORKER_EXIT && ev.code == 0) {
                                s->result = json_pack("{s:o,s:n}", "output",
                                                      combined(&s->out, &s->err), "error");
                        } else if (got > 0 && ev.type == WORKER_EXIT) {
                                json_t *o = combined(&s->out, &s->err);
                                char msg[1100];
                                (void)snprintf(msg, sizeof(msg),
                                               "Command exited with code %d: %.1000s", ev.code,
                                               json_string_value(o));
                                s->result = json_pack("{s:o,s:s}", "output", o, "error", msg);
                        } else {
                                s->result = json_pack("{s:n,s:s}", "output", "error",
                                                      got > 0 ? ev.data
                                                              : "the sandbox ended "
                                                                "without a result");
                        }
                        worker_run_end(&s->w);
                        s->running = false;
                        done++;
                }
        }
        for (size_t i = 0; i < n; i++) {
                json_array_append_new(results, slots[i].result ? slots[i].result : json_null());
                buf_done(&slots[i].out);
                buf_done(&slots[i].err);
        }
        free(slots);
        return ok(r, 200, json_pack("{s:o}", "results", results));
}

/* ---- sandboxes ---- */

static int load(struct api_ctx *c, const char *name, struct sandbox_state **st,
                struct api_result *r)
{
        struct ak_err err = {0};

        if (want_name(name, r) < 0)
                return -1;
        if (manager_get(c->m, name, st, &err) < 0) {
                if (err.code == ENOENT)
                        return api_fail(r, 404, "Sandbox '%s' not found", name);
                return fail_err(r, &err);
        }
        return 0;
}

static int info_reply(struct api_ctx *c, const char *name, int status, struct api_result *r)
{
        struct sandbox_state *st = NULL;

        if (load(c, name, &st, r) < 0)
                return -1;
        ok(r, status, manager_info_json(c->m, st));
        state_free(st);
        return 0;
}

int api_list(struct api_ctx *c, json_t *filters, struct api_result *r)
{
        struct state_list l;
        json_t *arr = json_array();
        int e = manager_list(c->m, NULL, NULL, &l);

        if (e < 0) {
                json_decref(arr);
                return api_fail(r, 500, "cannot list sandboxes: %s", strerror(-e));
        }
        for (size_t i = 0; i < l.n; i++)
                if (!filters || state_labels_match(l.items[i], filters))
                        json_array_append_new(arr, manager_info_json(c->m, l.items[i]));
        state_list_done(&l);
        return ok(r, 200, arr);
}

int api_get(struct api_ctx *c, const char *name, struct api_result *r)
{
        return info_reply(c, name, 200, r);
}

int api_get_by_uuid(struct api_ctx *c, const char *uuid, struct api_result *r)
{
        cleanup_state_list struct state_list l = {0};
        int e;

        if (strlen(uuid) != 36)
                return api_fail(r, 400, "invalid uuid '%s'", uuid);
        e = manager_list(c->m, NULL, NULL, &l);
        if (e < 0)
                return api_fail(r, 500, "cannot list sandboxes: %s", strerror(-e));
        for (size_t i = 0; i < l.n; i++)
                if (strcasecmp(l.items[i]->uuid, uuid) == 0) {
                        ok(r, 200, manager_info_json(c->m, l.items[i]));
                        return 0;
                }
        return api_fail(r, 404, "No sandbox with uuid '%s'", uuid);
}

static int start_in_worker(struct manager *m, void *ctx, struct ak_err *err)
{
        return manager_start(m, ctx, err);
}

static int parse_lifecycle(json_t *v, struct lifecycle_policy *p, struct api_result *r)
{
        static const char *const keys[] = {"auto_stop_after_seconds", "auto_archive_after_seconds",
                                           "auto_delete_after_seconds"};
        bool *has[] = {&p->has_stop, &p->has_archive, &p->has_delete};
        uint64_t *val[] = {&p->stop_after, &p->archive_after, &p->delete_after};

        memset(p, 0, sizeof(*p));
        if (!json_is_object(v))
                return api_fail(r, 400, "lifecycle must be an object or null");
        p->present = true;
        for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
                json_t *x = json_object_get(v, keys[i]);
                if (!x || json_is_null(x))
                        continue;
                if (!json_is_integer(x) || json_integer_value(x) < 0)
                        return api_fail(r, 400, "%s must be a non-negative integer", keys[i]);
                *has[i] = true;
                *val[i] = (uint64_t)json_integer_value(x);
        }
        return 0;
}

int api_create(struct api_ctx *c, json_t *body, struct api_result *r)
{
        struct create_opts o = {.network = -1, .mount_cwd = 0};
        cleanup_strv char **env = NULL, **volumes = NULL, **ports_s = NULL, **secrets = NULL,
                          **secret_files = NULL;
        struct port_spec ports[64];
        struct lifecycle_policy lc;
        struct ak_err err = {0};
        json_t *labels = json_object_get(body, "labels"), *lcj = json_object_get(body, "lifecycle");
        uint64_t vcpus = 0, mem = 0, disk = 0, ttl = 0;
        bool bad = false, has_lc = false;
        const char *name, *image, *profile, *ttl_s;
        int network = -1;

        if (!json_is_object(body))
                return api_fail(r, 400, "the body must be a JSON object");
        name = opt_string(body, "name", r, &bad);
        image = opt_string(body, "image", r, &bad);
        profile = opt_string(body, "profile", r, &bad);
        o.description = opt_string(body, "description", r, &bad);
        o.agent = opt_string(body, "agent", r, &bad);
        o.init_script = opt_string(body, "init_script", r, &bad);
        o.backend = opt_string(body, "backend", r, &bad);
        ttl_s = opt_string(body, "ttl", r, &bad);
        if (bad)
                return -1;
        if (!name)
                return api_fail(r, 400, "name is required");
        if (want_name(name, r) < 0)
                return -1;
        if (profile && !profile_get(profile))
                return api_fail(r, 400,
                                "invalid profile '%s': use permissive, moderate or restrictive",
                                profile);
        if (opt_uint(body, "vcpus", 64, &vcpus, r) < 0 ||
            opt_uint(body, "memory_mb", 1u << 20, &mem, r) < 0 || opt_disk(body, &disk, r) < 0 ||
            opt_bool(body, "network", &network, r) < 0 || env_of(body, &env, r) < 0 ||
            string_array(body, "volumes", false, 32, &volumes, r) < 0 ||
            string_array(body, "ports", false, ARRAY_SIZE(ports), &ports_s, r) < 0 ||
            string_array(body, "secrets", false, 64, &secrets, r) < 0 ||
            string_array(body, "secret_files", false, 64, &secret_files, r) < 0)
                return -1;
        if (json_object_get(body, "source_url"))
                return api_fail(r, 501,
                                "source_url (cloning a repository into the sandbox) is "
                                "not implemented yet");
        if (strv_len(secrets) || strv_len(secret_files))
                return api_fail(r, 501,
                                "secrets need the egress proxy, which is not implemented "
                                "yet; nothing was created");
        if (ttl_s && parse_ttl(ttl_s, true, &ttl, &err) < 0)
                return api_fail(r, 400, "%s", ak_err_msg(&err));
        if (lcj && !json_is_null(lcj)) {
                if (parse_lifecycle(lcj, &lc, r) < 0)
                        return -1;
                has_lc = true;
        }
        if (labels && !json_is_null(labels) && validate_labels(labels, &err) < 0)
                return api_fail(r, 400, "%s", ak_err_msg(&err));
        for (size_t i = 0; ports_s && ports_s[i]; i++)
                if (parse_port_spec(ports_s[i], &ports[i], &err) < 0)
                        return api_fail(r, 400, "%s", ak_err_msg(&err));
        o.name = name;
        o.image = image;
        o.profile = profile;
        o.vcpus = (uint32_t)vcpus;
        o.memory_mb = mem;
        o.disk_mb = disk;
        o.network = network;
        o.env = env;
        o.volumes = volumes;
        o.ports = ports;
        o.n_ports = strv_len(ports_s);
        o.labels = labels && !json_is_null(labels) ? labels : NULL;
        o.has_ttl = ttl_s != NULL;
        o.ttl_seconds = ttl;
        if (manager_create(c->m, &o, &err) < 0)
                return fail_err(r, &err);
        if ((has_lc && manager_set_lifecycle(c->m, name, &lc, &err) < 0) ||
            worker_call(start_in_worker, (void *)name, &err) < 0) {
                struct ak_err ignore = {0};
                int status = api_status_of(err.code);
                (void)manager_remove(c->m, name, &ignore);
                return api_fail(r, status == 409 || status == 404 ? 500 : status, "%s",
                                ak_err_msg(&err));
        }
        return info_reply(c, name, 201, r);
}

int api_patch(struct api_ctx *c, const char *name, json_t *body, struct api_result *r)
{
        struct sandbox_state *st = NULL;
        struct ak_err err = {0};
        json_t *v;

        if (load(c, name, &st, r) < 0)
                return -1;
        state_free(st);
        if (!json_is_object(body))
                return api_fail(r, 400, "the body must be a JSON object");
        if ((v = json_object_get(body, "labels")) && !json_is_null(v) &&
            manager_set_labels(c->m, name, v, &err) < 0)
                return fail_err(r, &err);
        if ((v = json_object_get(body, "description"))) {
                if (!json_is_null(v) && !json_is_string(v))
                        return api_fail(r, 400, "description must be a string or null");
                if (manager_set_description(c->m, name, json_string_value(v), &err) < 0)
                        return fail_err(r, &err);
        }
        if ((v = json_object_get(body, "lifecycle"))) {
                struct lifecycle_policy lc;
                if (!json_is_null(v) && parse_lifecycle(v, &lc, r) < 0)
                        return -1;
                if (manager_set_lifecycle(c->m, name, json_is_null(v) ? NULL : &lc, &err) < 0)
                        return fail_err(r, &err);
        }
        return info_reply(c, name, 200, r);
}

int api_delete(struct api_ctx *c, const char *name, struct api_result *r)
{
        struct ak_err err = {0};

        if (want_name(name, r) < 0)
                return -1;
        if (manager_remove(c->m, name, &err) < 0) {
                if (err.code == ENOENT)
                        return api_fail(r, 404, "Sandbox '%s' not found", name);
                return fail_err(r, &err);
        }
        return ok_text(r, "Sandbox removed");
}

int api_start(struct api_ctx *c, const char *name, struct api_result *r)
{
        struct sandbox_state *st = NULL;
        struct ak_err err = {0};
        int e;

        if (load(c, name, &st, r) < 0)
                return -1;
        state_free(st);
        e = worker_call(start_in_worker, (void *)name, &err);
        if (e == -EALREADY)
                return ok_text(r, "Sandbox already running");
        if (e < 0)
                return fail_err(r, &err);
        return ok_text(r, "Sandbox started");
}

int api_stop(struct api_ctx *c, const char *name, struct api_result *r)
{
        struct sandbox_state *st = NULL;
        struct ak_err err = {0};

        if (load(c, name, &st, r) < 0)
                return -1;
        state_free(st);
        if (manager_stop(c->m, name, &err) < 0)
                return fail_err(r, &err);
        return ok_text(r, "Sandbox stopped");
}

/* exec and exec/detach bodies: {command, env?, workdir?, sudo?, timeout_ms?} */
static int exec_request(struct api_ctx *c, json_t *body, struct agent_exec_opts *x, char ***argv,
                        char ***env, struct api_result *r)
{
        uint64_t timeout = API_EXEC_TIMEOUT_MS;
        bool bad = false;
        int sudo = 0;
        const char *wd;

        memset(x, 0, sizeof(*x));
        if (!json_is_object(body))
                return api_fail(r, 400, "the body must be a JSON object");
        wd = opt_string(body, "workdir", r, &bad);
        if (bad || opt_bool(body, "sudo", &sudo, r) < 0 ||
            opt_uint(body, "timeout_ms", 86400000ull, &timeout, r) < 0)
                return -1;
        if (command_of(body, argv, r) < 0 || env_of(body, env, r) < 0)
                return -1;
        if (wd && wd[0] != '/')
                return api_fail(r, 400, "workdir must be an absolute path");
        if (sudo && !c->opts->allow_sudo_exec)
                return api_fail(r, 403,
                                "sudo exec is disabled on this server (set [api] "
                                "allow_sudo_exec = true)");
        x->argv = *argv;
        x->env = *env;
        x->cwd = wd;
        x->user = sudo ? "root" : NULL;
        x->timeout_ms = timeout ? timeout : API_EXEC_TIMEOUT_MS;
        return 0;
}

static int running(struct api_ctx *c, const char *name, struct api_result *r)
{
        struct sandbox_state *st = NULL;
        bool up;

        if (load(c, name, &st, r) < 0)
                return -1;
        up = manager_is_running(c->m, st);
        state_free(st);
        if (!up)
                return api_fail(r, 409,
                                "Sandbox '%s' is not running. Start it with: POST "
                                "/sandboxes/%s/start",
                                name, name);
        return 0;
}

/* manager_connect's errors in the API's words. */
static int exec_failure(const char *name, const struct ak_err *err, struct api_result *r)
{
        if (err->code == ENOENT)
                return api_fail(r, 404, "Sandbox '%s' not found", name);
        if (err->code == ESRCH)
                return api_fail(r, 409,
                                "Sandbox '%s' is not running. Start it with: POST "
                                "/sandboxes/%s/start",
                                name, name);
        return fail_err(r, err);
}

int api_exec(struct api_ctx *c, const char *name, json_t *body, struct api_result *r)
{
        struct agent_exec_opts x;
        cleanup_strv char **argv = NULL, **env = NULL;
        cleanup_buf struct buf out = BUF_INIT, errout = BUF_INIT;
        struct agent_exit ex = {0};
        struct ak_err err = {0};

        if (want_name(name, r) < 0 || exec_request(c, body, &x, &argv, &env, r) < 0)
                return -1;
        if (manager_exec_capture(c->m, name, &x, API_OUTPUT_MAX, &out, &errout, NULL, &ex, &err) <
            0)
                return exec_failure(name, &err, r);
        return command_reply(r, &ex, &out, &errout);
}

int api_exec_detach(struct api_ctx *c, const char *name, json_t *body, struct api_result *r)
{
        struct agent_exec_opts x;
        cleanup_strv char **argv = NULL, **env = NULL;
        struct agent_detached d;
        struct ak_err err = {0};

        if (running(c, name, r) < 0 || exec_request(c, body, &x, &argv, &env, r) < 0)
                return -1;
        x.timeout_ms = 0;
        if (manager_detach(c->m, name, &x, &d, &err) < 0)
                return fail_err(r, &err);
        ok(r, 200, detached_json(name, &d));
        agent_detached_done(&d);
        return 0;
}

/* The API's words for a detached command the manager would refuse (detached_id_is_valid), and
 * for a sandbox that is missing or stopped; then the manager does the work. */
static int detached_target(struct api_ctx *c, const char *name, const char *id,
                           struct api_result *r)
{
        if (id && !detached_id_is_valid(id))
                return api_fail(r, 404, "No detached command '%s'", id);
        return running(c, name, r);
}

int api_detached_list(struct api_ctx *c, const char *name, struct api_result *r)
{
        cleanup_detached_list struct detached_list l = {0};
        struct ak_err err = {0};
        json_t *arr;

        if (detached_target(c, name, NULL, r) < 0)
                return -1;
        if (manager_detached_list(c->m, name, &l, &err) < 0)
                return fail_err(r, &err);
        arr = json_array();
        for (size_t i = 0; i < l.n; i++)
                json_array_append_new(arr, detached_json(name, &l.items[i]));
        return ok(r, 200, arr);
}

int api_detached_get(struct api_ctx *c, const char *name, const char *id, struct api_result *r)
{
        cleanup_agent_detached struct agent_detached d = {0};
        struct ak_err err = {0};

        if (detached_target(c, name, id, r) < 0)
                return -1;
        if (manager_detached_get(c->m, name, id, &d, &err) < 0)
                return fail_err(r, &err);
        return ok(r, 200, detached_json(name, &d));
}

static int to_buf(void *ctx, const void *data, size_t len)
{
        struct buf *b = ctx;
        if (b->len + len > API_OUTPUT_MAX)
                return -1;
        return buf_append(b, data, len) < 0 ? -1 : 0;
}

int api_detached_logs(struct api_ctx *c, const char *name, const char *id, bool stderr_stream,
                      struct api_result *r)
{
        cleanup_buf struct buf b = BUF_INIT, none = BUF_INIT;
        struct ak_err err = {0};

        if (detached_target(c, name, id, r) < 0)
                return -1;
        if (manager_detached_logs(c->m, name, id, stderr_stream, to_buf, &b, &err) < 0)
                return fail_err(r, &err);
        return ok(r, 200,
                  json_pack("{s:o}", stderr_stream ? "stderr" : "stdout", combined(&b, &none)));
}

int api_detached_kill(struct api_ctx *c, const char *name, const char *id, struct api_result *r)
{
        cleanup_agent_detached struct agent_detached d = {0};
        struct ak_err err = {0};

        if (detached_target(c, name, id, r) < 0)
                return -1;
        if (manager_detached_kill(c->m, name, id, &d, &err) < 0)
                return fail_err(r, &err);
        return ok_text(r, "Command killed");
}

/* ---- files ---- */

int api_normalize_path(const char *raw, char *out, size_t len)
{
        size_t o = 0;
        const char *p = raw;

        while (*p) {
                const char *end = strchr(p, '/');
                size_t n = end ? (size_t)(end - p) : strlen(p);
                if (n == 2 && p[0] == '.' && p[1] == '.')
                        return -EINVAL;
                if (n && !(n == 1 && p[0] == '.')) {
                        if (o + 1 + n + 1 > len)
                                return -ENAMETOOLONG;
                        out[o++] = '/';
                        memcpy(out + o, p, n);
                        o += n;
                }
                p += n;
                if (*p == '/')
                        p++;
        }
        if (o == 0) {
                if (len < 2)
                        return -ENAMETOOLONG;
                out[o++] = '/';
        }
        out[o] = '\0';
        return 0;
}

static int want_path(const char *path, struct api_result *r)
{
        struct ak_err err = {0};
        if (validate_sandbox_path(path, &err) < 0)
                return api_fail(r, 400, "%s", ak_err_msg(&err));
        return 0;
}

int api_file_read(struct api_ctx *c, const char *name, const char *path, struct api_result *r)
{
        cleanup_buf struct buf b = BUF_INIT;
        struct agent_file_info info;
        struct ak_err err = {0};

        if (want_path(path, r) < 0 || running(c, name, r) < 0)
                return -1;
        if (manager_file_read(c->m, name, path, API_OUTPUT_MAX, to_buf, &b, &info, &err) < 0) {
                if (err.code == ENOENT || err.code == EISDIR || err.code == EACCES)
                        return api_fail(r, 404, "%s", ak_err_msg(&err));
                return fail_err(r, &err);
        }
        if (utf8_valid(b.data ? b.data : "", b.len))
                return ok(r, 200,
                          json_pack("{s:s%,s:s,s:I}", "content", b.data ? b.data : "", b.len,
                                    "encoding", "utf8", "size", (json_int_t)b.len));
        {
                cleanup_free char *enc = malloc(base64_encoded_len(b.len) + 1);
                if (!enc)
                        return api_fail(r, 500, "out of memory");
                base64_encode(b.data, b.len, enc);
                return ok(r, 200,
                          json_pack("{s:s,s:s,s:I}", "content", enc, "encoding", "base64", "size",
                                    (json_int_t)b.len));
        }
}

static int write_one(struct api_ctx *c, const char *name, const char *path, const void *data,
                     size_t len, struct api_result *r)
{
        const struct manager_write w = {
            .mode = 0644, .parents = true, .src_fd = -1, .data = data, .len = len};
        struct ak_err err = {0};

        if (manager_file_write(c->m, name, path, &w, NULL, &err) < 0)
                return fail_err(r, &err);
        return 0;
}

int api_file_write(struct api_ctx *c, const char *name, const char *path, json_t *body,
                   struct api_result *r)
{
        json_t *content = json_object_get(body, "content");
        const char *enc = json_string_value(json_object_get(body, "encoding"));
        cleanup_free unsigned char *decoded = NULL;
        const void *data;
        size_t len;

        if (want_path(path, r) < 0 || running(c, name, r) < 0)
                return -1;
        if (!json_is_string(content))
                return api_fail(r, 400, "content (a string) is required");
        if (json_object_get(body, "encoding") && !enc)
                return api_fail(r, 400, "encoding must be \"utf8\" or \"base64\"");
        data = json_string_value(content);
        len = json_string_length(content);
        if (enc && strcmp(enc, "base64") == 0) {
                long n;
                decoded = malloc(len / 4 * 3 + 3);
                if (!decoded)
                        return api_fail(r, 500, "out of memory");
                n = base64_decode(data, len, decoded);
                if (n < 0)
                        return api_fail(r, 400, "content is not valid base64");
                data = decoded;
                len = (size_t)n;
        } else if (enc && strcmp(enc, "utf8") != 0 && strcmp(enc, "utf-8") != 0) {
                return api_fail(r, 400, "encoding must be \"utf8\" or \"base64\"");
        }
        if (write_one(c, name, path, data, len, r) < 0)
                return -1;
        return ok_text(r, "Wrote %zu bytes to %s", len, path);
}

int api_file_delete(struct api_ctx *c, const char *name, const char *path, struct api_result *r)
{
        struct ak_err err = {0};

        if (want_path(path, r) < 0 || running(c, name, r) < 0)
                return -1;
        if (manager_file_remove(c->m, name, path, false, &err) < 0 && err.code != ENOENT)
                return fail_err(r, &err);
        return ok_text(r, "Deleted %s", path);
}

int api_files_write(struct api_ctx *c, const char *name, json_t *body, struct api_result *r)
{
        json_t *files = json_object_get(body, "files"), *v;
        const char *k;
        char path[4096];
        size_t n = 0;

        if (!json_is_object(files))
                return api_fail(r, 400, "files must be an object of path: content");
        if (json_object_size(files) > FILES_BATCH_MAX)
                return api_fail(r, 400, "at most %d files at once", FILES_BATCH_MAX);
        if (running(c, name, r) < 0)
                return -1;
        /* all paths are checked before anything is written */
        json_object_foreach (files, k, v) {
                if (!json_is_string(v))
                        return api_fail(r, 400, "the content of '%s' must be a string", k);
                if (api_normalize_path(k, path, sizeof(path)) < 0)
                        return api_fail(r, 400, "invalid path '%s'", k);
                if (want_path(path, r) < 0)
                        return -1;
        }
        json_object_foreach (files, k, v) {
                (void)api_normalize_path(k, path, sizeof(path));
                if (write_one(c, name, path, json_string_value(v), json_string_length(v), r) < 0)
                        return -1;
                n++;
        }
        return ok(r, 200, json_pack("{s:I}", "written", (json_int_t)n));
}

/* ---- time and lifecycle ---- */

int api_extend(struct api_ctx *c, const char *name, json_t *body, struct api_result *r)
{
        const char *by = json_string_value(json_object_get(body, "by"));
        struct sandbox_state *st = NULL;
        char expiry[RFC3339_MAX];
        struct ak_err err = {0};
        uint64_t secs = 3600;

        if (load(c, name, &st, r) < 0)
                return -1;
        state_free(st);
        if (by && parse_ttl(by, false, &secs, &err) < 0)
                return api_fail(r, 400, "%s", ak_err_msg(&err));
        if (manager_extend_ttl(c->m, name, secs, expiry, &err) < 0)
                return fail_err(r, &err);
        return ok(r, 200, json_pack("{s:s}", "expires_at", expiry));
}

struct resize_req {
        const char *name;
        uint32_t vcpus;
        uint64_t mem;
};

static int resize_in_worker(struct manager *m, void *ctx, struct ak_err *err)
{
        struct resize_req *z = ctx;
        enum resize_how how;
        return manager_resize(m, z->name, z->vcpus, z->mem, &how, err);
}

int api_resize(struct api_ctx *c, const char *name, json_t *body, struct api_result *r)
{
        struct resize_req z = {name, 0, 0};
        struct sandbox_state *st = NULL;
        struct ak_err err = {0};
        uint64_t v = 0;

        if (load(c, name, &st, r) < 0)
                return -1;
        state_free(st);
        if (opt_uint(body, "vcpus", 64, &v, r) < 0 ||
            opt_uint(body, "memory_mb", 1u << 20, &z.mem, r) < 0)
                return -1;
        z.vcpus = (uint32_t)v;
        /* a backend that cannot resize in place restarts the sandbox: a worker's job */
        if (worker_call(resize_in_worker, &z, &err) < 0)
                return fail_err(r, &err);
        return info_reply(c, name, 200, r);
}

int api_recover(struct api_ctx *c, const char *name, struct api_result *r)
{
        struct ak_err err = {0};

        if (want_name(name, r) < 0)
                return -1;
        if (manager_recover(c->m, name, &err) < 0)
                return err.code == ENOENT ? api_fail(r, 404, "Sandbox '%s' not found", name)
                                          : fail_err(r, &err);
        return info_reply(c, name, 200, r);
}

int api_reconcile(struct api_ctx *c, json_t *body, struct api_result *r)
{
        struct reconcile_result res;
        struct ak_err err = {0};
        int dry = 0;

        if (body && !json_is_object(body))
                return api_fail(r, 400, "the body must be a JSON object");
        if (body && opt_bool(body, "dry_run", &dry, r) < 0)
                return -1;
        if (manager_reconcile(c->m, dry, &res, &err) < 0)
                return fail_err(r, &err);
        ok(r, 200, reconcile_json(&res));
        reconcile_result_done(&res);
        return 0;
}

int api_gc(struct api_ctx *c, struct api_result *r)
{
        cleanup_strv char **removed = NULL;
        struct ak_err err = {0};

        if (manager_gc(c->m, NULL, false, &removed, &err) < 0)
                return fail_err(r, &err);
        return ok(r, 200,
                  json_pack("{s:o,s:I}", "removed", strv_json_array(removed), "count",
                            (json_int_t)strv_len(removed)));
}

/* Audit entries carry upstream's "type"; the API's readers also look for "event". */
static json_t *entries_view(json_t *entries)
{
        size_t i;
        json_t *e;

        json_array_foreach (entries, i, e)
                if (json_is_string(json_object_get(e, "type")))
                        json_object_set(e, "event", json_object_get(e, "type"));
        return entries;
}

int api_logs(struct api_ctx *c, const char *name, struct api_result *r)
{
        struct sandbox_state *st = NULL;
        cleanup_free char *path = audit_path();
        json_t *entries = NULL;
        struct ak_err err = {0};

        if (load(c, name, &st, r) < 0)
                return -1;
        state_free(st);
        if (!path || audit_read(path, name, 0, &entries, &err) < 0)
                return api_fail(r, 500, "cannot read the audit log: %s", ak_err_msg(&err));
        return ok(r, 200, entries_view(entries));
}

int api_audit(struct api_ctx *c, size_t last, struct api_result *r)
{
        cleanup_free char *path = audit_path();
        json_t *entries = NULL;
        struct ak_err err = {0};

        (void)c;
        if (!path || audit_read(path, NULL, last, &entries, &err) < 0)
                return api_fail(r, 500, "cannot read the audit log: %s", ak_err_msg(&err));
        return ok(r, 200, entries_view(entries));
}
