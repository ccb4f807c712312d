// SPDX-License-Identifier: Apache-2.0
/* Fuzz target: image references, manifests, indexes and image configs from a registry. What is
 * accepted must hold its invariants: valid digests, sizes >= 0, counts within the limits. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image/manifest.h"
#include "image/ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct manifest m;
        struct image_config c;
        struct image_ref ref;
        char name[IMAGE_REF_MAX + 2];

        if (manifest_parse((const char *)data, size, NULL, &m, NULL) == 0) {
                if (m.n_layers > MANIFEST_MAX_LAYERS || m.n_manifests > INDEX_MAX_ENTRIES)
                        abort();
                for (size_t i = 0; i < m.n_layers; i++)
                        if (!image_digest_valid(m.layers[i].digest) || m.layers[i].size < 0)
                                abort();
                for (size_t i = 0; i < m.n_manifests; i++)
                        if (!image_digest_valid(m.manifests[i].digest))
                                abort();
                if (m.kind == MANIFEST_INDEX) {
                        const struct descriptor *d;
                        if (manifest_pick(&m, "linux", "amd64", NULL, &d, NULL) == 0 &&
                            (!d->arch || strcmp(d->arch, "amd64") != 0))
                                abort();
                }
                manifest_done(&m);
        }
        if (image_config_parse((const char *)data, size, &c, NULL) == 0) {
                for (size_t i = 0; i < c.n_diff_ids; i++)
                        if (!image_digest_valid(c.diff_ids[i]))
                                abort();
                image_config_done(&c);
        }
        /* the same bytes as an image name */
        if (size <= IMAGE_REF_MAX && !memchr(data, 0, size)) {
                memcpy(name, data, size);
                name[size] = '\0';
                if (image_ref_parse(name, &ref, NULL) == 0) {
                        char *canon = image_ref_canonical(&ref);
                        struct image_ref again;
                        /* the canonical form parses back to itself (when within the limit
                         * on names: normalising adds "docker.io/library/" and ":latest") */
                        if (!canon)
                                abort();
                        if (strlen(canon) > IMAGE_REF_MAX) {
                                free(canon);
                                image_ref_done(&ref);
                                return 0;
                        }
                        if (image_ref_parse(canon, &again, NULL) < 0)
                                abort();
                        if (strcmp(again.registry, ref.registry) ||
                            strcmp(again.repository, ref.repository))
                                abort();
                        image_ref_done(&again);
                        free(canon);
                        image_ref_done(&ref);
                }
        }
        return 0;
}
