# SPDX-License-Identifier: Apache-2.0
"""Published ports in proxy mode (docs/network.md, src/backend/port-relay.c): a server inside a
proxy-mode sandbox answers on the host's 127.0.0.1:HOST_PORT, through a relay that asks the
sandbox's agent for each connection (TCP_CONNECT); the port follows the sandbox's life, and what
proxy mode cannot publish is refused clearly."""
import os
import socket
import subprocess
import time

import pytest

from conftest import AK, needs_root, rootless_nobody

pytestmark = needs_root
PY = "/usr/bin/python3"
# a server inside: each connection gets "hello\n", then its bytes back, until it closes
ECHO = ("import socket,threading\ns=socket.socket()\n"
        "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('127.0.0.1',{port}))\n"
        "s.listen(64)\n"
        "def serve(c):\n c.sendall(b'hello\\n')\n while True:\n  d=c.recv(65536)\n"
        "  if not d: break\n  c.sendall(d)\n c.close()\n"
        "while True:\n c,_=s.accept(); threading.Thread(target=serve,args=(c,),daemon=True).start()\n")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port):
    """Something listens on 127.0.0.1:port (SO_REUSEADDR: connections in TIME_WAIT do not
    count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return False
        except OSError:
            return True


def wait_hello(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            c = socket.create_connection(("127.0.0.1", port), 2)
            c.settimeout(5)
            if c.recv(6) == b"hello\n":
                return c
            c.close()
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"nothing answered on 127.0.0.1:{port}")


def serve_inside(ak, name, port=8000):
    assert ak("exec", "-d", name, "--", PY, "-c", ECHO.format(port=port)).rc == 0


def test_published_port_reaches_a_server_inside(ak):
    """create --network proxy -p HOST:8000: the server inside answers on the host's loopback, a
    few MiB go both ways intact (the relay's backpressure), and only 127.0.0.1 is bound."""
    port = free_port()
    assert ak("create", "web", "--network", "proxy", "-p", f"{port}:8000").rc == 0
    serve_inside(ak, "web")
    c = wait_hello(port)
    data = os.urandom(4 << 20)
    got = bytearray()
    c.setblocking(False)
    sent = 0
    deadline = time.time() + 30
    while len(got) < len(data) and time.time() < deadline:
        if sent < len(data):
            try:
                sent += c.send(data[sent:sent + 65536])
            except BlockingIOError:
                pass
        try:
            d = c.recv(1 << 20)
            if d:
                got += d
        except BlockingIOError:
            time.sleep(0.001)
    c.close()
    assert bytes(got) == data
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True)
    assert [l.split()[3] for l in out.stdout.splitlines()] == [f"127.0.0.1:{port}"], out


def test_port_follows_the_sandbox(ak):
    """stop closes the port, start opens it again (at once: the old relay lets go as soon as
    the sandbox is gone), remove closes it for good."""
    port = free_port()
    assert ak("create", "life", "--network", "proxy", "-p", f"{port}:8000").rc == 0
    assert listening(port)
    assert ak("stop", "life").rc == 0
    deadline = time.time() + 5
    while listening(port) and time.time() < deadline:
        time.sleep(0.05)
    assert not listening(port)
    assert ak("start", "life").rc == 0
    assert ak("stop", "life").rc == 0
    res = ak("start", "life")  # right after a stop: the bind waits for the old relay
    assert res.rc == 0, res
    serve_inside(ak, "life")
    wait_hello(port).close()
    assert ak("remove", "life").rc == 0
    deadline = time.time() + 5
    while listening(port) and time.time() < deadline:
        time.sleep(0.05)
    assert not listening(port)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), 1).close()


def test_nothing_listening_inside_closes_the_connection(ak):
    """A published port nobody serves inside: the host's connection is accepted and closed (the
    agent's connect is refused), and the relay goes on serving the next one."""
    port = free_port()
    assert ak("create", "empty", "--network", "proxy", "-p", f"{port}:8000").rc == 0
    with socket.create_connection(("127.0.0.1", port), 2) as c:
        c.settimeout(5)
        assert c.recv(10) == b""
    serve_inside(ak, "empty")
    wait_hello(port).close()


def test_port_in_use_fails_the_start_and_leaves_nothing(ak):
    """A host port already taken: a clear error naming it, the sandbox stopped, no relay and no
    listener of ours left."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    other = free_port()
    try:
        res = ak("create", "clash", "--network", "proxy", "-p", f"{other}:80", "-p",
                 f"{port}:81")
        assert res.rc != 0 and f"cannot publish port {port}" in res.stderr, res
        assert ak.list()[0]["status"] == "stopped"
        assert not listening(other)  # the first port, bound before the second failed
    finally:
        s.close()


def test_what_proxy_mode_cannot_publish_is_refused(ak):
    """UDP, and the proxy's own ports inside (15001, 15053): refused at the start with a message
    naming --network full, for a run too."""
    for spec, why in (("18053:53/udp", "UDP"), (f"{free_port()}:15001", "egress proxy"),
                      (f"{free_port()}:15053", "egress proxy")):
        res = ak("create", "bad", "--network", "proxy", "-p", spec)
        assert res.rc != 0 and why in res.stderr and "--network full" in res.stderr, res
        ak("remove", "bad")
    res = ak("run", "--network", "proxy", "-P", "18053:53/udp", "--", "true")
    assert res.rc != 0 and "--network full" in res.stderr, res


def test_run_publishes_ports_in_proxy_mode(ak):
    """A run-once server in proxy mode (the API's and MCP's run `ports`): its port answers while
    it runs — the run's agent serves the run on its socket pair and the relay on a second socket
    made for it (--ports-fd), unlinked once the relay holds it — and closes when it ends."""
    port = free_port()
    code = ("import socket\ns=socket.socket()\ns.bind(('127.0.0.1',8000))\ns.listen(4)\n"
            "c,_=s.accept(); c.sendall(b'hello\\n'); c.close()\n")
    run = subprocess.Popen([*ak.prefix, AK, "run", "--network", "proxy", "-P", f"{port}:8000",
                            "--", PY, "-c", code], env=ak.env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    try:
        wait_hello(port, timeout=15).close()
        assert run.wait(20) == 0, run.stderr.read()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    deadline = time.time() + 5
    while listening(port) and time.time() < deadline:
        time.sleep(0.05)
    assert not listening(port)
    eph = ak.data_dir / "run" / ".ephemeral"
    assert not list(eph.glob("ports-*.sock")) if eph.exists() else True


@pytest.fixture
def rl():
    yield from rootless_nobody("ak-rlports-")


def test_rootless_published_port(rl):
    """Rootless (nobody): the same relay, the same checks (the sandbox's network namespace is its
    user namespace's, which its owner may inspect)."""
    port = free_port()
    res = rl("create", "rweb", "--network", "proxy", "-p", f"{port}:8000")
    assert res.rc == 0, res
    assert rl("exec", "-d", "rweb", "--", PY, "-c", ECHO.format(port=8000)).rc == 0
    c = wait_hello(port)
    c.sendall(b"ping")
    assert c.recv(4) == b"ping"
    c.close()
    assert rl("remove", "rweb").rc == 0
    deadline = time.time() + 5
    while listening(port) and time.time() < deadline:
        time.sleep(0.05)
    assert not listening(port)


@pytest.mark.parametrize("point", ["native-ports-published", "native-recorded"])
def test_failed_start_leaves_no_listener(ak, point):
    """A start that fails once its relay is up (AGENTKERNEL_TEST_HOOK=fail:POINT): the undo
    kills the sandbox and the relay goes with it; no port of ours stays bound."""
    port = free_port()
    res = ak("create", "undo", "--network", "proxy", "-p", f"{port}:8000",
             env={"AGENTKERNEL_TEST_HOOK": f"fail:{point}"})
    assert res.rc != 0 and point in res.stderr, res
    deadline = time.time() + 5
    while listening(port) and time.time() < deadline:
        time.sleep(0.05)
    assert not listening(port)


def test_mcp_run_ports_in_proxy_mode(ak):
    """MCP's sandbox_run with `ports` and the profile's network (on: proxy): the run's server
    answers on the host's loopback while the tool call runs."""
    import threading
    from conftest import mcp_call
    port = free_port()
    code = ("import socket\ns=socket.socket()\ns.bind(('127.0.0.1',8000))\ns.listen(4)\n"
            "c,_=s.accept(); c.sendall(b'hello\\n'); c.close()\n")
    out = {}
    t = threading.Thread(target=lambda: out.update(doc=mcp_call(
        ak, "sandbox_run", {"command": [PY, "-c", code], "ports": [f"{port}:8000"],
                            "fast": False, "timeout_ms": 20000})))
    t.start()
    try:
        wait_hello(port, timeout=20).close()
    finally:
        t.join(60)
    doc = out.get("doc")
    assert doc and "error" not in doc and not doc["result"].get("isError"), doc
