// SPDX-License-Identifier: Apache-2.0
/* NULL-terminated string vectors. A failed allocation leaves the caller's vector as it was. */
#include "strv.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

size_t strv_len(char *const *v)
{
        size_t n = 0;
        while (v && v[n])
                n++;
        return n;
}

void strv_free(char **v)
{
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

char **strv_dup(char *const *v)
{
        size_t n = strv_len(v);
        char **out;

        if (!v)
                return NULL;
        out = calloc(n + 1, sizeof(char *));
        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                out[i] = strdup(v[i]);
                if (!out[i]) {
                        strv_free(out);
                        return NULL;
                }
        }
        return out;
}

int strv_consume(char ***v, char *s)
{
        size_t n = strv_len(*v);
        char **nv;

        if (!s)
                return -ENOMEM;
        nv = realloc(*v, (n + 2) * sizeof(char *));
        if (!nv) {
                free(s);
                return -ENOMEM;
        }
        nv[n] = s;
        nv[n + 1] = NULL;
        *v = nv;
        return 0;
}

int strv_push(char ***v, const char *s)
{
        return strv_consume(v, strdup(s));
}

static bool env_has_key(char *const *env, const char *kv, size_t klen)
{
        for (char *const *e = env; e && *e; e++)
                if (strncmp(*e, kv, klen) == 0 && (*e)[klen] == '=')
                        return true;
        return false;
}

char **strv_env_merge(char *const *base, char *const *over)
{
        size_t k = 0;
        char **out = calloc(strv_len(base) + strv_len(over) + 1, sizeof(char *));

        if (!out)
                return NULL;
        for (char *const *e = base; e && *e; e++) {
                const char *eq = strchr(*e, '=');
                if (eq && !env_has_key(over, *e, (size_t)(eq - *e)) && !(out[k++] = strdup(*e)))
                        goto fail;
        }
        for (char *const *e = over; e && *e; e++)
                if (!(out[k++] = strdup(*e)))
                        goto fail;
        return out;
fail:
        strv_free(out);
        return NULL;
}
