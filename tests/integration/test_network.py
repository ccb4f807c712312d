# SPDX-License-Identifier: Apache-2.0
"""Network on: outbound works (to a host the test builds in its own network namespace),
published ports work on 127.0.0.1, and nothing else comes in."""
import json
import os
import random
import socket
import subprocess
import time

import pytest

from conftest import AK, have, needs_root

pytestmark = [needs_root, pytest.mark.skipif(not have("slirp4netns") or not have("ip"),
                                             reason="needs slirp4netns and iproute2")]
PY = "/usr/bin/python3"


@pytest.fixture
def peer():
    """A TCP server at 10.231.x.2:8089 inside a network namespace made for this test."""
    n = random.randint(1, 250)
    ns, host_if, ns_if = f"aktest{n}", f"akh{n}", f"akn{n}"
    host_ip, peer_ip = f"10.231.{n}.1", f"10.231.{n}.2"
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)
    run("ip", "netns", "add", ns)
    srv = None
    try:
        run("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        run("ip", "link", "set", ns_if, "netns", ns)
        run("ip", "addr", "add", f"{host_ip}/24", "dev", host_if)
        run("ip", "link", "set", host_if, "up")
        run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{peer_ip}/24", "dev", ns_if)
        run("ip", "netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        code = ("import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
                f"s.bind(('{peer_ip}', 8089))\ns.listen(8)\n"
                "while True:\n c,_=s.accept(); c.sendall(b'hello-from-peer\\n'); c.close()\n")
        srv = subprocess.Popen(["ip", "netns", "exec", ns, PY, "-c", code])
        time.sleep(0.3)
        yield peer_ip
    finally:
        if srv:
            srv.kill()
            srv.wait()
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


FETCH = ("import socket,sys\ns=socket.create_connection((sys.argv[1], 8089), 5)\n"
         "print(s.recv(100).decode().strip())")


def test_outbound_reaches_a_peer(ak, peer):
    assert ak("create", "out", "--network", "full").rc == 0
    res = ak("exec", "out", "--", PY, "-c", FETCH, peer)
    assert res.rc == 0 and res.stdout == "hello-from-peer\n", res
    res = ak("run", "--network", "full", "--", PY, "-c", FETCH, peer)
    assert res.rc == 0 and res.stdout == "hello-from-peer\n", res


def test_no_network_cannot_reach_the_peer(ak, peer):
    res = ak("run", "--no-network", "--", PY, "-c", FETCH, peer)
    assert res.rc != 0 and "hello" not in res.stdout


def free_port():
    """A port nothing on 127.0.0.1 listens on now (a random pick collided with the ephemeral
    ports of other tests' connections)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_published_port(ak):
    port = free_port()
    assert ak("create", "web", "--network", "full", "-p", f"{port}:8000").rc == 0
    assert json.loads(ak("info", "--json", "web").out)["ports"] == [f"{port}:8000"]
    code = ("import socket\ns=socket.socket()\ns.bind(('0.0.0.0', 8000))\ns.listen(4)\n"
            "while True:\n c,_=s.accept(); c.sendall(b'served\\n'); c.close()\n")
    assert ak("exec", "-d", "web", "--", PY, "-c", code).rc == 0
    deadline = time.time() + 10
    got = b""
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 2) as c:
                got = c.recv(100)
                if got:
                    break
        except OSError:
            time.sleep(0.1)
    assert got == b"served\n"
    # published on loopback only
    addrs = [a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)]
    for a in addrs:
        if a.startswith("127."):
            continue
        with pytest.raises(OSError):
            socket.create_connection((a, port), 1).close()


def test_port_in_use_is_a_clear_error(ak):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        res = ak("create", "clash", "--network", "full", "-p", f"{port}:80")
        assert res.rc == 1 and f"cannot publish port {port}" in res.stderr, res
        assert ak.list()[0]["status"] == "stopped"
    finally:
        s.close()


def test_run_publishes_ports_while_it_runs(ak):
    """A run-once server (upstream's sandbox_run `ports`, non-fast): its port answers on the
    host's loopback while it runs (issue 17: runs refused ports)."""
    port = free_port()
    code = ("import socket\ns=socket.socket()\ns.bind(('0.0.0.0', 8000))\ns.listen(4)\n"
            "c,_=s.accept(); c.sendall(b'once\\n'); c.close()\n")
    run = subprocess.Popen(ak.prefix + [AK, "run", "--network=full", "-P", f"{port}:8000", "--", PY,
                                        "-c", code],
                           env=ak.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    got, deadline = b"", time.time() + 15
    while time.time() < deadline and not got:
        try:
            with socket.create_connection(("127.0.0.1", port), 2) as c:
                got = c.recv(100)
        except OSError:
            time.sleep(0.1)
    out, err = run.communicate(timeout=30)
    assert got == b"once\n", (out, err)
    assert run.returncode == 0, err
