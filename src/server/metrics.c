// SPDX-License-Identifier: Apache-2.0
/* Prometheus metrics of `serve`: upstream's names and labels (reference/upstream.md §8.2) plus
 * per-sandbox resource use read from the cgroups at scrape time. */
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build-config.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/macro.h"

#define SERIES_MAX 4096 /* label combinations per family; beyond, folded into "other" */

static const double http_buckets[] = {.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10};
static const double lifecycle_buckets[] = {.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30};
static const double command_buckets[] = {.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60};

struct series {
        char labels[192]; /* rendered label set, e.g. method="GET",path="/health" */
        unsigned long long count;
        double sum;
        unsigned long long buckets[16];
};

struct family {
        const char *name, *help;
        const double *bounds;
        size_t n_bounds; /* 0: a counter */
        struct series *s;
        size_t n, cap;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct family http_total = {
    "agentkernel_http_requests_total", "HTTP requests", NULL, 0, NULL, 0, 0};
static struct family http_seconds = {"agentkernel_http_request_duration_seconds",
                                     "HTTP request duration",
                                     http_buckets,
                                     ARRAY_SIZE(http_buckets),
                                     NULL,
                                     0,
                                     0};
static struct family life_total = {
    "agentkernel_sandbox_lifecycle_total", "Sandbox lifecycle operations", NULL, 0, NULL, 0, 0};
static struct family life_seconds = {"agentkernel_sandbox_lifecycle_duration_seconds",
                                     "Sandbox lifecycle operation duration",
                                     lifecycle_buckets,
                                     ARRAY_SIZE(lifecycle_buckets),
                                     NULL,
                                     0,
                                     0};
static struct family cmd_total = {
    "agentkernel_commands_total", "Commands run", NULL, 0, NULL, 0, 0};
static struct family cmd_seconds = {"agentkernel_command_duration_seconds",
                                    "Command duration",
                                    command_buckets,
                                    ARRAY_SIZE(command_buckets),
                                    NULL,
                                    0,
                                    0};

static struct series *find(struct family *f, const char *labels)
{
        for (size_t i = 0; i < f->n; i++)
                if (streq(f->s[i].labels, labels))
                        return &f->s[i];
        if (f->n == SERIES_MAX)
                return NULL;
        if (f->n == f->cap) {
                size_t cap = f->cap ? f->cap * 2 : 16;
                struct series *ns = realloc(f->s, cap * sizeof(*ns));
                if (!ns)
                        return NULL;
                f->s = ns;
                f->cap = cap;
        }
        memset(&f->s[f->n], 0, sizeof(f->s[f->n]));
        (void)snprintf(f->s[f->n].labels, sizeof(f->s[f->n].labels), "%s", labels);
        return &f->s[f->n++];
}

static void observe(struct family *f, const char *labels, double v)
{
        struct series *s = find(f, labels);

        if (!s)
                return;
        s->count++;
        s->sum += v;
        for (size_t i = 0; i < f->n_bounds; i++)
                if (v <= f->bounds[i])
                        s->buckets[i]++;
}

/* Label values are ours (methods, route templates, backend names), but escape anyway. */
static void escape(const char *in, char *out, size_t len)
{
        size_t o = 0;
        for (; *in && o + 3 < len; in++) {
                if (*in == '"' || *in == '\\')
                        out[o++] = '\\';
                if (*in == '\n') {
                        out[o++] = '\\';
                        out[o++] = 'n';
                        continue;
                }
                out[o++] = *in;
        }
        out[o] = '\0';
}

void metrics_http(const char *method, const char *path, int status, double secs)
{
        char m[16], p[96], labels[192];

        escape(method, m, sizeof(m));
        escape(path, p, sizeof(p));
        pthread_mutex_lock(&lock);
        (void)snprintf(labels, sizeof(labels), "method=\"%s\",path=\"%s\",status=\"%d\"", m, p,
                       status);
        observe(&http_total, labels, secs);
        (void)snprintf(labels, sizeof(labels), "method=\"%s\",path=\"%s\"", m, p);
        observe(&http_seconds, labels, secs);
        pthread_mutex_unlock(&lock);
}

void metrics_lifecycle(const char *action, const char *backend, double secs)
{
        char labels[192], b[64];

        escape(backend, b, sizeof(b));
        (void)snprintf(labels, sizeof(labels), "action=\"%s\",backend=\"%s\"", action, b);
        pthread_mutex_lock(&lock);
        observe(&life_total, labels, secs);
        observe(&life_seconds, labels, secs);
        pthread_mutex_unlock(&lock);
}

void metrics_command(const char *backend, double secs)
{
        char labels[192], b[64];

        escape(backend, b, sizeof(b));
        (void)snprintf(labels, sizeof(labels), "backend=\"%s\"", b);
        pthread_mutex_lock(&lock);
        observe(&cmd_total, labels, secs);
        observe(&cmd_seconds, labels, secs);
        pthread_mutex_unlock(&lock);
}

static void render(struct buf *b, const struct family *f)
{
        buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                   f->n_bounds ? "histogram" : "counter");
        for (size_t i = 0; i < f->n; i++) {
                const struct series *s = &f->s[i];
                if (!f->n_bounds) {
                        buf_printf(b, "%s{%s} %llu\n", f->name, s->labels, s->count);
                        continue;
                }
                for (size_t k = 0; k < f->n_bounds; k++)
                        buf_printf(b, "%s_bucket{%s,le=\"%g\"} %llu\n", f->name, s->labels,
                                   f->bounds[k], s->buckets[k]);
                buf_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", f->name, s->labels, s->count);
                buf_printf(b, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", f->name, s->labels, s->sum,
                           f->name, s->labels, s->count);
        }
}

/* The egress proxy's counters per sandbox (docs/network.md), when this user's proxy runs. */
static void render_egress(struct buf *b, struct manager *m)
{
        static const struct {
                const char *key, *name, *type, *help;
        } fams[] = {
            {"connections_open", "agentkernel_egress_connections_open", "gauge",
             "Connections through the egress proxy now open"},
            {"connections_total", "agentkernel_egress_connections_total", "counter",
             "Connections through the egress proxy"},
            {"allowed", "agentkernel_egress_allowed_total", "counter", "Egress decisions: allowed"},
            {"denied", "agentkernel_egress_denied_total", "counter", "Egress decisions: denied"},
            {"bytes_out", "agentkernel_egress_sent_bytes_total", "counter",
             "Bytes a sandbox sent through the egress proxy"},
            {"bytes_in", "agentkernel_egress_received_bytes_total", "counter",
             "Bytes a sandbox received through the egress proxy"},
            {"dns_queries", "agentkernel_egress_dns_queries_total", "counter",
             "DNS questions a sandbox asked"},
            {"dns_denied", "agentkernel_egress_dns_denied_total", "counter",
             "DNS questions refused by policy"},
        };
        cleanup_json json_t *st = NULL;
        json_t *boxes, *v;
        const char *name;

        if (manager_network_stats(m, &st, NULL) < 0)
                return;
        boxes = json_object_get(st, "sandboxes");
        for (size_t i = 0; i < ARRAY_SIZE(fams); i++) {
                buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", fams[i].name, fams[i].help,
                           fams[i].name, fams[i].type);
                json_object_foreach (boxes, name, v) {
                        char label[256];
                        escape(name, label, sizeof(label));
                        buf_printf(b, "%s{sandbox=\"%s\"} %lld\n", fams[i].name, label,
                                   (long long)json_integer_value(json_object_get(v, fams[i].key)));
                }
        }
}

char *metrics_render(struct manager *m)
{
        struct buf b = BUF_INIT;
        struct state_list l = {0};
        bool listed = manager_list(m, NULL, NULL, &l) == 0;

        pthread_mutex_lock(&lock);
        render(&b, &http_total);
        render(&b, &http_seconds);
        render(&b, &life_total);
        render(&b, &life_seconds);
        render(&b, &cmd_total);
        render(&b, &cmd_seconds);
        pthread_mutex_unlock(&lock);
        buf_printf(&b,
                   "# HELP agentkernel_sandboxes_active Known sandboxes\n"
                   "# TYPE agentkernel_sandboxes_active gauge\n"
                   "agentkernel_sandboxes_active %zu\n"
                   "# HELP agentkernel_build_info Build information\n"
                   "# TYPE agentkernel_build_info gauge\n"
                   "agentkernel_build_info{version=\"%s\"} 1\n",
                   listed ? l.n : 0, AK_VERSION);
        /* beyond upstream: what each running sandbox uses, from its cgroups */
        /* (a virtual machine's memory and CPU are its host processes', its pids and guest
         * memory what its guest's agent counts: docs/backends.md, "Stats") */
        buf_printf(&b, "# HELP agentkernel_sandbox_memory_bytes Memory in use by a sandbox\n"
                       "# TYPE agentkernel_sandbox_memory_bytes gauge\n"
                       "# HELP agentkernel_sandbox_pids Processes in a sandbox\n"
                       "# TYPE agentkernel_sandbox_pids gauge\n"
                       "# HELP agentkernel_sandbox_cpu_seconds_total CPU time used by a sandbox\n"
                       "# TYPE agentkernel_sandbox_cpu_seconds_total counter\n"
                       "# HELP agentkernel_sandbox_guest_memory_bytes Memory in use inside a "
                       "virtual machine, as its guest counts it\n"
                       "# TYPE agentkernel_sandbox_guest_memory_bytes gauge\n"
                       "# HELP agentkernel_sandbox_guest_memory_total_bytes Memory of a virtual "
                       "machine, as its guest counts it\n"
                       "# TYPE agentkernel_sandbox_guest_memory_total_bytes gauge\n");
        for (size_t i = 0; listed && i < l.n; i++) {
                struct backend_stats st;
                if (manager_stats(m, l.items[i], &st) < 0)
                        continue;
                buf_printf(&b,
                           "agentkernel_sandbox_memory_bytes{sandbox=\"%s\"} %llu\n"
                           "agentkernel_sandbox_pids{sandbox=\"%s\"} %llu\n"
                           "agentkernel_sandbox_cpu_seconds_total{sandbox=\"%s\"} %.6f\n",
                           l.items[i]->name, (unsigned long long)st.memory_bytes, l.items[i]->name,
                           (unsigned long long)st.pids, l.items[i]->name,
                           (double)st.cpu_usec / 1e6);
                if (st.guest)
                        buf_printf(&b,
                                   "agentkernel_sandbox_guest_memory_bytes{sandbox=\"%s\"} %llu\n"
                                   "agentkernel_sandbox_guest_memory_total_bytes{sandbox=\"%s\"} "
                                   "%llu\n",
                                   l.items[i]->name, (unsigned long long)st.guest_memory_bytes,
                                   l.items[i]->name,
                                   (unsigned long long)st.guest_memory_total_bytes);
        }
        if (listed)
                state_list_done(&l);
        render_egress(&b, m);
        if (!b.data) {
                buf_done(&b);
                return strdup("");
        }
        return b.data; /* the buffer's storage is handed over */
}

int metrics_reply(struct api_ctx *c, const struct api_args *a, struct api_result *r)
{
        cleanup_free char *text = metrics_render(c->m);

        (void)a;
        r->data = text ? json_string(text) : NULL;
        if (!r->data)
                return api_fail(r, 500, "out of memory");
        r->status = 200;
        return 0;
}
