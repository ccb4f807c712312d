# SPDX-License-Identifier: Apache-2.0
"""Published ports in proxy mode, attacked from inside the sandbox (src/backend/port-relay.c).

The host's relay accepts on 127.0.0.1:HOST_PORT and asks the sandbox's agent for a connection to
127.0.0.1:PORT inside, which comes back as a file descriptor. A hostile sandbox controls what
listens on that port and how it behaves; it must not be able to make the host connect anywhere
(the host never connects: what it relays to is a socket of the sandbox's own namespace), stall
the relay for its other connections, or grow it without bound. (A sandbox that hands back
something other than a TCP socket of its own namespace: tests/unit/test-port-relay.c.)
"""
import socket
import time

import pytest

from conftest import needs_root

pytestmark = needs_root
PY = "/usr/bin/python3"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create(ak, name, *ports):
    args = [a for p in ports for a in ("-p", p)]
    res = ak("create", name, "--network", "proxy", *args)
    assert res.rc == 0, res


def inside(ak, name, code):
    assert ak("exec", "-d", name, "--", PY, "-c", code).rc == 0


def first_answer(port, timeout=10, send=b""):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 2) as c:
                c.settimeout(3)
                if send:
                    c.sendall(send)
                d = c.recv(100)
                if d:
                    return d
        except OSError:
            pass
        time.sleep(0.1)
    return b""


def test_unserved_port_never_reaches_the_hosts_own_loopback(ak):
    """The sandbox publishes port P but serves nothing there; the host's own 127.0.0.1:P has a
    listener (a service of the host's). The relay's connection must not end at the host's
    service: it is the agent's connect inside the sandbox, refused there, and closed."""
    host_srv = socket.socket()
    host_srv.bind(("127.0.0.1", 0))
    host_srv.listen(8)
    p = host_srv.getsockname()[1]
    host_srv.setblocking(False)
    port = free_port()
    try:
        create(ak, "decoy", f"{port}:{p}")
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port), 2) as c:
                c.settimeout(3)
                c.sendall(b"hi")
                try:
                    assert c.recv(10) == b""
                except ConnectionResetError:
                    pass  # closed with "hi" unread
        with pytest.raises(BlockingIOError):
            host_srv.accept()  # nothing of the relay's ever arrived
    finally:
        host_srv.close()


def test_a_server_that_never_reads_stalls_nothing_else(ak):
    """The sandbox's server on one port accepts and never reads (the host's writes fill the
    relay's buffer, then the socket's); another published port keeps answering meanwhile: the
    relay never blocks on a sandbox."""
    stuck, ok = free_port(), free_port()
    create(ak, "stall", f"{stuck}:8001", f"{ok}:8002")
    inside(ak, "stall", "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',8001))\n"
           "s.listen(8)\nc,_=s.accept()\nc.send(b'x')\ntime.sleep(600)\n")
    inside(ak, "stall", "import socket\ns=socket.socket()\ns.bind(('127.0.0.1',8002))\n"
           "s.listen(8)\nwhile True:\n c,_=s.accept(); c.sendall(b'alive\\n'); c.close()\n")
    assert first_answer(stuck) == b"x"
    c = socket.create_connection(("127.0.0.1", stuck), 2)
    c.setblocking(False)
    sent, blob = 0, b"\0" * 65536
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            sent += c.send(blob)
        except BlockingIOError:
            break
    assert sent < 64 << 20  # bounded: the relay stopped reading
    assert first_answer(ok) == b"alive\n"
    c.close()


def test_connections_are_bounded_and_the_relay_recovers(ak):
    """More connections than the relay holds (256) against a server that keeps each one open
    and never closes its end: the extra ones are closed at once, the relay survives, and once
    the host's side is gone the sandbox cannot keep the slots (a half-closed connection whose
    other half stays silent is dropped after 10 s): a new connection is served."""
    port = free_port()
    create(ak, "flood", f"{port}:8003")
    inside(ak, "flood", "import socket,threading,time\ns=socket.socket()\n"
           "s.bind(('127.0.0.1',8003))\ns.listen(1024)\nkeep=[]\n"
           "while True:\n c,_=s.accept(); c.sendall(b'k'); keep.append(c)\n")
    assert first_answer(port) == b"k"
    conns, served = [], 0
    try:
        for _ in range(300):
            c = socket.create_connection(("127.0.0.1", port), 2)
            c.settimeout(5)
            conns.append(c)
        for c in conns:
            try:
                served += c.recv(1) == b"k"
            except OSError:
                pass
        # never more than the bound; fewer under load (an agent answer that takes over 5 s
        # drops its connection)
        assert 0 < served <= 256, served
    finally:
        for c in conns:
            c.close()
    deadline = time.time() + 30
    got = b""
    while time.time() < deadline and got != b"k":
        got = first_answer(port, timeout=2)
    assert got == b"k"
