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
