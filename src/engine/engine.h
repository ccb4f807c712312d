/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A client of the Docker Engine REST API on a unix socket; Podman's `system service` speaks the
 * same API. Finds the socket (DOCKER_HOST / CONTAINER_HOST, then the engine's default places),
 * negotiates the API version, and turns the engine's JSON errors into messages. No state beyond
 * the socket path and version prefix: every call is one request.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "shared/err.h"

#define ENGINE_API_VERSION "1.41" /* what we speak: Docker 20.10, Podman 4's compat API */
#define ENGINE_TIMEOUT_MS 60000
#define ENGINE_PULL_TIMEOUT_MS (30 * 60 * 1000)
#define ENGINE_BODY_MAX (8u << 20)
#define ENGINE_STREAM_MAX (64u << 20) /* a pull's progress lines */

enum engine_kind { ENGINE_DOCKER, ENGINE_PODMAN };

struct engine {
        enum engine_kind kind;
        char socket[108];
        char version[16]; /* negotiated, e.g. "1.41" */
};

/* Where kind's socket is (without connecting). 0, or -ENOENT with the places tried in err. */
int engine_socket(enum engine_kind kind, char *out, size_t len, struct ak_err *err);

/* Connects (GET /version): fills e. Errors say whether the engine is absent or refused. */
int engine_open(enum engine_kind kind, struct engine *e, struct ak_err *err);

/* One call: method on /v<version><path>, body (may be NULL, not consumed). Returns the HTTP
 * status (2xx..5xx); *ret (may be NULL) gets the parsed JSON answer (or NULL when not JSON).
 * A 4xx/5xx also sets err to the engine's message. */
int engine_call(const struct engine *e, const char *method, const char *path, json_t *body,
                json_t **ret, struct ak_err *err);

/* The same with a long timeout, for pulls (whose answer is a stream of JSON progress lines: the
 * last error in it, if any, becomes err). */
int engine_call_stream(const struct engine *e, const char *method, const char *path,
                       struct ak_err *err);

const char *engine_name(enum engine_kind kind);
