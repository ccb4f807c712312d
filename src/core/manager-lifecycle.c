// SPDX-License-Identifier: Apache-2.0
/*
 * What happens to sandboxes over time and to their metadata: the seed's setters, TTL (extend,
 * expired, gc), lifecycle policies (reconcile, archive, recover) and resize. Each change is one
 * locked read-modify-write of the record, saved atomically.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/audit.h"
#include "core/manager-private.h"
#include "core/manager.h"
#include "core/validate.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/parse-util.h"
#include "shared/strv.h"

int manager_update(struct manager *m, const char *name, manager_edit_fn fn, void *ctx,
                   struct ak_err *err)
{
        cleanup_state struct sandbox_state *st = NULL;
        cleanup_store_lock int lk = -1;
        int r = lock_and_load(m, name, &lk, &st, err);

        if (r >= 0)
                r = fn(st, ctx, err);
        if (r >= 0)
                r = store_save(m->store, st, false, err);
        return r;
}

/* ---- setters ---- */

static int edit_labels(struct sandbox_state *st, void *ctx, struct ak_err *err)
{
        json_t *copy = json_deep_copy(ctx);

        if (!copy)
                return ak_err_oom(err);
        json_decref(st->labels);
        st->labels = copy;
        return 0;
}

int manager_set_labels(struct manager *m, const char *name, json_t *labels, struct ak_err *err)
{
        int r = validate_labels(labels, err);
        return r < 0 ? r : manager_update(m, name, edit_labels, labels, err);
}

static int edit_description(struct sandbox_state *st, void *ctx, struct ak_err *err)
{
        return state_set_str(&st->description, ctx) < 0 ? ak_err_oom(err) : 0;
}

int manager_set_description(struct manager *m, const char *name, const char *description,
                            struct ak_err *err)
{
        if (description && strlen(description) > DESCRIPTION_MAX)
                return ak_err_set(err, EINVAL, "description longer than %d bytes", DESCRIPTION_MAX);
        return manager_update(m, name, edit_description, (void *)description, err);
}

struct identity {
        const char *uuid, *created_at, *expires_at;
};

static int edit_identity(struct sandbox_state *st, void *ctx, struct ak_err *err)
{
        const struct identity *id = ctx;
        if (state_set_str(&st->uuid, id->uuid) < 0 ||
            state_set_str(&st->created_at, id->created_at) < 0 ||
            state_set_str(&st->expires_at, id->expires_at) < 0)
                return ak_err_oom(err);
        return 0;
}

int manager_set_identity(struct manager *m, const char *name, const char *uuid,
                         const char *created_at, const char *expires_at, struct ak_err *err)
{
        struct identity id = {uuid, created_at, expires_at};
        if (!uuid || !created_at)
                return ak_err_set(err, EINVAL, "a uuid and a creation time are required");
        return manager_update(m, name, edit_identity, &id, err);
}

/* The seed trims template metadata and stores an empty value as none. */
static int set_trimmed(char **field, const char *v)
{
        size_t len;

        while (v && (*v == ' ' || *v == '\t' || *v == '\n' || *v == '\r'))
                v++;
        len = v ? strlen(v) : 0;
        while (len && (v[len - 1] == ' ' || v[len - 1] == '\t' || v[len - 1] == '\n' ||
                       v[len - 1] == '\r'))
                len--;
        free(*field);
        *field = NULL;
        if (!len)
                return 0;
        *field = strndup(v, len);
        return *field ? 0 : -ENOMEM;
}

struct template_meta {
        const char *from, *help;
};

static int edit_template(struct sandbox_state *st, void *ctx, struct ak_err *err)
{
        const struct template_meta *t = ctx;
        if (set_trimmed(&st->created_from_template, t->from) < 0 ||
            set_trimmed(&st->template_help_text, t->help) < 0)
                return ak_err_oom(err);
        return 0;
}

int manager_set_template(struct manager *m, const char *name, const char *from, const char *help,
                         struct ak_err *err)
{
        struct template_meta t = {from, help};
        return manager_update(m, name, edit_template, &t, err);
}

static int edit_lifecycle(struct sandbox_state *st, void *ctx, struct ak_err *err)
{
        (void)err;
        if (ctx)
                st->lifecycle = *(const struct lifecycle_policy *)ctx;
        else
                memset(&st->lifecycle, 0, sizeof(st->lifecycle));
        return 0;
}

int manager_set_lifecycle(struct manager *m, const char *name, const struct lifecycle_policy *p,
                          struct ak_err *err)
{
        struct lifecycle_policy copy;

        if (p) {
                copy = *p;
                copy.present = true;
                p = &copy;
        }
        return manager_update(m, name, edit_lifecycle, (void *)p, err);
}

static int edit_init_script(struct sandbox_state *st, void *ctx, struct ak_err *err)
{
        return state_set_str(&st->init_script, ctx) < 0 ? ak_err_oom(err) : 0;
}

int manager_set_init_script(struct manager *m, const char *name, const char *script,
                            struct ak_err *err)
{
        return manager_update(m, name, edit_init_script, (void *)script, err);
}

static int edit_volumes(struct sandbox_state *st, void *ctx, struct ak_err *err)
{
        char **copy = strv_dup(ctx);
        if (!copy)
                return ak_err_oom(err);
        strv_free(st->volumes);
        st->volumes = copy;
        return 0;
}

int manager_set_volumes(struct manager *m, const char *name, char *const *volumes,
                        struct ak_err *err)
{
        char *const none[] = {NULL};
        return manager_update(m, name, edit_volumes, (void *)(volumes ? volumes : none), err);
}

/* ---- TTL ---- */

struct extend {
        uint64_t secs;
        char *expiry; /* RFC3339_MAX */
};

static int edit_extend(struct sandbox_state *st, void *ctx, struct ak_err *err)
{
        struct extend *e = ctx;
        int64_t now = now_realtime_ns(), base = now, exp, created;

        /* as upstream: a sandbox that never expired gets a TTL ending that long from now (the
         * CLI says when it now expires), and an expired one is extended from now too */
        if (st->expires_at && parse_rfc3339(st->expires_at, &exp) == 0 && exp > now)
                base = exp;
        base += (int64_t)e->secs * NSEC_PER_SEC;
        format_rfc3339(base, e->expiry);
        if (state_set_str(&st->expires_at, e->expiry) < 0)
                return ak_err_oom(err);
        if (parse_rfc3339(st->created_at, &created) == 0 && base - created > 0) {
                st->has_ttl = true;
                st->ttl_seconds = (uint64_t)((base - created) / NSEC_PER_SEC);
        }
        return 0;
}

int manager_extend_ttl(struct manager *m, const char *name, uint64_t secs, char expiry[RFC3339_MAX],
                       struct ak_err *err)
{
        struct extend e = {secs, expiry};

        if (secs == 0 || secs > DURATION_MAX_SECONDS)
                return ak_err_set(err, EINVAL, "the extension must be 1s to 3650d");
        return manager_update(m, name, edit_extend, &e, err);
}

static bool expired(const struct sandbox_state *st, int64_t now)
{
        int64_t exp;
        return st->expires_at && parse_rfc3339(st->expires_at, &exp) == 0 && exp < now;
}

bool state_labels_match(const struct sandbox_state *st, json_t *filters)
{
        const char *k;
        json_t *v;

        json_object_foreach (filters, k, v) {
                json_t *have = json_object_get(st->labels, k);
                if (!have || !json_equal(have, v))
                        return false;
        }
        return true;
}

static int cmp_str(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of recorded sandboxes for which keep() holds, sorted. */
static int select_names(struct manager *m, bool (*keep)(const struct sandbox_state *, void *),
                        void *ctx, char ***ret, struct ak_err *err)
{
        cleanup_state_list struct state_list l = {0};
        cleanup_strv char **names = NULL;
        int r = manager_list(m, NULL, NULL, &l);

        if (r < 0)
                return ak_err_errno(err, r, "listing sandboxes");
        names = calloc(l.n + 1, sizeof(char *));
        if (!names)
                return ak_err_oom(err);
        for (size_t i = 0, k = 0; i < l.n; i++) {
                if (!keep(l.items[i], ctx))
                        continue;
                names[k] = strdup(l.items[i]->name);
                if (!names[k++])
                        return ak_err_oom(err);
        }
        qsort(names, strv_len(names), sizeof(char *), cmp_str);
        *ret = TAKE_PTR(names);
        return 0;
}

static bool keep_expired(const struct sandbox_state *st, void *ctx)
{
        return expired(st, *(int64_t *)ctx);
}

int manager_expired(struct manager *m, char ***ret, struct ak_err *err)
{
        int64_t now = now_realtime_ns();
        return select_names(m, keep_expired, &now, ret, err);
}

static bool keep_labels(const struct sandbox_state *st, void *ctx)
{
        return state_labels_match(st, ctx);
}

int manager_list_matching_labels(struct manager *m, json_t *filters, char ***ret,
                                 struct ak_err *err)
{
        return select_names(m, keep_labels, filters, ret, err);
}

struct gc_filter {
        int64_t now;
        json_t *labels;
};

static bool keep_gc(const struct sandbox_state *st, void *ctx)
{
        const struct gc_filter *g = ctx;
        return expired(st, g->now) && (!g->labels || state_labels_match(st, g->labels));
}

int manager_gc(struct manager *m, json_t *labels, bool dry_run, char ***ret_removed,
               struct ak_err *err)
{
        struct gc_filter g = {now_realtime_ns(), labels};
        cleanup_strv char **names = NULL;
        int r = select_names(m, keep_gc, &g, &names, err);

        if (r < 0)
                return r;
        for (char **n = names; !dry_run && *n; n++) {
                /* Another process may have removed it meanwhile: that is not an error. */
                struct ak_err one = {0};
                r = manager_remove(m, *n, &one);
                if (r < 0 && r != -ENOENT)
                        return ak_err_set(err, one.code, "%s", ak_err_msg(&one));
        }
        *ret_removed = TAKE_PTR(names);
        return 0;
}

/* ---- clean ---- */

struct clean_filter {
        struct manager *m;
        bool running; /* select the running ones (else the others) */
};

static bool keep_clean(const struct sandbox_state *st, void *ctx)
{
        const struct clean_filter *c = ctx;
        return manager_is_running(c->m, st) == c->running;
}

int manager_clean(struct manager *m, bool force, char ***ret_removed, char ***ret_skipped,
                  struct ak_err *err)
{
        struct clean_filter stopped = {m, false}, running = {m, true};
        cleanup_strv char **gone = NULL, **busy = NULL;
        int r = select_names(m, keep_clean, &stopped, &gone, err);

        if (r >= 0)
                r = select_names(m, keep_clean, &running, &busy, err);
        if (r < 0)
                return r;
        if (force) { /* the running ones too: none is left */
                for (char **n = busy; *n; n++)
                        if (strv_push(&gone, *n) < 0)
                                return ak_err_oom(err);
                strv_free(busy);
                busy = calloc(1, sizeof(char *));
                if (!busy)
                        return ak_err_oom(err);
        }
        for (char **n = gone; *n; n++) {
                struct ak_err one = {0};
                r = manager_remove(m, *n, &one);
                if (r < 0 && r != -ENOENT) /* another process may have removed it meanwhile */
                        return ak_err_set(err, one.code, "%s", ak_err_msg(&one));
        }
        *ret_removed = TAKE_PTR(gone);
        *ret_skipped = TAKE_PTR(busy);
        return 0;
}

/* ---- lifecycle policies ---- */

void reconcile_result_done(struct reconcile_result *r)
{
        strv_free(r->stopped);
        strv_free(r->archived);
        strv_free(r->removed);
        for (size_t i = 0; i < r->n_actions; i++)
                free(r->actions[i].sandbox);
        free(r->actions);
        memset(r, 0, sizeof(*r));
}

static int64_t secs_since(const char *ts, int64_t now)
{
        int64_t t;
        if (!ts || parse_rfc3339(ts, &t) < 0)
                return -1;
        return (now - t) / NSEC_PER_SEC;
}

static int cmp_action(const void *a, const void *b)
{
        const struct reconcile_action *x = a, *y = b;
        int c = strcmp(x->sandbox, y->sandbox);
        return c ? c : strcmp(x->reason, y->reason);
}

/* The seed's decision for one sandbox: delete an archived one after auto_delete, else archive
 * after auto_archive of inactivity, else stop a running one after auto_stop. */
static bool decide(struct manager *m, const struct sandbox_state *st, int64_t now,
                   struct reconcile_action *ret)
{
        const struct lifecycle_policy *p = &st->lifecycle;
        int64_t inactive;

        memset(ret, 0, sizeof(*ret));
        if (!p->present)
                return false;
        if (st->archived_at) {
                int64_t archived = secs_since(st->archived_at, now);
                if (archived >= 0 && p->has_delete && archived >= (int64_t)p->delete_after) {
                        ret->action = RECONCILE_DELETE;
                        (void)snprintf(ret->reason, sizeof(ret->reason),
                                       "archived for %llds (threshold=%llus)", (long long)archived,
                                       (unsigned long long)p->delete_after);
                        return true;
                }
                return false;
        }
        inactive = secs_since(st->last_activity_at, now);
        if (inactive < 0 && !st->last_activity_at)
                inactive = secs_since(st->created_at, now);
        if (inactive < 0)
                inactive = 0;
        if (p->has_archive && (uint64_t)inactive >= p->archive_after) {
                ret->action = RECONCILE_ARCHIVE;
                (void)snprintf(ret->reason, sizeof(ret->reason),
                               "inactive for %llds (threshold=%llus)", (long long)inactive,
                               (unsigned long long)p->archive_after);
                return true;
        }
        if (p->has_stop && (uint64_t)inactive >= p->stop_after && manager_is_running(m, st)) {
                ret->action = RECONCILE_STOP;
                (void)snprintf(ret->reason, sizeof(ret->reason),
                               "inactive for %llds (threshold=%llus)", (long long)inactive,
                               (unsigned long long)p->stop_after);
                return true;
        }
        return false;
}

struct archive {
        const char *when, *reason;
};

static int edit_archive(struct sandbox_state *st, void *ctx, struct ak_err *err)
{
        const struct archive *a = ctx;
        if (state_set_str(&st->archived_at, a->when) < 0 ||
            state_set_str(&st->archived_reason, a->reason) < 0)
                return ak_err_oom(err);
        return 0;
}

static int apply(struct manager *m, const struct reconcile_action *a, const char *now,
                 struct ak_err *err)
{
        struct sandbox_state *st = NULL;
        struct archive ar = {now, a->reason};
        int r;

        switch (a->action) {
        case RECONCILE_STOP:
        case RECONCILE_ARCHIVE:
                if (store_load(m->store, a->sandbox, &st, NULL) == 0 && manager_is_running(m, st))
                        r = manager_stop(m, a->sandbox, err);
                else
                        r = 0;
                state_free(st);
                if (r >= 0 && a->action == RECONCILE_ARCHIVE)
                        r = manager_update(m, a->sandbox, edit_archive, &ar, err);
                return r;
        case RECONCILE_DELETE:
                r = manager_remove(m, a->sandbox, err);
                return r == -ENOENT ? 0 : r;
        default:
                return 0;
        }
}

int manager_reconcile(struct manager *m, bool dry_run, struct reconcile_result *ret,
                      struct ak_err *err)
{
        cleanup_reconcile_result struct reconcile_result res = {.dry_run = dry_run};
        cleanup_state_list struct state_list l = {0};
        char now_text[RFC3339_MAX];
        int64_t now = now_realtime_ns();
        int r = manager_list(m, NULL, NULL, &l);

        if (r < 0)
                return ak_err_errno(err, r, "listing sandboxes");
        format_rfc3339(now, now_text);
        res.actions = calloc(l.n + 1, sizeof(*res.actions));
        res.stopped = calloc(l.n + 1, sizeof(char *));
        res.archived = calloc(l.n + 1, sizeof(char *));
        res.removed = calloc(l.n + 1, sizeof(char *));
        if (!res.actions || !res.stopped || !res.archived || !res.removed)
                return ak_err_oom(err);
        for (size_t i = 0; i < l.n; i++) {
                struct reconcile_action *a = &res.actions[res.n_actions];
                if (!decide(m, l.items[i], now, a))
                        continue;
                a->sandbox = strdup(l.items[i]->name);
                if (!a->sandbox)
                        return ak_err_oom(err);
                res.n_actions++;
        }
        qsort(res.actions, res.n_actions, sizeof(*res.actions), cmp_action);
        for (size_t i = 0, ns = 0, na = 0, nr = 0; i < res.n_actions; i++) {
                struct reconcile_action *a = &res.actions[i];
                char **list = a->action == RECONCILE_STOP      ? &res.stopped[ns++]
                              : a->action == RECONCILE_ARCHIVE ? &res.archived[na++]
                                                               : &res.removed[nr++];
                if (!dry_run && (r = apply(m, a, now_text, err)) < 0)
                        return r;
                *list = strdup(a->sandbox);
                if (!*list)
                        return ak_err_oom(err);
        }
        *ret = TAKE_STRUCT(res);
        return 0;
}

json_t *reconcile_json(const struct reconcile_result *r)
{
        json_t *actions = json_array();

        for (size_t i = 0; actions && i < r->n_actions; i++)
                json_array_append_new(
                    actions, json_pack("{s:s,s:s,s:s}", "sandbox", r->actions[i].sandbox, "action",
                                       reconcile_action_name(r->actions[i].action), "reason",
                                       r->actions[i].reason));
        return json_pack("{s:b,s:o,s:o,s:o,s:o}", "dry_run", r->dry_run, "stopped",
                         strv_json_array(r->stopped), "archived", strv_json_array(r->archived),
                         "removed", strv_json_array(r->removed), "actions", actions);
}

const char *reconcile_action_name(enum reconcile_kind k)
{
        return k == RECONCILE_STOP ? "stop" : k == RECONCILE_ARCHIVE ? "archive" : "delete";
}

static int edit_recover(struct sandbox_state *st, void *ctx, struct ak_err *err)
{
        char now[RFC3339_MAX];
        (void)ctx;
        now_rfc3339(now);
        if (state_set_str(&st->archived_at, NULL) < 0 ||
            state_set_str(&st->archived_reason, NULL) < 0 ||
            state_set_str(&st->last_activity_at, now) < 0)
                return ak_err_oom(err);
        return 0;
}

int manager_recover(struct manager *m, const char *name, struct ak_err *err)
{
        return manager_update(m, name, edit_recover, NULL, err);
}

int manager_archive(struct manager *m, const char *name, const char *reason, struct ak_err *err)
{
        char now[RFC3339_MAX];
        struct archive ar = {now, reason ? reason : "archived by request"};
        struct sandbox_state *st = NULL;
        int r;

        r = store_load(m->store, name, &st, err);
        if (r < 0)
                return r;
        r = manager_is_running(m, st) ? manager_stop(m, name, err) : 0;
        state_free(st);
        now_rfc3339(now);
        return r < 0 ? r : manager_update(m, name, edit_archive, &ar, err);
}

/* ---- resize ---- */

struct resize {
        uint32_t vcpus;
        uint64_t memory_mb;
};

static int edit_resources(struct sandbox_state *st, void *ctx, struct ak_err *err)
{
        const struct resize *z = ctx;
        (void)err;
        if (z->vcpus)
                st->vcpus = z->vcpus;
        if (z->memory_mb)
                st->memory_mb = z->memory_mb;
        return 0;
}

int manager_resize(struct manager *m, const char *name, uint32_t vcpus, uint64_t memory_mb,
                   enum resize_how *ret_how, struct ak_err *err)
{
        struct resize z = {vcpus, memory_mb};
        struct sandbox_state *st = NULL;
        const struct backend_ops *b;
        struct start_plan plan;
        bool running;
        int lk, r;

        *ret_how = RESIZE_RECORDED;
        if (!vcpus && !memory_mb)
                return ak_err_set(err, EINVAL, "nothing to resize: give vcpus and/or memory");
        if (vcpus > 64)
                return ak_err_set(err, EINVAL, "vcpus must be between 1 and 64");
        if (memory_mb && (memory_mb < 16 || memory_mb > (1u << 20)))
                return ak_err_set(err, EINVAL, "memory must be between 16 MB and 1 TB");
        r = lock_and_load(m, name, &lk, &st, err);
        if (r < 0)
                goto out;
        running = manager_is_running(m, st);
        (void)edit_resources(st, &z, err);
        if (running && (r = manager_backend(st, &b, err)) >= 0 && (b->caps & BACKEND_CAP_RESIZE)) {
                r = plan_from_state(m, st, false, &plan, err);
                if (r >= 0) {
                        r = backend_resize(b, &plan.cfg.ref, &plan.cfg, err);
                        start_plan_done(&plan);
                }
                if (r < 0)
                        goto out;
                *ret_how = RESIZE_IN_PLACE;
        } else if (r < 0) {
                goto out;
        } else if (running) {
                *ret_how = RESIZE_RESTARTED;
        }
        r = store_save(m->store, st, false, err);
out:
        state_free(st);
        store_unlock(lk);
        if (r >= 0 && *ret_how == RESIZE_RESTARTED) {
                /* the record (uuid, created_at, expiry, metadata) stays; only the sandbox is
                 * started again with the new limits */
                r = manager_stop(m, name, err);
                if (r >= 0)
                        r = manager_start(m, name, err);
        }
        if (r >= 0)
                (void)manager_touch(m, name);
        return r;
}
