/* SPDX-License-Identifier: Apache-2.0 */
/* Prometheus metrics of `serve` (thread-safe). */
#pragma once

#include "core/manager.h"
#include "server/api.h"

void metrics_http(const char *method, const char *path, int status, double secs);
/* action: created, started, stopped, removed; backend: the sandbox's. */
void metrics_lifecycle(const char *action, const char *backend, double secs);
void metrics_command(const char *backend, double secs);
/* The exposition text (version 0.0.4); malloc'd. */
char *metrics_render(struct manager *m);
/* GET /metrics: the exposition text as the result's data (a string, sent as it is). */
int metrics_reply(struct api_ctx *c, const struct api_args *a, struct api_result *r);
