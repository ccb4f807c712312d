// SPDX-License-Identifier: Apache-2.0
/*
 * The secrets vault (vault.h). AES-256-GCM comes from OpenSSL's libcrypto (Debian's libssl-dev),
 * through its block cipher and GCM mode functions rather than EVP: linked statically into the
 * CLI they add ~35 KB and nothing to its start, where EVP's provider machinery would add 5 MB,
 * 17,000 relocations and a quarter of a millisecond to every `run` (docs/secrets.md, "Crypto").
 * This file must never put a value, a key or a plaintext into a message, and wipes each buffer
 * that held one before freeing it.
 */
/* the block and mode functions are "deprecated" in OpenSSL 3 in favour of EVP; this is the
 * documented way to use them without warnings */
#define OPENSSL_API_COMPAT 10101
#include "vault.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/aes.h>
#include <openssl/modes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/audit.h"
#include "core/paths.h"
#include "core/private-dir.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/json-util.h"
#include "shared/macro.h"
#include "shared/random-util.h"
#include "shared/text-util.h"
#include "shared/time-util.h"

#define VAULT_LOCK_FILE ".secrets.lock"
#define VAULT_PREFIX "v1:"

static const char *const backend_names[] = {
    [VAULT_FILE] = "file",
    [VAULT_ENV] = "env",
    [VAULT_KEYRING] = "keyring",
};

const char *vault_backend_name(enum vault_backend b)
{
        return (size_t)b < ARRAY_SIZE(backend_names) ? backend_names[b] : "?";
}

int vault_backend_parse(const char *s, enum vault_backend *ret, struct ak_err *err)
{
        for (size_t i = 0; i < ARRAY_SIZE(backend_names); i++)
                if (strcasecmp(s, backend_names[i]) == 0) {
                        *ret = (enum vault_backend)i;
                        return 0;
                }
        return ak_err_set(err, EINVAL, "unknown secret backend '%s': use env, file or keyring", s);
}

int vault_backend_default(enum vault_backend *ret, struct ak_err *err)
{
        const char *s = secure_getenv("AGENTKERNEL_SECRETS_BACKEND");

        if (!s || !*s) {
                *ret = VAULT_FILE;
                return 0;
        }
        return vault_backend_parse(s, ret, err);
}

int vault_name_check(const char *name, struct ak_err *err)
{
        size_t n = name ? strlen(name) : 0;

        if (n == 0)
                return ak_err_set(err, EINVAL, "a secret's name cannot be empty");
        if (n > VAULT_NAME_MAX)
                return ak_err_set(err, EINVAL, "a secret's name is at most %d characters",
                                  VAULT_NAME_MAX);
        if (strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != n)
                return ak_err_set(err, EINVAL,
                                  "secret name '%.*s' contains invalid characters: use letters, "
                                  "digits, '_' or '-'",
                                  (int)(n > 64 ? 64 : n), name);
        return 0;
}

int vault_value_check(const char *value, size_t len, struct ak_err *err)
{
        if (len == 0)
                return ak_err_set(err, EINVAL, "a secret's value cannot be empty");
        if (len > VAULT_VALUE_MAX)
                return ak_err_set(err, EFBIG, "a secret's value is at most %u bytes",
                                  VAULT_VALUE_MAX);
        if (memchr(value, '\0', len))
                return ak_err_set(err, EINVAL, "a secret's value cannot contain a NUL byte");
        if (!utf8_valid(value, len))
                return ak_err_set(err, EINVAL, "a secret's value must be UTF-8 text");
        return 0;
}

void vault_value_free(char *value, size_t len)
{
        if (!value)
                return;
        explicit_bzero(value, len);
        free(value);
}

/* ---- the format ---- */

/* AES-256-GCM over in[0..len) into out (len bytes) and tag; decrypt checks the tag (-EBADMSG). */
static int gcm(const uint8_t key[VAULT_KEY_LEN], const uint8_t nonce[VAULT_NONCE_LEN], bool encrypt,
               const uint8_t *in, size_t len, uint8_t *out, uint8_t tag[VAULT_TAG_LEN])
{
        AES_KEY aes;
        GCM128_CONTEXT *g;
        int r = 0;

        if (AES_set_encrypt_key(key, 256, &aes) != 0)
                return -EINVAL;
        g = CRYPTO_gcm128_new(&aes, (block128_f)AES_encrypt);
        if (!g) {
                explicit_bzero(&aes, sizeof(aes));
                return -ENOMEM;
        }
        CRYPTO_gcm128_setiv(g, nonce, VAULT_NONCE_LEN);
        if (encrypt) {
                if (CRYPTO_gcm128_encrypt(g, in, out, len) != 0)
                        r = -EIO;
                else
                        CRYPTO_gcm128_tag(g, tag, VAULT_TAG_LEN);
        } else {
                if (CRYPTO_gcm128_decrypt(g, in, out, len) != 0 ||
                    CRYPTO_gcm128_finish(g, tag, VAULT_TAG_LEN) != 0)
                        r = -EBADMSG;
        }
        CRYPTO_gcm128_release(g); /* wipes the context */
        explicit_bzero(&aes, sizeof(aes));
        return r;
}

int vault_seal(const uint8_t key[VAULT_KEY_LEN], const char *value, size_t len, char **ret)
{
        uint8_t nonce[VAULT_NONCE_LEN];
        cleanup_free uint8_t *ct = malloc(len + VAULT_TAG_LEN);
        char nonce_b64[32];
        char *out;
        size_t n;
        int r;

        if (!ct)
                return -ENOMEM;
        random_bytes(nonce, sizeof(nonce));
        r = gcm(key, nonce, true, (const uint8_t *)value, len, ct, ct + len);
        if (r < 0)
                return r;
        base64_encode(nonce, sizeof(nonce), nonce_b64);
        n = strlen(VAULT_PREFIX) + strlen(nonce_b64) + 1 + base64_encoded_len(len + VAULT_TAG_LEN);
        out = malloc(n + 1);
        if (!out)
                return -ENOMEM;
        (void)snprintf(out, n + 1, "%s%s:", VAULT_PREFIX, nonce_b64);
        base64_encode(ct, len + VAULT_TAG_LEN, out + strlen(out));
        *ret = out;
        return 0;
}

int vault_open_payload(const uint8_t key[VAULT_KEY_LEN], const char *payload, char **ret,
                       size_t *ret_len, struct ak_err *err)
{
        cleanup_free uint8_t *ct = NULL;
        uint8_t nonce[VAULT_NONCE_LEN + 3];
        const char *colon;
        char *pt;
        long n, m;
        int r;

        if (strncmp(payload, VAULT_PREFIX, strlen(VAULT_PREFIX)) != 0) {
                /* upstream's first versions: plain base64 of the value */
                size_t len = strlen(payload);
                pt = malloc(len / 4 * 3 + 4);
                if (!pt)
                        return ak_err_oom(err);
                n = base64_decode(payload, len, pt);
                if (n < 0 || vault_value_check(pt, (size_t)n, NULL) < 0) {
                        vault_value_free(pt, len / 4 * 3 + 4);
                        return ak_err_set(err, EBADMSG, "failed to decode secret");
                }
                pt[n] = '\0';
                *ret = pt;
                *ret_len = (size_t)n;
                return 0;
        }
        payload += strlen(VAULT_PREFIX);
        colon = strchr(payload, ':');
        if (!colon || (size_t)(colon - payload) > 24)
                return ak_err_set(err, EBADMSG, "invalid encrypted secret format");
        n = base64_decode(payload, (size_t)(colon - payload), nonce);
        if (n != VAULT_NONCE_LEN)
                return ak_err_set(err, EBADMSG, "invalid encrypted secret nonce length");
        ct = malloc(strlen(colon + 1) / 4 * 3 + 4);
        if (!ct)
                return ak_err_oom(err);
        m = base64_decode(colon + 1, strlen(colon + 1), ct);
        if (m < VAULT_TAG_LEN)
                return ak_err_set(err, EBADMSG, "invalid encrypted secret format");
        m -= VAULT_TAG_LEN;
        pt = malloc((size_t)m + 1);
        if (!pt)
                return ak_err_oom(err);
        r = gcm(key, nonce, false, ct, (size_t)m, (uint8_t *)pt, ct + m);
        if (r < 0 || vault_value_check(pt, (size_t)m, NULL) < 0) {
                vault_value_free(pt, (size_t)m + 1);
                return ak_err_set(err, EBADMSG,
                                  "failed to decrypt secret (the key file does not match)");
        }
        pt[m] = '\0';
        *ret = pt;
        *ret_len = (size_t)m;
        return 0;
}

/* ---- the files ---- */

/* Opens name (O_RDONLY) as one of the vault's files: a regular file of the caller, closed to
 * group and others (what it holds is either the key or what the key opens). -ENOENT with
 * nothing in err when missing. */
static int open_private(int dirfd, const char *name, struct ak_err *err)
{
        cleanup_close int fd =
            openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        struct stat st;

        if (fd < 0 && errno == ENOENT)
                return -ENOENT;
        if (fd < 0 && errno == ELOOP)
                return ak_err_set(err, EPERM,
                                  "the vault's '%s' is a symbolic link: refusing it; remove it if "
                                  "you did not put it there",
                                  name);
        if (fd < 0)
                return ak_err_errno(err, errno, "cannot open the vault's '%s'", name);
        if (fstat(fd, &st) < 0)
                return ak_err_errno(err, errno, "cannot open the vault's '%s'", name);
        if (!S_ISREG(st.st_mode))
                return ak_err_set(err, EPERM, "the vault's '%s' is not a regular file", name);
        if (st.st_uid != geteuid())
                return ak_err_set(err, EPERM,
                                  "the vault's '%s' is not owned by you (uid %u): refusing it",
                                  name, (unsigned)st.st_uid);
        if (st.st_mode & 022)
                return ak_err_set(err, EPERM,
                                  "the vault's '%s' is writable by group or others (mode %04o): "
                                  "refusing it; another user may have replaced its contents",
                                  name, (unsigned)(st.st_mode & 07777));
        if (st.st_mode & 044)
                return ak_err_set(err, EPERM,
                                  "the vault's '%s' is readable by group or others (mode %04o): "
                                  "refusing it; make it private (chmod 600) and consider its "
                                  "secrets known to them",
                                  name, (unsigned)(st.st_mode & 07777));
        return TAKE_FD(fd);
}

/* Reads the key: 32 raw bytes, or base64 text (whitespace around it ignored) of 32 bytes. With
 * create, a missing key is made (O_EXCL: a racing writer's key wins and is read). */
static int load_key(int dirfd, bool create, uint8_t key[VAULT_KEY_LEN], struct ak_err *err)
{
        for (int attempt = 0; attempt < 2; attempt++) {
                cleanup_close int fd = open_private(dirfd, VAULT_KEY_FILE, err);
                char text[129], b64[64];
                uint8_t dec[96];
                ssize_t n;
                size_t s, e;
                long k;

                if (fd == -ENOENT) {
                        if (!create)
                                return ak_err_set(err, ENOENT,
                                                  "the vault's key file '%s' is missing: its "
                                                  "values cannot be decrypted",
                                                  VAULT_KEY_FILE);
                        fd = openat(dirfd, VAULT_KEY_FILE,
                                    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                        if (fd < 0 && errno == EEXIST)
                                continue;
                        if (fd < 0)
                                return ak_err_errno(err, errno, "cannot create the vault's key");
                        random_bytes(key, VAULT_KEY_LEN);
                        base64_encode(key, VAULT_KEY_LEN, b64);
                        k = write_all(fd, b64, strlen(b64));
                        if (k >= 0 && fsync(fd) < 0)
                                k = -errno;
                        explicit_bzero(b64, sizeof(b64));
                        if (k < 0) {
                                (void)unlinkat(dirfd, VAULT_KEY_FILE, 0);
                                explicit_bzero(key, VAULT_KEY_LEN);
                                return ak_err_errno(err, (int)k, "cannot write the vault's key");
                        }
                        return 0;
                }
                if (fd < 0)
                        return fd;
                n = read(fd, text, sizeof(text) - 1);
                if (n < 0)
                        return ak_err_errno(err, errno, "cannot read the vault's key");
                if (n == VAULT_KEY_LEN) {
                        memcpy(key, text, VAULT_KEY_LEN);
                        explicit_bzero(text, sizeof(text));
                        return 0;
                }
                text[n] = '\0';
                for (s = 0; s < (size_t)n && strchr(" \t\r\n", text[s]); s++)
                        ;
                for (e = (size_t)n; e > s && strchr(" \t\r\n", text[e - 1]); e--)
                        ;
                k = e - s <= 88 ? base64_decode(text + s, e - s, dec) : -EINVAL;
                if (k == VAULT_KEY_LEN)
                        memcpy(key, dec, VAULT_KEY_LEN);
                explicit_bzero(text, sizeof(text));
                explicit_bzero(dec, sizeof(dec));
                if (k != VAULT_KEY_LEN)
                        return ak_err_set(err, EINVAL, "invalid secrets key length");
                return 0;
        }
        return ak_err_set(err, EAGAIN, "the vault's key file appeared and vanished");
}

/* Reads the store ({"secrets": {}, "metadata": {}} when there is none), checked: objects of
 * strings and of objects, at most VAULT_ENTRIES_MAX. */
static int load_store(int dirfd, json_t **ret, struct ak_err *err)
{
        cleanup_close int fd = dirfd >= 0 ? open_private(dirfd, VAULT_STORE_FILE, err) : -ENOENT;
        cleanup_buf struct buf b = BUF_INIT;
        cleanup_json json_t *o = NULL;
        json_t *s, *md, *v;
        const char *k;
        json_error_t je;
        int r;

        if (fd == -ENOENT) {
                *ret = json_pack("{s:{},s:{}}", "secrets", "metadata");
                return *ret ? 0 : ak_err_oom(err);
        }
        if (fd < 0)
                return fd;
        r = read_fd_full(fd, &b, VAULT_STORE_MAX);
        if (r < 0)
                return r == -EFBIG ? ak_err_set(err, EFBIG, "the vault is larger than %u bytes",
                                                VAULT_STORE_MAX)
                                   : ak_err_errno(err, r, "cannot read the vault");
        o = json_loadb(b.data ? b.data : "", b.len, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(o))
                return ak_err_set(err, EINVAL, "the vault '%s' is not valid JSON (line %d)",
                                  VAULT_STORE_FILE, je.line);
        s = json_object_get(o, "secrets");
        md = json_object_get(o, "metadata");
        if (!s && json_object_set_new(o, "secrets", s = json_object()) < 0)
                return ak_err_oom(err);
        if (!md && json_object_set_new(o, "metadata", md = json_object()) < 0)
                return ak_err_oom(err);
        if (!json_is_object(s) || !json_is_object(md) || json_object_size(s) > VAULT_ENTRIES_MAX ||
            json_object_size(md) > VAULT_ENTRIES_MAX)
                return ak_err_set(err, EINVAL, "the vault '%s' is not valid", VAULT_STORE_FILE);
        json_object_foreach (s, k, v)
                if (!json_is_string(v))
                        return ak_err_set(err, EINVAL, "the vault '%s' is not valid",
                                          VAULT_STORE_FILE);
        json_object_foreach (md, k, v)
                if (!json_is_object(v))
                        return ak_err_set(err, EINVAL, "the vault '%s' is not valid",
                                          VAULT_STORE_FILE);
        *ret = TAKE_PTR(o);
        return 0;
}

static int save_store(int dirfd, json_t *o, struct ak_err *err)
{
        return private_json_save_at(dirfd, VAULT_STORE_FILE, o, "the vault", err);
}

static int lock(int dirfd, struct ak_err *err)
{
        return private_lock_at(dirfd, VAULT_LOCK_FILE, "the vault", err);
}

/* The store opened for reading: the user directory (-ENOENT in *ret_dirfd where it does not
 * exist: then an empty store) and what it holds. */
static int open_for_read(int *ret_dirfd, json_t **ret_o, struct ak_err *err)
{
        int r;

        *ret_dirfd = paths_user_dir_open_for(false, err);
        if (*ret_dirfd < 0 && *ret_dirfd != -ENOENT)
                return *ret_dirfd;
        r = load_store(*ret_dirfd, ret_o, err);
        return r < 0 ? r : 0;
}

/* The store opened for a change: the user directory (made when create; -ENOENT in *ret_dirfd and
 * the result, nothing in err, where it is missing and create is false), the vault's lock held,
 * the store loaded. */
static int open_locked(bool create, int *ret_dirfd, int *ret_lk, json_t **ret_o, struct ak_err *err)
{
        int r;

        *ret_dirfd = paths_user_dir_open_for(create, err);
        if (*ret_dirfd < 0)
                return *ret_dirfd;
        *ret_lk = lock(*ret_dirfd, err);
        if (*ret_lk < 0)
                return *ret_lk;
        r = load_store(*ret_dirfd, ret_o, err);
        return r < 0 ? r : 0;
}

static int not_stored(enum vault_backend b, const char *what, struct ak_err *err)
{
        if (b == VAULT_KEYRING)
                return ak_err_set(err, EOPNOTSUPP,
                                  "the keyring secret backend is not available in this build");
        return ak_err_set(err, EOPNOTSUPP,
                          "cannot %s secrets with the 'env' backend: set them in the environment, "
                          "or use the file backend (unset AGENTKERNEL_SECRETS_BACKEND)",
                          what);
}

/* Decrypts name's payload in store o (the key read from dirfd). */
static int open_entry(int dirfd, json_t *o, const char *name, char **ret, size_t *ret_len,
                      struct ak_err *err)
{
        const char *payload =
            json_string_value(json_object_get(json_object_get(o, "secrets"), name));
        uint8_t key[VAULT_KEY_LEN];
        int r;

        if (!payload)
                return ak_err_set(err, ENOENT, "secret '%s' not found", name);
        if (strncmp(payload, VAULT_PREFIX, strlen(VAULT_PREFIX)) != 0)
                return vault_open_payload(key, payload, ret, ret_len, err); /* no key needed */
        r = load_key(dirfd, false, key, err);
        if (r >= 0)
                r = vault_open_payload(key, payload, ret, ret_len, err);
        explicit_bzero(key, sizeof(key));
        return r;
}

/* Seals value as name into o (key made if missing), with its metadata. */
static int put_entry(int dirfd, json_t *o, const char *name, const char *value, size_t len,
                     struct ak_err *err)
{
        json_t *md, *hosts;
        uint8_t key[VAULT_KEY_LEN];
        char *payload = NULL, now[RFC3339_MAX];
        int r = load_key(dirfd, true, key, err);

        if (r < 0)
                return r;
        r = vault_seal(key, value, len, &payload);
        explicit_bzero(key, sizeof(key));
        if (r < 0)
                return ak_err_errno(err, r, "cannot encrypt secret '%s'", name);
        format_rfc3339(now_realtime_ns(), now);
        md = json_pack("{s:s,s:s}", "set_at", now, "backend", "file");
        hosts = json_object_get(json_object_get(json_object_get(o, "metadata"), name), "hosts");
        if (md && json_is_array(hosts))
                json_object_set(md, "hosts", hosts); /* a new value goes where the old one did */
        if (!md ||
            json_object_set_new(json_object_get(o, "secrets"), name, json_string(payload)) < 0 ||
            json_object_set_new(json_object_get(o, "metadata"), name, md) < 0) {
                free(payload);
                return ak_err_oom(err);
        }
        free(payload);
        return 0;
}

static int set_or_add(enum vault_backend b, const char *name, const char *value, size_t len,
                      bool only_new, bool *ret_added, struct ak_err *err)
{
        cleanup_close int dirfd = -1, lk = -1;
        cleanup_json json_t *o = NULL;
        int r;

        if ((r = vault_name_check(name, err)) < 0 || (r = vault_value_check(value, len, err)) < 0)
                return r;
        if (b != VAULT_FILE)
                return not_stored(b, "set", err);
        if ((r = open_locked(true, &dirfd, &lk, &o, err)) < 0)
                return r;
        if (only_new && json_object_get(json_object_get(o, "secrets"), name)) {
                char *old = NULL;
                size_t old_len = 0;
                bool same;
                r = open_entry(dirfd, o, name, &old, &old_len, err);
                if (r < 0)
                        return r;
                same = old_len == len && memcmp(old, value, len) == 0;
                vault_value_free(old, old_len);
                if (!same)
                        return ak_err_set(err, EEXIST,
                                          "the vault already holds secret '%s' with another "
                                          "value: bind it as %s:HOST, or replace it with: "
                                          "agentkernel secret set %s",
                                          name, name, name);
                if (ret_added)
                        *ret_added = false;
                return 0;
        }
        r = put_entry(dirfd, o, name, value, len, err);
        if (r >= 0)
                r = save_store(dirfd, o, err);
        if (r >= 0)
                (void)audit_log("secret_stored", json_pack("{s:s}", "name", name));
        if (r >= 0 && ret_added)
                *ret_added = true;
        return r;
}

int vault_set(enum vault_backend b, const char *name, const char *value, size_t len,
              struct ak_err *err)
{
        return set_or_add(b, name, value, len, false, NULL, err);
}

int vault_add(enum vault_backend b, const char *name, const char *value, size_t len,
              bool *ret_added, struct ak_err *err)
{
        return set_or_add(b, name, value, len, true, ret_added, err);
}

int vault_get(enum vault_backend b, const char *name, char **ret, size_t *ret_len,
              struct ak_err *err)
{
        cleanup_close int dirfd = -1;
        cleanup_json json_t *o = NULL;
        int r = vault_name_check(name, err);

        if (r < 0)
                return r;
        if (b == VAULT_ENV) {
                const char *v = secure_getenv(name);
                size_t n = v ? strlen(v) : 0;
                if (!v)
                        return ak_err_set(err, ENOENT, "secret '%s' not found (backend env)", name);
                if ((r = vault_value_check(v, n, err)) < 0) {
                        (void)ak_err_prefix(err, "environment variable '%s'", name);
                        return r;
                }
                *ret = strdup(v);
                *ret_len = n;
                return *ret ? 0 : ak_err_oom(err);
        }
        if (b != VAULT_FILE)
                return not_stored(b, "read", err);
        if ((r = open_for_read(&dirfd, &o, err)) < 0)
                return r;
        return open_entry(dirfd, o, name, ret, ret_len, err);
}

int vault_has(enum vault_backend b, const char *name, struct ak_err *err)
{
        cleanup_close int dirfd = -1;
        cleanup_json json_t *o = NULL;
        uint8_t key[VAULT_KEY_LEN];
        const char *payload;
        int r = vault_name_check(name, err);

        if (r < 0)
                return r;
        if (b == VAULT_ENV)
                return secure_getenv(name) ? 1 : 0;
        if (b != VAULT_FILE)
                return not_stored(b, "read", err);
        if ((r = open_for_read(&dirfd, &o, err)) < 0)
                return r;
        payload = json_string_value(json_object_get(json_object_get(o, "secrets"), name));
        if (!payload)
                return 0;
        if (strncmp(payload, VAULT_PREFIX, strlen(VAULT_PREFIX)) == 0) {
                /* what opens it must be there and believable too */
                r = load_key(dirfd, false, key, err);
                explicit_bzero(key, sizeof(key));
                if (r < 0)
                        return r;
        }
        return 1;
}

int vault_delete(enum vault_backend b, const char *name, struct ak_err *err)
{
        cleanup_close int dirfd = -1, lk = -1;
        cleanup_json json_t *o = NULL;
        int r = vault_name_check(name, err);

        if (r < 0)
                return r;
        if (b != VAULT_FILE)
                return not_stored(b, "delete", err);
        r = open_locked(false, &dirfd, &lk, &o, err);
        if (r == -ENOENT && dirfd == -ENOENT)
                return ak_err_set(err, ENOENT, "secret '%s' not found", name);
        if (r < 0)
                return r;
        if (json_object_del(json_object_get(o, "secrets"), name) < 0)
                return ak_err_set(err, ENOENT, "secret '%s' not found", name);
        (void)json_object_del(json_object_get(o, "metadata"), name);
        r = save_store(dirfd, o, err);
        if (r >= 0)
                (void)audit_log("secret_deleted", json_pack("{s:s}", "name", name));
        return r;
}

int vault_list(enum vault_backend b, json_t **ret, struct ak_err *err)
{
        cleanup_close int dirfd = -1;
        cleanup_json json_t *o = NULL;
        json_t *out, *s, *md, *v;
        const char *k;
        int r;

        if (b != VAULT_FILE) {
                if (b == VAULT_KEYRING)
                        return not_stored(b, "list", err);
                *ret = json_object();
                return *ret ? 0 : ak_err_oom(err);
        }
        if ((r = open_for_read(&dirfd, &o, err)) < 0)
                return r;
        s = json_object_get(o, "secrets");
        md = json_object_get(o, "metadata");
        out = json_object();
        if (!out)
                return ak_err_oom(err);
        /* upstream lists the metadata; an entry without one still exists */
        json_object_foreach (s, k, v) {
                json_t *m = json_object_get(md, k);
                json_t *e = json_object();
                json_t *at = json_object_get(m, "set_at");
                json_t *be = json_object_get(m, "backend");
                json_object_set_new(e, "set_at",
                                    json_is_string(at) ? json_copy(at) : json_string(""));
                json_object_set_new(e, "backend",
                                    json_is_string(be) ? json_copy(be) : json_string("file"));
                if (json_is_array(json_object_get(m, "hosts")))
                        json_object_set(e, "hosts", json_object_get(m, "hosts"));
                if (json_object_set_new(out, k, e) < 0) {
                        json_decref(out);
                        return ak_err_oom(err);
                }
        }
        *ret = out;
        return 0;
}

/* A host pattern of a secret's list: a DNS name with a dot (or an IPv4 address), optionally
 * "*." before it. */
static bool host_pattern_ok(const char *h)
{
        const char *name = strncmp(h, "*.", 2) == 0 ? h + 2 : h;
        size_t n = strlen(name);

        return n > 0 && n <= 253 &&
               strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") ==
                   n &&
               strchr(name, '.') && name[0] != '.' && name[0] != '-' && name[n - 1] != '.' &&
               !strstr(name, "..");
}

static bool host_matches(const char *pattern, const char *host)
{
        size_t pn, hn = strlen(host);

        if (strncmp(pattern, "*.", 2) != 0)
                return strcasecmp(pattern, host) == 0;
        pattern += 2;
        pn = strlen(pattern);
        return strcasecmp(pattern, host) == 0 ||
               (hn > pn && host[hn - pn - 1] == '.' && strcasecmp(host + hn - pn, pattern) == 0);
}

int vault_set_hosts(enum vault_backend b, const char *name, char *const *hosts, struct ak_err *err)
{
        cleanup_close int dirfd = -1, lk = -1;
        cleanup_json json_t *o = NULL;
        json_t *md, *list;
        size_t n = 0;
        int r = vault_name_check(name, err);

        if (r < 0)
                return r;
        for (char *const *h = hosts; h && *h; h++, n++)
                if (!host_pattern_ok(*h))
                        return ak_err_set(err, EINVAL,
                                          "'%.80s' is not a host name (a DNS name with a dot, or "
                                          "*.domain for a domain and the names under it)",
                                          *h);
        if (n > VAULT_HOSTS_MAX)
                return ak_err_set(err, EINVAL, "a secret may name at most %d hosts",
                                  VAULT_HOSTS_MAX);
        if (b != VAULT_FILE)
                return not_stored(b, "restrict", err);
        if ((r = open_locked(true, &dirfd, &lk, &o, err)) < 0)
                return r;
        if (!json_object_get(json_object_get(o, "secrets"), name))
                return ak_err_set(err, ENOENT, "secret '%s' not found", name);
        md = json_object_get(json_object_get(o, "metadata"), name);
        if (!md) {
                md = json_pack("{s:s,s:s}", "set_at", "", "backend", "file");
                if (!md || json_object_set_new(json_object_get(o, "metadata"), name, md) < 0)
                        return ak_err_oom(err);
        }
        if (n == 0) {
                (void)json_object_del(md, "hosts");
        } else {
                list = json_array();
                for (char *const *h = hosts; list && *h; h++)
                        json_array_append_new(list, json_string(*h));
                if (!list || json_object_set_new(md, "hosts", list) < 0)
                        return ak_err_oom(err);
        }
        r = save_store(dirfd, o, err);
        if (r >= 0)
                (void)audit_log("secret_hosts_set",
                                json_pack("{s:s,s:O}", "name", name, "hosts",
                                          n ? json_object_get(md, "hosts") : json_null()));
        return r;
}

int vault_host_allowed(enum vault_backend b, const char *name, const char *host, struct ak_err *err)
{
        cleanup_close int dirfd = -1;
        cleanup_json json_t *o = NULL;
        json_t *hosts, *h;
        char list[256] = "";
        size_t i;
        int r = vault_name_check(name, err);

        if (r < 0)
                return r;
        if (b != VAULT_FILE)
                return 1;
        if ((r = open_for_read(&dirfd, &o, err)) < 0)
                return r;
        hosts = json_object_get(json_object_get(json_object_get(o, "metadata"), name), "hosts");
        if (!json_is_array(hosts) || json_array_size(hosts) == 0)
                return 1;
        json_array_foreach (hosts, i, h) {
                const char *p = json_string_value(h);
                if (p && host_matches(p, host))
                        return 1;
                if (p)
                        (void)snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s",
                                       i ? ", " : "", p);
        }
        ak_err_set(err, EPERM,
                   "secret '%s' may be sent only to %s, not to '%s' (agentkernel secret hosts %s "
                   "HOST... changes that)",
                   name, list, host, name);
        return 0;
}
