/* SPDX-License-Identifier: Apache-2.0 */
/* Prometheus metrics of `serve` (thread-safe). */
#pragma once

#include "core/manager.h"

void metrics_http(const char *method, const char *path, int status, double secs);
/* action: created, started, stopped, removed. */
void metrics_lifecycle(const char *action, const char *backend, double secs);
void metrics_command(const char *backend, double secs);
/* The exposition text (version 0.0.4); malloc'd. */
char *metrics_render(struct manager *m);
