// SPDX-License-Identifier: Apache-2.0
/* Fuzz target: the layer unpacker on arbitrary (tar, gzip, zstd) bytes. Whatever it accepts or
 * refuses, nothing may appear outside the directory it unpacks into: each input is unpacked into
 * <scratch>/root and <scratch> must hold nothing but root afterwards. */
#include <dirent.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/unpack.h"
#include "shared/fd-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char scratch[64];

static void check_scratch(void)
{
        DIR *d = opendir(scratch);
        struct dirent *de;

        if (!d)
                abort();
        while ((de = readdir(d)))
                if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
                    strcmp(de->d_name, "root"))
                        abort(); /* something escaped the layer directory */
        closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char root[96];
        int fd, dir;

        if (!scratch[0]) {
                (void)snprintf(scratch, sizeof(scratch), "/tmp/ak-fuzz-layer-XXXXXX");
                if (!mkdtemp(scratch))
                        abort();
        }
        (void)snprintf(root, sizeof(root), "%s/root", scratch);
        if (mkdir(root, 0755) < 0)
                abort();
        fd = memfd_create("layer", MFD_CLOEXEC);
        if (fd < 0 || write_all(fd, data, size) < 0 || lseek(fd, 0, SEEK_SET) < 0)
                abort();
        dir = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0)
                abort();
        (void)layer_unpack(fd, dir, NULL, NULL);
        close(dir);
        close(fd);
        check_scratch();
        if (rm_rf_at(AT_FDCWD, root) < 0)
                abort();
        return 0;
}
