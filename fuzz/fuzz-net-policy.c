// SPDX-License-Identifier: Apache-2.0
/* Fuzz target: POLICY JSON (src/shared/net-policy.c), which API clients send. An accepted policy
 * respects every limit, writes back to JSON that parses to the same JSON, and decides. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/json-util.h"
#include "shared/net-policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct net_policy *p = NULL, *q = NULL;
        struct net_decision d;
        json_t *j, *j2;
        char *s1, *s2;

        if (net_policy_from_text((const char *)data, size, &p, NULL) < 0)
                return 0;
        if (p->n_rules > NET_POLICY_MAX_RULES || p->n_hosts > NET_POLICY_MAX_HOSTS ||
            p->n_dns_servers > NET_POLICY_MAX_DNS)
                abort();
        j = net_policy_to_json(p);
        if (!j || net_policy_from_json(j, &q, NULL) < 0)
                abort();
        j2 = net_policy_to_json(q);
        s1 = json_dumps(j, JSON_SORT_KEYS);
        s2 = json_dumps(j2, JSON_SORT_KEYS);
        if (!s1 || !s2 || strcmp(s1, s2) != 0)
                abort();
        (void)net_policy_decide(p, "api.example.com", NULL, 443, "GET", &d);
        (void)net_policy_decide(p, "10.0.0.1", NULL, 0, NULL, &d);
        free(s1);
        free(s2);
        json_decref(j);
        json_decref(j2);
        net_policy_free(p);
        net_policy_free(q);
        return 0;
}
