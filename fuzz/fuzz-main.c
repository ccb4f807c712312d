// SPDX-License-Identifier: Apache-2.0
/*
 * Replays fuzz inputs without libFuzzer (systemd's fuzz-main): every file named on the command
 * line, or every file in a named directory, goes through LLVMFuzzerTestOneInput once. This is how
 * each corpus, and every crash ever found, stays a test in the normal and sanitizer builds.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "shared/buf.h"
#include "shared/fd-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
        struct buf b = BUF_INIT;
        int r = read_file_at(AT_FDCWD, path, &b, 64u << 20);
        if (r < 0) {
                fprintf(stderr, "cannot read %s\n", path);
                return 1;
        }
        (void)LLVMFuzzerTestOneInput((const uint8_t *)(b.data ? b.data : ""), b.len);
        buf_done(&b);
        return 0;
}

int main(int argc, char **argv)
{
        int failures = 0, count = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
                        DIR *d = opendir(argv[i]);
                        struct dirent *de;
                        while (d && (de = readdir(d))) {
                                char p[4096];
                                if (de->d_name[0] == '.')
                                        continue;
                                (void)snprintf(p, sizeof(p), "%s/%s", argv[i], de->d_name);
                                failures += run_file(p);
                                count++;
                        }
                        if (d)
                                closedir(d);
                } else {
                        failures += run_file(argv[i]);
                        count++;
                }
        }
        printf("replayed %d inputs\n", count);
        return failures ? 1 : 0;
}
