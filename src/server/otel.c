// SPDX-License-Identifier: Apache-2.0
/* OTLP/HTTP JSON export of serve's request spans (otel.h). */
#include "otel.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "build-config.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/random-util.h"
#include "shared/time-util.h"

#define FIELD_MAX 256 /* of each string copied into a span */
#define REPLY_MAX (64u << 10)

struct span {
        char trace_id[33], span_id[17], parent_id[17];
        char method[16], path[FIELD_MAX], route[FIELD_MAX], sandbox[FIELD_MAX], backend[32];
        int status;
        int64_t start_ns, end_ns;
};

static struct {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        pthread_t thread;
        bool running, stop;
        struct span *queue; /* ring of OTEL_QUEUE_MAX */
        size_t head, len;
        uint64_t dropped, exported;
        char *url, *service;
} ot = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

int otel_endpoint_check(const char *url, const char *what, struct ak_err *err)
{
        CURLU *u;
        char *scheme = NULL, *host = NULL;
        int r = 0;

        if (strlen(url) > OTEL_URL_MAX)
                return ak_err_set(err, EINVAL, "%s is longer than %d bytes", what, OTEL_URL_MAX);
        for (const char *p = url; *p; p++)
                if ((unsigned char)*p <= ' ' || *p == 0x7f)
                        return ak_err_set(err, EINVAL, "%s has a space or control character", what);
        u = curl_url();
        if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
                r = ak_err_set(err, EINVAL, "%s '%.256s' is not a URL", what, url);
        else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
                r = ak_err_set(err, EINVAL, "%s must be http:// or https://", what);
        curl_free(scheme);
        curl_free(host);
        curl_url_cleanup(u);
        return r;
}

bool otel_enabled(void)
{
        return ot.running;
}

void otel_counts(uint64_t *ret_dropped, uint64_t *ret_exported)
{
        pthread_mutex_lock(&ot.lock);
        *ret_dropped = ot.dropped;
        *ret_exported = ot.exported;
        pthread_mutex_unlock(&ot.lock);
}

static bool hex_ok(const char *s, size_t n)
{
        bool nonzero = false;

        for (size_t i = 0; i < n; i++) {
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
                nonzero |= s[i] != '0';
        }
        return nonzero;
}

/* W3C traceparent "00-<32 hex>-<16 hex>-<2 hex>": its trace and parent span, when valid. */
static bool parse_traceparent(const char *tp, struct span *s)
{
        if (!tp || strlen(tp) < 55 || strncmp(tp, "00-", 3) || tp[35] != '-' || tp[52] != '-' ||
            !hex_ok(tp + 3, 32) || !hex_ok(tp + 36, 16) ||
            strspn(tp + 53, "0123456789abcdef") < 2 || (tp[55] && tp[55] != '-'))
                return false;
        memcpy(s->trace_id, tp + 3, 32);
        s->trace_id[32] = '\0';
        memcpy(s->parent_id, tp + 36, 16);
        s->parent_id[16] = '\0';
        return true;
}

static void copy_field(char *dst, size_t len, const char *src)
{
        size_t k = 0;

        /* printable ASCII only: an exported string never carries a control character */
        for (const char *p = src ? src : ""; *p && k + 1 < len; p++)
                dst[k++] = (*p >= ' ' && *p < 0x7f) ? *p : '?';
        dst[k] = '\0';
}

void otel_request(const struct otel_request *rq)
{
        struct span s = {0};

        if (!ot.running)
                return;
        if (!parse_traceparent(rq->traceparent, &s))
                random_hex(s.trace_id, 16);
        random_hex(s.span_id, 8);
        copy_field(s.method, sizeof(s.method), rq->method);
        copy_field(s.path, sizeof(s.path), rq->path);
        copy_field(s.route, sizeof(s.route), rq->route);
        copy_field(s.sandbox, sizeof(s.sandbox), rq->sandbox);
        copy_field(s.backend, sizeof(s.backend), rq->backend);
        s.status = rq->status;
        s.start_ns = rq->start_unix_ns;
        s.end_ns = rq->end_unix_ns;
        pthread_mutex_lock(&ot.lock);
        if (ot.len == OTEL_QUEUE_MAX) {
                ot.dropped++; /* the exporter is behind: this span is lost, counted */
        } else {
                ot.queue[(ot.head + ot.len) % OTEL_QUEUE_MAX] = s;
                ot.len++;
                if (ot.len >= OTEL_BATCH_MAX)
                        pthread_cond_signal(&ot.cond);
        }
        pthread_mutex_unlock(&ot.lock);
}

static json_t *attr_str(const char *k, const char *v)
{
        return json_pack("{s:s,s:{s:s}}", "key", k, "value", "stringValue", v);
}

static json_t *attr_int(const char *k, long long v)
{
        char n[32];
        (void)snprintf(n, sizeof(n), "%lld", v);
        return json_pack("{s:s,s:{s:s}}", "key", k, "value", "intValue", n);
}

static json_t *span_json(const struct span *s)
{
        char start[32], end[32], name[FIELD_MAX + 24];
        json_t *attrs = json_array(), *o;

        (void)snprintf(start, sizeof(start), "%lld", (long long)s->start_ns);
        (void)snprintf(end, sizeof(end), "%lld", (long long)s->end_ns);
        (void)snprintf(name, sizeof(name), "%s %s", s->method,
                       s->route[0] ? s->route : "unmatched");
        json_array_append_new(attrs, attr_str("http.method", s->method));
        json_array_append_new(attrs, attr_str("http.target", s->path));
        if (s->route[0])
                json_array_append_new(attrs, attr_str("http.route", s->route));
        json_array_append_new(attrs, attr_int("http.status_code", s->status));
        if (s->sandbox[0])
                json_array_append_new(attrs, attr_str("agentkernel.sandbox", s->sandbox));
        if (s->backend[0])
                json_array_append_new(attrs, attr_str("agentkernel.backend", s->backend));
        o = json_pack("{s:s,s:s,s:s,s:i,s:s,s:s,s:o,s:{s:i}}", "traceId", s->trace_id, "spanId",
                      s->span_id, "name", name, "kind", 2 /* SPAN_KIND_SERVER */,
                      "startTimeUnixNano", start, "endTimeUnixNano", end, "attributes", attrs,
                      "status", "code", s->status >= 500 ? 2 /* ERROR */ : 0 /* UNSET */);
        if (o && s->parent_id[0])
                json_object_set_new(o, "parentSpanId", json_string(s->parent_id));
        return o;
}

static char *batch_json(const struct span *v, size_t n)
{
        cleanup_json json_t *doc = NULL;
        json_t *spans = json_array();

        for (size_t i = 0; spans && i < n; i++)
                json_array_append_new(spans, span_json(&v[i]));
        doc = json_pack("{s:[{s:{s:[o]},s:[{s:{s:s,s:s},s:o}]}]}", "resourceSpans", "resource",
                        "attributes", attr_str("service.name", ot.service), "scopeSpans", "scope",
                        "name", "agentkernel", "version", AK_VERSION, "spans", spans);
        return doc ? json_dumps(doc, JSON_COMPACT) : NULL;
}

static size_t discard(char *data, size_t size, size_t n, void *ctx)
{
        size_t *got = ctx;

        (void)data;
        *got += size * n;
        return *got > REPLY_MAX ? 0 : size * n;
}

/* One POST of body; true when the collector took it (2xx). */
static bool post(const char *body)
{
        CURL *h = curl_easy_init();
        struct curl_slist *headers = NULL;
        size_t got = 0;
        long status = -1;

        if (!h)
                return false;
        headers = curl_slist_append(headers, "Content-Type: application/json");
        headers = curl_slist_append(headers, "Expect:");
        (void)curl_easy_setopt(h, CURLOPT_URL, ot.url);
        (void)curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        (void)curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
        (void)curl_easy_setopt(h, CURLOPT_POST, 1L);
        (void)curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        (void)curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        (void)curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        (void)curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)OTEL_TIMEOUT_MS);
        (void)curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)OTEL_TIMEOUT_MS);
        (void)curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        (void)curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
        (void)curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
        (void)curl_easy_setopt(h, CURLOPT_USERAGENT, "agentkernel/" AK_VERSION);
        if (curl_easy_perform(h) == CURLE_OK)
                (void)curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(h);
        curl_slist_free_all(headers);
        return status >= 200 && status < 300;
}

/* Rate-limited: a collector that is down must not flood the log. */
static void note_dropped(size_t n)
{
        static int64_t window;
        static unsigned lines;
        int64_t now = now_monotonic_ns();

        if (now - window > 60 * (int64_t)NSEC_PER_SEC) {
                window = now;
                lines = 0;
        }
        if (lines++ < 5)
                fprintf(stderr,
                        "agentkernel serve: otel: the collector did not take %zu span(s): "
                        "dropped\n",
                        n);
}

static void *export_main(void *arg)
{
        struct span *batch = calloc(OTEL_BATCH_MAX, sizeof(*batch));

        (void)arg;
        if (!batch)
                return NULL;
        for (;;) {
                size_t n = 0;
                bool last;
                cleanup_free char *body = NULL;
                pthread_mutex_lock(&ot.lock);
                if (!ot.stop && ot.len < OTEL_BATCH_MAX) {
                        struct timespec until;
                        clock_gettime(CLOCK_REALTIME, &until);
                        until.tv_sec += OTEL_FLUSH_MS / 1000;
                        (void)pthread_cond_timedwait(&ot.cond, &ot.lock, &until);
                }
                last = ot.stop;
                while (n < OTEL_BATCH_MAX && ot.len) {
                        batch[n++] = ot.queue[ot.head];
                        ot.head = (ot.head + 1) % OTEL_QUEUE_MAX;
                        ot.len--;
                }
                pthread_mutex_unlock(&ot.lock);
                if (n) {
                        bool ok = (body = batch_json(batch, n)) && post(body);
                        pthread_mutex_lock(&ot.lock);
                        if (ok)
                                ot.exported += n;
                        else
                                ot.dropped += n;
                        pthread_mutex_unlock(&ot.lock);
                        if (!ok)
                                note_dropped(n);
                }
                if (last) {
                        /* one last try at stop: what is left is not waited for */
                        pthread_mutex_lock(&ot.lock);
                        ot.dropped += ot.len;
                        ot.len = 0;
                        pthread_mutex_unlock(&ot.lock);
                        break;
                }
        }
        free(batch);
        return NULL;
}

int otel_start(const char *traces_url, const char *service, struct ak_err *err)
{
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
                return ak_err_set(err, EIO, "cannot initialise libcurl");
        ot.queue = calloc(OTEL_QUEUE_MAX, sizeof(*ot.queue));
        ot.url = strdup(traces_url);
        ot.service = strdup(service && *service ? service : "agentkernel");
        if (!ot.queue || !ot.url || !ot.service)
                return ak_err_oom(err);
        if (pthread_create(&ot.thread, NULL, export_main, NULL) != 0)
                return ak_err_set(err, EAGAIN, "cannot start the otel exporter thread");
        ot.running = true;
        return 0;
}

void otel_stop(void)
{
        if (ot.running) {
                pthread_mutex_lock(&ot.lock);
                ot.stop = true;
                pthread_cond_signal(&ot.cond);
                pthread_mutex_unlock(&ot.lock);
                pthread_join(ot.thread, NULL);
                ot.running = false;
                curl_global_cleanup();
        }
        free(ot.queue);
        free(ot.url);
        free(ot.service);
        ot.queue = NULL;
        ot.url = ot.service = NULL;
}
