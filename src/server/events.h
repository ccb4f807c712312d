/* SPDX-License-Identifier: Apache-2.0 */
/*
 * serve's lifecycle events (GET /events, --webhook-url): fed from one place, the audit log,
 * which every front-end's manager writes (created, started, stopped, removed, commands run and
 * killed, policy refusals). A thread follows the log and turns new entries into upstream's
 * SandboxEvent {event, timestamp, sandbox, labels, metadata}; they go into a ring of the last
 * EVENTS_RING events, which subscribers read at their own pace, and into the webhooks' queue.
 *
 * Bounds: an event is at most 64 KiB (a bigger one says it was cut, keeping what the command
 * did); at most EVENTS_SUBSCRIBERS_MAX streams; a subscriber that falls EVENTS_RING events
 * behind is told so and dropped (it never holds the server or other subscribers up); the
 * webhook queue holds EVENTS_QUEUE_MAX events, the oldest dropped (and counted) when full.
 * Webhooks: POST of the event's JSON to every URL the operator gave on the command line, 3 tries
 * with 100/200/400 ms between them, 10 s each, redirects never followed, signed with
 * HMAC-SHA256 over the body (EVENTS_SIGNATURE_HEADER: "sha256=<hex>").
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/buf.h"
#include "shared/err.h"

#define EVENTS_RING 256
#define EVENTS_SUBSCRIBERS_MAX 64
#define EVENTS_QUEUE_MAX 256
#define EVENTS_WEBHOOKS_MAX 8
#define EVENTS_SIGNATURE_HEADER "X-AgentKernel-Signature-256"

/* Checks a --webhook-url: http or https, a host, no whitespace or control characters, at most
 * 2048 bytes. 0, or -EINVAL with the reason. */
int events_webhook_url_check(const char *url, struct ak_err *err);

/* Starts following the audit log (from its current end) and, when n_urls > 0, the webhook
 * sender (urls and secret are copied). 0 or -errno. */
int events_start(char *const *urls, size_t n_urls, const char *secret, struct ak_err *err);
/* Stops both threads and frees everything (subscribers must be gone). */
void events_stop(void);

struct events_sub;

/* A new subscriber, reading events from now on, only those of sandbox when it is not NULL.
 * -EBUSY when EVENTS_SUBSCRIBERS_MAX are already subscribed. */
int events_subscribe(const char *sandbox, struct events_sub **ret);
void events_unsubscribe(struct events_sub *s);
/* Appends the subscriber's next events to out as server-sent events, waiting at most
 * timeout_ms for one. 1: some appended, 0: none came, -ENOBUFS: it fell too far behind (a
 * comment saying so is appended; end the stream). */
int events_next(struct events_sub *s, int timeout_ms, struct buf *out);

/* HMAC-SHA256 of data under key, as 64 lowercase hex digits and a NUL into hex. */
void events_hmac_sha256_hex(const char *key, size_t key_len, const void *data, size_t len,
                            char hex[65]);
