/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Proxy mode for a virtual machine (agent-net.c): the relay's capture namespace on the host, the
 * capture and the DNS bridge inside the guest.
 */
#pragma once

/* The relay, before it drops root: moves into a new network namespace (and user namespace when
 * not root) with proxy mode's capture, and sends its three listeners (NET_CAPTURE_FDS order) to
 * report_fd as one byte 'L' with SCM_RIGHTS. Returns 0; or -1 after sending report_fd a message
 * (what failed, no fds) instead: the relay must then exit without serving. */
int agent_net_relay_setup(int report_fd);

/* The guest's init, in the new root: the capture, /etc/resolv.conf and the DNS bridge's process.
 * ret_capture: the TCP listeners for the multiplexer (15001, DNS over TCP on 15053). Powers the
 * machine off on failure. */
void agent_net_guest_setup(int ret_capture[2]);
