/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Files the host writes from data it does not trust, or reads, at paths a user names (cp,
 * recordings): never through a symlink another user could have planted.
 */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <sys/types.h>

#include "err.h"

/*
 * A file the host writes from data it does not trust (a sandbox's), at a path another user may
 * share (/tmp, their home): never written through a symlink or into a file someone else planted.
 * The data goes to a file only this process can reach (O_TMPFILE, or a random name created with
 * O_CREAT|O_EXCL|O_NOFOLLOW where the filesystem has no O_TMPFILE), owned by the caller, and
 * becomes visible under its final name only by rename(2), which replaces whatever was there (a
 * symlink included: replaced, never followed).
 */
struct out_file {
        int dir_fd;              /* the directory the file goes into */
        int fd;                  /* the file, open for writing */
        char name[NAME_MAX + 1]; /* its final name in dir_fd */
        char tmp[NAME_MAX + 1];  /* its temporary name, "" while it has none */
        bool published;
};

#define OUT_FILE_INIT                                                                              \
        {                                                                                          \
                .dir_fd = -1, .fd = -1                                                             \
        }

/* Prepares to write dest. No symlink owned by anyone but the caller or root is followed anywhere
 * on dest's way (the rule of fs.protected_symlinks, applied in every directory): one in dest's
 * directory part is an error (-ELOOP); one at dest itself is replaced by the file. A symlink at
 * dest is never written through: it is followed only when it (and every link after it) is the
 * caller's or root's and leads to a directory. When dest is a directory (or such a symlink to
 * one, or ends with '/'), the file goes inside it under name_if_dir, a plain name (NULL: a
 * directory is an error). On success *ret owns two fds: out_file_abort() or out_file_publish()
 * releases them. */
int out_file_open(const char *dest, const char *name_if_dir, struct out_file *ret,
                  struct ak_err *err);

/* Gives the file mode (only its 0777 bits: setuid, setgid and sticky never survive) less the
 * process umask, and renames it over its final name. The fd stays open for more writes (a
 * recording keeps appending); out_file_abort() closes it afterwards. Reads the umask with
 * umask(2): not for threaded callers. */
int out_file_publish(struct out_file *f, mode_t mode, struct ak_err *err);

/* Closes the file; if it was never published, nothing of it remains. Accepts an unopened one. */
void out_file_abort(struct out_file *f);

/* Testing only: makes out_file_open use a named temporary file (as without O_TMPFILE). */
void out_file_force_named(bool on);

/* Opens path for reading a file the caller names: no symlink owned by anyone but the caller or
 * root is followed anywhere on its way (-ELOOP), and a FIFO does not block the open. Returns the
 * fd (blocking reads) or -errno. */
int open_source_file(const char *path);
