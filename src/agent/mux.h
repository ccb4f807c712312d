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
};

/* Relays until the link ends. Host end: listen_fd accepts the connections, connect_path is
 * NULL. Guest end: listen_fd is -1, each OPEN connects to connect_path. Returns 0 when the link
 * ended (end of file), -errno on a broken link or peer. A guest end waits for a host instead of
 * returning when the host side is not connected. */
int mux_run(int link_fd, int listen_fd, const char *connect_path, int is_guest);
