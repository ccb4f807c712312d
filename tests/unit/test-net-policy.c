// SPDX-License-Identifier: Apache-2.0
/* Egress policy (src/shared/net-policy.c) on its own: the POLICY JSON's validation and limits,
 * the round trip to JSON, rules from `PATTERN[:PORT]` and from upstream's [security.domains],
 * the built-in list, and decisions: first match, globs with their apex, ports, methods, DNS
 * questions, and the special addresses that only an explicit address rule opens. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "shared/cleanup.h"
#include "shared/json-util.h"
#include "shared/net-policy.h"

static struct net_policy *parse(const char *text)
{
        struct net_policy *p = NULL;
        struct ak_err err = {0};
        int rc = net_policy_from_text(text, strlen(text), &p, &err);
        if (rc < 0)
                fail_msg("parse failed: %s", ak_err_msg(&err));
        return p;
}

/* Parsing fails and the message contains want. */
static void refused(const char *text, const char *want)
{
        struct net_policy *p = NULL;
        struct ak_err err = {0};
        int rc = net_policy_from_text(text, strlen(text), &p, &err);
        assert_true(rc < 0);
        assert_null(p);
        if (!strstr(ak_err_msg(&err), want))
                fail_msg("'%s': message '%s' lacks '%s'", text, ak_err_msg(&err), want);
}

static struct sockaddr_in ip4(const char *s)
{
        struct sockaddr_in a = {.sin_family = AF_INET};
        assert_int_equal(inet_pton(AF_INET, s, &a.sin_addr), 1);
        return a;
}

static enum net_action decide(const struct net_policy *p, const char *host, const char *addr,
                              uint16_t port, const char *method, struct net_decision *d)
{
        struct sockaddr_in a;
        if (addr)
                a = ip4(addr);
        return net_policy_decide(p, host, addr ? (struct sockaddr *)&a : NULL, port, method, d);
}

static void test_parse_and_round_trip(void **unused)
{
        (void)unused;
        cleanup_net_policy struct net_policy *p =
            parse("{\"default\":\"deny\",\"rules\":["
                  "{\"action\":\"deny\",\"host\":\"*.Evil.Example.\"},"
                  "{\"action\":\"allow\",\"host\":\"api.example.com\",\"ports\":[443,8443]},"
                  "{\"action\":\"allow\",\"host\":\"198.18.0.0/24\",\"ports\":\"*\"},"
                  "{\"action\":\"allow\",\"host\":\"198.18.1.7\",\"methods\":[\"get\",\"HEAD\"]}],"
                  "\"hosts\":{\"API.internal\":\"198.18.0.2\"},"
                  "\"dns_servers\":[\"198.18.0.53\",\"198.18.0.54:5353\"]}");
        cleanup_json json_t *j = NULL, *j2 = NULL;
        cleanup_net_policy struct net_policy *q = NULL;
        struct ak_err err = {0};
        cleanup_free char *s1 = NULL, *s2 = NULL;

        assert_int_equal(p->n_rules, 4);
        assert_string_equal(p->rules[0].host, "*.evil.example");
        assert_string_equal(p->rules[0].suffix, "evil.example");
        assert_int_equal(p->rules[2].kind, NET_RULE_CIDR);
        assert_true(p->rules[2].any_port);
        assert_int_equal(p->rules[3].mask, 0xffffffff);
        assert_string_equal(p->rules[3].methods[0], "GET");
        assert_int_equal(p->n_hosts, 1);
        assert_string_equal(p->hosts[0].name, "api.internal");
        assert_int_equal(p->n_dns_servers, 2);
        assert_int_equal(ntohs(p->dns_servers[1].sin_port), 5353);

        j = net_policy_to_json(p);
        assert_non_null(j);
        assert_int_equal(net_policy_from_json(j, &q, &err), 0);
        j2 = net_policy_to_json(q);
        s1 = json_dumps(j, JSON_SORT_KEYS);
        s2 = json_dumps(j2, JSON_SORT_KEYS);
        assert_string_equal(s1, s2);
        assert_non_null(strstr(s1, "\"198.18.0.54:5353\""));
        assert_null(strstr(s1, "198.18.0.53:53"));
}

static void test_parse_refusals(void **unused)
{
        (void)unused;
        refused("[]", "policy: a JSON object");
        refused("{\"default\":\"maybe\"}", "default: 'allow' or 'deny'");
        refused("{\"color\":1}", "unknown key 'color'");
        refused("{\"rules\":{}}", "rules: an array");
        refused("{\"rules\":[{\"host\":\"a.com\"}]}", "rules[0]: action is required");
        refused("{\"rules\":[{\"action\":\"allow\"}]}", "host is required");
        refused("{\"rules\":[{\"action\":\"allow\",\"host\":\"a.com\",\"x\":1}]}",
                "unknown key 'x'");
        refused("{\"rules\":[{\"action\":\"allow\",\"host\":\"a*.com\"}]}",
                "rules[0]: host: 'a*.com' is not a host pattern");
        refused("{\"rules\":[{\"action\":\"allow\",\"host\":\"*.\"}]}", "is not a host pattern");
        refused("{\"rules\":[{\"action\":\"allow\",\"host\":\"a..com\"}]}",
                "is not a host pattern");
        refused("{\"rules\":[{\"action\":\"allow\",\"host\":\"a b.com\"}]}",
                "is not a host pattern");
        refused("{\"rules\":[{\"action\":\"allow\",\"host\":\"user@a.com\"}]}",
                "is not a host pattern");
        refused("{\"rules\":[{\"action\":\"allow\",\"host\":\"::1\"}]}", "IPv6 is not supported");
        refused("{\"rules\":[{\"action\":\"allow\",\"host\":\"10.0.0.1/33\"}]}",
                "bad prefix length");
        refused("{\"rules\":[{\"action\":\"allow\",\"host\":\"10.0.0.1/8\"}]}", "bits set outside");
        refused("{\"rules\":[{\"action\":\"allow\",\"host\":\"300.0.0.1/8\"}]}",
                "not an IPv4 address or CIDR");
        refused("{\"rules\":[{\"action\":\"allow\",\"host\":\"2130706433\"}]}",
                "is not a host pattern");
        refused("{\"rules\":[{\"action\":\"allow\",\"host\":\"a.com\",\"ports\":[0]}]}",
                "ports[0]: a number 1..65535");
        refused("{\"rules\":[{\"action\":\"allow\",\"host\":\"a.com\",\"ports\":[65536]}]}",
                "ports[0]: a number 1..65535");
        refused("{\"rules\":[{\"action\":\"allow\",\"host\":\"a.com\",\"ports\":[]}]}",
                "non-empty array");
        refused("{\"rules\":[{\"action\":\"allow\",\"host\":\"a.com\",\"methods\":[\"G T\"]}]}",
                "is not an HTTP method");
        refused("{\"hosts\":{\"a.com\":\"::1\"}}", "hosts['a.com']: an IPv4 address");
        refused("{\"hosts\":{\"-\":\"1.2.3.4\", \"a\":[]}}", "");
        refused("{\"dns_servers\":[\"8.8.8.8:0\"]}", "dns_servers[0]");
        refused("{\"dns_servers\":[\"dns.google\"]}", "dns_servers[0]");
        refused("{\"default\":\"deny\",\"default\":\"allow\"}", "bad JSON");
        refused("{", "bad JSON");
}

static void test_limits(void **unused)
{
        (void)unused;
        cleanup_json json_t *j = json_object();
        json_t *rules = json_array(), *hosts = json_object(); /* j holds them; ours dropped below */
        struct net_policy *p = NULL;
        struct ak_err err = {0};
        char name[300];

        json_object_set(j, "rules", rules);
        for (int i = 0; i < NET_POLICY_MAX_RULES; i++) {
                snprintf(name, sizeof(name), "h%d.example.com", i);
                json_array_append_new(rules,
                                      json_pack("{s:s,s:s}", "action", "allow", "host", name));
        }
        assert_int_equal(net_policy_from_json(j, &p, &err), 0);
        /* one more rule by text: refused, policy unchanged */
        assert_int_equal(net_policy_insert_text(p, 0, NET_DENY, "x.com", &err), -E2BIG);
        assert_int_equal(p->n_rules, NET_POLICY_MAX_RULES);
        net_policy_free(p);
        p = NULL;
        json_array_append_new(rules, json_pack("{s:s,s:s}", "action", "allow", "host", "x.com"));
        assert_int_equal(net_policy_from_json(j, &p, &err), -E2BIG);
        assert_non_null(strstr(ak_err_msg(&err), "more than 1024 rules"));
        json_decref(rules);

        /* a host pattern of 254 bytes */
        memset(name, 'a', 254);
        name[254] = '\0';
        for (int i = 60; i < 254; i += 61)
                name[i] = '.';
        assert_true(
            net_policy_insert_text((p = net_policy_new(NET_DENY)), 0, NET_DENY, name, &err) < 0);
        assert_int_equal(p->n_rules, 0);
        name[253] = '\0';
        assert_int_equal(net_policy_insert_text(p, 0, NET_DENY, name, &err), 0);
        net_policy_free(p);
        p = NULL;

        json_object_clear(j);
        json_object_set(j, "hosts", hosts);
        for (int i = 0; i <= NET_POLICY_MAX_HOSTS; i++) {
                snprintf(name, sizeof(name), "h%d.internal", i);
                json_object_set_new(hosts, name, json_string("198.18.0.1"));
        }
        assert_int_equal(net_policy_from_json(j, &p, &err), -E2BIG);
        json_decref(hosts);
}

static void test_first_match_and_globs(void **unused)
{
        (void)unused;
        cleanup_net_policy struct net_policy *p =
            parse("{\"default\":\"deny\",\"rules\":["
                  "{\"action\":\"deny\",\"host\":\"secret.example.com\"},"
                  "{\"action\":\"allow\",\"host\":\"*.example.com\"},"
                  "{\"action\":\"allow\",\"host\":\"exact.org\"}]}");
        struct net_decision d;

        assert_int_equal(decide(p, "secret.example.com", NULL, 443, NULL, &d), NET_DENY);
        assert_int_equal(d.rule, 0);
        assert_string_equal(d.why, "rule 1: deny secret.example.com");
        assert_int_equal(decide(p, "SECRET.Example.COM.", NULL, 443, NULL, &d), NET_DENY);
        assert_int_equal(decide(p, "a.example.com", NULL, 443, NULL, &d), NET_ALLOW);
        assert_string_equal(d.why, "rule 2: allow *.example.com");
        assert_int_equal(decide(p, "example.com", NULL, 80, NULL, &d), NET_ALLOW); /* apex */
        assert_int_equal(decide(p, "a.b.example.com", NULL, 80, NULL, &d), NET_ALLOW);
        assert_int_equal(decide(p, "badexample.com", NULL, 443, NULL, &d), NET_DENY);
        assert_string_equal(d.why, "default deny");
        assert_int_equal(d.rule, -1);
        assert_int_equal(decide(p, "example.com.evil.net", NULL, 443, NULL, &d), NET_DENY);
        assert_int_equal(decide(p, "exact.org", NULL, 443, NULL, &d), NET_ALLOW);
        assert_int_equal(decide(p, "www.exact.org", NULL, 443, NULL, &d), NET_DENY);
        /* default ports are 80 and 443 */
        assert_int_equal(decide(p, "a.example.com", NULL, 22, NULL, &d), NET_DENY);
        /* odd names never match a rule */
        assert_int_equal(decide(p, "a.example.com@evil.net", NULL, 443, NULL, &d), NET_DENY);
        assert_string_equal(d.why, "invalid host name");
        assert_int_equal(decide(p, "evil.net/.example.com", NULL, 443, NULL, &d), NET_DENY);
        assert_int_equal(decide(p, "", NULL, 443, NULL, &d), NET_DENY);
        assert_int_equal(decide(p, NULL, NULL, 443, NULL, &d), NET_DENY);
        assert_string_equal(d.why, "no destination");
}

static void test_ports_and_methods(void **unused)
{
        (void)unused;
        cleanup_net_policy struct net_policy *p =
            parse("{\"default\":\"deny\",\"rules\":["
                  "{\"action\":\"allow\",\"host\":\"ro.example\",\"methods\":[\"GET\",\"HEAD\"]},"
                  "{\"action\":\"allow\",\"host\":\"ssh.example\",\"ports\":[22]},"
                  "{\"action\":\"deny\",\"host\":\"*.blocked.example\",\"ports\":\"*\"},"
                  "{\"action\":\"allow\",\"host\":\"*\",\"ports\":\"*\"}]}");
        struct net_decision d;

        assert_int_equal(decide(p, "ro.example", NULL, 80, "GET", &d), NET_ALLOW);
        assert_int_equal(decide(p, "ro.example", NULL, 80, "get", &d), NET_ALLOW);
        /* POST falls through to the catch-all, not the read-only rule */
        assert_int_equal(decide(p, "ro.example", NULL, 80, "POST", &d), NET_ALLOW);
        assert_int_equal(d.rule, 3);
        assert_int_equal(decide(p, "ssh.example", NULL, 22, NULL, &d), NET_ALLOW);
        assert_int_equal(d.rule, 1);
        assert_int_equal(decide(p, "x.blocked.example", NULL, 8080, NULL, &d), NET_DENY);
        assert_int_equal(decide(p, "blocked.example", NULL, 1, NULL, &d), NET_DENY);
        assert_int_equal(decide(p, "other.example", NULL, 9999, NULL, &d), NET_ALLOW);
}

static void test_methods_tunnel(void **unused)
{
        (void)unused;
        cleanup_net_policy struct net_policy *p = parse(
            "{\"rules\":[{\"action\":\"allow\",\"host\":\"ro.example\",\"methods\":[\"GET\"]}]}");
        struct net_decision d;

        /* a tunnel has no method: a rule with methods does not match it */
        assert_int_equal(decide(p, "ro.example", NULL, 443, NULL, &d), NET_DENY);
        /* but DNS answers the name (some rule could allow it) */
        assert_int_equal(decide(p, "ro.example", NULL, 0, NULL, &d), NET_ALLOW);
        assert_int_equal(decide(p, "other.example", NULL, 0, NULL, &d), NET_DENY);
}

static void test_dns_questions(void **unused)
{
        (void)unused;
        cleanup_net_policy struct net_policy *p =
            parse("{\"default\":\"deny\",\"rules\":["
                  "{\"action\":\"deny\",\"host\":\"partly.example\",\"ports\":[22]},"
                  "{\"action\":\"deny\",\"host\":\"*.gone.example\",\"ports\":\"*\"},"
                  "{\"action\":\"allow\",\"host\":\"*.example\"}]}");
        struct net_decision d;

        /* a deny of one port does not refuse the name */
        assert_int_equal(decide(p, "partly.example", NULL, 0, NULL, &d), NET_ALLOW);
        assert_int_equal(decide(p, "partly.example", NULL, 22, NULL, &d), NET_DENY);
        assert_int_equal(decide(p, "x.gone.example", NULL, 0, NULL, &d), NET_DENY);
        assert_int_equal(decide(p, "ok.example", NULL, 0, NULL, &d), NET_ALLOW);
        assert_int_equal(decide(p, "nope.test", NULL, 0, NULL, &d), NET_DENY);
}

static void test_special_addresses(void **unused)
{
        (void)unused;
        cleanup_net_policy struct net_policy *p =
            parse("{\"default\":\"allow\",\"rules\":["
                  "{\"action\":\"allow\",\"host\":\"*\",\"ports\":\"*\"},"
                  "{\"action\":\"allow\",\"host\":\"db.internal\",\"ports\":\"*\"},"
                  "{\"action\":\"allow\",\"host\":\"10.1.0.0/16\",\"ports\":\"*\"},"
                  "{\"action\":\"allow\",\"host\":\"172.16.0.9\",\"ports\":\"*\"},"
                  "{\"action\":\"allow\",\"host\":\"mapped.internal\",\"ports\":\"*\"}],"
                  "\"hosts\":{\"mapped.internal\":\"192.168.7.7\"}}");
        static const char *const denied[] = {
            "127.0.0.1",   "127.1.2.3",  "10.0.0.1",        "172.16.0.1", "172.31.255.255",
            "192.168.1.1", "100.64.0.1", "169.254.169.254", "0.0.0.0",    "0.1.2.3",
            "224.0.0.1",   "240.0.0.1",  "255.255.255.255", "192.0.0.1",
        };
        struct net_decision d;
        struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};
        struct in_addr own;

        for (size_t i = 0; i < sizeof(denied) / sizeof(*denied); i++) {
                /* by address, by literal, and as a name that resolved there */
                if (decide(p, NULL, denied[i], 443, NULL, &d) != NET_DENY)
                        fail_msg("%s allowed: %s", denied[i], d.why);
                assert_int_equal(d.rule, -2);
                assert_int_equal(decide(p, denied[i], NULL, 443, NULL, &d), NET_DENY);
                assert_int_equal(decide(p, "db.internal", denied[i], 443, NULL, &d), NET_DENY);
        }
        assert_int_equal(decide(p, "169.254.169.254", NULL, 80, NULL, &d), NET_DENY);
        assert_string_equal(d.why, "link-local address 169.254.169.254");
        /* an explicit CIDR or address opens them */
        assert_int_equal(decide(p, NULL, "10.1.2.3", 5432, NULL, &d), NET_ALLOW);
        assert_int_equal(d.rule, 2);
        assert_int_equal(decide(p, "db.internal", "10.1.2.3", 5432, NULL, &d), NET_ALLOW);
        assert_int_equal(decide(p, NULL, "172.16.0.9", 80, NULL, &d), NET_ALLOW);
        assert_int_equal(decide(p, NULL, "172.16.0.10", 80, NULL, &d), NET_DENY);
        /* so does the policy's own static mapping of a name to that address */
        assert_int_equal(decide(p, "mapped.internal", "192.168.7.7", 80, NULL, &d), NET_ALLOW);
        assert_int_equal(decide(p, "mapped.internal", "192.168.7.8", 80, NULL, &d), NET_DENY);
        /* public addresses follow the rules */
        assert_int_equal(decide(p, NULL, "198.18.0.7", 80, NULL, &d), NET_ALLOW);
        assert_int_equal(d.rule, 0);
        /* a literal host must be the address it claims */
        assert_int_equal(decide(p, "198.18.0.7", "198.18.0.8", 80, NULL, &d), NET_DENY);
        /* the host's own addresses */
        inet_pton(AF_INET, "198.18.5.5", &own);
        net_policy_set_host_addrs(p, &own, 1);
        assert_int_equal(decide(p, NULL, "198.18.5.5", 80, NULL, &d), NET_DENY);
        assert_string_equal(d.why, "host's own address 198.18.5.5");
        /* IPv6: denied; v4-mapped judged as v4 */
        inet_pton(AF_INET6, "2001:db8::1", &v6.sin6_addr);
        assert_int_equal(net_policy_decide(p, NULL, (struct sockaddr *)&v6, 443, NULL, &d),
                         NET_DENY);
        assert_string_equal(d.why, "IPv6 address");
        inet_pton(AF_INET6, "::ffff:127.0.0.1", &v6.sin6_addr);
        assert_int_equal(net_policy_decide(p, NULL, (struct sockaddr *)&v6, 443, NULL, &d),
                         NET_DENY);
        assert_int_equal(decide(p, "[::1]", NULL, 443, NULL, &d), NET_DENY);
        /* numeric names are not names */
        assert_int_equal(decide(p, "2130706433", NULL, 80, NULL, &d), NET_DENY);
        assert_int_equal(decide(p, "0x7f.1", NULL, 80, NULL, &d), NET_DENY);
}

static void test_deny_rule_on_special(void **unused)
{
        (void)unused;
        cleanup_net_policy struct net_policy *p =
            parse("{\"rules\":[{\"action\":\"deny\",\"host\":\"10.9.0.0/16\",\"ports\":\"*\"},"
                  "{\"action\":\"allow\",\"host\":\"10.0.0.0/8\",\"ports\":\"*\"}]}");
        struct net_decision d;

        assert_int_equal(decide(p, NULL, "10.9.1.1", 80, NULL, &d), NET_DENY);
        assert_string_equal(d.why, "rule 1: deny 10.9.0.0/16");
        assert_int_equal(decide(p, NULL, "10.8.1.1", 80, NULL, &d), NET_ALLOW);
}

static void test_insert_text(void **unused)
{
        (void)unused;
        cleanup_net_policy struct net_policy *p = net_policy_new(NET_DENY);
        struct ak_err err = {0};
        struct net_decision d;

        assert_int_equal(net_policy_insert_text(p, 0, NET_ALLOW, "*.example.com", &err), 0);
        assert_int_equal(net_policy_insert_text(p, 0, NET_DENY, "bad.example.com:443", &err), 0);
        assert_int_equal(net_policy_insert_text(p, 99, NET_ALLOW, "git.example.org:22", &err), 0);
        assert_int_equal(net_policy_insert_text(p, 99, NET_ALLOW, "198.18.0.0/24:*", &err), 0);
        assert_int_equal(p->n_rules, 4);
        assert_string_equal(p->rules[0].host, "bad.example.com");
        assert_string_equal(p->rules[1].suffix, "example.com"); /* moved, still valid */
        assert_int_equal(decide(p, "bad.example.com", NULL, 443, NULL, &d), NET_DENY);
        assert_int_equal(decide(p, "bad.example.com", NULL, 80, NULL, &d), NET_ALLOW);
        assert_int_equal(decide(p, "git.example.org", NULL, 22, NULL, &d), NET_ALLOW);
        assert_int_equal(decide(p, "git.example.org", NULL, 443, NULL, &d), NET_DENY);
        assert_int_equal(decide(p, NULL, "198.18.0.9", 9, NULL, &d), NET_ALLOW);

        assert_int_equal(net_policy_insert_text(p, 0, NET_ALLOW, "x.com:0", &err), -EINVAL);
        assert_non_null(strstr(ak_err_msg(&err), "'x.com:0': the port is a number"));
        assert_int_equal(net_policy_insert_text(p, 0, NET_ALLOW, "x.com:http", &err), -EINVAL);
        assert_int_equal(net_policy_insert_text(p, 0, NET_ALLOW, "x.com:", &err), -EINVAL);
        assert_int_equal(net_policy_insert_text(p, 0, NET_ALLOW, "", &err), -EINVAL);
        assert_int_equal(net_policy_insert_text(p, 0, NET_ALLOW, "*x.com", &err), -EINVAL);
        assert_int_equal(p->n_rules, 4);
}

static void test_from_domains(void **unused)
{
        (void)unused;
        char *allow[] = {"*.github.com", "pypi.org", NULL};
        char *block[] = {"evil.github.com", NULL};
        struct net_policy *p = NULL;
        struct ak_err err = {0};
        struct net_decision d;
        char *bad[] = {"not a host", NULL};

        assert_int_equal(net_policy_from_domains(allow, block, true, &p, &err), 0);
        assert_int_equal(p->default_action, NET_DENY);
        assert_int_equal(p->n_rules, 3);
        assert_int_equal(decide(p, "evil.github.com", NULL, 443, NULL, &d), NET_DENY);
        assert_int_equal(d.rule, 0);
        assert_int_equal(decide(p, "github.com", NULL, 22, NULL, &d), NET_ALLOW);
        assert_int_equal(decide(p, "pypi.org", NULL, 443, NULL, &d), NET_ALLOW);
        assert_int_equal(decide(p, "example.com", NULL, 443, NULL, &d), NET_DENY);
        net_policy_free(p);
        p = NULL;

        /* allowlist_only false: default allow, block still blocks (every port) */
        assert_int_equal(net_policy_from_domains(allow, block, false, &p, &err), 0);
        assert_int_equal(decide(p, "example.com", NULL, 443, NULL, &d), NET_ALLOW);
        assert_int_equal(decide(p, "evil.github.com", NULL, 8080, NULL, &d), NET_DENY);
        net_policy_free(p);
        p = NULL;

        assert_int_equal(net_policy_from_domains(NULL, NULL, false, &p, &err), 0);
        assert_int_equal(p->n_rules, 0);
        net_policy_free(p);
        p = NULL;

        assert_true(net_policy_from_domains(bad, NULL, true, &p, &err) < 0);
        assert_null(p);
        assert_non_null(strstr(ak_err_msg(&err), "[security.domains] allow: 'not a host'"));
}

static void test_builtin(void **unused)
{
        (void)unused;
        cleanup_net_policy struct net_policy *p = NULL;
        struct ak_err err = {0};
        struct net_decision d;
        size_t n = 0;

        assert_int_equal(net_policy_builtin(&p, &err), 0);
        while (net_policy_builtin_hosts[n])
                n++;
        assert_int_equal(p->n_rules, n);
        assert_int_equal(p->default_action, NET_DENY);
        assert_int_equal(decide(p, "api.anthropic.com", NULL, 443, NULL, &d), NET_ALLOW);
        assert_int_equal(decide(p, "registry.npmjs.org", NULL, 443, NULL, &d), NET_ALLOW);
        assert_int_equal(decide(p, "pypi.org", NULL, 22, NULL, &d), NET_DENY);
        assert_int_equal(decide(p, "github.com", NULL, 22, NULL, &d), NET_ALLOW);
        assert_int_equal(decide(p, "raw.githubusercontent.com", NULL, 443, NULL, &d), NET_ALLOW);
        assert_int_equal(decide(p, "pastebin.com", NULL, 443, NULL, &d), NET_DENY);
        assert_string_equal(d.why, "default deny");
        /* a registry name resolving to loopback is still refused */
        assert_int_equal(decide(p, "pypi.org", "127.0.0.1", 443, NULL, &d), NET_DENY);
}

/* net_policy_decide stays under 50 us with the largest policy, last rule matching. */
/* The last of the most rules a policy may hold is reached (bench/net-policy-bench times it: a
 * unit test asserts no speed). */
static void test_decide_with_the_most_rules(void **unused)
{
        (void)unused;
        cleanup_net_policy struct net_policy *p = net_policy_new(NET_DENY);
        struct ak_err err = {0};
        struct net_decision d;
        char name[64];

        for (int i = 0; i < NET_POLICY_MAX_RULES - 1; i++) {
                snprintf(name, sizeof(name), "*.h%d.example.com", i);
                assert_int_equal(net_policy_insert_text(p, 99999, NET_DENY, name, &err), 0);
        }
        assert_int_equal(net_policy_insert_text(p, 99999, NET_ALLOW, "last.example.org", &err), 0);
        assert_int_equal(decide(p, "last.example.org", "198.18.0.1", 443, NULL, &d), NET_ALLOW);
        assert_int_equal(d.rule, NET_POLICY_MAX_RULES - 1);
        assert_int_equal(decide(p, "x.h7.example.com", "198.18.0.1", 443, NULL, &d), NET_DENY);
        assert_int_equal(d.rule, 7);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_parse_and_round_trip),
            cmocka_unit_test(test_parse_refusals),
            cmocka_unit_test(test_limits),
            cmocka_unit_test(test_first_match_and_globs),
            cmocka_unit_test(test_ports_and_methods),
            cmocka_unit_test(test_methods_tunnel),
            cmocka_unit_test(test_dns_questions),
            cmocka_unit_test(test_special_addresses),
            cmocka_unit_test(test_deny_rule_on_special),
            cmocka_unit_test(test_insert_text),
            cmocka_unit_test(test_from_domains),
            cmocka_unit_test(test_builtin),
            cmocka_unit_test(test_decide_with_the_most_rules),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
