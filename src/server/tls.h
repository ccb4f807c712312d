/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `serve --tls` without a certificate of the user's: a self-signed one (upstream makes one too),
 * kept in the user directory so that clients trust it once: tls-cert.pem (the certificate) and
 * tls-key.pem (its ECDSA P-256 key, 0600, made with O_EXCL|O_NOFOLLOW and read back only with
 * the API key file's checks). For localhost, 127.0.0.1 and ::1, valid for a year.
 */
#pragma once

#include <stdbool.h>

#include "shared/err.h"

#define TLS_CERT_FILE "tls-cert.pem"
#define TLS_KEY_FILE "tls-key.pem"

/* Loads dir's pair, or makes and stores a new one when neither file exists. *ret_cert and
 * *ret_key are PEM text (malloc'd; wipe the key after use); *ret_created says whether it was
 * made now. One file without the other is refused (remove it). 0 or -errno with err set. */
int tls_self_signed(const char *dir, char **ret_cert, char **ret_key, bool *ret_created,
                    struct ak_err *err);
