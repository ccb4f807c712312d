# SPDX-License-Identifier: Apache-2.0
"""A hostile sandbox with secret grants tries to make the egress proxy send a secret's value
where it does not belong, or to read the value back (issue 15 part B; SECRETS-B.md).

The world is tests/mitm_world.py: the proxy alone with a sandbox "sb1" whose grants bind
K_BEARER to secure.allowed.test, K_OTHER to secure.denied.test and K_WRONG to wrongname.test
(a name the policy maps to a server whose certificate does not name it); the HTTPS echo servers
record what they receive, so "the value never arrived" is checked at the far end. What must hold
in every test: the value reaches only its own host over verified TLS, the sandbox never sees it,
and no log says it (or the placeholder).
"""
import base64
import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from conftest import have, needs_root  # noqa: E402
import proxy_world  # noqa: E402
from mitm_world import (HOST, OTHER, P_BEARER, P_OTHER, P_WRONG, POLICY, V_BEARER,  # noqa: E402
                        V_BODY, V_OTHER, V_WRONG, MitmWorld)

pytestmark = [needs_root, pytest.mark.skipif(
    not (have("ip") and have("nft") and have("curl") and have("openssl")
         and os.path.exists(proxy_world.PROXY)),
    reason="needs ip, nft, curl, openssl and a built agentkernel-proxy")]

VALUES = (V_BEARER, V_OTHER, V_WRONG, V_BODY)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = MitmWorld(tmp_path_factory.mktemp("mitm-attack"), POLICY)
    yield w
    w.close()


def received(world):
    return world.received.read_text() if world.received.exists() else ""


def refused_misdirected(world, r, key, host):
    """403 naming the KEY (never the placeholder), and an audit alert with KEY and host."""
    assert r.stdout.startswith(b"HTTP/1.1 403"), r
    assert key.encode() in r.stdout
    assert b"AGENTKERNEL_PLACEHOLDER_" not in r.stdout
    assert any(a.get("type", a.get("event")) == "secret_misdirected" and a.get("secret") == key
               and a.get("host") == host for a in world.audit_lines()), world.audit_lines()


def test_placeholder_sent_to_another_grants_host(world):
    """K_BEARER's placeholder in Authorization to secure.denied.test (bound to another grant,
    intercepted): 403 naming K_BEARER, audited; the host receives nothing."""
    before = received(world)
    r = world.https(f"https://{OTHER}:8443/echo?mis1", "-i", "-H",
                    f"Authorization: Bearer {P_BEARER}")
    refused_misdirected(world, r, "K_BEARER", OTHER)
    assert received(world) == before


def test_placeholder_in_query_to_another_grants_host(world):
    """The placeholder in the query string of a request to another grant's host: refused."""
    before = received(world)
    r = world.https(f"https://{OTHER}:8443/echo?k={P_BEARER}", "-i")
    refused_misdirected(world, r, "K_BEARER", OTHER)
    assert received(world) == before


def test_placeholder_in_basic_credentials_to_another_grants_host(world):
    """The placeholder hidden in Basic credentials (base64) to another grant's host: refused."""
    before = received(world)
    r = world.https(f"https://{OTHER}:8443/echo", "-i", "-u", f"x:{P_BEARER}")
    refused_misdirected(world, r, "K_BEARER", OTHER)
    assert received(world) == before


def test_placeholder_in_body_to_another_grants_host(world):
    """The placeholder in a request body to another grant's host: refused before the body goes
    on; the host never gets the placeholder."""
    r = world.https(f"https://{OTHER}:8443/echo", "-i", "--data-binary", f"leak={P_BEARER}")
    refused_misdirected(world, r, "K_BEARER", OTHER)
    assert P_BEARER not in received(world)


@pytest.mark.parametrize("port", [80, 8081])
def test_placeholder_over_plain_http(world, port):
    """Any placeholder in a plain-HTTP request (here to an allowed host, and the other grant's
    own placeholder too) is refused: values only ever go over verified TLS."""
    for ph, key in ((P_BEARER, "K_BEARER"), (P_OTHER, "K_OTHER")):
        r = world.sh("curl", "-sS", "-i", "--max-time", "10", "-H", f"X-Token: {ph}",
                     f"http://www.allowed.test:{port}/" if port == 80 else
                     f"http://secure.allowed.test:{port}/")
        refused_misdirected(world, r, key, "www.allowed.test" if port == 80 else HOST)


def test_placeholder_split_across_plain_body_writes(world):
    """A plain-HTTP body that carries the placeholder in two writes (split mid-placeholder, a
    pause between): the streamed scan's carry still finds it."""
    code = f"""
import socket, time, sys
s = socket.create_connection(("www.allowed.test", 80), timeout=5)
ph = {P_BEARER!r}.encode()
body = b"a" * 100 + ph + b"b" * 10
s.sendall(b"POST / HTTP/1.1\\r\\nHost: www.allowed.test\\r\\nContent-Length: %d\\r\\n\\r\\n"
          % len(body) + body[:120])
time.sleep(0.3)
s.sendall(body[120:])
out = b""
try:
    while True:
        d = s.recv(65536)
        if not d: break
        out += d
except OSError:
    pass
sys.stdout.write(out.decode("latin-1"))
"""
    r = world.sh(proxy_world.PY, "-c", code, timeout=20)
    assert r.stdout.startswith(b"HTTP/1.1 403"), r
    assert b"K_BEARER" in r.stdout


def test_host_header_not_the_sni(world):
    """TLS to the bound host, then a request whose Host names another host (fronting inside the
    interception): 403 Host/SNI mismatch; nothing sent, no value anywhere."""
    before = received(world)
    r = world.https(f"https://{HOST}:8443/echo", "-i", "-H", f"Host: {OTHER}:8443", "-H",
                    f"Authorization: Bearer {P_BEARER}")
    assert r.stdout.startswith(b"HTTP/1.1 403"), r
    assert b"Host/SNI mismatch" in r.stdout
    assert received(world) == before


def test_connect_with_another_sni(world):
    """CONNECT to the bound host, then a ClientHello naming another host: refused as fronting;
    nothing reaches either server."""
    code = f"""
import socket, ssl
s = socket.create_connection(("127.0.0.1", 15001), timeout=5)
s.sendall(b"CONNECT {HOST}:8443 HTTP/1.1\\r\\nHost: {HOST}:8443\\r\\n\\r\\n")
assert b" 200 " in s.recv(4096)
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
try:
    t = ctx.wrap_socket(s, server_hostname="{OTHER}")
    t.sendall(b"GET /echo?sni HTTP/1.1\\r\\nHost: {OTHER}:8443\\r\\nAuthorization: Bearer {P_OTHER}\\r\\n\\r\\n")
    print(t.recv(4096))
except (OSError, ssl.SSLError) as e:
    print("refused", e)
"""
    before = received(world)
    r = world.sh(proxy_world.PY, "-c", code, timeout=20)
    assert b"refused" in r.stdout or r.stdout.strip() in (b"b''", b""), r
    assert received(world) == before


def test_address_literal_is_not_intercepted(world):
    """The sandbox reaches the bound host's address by IP literal hoping for a substitution: not
    intercepted (no name), so the placeholder is all the server could get."""
    r = world.sh("curl", "-sS", "-k", "--max-time", "10", "-H",
                 f"Authorization: Bearer {P_BEARER}", "https://198.18.0.3:8443/echo?literal")
    if r.returncode == 0:
        assert V_BEARER not in received(world)
    assert V_BEARER.encode() not in r.stdout


def test_unverifiable_upstream_gets_nothing(world):
    """A bound name whose server cannot prove it (the certificate names other hosts): 502, and
    the server never receives the value."""
    r = world.https("https://wrongname.test:8443/echo?wrong", "-i", "-H",
                    f"Authorization: Bearer {P_WRONG}")
    assert r.stdout.startswith(b"HTTP/1.1 502"), r
    assert V_WRONG not in received(world) and "wrong" not in received(world).split("\n")[-1]


@pytest.mark.parametrize("path", ["/echo", "/chunked", "/close", "/header", "/sse"])
def test_reflected_value_never_reaches_the_sandbox(world, path):
    """The bound host reflects the value (body with Content-Length, 7-byte chunks that split it,
    a body to the close, a response header, an event stream): the sandbox reads only the
    placeholder, in raw, base64 and hex forms alike."""
    r = world.https(f"https://{HOST}:8443{path}", "-i", "-H", f"Authorization: Bearer {P_BEARER}",
                    timeout=30)
    out = r.stdout
    for form in (V_BEARER.encode(), base64.b64encode(V_BEARER.encode()),
                 V_BEARER.encode().hex().encode()):
        assert form not in out
    assert P_BEARER.encode() in out


def test_values_absent_from_logs_stats_and_proc(world):
    """After every attack above: no value (raw, base64, hex) in the decision log, the audit log,
    stats, or the proxy processes' cmdline and environ; no placeholder in the logs either."""
    # make sure something was intercepted and substituted
    world.https(f"https://{HOST}:8443/echo", "-H", f"Authorization: Bearer {P_BEARER}")
    texts = [world.log.read_text(), world.audit.read_text() if world.audit.exists() else "",
             json.dumps(world.ctl({"op": "stats"}))]
    stats = world.ctl({"op": "stats"})
    for pid in (stats["supervisor_pid"], stats["worker_pid"]):
        for f in ("cmdline", "environ"):
            with open(f"/proc/{pid}/{f}", "rb") as fh:
                texts.append(fh.read().decode("latin-1"))
    for t in texts:
        for v in VALUES:
            for form in (v, base64.b64encode(v.encode()).decode(), v.encode().hex()):
                assert form not in t
    for t in texts[:3]:
        assert "AGENTKERNEL_PLACEHOLDER_" not in t
    assert stats["sandboxes"]["sb1"]["misdirected"] >= 4


def test_proxy_is_not_dumpable(world):
    """The values live in the proxy's memory: its processes are not dumpable (no core, no
    ptrace by the user's other processes)."""
    stats = world.ctl({"op": "stats"})
    for pid in (stats["supervisor_pid"], stats["worker_pid"]):
        st = os.stat(f"/proc/{pid}/mem")
        # a non-dumpable process's /proc files belong to root:root whatever its uid
        assert st.st_uid == 0
        with open(f"/proc/{pid}/status") as f:
            assert "TracerPid:\t0" in f.read()


def test_absolute_form_target_inside_interception(world):
    """Inside the intercepted TLS connection the sandbox asks for another host by absolute URL
    (a proxy-style request): refused 400, nothing sent anywhere."""
    code = f"""
import socket, ssl
ctx = ssl.create_default_context(cafile={str(world.proxy_ca)!r})
s = ctx.wrap_socket(socket.create_connection(("{HOST}", 8443), timeout=5), server_hostname="{HOST}")
s.sendall(b"GET https://{OTHER}:8443/echo?abs HTTP/1.1\\r\\nHost: {HOST}:8443\\r\\n"
          b"Authorization: Bearer {P_BEARER}\\r\\n\\r\\n")
print(s.recv(4096).decode())
"""
    before = received(world)
    r = world.sh(proxy_world.PY, "-c", code, timeout=20)
    assert r.stdout.startswith(b"HTTP/1.1 400"), r
    assert received(world) == before


def test_second_request_to_another_host_on_a_kept_connection(world):
    """A kept-alive intercepted connection: the first request is fine, the second names another
    Host: refused 403, the second never reaches a server."""
    code = f"""
import socket, ssl
ctx = ssl.create_default_context(cafile={str(world.proxy_ca)!r})
s = ctx.wrap_socket(socket.create_connection(("{HOST}", 8443), timeout=5), server_hostname="{HOST}")
def ask(host, path):
    s.sendall(("GET %s HTTP/1.1\\r\\nHost: %s\\r\\nAuthorization: Bearer {P_BEARER}\\r\\n\\r\\n"
               % (path, host)).encode())
    got = b""
    while b"\\r\\n\\r\\n" not in got:
        got += s.recv(65536)
    head, body = got.split(b"\\r\\n\\r\\n", 1)
    n = int([l.split(b":")[1] for l in head.split(b"\\r\\n") if l.lower().startswith(b"content-length")][0]) \\
        if b"content-length" in head.lower() else 0
    while len(body) < n or (b"chunked" in head.lower() and not body.endswith(b"0\\r\\n\\r\\n")):
        body += s.recv(65536)
    return head.split(b"\\r\\n")[0].decode()
print(ask("{HOST}:8443", "/echo?first"))
print(ask("{OTHER}:8443", "/echo?second"))
"""
    r = world.sh(proxy_world.PY, "-c", code, timeout=20)
    lines = r.stdout.decode().splitlines()
    assert lines[0].startswith("HTTP/1.1 200") and lines[1].startswith("HTTP/1.1 403"), r
    assert "second" not in received(world)
