// SPDX-License-Identifier: Apache-2.0
/*
 * Hash-chained audit log. Appends take an exclusive flock on the log, read only its tail to find
 * the previous hash, and write each entry with one write(2) in O_APPEND mode. Never prints.
 */
#include "audit.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sha256.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/paths.h"
#include "core/private-dir.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/time-util.h"

#define HASH_HEX 64
#define TAIL_MAX (64u << 10)
#define TAIL_FIRST 4096u
#define GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

int audit_path_get(char **ret, struct ak_err *err)
{
        const char *p = secure_getenv("AGENTKERNEL_AUDIT_PATH");
        cleanup_free char *dir = NULL;
        int r;

        if (p && *p) {
                if (p[0] != '/')
                        return ak_err_set(err, EINVAL,
                                          "AGENTKERNEL_AUDIT_PATH '%s' is not an absolute path", p);
                *ret = strdup(p);
        } else {
                r = paths_user_dir_path(&dir, err);
                if (r < 0)
                        return r;
                if (asprintf(ret, "%s/audit.jsonl", dir) < 0)
                        *ret = NULL;
        }
        return *ret ? 0 : ak_err_oom(err);
}

char *audit_path(void)
{
        char *p = NULL;
        return audit_path_get(&p, NULL) < 0 ? NULL : p;
}

/* Opens the log (or, head, its head file) for writing: its directory checked first (the user
 * directory as a private one; a parent named by AGENTKERNEL_AUDIT_PATH as an ancestor: root's
 * or ours, writable by nobody else unless sticky), the file a regular one of ours that nobody
 * else can write, made 0600 (upstream's 0644 log included: it records every command). */
static int open_for_write(const char *path, bool head, struct ak_err *err)
{
        const char *explicit = secure_getenv("AGENTKERNEL_AUDIT_PATH");
        int r;

        if (!head) {
                if (explicit && *explicit) {
                        r = private_parent_check(path, "audit log", PRIVATE_CREATE, err);
                } else {
                        r = paths_user_dir_open(NULL, err);
                        if (r >= 0)
                                close(r);
                }
                if (r < 0)
                        return r;
        }
        return private_file_open_at(AT_FDCWD, path,
                                    head ? O_WRONLY | O_CREAT : O_RDWR | O_CREAT | O_APPEND, err);
}

bool audit_enabled(void)
{
        const char *v = getenv("AGENTKERNEL_AUDIT");
        return !(v && (streq(v, "0") || streq(v, "false")));
}

static void sha256_hex(const char *a, size_t alen, const char *b, size_t blen,
                       char out[HASH_HEX + 1])
{
        SHA256_CTX c;

        SHA256Init(&c);
        SHA256Update(&c, (const uint8_t *)a, alen);
        SHA256Update(&c, (const uint8_t *)b, blen);
        SHA256End(&c, out);
}

/* The "hash" suffix of a chained line: `,"hash":"<64 hex>"}`. Returns the offset where it
 * starts, or -1 when the line has none. */
static ssize_t hash_suffix(const char *line, size_t len)
{
        static const char key[] = ",\"hash\":\"";
        size_t klen = sizeof(key) - 1, tail = klen + HASH_HEX + 2;

        if (len < tail + 1 || line[len - 1] != '}' || line[len - 2] != '"')
                return -1;
        if (memcmp(line + len - tail, key, klen) != 0)
                return -1;
        for (size_t i = len - HASH_HEX - 2; i < len - 2; i++)
                if (!((line[i] >= '0' && line[i] <= '9') || (line[i] >= 'a' && line[i] <= 'f')))
                        return -1;
        return (ssize_t)(len - tail);
}

/* What the next entry chains from: the hash of the last line (its own field, or the SHA-256 of
 * a legacy, unchained line) and the next sequence number. */
static void chain_state(const char *line, size_t len, char prev[HASH_HEX + 1], long long *seq)
{
        ssize_t at = hash_suffix(line, len);
        cleanup_json json_t *e = NULL;

        *seq = 0;
        if (at < 0) {
                sha256_hex(line, len, "", 0, prev);
                return;
        }
        memcpy(prev, line + len - HASH_HEX - 2, HASH_HEX);
        prev[HASH_HEX] = '\0';
        e = json_loadb(line, len, 0, NULL);
        if (json_is_integer(json_object_get(e, "seq")))
                *seq = json_integer_value(json_object_get(e, "seq"));
}

/* Reads the last complete line of fd (at most TAIL_MAX bytes back). */
static int last_line(int fd, char *buf, size_t cap, const char **ret, size_t *ret_len)
{
        struct stat st;
        off_t off;
        ssize_t n;
        size_t end;

        *ret = NULL;
        *ret_len = 0;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_size == 0)
                return 0;
        off = st.st_size > (off_t)cap ? st.st_size - (off_t)cap : 0;
        n = pread(fd, buf, cap, off);
        if (n <= 0)
                return n < 0 ? -errno : 0;
        end = (size_t)n;
        while (end > 0 && buf[end - 1] == '\n')
                end--;
        for (size_t i = end; i > 0; i--) {
                if (buf[i - 1] == '\n') {
                        *ret = buf + i;
                        *ret_len = end - i;
                        return 0;
                }
        }
        if (off == 0) { /* the whole file is one line */
                *ret = buf;
                *ret_len = end;
        }
        return 0;
}

static char *head_path(const char *path)
{
        char *h = NULL;
        return asprintf(&h, "%s.head", path) < 0 ? NULL : h;
}

int audit_log(const char *type, json_t *fields)
{
        cleanup_free char *path = NULL, *head = NULL, *text = NULL, *line = NULL;
        cleanup_close int fd = -1;
        cleanup_json json_t *o = NULL;
        cleanup_json json_t *owned = fields; /* taken over: released on every return */
        cleanup_free char *tail = NULL;
        char now[RFC3339_MAX], prev[HASH_HEX + 1] = GENESIS, hash[HASH_HEX + 1], headrec[128];
        const char *last = NULL, *user = getenv("USER"), *k;
        long long seq = 0;
        size_t last_len = 0, tlen;
        json_t *v;
        int r;

        if (!audit_enabled())
                return 0;
        r = audit_path_get(&path, NULL);
        if (r < 0)
                return r;
        format_rfc3339(now_realtime_ns(), now);
        o = json_pack("{s:s,s:i,s:o,s:s}", "timestamp", now, "pid", (int)getpid(), "user",
                      user ? json_string(user) : json_null(), "type", type);
        if (!o)
                return -ENOMEM;
        if (fields) {
                json_object_foreach (fields, k, v)
                        json_object_set(o, k, v);
        }

        fd = open_for_write(path, false, NULL);
        if (fd < 0)
                return fd;
        while (flock(fd, LOCK_EX) < 0)
                if (errno != EINTR)
                        return -errno;
        tail = malloc(TAIL_MAX);
        if (!tail)
                return -ENOMEM;
        /* a line is usually a few hundred bytes: look at the last 4 KiB first (every page read
         * into is a page fault), then at up to TAIL_MAX */
        r = last_line(fd, tail, TAIL_FIRST, &last, &last_len);
        if (r >= 0 && !last)
                r = last_line(fd, tail, TAIL_MAX, &last, &last_len);
        if (r < 0)
                return r;
        if (last)
                chain_state(last, last_len, prev, &seq);
        json_object_set_new(o, "seq", json_integer(seq + 1));
        json_object_set_new(o, "prev", json_string(prev));
        text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!text)
                return -ENOMEM;
        tlen = strlen(text);
        sha256_hex(prev, HASH_HEX, text, tlen, hash);
        /* the line is the text with its closing brace replaced by the hash member */
        if (asprintf(&line, "%.*s,\"hash\":\"%s\"}\n", (int)(tlen - 1), text, hash) < 0)
                return -ENOMEM;
        r = write_all(fd, line, strlen(line));
        if (r < 0)
                return r;
        head = head_path(path);
        if (head) {
                cleanup_close int hfd = open_for_write(head, true, NULL);
                int n = snprintf(headrec, sizeof(headrec), "%020lld %s\n", seq + 1, hash);
                if (hfd >= 0)
                        (void)(pwrite(hfd, headrec, (size_t)n, 0) == n);
        }
        return 0;
}

static bool names_sandbox(json_t *e, const char *sandbox)
{
        json_t *s = json_object_get(e, "sandbox");
        json_t *n = json_object_get(e, "name");
        return (json_is_string(s) && streq(json_string_value(s), sandbox)) ||
               (json_is_string(n) && streq(json_string_value(n), sandbox));
}

/* Calls fn for each line (without its newline); stops when fn returns non-zero. */
static int for_each_line(const char *path, int (*fn)(const char *line, size_t len, void *ctx),
                         void *ctx, struct ak_err *err)
{
        cleanup_fclose FILE *f = NULL;
        struct ak_err e = {0};
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        int r = 0;
        /* only a log of ours that nobody else could have written is read */
        int fd = private_file_open_at(AT_FDCWD, path, O_RDONLY, &e);

        if (fd < 0)
                return fd == -ENOENT ? 0 : ak_err_set(err, e.code, "%s", ak_err_msg(&e));
        f = fdopen(fd, "r");
        if (!f) {
                close(fd);
                return ak_err_errno(err, errno, "cannot read '%s'", path);
        }
        while ((n = getline(&line, &cap, f)) >= 0) {
                while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
                        line[--n] = '\0';
                if ((size_t)n > AUDIT_LINE_MAX)
                        n = 0; /* treated as malformed */
                r = fn(line, (size_t)n, ctx);
                if (r)
                        break;
        }
        free(line);
        return r < 0 ? r : 0;
}

struct read_ctx {
        const char *sandbox;
        json_t *all;
};

static int collect(const char *line, size_t len, void *ctx)
{
        struct read_ctx *c = ctx;
        json_t *e = json_loadb(line, len, 0, NULL);

        if (!json_is_object(e) || (c->sandbox && !names_sandbox(e, c->sandbox))) {
                json_decref(e);
                return 0;
        }
        json_array_append_new(c->all, e);
        return 0;
}

int audit_read(const char *path, const char *sandbox, size_t last, json_t **ret, struct ak_err *err)
{
        struct read_ctx c = {sandbox, json_array()};
        int r;

        if (!c.all)
                return ak_err_oom(err);
        r = for_each_line(path, collect, &c, err);
        if (r < 0) {
                json_decref(c.all);
                return r;
        }
        if (last && json_array_size(c.all) > last) {
                json_t *trimmed = json_array();
                for (size_t i = json_array_size(c.all) - last; i < json_array_size(c.all); i++)
                        json_array_append(trimmed, json_array_get(c.all, i));
                json_decref(c.all);
                c.all = trimmed;
        }
        *ret = c.all;
        return 0;
}

struct stats_ctx {
        int64_t since_ns; /* executions after this count as recent */
        json_int_t executions, recent, created, removed;
        json_t *images, *backends; /* name -> count */
        char first[11], last[11];  /* YYYY-MM-DD */
};

static void count_in(json_t *counts, json_t *name)
{
        const char *k = json_string_value(name);

        if (k && *k)
                (void)json_object_set_new(
                    counts, k, json_integer(json_integer_value(json_object_get(counts, k)) + 1));
}

static int count_line(const char *line, size_t len, void *ctx)
{
        struct stats_ctx *c = ctx;
        cleanup_json json_t *e = json_loadb(line, len, 0, NULL);
        const char *type = json_string_value(json_object_get(e, "type"));
        const char *ts = json_string_value(json_object_get(e, "timestamp"));
        int64_t t;

        if (!type || !ts || strlen(ts) < 10)
                return 0;
        if (!c->first[0])
                (void)snprintf(c->first, sizeof(c->first), "%.10s", ts);
        (void)snprintf(c->last, sizeof(c->last), "%.10s", ts);
        if (streq(type, "command_executed")) {
                c->executions++;
                if (parse_rfc3339(ts, &t) == 0 && t >= c->since_ns)
                        c->recent++;
        } else if (streq(type, "sandbox_created")) {
                c->created++;
                count_in(c->images, json_object_get(e, "image"));
                count_in(c->backends, json_object_get(e, "backend"));
        } else if (streq(type, "sandbox_removed")) {
                c->removed++;
        }
        return 0;
}

/* counts' top n as [[name, count], ...], most first (ties by name). */
static json_t *top(json_t *counts, size_t n)
{
        json_t *out = json_array();

        while (out && json_array_size(out) < n) {
                const char *best = NULL, *k;
                json_int_t most = 0;
                json_t *v;
                json_object_foreach (counts, k, v)
                        if (json_integer_value(v) > most ||
                            (json_integer_value(v) == most && best && strcmp(k, best) < 0)) {
                                best = k;
                                most = json_integer_value(v);
                        }
                if (!best)
                        break;
                json_array_append_new(out, json_pack("[sI]", best, most));
                json_object_del(counts, best);
        }
        return out;
}

int audit_stats(const char *path, int64_t now_ns, json_t **ret, struct ak_err *err)
{
        struct stats_ctx c = {.since_ns = now_ns - (int64_t)30 * 86400 * NSEC_PER_SEC};
        cleanup_json json_t *images = json_object(), *backends = json_object();
        int r;

        if (!images || !backends)
                return ak_err_oom(err);
        c.images = images;
        c.backends = backends;
        r = for_each_line(path, count_line, &c, err);
        if (r < 0)
                return r;
        *ret =
            json_pack("{sI,sI,sI,sI,sI,so,so,s:s?,s:s?}", "total_executions", c.executions,
                      "executions_last_30d", c.recent, "sandboxes_created", c.created,
                      "sandboxes_removed", c.removed, "sandboxes_active",
                      c.created > c.removed ? c.created - c.removed : (json_int_t)0, "top_images",
                      top(images, 5), "top_backends", top(backends, 5), "first_entry",
                      c.first[0] ? c.first : NULL, "last_entry", c.last[0] ? c.last : NULL);
        return *ret ? 0 : ak_err_oom(err);
}

struct verify_ctx {
        struct audit_verdict *v;
        char prev[HASH_HEX + 1];
        long long seq;
        bool chain_started;
};

static int verdict(struct verify_ctx *c, const char *reason)
{
        c->v->bad_line = c->v->lines;
        (void)snprintf(c->v->reason, sizeof(c->v->reason), "%s", reason);
        return 1;
}

static int check_line(const char *line, size_t len, void *ctx)
{
        struct verify_ctx *c = ctx;
        ssize_t at = hash_suffix(line, len);
        char want[HASH_HEX + 1];
        cleanup_json json_t *e = NULL;
        json_t *prev, *seq;

        c->v->lines++;
        if (at < 0) {
                if (c->chain_started)
                        return verdict(c, "line is not chained (inserted or altered)");
                /* a legacy (upstream) line: the chain starts from its hash */
                sha256_hex(line, len, "", 0, c->prev);
                return 0;
        }
        c->v->chained++;
        c->chain_started = true;
        e = json_loadb(line, len, 0, NULL);
        prev = json_object_get(e, "prev");
        seq = json_object_get(e, "seq");
        if (!json_is_object(e) || !json_is_string(prev) || !json_is_integer(seq))
                return verdict(c, "line is not a valid entry");
        {
                /* the hashed text: the line with `,"hash":"..."` replaced by the closing brace */
                cleanup_free char *text = strndup(line, (size_t)at + 1);
                if (!text)
                        return -ENOMEM;
                text[at] = '}';
                sha256_hex(json_string_value(prev), strlen(json_string_value(prev)), text,
                           (size_t)at + 1, want);
        }
        if (memcmp(want, line + len - HASH_HEX - 2, HASH_HEX) != 0)
                return verdict(c, "line was modified (its hash does not match)");
        if (!streq(json_string_value(prev), c->prev) || json_integer_value(seq) != c->seq + 1)
                return verdict(c, "line does not follow the one before it (a line was removed, "
                                  "inserted or reordered)");
        memcpy(c->prev, line + len - HASH_HEX - 2, HASH_HEX);
        c->seq = json_integer_value(seq);
        return 0;
}

int audit_verify(const char *path, struct audit_verdict *ret, struct ak_err *err)
{
        struct verify_ctx c = {.v = ret, .prev = GENESIS};
        cleanup_free char *head = head_path(path);
        cleanup_buf struct buf hb = BUF_INIT;
        int r;

        memset(ret, 0, sizeof(*ret));
        r = for_each_line(path, check_line, &c, err);
        if (r < 0)
                return r;
        if (ret->bad_line)
                return -EBADMSG;
        /* the head file names the last entry: a cut-off tail shows here */
        if (c.chain_started && head && private_file_read_at(AT_FDCWD, head, &hb, 256, NULL) == 0 &&
            hb.data) {
                long long hseq = strtoll(hb.data, NULL, 10);
                const char *sp = strchr(hb.data, ' ');
                if (hseq != c.seq || !sp || strncmp(sp + 1, c.prev, HASH_HEX) != 0) {
                        ret->bad_line = ret->lines + 1;
                        (void)snprintf(ret->reason, sizeof(ret->reason),
                                       "the log ends at entry %lld but entry %lld was written "
                                       "(lines were removed from the end)",
                                       c.seq, hseq);
                        return -EBADMSG;
                }
        }
        return 0;
}
