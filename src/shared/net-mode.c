// SPDX-License-Identifier: Apache-2.0
/* Network modes by name (net-mode.h). */
#include "net-mode.h"

#include <errno.h>
#include <string.h>

int net_mode_from_string(const char *s, enum net_mode *ret)
{
        static const struct {
                const char *name;
                enum net_mode mode;
        } names[] = {
            {"none", NET_MODE_NONE}, {"off", NET_MODE_NONE}, {"proxy", NET_MODE_PROXY},
            {"full", NET_MODE_FULL}, {"on", NET_MODE_ON},
        };

        for (size_t i = 0; s && i < sizeof(names) / sizeof(names[0]); i++)
                if (strcmp(s, names[i].name) == 0) {
                        *ret = names[i].mode;
                        return 0;
                }
        return -EINVAL;
}

const char *net_mode_name(int mode)
{
        switch (mode) {
        case NET_MODE_PROXY:
                return "proxy";
        case NET_MODE_FULL:
                return "full";
        default:
                return "none";
        }
}

bool net_mode_valid(int mode)
{
        return mode == NET_MODE_NONE || mode == NET_MODE_PROXY || mode == NET_MODE_FULL;
}

bool net_host_name_valid(const char *s)
{
        size_t n = s ? strlen(s) : 0, label = 0;

        if (n && s[n - 1] == '.')
                n--;
        if (!n || n > 253)
                return false;
        for (size_t i = 0; i <= n; i++) {
                char c = i < n ? s[i] : '.';
                if (c == '.') {
                        if (!label || s[i - 1] == '-')
                                return false;
                        label = 0;
                        continue;
                }
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_'))
                        return false;
                if (!label && c == '-')
                        return false;
                if (++label > 63)
                        return false;
        }
        return true;
}
