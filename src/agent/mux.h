/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Many protocol connections over one byte stream (a virtual machine's virtio-serial port), in
 * the frames of proto.h with their channel field set. The same code runs at both ends: the
 * host's relay (agentkernel-agent --vm-relay) accepts connections on a unix socket and opens a
 * channel for each; the guest's end connects each new channel to the agent's own socket. Bytes
 * are relayed as they come: the multiplexer knows nothing of the requests inside.
 *
 * Every channel has a window: a sender has at most MUX_WINDOW bytes of a channel unacknowledged,
 * and the receiver acknowledges what it has written to the channel's socket, so one stalled
 * reader never holds up the others and no buffer grows past its window. A peer that breaks the
 * rules (more than a window, an unknown frame) loses the link: the multiplexer never trusts the
 * other end to be well-behaved.
 */
#pragma once

#include <stdint.h>

#define MUX_WINDOW (256u << 10) /* unacknowledged bytes per channel and direction */
#define MUX_CHUNK (64u << 10)   /* largest DATA payload */
#define MUX_CHANNELS_MAX 256    /* open channels at once */

enum {
        AK_MUX_OPEN = 96,  /* host->guest: a new connection on this channel */
        AK_MUX_DATA = 97,  /* raw bytes of the channel's stream */
        AK_MUX_EOF = 98,   /* the sender's side of the stream ended (shutdown for writing) */
        AK_MUX_CLOSE = 99, /* the channel is gone at the sender (reset: its socket failed); a
                              channel both sides ended with EOF needs none */
        AK_MUX_ACK = 100,  /* u32: bytes of DATA the receiver has written out */
        AK_MUX_DIAL = 101, /* guest->host, proxy mode: a new connection on this channel to the
                              IPv4 address and TCP port of the payload (4 + 2 bytes, network
                              order), made by the host from its capture namespace */
};

/* Channel ids: the host opens 1..MUX_GUEST_CHAN_BASE-1 (OPEN), the guest opens the rest (DIAL),
 * so neither end ever picks an id the other has in use. */
#define MUX_GUEST_CHAN_BASE 0x8000u
#define MUX_DIAL_LEN 6
/* DIAL channels open at once, enforced at both ends: the rest of MUX_CHANNELS_MAX stays for the
 * host's OPENs, so a guest that holds many connections never locks the host out of its agent */
#define MUX_DIAL_MAX (MUX_CHANNELS_MAX * 3 / 4)

/* Proxy mode (docs/network.md, "The microvm backend"). Guest end: connections accepted on
 * capture_fds (the guest's capture listeners: TCP 15001 and DNS over TCP 15053) become DIAL
 * channels to their original destination (SO_ORIGINAL_DST). Host end: dial set lets the guest
 * DIAL; the host connects from the network namespace it runs in, which must be the VM's own
 * capture namespace (the relay is started there: a hostile guest picks the destination). */
struct mux_net {
        int capture_fds[2]; /* guest: -1 when unused */
        int dial;           /* host: 1 to accept DIAL */
};

/* Relays until the link ends. Host end: listen_fd accepts the connections, connect_path is
 * NULL. Guest end: listen_fd is -1, each OPEN connects to connect_path. net: proxy mode's part,
 * or NULL for none (a DIAL then breaks the link). Returns 0 when the link ended (end of file),
 * -errno on a broken link or peer. A guest end waits for a host instead of returning when the
 * host side is not connected. */
int mux_run(int link_fd, int listen_fd, const char *connect_path, int is_guest,
            const struct mux_net *net);
