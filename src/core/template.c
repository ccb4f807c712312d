// SPDX-License-Identifier: Apache-2.0
/* Templates (core/template.h): resolution, the user's store in <data dir>/templates. */
#include "template.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/paths.h"
#include "core/private-dir.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/macro.h"
#include "shared/strv.h"

#define STORE_DIR "templates"

void template_done(struct template *t)
{
        free(t->name);
        free(t->text);
        config_free(t->cfg);
        *t = (struct template){0};
}

const char *template_source_name(enum template_source s)
{
        switch (s) {
        case TEMPLATE_BUILTIN:
                return "built-in";
        case TEMPLATE_LOCAL:
                return "local";
        case TEMPLATE_FILE:
        default:
                return "file";
        }
}

static bool name_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_' || c == '.';
}

int template_name_check(const char *name, struct ak_err *err)
{
        size_t n = name ? strlen(name) : 0;

        if (n == 0 || n > TEMPLATE_NAME_MAX)
                return ak_err_set(err, EINVAL, "template name: must be 1 to %d characters",
                                  TEMPLATE_NAME_MAX);
        if (!name_char(name[0]) || name[0] == '-' || name[0] == '.' || name[0] == '_')
                return ak_err_set(err, EINVAL,
                                  "template name '%.64s': must start with a letter or digit", name);
        for (size_t i = 0; i < n; i++)
                if (!name_char(name[i]))
                        return ak_err_set(err, EINVAL,
                                          "template name '%.64s': only letters, digits and -_. "
                                          "are allowed",
                                          name);
        if (n >= 5 && streq(name + n - 5, ".toml"))
                return ak_err_set(err, EINVAL, "template name '%.64s': give it without .toml",
                                  name);
        return 0;
}

/* Parses text as a template: an agentkernel.toml without [[files]]. */
static int parse(const char *text, size_t len, const char *what, struct config **ret,
                 struct ak_err *err)
{
        cleanup_config struct config *c = NULL;
        int r;

        if (len > TEMPLATE_MAX_BYTES)
                return ak_err_set(err, EFBIG, "template %s: larger than %u bytes", what,
                                  TEMPLATE_MAX_BYTES);
        if (memchr(text, '\0', len))
                return ak_err_set(err, EINVAL, "template %s: not a text file", what);
        r = config_parse(text, len, NULL, &c, err);
        if (r < 0)
                return ak_err_prefix(err, "template %s", what);
        if (c->n_files)
                return ak_err_set(err, EINVAL,
                                  "template %s: [[files]] is not allowed in a template (it has no "
                                  "directory for their sources)",
                                  what);
        *ret = TAKE_PTR(c);
        return 0;
}

static const struct template_builtin *builtin(const char *name)
{
        for (size_t i = 0; i < template_builtins_n; i++)
                if (streq(template_builtins[i].name, name))
                        return &template_builtins[i];
        return NULL;
}

/* The store's directory (private; created with PRIVATE_CREATE), or -ENOENT without a message
 * when it does not exist and create is false. */
static int store_open(bool create, char **ret_path, struct ak_err *err)
{
        cleanup_free char *data = NULL;
        cleanup_close int dfd = paths_data_dir_open(&data, err);
        int fd;

        if (dfd < 0)
                return dfd;
        if (!create && lexists_at(dfd, STORE_DIR) < 0 && errno == ENOENT)
                return -ENOENT;
        fd = private_dir_open_at(dfd, data, STORE_DIR, create ? PRIVATE_CREATE : 0, err);
        if (fd >= 0 && ret_path && asprintf(ret_path, "%s/" STORE_DIR, data) < 0) {
                close(fd);
                return ak_err_oom(err);
        }
        return fd;
}

/* Reads the local template name from the open store: -ENOENT (no message) when missing. */
static int read_local(int dfd, const char *name, struct template *t, struct ak_err *err)
{
        cleanup_free char *file = NULL;
        cleanup_buf struct buf b = BUF_INIT;
        struct ak_err e = {0};
        int r;

        if (asprintf(&file, "%s.toml", name) < 0)
                return ak_err_oom(err);
        r = private_file_read_at(dfd, file, &b, TEMPLATE_MAX_BYTES, &e);
        if (r == -ENOENT)
                return -ENOENT;
        if (r == -EFBIG)
                return ak_err_set(err, EFBIG, "template '%s': larger than %u bytes", name,
                                  TEMPLATE_MAX_BYTES);
        if (r < 0)
                return ak_err_set(err, -r, "template '%s': %s", name, ak_err_msg(&e));
        if ((r = parse(b.data ? b.data : "", b.len, name, &t->cfg, err)) < 0)
                return r;
        t->text = strndup(b.data ? b.data : "", b.len);
        t->name = strdup(name);
        t->source = TEMPLATE_LOCAL;
        return t->text && t->name ? 0 : ak_err_oom(err);
}

static int from_builtin(const struct template_builtin *bi, struct template *t, struct ak_err *err)
{
        int r = parse(bi->text, strlen(bi->text), bi->name, &t->cfg, err);

        if (r < 0)
                return r;
        t->text = strdup(bi->text);
        t->name = strdup(bi->name);
        t->source = TEMPLATE_BUILTIN;
        return t->text && t->name ? 0 : ak_err_oom(err);
}

int template_resolve(const char *spec, struct template *ret, struct ak_err *err)
{
        cleanup_template struct template t = {0};
        const struct template_builtin *bi;
        size_t n = spec ? strlen(spec) : 0;
        int r;

        if (n == 0)
                return ak_err_set(err, EINVAL, "template: no name given");
        if (strncmp(spec, "github:", 7) == 0)
                return ak_err_set(err, ENOTSUP,
                                  "template '%.128s': a github: template is fetched by 'template "
                                  "add %.128s' (stored under its file's name), then used by name",
                                  spec, spec);
        if (strchr(spec, '/') || (n > 5 && streq(spec + n - 5, ".toml"))) {
                /* a file: the trusted reader, as any agentkernel.toml */
                if ((r = config_load(spec, &t.cfg, err)) < 0)
                        return r;
                if (t.cfg->n_files)
                        return ak_err_set(err, EINVAL,
                                          "template '%.128s': [[files]] is not allowed in a "
                                          "template",
                                          spec);
                t.name = strdup(spec);
                t.text = NULL;
                t.source = TEMPLATE_FILE;
                if (!t.name)
                        return ak_err_oom(err);
                *ret = TAKE_STRUCT(t);
                return 0;
        }
        if ((r = template_name_check(spec, err)) < 0)
                return r;
        {
                struct ak_err e = {0};
                cleanup_close int dfd = store_open(false, NULL, &e);
                if (dfd < 0 && dfd != -ENOENT)
                        return ak_err_set(err, -dfd, "%s", ak_err_msg(&e));
                if (dfd >= 0) {
                        r = read_local(dfd, spec, &t, err);
                        if (r >= 0) {
                                *ret = TAKE_STRUCT(t);
                                return 0;
                        }
                        if (r != -ENOENT)
                                return r;
                }
        }
        bi = builtin(spec);
        if (!bi)
                return ak_err_set(err, ENOENT,
                                  "template '%.64s' not found (checked local, built-in, and file "
                                  "paths; 'template list' shows them)",
                                  spec);
        if ((r = from_builtin(bi, &t, err)) < 0)
                return r;
        *ret = TAKE_STRUCT(t);
        return 0;
}

void template_list_free(struct template *t, size_t n)
{
        for (size_t i = 0; t && i < n; i++)
                template_done(&t[i]);
        free(t);
}

static int by_name(const void *a, const void *b)
{
        return strcmp(((const struct template *)a)->name, ((const struct template *)b)->name);
}

int template_list(struct template **ret, size_t *ret_n, char ***ret_warnings, struct ak_err *err)
{
        size_t cap = template_builtins_n + TEMPLATES_MAX, n = 0;
        struct template *t = calloc(cap, sizeof(*t));
        char **warnings = calloc(1, sizeof(char *));
        struct ak_err e = {0};
        int dfd, r;

        if (!t || !warnings) {
                free(t);
                free(warnings);
                return ak_err_oom(err);
        }
        for (size_t i = 0; i < template_builtins_n; i++) {
                if ((r = from_builtin(&template_builtins[i], &t[n], err)) < 0)
                        goto fail;
                n++;
        }
        dfd = store_open(false, NULL, &e);
        if (dfd < 0 && dfd != -ENOENT) {
                r = ak_err_set(err, -dfd, "%s", ak_err_msg(&e));
                goto fail;
        }
        if (dfd >= 0) {
                int dup_fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
                DIR *d = dup_fd >= 0 ? fdopendir(dup_fd) : NULL;
                struct dirent *de;
                size_t locals = 0;
                if (!d) {
                        if (dup_fd >= 0)
                                close(dup_fd);
                        close(dfd);
                        r = ak_err_errno(err, errno, "reading the templates directory");
                        goto fail;
                }
                while ((de = readdir(d))) {
                        cleanup_free char *name = NULL;
                        struct template lt = {0};
                        size_t len = strlen(de->d_name);
                        struct ak_err le = {0};
                        if (de->d_name[0] == '.' || len <= 5 ||
                            !streq(de->d_name + len - 5, ".toml"))
                                continue;
                        name = strndup(de->d_name, len - 5);
                        if (!name) {
                                r = ak_err_oom(err);
                                closedir(d);
                                close(dfd);
                                goto fail;
                        }
                        if (locals >= TEMPLATES_MAX) {
                                (void)strv_push(&warnings, "more than 1024 local templates: "
                                                           "the rest are not listed");
                                break;
                        }
                        if (template_name_check(name, &le) < 0 ||
                            read_local(dfd, name, &lt, &le) < 0) {
                                char *w = NULL;
                                if (asprintf(&w, "%s: skipped: %s", de->d_name, ak_err_msg(&le)) >=
                                    0)
                                        (void)strv_consume(&warnings, w);
                                continue;
                        }
                        locals++;
                        /* a local one replaces the built-in of its name */
                        {
                                size_t i;
                                for (i = 0; i < n && !streq(t[i].name, lt.name); i++)
                                        ;
                                if (i < n)
                                        template_done(&t[i]);
                                else
                                        n++;
                                t[i] = lt;
                        }
                }
                closedir(d);
                close(dfd);
        }
        qsort(t, n, sizeof(*t), by_name);
        *ret = t;
        *ret_n = n;
        *ret_warnings = warnings;
        return 0;
fail:
        template_list_free(t, n);
        strv_free(warnings);
        return r;
}

int template_save(const char *name, const char *text, size_t len, char **ret_path,
                  struct ak_err *err)
{
        cleanup_config struct config *c = NULL;
        cleanup_free char *dir = NULL, *file = NULL;
        cleanup_close int dfd = -1;
        int r;

        if ((r = template_name_check(name, err)) < 0 || (r = parse(text, len, name, &c, err)) < 0)
                return r;
        dfd = store_open(true, &dir, err);
        if (dfd < 0)
                return dfd;
        if (asprintf(&file, "%s.toml", name) < 0)
                return ak_err_oom(err);
        /* a new file under a temporary name, renamed over: a link planted at the name is
         * replaced, never followed */
        r = write_file_atomic_at(dfd, file, text, len, 0600, true);
        if (r < 0)
                return ak_err_errno(err, r, "cannot write template '%s'", name);
        if (ret_path && asprintf(ret_path, "%s/%s", dir, file) < 0)
                return ak_err_oom(err);
        return 0;
}

int template_remove(const char *name, struct ak_err *err)
{
        cleanup_free char *file = NULL;
        cleanup_close int dfd = -1;
        struct ak_err e = {0};
        int r;

        if ((r = template_name_check(name, err)) < 0)
                return r;
        dfd = store_open(false, NULL, &e);
        if (dfd < 0 && dfd != -ENOENT)
                return ak_err_set(err, -dfd, "%s", ak_err_msg(&e));
        if (asprintf(&file, "%s.toml", name) < 0)
                return ak_err_oom(err);
        if (dfd >= 0 && unlinkat(dfd, file, 0) == 0)
                return 0;
        if (dfd >= 0 && errno != ENOENT)
                return ak_err_errno(err, errno, "cannot remove template '%s'", name);
        if (builtin(name))
                return ak_err_set(err, EPERM, "'%s' is a built-in template and cannot be removed",
                                  name);
        return ak_err_set(err, ENOENT, "template '%s' not found in local templates", name);
}
