/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a transparent connection's first bytes say about its destination, and the DNS messages
 * the proxy's responder reads and writes. Pure functions over bytes a sandbox sent: every length
 * is checked against the buffer, nothing is allocated, nothing is trusted.
 */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SNIFF_NAME_MAX 253

/* The server name of a TLS ClientHello at the start of buf. Returns 1 with the name (lowercase
 * as sent, NUL-terminated) in name, 0 for a complete ClientHello without a usable host_name,
 * -EAGAIN when more bytes are needed, -EINVAL when buf does not start a TLS handshake. */
int sniff_tls_sni(const uint8_t *buf, size_t len, char name[SNIFF_NAME_MAX + 1]);

/* Does buf start like an HTTP/1 request ("TOKEN " with an upper-case method)? -EAGAIN when it
 * is too short to say. */
int sniff_http(const uint8_t *buf, size_t len);

/* A parsed DNS question. */
struct dns_question {
        uint16_t id, flags, qtype, qclass;
        char name[SNIFF_NAME_MAX + 2]; /* dotted, as asked (no trailing dot) */
        size_t question_end;           /* offset after the question */
};

#define DNS_TYPE_A 1
#define DNS_TYPE_AAAA 28
#define DNS_CLASS_IN 1
#define DNS_RCODE_NOERROR 0
#define DNS_RCODE_FORMERR 1
#define DNS_RCODE_SERVFAIL 2
#define DNS_RCODE_NXDOMAIN 3
#define DNS_RCODE_NOTIMP 4
#define DNS_RCODE_REFUSED 5
#define DNS_MSG_MAX 512 /* what the responder answers with (UDP without EDNS) */

/* Parses a query with exactly one question (no compression in it). -EINVAL for a malformed
 * message, a response, or more than one question; -ENOTSUP for an opcode other than QUERY (the
 * id is still filled in so a NOTIMP can be sent). */
int dns_parse_query(const uint8_t *msg, size_t len, struct dns_question *q);

/* Writes the response to q into out (at least DNS_MSG_MAX bytes): rcode, and for NOERROR the
 * given IPv4 addresses (at most 16) as A records with ttl. The question is copied from query.
 * Returns the length. */
size_t dns_build_reply(const uint8_t *query, const struct dns_question *q, int rcode,
                       const struct in_addr *addrs, size_t n_addrs, uint32_t ttl,
                       uint8_t out[DNS_MSG_MAX]);
