# SPDX-License-Identifier: Apache-2.0
"""What the test doubles of agentkernel-proxy share (tests/fake_secrets_proxy.py,
tests/integration/fake_proxy.py): the control socket bound as the real proxy binds it, and the
detach (double fork, new session, stdio on /dev/null) that agentkernel waits for when it starts a
proxy through AGENTKERNEL_PROXY."""
import os
import socket


def bind_control(d, backlog):
    """A SOCK_SEQPACKET socket listening on d/control (any stale one replaced), owner-only."""
    os.makedirs(d, mode=0o700, exist_ok=True)
    path = os.path.join(d, "control")
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old = os.umask(0o177)
    s.bind(path)
    os.umask(old)
    s.listen(backlog)
    return s


def detach():
    """Returns in a grandchild, a session leader no more, its stdio on /dev/null; the first
    process exits (the registrant waits for it, as for the real proxy)."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    devnull = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
