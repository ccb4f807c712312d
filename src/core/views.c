// SPDX-License-Identifier: Apache-2.0
/* Upstream's JSON shapes of sandboxes and detached commands, shared by the CLI, the HTTP API and
 * MCP. */
#include "views.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/manager.h"
#include "core/secrets.h"
#include "shared/time-util.h"

static json_t *ports_json(const struct sandbox_state *st)
{
        json_t *a = json_array();
        for (size_t i = 0; a && i < st->n_ports; i++) {
                char s[32];
                const struct port_mapping *p = &st->ports[i];
                if (p->host_port >= 0)
                        (void)snprintf(s, sizeof(s), "%d:%u%s", p->host_port, p->container_port,
                                       p->udp ? "/udp" : "");
                else
                        (void)snprintf(s, sizeof(s), "%u%s", p->container_port,
                                       p->udp ? "/udp" : "");
                json_array_append_new(a, json_string(s));
        }
        return a;
}

/* SandboxInfo of upstream's API, plus what `info` shows. */
json_t *sandbox_info_json(const struct sandbox_state *st, bool running)
{
        json_t *o = json_object();

        json_object_set_new(o, "name", json_string(st->name));
        json_object_set_new(o, "uuid", json_string(st->uuid));
        json_object_set_new(o, "status", json_string(state_status(st, running)));
        json_object_set_new(o, "backend", json_string(manager_backend_name(st)));
        json_object_set_new(o, "image", json_string(st->image));
        json_object_set_new(o, "vcpus", json_integer(st->vcpus));
        json_object_set_new(o, "memory_mb", json_integer((json_int_t)st->memory_mb));
        /* records of older versions have none: they get what they always had, their memory */
        json_object_set_new(o, "disk_mb",
                            json_integer((json_int_t)(st->disk_mb ? st->disk_mb : st->memory_mb)));
        json_object_set_new(o, "created_at", json_string(st->created_at));
        if (st->profile)
                json_object_set_new(o, "profile", json_string(st->profile));
        if (st->n_ports)
                json_object_set_new(o, "ports", ports_json(st));
        if (json_object_size(st->labels))
                json_object_set(o, "labels", st->labels);
        if (st->description)
                json_object_set_new(o, "description", json_string(st->description));
        if (st->has_ttl)
                json_object_set_new(o, "ttl_seconds", json_integer((json_int_t)st->ttl_seconds));
        if (st->expires_at)
                json_object_set_new(o, "expires_at", json_string(st->expires_at));
        if (st->last_activity_at)
                json_object_set_new(o, "last_activity_at", json_string(st->last_activity_at));
        if (st->archived_at)
                json_object_set_new(o, "archived_at", json_string(st->archived_at));
        if (st->archived_reason)
                json_object_set_new(o, "archived_reason", json_string(st->archived_reason));
        if (st->lifecycle.present) {
                json_t *lc = json_object();
                if (st->lifecycle.has_stop)
                        json_object_set_new(lc, "auto_stop_after_seconds",
                                            json_integer((json_int_t)st->lifecycle.stop_after));
                if (st->lifecycle.has_archive)
                        json_object_set_new(lc, "auto_archive_after_seconds",
                                            json_integer((json_int_t)st->lifecycle.archive_after));
                if (st->lifecycle.has_delete)
                        json_object_set_new(lc, "auto_delete_after_seconds",
                                            json_integer((json_int_t)st->lifecycle.delete_after));
                json_object_set_new(o, "lifecycle", lc);
        }
        /* upstream's secret fields: names and hosts, never a value. Records written here hold
         * none, but one upstream wrote may ("KEY=value:host"): shown without it. */
        {
                json_t *bindings = json_array();
                json_t *mappings = json_deep_copy(st->secret_mappings);
                for (char **b = st->secret_bindings; bindings && mappings && b && *b; b++) {
                        struct secret_binding sb = {0};
                        char *f = NULL;
                        if (secret_binding_parse(*b, &sb, NULL) < 0) {
                                json_array_append_new(bindings, json_string("(invalid binding)"));
                                continue;
                        }
                        f = secret_binding_format(&sb);
                        if (f)
                                json_array_append_new(bindings, json_string(f));
                        if (!json_object_get(mappings, sb.key))
                                json_object_set_new(mappings, sb.key, json_string(sb.host));
                        free(f);
                        secret_binding_done(&sb);
                }
                if (json_array_size(bindings))
                        json_object_set_new(o, "secret_bindings", bindings);
                else
                        json_decref(bindings);
                if (json_object_size(mappings))
                        json_object_set_new(o, "secret_mappings", mappings);
                else
                        json_decref(mappings);
        }
        if (st->secret_files && st->secret_files[0]) {
                json_t *a = json_array();
                for (char **f = st->secret_files; a && *f; f++)
                        json_array_append_new(a, json_string(*f));
                json_object_set_new(o, "secret_files", a);
        }
        json_object_set_new(o, "placeholder_secrets", json_boolean(st->placeholder_secrets));
        return o;
}

json_t *detached_json(const char *sandbox, const struct agent_detached *d)
{
        static const char *const status[] = {"running", "completed", "failed"};
        json_t *cmd = json_array();
        char started[RFC3339_MAX];

        for (char **a = d->argv; cmd && a && *a; a++)
                json_array_append_new(cmd, json_string(*a));
        format_rfc3339(d->started_ns, started);
        return json_pack("{s:s,s:s,s:o,s:I,s:s,s:o,s:s}", "id", d->id, "sandbox", sandbox,
                         "command", cmd ? cmd : json_array(), "pid", (json_int_t)d->pid, "status",
                         status[d->status < 3 ? d->status : 2], "exit_code",
                         d->has_code ? json_integer(d->code) : json_null(), "started_at", started);
}
