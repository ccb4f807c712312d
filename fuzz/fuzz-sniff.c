// SPDX-License-Identifier: Apache-2.0
/* Fuzz target: what a sandbox's first bytes and DNS queries are made to say (src/proxy/sniff.c):
 * the TLS SNI reader, the HTTP sniff, the DNS query parser and the reply built from what it
 * parsed. A name found is NUL-terminated, printable and within its bound; a reply fits its
 * buffer. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/sniff.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char name[SNIFF_NAME_MAX + 1];
        struct dns_question q;
        uint8_t out[DNS_MSG_MAX];
        struct in_addr a[2] = {{0x01020304}, {0x05060708}};

        if (sniff_tls_sni(data, size, name) == 1) {
                size_t n = strlen(name);
                if (n == 0 || n > SNIFF_NAME_MAX)
                        abort();
                for (size_t i = 0; i < n; i++)
                        if (name[i] <= 0x20 || name[i] > 0x7e)
                                abort();
        }
        (void)sniff_http(data, size);
        if (size <= DNS_MSG_MAX && dns_parse_query(data, size, &q) == 0) {
                if (strlen(q.name) > SNIFF_NAME_MAX || q.question_end > size)
                        abort();
                if (dns_build_reply(data, &q, 0, a, 2, 60, out) > DNS_MSG_MAX)
                        abort();
        }
        return 0;
}
