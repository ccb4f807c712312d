// SPDX-License-Identifier: Apache-2.0
/* Fuzz target: what the HTTP API does with a request before it touches a sandbox: the gate's
 * header rules (the first line as a Host, an Origin, a Content-Type and a key),
 * the route table's matching (captures, labels, file-path normalisation), the body rules, and the
 * decoding and validation of a JSON body (run requests). Input: the URL path, a newline, the body.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "server/api.h"
#include "server/gate.h"
#include "server/route.h"
#include "shared/cleanup.h"
#include "shared/strv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        const uint8_t *nl = memchr(data, '\n', size);
        size_t ulen = nl ? (size_t)(nl - data) : size;
        char *url = strndup((const char *)data, ulen);
        struct route_match m;
        struct api_result r = {0};
        struct create_opts o;
        struct agent_exec_opts x;
        char **argv = NULL, **env = NULL;
        json_t *body;

        if (!url)
                return 0;
        {
                static const char *const keys[] = {"k1"};
                static const struct gate_host hosts[] = {{"h.example", true}};
                struct gate_config g = {keys, 1, false, hosts, 1, 18888};
                struct gate_request rq = {.http11 = true,
                                          .host = url,
                                          .n_host = 1,
                                          .origin = url,
                                          .n_origin = 1,
                                          .content_type = url,
                                          .n_content_type = 1,
                                          .authorization = url};
                char buf[256];
                const char *msg;
                int st = gate_check(&g, &rq, buf, sizeof(buf), &msg);
                /* a refusal has a client-error status and a message; Host/Origin never let an
                 * unknown name through */
                if ((st && (st < 400 || st > 499 || !msg)) || (!st && msg))
                        abort();
                if (gate_host_allowed(&g, url) && strncasecmp(url, "localhost", 9) &&
                    strncmp(url, "127.0.0.1", 9) && strncmp(url, "[::1]", 5) &&
                    strncasecmp(url, "h.example", 9))
                        abort();
                (void)gate_origin_allowed(&g, url);
                (void)gate_content_type_json(url);
        }
        {
                static const char *const methods[] = {"GET", "POST", "PUT", "DELETE", "PATCH"};
                for (size_t i = 0; i < sizeof(methods) / sizeof(*methods); i++) {
                        char *copy = strdup(url);
                        const char *msg;
                        int st;
                        if (!copy)
                                break;
                        st = route_match(methods[i], copy, &m, &msg);
                        /* a miss says why; a match has its route and the captures its pattern
                         * asks for; a path is normalised: absolute, no empty, "." or ".."
                         * segment */
                        if ((st && st != 400 && st != 404 && st != 405) || (st && !msg))
                                abort();
                        if (!st && (!m.route || strcmp(m.route->method, methods[i]) ||
                                    (strstr(m.route->pattern, ":name") != NULL) != !!m.name))
                                abort();
                        if (m.path && (m.path[0] != '/' || strstr(m.path, "//") ||
                                       strstr(m.path, "/../") || strstr(m.path, "/./")))
                                abort();
                        if (strlen(route_label(&m)) >= 64)
                                abort();
                        free(copy);
                }
        }
        free(url);
        if (!nl)
                return 0;
        body = json_loadb((const char *)nl + 1, size - ulen - 1, JSON_REJECT_DUPLICATES, NULL);
        if (body) {
                struct port_spec ports[API_PORTS_MAX];
                if (api_run_prepare(body, &o, &x, ports, &argv, &env, &r) == 0) {
                        if (!x.argv || !x.argv[0])
                                abort(); /* a run needs a command */
                } else if (r.status < 400 || !r.error[0]) {
                        abort(); /* refusals carry a client error and a message */
                }
                strv_free(argv);
                strv_free(env);
                api_result_done(&r);
                json_decref(body);
        }
        {
                /* every body rule: JSON or a 400 with a message, never both */
                size_t n;
                const struct route *t = route_table(&n);
                for (size_t i = 0; i < n; i++) {
                        json_t *j = NULL;
                        int e = route_body(&t[i], (const char *)nl + 1, size - ulen - 1, &j, &r);
                        if ((e < 0) != (r.status != 0) || (e < 0 && (j || r.status != 400)) ||
                            (t[i].body == ROUTE_BODY_OR_DEFAULT && (e < 0 || !j)))
                                abort();
                        json_decref(j);
                        api_result_done(&r);
                }
        }
        return 0;
}
