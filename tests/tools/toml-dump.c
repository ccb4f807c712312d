// SPDX-License-Identifier: Apache-2.0
/* Test tool: parses a TOML file with agentkernel's reader and prints it as JSON, or the error
 * (exit 1). Used by the conformance test against the toml-test suite. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#include "shared/buf.h"
#include "shared/fd-util.h"
#include "shared/toml.h"

int main(int argc, char **argv)
{
        struct buf b = BUF_INIT;
        struct ak_err err = {0};
        json_t *doc = NULL;
        char *out;

        if (argc != 2) {
                fprintf(stderr, "usage: toml-dump FILE\n");
                return 2;
        }
        if (read_file_at(AT_FDCWD, argv[1], &b, TOML_MAX_BYTES + 1) < 0) {
                perror(argv[1]);
                return 2;
        }
        if (toml_parse(b.data ? b.data : "", b.len, &doc, &err) < 0) {
                printf("error: %s\n", ak_err_msg(&err));
                buf_done(&b);
                return 1;
        }
        out = json_dumps(doc, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY |
                                  JSON_REAL_PRECISION(17));
        printf("%s\n", out ? out : "null");
        free(out);
        json_decref(doc);
        buf_done(&b);
        return 0;
}
