// SPDX-License-Identifier: Apache-2.0
/*
 * serve's lifecycle events (events.h): one thread follows the audit log and turns its entries
 * into upstream's SandboxEvents, kept in a ring that GET /events' subscribers read at their own
 * pace; another posts them to the operator's webhooks (libcurl: http and https only, no
 * redirects, bounded in time and size), signed with HMAC-SHA256 over the body.
 */
#include "events.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <sha256.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "build-config.h"
#include "core/audit.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/time-util.h"

#define TAIL_INTERVAL_MS 200
#define TAIL_LINE_MAX AUDIT_LINE_MAX
#define TAIL_BURST 64 /* events published at once, then a pause of: */
#define TAIL_BURST_PAUSE_MS 10
#define EVENT_JSON_MAX (64u << 10) /* one event: the ring holds at most 256 of them */
#define WEBHOOK_TRIES 3
#define WEBHOOK_TIMEOUT_MS 10000
#define WEBHOOK_CONNECT_TIMEOUT_MS 5000
#define WEBHOOK_REPLY_MAX (64u << 10)
#define WEBHOOK_URL_MAX 2048

/* ---- HMAC-SHA256 (RFC 2104) over libmd's SHA-256 ---- */

void events_hmac_sha256_hex(const char *key, size_t key_len, const void *data, size_t len,
                            char hex[65])
{
        uint8_t k[64] = {0}, pad[64], inner[32], mac[32];
        SHA256_CTX c;

        if (key_len > sizeof(k)) {
                SHA256Init(&c);
                SHA256Update(&c, (const uint8_t *)key, key_len);
                SHA256Final(k, &c);
        } else {
                memcpy(k, key, key_len);
        }
        for (size_t i = 0; i < 64; i++)
                pad[i] = k[i] ^ 0x36;
        SHA256Init(&c);
        SHA256Update(&c, pad, 64);
        SHA256Update(&c, data, len);
        SHA256Final(inner, &c);
        for (size_t i = 0; i < 64; i++)
                pad[i] = k[i] ^ 0x5c;
        SHA256Init(&c);
        SHA256Update(&c, pad, 64);
        SHA256Update(&c, inner, 32);
        SHA256Final(mac, &c);
        for (size_t i = 0; i < 32; i++)
                (void)snprintf(hex + 2 * i, 3, "%02x", mac[i]);
        explicit_bzero(k, sizeof(k));
        explicit_bzero(pad, sizeof(pad));
}

/* ---- the ring and its subscribers ---- */

struct event {
        uint64_t seq;
        char *name;    /* "sandbox.created", ... */
        char *sandbox; /* or NULL */
        char *json;    /* the SandboxEvent */
};

struct events_sub {
        uint64_t next; /* seq of the next event it reads */
        char *sandbox; /* filter, or NULL */
};

static struct {
        pthread_mutex_t lock;
        pthread_cond_t cond;   /* a new event */
        pthread_cond_t q_cond; /* the webhook queue got one, or stop */
        struct event ring[EVENTS_RING];
        uint64_t next_seq; /* of the next event; ring[seq % EVENTS_RING] */
        size_t n_subs;
        bool stop, tailing, hooking;
        pthread_t tail_thread, hook_thread;
        /* webhooks */
        char **urls;
        size_t n_urls;
        char *secret;
        char *queue[EVENTS_QUEUE_MAX];
        size_t q_head, q_len;
        uint64_t dropped;
} ev = {.lock = PTHREAD_MUTEX_INITIALIZER,
        .cond = PTHREAD_COND_INITIALIZER,
        .q_cond = PTHREAD_COND_INITIALIZER,
        .next_seq = 1};

int events_subscribe(const char *sandbox, struct events_sub **ret)
{
        struct events_sub *s;

        pthread_mutex_lock(&ev.lock);
        if (ev.n_subs >= EVENTS_SUBSCRIBERS_MAX) {
                pthread_mutex_unlock(&ev.lock);
                return -EBUSY;
        }
        s = calloc(1, sizeof(*s));
        if (!s || (sandbox && !(s->sandbox = strdup(sandbox)))) {
                free(s);
                pthread_mutex_unlock(&ev.lock);
                return -ENOMEM;
        }
        s->next = ev.next_seq;
        ev.n_subs++;
        pthread_mutex_unlock(&ev.lock);
        *ret = s;
        return 0;
}

void events_unsubscribe(struct events_sub *s)
{
        if (!s)
                return;
        pthread_mutex_lock(&ev.lock);
        ev.n_subs--;
        pthread_mutex_unlock(&ev.lock);
        free(s->sandbox);
        free(s);
}

int events_next(struct events_sub *s, int timeout_ms, struct buf *out)
{
        struct timespec until;
        int appended = 0;

        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += timeout_ms / 1000;
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000;
        }
        pthread_mutex_lock(&ev.lock);
        while (s->next == ev.next_seq && !ev.stop)
                if (pthread_cond_timedwait(&ev.cond, &ev.lock, &until) == ETIMEDOUT)
                        break;
        if (ev.next_seq - s->next > EVENTS_RING) {
                /* what it missed is gone from the ring: it cannot be told the truth any more */
                buf_printf(out, ": lagged %llu events\n\n",
                           (unsigned long long)(ev.next_seq - s->next - EVENTS_RING));
                pthread_mutex_unlock(&ev.lock);
                return -ENOBUFS;
        }
        for (; s->next < ev.next_seq; s->next++) {
                const struct event *e = &ev.ring[s->next % EVENTS_RING];
                if (s->sandbox && (!e->sandbox || strcmp(e->sandbox, s->sandbox) != 0))
                        continue;
                buf_printf(out, "id: %llu\nevent: %s\ndata: %s\n\n", (unsigned long long)e->seq,
                           e->name, e->json);
                appended = 1;
        }
        pthread_mutex_unlock(&ev.lock);
        return appended;
}

/* Called with the lock held. */
static void enqueue_webhook(const char *json)
{
        char *copy;

        if (!ev.n_urls || !(copy = strdup(json)))
                return;
        if (ev.q_len == EVENTS_QUEUE_MAX) {
                free(ev.queue[ev.q_head]);
                ev.q_head = (ev.q_head + 1) % EVENTS_QUEUE_MAX;
                ev.q_len--;
                if (ev.dropped++ % 100 == 0)
                        fprintf(stderr,
                                "agentkernel serve: webhooks are behind: dropped %llu event(s)\n",
                                (unsigned long long)ev.dropped);
        }
        ev.queue[(ev.q_head + ev.q_len) % EVENTS_QUEUE_MAX] = copy;
        ev.q_len++;
        pthread_cond_signal(&ev.q_cond);
}

/* An event's JSON, at most EVENT_JSON_MAX bytes: a bigger one (a command of megabytes) keeps
 * its name, time, sandbox, exit code and success, and says it was cut. */
static char *event_text(json_t *event)
{
        char *json = json_dumps(event, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_t *meta = json_object_get(event, "metadata"), *small;

        if (!json || strlen(json) <= EVENT_JSON_MAX)
                return json;
        free(json);
        small = json_pack("{s:b}", "truncated", 1);
        if (json_object_get(meta, "exit_code"))
                json_object_set(small, "exit_code", json_object_get(meta, "exit_code"));
        if (json_object_get(meta, "success"))
                json_object_set(small, "success", json_object_get(meta, "success"));
        json_object_set_new(event, "metadata", small);
        json_object_set_new(event, "labels", json_object());
        json = json_dumps(event, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (json && strlen(json) > EVENT_JSON_MAX) {
                free(json);
                return NULL;
        }
        return json;
}

static void publish(const char *name, const char *sandbox, json_t *event)
{
        char *json = event_text(event);
        char *n = strdup(name), *sb = sandbox ? strdup(sandbox) : NULL;
        struct event *e;

        if (!json || !n || (sandbox && !sb)) {
                free(json);
                free(n);
                free(sb);
                return;
        }
        pthread_mutex_lock(&ev.lock);
        e = &ev.ring[ev.next_seq % EVENTS_RING];
        free(e->name);
        free(e->sandbox);
        free(e->json);
        *e = (struct event){ev.next_seq, n, sb, json};
        ev.next_seq++;
        enqueue_webhook(json);
        pthread_cond_broadcast(&ev.cond);
        pthread_mutex_unlock(&ev.lock);
}

/* ---- audit entries -> SandboxEvents ---- */

static const struct {
        const char *type, *event;
        const char *fields[3]; /* copied into metadata */
} kinds[] = {
    {"sandbox_created", "sandbox.created", {"image", "backend", NULL}},
    {"sandbox_started", "sandbox.started", {"profile", NULL, NULL}},
    {"sandbox_stopped", "sandbox.stopped", {NULL, NULL, NULL}},
    {"sandbox_removed", "sandbox.deleted", {NULL, NULL, NULL}},
    {"sandbox_error", "sandbox.error", {"error", NULL, NULL}},
    {"command_executed", "sandbox.exec.completed", {"command", "exit_code", NULL}},
    {"command_killed", "sandbox.exec.killed", {"id", "command", NULL}},
    {"policy_violation", "sandbox.policy_violation", {"policy", "details", NULL}},
    {"network_policy_set", "sandbox.network_policy_set", {"rules", NULL, NULL}},
};

/* Whether the entry became an event. */
static bool entry_to_event(const char *line, size_t len)
{
        cleanup_json json_t *e = json_loadb(line, len, 0, NULL);
        cleanup_json json_t *out = NULL;
        const char *type = json_string_value(json_object_get(e, "type"));
        const char *sandbox = json_string_value(json_object_get(e, "sandbox"));
        json_t *labels = json_object_get(e, "labels"), *meta;

        if (!sandbox)
                sandbox = json_string_value(json_object_get(e, "name"));
        for (size_t i = 0; type && i < ARRAY_SIZE(kinds); i++) {
                if (strcmp(type, kinds[i].type) != 0)
                        continue;
                meta = json_object();
                for (size_t f = 0; f < 3 && kinds[i].fields[f]; f++) {
                        json_t *v = json_object_get(e, kinds[i].fields[f]);
                        if (v)
                                json_object_set(meta, kinds[i].fields[f], v);
                }
                if (!strcmp(type, "command_executed"))
                        json_object_set_new(
                            meta, "success",
                            json_boolean(json_integer_value(json_object_get(e, "exit_code")) == 0 &&
                                         json_is_integer(json_object_get(e, "exit_code"))));
                out = json_pack(
                    "{s:s,s:O,s:s?,s:o,s:o}", "event", kinds[i].event, "timestamp",
                    json_object_get(e, "timestamp") ? json_object_get(e, "timestamp") : json_null(),
                    "sandbox", sandbox, "labels",
                    json_is_object(labels) ? json_incref(labels) : json_object(), "metadata", meta);
                if (out)
                        publish(kinds[i].event, sandbox, out);
                return out != NULL;
        }
        return false;
}

/* Opens the audit log when it is a regular file of ours (the manager's writes make it one). */
static int open_log(const char *path, struct stat *st)
{
        int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);

        if (fd < 0)
                return -1;
        if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode) || st->st_uid != geteuid()) {
                close(fd);
                return -1;
        }
        return fd;
}

static void *tail_main(void *arg)
{
        cleanup_free char *path = audit_path();
        struct buf line = BUF_INIT;
        struct stat st;
        bool first = true, skipping = false;
        unsigned burst = 0;
        off_t off = 0;
        int fd = -1;

        (void)arg;
        while (path) {
                struct stat now;
                char chunk[16384];
                ssize_t n;
                pthread_mutex_lock(&ev.lock);
                if (ev.stop) {
                        pthread_mutex_unlock(&ev.lock);
                        break;
                }
                pthread_mutex_unlock(&ev.lock);
                if (fd < 0) {
                        fd = open_log(path, &st);
                        /* at start, what is there is the past; a log made later is all new */
                        off = fd >= 0 && first ? st.st_size : 0;
                        first = false;
                }
                while (fd >= 0 && (n = pread(fd, chunk, sizeof(chunk), off)) > 0) {
                        off += n;
                        for (ssize_t i = 0; i < n; i++) {
                                if (chunk[i] != '\n') {
                                        if (line.len < TAIL_LINE_MAX)
                                                (void)buf_append(&line, chunk + i, 1);
                                        else
                                                skipping = true; /* the reader refuses it too */
                                        continue;
                                }
                                if (!skipping && line.len && entry_to_event(line.data, line.len) &&
                                    ++burst % TAIL_BURST == 0)
                                        /* a burst: readers that keep up get to read it before
                                         * the ring wraps */
                                        (void)usleep(TAIL_BURST_PAUSE_MS * 1000);
                                buf_reset(&line);
                                skipping = false;
                        }
                }
                /* replaced (a new log) or cut short: start over on the new one */
                if (fd >= 0 && (stat(path, &now) < 0 || now.st_ino != st.st_ino ||
                                now.st_dev != st.st_dev || now.st_size < off)) {
                        close(fd);
                        fd = -1;
                        buf_reset(&line);
                }
                (void)usleep(TAIL_INTERVAL_MS * 1000);
        }
        if (fd >= 0)
                close(fd);
        buf_done(&line);
        return NULL;
}

/* ---- webhooks ---- */

int events_webhook_url_check(const char *url, struct ak_err *err)
{
        CURLU *u;
        char *scheme = NULL, *host = NULL;
        int r = 0;

        if (strlen(url) > WEBHOOK_URL_MAX)
                return ak_err_set(err, EINVAL, "--webhook-url is longer than %d bytes",
                                  WEBHOOK_URL_MAX);
        for (const char *p = url; *p; p++)
                if ((unsigned char)*p <= ' ' || *p == 0x7f)
                        return ak_err_set(err, EINVAL,
                                          "--webhook-url has a space or control character");
        u = curl_url();
        if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
                r = ak_err_set(err, EINVAL, "--webhook-url '%s' is not a URL", url);
        else if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)
                r = ak_err_set(err, EINVAL, "--webhook-url must be http:// or https://");
        curl_free(scheme);
        curl_free(host);
        curl_url_cleanup(u);
        return r;
}

static size_t discard(char *data, size_t size, size_t n, void *ctx)
{
        size_t *got = ctx;

        (void)data;
        *got += size * n;
        return *got > WEBHOOK_REPLY_MAX ? 0 : size * n; /* a flood of a reply ends it */
}

/* Rate-limited: a dead endpoint must not flood the log. The URL is not printed (it may hold a
 * token): its place on the command line is. */
static void hook_log(size_t i, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void hook_log(size_t i, const char *fmt, ...)
{
        static int64_t window;
        static unsigned lines;
        int64_t now = now_monotonic_ns();
        va_list ap;

        if (now - window > 60 * (int64_t)1000000000) {
                window = now;
                lines = 0;
        }
        if (lines++ >= 10)
                return;
        fprintf(stderr, "agentkernel serve: webhook #%zu: ", i + 1);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static bool stopping(void)
{
        return __atomic_load_n(&ev.stop, __ATOMIC_RELAXED);
}

/* libcurl's progress callback: a transfer ends at once when serve stops. */
static int abort_on_stop(void *ctx, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
        (void)ctx;
        (void)a;
        (void)b;
        (void)c;
        (void)d;
        return stopping() ? 1 : 0;
}

/* One POST; the HTTP status, or -1 when there was none. */
static long post_once(const char *url, const char *body, struct curl_slist *headers, char *errbuf)
{
        CURL *h = curl_easy_init();
        size_t got = 0;
        long status = -1;

        if (!h)
                return -1;
        errbuf[0] = '\0';
        (void)curl_easy_setopt(h, CURLOPT_URL, url);
        (void)curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        /* a redirect is an answer, never followed: the operator named this endpoint, not
         * wherever it points (another host, a local service) */
        (void)curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
        (void)curl_easy_setopt(h, CURLOPT_MAXREDIRS, 0L);
        (void)curl_easy_setopt(h, CURLOPT_POST, 1L);
        (void)curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        (void)curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
        (void)curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        (void)curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)WEBHOOK_TIMEOUT_MS);
        (void)curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)WEBHOOK_CONNECT_TIMEOUT_MS);
        (void)curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        (void)curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
        (void)curl_easy_setopt(h, CURLOPT_WRITEDATA, &got);
        (void)curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
        (void)curl_easy_setopt(h, CURLOPT_USERAGENT, "agentkernel/" AK_VERSION);
        (void)curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        (void)curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, abort_on_stop);
        if (curl_easy_perform(h) == CURLE_OK)
                (void)curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(h);
        return status;
}

static void deliver(size_t i, const char *body)
{
        struct curl_slist *headers = NULL;
        char sig[65], hdr[128], errbuf[CURL_ERROR_SIZE];
        long status = -1;

        events_hmac_sha256_hex(ev.secret, strlen(ev.secret), body, strlen(body), sig);
        (void)snprintf(hdr, sizeof(hdr), EVENTS_SIGNATURE_HEADER ": sha256=%s", sig);
        headers = curl_slist_append(headers, "Content-Type: application/json");
        headers = curl_slist_append(headers, hdr);
        headers = curl_slist_append(headers, "Expect:");
        for (int t = 0; t < WEBHOOK_TRIES && !stopping(); t++) {
                if (t)
                        (void)usleep((useconds_t)(100000u << (t - 1))); /* 100, 200 ms */
                status = post_once(ev.urls[i], body, headers, errbuf);
                if (status >= 200 && status < 300)
                        break;
                if (status >= 300 && status < 400) {
                        hook_log(i, "answered %ld (a redirect): not followed, not delivered",
                                 status);
                        break;
                }
                if (status >= 400 && status < 500 && status != 408 && status != 429) {
                        hook_log(i, "answered %ld: not delivered", status);
                        break;
                }
                if (t == WEBHOOK_TRIES - 1 && !stopping())
                        hook_log(i, "not delivered after %d tries: %s", WEBHOOK_TRIES,
                                 status > 0 ? "the endpoint answered with an error" : errbuf);
        }
        curl_slist_free_all(headers);
}

static void *hook_main(void *arg)
{
        (void)arg;
        for (;;) {
                char *body;
                pthread_mutex_lock(&ev.lock);
                while (!ev.q_len && !ev.stop)
                        pthread_cond_wait(&ev.q_cond, &ev.lock);
                if (ev.stop) {
                        pthread_mutex_unlock(&ev.lock);
                        break;
                }
                body = ev.queue[ev.q_head];
                ev.q_head = (ev.q_head + 1) % EVENTS_QUEUE_MAX;
                ev.q_len--;
                pthread_mutex_unlock(&ev.lock);
                for (size_t i = 0; i < ev.n_urls && !stopping(); i++)
                        deliver(i, body);
                free(body);
        }
        return NULL;
}

/* ---- start and stop ---- */

int events_start(char *const *urls, size_t n_urls, const char *secret, struct ak_err *err)
{
        if (n_urls > EVENTS_WEBHOOKS_MAX)
                return ak_err_set(err, EINVAL, "at most %d --webhook-url", EVENTS_WEBHOOKS_MAX);
        if (n_urls) {
                if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
                        return ak_err_set(err, EIO, "cannot initialise libcurl");
                ev.urls = calloc(n_urls + 1, sizeof(char *));
                ev.secret = strdup(secret ? secret : "");
                if (!ev.urls || !ev.secret)
                        return ak_err_oom(err);
                for (size_t i = 0; i < n_urls; i++)
                        if (!(ev.urls[i] = strdup(urls[i])))
                                return ak_err_oom(err);
                ev.n_urls = n_urls;
                if (pthread_create(&ev.hook_thread, NULL, hook_main, NULL) != 0)
                        return ak_err_set(err, EAGAIN, "cannot start the webhook thread");
                ev.hooking = true;
        }
        if (pthread_create(&ev.tail_thread, NULL, tail_main, NULL) != 0)
                return ak_err_set(err, EAGAIN, "cannot start the event thread");
        ev.tailing = true;
        return 0;
}

void events_stop(void)
{
        pthread_mutex_lock(&ev.lock);
        __atomic_store_n(&ev.stop, true, __ATOMIC_RELAXED);
        pthread_cond_broadcast(&ev.cond);
        pthread_cond_broadcast(&ev.q_cond);
        pthread_mutex_unlock(&ev.lock);
        if (ev.tailing)
                pthread_join(ev.tail_thread, NULL);
        if (ev.hooking)
                pthread_join(ev.hook_thread, NULL);
        for (size_t i = 0; i < EVENTS_RING; i++) {
                free(ev.ring[i].name);
                free(ev.ring[i].sandbox);
                free(ev.ring[i].json);
        }
        for (size_t i = 0; i < ev.q_len; i++)
                free(ev.queue[(ev.q_head + i) % EVENTS_QUEUE_MAX]);
        for (size_t i = 0; i < ev.n_urls; i++)
                free(ev.urls[i]);
        free(ev.urls);
        if (ev.secret)
                explicit_bzero(ev.secret, strlen(ev.secret));
        free(ev.secret);
        if (ev.n_urls)
                curl_global_cleanup();
        memset(ev.ring, 0, sizeof(ev.ring));
        ev.q_len = 0;
        ev.urls = NULL;
        ev.secret = NULL;
        ev.n_urls = 0;
}
