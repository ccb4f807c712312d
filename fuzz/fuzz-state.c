// SPDX-License-Identifier: Apache-2.0
/* Fuzz target: the state-file loader. Anything it accepts must format and parse back to the
 * same text (no field silently lost or changed). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct sandbox_state *a = NULL, *b = NULL;
        char *t1 = NULL, *t2 = NULL;

        if (state_parse((const char *)data, size, &a, NULL) < 0)
                return 0;
        if (state_format(a, &t1) < 0)
                abort();
        if (state_parse(t1, strlen(t1), &b, NULL) < 0)
                abort(); /* we wrote something we cannot read */
        if (state_format(b, &t2) < 0 || strcmp(t1, t2) != 0)
                abort(); /* not a fixed point: a field changed on the way */
        free(t1);
        free(t2);
        state_free(a);
        state_free(b);
        return 0;
}
