// SPDX-License-Identifier: Apache-2.0
/* net_policy_decide's cost (issue 14: a decision <= 50 us): the built-in policy (a hit early, a
 * hit late, a miss) and the largest policy (1024 rules, the last matching, a miss), with and
 * without a resolved address. Prints one line per case: ns per decision, median of 7 runs. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared/net-policy.h"

static double now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static void run(const char *label, const struct net_policy *p, const char *host, const char *ip,
                int iters)
{
        struct sockaddr_in sa = {.sin_family = AF_INET};
        struct net_decision d;
        double runs[7];
        volatile int sink = 0;

        if (ip)
                inet_pton(AF_INET, ip, &sa.sin_addr);
        for (int r = 0; r < 7; r++) {
                double t0 = now_ns();
                for (int i = 0; i < iters; i++)
                        sink += net_policy_decide(p, host, ip ? (struct sockaddr *)&sa : NULL, 443,
                                                  NULL, &d);
                runs[r] = (now_ns() - t0) / iters;
        }
        qsort(runs, 7, sizeof(*runs), cmp);
        printf("%-44s %9.0f ns  (%s: %s)\n", label, runs[3],
               d.action == NET_ALLOW ? "allow" : "deny", d.why);
        (void)sink;
}

int main(int argc, char **argv)
{
        struct net_policy *builtin = NULL, *big = net_policy_new(NET_DENY);
        struct ak_err err = {0};
        int iters = argc > 1 ? atoi(argv[1]) : 20000;
        char name[64];

        if (net_policy_builtin(&builtin, &err) < 0 || !big)
                return 1;
        for (int i = 0; i < NET_POLICY_MAX_RULES - 1; i++) {
                snprintf(name, sizeof(name), "*.h%d.example.com", i);
                if (net_policy_insert_text(big, 99999, NET_DENY, name, &err) < 0)
                        return 1;
        }
        if (net_policy_insert_text(big, 99999, NET_ALLOW, "last.example.org", &err) < 0)
                return 1;
        printf("net_policy_decide, median of 7 runs of %d decisions\n", iters);
        run("built-in, first rule (api.anthropic.com)", builtin, "api.anthropic.com", NULL, iters);
        run("built-in, late rule + address (github.com)", builtin, "github.com", "140.82.112.3",
            iters);
        run("built-in, no rule (pastebin.com)", builtin, "pastebin.com", NULL, iters);
        run("1024 rules, last matches + address", big, "last.example.org", "198.18.0.1", iters);
        run("1024 rules, none matches", big, "nothing.example.net", NULL, iters);
        run("1024 rules, private address", big, "last.example.org", "10.0.0.1", iters);
        net_policy_free(builtin);
        net_policy_free(big);
        return 0;
}
