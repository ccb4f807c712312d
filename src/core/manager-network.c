// SPDX-License-Identifier: Apache-2.0
/*
 * The manager's side of a sandbox's egress (docs/network.md): its policy, read and replaced
 * (recorded, and handed to the user's proxy while it runs), and its decision log. Front-ends
 * (`network policy`, `network log`, the API's /network routes) come through here; they never
 * talk to the proxy or name a run directory themselves.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/audit.h"
#include "core/egress.h"
#include "core/manager-private.h"
#include "core/manager.h"
#include "core/private-dir.h"
#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/net-policy.h"

static json_t *builtin_policy(struct ak_err *err)
{
        cleanup_net_policy struct net_policy *p = NULL;
        json_t *j;

        if (net_policy_builtin(&p, err) < 0)
                return NULL;
        j = net_policy_to_json(p);
        if (!j)
                ak_err_oom(err);
        return j;
}

int manager_network_policy(struct manager *m, const char *name, json_t **ret, struct ak_err *err)
{
        cleanup_state struct sandbox_state *st = NULL;
        json_t *p;
        int r = manager_get(m, name, &st, err);

        if (r < 0)
                return r;
        if (manager_net_mode(st) == NET_MODE_PROXY && manager_is_running(m, st)) {
                struct ak_err e = {0};
                r = egress_get_policy(name, ret, &e);
                if (r >= 0)
                        return 0;
                if (r != -ESRCH)
                        return ak_err_set(err, e.code, "%s", ak_err_msg(&e));
        }
        p = st->network_policy ? json_incref(st->network_policy) : builtin_policy(err);
        if (!p)
                return -ENOMEM;
        *ret = p;
        return 0;
}

static int edit_policy(struct sandbox_state *st, void *ctx, struct ak_err *err)
{
        json_t *copy = json_deep_copy(ctx);

        if (manager_net_mode(st) != NET_MODE_PROXY) {
                json_decref(copy);
                return ak_err_set(err, EINVAL,
                                  "sandbox '%s' has network mode '%s': a policy applies only in "
                                  "proxy mode (recreate it with --network proxy)",
                                  st->name, net_mode_name(manager_net_mode(st)));
        }
        if (!copy)
                return ak_err_oom(err);
        json_decref(st->network_policy);
        st->network_policy = copy;
        return 0;
}

int manager_network_set_policy(struct manager *m, const char *name, const json_t *policy,
                               struct ak_err *err)
{
        cleanup_state struct sandbox_state *st = NULL;
        int r = egress_policy_check(policy, err);

        if (r < 0)
                return r;
        r = manager_update(m, name, edit_policy, (void *)policy, err);
        if (r < 0)
                return r;
        /* recorded first: a start racing with us registers the new policy either way */
        if (manager_get(m, name, &st, NULL) >= 0 && manager_is_running(m, st)) {
                r = egress_set_policy(name, policy, err);
                if (r == -ESRCH)
                        r = 0; /* no proxy: nothing runs with the old policy */
                if (r < 0)
                        return ak_err_prefix(err, "the policy is recorded but not applied yet");
        }
        (void)audit_log("network_policy_set",
                        json_pack("{s:s,s:I}", "name", name, "rules",
                                  (json_int_t)json_array_size(json_object_get(policy, "rules"))));
        return 0;
}

int manager_network_log_open(struct manager *m, const char *name, int *ret_fd, struct ak_err *err)
{
        cleanup_state struct sandbox_state *st = NULL;
        cleanup_free char *run_dir = NULL, *path = NULL;
        int r = manager_get(m, name, &st, err), fd;

        if (r < 0)
                return r;
        run_dir = store_run_dir(m->store, name);
        if (!run_dir || asprintf(&path, "%s/%s", run_dir, EGRESS_LOG_FILE) < 0)
                return ak_err_oom(err);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0 && errno != ENOENT)
                return ak_err_errno(err, errno, "open '%s'", path);
        if (fd >= 0 && (r = private_file_check(fd, path, err)) < 0) {
                close(fd);
                return r;
        }
        *ret_fd = fd;
        return 0;
}

int manager_network_stats(struct manager *m, json_t **ret, struct ak_err *err)
{
        (void)m; /* the proxy is this user's and data directory's, as the manager is */
        return egress_stats(ret, err);
}
