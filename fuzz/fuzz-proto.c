// SPDX-License-Identifier: Apache-2.0
/* Fuzz target: the agent protocol decoder, as fed by a hostile peer (either side). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "agent/proto.h"
#include "shared/cleanup.h"
#include "shared/strv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        size_t off = 0;

        while (off < size) {
                struct ak_msg m;
                ssize_t n = ak_frame_parse(data + off, size - off, &m);
                if (n <= 0)
                        break;
                off += (size_t)n;
                if (ak_msg_validate(&m) < 0)
                        continue;
                for (uint16_t tag = 0; tag < 32; tag++) {
                        uint64_t v;
                        char *s = NULL;
                        char **strv = NULL;
                        const uint8_t *p;
                        size_t len, count;
                        (void)ak_get_u64(&m, tag, &v);
                        if (ak_get_str(&m, tag, &s) == 0)
                                free(s);
                        if (ak_get_strv(&m, tag, AK_MAX_ARGS, &strv, &count) == 0)
                                strv_free(strv);
                        (void)ak_get_bytes(&m, tag, &p, &len);
                }
        }
        return 0;
}
