// SPDX-License-Identifier: Apache-2.0
/* Fuzz target: what the HTTP API does with a request before it touches a sandbox: the gate's
 * header rules (the first line as a Host, an Origin, a Content-Type and a key), the URL router,
 * the metrics template, file-path normalisation, and the decoding and validation of a JSON body
 * (run and exec requests). Input: the URL path, a newline, the body. */
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
        struct route rt;
        char tmpl[96], path[4096];
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
        if (route_split(url, &rt) == 0) {
                route_template(&rt, tmpl, sizeof(tmpl));
                if (strlen(tmpl) >= sizeof(tmpl))
                        abort();
                if (rt.path_rest && api_normalize_path(rt.path_rest, path, sizeof(path)) == 0) {
                        /* a normalised path is absolute, has no empty, "." or ".." segment */
                        if (path[0] != '/' || strstr(path, "//") || strstr(path, "/../") ||
                            strstr(path, "/./"))
                                abort();
                }
        }
        free(url);
        if (!nl)
                return 0;
        body = json_loadb((const char *)nl + 1, size - ulen - 1, JSON_REJECT_DUPLICATES, NULL);
        if (body) {
                if (api_run_prepare(body, &o, &x, &argv, &env, &r) == 0) {
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
        return 0;
}
