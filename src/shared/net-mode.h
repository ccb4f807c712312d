/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A sandbox's network mode (docs/network.md): `none` (its own loopback only), `proxy` (every
 * connection ends at the host's policy proxy: issue 14) or `full` (direct outbound through
 * slirp4netns, unfiltered). One place says what "network on" means, for every spelling of it
 * (a profile's network, `--network` without a value, `network = true` in agentkernel.toml, the
 * API's `"network": true`): NET_MODE_ON.
 */
#pragma once

#include <stdbool.h>

enum net_mode {
        NET_MODE_NONE = 0,
        NET_MODE_PROXY = 1,
        NET_MODE_FULL = 2,
};

/* What "on" means: `proxy` (issue 14: the default whenever network is on). A profile's "on" is
 * `full` on a backend without proxy mode (manager_net_mode). */
#define NET_MODE_ON NET_MODE_PROXY

/* "none", "proxy", "full"; also "off" (none) and "on" (NET_MODE_ON). 0 or -EINVAL. */
int net_mode_from_string(const char *s, enum net_mode *ret);
/* The mode's name ("none", "proxy", "full"); "none" for anything else. */
const char *net_mode_name(int mode);
/* Whether a mode value (as stored: -1 unset, or an enum net_mode) is one of the modes. */
bool net_mode_valid(int mode);
