// SPDX-License-Identifier: Apache-2.0
/*
 * Mount plans: the flat list of operations a sandbox's root is built from, owning its strings.
 * Built by the parent (it allocates: rootfs.c says what goes in); the child only reads it.
 */
#include "mount-plan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "shared/buf.h"

void mount_plan_done(struct mount_plan *p)
{
        str_pool_done(&p->strings);
        free(p->ops);
        memset(p, 0, sizeof(*p));
}

static const char *plan_keep(struct mount_plan *p, const char *s, size_t len)
{
        return s ? str_pool_add(&p->strings, s, len) : NULL;
}

static int plan_push(struct mount_plan *p, const struct mount_op *op)
{
        struct mount_op *n = array_reserve_one(p->ops, p->n, &p->cap, sizeof(*n), 32);

        if (!n)
                return -ENOMEM;
        p->ops = n;
        p->ops[p->n++] = *op;
        return 0;
}

int mount_plan_add(struct mount_plan *p, enum mount_op_type type, const char *src, const char *dst,
                   const char *data, unsigned mode, unsigned flags)
{
        struct mount_op op = {.type = type, .mode = mode, .flags = flags};

        if (!dst || dst[0] != '/')
                return -EINVAL;
        op.dst = plan_keep(p, dst, strlen(dst));
        op.src = src ? plan_keep(p, src, strlen(src)) : NULL;
        op.data = data ? plan_keep(p, data, strlen(data)) : NULL;
        if (!op.dst || (src && !op.src) || (data && !op.data))
                return -ENOMEM;
        return plan_push(p, &op);
}

int mount_plan_add_bytes(struct mount_plan *p, const char *dst, const char *data, size_t len,
                         unsigned mode)
{
        struct mount_op op = {.type = MOP_FILE, .mode = mode, .len = len};

        op.dst = plan_keep(p, dst, strlen(dst));
        op.src = plan_keep(p, data, len);
        if (!op.dst || !op.src)
                return -ENOMEM;
        return plan_push(p, &op);
}

int mount_plan_add_file(struct mount_plan *p, const char *dst, const char *content, unsigned mode)
{
        return mount_plan_add_bytes(p, dst, content, strlen(content), mode);
}
