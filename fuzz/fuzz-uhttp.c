// SPDX-License-Identifier: Apache-2.0
/* Fuzz target: engine API responses (uhttp_parse on http-parser). Accepted responses respect the
 * body limit and carry a status; nothing read may overflow the Api-Version field. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/uhttp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct uhttp_response r;

        if (uhttp_parse((const char *)data, size, 4096, &r, NULL) == 0) {
                if (r.body.len > 4096 || r.status < 100 || r.status > 599 ||
                    strlen(r.api_version) >= sizeof(r.api_version))
                        abort();
                uhttp_response_done(&r);
        }
        return 0;
}
