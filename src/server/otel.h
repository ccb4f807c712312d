/* SPDX-License-Identifier: Apache-2.0 */
/*
 * serve's OpenTelemetry traces (upstream's `--otel-endpoint`): one span per HTTP request (upstream:
 * `http.method`, `http.target`, `http.status_code`), the sandbox lifecycle operations being
 * requests too, exported as OTLP/HTTP JSON (POST <endpoint>/v1/traces) by a thread of its own.
 * An incoming W3C `traceparent` makes the span that trace's child.
 *
 * Never in the way of requests: otel_request() only copies a few fields into a bounded queue
 * (OTEL_QUEUE_MAX spans; when full, the span is dropped and counted), and the exporter sends
 * batches of at most OTEL_BATCH_MAX with a short timeout, dropping (and counting) a batch the
 * collector does not take. What is exported is chosen field by field: the method, the path
 * (at most 256 bytes, no query string), the matched route, the status, the sandbox's name and
 * backend, the times. Never a header (Authorization, cookies), a body (commands, environment,
 * file contents, secrets) or a query string.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "shared/err.h"

#define OTEL_QUEUE_MAX 4096
#define OTEL_BATCH_MAX 256
#define OTEL_FLUSH_MS 1000
#define OTEL_TIMEOUT_MS 5000
#define OTEL_URL_MAX 2048

/* Checks an endpoint (http or https, a host, no whitespace or control characters, at most
 * OTEL_URL_MAX bytes). what names it in messages ("--otel-endpoint"). 0 or -EINVAL. */
int otel_endpoint_check(const char *url, const char *what, struct ak_err *err);

/* Starts the exporter: spans go to traces_url as is (the caller appends /v1/traces to a base
 * endpoint). service: resource service.name. 0 or -errno. Not called: otel_request does
 * nothing. */
int otel_start(const char *traces_url, const char *service, struct ak_err *err);
/* Sends what is queued (a last try, OTEL_TIMEOUT_MS at most), stops the thread, frees it all. */
void otel_stop(void);
/* Whether the exporter runs. */
bool otel_enabled(void);

struct otel_request {
        const char *method, *path, *route; /* route: the matched pattern, or NULL */
        const char *sandbox, *backend;     /* or NULL */
        const char *traceparent;           /* the request's header, or NULL */
        int status;
        int64_t start_unix_ns, end_unix_ns;
};

/* Queues the span of one request (never blocks on the exporter). */
void otel_request(const struct otel_request *rq);

/* Spans dropped so far (queue full, or the collector did not take them) and exported. */
void otel_counts(uint64_t *ret_dropped, uint64_t *ret_exported);
