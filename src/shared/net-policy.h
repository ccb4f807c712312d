/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Egress policy (docs/network.md, "The proxy"): which destinations a proxy-mode sandbox may
 * reach. Parsed from and written to the POLICY JSON that the control protocol, the API and
 * `network policy --set` carry; built from upstream's [security.domains] and from the CLI's
 * `--allow-host/--deny-host PATTERN[:PORT]`; and consulted by the proxy for every connection,
 * request and DNS answer.
 *
 * Matching. Rules are ordered, first match wins; none matching: the default action. A rule's host
 * is `*` (anything), `*.example.com` (the apex and every name under it, as upstream), an exact
 * name, an IPv4 address or an IPv4 CIDR. Names compare case-insensitively, a trailing dot
 * ignored. A name rule matches only a destination whose name is known; an address or CIDR rule
 * matches the destination's address (a named destination's is the address the proxy itself
 * resolved). Ports: absent = 80 and 443, `"*"` = any. Methods: a rule with methods matches only
 * plain HTTP requests with one of them (a tunnel has none).
 *
 * Special addresses: loopback, link-local (cloud metadata), private ranges, CGNAT, 0/8,
 * multicast and reserved space and the host's own addresses (net_policy_set_host_addrs) are
 * denied unless an allow rule with an address or CIDR containing the address matches (or the
 * policy's static "hosts" maps the destination's name to exactly that address): `*` and name
 * rules never open them, so a name that resolves into them is denied. IPv6 destinations are
 * denied (the proxy reaches upstream over IPv4 only).
 *
 * Must never: allocate or block in net_policy_decide (it is on every connection's path, and
 * must stay well under 50 us with the largest policy).
 */
#pragma once

#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cleanup.h"
#include "err.h"

#define NET_POLICY_MAX_RULES 1024
#define NET_POLICY_HOST_MAX 253 /* bytes of a host pattern or name */
#define NET_POLICY_MAX_HOSTS 256
#define NET_POLICY_MAX_PORTS 64   /* per rule */
#define NET_POLICY_MAX_METHODS 16 /* per rule */
#define NET_POLICY_METHOD_MAX 16  /* bytes of a method */
#define NET_POLICY_MAX_DNS 8
#define NET_POLICY_MAX_HOST_ADDRS 64
#define NET_POLICY_WHY_MAX 320

enum net_action {
        NET_DENY = 0,
        NET_ALLOW = 1,
};

enum net_rule_kind {
        NET_RULE_ANY,    /* "*" */
        NET_RULE_SUFFIX, /* "*.example.com": the apex and below */
        NET_RULE_NAME,   /* "api.example.com" */
        NET_RULE_CIDR,   /* "198.18.0.0/24", "198.18.0.7" (a /32) */
};

struct net_rule {
        enum net_action action;
        enum net_rule_kind kind;
        char *host;         /* as written, lowercased, trailing dot removed */
        const char *suffix; /* NET_RULE_SUFFIX: "example.com" (inside host) */
        uint32_t net, mask; /* NET_RULE_CIDR, host order */
        bool any_port;
        bool default_ports; /* "ports" absent: 80 and 443 */
        uint16_t ports[NET_POLICY_MAX_PORTS];
        size_t n_ports;
        char methods[NET_POLICY_MAX_METHODS][NET_POLICY_METHOD_MAX + 1]; /* uppercase */
        size_t n_methods;
};

struct net_static_host {
        char *name; /* lowercased, no trailing dot */
        struct in_addr addr;
};

struct net_policy {
        enum net_action default_action;
        struct net_rule *rules;
        size_t n_rules;
        struct net_static_host *hosts;
        size_t n_hosts;
        struct sockaddr_in dns_servers[NET_POLICY_MAX_DNS]; /* port 53 unless given */
        size_t n_dns_servers;                               /* 0: the host's resolv.conf */
        /* Not part of the JSON: the host's own addresses, set by the proxy. */
        struct in_addr host_addrs[NET_POLICY_MAX_HOST_ADDRS];
        size_t n_host_addrs;
};

struct net_decision {
        enum net_action action;
        int rule; /* index into rules, -1: the default, -2: an address class (no rule) */
        char why[NET_POLICY_WHY_MAX]; /* "rule 3: deny *.evil.example" (1-based), "default deny",
                                         "private address 10.0.0.1", ... */
};

/* A new empty policy with the given default action; NULL on OOM. Free with net_policy_free. */
struct net_policy *net_policy_new(enum net_action default_action);

/* Frees p and everything it owns. NULL is fine. */
void net_policy_free(struct net_policy *p);
DEFINE_CLEANUP(struct net_policy, net_policy_free)
#define cleanup_net_policy CLEANUP_FUNC(net_policy_free)

/* Parses and validates POLICY JSON (docs/network.md): unknown keys, wrong types, bad patterns,
 * ports or addresses and every limit above are refused with a message naming the place
 * ("rules[3].host: ..."). On success *ret owns a new policy; on failure *ret is untouched. */
int net_policy_from_json(const json_t *j, struct net_policy **ret, struct ak_err *err);

/* The same from JSON text of at most len bytes (NUL not needed). */
int net_policy_from_text(const char *text, size_t len, struct net_policy **ret, struct ak_err *err);

/* The policy as POLICY JSON (from_json(to_json(p)) is p). A new reference; NULL on OOM. */
json_t *net_policy_to_json(const struct net_policy *p);

/* Inserts a rule parsed from `PATTERN[:PORT]` (PORT a number or `*`; without it, 80 and 443)
 * before rules[index] (index >= n_rules appends). -EINVAL with a message on a bad pattern or
 * port, -E2BIG past the rule limit; the policy is unchanged then. */
int net_policy_insert_text(struct net_policy *p, size_t index, enum net_action action,
                           const char *text, struct ak_err *err);

/* Upstream's [security.domains]: allowlist_only -> default deny, else default allow; block
 * globs -> deny rules first, allow globs -> allow rules after them; every port (upstream's
 * proxy passed any CONNECT port). allow and block are NULL-terminated and may be NULL. */
int net_policy_from_domains(char *const *allow, char *const *block, bool allowlist_only,
                            struct net_policy **ret, struct ak_err *err);

/* The built-in policy of a proxy-mode sandbox that names no rules: default deny, allow the
 * coding agents' model APIs, package registries and git hosting (the list is in net-policy.c,
 * and docs/network.md copies it). */
int net_policy_builtin(struct net_policy **ret, struct ak_err *err);

/* The names the built-in policy allows, NULL-terminated (for docs and `--help`). */
extern const char *const net_policy_builtin_hosts[];

/* Sets the host's own addresses (at most NET_POLICY_MAX_HOST_ADDRS; more are ignored), denied
 * like loopback. */
void net_policy_set_host_addrs(struct net_policy *p, const struct in_addr *addrs, size_t n);

/* Decides a destination: host (a name or an address literal; NULL when unknown), addr (the
 * address the proxy would connect to: AF_INET or AF_INET6; NULL when not resolved yet), port
 * (0: a DNS question: ports and methods are not known, so a name is allowed when some rule
 * could allow it and no rule denies it on every port) and method (NULL: a tunnel or raw TCP).
 * With neither host nor addr, denies. Never allocates. Fills *d and returns d->action. */
enum net_action net_policy_decide(const struct net_policy *p, const char *host,
                                  const struct sockaddr *addr, uint16_t port, const char *method,
                                  struct net_decision *d);

/* The static address of name in p's "hosts" (case-insensitive, trailing dot ignored). */
bool net_policy_static_host(const struct net_policy *p, const char *name, struct in_addr *ret);

/* Is a an address that only an explicit address/CIDR rule opens (loopback, private, link-local,
 * CGNAT, 0/8, multicast, reserved, broadcast)? Network order. Sets *what to the class's name. */
bool net_addr_is_special(struct in_addr a, const char **what);

/* Normalises a host name for matching into buf (lowercase, trailing dot removed) and checks it
 * is a plausible DNS name (labels of [a-z0-9_-], 1..63 bytes, <= 253 in all, the last label not
 * numeric). -EINVAL when it is not. */
int net_host_normalise(const char *name, char buf[NET_POLICY_HOST_MAX + 1]);
