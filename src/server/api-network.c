// SPDX-License-Identifier: Apache-2.0
/*
 * The API's operations on a sandbox's egress (docs/network.md, docs/api.md): its policy (GET,
 * PUT /sandboxes/{name}/network/policy) and its decision log (GET
 * /sandboxes/{name}/network/log, followed as server-sent events with ?follow=1), through the
 * manager. A log line is the proxy's writing, from a sandbox's traffic: it is parsed as JSON
 * with a size limit and passed on only when it is an object.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api-private.h"
#include "core/manager.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/parse-util.h"

#define LOG_TAIL_BYTES (4u << 20) /* what a GET reads at most: the log's end */
#define LOG_LIMIT_DEFAULT 1000
#define LOG_LIMIT_MAX 100000
#define LOG_LINE_MAX 16384

int api_network_policy_get(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        json_t *p = NULL;
        struct ak_err err = {0};

        if (manager_network_policy(c->m, a->name, &p, &err) < 0)
                return api_fail_err(r, &err);
        return api_ok(r, 200, p);
}

int api_network_policy_put(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        /* HTTP: the body is the policy; MCP: the tool's arguments carry it as "policy" */
        json_t *p = json_object_get(a->body, "policy");
        struct ak_err err = {0};

        if (!json_is_object(p))
                p = a->body;
        if (manager_network_set_policy(c->m, a->name, p, &err) < 0)
                return api_fail(r, err.code == EINVAL ? 400 : api_status_of(err.code), "%s",
                                ak_err_msg(&err));
        return api_network_policy_get(c, a, r);
}

json_t *api_network_log_line(const char *line, size_t len)
{
        json_error_t je;
        json_t *j;

        if (!len || len > LOG_LINE_MAX)
                return NULL;
        j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
        if (j && !json_is_object(j)) {
                json_decref(j);
                j = NULL;
        }
        return j;
}

int api_network_log(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        const char *follow = api_query_get(a, "follow"), *limit_s = api_query_get(a, "limit");
        cleanup_close int fd = -1;
        cleanup_free char *buf = NULL;
        cleanup_json json_t *entries = json_array();
        struct ak_err err = {0};
        uint32_t limit = LOG_LIMIT_DEFAULT;
        off_t size, from;
        ssize_t n;
        size_t got = 0, start;

        if (limit_s && (safe_atou32(limit_s, &limit) < 0 || !limit || limit > LOG_LIMIT_MAX))
                return api_fail(r, 400, "limit must be 1 to %d", LOG_LIMIT_MAX);
        if (manager_network_log_open(c->m, a->name, &fd, &err) < 0)
                return api_fail_err(r, &err);
        if (follow && (streq(follow, "1") || streq(follow, "true"))) {
                if (fd < 0)
                        return api_fail(r, 404,
                                        "sandbox '%s' has no network log yet (it has not run in "
                                        "proxy mode)",
                                        a->name);
                r->status = 200;
                r->follow_fd = TAKE_FD(fd);
                r->follow = true;
                return 0;
        }
        if (!entries)
                return api_fail(r, 500, "out of memory");
        if (fd < 0)
                return api_ok(r, 200, json_pack("{s:O}", "entries", entries));
        size = lseek(fd, 0, SEEK_END);
        from = size > (off_t)LOG_TAIL_BYTES ? size - (off_t)LOG_TAIL_BYTES : 0;
        buf = malloc(LOG_TAIL_BYTES);
        if (size < 0 || !buf || lseek(fd, from, SEEK_SET) < 0)
                return api_fail(r, 500, "cannot read the network log");
        while (got < LOG_TAIL_BYTES && (n = read(fd, buf + got, LOG_TAIL_BYTES - got)) > 0)
                got += (size_t)n;
        /* from the middle of the file: the first (partial) line is not a whole entry */
        start = 0;
        if (from > 0)
                while (start < got && buf[start++] != '\n')
                        ;
        for (size_t i = start; i < got;) {
                size_t e = i;
                json_t *j;
                while (e < got && buf[e] != '\n')
                        e++;
                if (e == got)
                        break; /* being written */
                j = api_network_log_line(buf + i, e - i);
                if (j && json_array_append_new(entries, j) < 0)
                        return api_fail(r, 500, "out of memory");
                i = e + 1;
        }
        if (json_array_size(entries) > limit) {
                json_t *tail = json_array();
                size_t total = json_array_size(entries);
                for (size_t i = total - limit; tail && i < total; i++)
                        (void)json_array_append(tail, json_array_get(entries, i));
                json_decref(entries);
                entries = tail;
                if (!entries)
                        return api_fail(r, 500, "out of memory");
        }
        return api_ok(r, 200, json_pack("{s:O}", "entries", entries));
}
