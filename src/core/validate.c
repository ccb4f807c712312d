// SPDX-License-Identifier: Apache-2.0
/* Input validation for names, images, labels, ports, paths and durations typed by users. */
#include "validate.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/state.h"
#include "shared/cleanup.h"
#include "shared/parse-util.h"

static bool is_alnum(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int validate_name(const char *name, struct ak_err *err)
{
        size_t n = name ? strlen(name) : 0;

        if (n == 0)
                return ak_err_set(err, EINVAL, "sandbox name must not be empty");
        if (n > NAME_MAX_LEN)
                return ak_err_set(err, EINVAL, "sandbox name '%.80s' is longer than %d characters",
                                  name, NAME_MAX_LEN);
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                if (!is_alnum(c) && c != '-' && c != '_')
                        return ak_err_set(err, EINVAL,
                                          "invalid sandbox name '%s': only letters, digits, '-' "
                                          "and '_' are allowed",
                                          name);
                if (i > 0 && (c == '-' || c == '_') && (name[i - 1] == '-' || name[i - 1] == '_'))
                        return ak_err_set(err, EINVAL,
                                          "invalid sandbox name '%s': '-' and '_' cannot repeat",
                                          name);
        }
        if (!is_alnum(name[0]) || !is_alnum(name[n - 1]))
                return ak_err_set(err, EINVAL,
                                  "invalid sandbox name '%s': must start and end with a letter or "
                                  "digit",
                                  name);
        return 0;
}

int validate_image(const char *image, struct ak_err *err)
{
        size_t n = image ? strlen(image) : 0;

        if (n == 0)
                return ak_err_set(err, EINVAL, "image name must not be empty");
        if (n > IMAGE_MAX_LEN)
                return ak_err_set(err, EINVAL, "image name is longer than %d characters",
                                  IMAGE_MAX_LEN);
        for (size_t i = 0; i < n; i++) {
                char c = image[i];
                if (!is_alnum(c) && !strchr(".-_/:@", c))
                        return ak_err_set(err, EINVAL,
                                          "invalid image name '%s': character '%c' is not allowed",
                                          image, isprint((unsigned char)c) ? c : '?');
        }
        if (image[0] == '-' || image[0] == '.' || image[0] == '/' || image[0] == ':')
                return ak_err_set(err, EINVAL, "invalid image name '%s'", image);
        return 0;
}

int validate_label(const char *key, const char *value, struct ak_err *err)
{
        size_t kl = strlen(key), vl = strlen(value);

        if (kl == 0 || kl > LABEL_KEY_MAX)
                return ak_err_set(err, EINVAL, "label key must be 1 to %d characters",
                                  LABEL_KEY_MAX);
        for (size_t i = 0; i < kl; i++)
                if (!is_alnum(key[i]) && !strchr("-_./", key[i]))
                        return ak_err_set(err, EINVAL,
                                          "invalid label key '%s': only letters, digits and "
                                          "'-_./' are allowed",
                                          key);
        if (!is_alnum(key[0]))
                return ak_err_set(err, EINVAL,
                                  "invalid label key '%s': must start with a letter "
                                  "or digit",
                                  key);
        if (vl > LABEL_VALUE_MAX)
                return ak_err_set(err, EINVAL, "label '%s' value is longer than %d characters", key,
                                  LABEL_VALUE_MAX);
        for (size_t i = 0; i < vl; i++)
                if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f)
                        return ak_err_set(err, EINVAL,
                                          "label '%s' value contains a control character", key);
        return 0;
}

int validate_labels(json_t *labels, struct ak_err *err)
{
        const char *k;
        json_t *v;
        int r;

        if (!json_is_object(labels))
                return ak_err_set(err, EINVAL, "labels must be an object of strings");
        if (json_object_size(labels) > LABELS_MAX)
                return ak_err_set(err, EINVAL, "at most %d labels", LABELS_MAX);
        json_object_foreach (labels, k, v) {
                if (!json_is_string(v))
                        return ak_err_set(err, EINVAL, "label '%s' must be a string", k);
                if ((r = validate_label(k, json_string_value(v), err)) < 0)
                        return r;
        }
        return 0;
}

int parse_label(const char *spec, char sep, char **ret_key, char **ret_value, struct ak_err *err)
{
        const char *at = strchr(spec, sep);
        cleanup_free char *k = NULL;
        cleanup_free char *v = NULL;
        int r;

        if (!at)
                return ak_err_set(err, EINVAL, "invalid label '%s': expected key%cvalue", spec,
                                  sep);
        k = strndup(spec, (size_t)(at - spec));
        v = strdup(at + 1);
        if (!k || !v)
                return ak_err_oom(err);
        r = validate_label(k, v, err);
        if (r < 0)
                return r;
        *ret_key = TAKE_PTR(k);
        *ret_value = TAKE_PTR(v);
        return 0;
}

int validate_sandbox_path(const char *path, struct ak_err *err)
{
        static const char *const forbidden[] = {
            "/proc", "/sys", "/dev", "/etc/passwd", "/etc/shadow", "/etc/sudoers", "/root/.ssh"};
        size_t n = strlen(path);

        if (path[0] != '/')
                return ak_err_set(err, EINVAL, "path '%s' must be absolute", path);
        if (n >= 4096)
                return ak_err_set(err, EINVAL, "path is longer than 4095 bytes");
        for (const char *p = path; (p = strstr(p, "..")); p += 2) {
                bool starts = p == path || p[-1] == '/';
                bool ends = p[2] == '\0' || p[2] == '/';
                if (starts && ends)
                        return ak_err_set(err, EINVAL, "path '%s' must not contain '..'", path);
        }
        for (size_t i = 0; i < ARRAY_SIZE(forbidden); i++) {
                size_t fl = strlen(forbidden[i]);
                if (strncmp(path, forbidden[i], fl) == 0 && (path[fl] == '\0' || path[fl] == '/'))
                        return ak_err_set(err, EACCES, "access to '%s' is not allowed", path);
        }
        return 0;
}

/* Whether path is dir or lies below it. */
static bool path_within(const char *path, const char *dir)
{
        size_t n = strlen(dir);
        if (n == 1 && dir[0] == '/')
                return true;
        return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int validate_workspace(const char *path, const char *const *own, size_t n_own, struct ak_err *err)
{
        char real[PATH_MAX];
        struct stat st;

        if (!path || path[0] != '/')
                return ak_err_set(err, EINVAL, "workspace '%s' is not an absolute path",
                                  path ? path : "");
        if (strlen(path) >= PATH_MAX)
                return ak_err_set(err, ENAMETOOLONG, "workspace path is too long");
        for (const char *c = path + 1; !streq(path, "/");) {
                const char *end = strchrnul(c, '/');
                size_t n = (size_t)(end - c);
                if (n == 0 || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.'))
                        return ak_err_set(err, EINVAL,
                                          "workspace '%s' is not a normalised path (no '.', "
                                          "'..', '//' or trailing '/')",
                                          path);
                if (!*end)
                        break;
                c = end + 1;
        }
        if (streq(path, "/"))
                return ak_err_set(err, EINVAL,
                                  "workspace '/' would give the sandbox the whole host read-write; "
                                  "mount a project directory");
        if (lstat(path, &st) < 0)
                return ak_err_errno(err, errno, "workspace '%s'", path);
        if (S_ISLNK(st.st_mode))
                return ak_err_set(err, ELOOP,
                                  "workspace '%s' is a symbolic link: a link can be re-pointed "
                                  "between create and start; use the directory it names",
                                  path);
        if (!S_ISDIR(st.st_mode))
                return ak_err_set(err, ENOTDIR, "workspace '%s' is not a directory", path);
        if (!realpath(path, real))
                return ak_err_errno(err, errno, "workspace '%s'", path);
        if (!streq(real, path))
                return ak_err_set(err, ELOOP,
                                  "workspace '%s' is reached through a symbolic link (it is "
                                  "'%s'): a link can be re-pointed between create and start; use "
                                  "the real path",
                                  path, real);
        for (size_t i = 0; i < n_own; i++) {
                if (own[i] && path_within(path, own[i]))
                        return ak_err_set(err, EPERM,
                                          "workspace '%s' is agentkernel's own directory '%s' (or "
                                          "inside it): a sandbox could rewrite what the host "
                                          "trusts there; mount a project directory",
                                          path, own[i]);
                if (own[i] && path_within(own[i], path))
                        return ak_err_set(err, EPERM,
                                          "workspace '%s' contains agentkernel's own directory "
                                          "'%s': a sandbox could rewrite what the host trusts "
                                          "there (its records, API key, approved configs); mount "
                                          "a project directory",
                                          path, own[i]);
        }
        return 0;
}

int validate_env_entry(const char *entry, struct ak_err *err)
{
        const char *eq = strchr(entry, '=');

        if (!eq || eq == entry)
                return ak_err_set(err, EINVAL,
                                  "invalid environment entry '%.64s': expected "
                                  "KEY=VALUE",
                                  entry);
        if (strlen(entry) > ENV_ENTRY_MAX)
                return ak_err_set(err, EINVAL, "environment entry longer than %d bytes",
                                  ENV_ENTRY_MAX);
        for (const char *p = entry; p < eq; p++)
                if (!is_alnum(*p) && *p != '_' && *p != '.' && *p != '-')
                        return ak_err_set(err, EINVAL,
                                          "invalid environment variable name in '%.64s'", entry);
        if (entry[0] >= '0' && entry[0] <= '9')
                return ak_err_set(err, EINVAL,
                                  "environment variable name must not start with a "
                                  "digit: '%.64s'",
                                  entry);
        return 0;
}

int parse_ttl(const char *s, bool allow_zero, uint64_t *ret_seconds, struct ak_err *err)
{
        uint64_t v;
        int r = parse_duration(s, &v);

        if (r == -ERANGE)
                return ak_err_set(err, EINVAL, "duration '%s' is longer than 3650d", s);
        if (r < 0)
                return ak_err_set(err, EINVAL,
                                  "invalid duration '%s': use seconds or units like 30s, 15m, "
                                  "2h30m, 1d",
                                  s);
        if (v == 0 && !allow_zero)
                return ak_err_set(err, EINVAL, "duration must be greater than zero");
        *ret_seconds = v;
        return 0;
}

int validate_user(const char *user, struct ak_err *err)
{
        size_t n = strlen(user);

        if (n == 0 || n > 32)
                return ak_err_set(err, EINVAL, "invalid user '%s'", user);
        for (size_t i = 0; i < n; i++) {
                char c = user[i];
                if (!is_alnum(c) && c != '_' && c != '-' && c != ':' && c != '.')
                        return ak_err_set(err, EINVAL, "invalid user '%s'", user);
        }
        return 0;
}

int validate_disk_mb(uint64_t mb, struct ak_err *err)
{
        if (mb < DISK_MB_MIN || mb > DISK_MB_MAX)
                return ak_err_set(err, EINVAL, "disk must be %u to %u MB (1 TB), not %llu",
                                  DISK_MB_MIN, DISK_MB_MAX, (unsigned long long)mb);
        return 0;
}

/* The host image shows the host's /usr, /bin, /sbin, /lib* and /etc read-only, shared with the
 * host and every sandbox: a [[files]] entry cannot land there, and is refused before anything is
 * recorded rather than failing every start. */
int validate_host_image_files(const struct inject_file *files, size_t n_files, struct ak_err *err)
{
        static const char *const ro[] = {"/etc", "/usr",   "/bin",   "/sbin",
                                         "/lib", "/lib32", "/lib64", "/libx32"};

        for (size_t i = 0; i < n_files; i++)
                for (size_t k = 0; k < ARRAY_SIZE(ro); k++) {
                        size_t n = strlen(ro[k]);
                        const char *d = files[i].dest;
                        if (strncmp(d, ro[k], n) == 0 && (d[n] == '/' || d[n] == '\0'))
                                return ak_err_set(err, EINVAL,
                                                  "[[files]] dest '%s': the host image's %s is the "
                                                  "host's, read-only and shared; copy the file "
                                                  "elsewhere (e.g. /root, /tmp or /workspace) or "
                                                  "use an OCI image",
                                                  d, ro[k]);
                }
        return 0;
}
