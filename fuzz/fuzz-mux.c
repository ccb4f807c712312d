// SPDX-License-Identifier: Apache-2.0
/* Fuzz target: the multiplexer's host end (the relay) reading whatever a guest sends on its
 * channel (src/agent/mux.c). It must end the link or go on, never crash or grow past a bound. */
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent/mux.h"
#include "shared/fd-util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        int link[2];

        if (size > (64u << 10)) /* what the socket holds before mux_run reads: the input whole */
                size = 64u << 10;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, link) < 0)
                return 0;
        (void)signal(SIGPIPE, SIG_IGN);
        (void)write_all(link[1], data, size);
        shutdown(link[1], SHUT_WR);                /* the end of the input is the end of the link */
        (void)mux_run(link[0], -1, NULL, 0, NULL); /* no DIAL: a fuzzer must not connect() */
        close(link[0]);
        close(link[1]);
        return 0;
}
