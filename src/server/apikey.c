// SPDX-License-Identifier: Apache-2.0
/*
 * The generated API key file of `serve` (see apikey.h). It must never adopt a file another user
 * could have planted or can read: no symlink is followed to it, a FIFO or device is not opened
 * for long, and its owner and mode are checked on the open descriptor.
 */
#include "apikey.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/paths.h"
#include "shared/buf.h"
#include "shared/cleanup.h"
#include "shared/fd-util.h"
#include "shared/random-util.h"

#define KEY_BYTES 32
#define KEY_FILE_MAX (64u << 10)

int apikey_default_dir(char **ret, struct ak_err *err)
{
        int fd = paths_user_dir_open(ret, err); /* created 0700 and checked as private */

        if (fd < 0)
                return fd;
        close(fd);
        return 0;
}

static int check_dir(int dfd, const char *dir, struct ak_err *err)
{
        struct stat st;

        if (fstat(dfd, &st) < 0)
                return ak_err_errno(err, errno, "cannot stat '%s'", dir);
        if (st.st_uid != geteuid() && st.st_uid != 0)
                return ak_err_set(err, EPERM,
                                  "'%s' belongs to uid %u, not to you: it cannot hold your API "
                                  "key; give --api-key-file, or set AGENTKERNEL_DATA_DIR",
                                  dir, (unsigned)st.st_uid);
        if (st.st_mode & (S_IWGRP | S_IWOTH))
                return ak_err_set(err, EPERM,
                                  "'%s' is writable by other users (mode %03o): they could replace "
                                  "the API key; fix it with: chmod go-w '%s'",
                                  dir, (unsigned)(st.st_mode & 07777), dir);
        return 0;
}

static bool has_key(const char *text)
{
        for (; *text; text++)
                if (*text != ' ' && *text != '\t' && *text != '\n' && *text != '\r')
                        return true;
        return false;
}

static int read_key_file(int dfd, const char *file, const char *path, char **ret_text,
                         struct ak_err *err)
{
        cleanup_close int fd = -1;
        cleanup_buf struct buf b = BUF_INIT;
        struct stat st;
        int r;

        fd = openat(dfd, file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ENOENT)
                        return -ENOENT;
                if (errno == ELOOP)
                        return ak_err_set(err, ELOOP,
                                          "'%s' is a symbolic link: refusing to use it as a key "
                                          "file; remove it (a new key is made for a default one)",
                                          path);
                return ak_err_errno(err, errno, "cannot open '%s'", path);
        }
        if (fstat(fd, &st) < 0)
                return ak_err_errno(err, errno, "cannot stat '%s'", path);
        if (!S_ISREG(st.st_mode))
                return ak_err_set(err, EPERM,
                                  "'%s' is not a regular file: refusing to use it as a key file",
                                  path);
        if (st.st_uid != geteuid())
                return ak_err_set(err, EPERM,
                                  "'%s' belongs to uid %u, not to you: refusing to use a key "
                                  "someone else may know; remove it to have a new one made",
                                  path, (unsigned)st.st_uid);
        if (st.st_mode & 077)
                return ak_err_set(err, EPERM,
                                  "'%s' can be read or written by other users (mode %03o): the "
                                  "key may be known; remove it to have a new one made (or, if "
                                  "it never left your hands: chmod 600 '%s')",
                                  path, (unsigned)(st.st_mode & 07777), path);
        r = read_fd_full(fd, &b, KEY_FILE_MAX);
        if (r < 0)
                return ak_err_errno(err, r, "cannot read '%s'", path);
        if (buf_append(&b, "", 1) < 0)
                return ak_err_oom(err);
        *ret_text = TAKE_PTR(b.data);
        return 0;
}

static int create_key_file(int dfd, const char *file, const char *path, char **ret_text,
                           struct ak_err *err)
{
        cleanup_close int fd = -1;
        char key[2 * KEY_BYTES + 2];
        int r;

        fd = openat(dfd, file, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return errno == EEXIST ? -EEXIST
                                       : ak_err_errno(err, errno, "cannot create '%s'", path);
        random_hex(key, KEY_BYTES);
        key[2 * KEY_BYTES] = '\n';
        key[2 * KEY_BYTES + 1] = '\0';
        r = write_all(fd, key, sizeof(key) - 1);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (r < 0) {
                (void)unlinkat(dfd, file, 0);
                return ak_err_errno(err, r, "cannot write '%s'", path);
        }
        (void)fsync(dfd);
        *ret_text = strdup(key);
        return *ret_text ? 0 : ak_err_oom(err);
}

int apikey_load_or_create(const char *dir, char **ret_text, bool *ret_created, struct ak_err *err)
{
        return apikey_secret_load_or_create(dir, APIKEY_FILE_NAME, ret_text, ret_created, err);
}

int apikey_read_private_file(const char *path, char **ret_text, struct ak_err *err)
{
        int r = read_key_file(AT_FDCWD, path, path, ret_text, err);

        if (r == -ENOENT)
                return ak_err_set(err, ENOENT, "'%s' does not exist", path);
        if (r == 0 && !has_key(*ret_text)) {
                free(*ret_text);
                *ret_text = NULL;
                return ak_err_set(err, EINVAL, "'%s' is empty", path);
        }
        return r;
}

int apikey_secret_load_or_create(const char *dir, const char *file, char **ret_text,
                                 bool *ret_created, struct ak_err *err)
{
        cleanup_free char *path = NULL;
        cleanup_close int dfd = -1;
        int r;

        *ret_text = NULL;
        *ret_created = false;
        if (asprintf(&path, "%s/%s", dir, file) < 0) {
                path = NULL;
                return ak_err_oom(err);
        }
        r = mkdir_p(dir, 0700);
        if (r < 0)
                return ak_err_errno(err, r, "cannot create '%s'", dir);
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return ak_err_errno(err, errno, "cannot open '%s'", dir);
        r = check_dir(dfd, dir, err);
        if (r < 0)
                return r;
        /* a server starting at the same moment may be writing it: a few tries */
        for (int tries = 0; tries < 20; tries++) {
                r = read_key_file(dfd, file, path, ret_text, err);
                if (r == -ENOENT) {
                        r = create_key_file(dfd, file, path, ret_text, err);
                        if (r == 0) {
                                *ret_created = true;
                                return 0;
                        }
                        if (r != -EEXIST)
                                return r;
                        continue;
                }
                if (r < 0)
                        return r;
                if (has_key(*ret_text))
                        return 0;
                free(*ret_text);
                *ret_text = NULL;
                (void)usleep(50000);
        }
        return ak_err_set(err, EINVAL,
                          "'%s' holds no key: remove it to have a new one made, or write a "
                          "key into it",
                          path);
}
