// SPDX-License-Identifier: Apache-2.0
/*
 * Backend registry and the only place that calls through a backend_ops table. Keeps argument
 * checks and the "optional op" rule in one place. The registry holds what the program's main()
 * registered (backend/backends.h): the backends are above the core and it names none of them.
 */
#include "backend.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shared/macro.h"
#include "shared/random-util.h"

/* This program's backends, in detection order: set once by its main() (backend/backends.h),
 * since the backends are a layer above this one and the core names none of them. */
static const struct backend_ops *const *registry;

void backend_registry_set(const struct backend_ops *const *all)
{
        registry = all;
}

/* A program that uses a backend before registering them is wrong, not unlucky. */
static const struct backend_ops *const *registered(void)
{
        if (!registry)
                abort();
        return registry;
}

const struct backend_ops *const *backend_all(void)
{
        return registered();
}

const struct backend_ops *backend_find(const char *name)
{
        const struct backend_ops *const *all = registered();

        if (!name)
                return NULL;
        for (size_t i = 0; all[i]; i++)
                if (streq(all[i]->name, name))
                        return all[i];
        return NULL;
}

const struct backend_ops *backend_default(void)
{
        /* Firecracker, Docker and Podman join this order as they land (docs/backends.md). */
        return registered()[0];
}

int backend_probe(const struct backend_ops *b, char *why, size_t why_len)
{
        if (!b->probe)
                return 1;
        return b->probe(why, why_len);
}

int backend_start(const struct backend_ops *b, const struct backend_config *cfg,
                  struct backend_session *ret_session, struct ak_err *err)
{
        if (!cfg->ref.name || !cfg->ref.uuid || !cfg->profile)
                return ak_err_set(err, EINVAL, "incomplete backend configuration");
        if (cfg->ephemeral && (!ret_session || !b->finish))
                return ak_err_set(err, EOPNOTSUPP, "backend '%s' cannot run ephemeral sandboxes",
                                  b->name);
        if (!cfg->ref.run_dir)
                return ak_err_set(err, EINVAL, "a runtime directory is required");
        return b->start(cfg, ret_session, err);
}

int backend_finish(const struct backend_ops *b, struct backend_session *s)
{
        /* the channel first: the agent sees its caller gone before the sandbox goes */
        if (s->chan_fd >= 0) {
                close(s->chan_fd);
                s->chan_fd = -1;
        }
        return b->finish ? b->finish(s) : -EOPNOTSUPP;
}

int backend_stop(const struct backend_ops *b, const struct sandbox_ref *ref, struct ak_err *err)
{
        return b->stop(ref, err);
}

int backend_cleanup(const struct backend_ops *b, const struct sandbox_ref *ref, struct ak_err *err)
{
        return b->cleanup ? b->cleanup(ref, err) : 0;
}

int backend_status(const struct backend_ops *b, const struct sandbox_ref *ref,
                   struct backend_status *ret)
{
        memset(ret, 0, sizeof(*ret));
        return b->status(ref, ret);
}

int backend_connect(const struct backend_ops *b, const struct sandbox_ref *ref, struct ak_err *err)
{
        return b->connect(ref, err);
}

int backend_resize(const struct backend_ops *b, const struct sandbox_ref *ref,
                   const struct backend_config *cfg, struct ak_err *err)
{
        if (!b->resize)
                return ak_err_set(err, EOPNOTSUPP, "backend '%s' cannot resize in place", b->name);
        return b->resize(ref, cfg, err);
}

int backend_pause(const struct backend_ops *b, const struct sandbox_ref *ref, bool pause,
                  struct ak_err *err)
{
        if (!b->pause)
                return ak_err_set(err, ENOTSUP, "the %s backend cannot %s sandboxes", b->name,
                                  pause ? "pause" : "resume");
        return b->pause(ref, pause, err);
}

void backend_sweep(const struct backend_ops *b, const char *ephemeral_dir)
{
        if (b->sweep)
                b->sweep(ephemeral_dir);
}

void backend_describe(const struct backend_ops *b, const struct sandbox_ref *ref, bool running,
                      json_t *info)
{
        if (b->describe && info)
                b->describe(ref, running, info);
}

int backend_stats(const struct backend_ops *b, const struct sandbox_ref *ref,
                  struct backend_stats *ret)
{
        return b->stats ? b->stats(ref, ret) : -EOPNOTSUPP;
}

bool backend_keeps_pool(const struct backend_ops *b)
{
        return b->pool_clear != NULL;
}

void backend_pool_list(const struct backend_ops *b, const char *ephemeral_dir, json_t *pools)
{
        if (b->pool_list)
                b->pool_list(ephemeral_dir, pools);
}

int backend_pool_clear(const struct backend_ops *b, const char *ephemeral_dir,
                       unsigned *ret_removed, struct ak_err *err)
{
        *ret_removed = 0;
        if (!b->pool_clear)
                return ak_err_set(err, EOPNOTSUPP, "backend '%s' keeps no pool", b->name);
        return b->pool_clear(ephemeral_dir, ret_removed, err);
}

int backend_prepare(const struct backend_ops *b, const char *image, struct ak_err *err)
{
        return b->prepare && image ? b->prepare(image, err) : 0;
}

int backend_id_base(const struct backend_config *cfg, uint32_t *ret, struct ak_err *err)
{
        uint32_t slot = cfg->id_slot;

        if (cfg->ephemeral || cfg->pool_entry) {
                uint32_t rnd;
                random_bytes(&rnd, sizeof(rnd));
                slot = EPHEMERAL_SLOT_BASE + rnd % (ID_SLOTS - EPHEMERAL_SLOT_BASE);
        } else if (slot >= EPHEMERAL_SLOT_BASE) {
                return ak_err_set(err, ERANGE,
                                  "too many sandboxes: no free id range for '%s' (remove some)",
                                  cfg->ref.name);
        }
        *ret = ID_RANGE_BASE + slot * ID_RANGE_SIZE;
        return 0;
}
