// SPDX-License-Identifier: Apache-2.0
/*
 * The decision log and the audit: one JSON line per connection, HTTP request and DNS answer in
 * the sandbox's network.jsonl (the fd given at registration), and each denial in the audit log
 * (core/audit.c, event network_denied). Both are bounded per sandbox: LOG_CAP bytes of log,
 * AUDIT_PER_SEC audited denials a second; the rest is counted, never written. Must never block
 * the loop or write past a cap.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/audit.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "worker-private.h"

#define LOG_CAP (64ull << 20) /* decision log bytes per sandbox */
#define AUDIT_PER_SEC 10      /* denials audited per sandbox and second (the rest counted) */

static void format_ts(char out[40])
{
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(out, 40, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

void log_decision(struct sandbox *sb, const char *kind, const char *host, const struct in_addr *ip,
                  uint16_t port, const char *method, const struct net_decision *d,
                  uint64_t bytes_out, uint64_t bytes_in)
{
        log_decision_ex(sb, kind, host, ip, port, method, d, bytes_out, bytes_in, NULL, true);
}

void log_decision_ex(struct sandbox *sb, const char *kind, const char *host,
                     const struct in_addr *ip, uint16_t port, const char *method,
                     const struct net_decision *d, uint64_t bytes_out, uint64_t bytes_in,
                     json_t *extra, bool audit)
{
        char ts[40], ipbuf[INET_ADDRSTRLEN];
        cleanup_json json_t *j = NULL;
        cleanup_free char *text = NULL;

        if (ip)
                inet_ntop(AF_INET, ip, ipbuf, sizeof(ipbuf));
        format_ts(ts);
        j = json_pack("{s:s,s:s,s:s,s:s?,s:s?,s:i,s:s?,s:s,s:s,s:I,s:I}", "ts", ts, "sandbox",
                      sb->name, "kind", kind, "host", host && *host ? host : NULL, "ip",
                      ip ? ipbuf : NULL, "port", (int)port, "method",
                      method && *method ? method : NULL, "action",
                      d->action == NET_ALLOW ? "allow" : "deny", "rule", d->why, "bytes_out",
                      (json_int_t)bytes_out, "bytes_in", (json_int_t)bytes_in);
        if (!j) {
                json_decref(extra);
                return;
        }
        if (extra)
                json_object_update(j, extra);
        json_decref(extra);
        if (d->action == NET_DENY && audit) {
                int64_t sec = W.now / 1000;
                if (sec != sb->audit_second) {
                        sb->audit_second = sec;
                        sb->audit_count = 0;
                }
                if (sb->audit_count++ < AUDIT_PER_SEC) {
                        json_t *f = json_deep_copy(j);
                        json_object_del(f, "ts");
                        json_object_set_new(f, "uuid", json_string(sb->uuid));
                        (void)audit_log("network_denied", f);
                } else {
                        sb->audit_drops++;
                }
        }
        if (sb->log_fd < 0)
                return;
        text = json_dumps(j, JSON_COMPACT);
        if (!text)
                return;
        size_t len = strlen(text);
        if (sb->log_bytes + len + 1 > LOG_CAP) {
                sb->log_drops++;
                return;
        }
        text[len] = '\n'; /* json_dumps' NUL: the line's end */
        if (write(sb->log_fd, text, len + 1) == (ssize_t)(len + 1))
                sb->log_bytes += len + 1;
        else
                sb->log_drops++;
}

void conn_log(struct conn *c)
{
        if (!c->log_pending)
                return;
        c->log_pending = false;
        c->sb->st.bytes_out += c->bytes_out;
        c->sb->st.bytes_in += c->bytes_in;
        json_t *extra = NULL;
        if (c->mitm) {
                json_t *names = json_array();
                for (size_t i = 0; i < c->sb->n_grants; i++)
                        if (c->used & (1ull << i))
                                json_array_append_new(names, json_string(c->sb->grants[i].name));
                extra = json_pack("{s:b,s:o}", "intercepted", 1, "secrets", names);
        }
        log_decision_ex(c->sb, c->kind, c->host, c->have_dst ? &c->dst : NULL, c->port,
                        c->method[0] ? c->method : NULL, &c->dec, c->bytes_out, c->bytes_in, extra,
                        true);
        c->bytes_out = c->bytes_in = 0;
}

/* Records c->dec for the current destination (allowed ones are logged at their end). */
void conn_decided(struct conn *c)
{
        if (c->dec.action == NET_ALLOW) {
                c->sb->st.allowed++;
                c->log_pending = true;
        } else {
                c->sb->st.denied++;
                c->log_pending = true;
                conn_log(c);
        }
}
