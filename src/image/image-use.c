// SPDX-License-Identifier: Apache-2.0
/* Which images sandboxes use, and removal with that check (image-use.h). */
#include "image-use.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "image/ref.h"
#include "shared/cleanup.h"
#include "shared/macro.h"
#include "shared/strv.h"

char **image_ids_in_use(struct image_store *s, struct manager *m, char ***ret_users)
{
        cleanup_state_list struct state_list l = {0};
        cleanup_strv char **ids = NULL;
        cleanup_strv char **users = NULL;
        size_t n = 0;

        if (!m)
                return NULL;
        if (manager_list(m, NULL, NULL, &l) < 0 || !(ids = calloc(l.n + 1, sizeof(*ids))) ||
            !(users = calloc(l.n + 1, sizeof(*users))))
                return NULL;
        for (size_t i = 0; i < l.n; i++) {
                struct image_ref ref;
                struct image_record rec;
                const char *img = l.items[i]->image;
                if (!img || streq(img, "host") || image_ref_parse(img, &ref, NULL) < 0)
                        continue;
                if (image_store_resolve(s, &ref, &rec, NULL) == 0) {
                        ids[n] = TAKE_PTR(rec.id);
                        users[n++] = strdup(l.items[i]->name);
                        image_record_done(&rec);
                }
                image_ref_done(&ref);
        }
        if (ret_users)
                *ret_users = TAKE_PTR(users);
        return TAKE_PTR(ids);
}

int image_remove_checked(struct image_store *s, char *const *in_use, char *const *users,
                         const char *name, bool force, uint64_t *ret_freed, struct ak_err *err)
{
        struct image_ref ref;
        struct image_record rec;
        const char *user = NULL;
        uint64_t freed = 0;
        int r;

        if (!force && image_ref_parse(name, &ref, NULL) == 0) {
                if (image_store_resolve(s, &ref, &rec, NULL) == 0) {
                        for (size_t k = 0; in_use && in_use[k]; k++)
                                if (streq(in_use[k], rec.id))
                                        user = users ? users[k] : "?";
                        image_record_done(&rec);
                }
                image_ref_done(&ref);
        }
        if (user)
                return ak_err_set(err, EBUSY,
                                  "image '%s' is used by sandbox '%s'; remove the sandbox first, "
                                  "or use --force",
                                  name, user);
        if ((r = image_store_remove(s, name, err)) < 0)
                return r;
        /* free the space now (what sandboxes use stays) */
        if ((r = image_store_prune(s, in_use, &freed, err)) < 0)
                return r;
        if (ret_freed)
                *ret_freed = freed;
        return 0;
}
