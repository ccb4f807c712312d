// SPDX-License-Identifier: Apache-2.0
/*
 * Sandbox lifecycle. Every operation that changes a sandbox holds its lock for the whole
 * read-modify-write; a failed start leaves the sandbox exactly as it was (recorded, stopped).
 */
#include "manager.h"
#include "manager-private.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/audit.h"
#include "core/coding-agents.h"
#include "core/compat.h"
#include "core/config.h"
#include "core/egress.h"
#include "core/paths.h"
#include "core/secrets.h"
#include "core/source.h"
#include "core/validate.h"
#include "core/vault.h"
#include "core/views.h"
#include "core/volume.h"
#include "shared/cleanup.h"
#include "shared/dir-cache.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/random-util.h"
#include "shared/strv.h"
#include "shared/time-util.h"

int manager_open(struct manager **ret, struct ak_err *err)
{
        struct manager *m = calloc(1, sizeof(*m));
        int r;

        if (!m)
                return ak_err_oom(err);
        r = store_open(NULL, &m->store, err);
        if (r < 0) {
                free(m);
                return r;
        }
        *ret = m;
        return 0;
}

void manager_free(struct manager *m)
{
        if (!m)
                return;
        store_free(m->store);
        free(m);
}

void manager_set_notify(struct manager *m, void (*fn)(void *ctx, const char *msg), void *ctx)
{
        m->notify = fn;
        m->notify_ctx = ctx;
}

const char *manager_data_dir(const struct manager *m)
{
        return m->store->data_dir;
}

int manager_get(struct manager *m, const char *name, struct sandbox_state **ret, struct ak_err *err)
{
        return store_load(m->store, name, ret, err);
}

const char *manager_default_backend(void)
{
        return backend_default()->name;
}

const char *manager_backend_name(const struct sandbox_state *st)
{
        const char *name = state_backend(st);
        return name ? name : manager_default_backend();
}

int manager_backend(const struct sandbox_state *st, const struct backend_ops **ret,
                    struct ak_err *err)
{
        const struct backend_ops *b = backend_find(manager_backend_name(st));

        if (!b)
                return ak_err_set(err, ENOTSUP,
                                  "sandbox '%s' uses the '%s' backend, which this build of "
                                  "agentkernel does not have",
                                  st->name, manager_backend_name(st));
        *ret = b;
        return 0;
}

void now_rfc3339(char out[RFC3339_MAX])
{
        format_rfc3339(now_realtime_ns(), out);
}

void start_plan_done(struct start_plan *p)
{
        free(p->binds);
        free(p->bind_paths);
        free(p->run_dir);
        strv_free(p->env);
        free(p->ports);
        json_decref(p->secret_grants);
        json_decref(p->net_policy);
        free(p->upstream_ca);
        free(p->proxy_ca);
}

/* agentkernel's own directories, canonical: this store's data directory and the user directory
 * (its api key, trust store). own[1] is NULL when the user directory cannot be named. */
static void own_dirs(struct manager *m, char user_buf[PATH_MAX], const char *own[2])
{
        cleanup_free char *user = NULL;

        own[0] = m->store->data_dir;
        own[1] = NULL;
        if (paths_user_dir_path(&user, NULL) >= 0) {
                if (!realpath(user, user_buf))
                        (void)snprintf(user_buf, PATH_MAX, "%s", user);
                own[1] = user_buf;
        }
}

/* The workspace rules (validate_workspace) with agentkernel's own directories: the same at create
 * and at every start, because a record is read back from disk like any other input. */
static int check_workspace(struct manager *m, const char *path, struct ak_err *err)
{
        char real[PATH_MAX];
        const char *own[2];

        own_dirs(m, real, own);
        return validate_workspace(path, own, ARRAY_SIZE(own), err);
}

json_t *manager_info_json(struct manager *m, const struct sandbox_state *st)
{
        struct backend_status bs;

        manager_status(m, st, &bs);
        return manager_info_json_as(m, st, &bs);
}

json_t *manager_info_json_as(struct manager *m, const struct sandbox_state *st,
                             const struct backend_status *bs)
{
        cleanup_free char *run_dir = store_run_dir(m->store, st->name);
        struct sandbox_ref ref = {st->name, st->uuid, run_dir};
        const struct backend_ops *b;
        json_t *o = sandbox_info_json(st, bs->running);

        if (o && bs->paused && !st->archived_at)
                json_object_set_new(o, "status", json_string("paused"));
        if (o && run_dir && manager_backend(st, &b, NULL) >= 0)
                backend_describe(b, &ref, bs->running, o);
        return o;
}

/* The native backend mounts a root-owned workspace plain (runtime.h, MOP_OWNER): say so, since
 * the sandbox's root then cannot write the user's files there. */
static void note_root_owned_workspace(struct manager *m, const struct sandbox_state *st,
                                      const char *dir)
{
        struct stat sb;

        if (geteuid() != 0 || !streq(manager_backend_name(st), "native") || stat(dir, &sb) < 0 ||
            sb.st_uid != 0)
                return;
        manager_notify(
            m,
            "note: '%s' belongs to root, so the sandbox writes there as an unprivileged user: "
            "only where everyone may write, and nothing it makes is root's; to let it work "
            "there as a user of this host, give the directory to that user (chown USER '%s')",
            dir, dir);
}

enum net_mode manager_net_mode(const struct sandbox_state *st)
{
        const struct profile *prof = profile_get(st->profile);
        const struct backend_ops *b;

        if (st->network >= 0)
                return (enum net_mode)st->network;
        if (!prof || !prof->network)
                return NET_MODE_NONE;
        /* the profile's "on": proxy where the backend has it, else full as before */
        b = backend_find(manager_backend_name(st));
        return !b || (b->caps & BACKEND_CAP_PROXY) ? NET_MODE_ON : NET_MODE_FULL;
}

int plan_from_state(struct manager *m, const struct sandbox_state *st, bool ephemeral,
                    struct start_plan *p, struct ak_err *err)
{
        static const char *const passed[] = {"PATH", "HOME", "USER", "LANG", "LC_ALL", "TERM"};
        const struct profile *prof = profile_get(st->profile);
        cleanup_start_plan struct start_plan plan = {0};
        size_t n_env = 0, n_vol, k = 0;

        if (!prof)
                return ak_err_set(err, EINVAL,
                                  "unknown profile '%s' (use permissive, moderate or restrictive)",
                                  st->profile);
        if ((st->mount_cwd >= 0 ? st->mount_cwd : prof->mount_cwd) && st->work_dir &&
            check_workspace(m, st->work_dir, err) < 0)
                return ak_err_prefix(err, "sandbox '%s'", st->name);
        for (char **e = st->env; e && *e; e++)
                n_env++;
        /* placeholders (bindings, the agent's keys), AGENTKERNEL_SECRETS_PATH, 6 trust variables */
        n_env += strv_len(st->secret_bindings) + AGENT_KEYS_MAX + 1 + 6;
        plan.env = calloc(n_env + ARRAY_SIZE(passed) + 1, sizeof(char *));
        if (!plan.env)
                return ak_err_oom(err);
        if (prof->pass_env) {
                for (size_t i = 0; i < ARRAY_SIZE(passed); i++) {
                        const char *v = getenv(passed[i]);
                        if (v && asprintf(&plan.env[k++], "%s=%s", passed[i], v) < 0)
                                return ak_err_oom(err);
                }
        }
        for (char **e = st->env; e && *e; e++)
                if (!(plan.env[k++] = strdup(*e)))
                        return ak_err_oom(err);
        if (strv_len(st->secret_bindings) || strv_len(st->secret_files) ||
            coding_agent_find(st->agent)) {
                int r = plan_secrets(m, st, plan.env, &k, &plan.secret_grants, err);
                if (r >= 0)
                        r = secrets_policy(st->network_policy, plan.secret_grants, &plan.net_policy,
                                           err);
                if (r >= 0 && json_array_size(plan.secret_grants) && st->network_ca_file)
                        r = egress_ca_file_read(st->network_ca_file, &plan.upstream_ca, err);
                if (r < 0)
                        return ak_err_prefix(err, "sandbox '%s'", st->name);
        }
        plan.ports = calloc(st->n_ports + 1, sizeof(*plan.ports));
        if (!plan.ports)
                return ak_err_oom(err);
        for (size_t i = 0; i < st->n_ports; i++) {
                plan.ports[i].host_port = st->ports[i].host_port;
                plan.ports[i].container_port = st->ports[i].container_port;
                plan.ports[i].udp = st->ports[i].udp;
        }
        plan.run_dir = store_run_dir(m->store, ephemeral ? EPHEMERAL_RUN_DIR : st->name);
        if (!plan.run_dir)
                return ak_err_oom(err);
        n_vol = strv_len(st->volumes);
        if (n_vol) {
                plan.binds = calloc(n_vol, sizeof(*plan.binds));
                plan.bind_paths = calloc(n_vol, sizeof(*plan.bind_paths));
                if (!plan.binds || !plan.bind_paths)
                        return ak_err_oom(err);
        }
        for (size_t i = 0; i < n_vol; i++) {
                struct volume_spec vs;
                int r = volume_parse_spec(st->volumes[i], &vs, err);
                if (r >= 0)
                        r = volume_acquire(vs.slug, plan.bind_paths[i][0],
                                           sizeof(plan.bind_paths[i][0]), err);
                if (r < 0)
                        return r;
                memcpy(plan.bind_paths[i][1], vs.dest, sizeof(vs.dest));
                plan.binds[i] =
                    (struct bind_mount){plan.bind_paths[i][0], plan.bind_paths[i][1], vs.ro};
        }
        plan.cfg.binds = plan.binds;
        plan.cfg.n_binds = n_vol;

        plan.cfg.ref.name = st->name;
        plan.cfg.ref.uuid = st->uuid;
        plan.cfg.ref.run_dir = plan.run_dir;
        plan.cfg.image = st->image;
        plan.cfg.vcpus = st->vcpus ? st->vcpus : DEFAULT_VCPUS;
        plan.cfg.memory_mb = st->memory_mb;
        plan.cfg.disk_mb = st->disk_mb ? st->disk_mb : st->memory_mb; /* older records: as before */
        plan.cfg.id_slot = st->vsock_cid;
        plan.profile = *prof;
        if (st->seccomp && seccomp_profile_from_name(st->seccomp, &plan.profile.seccomp) < 0)
                return ak_err_set(err, EINVAL, "sandbox '%s' names an unknown seccomp filter '%s'",
                                  st->name, st->seccomp);
        plan.cfg.network = manager_net_mode(st); /* what info says, started as it says */
        plan.cfg.net_policy = plan.net_policy ? plan.net_policy : st->network_policy;
        plan.cfg.secret_grants = plan.secret_grants;
        plan.cfg.upstream_ca = plan.upstream_ca;
        plan.cfg.workspace =
            (st->mount_cwd >= 0 ? st->mount_cwd : prof->mount_cwd) ? st->work_dir : NULL;
        if (plan.cfg.workspace)
                note_root_owned_workspace(m, st, plan.cfg.workspace);
        plan.cfg.scratch_workspace = !plan.cfg.workspace && st->source_url;
        plan.cfg.home = prof->mount_home ? getenv("HOME") : NULL;
        {
                char user[PATH_MAX];
                const char *own[2];
                own_dirs(m, user, own);
                (void)snprintf(plan.own_paths[0], sizeof(plan.own_paths[0]), "%s", own[0]);
                (void)snprintf(plan.own_paths[1], sizeof(plan.own_paths[1]), "%s",
                               own[1] ? own[1] : "");
        }
        plan.cfg.env = plan.env;
        plan.cfg.ports = plan.ports;
        plan.cfg.n_ports = st->n_ports;
        plan.cfg.ephemeral = ephemeral;
        *p = TAKE_STRUCT(plan);
        p->cfg.profile = &p->profile; /* into the plan itself: set where it stays */
        p->own[0] = p->own_paths[0];
        p->own[1] = p->own_paths[1][0] ? p->own_paths[1] : NULL;
        p->cfg.own_dirs = p->own;
        p->cfg.n_own_dirs = ARRAY_SIZE(p->own);
        p->cfg.ret_proxy_ca = &p->proxy_ca;
        return 0;
}

/* Volume specs: well-formed, existing volumes, no two at one place. */
static int validate_volumes(char *const *specs, struct ak_err *err)
{
        /* on the heap: 32 specs are 130 KiB, and every stack page a start touches is a page
         * fault (about 15 us each on a VM) */
        cleanup_free struct volume_spec *vs = NULL;
        struct volume_info vi;
        size_t n = strv_len(specs);
        int r;

        if (n == 0)
                return 0;
        if (n > VOLUMES_PER_SANDBOX_MAX)
                return ak_err_set(err, EINVAL, "at most %d volumes", VOLUMES_PER_SANDBOX_MAX);
        vs = malloc(n * sizeof(*vs));
        if (!vs)
                return ak_err_oom(err);
        for (size_t i = 0; i < n; i++) {
                if ((r = volume_parse_spec(specs[i], &vs[i], err)) < 0 ||
                    (r = volume_get(vs[i].slug, &vi, err)) < 0)
                        return r;
                for (size_t j = 0; j < i; j++)
                        if (streq(vs[i].dest, vs[j].dest))
                                return ak_err_set(err, EINVAL, "two volumes at '%s'", vs[i].dest);
        }
        return 0;
}

/* Whether env (KEY=VALUE entries) sets the key of entry. */
static bool env_has_key(char *const *env, const char *entry)
{
        size_t n = strcspn(entry, "=");

        for (; env && *env; env++)
                if (strncmp(*env, entry, n) == 0 && (*env)[n] == '=')
                        return true;
        return false;
}

/* Builds a state from create options (shared by create and ephemeral runs). */
static int state_from_opts(const struct create_opts *o, struct sandbox_state **ret,
                           struct ak_err *err)
{
        cleanup_state struct sandbox_state *st = NULL;
        const struct compat_mode *cm;
        bool native;
        const struct profile *prof;
        const struct backend_ops *b;
        char now[RFC3339_MAX], u[37], cwd[PATH_MAX];
        int64_t now_ns = now_realtime_ns();
        int r;

        r = validate_name(o->name, err);
        if (r < 0)
                return r;
        if ((r = compat_mode_lookup(o->compat_mode, &cm, err)) < 0)
                return r;
        native = compat_mode_is_native(cm);
        prof = profile_get(o->profile ? o->profile : native ? NULL : cm->profile);
        if (!prof)
                return ak_err_set(err, EINVAL,
                                  "invalid profile '%s': use permissive, moderate or restrictive",
                                  o->profile);
        if ((r = source_check(o->source_url, o->source_ref, err)) < 0)
                return r;
        b = o->backend ? backend_find(o->backend) : backend_default();
        if (!b)
                return ak_err_set(err, EINVAL, "unknown backend '%s'", o->backend);
        if (o->image && (r = validate_image(o->image, err)) < 0)
                return r;
        for (char *const *e = o->env; e && *e; e++)
                if ((r = validate_env_entry(*e, err)) < 0)
                        return r;
        if (o->labels && (r = validate_labels(o->labels, err)) < 0)
                return r;
        if ((r = validate_volumes(o->volumes, err)) < 0)
                return r;
        if (o->seccomp) {
                enum seccomp_profile sp;
                if (seccomp_profile_from_name(o->seccomp, &sp) < 0)
                        return ak_err_set(err, EINVAL, "unknown seccomp filter '%s'", o->seccomp);
        }
        if (o->network >= 0 && !net_mode_valid(o->network))
                return ak_err_set(err, EINVAL, "unknown network mode %d", o->network);
        if (o->network_policy && (r = egress_policy_check(o->network_policy, err)) < 0)
                return r;
        if (o->vcpus > 64)
                return ak_err_set(err, EINVAL, "vcpus must be between 1 and 64");
        if (o->memory_mb && (o->memory_mb < 16 || o->memory_mb > (1u << 20)))
                return ak_err_set(err, EINVAL, "memory must be between 16 MB and 1 TB");
        if (o->disk_mb && (r = validate_disk_mb(o->disk_mb, err)) < 0)
                return r;
        if (o->n_files && (!o->files_dir || o->files_dir[0] != '/'))
                return ak_err_set(err, EINVAL,
                                  "files to copy need the config directory they are in");
        if ((!o->image || streq(o->image, "host")) &&
            (r = validate_host_image_files(o->files, o->n_files, err)) < 0)
                return r;
        if (o->description && strlen(o->description) > DESCRIPTION_MAX)
                return ak_err_set(err, EINVAL, "description longer than %d bytes", DESCRIPTION_MAX);

        st = state_new();
        if (!st)
                return ak_err_oom(err);
        now_rfc3339(now);
        uuid_v7(u, (uint64_t)(now_ns / NSEC_PER_MSEC));
        if (state_set_str(&st->name, o->name) < 0 || state_set_str(&st->uuid, u) < 0 ||
            state_set_str(&st->image, o->image ? o->image : "host") < 0 ||
            state_set_str(&st->created_at, now) < 0 ||
            state_set_str(&st->last_activity_at, now) < 0 || state_set_backend(st, b->name) < 0 ||
            state_set_str(&st->profile, prof->name) < 0 ||
            state_set_str(&st->agent, o->agent) < 0 ||
            state_set_str(&st->description, o->description) < 0)
                return ak_err_oom(err);
        st->vcpus = o->vcpus ? o->vcpus : DEFAULT_VCPUS;
        st->memory_mb = o->memory_mb ? o->memory_mb : profile_default_memory(prof);
        /* half the memory by default: the disk is tmpfs, charged to the memory limit, and a
         * fill should meet ENOSPC before the OOM killer */
        st->disk_mb = o->disk_mb
                          ? o->disk_mb
                          : (st->memory_mb / 2 > DISK_MB_MIN ? st->memory_mb / 2 : DISK_MB_MIN);
        st->network = o->network;
        if (o->network_policy)
                st->network_policy = json_incref(o->network_policy);
        st->mount_cwd = o->mount_cwd;
        if (!native && (r = compat_mode_apply(cm, o, st, err)) < 0)
                return r;
        if (state_set_str(&st->source_url, o->source_url) < 0 ||
            state_set_str(&st->source_ref, o->source_ref) < 0 ||
            state_set_str(&st->created_from_template, o->template_name) < 0 ||
            state_set_str(&st->template_help_text, o->template_help_text) < 0)
                return ak_err_oom(err);
        if (o->source_url) {
                /* the clone is the workspace: never into a host directory */
                if (st->mount_cwd > 0 || o->work_dir)
                        return ak_err_set(err, EINVAL,
                                          "--source clones into /workspace: it cannot be "
                                          "combined with a mounted workspace (--mount-cwd, "
                                          "--dir, [security] mount_cwd)");
                st->mount_cwd = 0;
                if ((r = source_check_reachable(st, (int)manager_net_mode(st), err)) < 0)
                        return r;
        }
        if (o->has_ttl && o->ttl_seconds > 0) {
                char exp[RFC3339_MAX];
                st->has_ttl = true;
                st->ttl_seconds = o->ttl_seconds;
                format_rfc3339(now_ns + (int64_t)o->ttl_seconds * NSEC_PER_SEC, exp);
                if (state_set_str(&st->expires_at, exp) < 0)
                        return ak_err_oom(err);
        }
        if ((st->mount_cwd >= 0 ? st->mount_cwd : prof->mount_cwd)) {
                const char *wd = o->work_dir;
                if (!wd) {
                        if (!getcwd(cwd, sizeof(cwd)))
                                return ak_err_errno(err, errno, "getcwd");
                        wd = cwd;
                }
                if (state_set_str(&st->work_dir, wd) < 0)
                        return ak_err_oom(err);
        }
        if (o->env) {
                char **env = strv_dup(o->env);
                if (!env)
                        return ak_err_oom(err);
                /* the mode's variables (compat_apply) come first: the caller's win */
                for (char **e = st->env; e && *e; e++)
                        if (!env_has_key(env, *e) && strv_push(&env, *e) < 0) {
                                strv_free(env);
                                return ak_err_oom(err);
                        }
                strv_free(st->env);
                st->env = env;
        }
        if (o->commands) {
                if ((o->commands->allow && !(st->commands.allow = strv_dup(o->commands->allow))) ||
                    (o->commands->block && !(st->commands.block = strv_dup(o->commands->block))))
                        return ak_err_oom(err);
                st->commands.allowlist_only = o->commands->allowlist_only;
        }
        if (o->init_script && state_set_str(&st->init_script, o->init_script) < 0)
                return ak_err_oom(err);
        if (o->seccomp && state_set_str(&st->seccomp, o->seccomp) < 0)
                return ak_err_oom(err);
        if (o->volumes) {
                strv_free(st->volumes);
                if (!(st->volumes = strv_dup(o->volumes)))
                        return ak_err_oom(err);
        }
        if (o->n_files) {
                if (state_set_str(&st->files_dir, o->files_dir) < 0)
                        return ak_err_oom(err);
                st->files = calloc(o->n_files, sizeof(*st->files));
                if (!st->files)
                        return ak_err_oom(err);
                for (size_t i = 0; i < o->n_files; i++) {
                        st->files[i].source = strdup(o->files[i].source);
                        st->files[i].dest = strdup(o->files[i].dest);
                        st->files[i].mode = o->files[i].mode;
                        st->n_files = i + 1;
                        if (!st->files[i].source || !st->files[i].dest)
                                return ak_err_oom(err);
                }
        }
        if (o->n_ports) {
                st->ports = calloc(o->n_ports, sizeof(*st->ports));
                if (!st->ports)
                        return ak_err_oom(err);
                for (size_t i = 0; i < o->n_ports; i++) {
                        st->ports[i].host_port = o->ports[i].host_port;
                        st->ports[i].container_port = o->ports[i].container_port;
                        st->ports[i].udp = o->ports[i].udp;
                }
                st->n_ports = o->n_ports;
        }
        if (o->labels) {
                json_decref(st->labels);
                st->labels = json_deep_copy(o->labels);
                if (!st->labels)
                        return ak_err_oom(err);
        }
        if (o->ca_file && state_set_str(&st->network_ca_file, o->ca_file) < 0)
                return ak_err_oom(err);
        if ((r = secrets_to_state(o, st, err)) < 0)
                return r;
        if ((r = secrets_check_network(st, manager_net_mode(st), err)) < 0)
                return r;
        if (st->network_ca_file && strv_len(st->secret_bindings)) {
                /* checked now too (read again at every start): a bad one creates nothing */
                cleanup_free char *pem = NULL;
                if ((r = egress_ca_file_read(st->network_ca_file, &pem, err)) < 0)
                        return r;
        }
        *ret = TAKE_PTR(st);
        return 0;
}

int manager_create(struct manager *m, const struct create_opts *o, struct ak_err *err)
{
        cleanup_state struct sandbox_state *st = NULL;
        cleanup_strv char **added = NULL;
        const struct backend_ops *b;
        uint32_t cid;
        int lk, r;

        r = state_from_opts(o, &st, err);
        if (r >= 0 && st->work_dir)
                r = check_workspace(m, st->work_dir, err);
        if (r < 0)
                return r;
        /* The image first (a pull may take a while, outside every lock): a bad one leaves no
         * record behind. */
        if (store_exists(m->store, o->name))
                return ak_err_set(err, EEXIST, "sandbox '%s' already exists", o->name);
        r = manager_backend(st, &b, err);
        if (r >= 0)
                r = backend_prepare(b, st->image, err);
        if (r >= 0)
                r = secrets_store_inline(o, &added, err);
        if (r < 0) {
                secrets_unstore(added);
                return r;
        }
        lk = store_lock_global(m->store, err);
        if (lk < 0) {
                secrets_unstore(added);
                return lk;
        }
        if (store_exists(m->store, o->name)) {
                r = ak_err_set(err, EEXIST, "sandbox '%s' already exists", o->name);
        } else if ((r = store_next_cid(m->store, &cid)) < 0) {
                r = ak_err_errno(err, r, "reading existing sandboxes");
        } else {
                st->vsock_cid = cid;
                r = store_save(m->store, st, true, err);
                if (r >= 0)
                        store_cid_taken(m->store, cid);
        }
        store_unlock(lk);
        if (r < 0)
                secrets_unstore(added);
        if (r >= 0) {
                json_t *ev = json_pack("{s:s,s:s,s:s}", "name", st->name, "image", st->image,
                                       "backend", manager_backend_name(st));
                if (ev && json_object_size(st->labels))
                        json_object_set(ev, "labels", st->labels);
                /* which secrets it may use: names and hosts (the record's), never a value */
                if (ev && strv_len(st->secret_bindings))
                        json_object_set_new(ev, "secret_bindings",
                                            strv_json_array(st->secret_bindings));
                if (ev && strv_len(st->secret_files))
                        json_object_set_new(ev, "secret_files", strv_json_array(st->secret_files));
                (void)audit_log("sandbox_created", ev);
        }
        return r;
}

int lock_and_load(struct manager *m, const char *name, int *ret_lock, struct sandbox_state **ret,
                  struct ak_err *err)
{
        int r = validate_name(name, err);

        *ret_lock = -1;
        *ret = NULL;
        if (r < 0)
                return r;
        *ret_lock = store_lock(m->store, name, err);
        if (*ret_lock < 0)
                return *ret_lock;
        return store_load(m->store, name, ret, err);
}

int manager_touch(struct manager *m, const char *name)
{
        cleanup_state struct sandbox_state *st = NULL;
        cleanup_store_lock int lk = -1;
        char now[RFC3339_MAX];
        int r = lock_and_load(m, name, &lk, &st, NULL);

        if (r >= 0) {
                now_rfc3339(now);
                r = state_set_str(&st->last_activity_at, now);
                if (r >= 0)
                        r = store_save(m->store, st, false, NULL);
        }
        return r;
}

void manager_status(struct manager *m, const struct sandbox_state *st, struct backend_status *ret)
{
        cleanup_free char *run_dir = store_run_dir(m->store, st->name);
        struct sandbox_ref ref = {st->name, st->uuid, run_dir};
        const struct backend_ops *b;

        *ret = (struct backend_status){0};
        if (!run_dir || manager_backend(st, &b, NULL) < 0 || backend_status(b, &ref, ret) < 0)
                *ret = (struct backend_status){0};
        if (!ret->running)
                ret->paused = false;
}

bool manager_is_running(struct manager *m, const struct sandbox_state *st)
{
        struct backend_status bs;

        manager_status(m, st, &bs);
        return bs.running;
}

const char *manager_status_word(struct manager *m, const struct sandbox_state *st)
{
        struct backend_status bs;

        manager_status(m, st, &bs);
        return manager_status_word_as(st, &bs);
}

const char *manager_status_word_as(const struct sandbox_state *st, const struct backend_status *bs)
{
        if (bs->paused && !st->archived_at)
                return "paused";
        return state_status(st, bs->running);
}

/* ---- many at once (list) ----
 * Whether a sandbox runs is a few files read and checked (its runtime record, /proc, its
 * cgroup: ~30 us each), or an engine's answer: a list of thousands checks them on threads. */
#define RUNNING_THREADS_MAX 8
#define RUNNING_PER_THREAD_MIN 64 /* fewer: not worth a thread */

struct running_job {
        struct manager *m;
        struct sandbox_state *const *items;
        struct backend_status *status;
        size_t n, stride, first;
};

static void *running_worker(void *arg)
{
        struct running_job *j = arg;

        dir_cache_begin(); /* within manager_status_many's */
        for (size_t i = j->first; i < j->n; i += j->stride)
                manager_status(j->m, j->items[i], &j->status[i]);
        dir_cache_end();
        return NULL;
}

void manager_status_many(struct manager *m, struct sandbox_state *const *items, size_t n,
                         struct backend_status *ret)
{
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        size_t t = MIN((size_t)(cpus > 0 ? cpus : 1), (size_t)RUNNING_THREADS_MAX);
        struct running_job jobs[RUNNING_THREADS_MAX];
        pthread_t tids[RUNNING_THREADS_MAX];
        bool started[RUNNING_THREADS_MAX] = {false};

        t = MIN(t, n / RUNNING_PER_THREAD_MIN);
        /* the directories every check opens below (the run directories' parent, /proc, the
         * cgroups' parent) are walked once for this list, not once per sandbox */
        dir_cache_begin();
        if (t < 2) {
                for (size_t i = 0; i < n; i++)
                        manager_status(m, items[i], &ret[i]);
                dir_cache_end();
                return;
        }
        for (size_t k = 0; k < t; k++) {
                jobs[k] = (struct running_job){m, items, ret, n, t, k};
                /* this thread takes the first share; one that cannot start, the caller */
                started[k] = k > 0 && pthread_create(&tids[k], NULL, running_worker, &jobs[k]) == 0;
        }
        for (size_t k = 0; k < t; k++)
                if (!started[k])
                        (void)running_worker(&jobs[k]);
        for (size_t k = 0; k < t; k++)
                if (started[k])
                        (void)pthread_join(tids[k], NULL);
        dir_cache_end();
}

void manager_notify(struct manager *m, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;

        if (!m->notify)
                return;
        va_start(ap, fmt);
        (void)vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        m->notify(m->notify_ctx, msg);
}

/* Runs sh -c script in the sandbox; *ret_code its status, ret_stderr (trimmed) what it said. */
static int run_script(int fd, const char *script, uint64_t timeout_ms, int *ret_code,
                      struct buf *ret_stderr, struct ak_err *err)
{
        char *argv[] = {"sh", "-c", (char *)script, NULL};
        struct agent_exec_opts x = {.argv = argv, .timeout_ms = timeout_ms};
        cleanup_buf struct buf out = BUF_INIT;
        struct agent_exit ex = {0};
        bool truncated = false;
        int r =
            agent_exec_capture(fd, &x, START_OUTPUT_MAX, &out, ret_stderr, &truncated, &ex, err);

        if (r < 0)
                return r;
        while (ret_stderr->len && (ret_stderr->data[ret_stderr->len - 1] == '\n' ||
                                   ret_stderr->data[ret_stderr->len - 1] == ' '))
                ret_stderr->data[--ret_stderr->len] = '\0';
        *ret_code = ex.code;
        return 0;
}

/* After every start, in the seed's order: files from agentkernel.toml, the agent's CLI (only
 * warned about when it cannot be installed), the init script (its failure fails the start). */
static int start_work(struct manager *m, const struct backend_ops *b, const struct sandbox_ref *ref,
                      const struct sandbox_state *st, const struct start_plan *plan,
                      struct ak_err *err)
{
        const struct coding_agent *agent = coding_agent_find(st->agent);
        json_t *grants = plan->secret_grants;
        int fd, r, code;

        /* a backend that took bindings but did not hand them to the proxy: the placeholders
         * would reach nobody who replaces them (and the trust variables name no file) */
        if (json_array_size(grants) && !plan->proxy_ca)
                return ak_err_set(err, ENOTSUP,
                                  "the %s backend did not hand the sandbox's secrets to the "
                                  "egress proxy",
                                  b->name);
        /* first: what runs next (the agent's CLI install, the init script) may use the proxy */
        if ((r = write_proxy_trust(m, b, ref, st, plan->proxy_ca, err)) < 0)
                return r;
        for (size_t i = 0; i < st->n_files; i++) {
                /* resolved again at every start: the sandbox may have replaced the source (in
                 * its workspace) since the config was read */
                cleanup_buf struct buf data = BUF_INIT;
                r = config_read_source(st->files_dir, st->files[i].source, &data, err);
                if (r < 0)
                        return r;
                fd = backend_connect(b, ref, err);
                if (fd < 0)
                        return fd;
                r = agent_file_write(fd, st->files[i].dest, st->files[i].mode, true, true, -1,
                                     data.data ? data.data : "", data.len, NULL, err);
                close(fd);
                if (r < 0)
                        return ak_err_prefix(err, "copying '%s' to '%s'", st->files[i].source,
                                             st->files[i].dest);
        }
        if ((r = write_secret_files(b, ref, st, grants, err)) < 0)
                return r;
        if (agent) {
                /* The host image is the host's own, read-only: nothing to install into, only
                 * to check. Other images get the seed's npm install. */
                bool host = !st->image || streq(st->image, "host");
                cleanup_buf struct buf errout = BUF_INIT;
                char script[512];
                if (host)
                        (void)snprintf(script, sizeof(script), "command -v %s >/dev/null 2>&1",
                                       agent->binary);
                else
                        (void)snprintf(script, sizeof(script),
                                       "command -v %s >/dev/null 2>&1 && exit 0; "
                                       "command -v npm >/dev/null 2>&1 || { echo 'npm is not "
                                       "installed in the sandbox' >&2; exit 127; }; "
                                       "npm install -g %s",
                                       agent->binary, agent->npm_package);
                fd = backend_connect(b, ref, err);
                if (fd < 0)
                        return fd;
                r = run_script(fd, script, AGENT_INSTALL_TIMEOUT_MS, &code, &errout, err);
                close(fd);
                if (r >= 0 && code != 0 && host)
                        manager_notify(
                            m,
                            "note: the %s agent's CLI ('%s') is not installed on this host, "
                            "so sandboxes of the host image do not have it either (npm "
                            "install -g %s)",
                            agent->name, agent->binary, agent->npm_package);
                else if (r < 0 || code != 0)
                        manager_notify(m, "warning: could not install the %s agent's CLI (%s): %s",
                                       agent->name, agent->npm_package,
                                       r < 0         ? ak_err_msg(err)
                                       : errout.data ? errout.data
                                                     : "failed");
                if (err)
                        err->code = 0;
        }
        if (st->init_script) {
                cleanup_buf struct buf errout = BUF_INIT;
                fd = backend_connect(b, ref, err);
                if (fd < 0)
                        return fd;
                r = run_script(fd, st->init_script, 0, &code, &errout, err);
                close(fd);
                if (r < 0)
                        return ak_err_prefix(err, "failed to run init script");
                if (code != 0)
                        return ak_err_set(err, ECANCELED, "init script failed (exit code %d): %s",
                                          code, errout.data ? errout.data : "");
        }
        return 0;
}

int manager_start(struct manager *m, const char *name, struct ak_err *err)
{
        cleanup_state struct sandbox_state *st = NULL;
        cleanup_store_lock int lk = -1;
        struct start_plan plan;
        const struct backend_ops *b;
        char now[RFC3339_MAX], why[256];
        int r;

        r = lock_and_load(m, name, &lk, &st, err);
        if (r < 0)
                return r;
        if (st->archived_at)
                return ak_err_set(err, EPERM,
                                  "sandbox '%s' is archived; recover it before starting "
                                  "(agentkernel sandbox recover %s)",
                                  name, name);
        if (manager_is_running(m, st))
                return ak_err_set(err, EALREADY, "sandbox '%s' is already running", name);
        if ((r = secrets_migrate(m, st, err)) < 0)
                return r;
        r = manager_backend(st, &b, err);
        if (r < 0)
                return r;
        if (!backend_probe(b, why, sizeof(why)))
                return ak_err_set(err, ENOTSUP, "backend '%s' is not available: %s", b->name, why);
        /* a record refused here (its workspace, its volumes) is a failed start like any */
        r = plan_from_state(m, st, false, &plan, err);
        if (r >= 0) {
                r = backend_start(b, &plan.cfg, NULL, err);
                if (r >= 0) {
                        r = start_work(m, b, &plan.cfg.ref, st, &plan, err);
                        if (r < 0)
                                (void)backend_stop(b, &plan.cfg.ref, NULL);
                }
                start_plan_done(&plan);
        }
        if (r < 0) {
                ak_err_prefix(err, "cannot start sandbox '%s'", name);
                (void)audit_log("sandbox_error",
                                json_pack("{s:s,s:s}", "name", name, "error", ak_err_msg(err)));
                return r;
        }
        (void)audit_log("sandbox_started", json_pack("{s:s,s:s}", "name", name, "profile",
                                                     profile_get(st->profile)->name));
        now_rfc3339(now);
        if (state_set_str(&st->last_activity_at, now) >= 0)
                (void)store_save(m->store, st, false, NULL);
        return r;
}

/* A stopped proxy-mode sandbox leaves the proxy at once (it would notice its pidfd anyway). */
static void leave_proxy(const struct sandbox_state *st)
{
        if (st && manager_net_mode(st) == NET_MODE_PROXY)
                (void)egress_unregister(st->name, NULL);
}

/* A paused sandbox is resumed before it is stopped: its agent then hears the stop (and a v1
 * freezer's processes die only once thawed). */
static void thaw(const struct backend_ops *b, const struct sandbox_ref *ref)
{
        struct backend_status bs = {0};

        if (b->pause && backend_status(b, ref, &bs) >= 0 && bs.running && bs.paused)
                (void)backend_pause(b, ref, false, NULL);
}

int manager_pause(struct manager *m, const char *name, bool pause, struct ak_err *err)
{
        cleanup_state struct sandbox_state *st = NULL;
        cleanup_store_lock int lk = -1;
        cleanup_free char *run_dir = NULL;
        const struct backend_ops *b;
        struct backend_status bs;
        char now[RFC3339_MAX];
        int r;

        r = lock_and_load(m, name, &lk, &st, err);
        if (r < 0)
                return r;
        if ((r = manager_backend(st, &b, err)) < 0)
                return r;
        if (!b->pause)
                return backend_pause(b, NULL, pause, err); /* the backend's refusal */
        manager_status(m, st, &bs);
        if (!bs.running)
                return ak_err_set(err, ESRCH, "sandbox '%s' is not running", name);
        if (pause && bs.paused)
                return ak_err_set(err, EALREADY, "sandbox '%s' is already paused", name);
        if (!pause && !bs.paused)
                return ak_err_set(err, EALREADY, "sandbox '%s' is not paused", name);
        run_dir = store_run_dir(m->store, name);
        if (!run_dir)
                return ak_err_oom(err);
        {
                struct sandbox_ref ref = {st->name, st->uuid, run_dir};
                r = backend_pause(b, &ref, pause, err);
        }
        if (r < 0) {
                ak_err_prefix(err, "cannot %s sandbox '%s'", pause ? "pause" : "resume", name);
                (void)audit_log("sandbox_error",
                                json_pack("{s:s,s:s}", "name", name, "error", ak_err_msg(err)));
                return r;
        }
        (void)audit_log(pause ? "sandbox_paused" : "sandbox_resumed",
                        json_pack("{s:s}", "name", name));
        /* activity: a lifecycle policy's idle time counts from here */
        now_rfc3339(now);
        if (state_set_str(&st->last_activity_at, now) >= 0)
                (void)store_save(m->store, st, false, NULL);
        return 0;
}

int manager_stop(struct manager *m, const char *name, struct ak_err *err)
{
        cleanup_state struct sandbox_state *st = NULL;
        cleanup_store_lock int lk = -1;
        cleanup_free char *run_dir = NULL;
        int r;

        r = lock_and_load(m, name, &lk, &st, err);
        if (r >= 0) {
                struct sandbox_ref ref = {st->name, st->uuid, NULL};
                const struct backend_ops *b;
                run_dir = store_run_dir(m->store, name);
                ref.run_dir = run_dir;
                r = manager_backend(st, &b, err);
                if (r >= 0 && run_dir)
                        thaw(b, &ref);
                if (r >= 0)
                        r = run_dir ? backend_stop(b, &ref, err) : ak_err_oom(err);
                if (r < 0)
                        ak_err_prefix(err, "cannot stop sandbox '%s'", name);
                else
                        (void)audit_log("sandbox_stopped", json_pack("{s:s}", "name", name));
                leave_proxy(st);
        }
        return r;
}

int manager_remove(struct manager *m, const char *name, struct ak_err *err)
{
        cleanup_state struct sandbox_state *st = NULL;
        cleanup_free char *run_dir = NULL;
        struct ak_err load_err = {0};
        int lk, r;

        r = lock_and_load(m, name, &lk, &st, &load_err);
        if (lk < 0)
                return ak_err_set(err, load_err.code, "%s", ak_err_msg(&load_err));
        run_dir = store_run_dir(m->store, name);
        if (r == -ENOENT) {
                /* Nothing recorded; still clear a run directory a crash may have left. */
                if (run_dir && access(run_dir, F_OK) == 0) {
                        struct sandbox_ref ref = {name, NULL, run_dir};
                        (void)backend_stop(backend_default(), &ref, NULL);
                }
                store_unlock(lk);
                return ak_err_set(err, ENOENT, "sandbox '%s' not found", name);
        }
        {
                /* A corrupt record is still removable: its runtime files say what runs. */
                struct sandbox_ref ref = {name, st ? st->uuid : NULL, run_dir};
                const struct backend_ops *b = backend_default();
                r = st ? manager_backend(st, &b, err) : 0;
                if (r >= 0 && run_dir)
                        thaw(b, &ref);
                if (r >= 0)
                        r = run_dir ? backend_stop(b, &ref, err) : ak_err_oom(err);
                leave_proxy(st);
        }
        if (r < 0) {
                ak_err_prefix(err, "cannot remove sandbox '%s'", name);
                store_unlock(lk);
                return r;
        }
        r = store_delete(m->store, name, err);
        if (r < 0) {
                store_unlock(lk);
                return r;
        }
        store_unlock_remove(m->store, name, lk);
        (void)audit_log("sandbox_removed", json_pack("{s:s}", "name", name));
        return 0;
}

int manager_connect(struct manager *m, const char *name, struct sandbox_state **ret_state,
                    struct ak_err *err)
{
        cleanup_state struct sandbox_state *st = NULL;
        cleanup_free char *run_dir = NULL;
        int r, fd;

        struct backend_status bs;

        r = store_load(m->store, name, &st, err);
        if (r < 0)
                return r;
        manager_status(m, st, &bs);
        if (!bs.running)
                return ak_err_set(
                    err, ESRCH, "sandbox '%s' is not running; start it with: agentkernel start %s",
                    name, name);
        /* its agent is stopped too: a connection would wait for ever */
        if (bs.paused)
                return ak_err_set(err, EBUSY,
                                  "sandbox '%s' is paused; resume it with: agentkernel resume %s",
                                  name, name);
        run_dir = store_run_dir(m->store, name);
        {
                struct sandbox_ref ref = {st->name, st->uuid, run_dir};
                const struct backend_ops *b;
                fd = manager_backend(st, &b, err);
                if (fd >= 0)
                        fd = run_dir ? backend_connect(b, &ref, err) : ak_err_oom(err);
        }
        if (fd < 0)
                return fd;
        if (ret_state)
                *ret_state = TAKE_PTR(st);
        return fd;
}

int manager_list(struct manager *m, void (*warn)(void *ctx, const char *file, const char *msg),
                 void *ctx, struct state_list *ret)
{
        return store_list(m->store, warn, ctx, ret);
}

/* A run that needs start-time work (files, init script) takes several requests, which a
 * one-request ephemeral sandbox cannot serve: it gets a short-lived record instead (with a TTL,
 * so gc finds it if this process is killed before removing it). */
static int run_via_record(struct manager *m, const struct create_opts *o,
                          const struct agent_exec_opts *x, const struct agent_io *io,
                          struct agent_exit *ret, struct ak_err *err)
{
        struct create_opts eo = *o;
        struct ak_err ignore = {0};
        int r;

        eo.has_ttl = true;
        eo.ttl_seconds = RUN_RECORD_TTL;
        r = manager_create(m, &eo, err);
        if (r < 0)
                return r;
        r = manager_start(m, eo.name, err);
        if (r >= 0)
                r = manager_exec(m, eo.name, x, io, ret, err);
        (void)manager_remove(m, eo.name, &ignore);
        return r;
}

int manager_run_ephemeral(struct manager *m, const struct create_opts *o,
                          const struct agent_exec_opts *x, const struct agent_io *io,
                          struct agent_exit *ret, struct ak_err *err)
{
        struct create_opts eo = *o;
        cleanup_state struct sandbox_state *st = NULL;
        struct start_plan plan;
        struct backend_session sess = {.chan_fd = -1};
        const struct backend_ops *b;
        struct agent_exec_opts xx = *x;
        char name[32], hex[9], why[256];
        int r;

        random_hex(hex, 4);
        (void)snprintf(name, sizeof(name), "run-%s", hex);
        eo.name = name;
        /* a coding agent's keys are bound at start, and its trust written after: a record's
         * start does both */
        if (o->init_script || o->n_files || strv_len(o->secrets) || strv_len(o->secret_files) ||
            coding_agent_find(o->agent))
                return run_via_record(m, &eo, x, io, ret, err);
        r = state_from_opts(&eo, &st, err);
        if (r < 0)
                return r;
        xx.policy = o->commands && !cmd_policy_empty(o->commands) ? o->commands : NULL;
        r = xx.policy ? manager_check_command(name, xx.policy, x->argv, err) : 0;
        if (r >= 0)
                r = manager_backend(st, &b, err);
        if (r >= 0 && !backend_probe(b, why, sizeof(why)))
                r = ak_err_set(err, ENOTSUP, "backend '%s' is not available: %s", b->name, why);
        if (r >= 0)
                r = plan_from_state(m, st, true, &plan, err);
        if (r < 0)
                return r;
        plan.cfg.pooled = o->fast;
        sess.detach = o->detach_teardown;
        r = backend_start(b, &plan.cfg, &sess, err);
        start_plan_done(&plan);
        if (r < 0)
                return r;
        r = agent_exec(sess.chan_fd, &xx, io, ret, err);
        /* Recorded before the teardown: a one-shot sandbox's PID 1 is already exiting, and its
         * teardown (on another CPU) overlaps this write instead of following it. */
        if (r == -EPERM)
                (void)audit_log("policy_violation",
                                json_pack("{s:s,s:s,s:s}", "sandbox", name, "policy", "commands",
                                          "details", ak_err_msg(err)));
        else
                (void)audit_log("command_executed",
                                json_pack("{s:s,s:o,s:o}", "sandbox", name, "command",
                                          strv_json_array(x->argv), "exit_code",
                                          r >= 0 ? json_integer(ret->code) : json_null()));
        (void)backend_finish(b, &sess);
        return r;
}

int manager_stats(struct manager *m, const struct sandbox_state *st, struct backend_stats *ret)
{
        cleanup_free char *run_dir = store_run_dir(m->store, st->name);
        struct sandbox_ref ref = {st->name, st->uuid, run_dir};
        const struct backend_ops *b;

        if (!run_dir)
                return -ENOMEM;
        if (manager_backend(st, &b, NULL) < 0)
                return -EOPNOTSUPP;
        return backend_stats(b, &ref, ret);
}

void manager_sweep(struct manager *m)
{
        const struct backend_ops *const *all = backend_all();
        cleanup_free char *dir = store_run_dir(m->store, EPHEMERAL_RUN_DIR);

        for (size_t i = 0; dir && all[i]; i++)
                backend_sweep(all[i], dir);
}

json_t *manager_pool_list(struct manager *m)
{
        const struct backend_ops *const *all = backend_all();
        cleanup_free char *dir = store_run_dir(m->store, EPHEMERAL_RUN_DIR);
        json_t *out = json_array();

        for (size_t i = 0; out && dir && all[i]; i++) {
                json_t *pools = json_array(), *p;
                size_t k;
                if (!pools)
                        break;
                backend_pool_list(all[i], dir, pools);
                json_array_foreach (pools, k, p) {
                        json_object_set_new(p, "backend", json_string(all[i]->name));
                        json_array_append(out, p);
                }
                json_decref(pools);
        }
        return out;
}

int manager_pool_clear(struct manager *m, const char *backend,
                       void (*done)(void *ctx, const char *backend, unsigned removed), void *ctx,
                       struct ak_err *err)
{
        const struct backend_ops *const *all = backend_all();
        const struct backend_ops *b = backend ? backend_find(backend) : NULL;
        cleanup_free char *dir = store_run_dir(m->store, EPHEMERAL_RUN_DIR);

        if (backend && (!b || !backend_keeps_pool(b)))
                return ak_err_set(err, EINVAL, "backend '%s' keeps no pool", backend);
        if (!dir)
                return ak_err_oom(err);
        for (size_t i = 0; all[i]; i++) {
                struct ak_err ignore = {0};
                unsigned n = 0;
                int r;
                if ((b && all[i] != b) || !backend_keeps_pool(all[i]))
                        continue;
                r = backend_pool_clear(all[i], dir, &n, b ? err : &ignore);
                if (r < 0 && b)
                        return r; /* asked for this one: its absence is an error */
                if (r >= 0 && done)
                        done(ctx, all[i]->name, n);
        }
        return 0;
}
