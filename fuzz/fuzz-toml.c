// SPDX-License-Identifier: Apache-2.0
/* Fuzz target: the TOML reader and the agentkernel.toml schema on top of it. Errors must carry a
 * position; anything accepted must be a table that serialises. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "shared/toml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct ak_err err = {0};
        struct config *c = NULL;
        json_t *doc = NULL;
        char *text;

        if (toml_parse((const char *)data, size, &doc, &err) < 0) {
                if (err.code == EINVAL && strncmp(err.msg, "line ", 5) != 0)
                        abort(); /* a syntax error without its position */
                return 0;
        }
        if (!json_is_object(doc))
                abort();
        text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!text)
                abort();
        free(text);
        json_decref(doc);
        if (config_parse((const char *)data, size, "/nonexistent", &c, NULL) == 0)
                config_free(c);
        return 0;
}
