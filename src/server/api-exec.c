// SPDX-License-Identifier: Apache-2.0
/* The API's commands: runs in throw-away sandboxes (run, batch; in workers, worker.h), commands
 * in a running sandbox (exec, exec/detach) and its detached commands. */
#include "api-private.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/proto.h"
#include "core/profile.h"
#include "core/views.h"
#include "server/worker.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/random-util.h"
#include "shared/strv.h"
#include "shared/time-util.h"

#define BATCH_MAX 64
#define BATCH_PARALLEL 8

int api_run_prepare(json_t *body, struct create_opts *o, struct agent_exec_opts *x,
                    struct port_spec ports[API_PORTS_MAX], char ***argv_out, char ***env_out,
                    struct api_result *r)
{
        cleanup_strv char **ports_s = NULL;
        struct ak_err err = {0};
        const char *image, *profile, *cwd;
        uint64_t timeout = API_EXEC_TIMEOUT_MS, mem = 0, disk = 0;
        bool bad = false;
        int network = -1;

        memset(o, 0, sizeof(*o));
        memset(x, 0, sizeof(*x));
        *argv_out = *env_out = NULL;
        if (!json_is_object(body))
                return api_fail(r, 400, "the body must be a JSON object");
        image = api_opt_string(body, "image", r, &bad);
        profile = api_opt_string(body, "profile", r, &bad);
        cwd = api_opt_string(body, "cwd", r, &bad);
        if (!cwd)
                cwd = api_opt_string(body, "workdir", r, &bad);
        if (bad || api_opt_uint(body, "timeout_ms", 86400000ull, &timeout, r) < 0 ||
            api_opt_uint(body, "memory_mb", 1u << 20, &mem, r) < 0 ||
            api_opt_disk(body, &disk, r) < 0 || api_opt_network(body, &network, r) < 0 ||
            api_opt_compat(body, &o->compat_mode, r) < 0)
                return -1;
        if (profile && !profile_get(profile))
                return api_fail(r, 400,
                                "invalid profile '%s': use permissive, moderate or restrictive",
                                profile);
        /* published while the command runs (a server run once), as upstream */
        if (api_string_array(body, "ports", false, API_PORTS_MAX, &ports_s, r) < 0)
                return -1;
        for (size_t i = 0; ports_s && ports_s[i]; i++)
                if (parse_port_spec(ports_s[i], &ports[i], &err) < 0)
                        return api_fail(r, 400, "%s", ak_err_msg(&err));
        if (api_command_of(body, argv_out, r) < 0 || api_env_of(body, env_out, r) < 0)
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
        o->ports = ports;
        o->n_ports = strv_len(ports_s);
        o->name = "run";
        x->argv = *argv_out;
        x->env = *env_out;
        x->cwd = cwd;
        x->timeout_ms = timeout ? timeout : API_EXEC_TIMEOUT_MS;
        return 0;
}

int api_run(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        json_t *body = a->body;
        struct port_spec ports[API_PORTS_MAX];
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
        if (api_run_prepare(body, &o, &x, ports, &argv, &env, r) < 0)
                return -1;
        api_set_backend(r, o.backend ? o.backend : manager_default_backend());
        if (worker_run_start(&o, &x, &w, &e) < 0)
                return api_fail_err(r, &e);
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
        return api_command_reply(r, &ex, &out, &err);
}

struct batch_slot {
        struct worker_run w;
        struct buf out, err;
        json_t *result;
        bool running;
};

int api_batch_run(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        json_t *body = a->body;
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
                        struct port_spec ports[API_PORTS_MAX];
                        if (api_run_prepare(json_array_get(cmds, next), &o, &x, ports, &argv, &env,
                                            &one) < 0) {
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
                                                      api_combined(&s->out, &s->err), "error");
                        } else if (got > 0 && ev.type == WORKER_EXIT) {
                                json_t *o = api_combined(&s->out, &s->err);
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
        return api_ok(r, 200, json_pack("{s:o}", "results", results));
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
        wd = api_opt_string(body, "workdir", r, &bad);
        if (bad || api_opt_bool(body, "sudo", &sudo, r) < 0 ||
            api_opt_uint(body, "timeout_ms", 86400000ull, &timeout, r) < 0)
                return -1;
        if (api_command_of(body, argv, r) < 0 || api_env_of(body, env, r) < 0)
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
        return api_fail_err(r, err);
}

int api_exec(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const char *name = a->name;
        struct agent_exec_opts x;
        cleanup_strv char **argv = NULL, **env = NULL;
        cleanup_exec_capture struct exec_capture cap = EXEC_CAPTURE_INIT;
        struct ak_err err = {0};
        int e;

        if (api_want_name(name, r) < 0 || exec_request(c, a->body, &x, &argv, &env, r) < 0)
                return -1;
        e = manager_exec_capture(c->m, name, &x, API_OUTPUT_MAX, &cap, &err);
        api_set_backend(r, cap.backend);
        if (e < 0)
                return exec_failure(name, &err, r);
        return api_command_reply(r, &cap.exit, &cap.out, &cap.err);
}

int api_exec_detach(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const char *name = a->name;
        json_t *body = a->body;
        struct agent_exec_opts x;
        cleanup_strv char **argv = NULL, **env = NULL;
        struct agent_detached d;
        struct ak_err err = {0};

        if (api_running(c, name, r) < 0 || exec_request(c, body, &x, &argv, &env, r) < 0)
                return -1;
        x.timeout_ms = 0;
        if (manager_detach(c->m, name, &x, &d, &err) < 0)
                return api_fail_err(r, &err);
        api_ok(r, 200, detached_json(name, &d));
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
        return api_running(c, name, r);
}

int api_detached_list(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const char *name = a->name;
        cleanup_detached_list struct detached_list l = {0};
        struct ak_err err = {0};
        json_t *arr;

        if (detached_target(c, name, NULL, r) < 0)
                return -1;
        if (manager_detached_list(c->m, name, &l, &err) < 0)
                return api_fail_err(r, &err);
        arr = json_array();
        for (size_t i = 0; i < l.n; i++)
                json_array_append_new(arr, detached_json(name, &l.items[i]));
        return api_ok(r, 200, arr);
}

int api_detached_get(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const char *name = a->name, *id = a->id;
        cleanup_agent_detached struct agent_detached d = {0};
        struct ak_err err = {0};

        if (detached_target(c, name, id, r) < 0)
                return -1;
        if (manager_detached_get(c->m, name, id, &d, &err) < 0)
                return api_fail_err(r, &err);
        return api_ok(r, 200, detached_json(name, &d));
}

int api_detached_logs(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const char *name = a->name, *id = a->id, *stream = api_query_get(a, "stream");
        bool stderr_stream = stream && !strcmp(stream, "stderr");
        cleanup_buf struct buf b = BUF_INIT, none = BUF_INIT;
        struct ak_err err = {0};

        if (detached_target(c, name, id, r) < 0)
                return -1;
        if (manager_detached_logs(c->m, name, id, stderr_stream, api_to_buf, &b, &err) < 0)
                return api_fail_err(r, &err);
        return api_ok(
            r, 200,
            json_pack("{s:o}", stderr_stream ? "stderr" : "stdout", api_combined(&b, &none)));
}

int api_detached_kill(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const char *name = a->name, *id = a->id;
        cleanup_agent_detached struct agent_detached d = {0};
        struct ak_err err = {0};

        if (detached_target(c, name, id, r) < 0)
                return -1;
        if (manager_detached_kill(c->m, name, id, &d, &err) < 0)
                return api_fail_err(r, &err);
        return api_ok_text(r, "Command killed");
}
