// SPDX-License-Identifier: Apache-2.0
/*
 * export-config and import-config: the portable part of a sandbox's configuration, written as
 * TOML an agentkernel.toml reader takes back (strings quoted and escaped here: the reader is
 * shared/toml.c), and read back through config_parse() so an imported file is held to the same
 * types and limits as any config.
 */
#include "portable.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/macro.h"
#include "shared/strv.h"

/* A TOML basic string: quotes, backslashes and control characters escaped. */
static int put_string(struct buf *b, const char *s)
{
        int r = buf_append(b, "\"", 1);

        for (const unsigned char *p = (const unsigned char *)s; r >= 0 && *p; p++) {
                char esc[8];
                if (*p == '"' || *p == '\\')
                        r = buf_printf(b, "\\%c", *p);
                else if (*p == '\n')
                        r = buf_append(b, "\\n", 2);
                else if (*p == '\t')
                        r = buf_append(b, "\\t", 2);
                else if (*p < 0x20 || *p == 0x7f) {
                        (void)snprintf(esc, sizeof(esc), "\\u%04x", *p);
                        r = buf_append(b, esc, strlen(esc));
                } else
                        r = buf_append(b, (const char *)p, 1);
        }
        return r < 0 ? r : buf_append(b, "\"", 1);
}

static int put_key(struct buf *b, const char *key, const char *value)
{
        int r = buf_printf(b, "%s = ", key);

        if (r >= 0)
                r = put_string(b, value);
        return r < 0 ? r : buf_append(b, "\n", 1);
}

int portable_export(const struct sandbox_state *st, char **ret, struct ak_err *err)
{
        cleanup_buf struct buf b = BUF_INIT;
        int r = buf_printf(&b, "# agentkernel export-config %s\n[sandbox]\n", st->name);

        if (r >= 0)
                r = put_key(&b, "name", st->name);
        if (r >= 0 && st->image)
                r = put_key(&b, "base_image", st->image);
        if (r >= 0 && st->init_script)
                r = put_key(&b, "init_script", st->init_script);
        if (r >= 0 && (st->vcpus || st->memory_mb)) {
                r = buf_printf(&b, "\n[resources]\n");
                if (r >= 0 && st->vcpus)
                        r = buf_printf(&b, "vcpus = %u\n", st->vcpus);
                if (r >= 0 && st->memory_mb)
                        r = buf_printf(&b, "memory_mb = %llu\n", (unsigned long long)st->memory_mb);
        }
        if (r >= 0 && st->agent) {
                r = buf_printf(&b, "\n[agent]\n");
                if (r >= 0)
                        r = put_key(&b, "preferred", st->agent);
        }
        if (r >= 0 && st->n_ports) {
                r = buf_printf(&b, "\n[network]\nports = [");
                for (size_t i = 0; r >= 0 && i < st->n_ports; i++) {
                        const struct port_mapping *p = &st->ports[i];
                        char spec[32];
                        if (p->host_port >= 0)
                                (void)snprintf(spec, sizeof(spec), "%d:%u%s", p->host_port,
                                               p->container_port, p->udp ? "/udp" : "");
                        else
                                (void)snprintf(spec, sizeof(spec), "%u%s", p->container_port,
                                               p->udp ? "/udp" : "");
                        r = buf_printf(&b, "%s", i ? ", " : "");
                        if (r >= 0)
                                r = put_string(&b, spec);
                }
                if (r >= 0)
                        r = buf_printf(&b, "]\n");
        }
        if (r < 0)
                return ak_err_oom(err);
        *ret = buf_detach(&b, NULL);
        return 0;
}

int portable_import(const struct config *c, const char *as_name, struct create_opts *o,
                    struct port_spec ports[CONFIG_MAX_PORTS], char ***ret_ignored,
                    struct ak_err *err)
{
        /* what a config may say that an import does not apply, and how to tell it is there */
        const struct {
                const char *what;
                bool there;
        } rest[] = {
            {"[security] (an imported file does not choose its own profile)",
             c->profile || c->network >= 0 || c->mount_cwd >= 0 || c->seccomp ||
                 c->commands.allow[0] || c->commands.block[0] || c->domains.allow[0] ||
                 c->domains.block[0]},
            {"[[files]] (nothing of this host is copied in)", c->n_files > 0},
            {"[resources] disk_mb", c->disk_mb > 0},
        };
        cleanup_strv char **ignored = calloc(1, sizeof(char *));

        if (!ignored)
                return ak_err_oom(err);
        memset(o, 0, sizeof(*o));
        o->network = -1;
        o->mount_cwd = 0; /* an import mounts nothing of this host */
        o->name = as_name ? as_name : c->name;
        if (!o->name)
                return ak_err_set(err, EINVAL,
                                  "the file names no sandbox ([sandbox] name): give one with --as");
        o->image = c->base_image;
        o->init_script = c->init_script;
        o->vcpus = c->vcpus;
        o->memory_mb = c->memory_mb;
        o->agent = c->agent;
        for (size_t i = 0; i < c->n_ports && i < CONFIG_MAX_PORTS; i++)
                ports[i] = c->ports[i];
        o->ports = ports;
        o->n_ports = c->n_ports;
        for (size_t i = 0; i < ARRAY_SIZE(rest); i++)
                if (rest[i].there && strv_push(&ignored, rest[i].what) < 0)
                        return ak_err_oom(err);
        *ret_ignored = TAKE_PTR(ignored);
        return 0;
}
