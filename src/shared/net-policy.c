// SPDX-License-Identifier: Apache-2.0
/* Egress policy (net-policy.h): the POLICY JSON's parser and writer, rules from text and from
 * upstream's [security.domains], the built-in allow list, and the decision. The parser trusts
 * nothing it is given (the JSON may come from an API client); the decision never allocates. */
#include "net-policy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json-util.h"
#include "macro.h"

/* The built-in allow list for coding agents: their model APIs, package registries and git
 * hosting. One place: docs/network.md copies it. Git hosts also get port 22 (git over ssh). */
const char *const net_policy_builtin_hosts[] = {
    /* model APIs */
    "api.anthropic.com",
    "statsig.anthropic.com",
    "api.openai.com",
    "generativelanguage.googleapis.com",
    "api.mistral.ai",
    "openrouter.ai",
    /* package registries */
    "registry.npmjs.org",
    "registry.yarnpkg.com",
    "pypi.org",
    "files.pythonhosted.org",
    "crates.io",
    "static.crates.io",
    "index.crates.io",
    "proxy.golang.org",
    "sum.golang.org",
    "rubygems.org",
    "repo.maven.apache.org",
    "repo1.maven.org",
    "deb.debian.org",
    "security.debian.org",
    "archive.ubuntu.com",
    "security.ubuntu.com",
    "dl-cdn.alpinelinux.org",
    /* git hosting (ports 22, 80, 443) */
    "github.com",
    "*.github.com",
    "*.githubusercontent.com",
    "gitlab.com",
    "bitbucket.org",
    NULL,
};
#define BUILTIN_FIRST_GIT "github.com"

static const char *action_name(enum net_action a)
{
        return a == NET_ALLOW ? "allow" : "deny";
}

static void rule_done(struct net_rule *r)
{
        free(r->host);
        r->host = NULL;
}

void net_policy_free(struct net_policy *p)
{
        if (!p)
                return;
        for (size_t i = 0; i < p->n_rules; i++)
                rule_done(&p->rules[i]);
        free(p->rules);
        for (size_t i = 0; i < p->n_hosts; i++)
                free(p->hosts[i].name);
        free(p->hosts);
        free(p);
}

struct net_policy *net_policy_new(enum net_action default_action)
{
        struct net_policy *p = calloc(1, sizeof(*p));
        if (p)
                p->default_action = default_action;
        return p;
}

int net_host_normalise(const char *name, char buf[NET_POLICY_HOST_MAX + 1])
{
        size_t len = strlen(name), label = 0, last = 0;
        bool numeric = true;

        if (len > 0 && name[len - 1] == '.')
                len--;
        if (len == 0 || len > NET_POLICY_HOST_MAX)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)name[i];
                if (c == '.') {
                        if (label == 0)
                                return -EINVAL;
                        label = 0;
                        last = i + 1;
                        numeric = true;
                        buf[i] = '.';
                        continue;
                }
                if (!isalnum(c) && c != '-' && c != '_')
                        return -EINVAL;
                if (!isdigit(c))
                        numeric = false;
                if (++label > 63)
                        return -EINVAL;
                buf[i] = (char)tolower(c);
        }
        buf[len] = '\0';
        if (label == 0)
                return -EINVAL;
        /* A numeric last label (or 0x...) is an address in some resolver's eyes ("2130706433",
         * "0x7f.1"), never a DNS name: refused, so such tricks are not matched as names. */
        if (numeric || (buf[last] == '0' && buf[last + 1] == 'x'))
                return -EINVAL;
        return 0;
}

/* A strict dotted quad (inet_pton's AF_INET form) into host order. */
static bool parse_ipv4(const char *s, uint32_t *ret)
{
        struct in_addr a;
        if (inet_pton(AF_INET, s, &a) != 1)
                return false;
        *ret = ntohl(a.s_addr);
        return true;
}

/* Parses a host pattern into r's kind, host, suffix, net and mask. */
static int parse_host_pattern(struct net_rule *r, const char *s, struct ak_err *err)
{
        char buf[NET_POLICY_HOST_MAX + 1];
        const char *slash;
        uint32_t ip;

        if (strlen(s) > NET_POLICY_HOST_MAX)
                return ak_err_set(err, EINVAL, "host pattern longer than %d bytes",
                                  NET_POLICY_HOST_MAX);
        if (streq(s, "*")) {
                r->kind = NET_RULE_ANY;
                r->host = strdup("*");
                return r->host ? 0 : ak_err_oom(err);
        }
        if (strchr(s, ':'))
                return ak_err_set(err, EINVAL,
                                  "'%s': IPv6 is not supported (a proxy-mode sandbox has no "
                                  "IPv6 route; the proxy connects over IPv4)",
                                  s);
        slash = strchr(s, '/');
        if (slash || parse_ipv4(s, &ip)) {
                char addr[INET_ADDRSTRLEN];
                unsigned long bits = 32;
                size_t alen = slash ? (size_t)(slash - s) : strlen(s);
                if (alen >= sizeof(addr))
                        return ak_err_set(err, EINVAL, "'%s' is not an IPv4 address or CIDR", s);
                memcpy(addr, s, alen);
                addr[alen] = '\0';
                if (!parse_ipv4(addr, &ip))
                        return ak_err_set(err, EINVAL, "'%s' is not an IPv4 address or CIDR", s);
                if (slash) {
                        char *end;
                        if (!isdigit((unsigned char)slash[1]))
                                return ak_err_set(err, EINVAL, "'%s': bad prefix length", s);
                        errno = 0;
                        bits = strtoul(slash + 1, &end, 10);
                        if (*end || errno || bits > 32)
                                return ak_err_set(err, EINVAL, "'%s': bad prefix length", s);
                }
                r->kind = NET_RULE_CIDR;
                r->mask = bits == 0 ? 0 : ~(uint32_t)0 << (32 - bits);
                r->net = ip & r->mask;
                if (r->net != ip)
                        return ak_err_set(err, EINVAL,
                                          "'%s': address has bits set outside the /%lu prefix", s,
                                          bits);
                r->host = strdup(s);
                return r->host ? 0 : ak_err_oom(err);
        }
        if (s[0] == '*') {
                if (s[1] != '.' || net_host_normalise(s + 2, buf) < 0)
                        return ak_err_set(err, EINVAL,
                                          "'%s' is not a host pattern ('*', '*.example.com', "
                                          "'host.example.com', an IPv4 address or CIDR)",
                                          s);
                r->kind = NET_RULE_SUFFIX;
                if (asprintf(&r->host, "*.%s", buf) < 0) {
                        r->host = NULL;
                        return ak_err_oom(err);
                }
                r->suffix = r->host + 2;
                return 0;
        }
        if (net_host_normalise(s, buf) < 0)
                return ak_err_set(err, EINVAL,
                                  "'%s' is not a host pattern ('*', '*.example.com', "
                                  "'host.example.com', an IPv4 address or CIDR)",
                                  s);
        r->kind = NET_RULE_NAME;
        r->host = strdup(buf);
        return r->host ? 0 : ak_err_oom(err);
}

static int parse_port_json(const json_t *v, uint16_t *ret)
{
        json_int_t n;
        if (!json_is_integer(v))
                return -EINVAL;
        n = json_integer_value(v);
        if (n < 1 || n > 65535)
                return -EINVAL;
        *ret = (uint16_t)n;
        return 0;
}

static int add_port(struct net_rule *r, uint16_t port, struct ak_err *err)
{
        for (size_t i = 0; i < r->n_ports; i++)
                if (r->ports[i] == port)
                        return 0;
        if (r->n_ports >= NET_POLICY_MAX_PORTS)
                return ak_err_set(err, E2BIG, "more than %d ports", NET_POLICY_MAX_PORTS);
        r->ports[r->n_ports++] = port;
        return 0;
}

static int parse_method(struct net_rule *r, const char *m, struct ak_err *err)
{
        size_t len = strlen(m);
        if (len == 0 || len > NET_POLICY_METHOD_MAX)
                return ak_err_set(err, EINVAL, "'%s' is not an HTTP method", m);
        for (size_t i = 0; i < len; i++)
                if (!isalpha((unsigned char)m[i]))
                        return ak_err_set(err, EINVAL, "'%s' is not an HTTP method", m);
        if (r->n_methods >= NET_POLICY_MAX_METHODS)
                return ak_err_set(err, E2BIG, "more than %d methods", NET_POLICY_MAX_METHODS);
        for (size_t i = 0; i <= len; i++)
                r->methods[r->n_methods][i] = (char)toupper((unsigned char)m[i]);
        r->n_methods++;
        return 0;
}

static int parse_rule(const json_t *j, struct net_rule *r, struct ak_err *err)
{
        const char *key;
        json_t *v;
        bool have_action = false, have_host = false;
        int rc;

        *r = (struct net_rule){.default_ports = true};
        if (!json_is_object(j))
                return ak_err_set(err, EINVAL, "a rule is an object");
        json_object_foreach ((json_t *)j, key, v) {
                if (streq(key, "action")) {
                        const char *a = json_string_value(v);
                        if (!a || (!streq(a, "allow") && !streq(a, "deny")))
                                return ak_err_set(err, EINVAL, "action: 'allow' or 'deny'");
                        r->action = streq(a, "allow") ? NET_ALLOW : NET_DENY;
                        have_action = true;
                } else if (streq(key, "host")) {
                        if (!json_is_string(v))
                                return ak_err_set(err, EINVAL, "host: a string");
                        rc = parse_host_pattern(r, json_string_value(v), err);
                        if (rc < 0)
                                return ak_err_prefix(err, "host");
                        have_host = true;
                } else if (streq(key, "ports")) {
                        size_t i;
                        json_t *p;
                        if (json_is_string(v) && streq(json_string_value(v), "*")) {
                                r->any_port = true;
                                r->default_ports = false;
                                continue;
                        }
                        if (!json_is_array(v) || json_array_size(v) == 0)
                                return ak_err_set(err, EINVAL,
                                                  "ports: a non-empty array of ports or \"*\"");
                        if (json_array_size(v) > NET_POLICY_MAX_PORTS)
                                return ak_err_set(err, E2BIG, "ports: more than %d",
                                                  NET_POLICY_MAX_PORTS);
                        r->default_ports = false;
                        json_array_foreach (v, i, p) {
                                uint16_t port;
                                if (parse_port_json(p, &port) < 0)
                                        return ak_err_set(err, EINVAL,
                                                          "ports[%zu]: a number 1..65535", i);
                                rc = add_port(r, port, err);
                                if (rc < 0)
                                        return ak_err_prefix(err, "ports");
                        }
                } else if (streq(key, "methods")) {
                        size_t i;
                        json_t *m;
                        if (!json_is_array(v) || json_array_size(v) == 0)
                                return ak_err_set(err, EINVAL,
                                                  "methods: a non-empty array of strings");
                        if (json_array_size(v) > NET_POLICY_MAX_METHODS)
                                return ak_err_set(err, E2BIG, "methods: more than %d",
                                                  NET_POLICY_MAX_METHODS);
                        json_array_foreach (v, i, m) {
                                if (!json_is_string(m))
                                        return ak_err_set(err, EINVAL, "methods[%zu]: a string", i);
                                rc = parse_method(r, json_string_value(m), err);
                                if (rc < 0)
                                        return ak_err_prefix(err, "methods[%zu]", i);
                        }
                } else {
                        return ak_err_set(err, EINVAL, "unknown key '%s'", key);
                }
        }
        if (!have_action)
                return ak_err_set(err, EINVAL, "action is required");
        if (!have_host)
                return ak_err_set(err, EINVAL, "host is required");
        return 0;
}

/* Parses "a.b.c.d" or "a.b.c.d:port". */
static int parse_dns_server(const char *s, struct sockaddr_in *ret)
{
        char addr[INET_ADDRSTRLEN];
        const char *colon = strchr(s, ':');
        size_t alen = colon ? (size_t)(colon - s) : strlen(s);
        unsigned long port = 53;
        uint32_t ip;

        if (alen >= sizeof(addr))
                return -EINVAL;
        memcpy(addr, s, alen);
        addr[alen] = '\0';
        if (!parse_ipv4(addr, &ip))
                return -EINVAL;
        if (colon) {
                char *end;
                if (!isdigit((unsigned char)colon[1]))
                        return -EINVAL;
                errno = 0;
                port = strtoul(colon + 1, &end, 10);
                if (*end || errno || port < 1 || port > 65535)
                        return -EINVAL;
        }
        *ret = (struct sockaddr_in){
            .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(ip)};
        return 0;
}

static int parse_hosts(const json_t *v, struct net_policy *p, struct ak_err *err)
{
        const char *name;
        json_t *a;

        if (!json_is_object(v))
                return ak_err_set(err, EINVAL, "hosts: an object of name: IPv4 address");
        if (json_object_size(v) > NET_POLICY_MAX_HOSTS)
                return ak_err_set(err, E2BIG, "hosts: more than %d", NET_POLICY_MAX_HOSTS);
        p->hosts = calloc(json_object_size(v) + 1, sizeof(*p->hosts));
        if (!p->hosts)
                return ak_err_oom(err);
        json_object_foreach ((json_t *)v, name, a) {
                char buf[NET_POLICY_HOST_MAX + 1];
                struct net_static_host *h = &p->hosts[p->n_hosts];
                uint32_t ip;
                if (net_host_normalise(name, buf) < 0)
                        return ak_err_set(err, EINVAL, "hosts: '%s' is not a host name", name);
                if (!json_is_string(a) || !parse_ipv4(json_string_value(a), &ip))
                        return ak_err_set(err, EINVAL, "hosts['%s']: an IPv4 address", name);
                for (size_t i = 0; i < p->n_hosts; i++)
                        if (streq(p->hosts[i].name, buf))
                                return ak_err_set(err, EINVAL, "hosts: '%s' given twice", buf);
                h->name = strdup(buf);
                if (!h->name)
                        return ak_err_oom(err);
                h->addr.s_addr = htonl(ip);
                p->n_hosts++;
        }
        return 0;
}

int net_policy_from_json(const json_t *j, struct net_policy **ret, struct ak_err *err)
{
        cleanup_net_policy struct net_policy *p = NULL;
        const char *key;
        json_t *v;
        int rc;

        if (!json_is_object(j))
                return ak_err_set(err, EINVAL, "policy: a JSON object");
        p = net_policy_new(NET_DENY);
        if (!p)
                return ak_err_oom(err);
        json_object_foreach ((json_t *)j, key, v) {
                if (streq(key, "default")) {
                        const char *a = json_string_value(v);
                        if (!a || (!streq(a, "allow") && !streq(a, "deny")))
                                return ak_err_set(err, EINVAL,
                                                  "policy: default: 'allow' or 'deny'");
                        p->default_action = streq(a, "allow") ? NET_ALLOW : NET_DENY;
                } else if (streq(key, "rules")) {
                        size_t i;
                        json_t *r;
                        if (!json_is_array(v))
                                return ak_err_set(err, EINVAL, "policy: rules: an array");
                        if (json_array_size(v) > NET_POLICY_MAX_RULES)
                                return ak_err_set(err, E2BIG, "policy: more than %d rules",
                                                  NET_POLICY_MAX_RULES);
                        p->rules = calloc(json_array_size(v) + 1, sizeof(*p->rules));
                        if (!p->rules)
                                return ak_err_oom(err);
                        json_array_foreach (v, i, r) {
                                rc = parse_rule(r, &p->rules[i], err);
                                if (rc < 0) {
                                        rule_done(&p->rules[i]);
                                        return ak_err_prefix(err, "policy: rules[%zu]", i);
                                }
                                p->n_rules++;
                        }
                } else if (streq(key, "hosts")) {
                        rc = parse_hosts(v, p, err);
                        if (rc < 0)
                                return ak_err_prefix(err, "policy");
                } else if (streq(key, "dns_servers")) {
                        size_t i;
                        json_t *s;
                        if (!json_is_array(v))
                                return ak_err_set(err, EINVAL,
                                                  "policy: dns_servers: an array of IPv4 "
                                                  "addresses");
                        if (json_array_size(v) > NET_POLICY_MAX_DNS)
                                return ak_err_set(err, E2BIG, "policy: dns_servers: more than %d",
                                                  NET_POLICY_MAX_DNS);
                        json_array_foreach (v, i, s) {
                                if (!json_is_string(s) ||
                                    parse_dns_server(json_string_value(s), &p->dns_servers[i]) < 0)
                                        return ak_err_set(err, EINVAL,
                                                          "policy: dns_servers[%zu]: an IPv4 "
                                                          "address, optionally with :PORT",
                                                          i);
                                p->n_dns_servers++;
                        }
                } else {
                        return ak_err_set(err, EINVAL, "policy: unknown key '%s'", key);
                }
        }
        *ret = TAKE_PTR(p);
        return 0;
}

int net_policy_from_text(const char *text, size_t len, struct net_policy **ret, struct ak_err *err)
{
        cleanup_json json_t *j = NULL;
        json_error_t jerr;

        j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!j)
                return ak_err_set(err, EINVAL, "policy: bad JSON at line %d: %s", jerr.line,
                                  jerr.text);
        return net_policy_from_json(j, ret, err);
}

static json_t *rule_json(const struct net_rule *r)
{
        json_t *o = json_object(), *a;

        if (!o)
                return NULL;
        if (json_object_set_new(o, "action", json_string(action_name(r->action))) < 0 ||
            json_object_set_new(o, "host", json_string(r->host)) < 0)
                goto fail;
        if (r->any_port) {
                if (json_object_set_new(o, "ports", json_string("*")) < 0)
                        goto fail;
        } else if (!r->default_ports) {
                a = json_array();
                if (json_object_set_new(o, "ports", a) < 0)
                        goto fail;
                for (size_t i = 0; i < r->n_ports; i++)
                        if (json_array_append_new(a, json_integer(r->ports[i])) < 0)
                                goto fail;
        }
        if (r->n_methods) {
                a = json_array();
                if (json_object_set_new(o, "methods", a) < 0)
                        goto fail;
                for (size_t i = 0; i < r->n_methods; i++)
                        if (json_array_append_new(a, json_string(r->methods[i])) < 0)
                                goto fail;
        }
        return o;
fail:
        json_decref(o);
        return NULL;
}

json_t *net_policy_to_json(const struct net_policy *p)
{
        cleanup_json json_t *o = json_object();
        json_t *rules = json_array(), *hosts = json_object();

        if (!o ||
            json_object_set_new(o, "default", json_string(action_name(p->default_action))) < 0)
                goto fail;
        if (json_object_set_new(o, "rules", rules) < 0) {
                rules = NULL;
                goto fail;
        }
        for (size_t i = 0; i < p->n_rules; i++)
                if (json_array_append_new(rules, rule_json(&p->rules[i])) < 0)
                        goto fail;
        if (json_object_set_new(o, "hosts", hosts) < 0) {
                hosts = NULL;
                goto fail;
        }
        for (size_t i = 0; i < p->n_hosts; i++) {
                char a[INET_ADDRSTRLEN];
                inet_ntop(AF_INET, &p->hosts[i].addr, a, sizeof(a));
                if (json_object_set_new(hosts, p->hosts[i].name, json_string(a)) < 0)
                        goto fail;
        }
        if (p->n_dns_servers) {
                json_t *d = json_array();
                if (json_object_set_new(o, "dns_servers", d) < 0)
                        goto fail;
                for (size_t i = 0; i < p->n_dns_servers; i++) {
                        char a[INET_ADDRSTRLEN + 8];
                        uint16_t port = ntohs(p->dns_servers[i].sin_port);
                        inet_ntop(AF_INET, &p->dns_servers[i].sin_addr, a, INET_ADDRSTRLEN);
                        if (port != 53)
                                snprintf(a + strlen(a), sizeof(a) - strlen(a), ":%u", port);
                        if (json_array_append_new(d, json_string(a)) < 0)
                                goto fail;
                }
        }
        return TAKE_PTR(o);
fail:
        return NULL;
}

/* Inserts r (taken) before index. */
static int insert_rule(struct net_policy *p, size_t index, struct net_rule *r, struct ak_err *err)
{
        struct net_rule *rules;

        if (p->n_rules >= NET_POLICY_MAX_RULES) {
                rule_done(r);
                return ak_err_set(err, E2BIG, "more than %d rules", NET_POLICY_MAX_RULES);
        }
        rules = realloc(p->rules, (p->n_rules + 1) * sizeof(*rules));
        if (!rules) {
                rule_done(r);
                return ak_err_oom(err);
        }
        p->rules = rules;
        if (index > p->n_rules)
                index = p->n_rules;
        memmove(&rules[index + 1], &rules[index], (p->n_rules - index) * sizeof(*rules));
        rules[index] = *r;
        if (rules[index].kind == NET_RULE_SUFFIX)
                rules[index].suffix = rules[index].host + 2;
        p->n_rules++;
        return 0;
}

int net_policy_insert_text(struct net_policy *p, size_t index, enum net_action action,
                           const char *text, struct ak_err *err)
{
        char pattern[NET_POLICY_HOST_MAX + 1];
        struct net_rule r = {.action = action, .default_ports = true};
        const char *colon = strrchr(text, ':');
        size_t plen = colon ? (size_t)(colon - text) : strlen(text);
        int rc;

        if (plen > NET_POLICY_HOST_MAX)
                return ak_err_set(err, EINVAL, "'%.64s...': host pattern longer than %d bytes",
                                  text, NET_POLICY_HOST_MAX);
        memcpy(pattern, text, plen);
        pattern[plen] = '\0';
        if (colon) {
                char *end;
                unsigned long port;
                if (streq(colon + 1, "*")) {
                        r.any_port = true;
                        r.default_ports = false;
                } else {
                        if (!isdigit((unsigned char)colon[1]))
                                return ak_err_set(err, EINVAL,
                                                  "'%s': the port is a number 1..65535 or '*'",
                                                  text);
                        errno = 0;
                        port = strtoul(colon + 1, &end, 10);
                        if (*end || errno || port < 1 || port > 65535)
                                return ak_err_set(err, EINVAL,
                                                  "'%s': the port is a number 1..65535 or '*'",
                                                  text);
                        r.default_ports = false;
                        r.ports[r.n_ports++] = (uint16_t)port;
                }
        }
        rc = parse_host_pattern(&r, pattern, err);
        if (rc < 0) {
                rule_done(&r);
                return rc;
        }
        return insert_rule(p, index, &r, err);
}

static int add_any_port_rule(struct net_policy *p, enum net_action action, const char *host,
                             struct ak_err *err)
{
        struct net_rule r = {.action = action, .any_port = true};
        int rc = parse_host_pattern(&r, host, err);
        if (rc < 0) {
                rule_done(&r);
                return rc;
        }
        return insert_rule(p, p->n_rules, &r, err);
}

int net_policy_from_domains(char *const *allow, char *const *block, bool allowlist_only,
                            struct net_policy **ret, struct ak_err *err)
{
        cleanup_net_policy struct net_policy *p =
            net_policy_new(allowlist_only ? NET_DENY : NET_ALLOW);
        int rc;

        if (!p)
                return ak_err_oom(err);
        for (char *const *b = block; b && *b; b++) {
                rc = add_any_port_rule(p, NET_DENY, *b, err);
                if (rc < 0)
                        return ak_err_prefix(err, "[security.domains] block");
        }
        for (char *const *a = allow; a && *a; a++) {
                rc = add_any_port_rule(p, NET_ALLOW, *a, err);
                if (rc < 0)
                        return ak_err_prefix(err, "[security.domains] allow");
        }
        *ret = TAKE_PTR(p);
        return 0;
}

int net_policy_builtin(struct net_policy **ret, struct ak_err *err)
{
        cleanup_net_policy struct net_policy *p = net_policy_new(NET_DENY);
        bool git = false;
        int rc;

        if (!p)
                return ak_err_oom(err);
        for (const char *const *h = net_policy_builtin_hosts; *h; h++) {
                git = git || streq(*h, BUILTIN_FIRST_GIT);
                rc = net_policy_insert_text(p, p->n_rules, NET_ALLOW, *h, err);
                if (rc < 0)
                        return rc;
                if (git) {
                        struct net_rule *r = &p->rules[p->n_rules - 1];
                        r->default_ports = false;
                        r->n_ports = 0;
                        r->ports[r->n_ports++] = 22;
                        r->ports[r->n_ports++] = 80;
                        r->ports[r->n_ports++] = 443;
                }
        }
        *ret = TAKE_PTR(p);
        return 0;
}

void net_policy_set_host_addrs(struct net_policy *p, const struct in_addr *addrs, size_t n)
{
        n = MIN(n, (size_t)NET_POLICY_MAX_HOST_ADDRS);
        memcpy(p->host_addrs, addrs, n * sizeof(*addrs));
        p->n_host_addrs = n;
}

bool net_policy_static_host(const struct net_policy *p, const char *name, struct in_addr *ret)
{
        char buf[NET_POLICY_HOST_MAX + 1];

        if (net_host_normalise(name, buf) < 0)
                return false;
        for (size_t i = 0; i < p->n_hosts; i++)
                if (streq(p->hosts[i].name, buf)) {
                        *ret = p->hosts[i].addr;
                        return true;
                }
        return false;
}

bool net_addr_is_special(struct in_addr a, const char **what)
{
        static const struct {
                uint32_t net;
                unsigned bits;
                const char *what;
        } classes[] = {
            {0x00000000, 8, "unspecified address"}, {0x7f000000, 8, "loopback address"},
            {0x0a000000, 8, "private address"},     {0xac100000, 12, "private address"},
            {0xc0a80000, 16, "private address"},    {0x64400000, 10, "shared (CGNAT) address"},
            {0xa9fe0000, 16, "link-local address"}, {0xc0000000, 24, "IETF protocol address"},
            {0xe0000000, 4, "multicast address"},   {0xf0000000, 4, "reserved address"},
        };
        uint32_t ip = ntohl(a.s_addr);
        const char *unused;

        if (!what)
                what = &unused;
        for (size_t i = 0; i < ARRAY_SIZE(classes); i++) {
                uint32_t mask = ~(uint32_t)0 << (32 - classes[i].bits);
                if ((ip & mask) == classes[i].net) {
                        *what = classes[i].what;
                        return true;
                }
        }
        return false;
}

static bool name_matches(const struct net_rule *r, const char *name)
{
        size_t nlen, slen;

        switch (r->kind) {
        case NET_RULE_ANY:
                return true;
        case NET_RULE_NAME:
                return name && streq(name, r->host);
        case NET_RULE_SUFFIX:
                if (!name)
                        return false;
                nlen = strlen(name);
                slen = strlen(r->suffix);
                if (nlen == slen)
                        return streq(name, r->suffix);
                return nlen > slen && name[nlen - slen - 1] == '.' &&
                       streq(name + nlen - slen, r->suffix);
        case NET_RULE_CIDR:
                return false;
        default:
                return false;
        }
}

static bool port_matches(const struct net_rule *r, uint16_t port)
{
        if (r->any_port)
                return true;
        if (r->default_ports)
                return port == 80 || port == 443;
        for (size_t i = 0; i < r->n_ports; i++)
                if (r->ports[i] == port)
                        return true;
        return false;
}

static bool method_matches(const struct net_rule *r, const char *method)
{
        if (r->n_methods == 0)
                return true;
        if (!method)
                return false;
        for (size_t i = 0; i < r->n_methods; i++)
                if (strcasecmp(r->methods[i], method) == 0)
                        return true;
        return false;
}

static enum net_action decided(struct net_decision *d, enum net_action action, int rule,
                               const char *fmt, ...) _printf_(4, 5);
static enum net_action decided(struct net_decision *d, enum net_action action, int rule,
                               const char *fmt, ...)
{
        va_list ap;
        d->action = action;
        d->rule = rule;
        va_start(ap, fmt);
        vsnprintf(d->why, sizeof(d->why), fmt, ap);
        va_end(ap);
        return action;
}

static enum net_action rule_decided(const struct net_policy *p, size_t i, struct net_decision *d)
{
        return decided(d, p->rules[i].action, (int)i, "rule %zu: %s %s", i + 1,
                       action_name(p->rules[i].action), p->rules[i].host);
}

enum net_action net_policy_decide(const struct net_policy *p, const char *host,
                                  const struct sockaddr *addr, uint16_t port, const char *method,
                                  struct net_decision *d)
{
        char name_buf[NET_POLICY_HOST_MAX + 1];
        const char *name = NULL, *special = NULL;
        bool have_ip = false, explicit_static = false;
        uint32_t ip = 0, literal;
        struct in_addr sin;

        if (addr && addr->sa_family == AF_INET6) {
                const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)addr;
                if (!IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
                        return decided(d, NET_DENY, -2, "IPv6 address");
                memcpy(&ip, &s6->sin6_addr.s6_addr[12], 4);
                ip = ntohl(ip);
                have_ip = true;
        } else if (addr && addr->sa_family == AF_INET) {
                ip = ntohl(((const struct sockaddr_in *)addr)->sin_addr.s_addr);
                have_ip = true;
        } else if (addr) {
                return decided(d, NET_DENY, -2, "not an IP address");
        }
        if (host) {
                if (host[0] == '[' || strchr(host, ':'))
                        return decided(d, NET_DENY, -2, "IPv6 address");
                if (parse_ipv4(host, &literal)) {
                        /* An address literal is its own destination: it must agree with addr. */
                        if (have_ip && literal != ip)
                                return decided(d, NET_DENY, -2, "host '%s' is not the address",
                                               host);
                        ip = literal;
                        have_ip = true;
                } else if (net_host_normalise(host, name_buf) < 0) {
                        return decided(d, NET_DENY, -2, "invalid host name");
                } else {
                        name = name_buf;
                }
        }
        if (!name && !have_ip)
                return decided(d, NET_DENY, -2, "no destination");

        if (have_ip) {
                sin.s_addr = htonl(ip);
                if (!net_addr_is_special(sin, &special)) {
                        for (size_t i = 0; i < p->n_host_addrs; i++)
                                if (p->host_addrs[i].s_addr == sin.s_addr)
                                        special = "host's own address";
                }
                if (special && name) {
                        struct in_addr st;
                        explicit_static =
                            net_policy_static_host(p, name, &st) && st.s_addr == sin.s_addr;
                }
        }

        for (size_t i = 0; i < p->n_rules; i++) {
                const struct net_rule *r = &p->rules[i];
                bool host_ok;
                if (port == 0) {
                        /* A DNS question: an allow rule counts whatever its ports and
                         * methods; a deny rule only when it denies every port. */
                        if (r->action == NET_DENY && (!r->any_port || r->n_methods))
                                continue;
                } else if (!port_matches(r, port) || !method_matches(r, method)) {
                        continue;
                }
                if (r->kind == NET_RULE_CIDR)
                        host_ok = have_ip && (ip & r->mask) == r->net;
                else
                        host_ok = name_matches(r, name) || (r->kind == NET_RULE_ANY && have_ip);
                if (!host_ok)
                        continue;
                if (special && r->action == NET_ALLOW && r->kind != NET_RULE_CIDR &&
                    !explicit_static)
                        continue; /* '*' and names never open a special address */
                return rule_decided(p, i, d);
        }
        if (special && !explicit_static) {
                char a[INET_ADDRSTRLEN];
                inet_ntop(AF_INET, &sin, a, sizeof(a));
                return decided(d, NET_DENY, -2, "%s %s", special, a);
        }
        return decided(d, p->default_action, -1, "default %s", action_name(p->default_action));
}
