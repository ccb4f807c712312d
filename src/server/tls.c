// SPDX-License-Identifier: Apache-2.0
/* serve's self-signed certificate, made with GnuTLS and kept in the user directory (tls.h). */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server/apikey.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/random-util.h"

#define CERT_DAYS 365
#define CERT_FILE_MAX (1u << 20)

/* PEM text of a new self-signed certificate and its key. */
static int make_pair(char **ret_cert, char **ret_key, struct ak_err *err)
{
        static const unsigned char v4[4] = {127, 0, 0, 1};
        static const unsigned char v6[16] = {[15] = 1};
        gnutls_x509_privkey_t key = NULL;
        gnutls_x509_crt_t crt = NULL;
        gnutls_datum_t c = {0}, k = {0};
        unsigned char serial[16], id[64];
        size_t id_len = sizeof(id);
        time_t now = time(NULL);
        int r;

        random_bytes(serial, sizeof(serial));
        serial[0] &= 0x7f; /* a positive serial */
        if ((r = gnutls_x509_privkey_init(&key)) < 0 ||
            (r = gnutls_x509_privkey_generate(
                 key, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0)) < 0 ||
            (r = gnutls_x509_crt_init(&crt)) < 0 || (r = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
            (r = gnutls_x509_crt_set_serial(crt, serial, sizeof(serial))) < 0 ||
            (r = gnutls_x509_crt_set_activation_time(crt, now - 300)) < 0 ||
            (r = gnutls_x509_crt_set_expiration_time(crt, now + CERT_DAYS * 86400L)) < 0 ||
            (r = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, "localhost",
                                               9)) < 0 ||
            (r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, "localhost", 9,
                                                      GNUTLS_FSAN_APPEND)) < 0 ||
            (r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, v4, sizeof(v4),
                                                      GNUTLS_FSAN_APPEND)) < 0 ||
            (r = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, v6, sizeof(v6),
                                                      GNUTLS_FSAN_APPEND)) < 0 ||
            /* its own trust anchor, as `openssl req -x509` makes one: clients add it as a CA */
            (r = gnutls_x509_crt_set_basic_constraints(crt, 1, 0)) < 0 ||
            (r = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE |
                                                        GNUTLS_KEY_KEY_CERT_SIGN)) < 0 ||
            (r = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0 ||
            (r = gnutls_x509_crt_set_key(crt, key)) < 0 ||
            (r = gnutls_x509_crt_get_key_id(crt, 0, id, &id_len)) < 0 ||
            (r = gnutls_x509_crt_set_subject_key_id(crt, id, id_len)) < 0 ||
            (r = gnutls_x509_crt_set_authority_key_id(crt, id, id_len)) < 0 ||
            (r = gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0)) < 0 ||
            (r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &c)) < 0 ||
            (r = gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &k)) < 0) {
                (void)ak_err_set(err, EIO, "cannot make a self-signed certificate: %s",
                                 gnutls_strerror(r));
                r = -EIO;
        } else {
                *ret_cert = strndup((const char *)c.data, c.size);
                *ret_key = strndup((const char *)k.data, k.size);
                r = *ret_cert && *ret_key ? 0 : ak_err_oom(err);
        }
        if (k.data) {
                explicit_bzero(k.data, k.size);
                gnutls_free(k.data);
        }
        gnutls_free(c.data);
        if (crt)
                gnutls_x509_crt_deinit(crt);
        if (key)
                gnutls_x509_privkey_deinit(key);
        return r;
}

/* Writes a new file of dir (never one that exists, never through a link). */
static int write_new(int dfd, const char *dir, const char *name, const char *text, mode_t mode,
                     struct ak_err *err)
{
        cleanup_close int fd =
            openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        int r;

        if (fd < 0)
                return ak_err_errno(err, errno, "cannot create '%s/%s'", dir, name);
        r = write_all(fd, text, strlen(text));
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (r < 0) {
                (void)unlinkat(dfd, name, 0);
                return ak_err_errno(err, r, "cannot write '%s/%s'", dir, name);
        }
        return 0;
}

static int read_cert(int dfd, const char *dir, char **ret, struct ak_err *err)
{
        cleanup_buf struct buf b = BUF_INIT;
        cleanup_close int fd =
            openat(dfd, TLS_CERT_FILE, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        struct stat st;
        int r;

        if (fd < 0)
                return ak_err_errno(err, errno, "cannot open '%s/%s'", dir, TLS_CERT_FILE);
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() ||
            (st.st_mode & 022))
                return ak_err_set(err, EPERM,
                                  "'%s/%s' is not a regular file of yours that only you can "
                                  "write: remove it to have a new pair made",
                                  dir, TLS_CERT_FILE);
        if ((r = read_fd_full(fd, &b, CERT_FILE_MAX)) < 0 || buf_append(&b, "", 1) < 0)
                return ak_err_errno(err, r < 0 ? r : -ENOMEM, "cannot read '%s/%s'", dir,
                                    TLS_CERT_FILE);
        *ret = TAKE_PTR(b.data);
        return 0;
}

int tls_self_signed(const char *dir, char **ret_cert, char **ret_key, bool *ret_created,
                    struct ak_err *err)
{
        cleanup_close int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        cleanup_free char *key_path = NULL;
        struct stat st;
        bool have_cert, have_key;
        int r;

        *ret_cert = *ret_key = NULL;
        *ret_created = false;
        if (dfd < 0)
                return ak_err_errno(err, errno, "cannot open '%s'", dir);
        have_cert = fstatat(dfd, TLS_CERT_FILE, &st, AT_SYMLINK_NOFOLLOW) == 0;
        have_key = fstatat(dfd, TLS_KEY_FILE, &st, AT_SYMLINK_NOFOLLOW) == 0;
        if (have_cert != have_key)
                return ak_err_set(err, EINVAL,
                                  "'%s/%s' is there without '%s': remove it to have a new pair "
                                  "made",
                                  dir, have_cert ? TLS_CERT_FILE : TLS_KEY_FILE,
                                  have_cert ? TLS_KEY_FILE : TLS_CERT_FILE);
        if (asprintf(&key_path, "%s/%s", dir, TLS_KEY_FILE) < 0) {
                key_path = NULL;
                return ak_err_oom(err);
        }
        if (have_cert) {
                if ((r = read_cert(dfd, dir, ret_cert, err)) < 0)
                        return r;
                /* the key with the API key's checks: owner, 0600, no link */
                if ((r = apikey_read_private_file(key_path, ret_key, err)) < 0) {
                        free(*ret_cert);
                        *ret_cert = NULL;
                }
                return r;
        }
        if ((r = make_pair(ret_cert, ret_key, err)) < 0)
                goto fail;
        if ((r = write_new(dfd, dir, TLS_KEY_FILE, *ret_key, 0600, err)) < 0)
                goto fail;
        if ((r = write_new(dfd, dir, TLS_CERT_FILE, *ret_cert, 0644, err)) < 0) {
                (void)unlinkat(dfd, TLS_KEY_FILE, 0);
                goto fail;
        }
        *ret_created = true;
        return 0;
fail:
        if (*ret_key)
                explicit_bzero(*ret_key, strlen(*ret_key));
        free(*ret_key);
        free(*ret_cert);
        *ret_cert = *ret_key = NULL;
        return r;
}
