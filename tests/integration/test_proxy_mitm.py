# SPDX-License-Identifier: Apache-2.0
"""agentkernel-proxy's secret injection (issue 15 part B), driven alone in the test world of
tests/proxy_world.py: a sandbox registered with grants (SECRETS-B.md's control protocol), values
sent after the registration, and an HTTPS test server with its own CA (given as upstream_ca) on
the private internet. Clients run inside the sandbox netns and trust the CA the proxy returned."""
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from conftest import have, needs_root  # noqa: E402
import proxy_world  # noqa: E402

pytestmark = [needs_root, pytest.mark.skipif(
    not (have("ip") and have("nft") and have("curl") and have("openssl")
         and os.path.exists(proxy_world.PROXY)),
    reason="needs ip, nft, curl, openssl and a built agentkernel-proxy")]

from mitm_world import (HOST, OTHER, P_BEARER, P_BODY, P_NOVAL, P_OTHER, P_WRONG,  # noqa: E402
                        POLICY, V_BEARER, V_BODY, V_OTHER, V_WRONG, MitmWorld, grant,
                        ctl_raw, placeholder, said, secrets_extra)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = MitmWorld(tmp_path_factory.mktemp("mitm"), POLICY)
    yield w
    w.close()


@pytest.mark.parametrize("explicit", [False, True])
def test_bearer_is_substituted(world, explicit):
    """The placeholder in Authorization: Bearer reaches the bound host as the value (CONNECT and
    transparent TLS); the sandbox sees the placeholder again in the echo."""
    r = world.https(f"https://{HOST}:8443/echo", "-H", f"Authorization: Bearer {P_BEARER}",
                    explicit=explicit)
    got = said(r)
    # the server's echo had the value: scrubbed back to the placeholder on the way in
    assert got["headers"]["Authorization"] == f"Bearer {P_BEARER}"
    assert V_BEARER.encode() not in r.stdout


def fresh(world, name, extra, check=True):
    """Registers name from a new sandbox netns (a netns's listeners are registered once)."""
    ns = world.sandbox_netns()
    return world.register(name, POLICY, ns=ns, holder=ns, extra=extra, check=check)


def test_register_with_secrets_returns_a_ca(world, tmp_path):
    """register with "secrets" answers with the sandbox's CA: EC P-256, CA:TRUE pathlen 0
    critical, keyCertSign/cRLSign, OU the sandbox's name, ~30 days; its key is in no reply."""
    ph = placeholder()
    reply = fresh(world, "sb2", {
        "secrets": [grant("API_KEY", ["secure.allowed.test"], ph)],
        "upstream_ca": (world.tmp / "ca.pem").read_text(),
        "values": {"API_KEY": b"v".hex()}})
    assert reply["ok"] and "PRIVATE" not in json.dumps(reply)
    pem = reply["ca"]
    (tmp_path / "ca.pem").write_text(pem)
    text = subprocess.run(["openssl", "x509", "-noout", "-text", "-in", tmp_path / "ca.pem"],
                          capture_output=True, text=True, check=True).stdout
    assert "CN = AgentKernel Proxy CA" in text and "OU = sb2" in text
    assert "prime256v1" in text or "P-256" in text
    assert "CA:TRUE, pathlen:0" in text
    assert "Certificate Sign, CRL Sign" in text
    assert text.count("critical") >= 2
    # a new registration of the same name makes a new CA
    again = fresh(world, "sb2", {"secrets": [grant("API_KEY", ["secure.allowed.test"], ph)]})
    assert again["ca"] != pem
    assert world.ctl({"op": "unregister", "sandbox": "sb2"})["ok"]


def test_register_without_secrets_has_no_ca(world):
    """Without grants nothing changes: no CA in the reply."""
    assert fresh(world, "sb3", None) == {"ok": True}
    assert world.ctl({"op": "unregister", "sandbox": "sb3"})["ok"]


@pytest.mark.parametrize("bad", [
    [{"name": "K", "hosts": ["*"], "header": "Authorization", "placeholder": placeholder()}],
    [{"name": "K", "hosts": ["a.test:443"], "header": "Authorization",
      "placeholder": placeholder()}],
    [{"name": "K", "hosts": ["198.18.0.3"], "header": "Authorization",
      "placeholder": placeholder()}],
    [{"name": "K", "hosts": [], "header": "Authorization", "placeholder": placeholder()}],
    [{"name": "K", "hosts": ["a.test"], "header": "Bad Header", "placeholder": placeholder()}],
    [{"name": "K", "hosts": ["a.test"], "header": "X", "placeholder": "AGENTKERNEL_PLACEHOLDER_x"}],
    [{"name": "K", "hosts": ["a.test"], "header": "X", "placeholder": placeholder(),
      "extra": 1}],
    [{"name": "K", "hosts": ["a.test"], "header": "X", "prefix": "a\r\nb",
      "placeholder": placeholder()}],
    [{"name": "bad name", "hosts": ["a.test"], "header": "X", "placeholder": placeholder()}],
    [{"name": "K", "hosts": ["a.test"] * 17, "header": "X", "placeholder": placeholder()}],
    [{"name": "K%d" % i, "hosts": ["a.test"], "header": "X", "placeholder": placeholder()}
     for i in range(65)],
])
def test_register_refuses_bad_grants(world, bad):
    """Bad grants are refused with a message; nothing is registered then (the old
    registration stays)."""
    reply = fresh(world, "sb-bad", {"secrets": bad}, check=False)
    assert reply["ok"] is False
    assert world.ctl({"op": "get_policy", "sandbox": "sb-bad"})["ok"] is False


def test_register_refuses_bad_upstream_ca(world):
    reply = fresh(world, "sb-bad", {
        "secrets": [grant("K", ["a.test"], placeholder())], "upstream_ca": "not a pem"},
        check=False)
    assert reply["ok"] is False and "upstream_ca" in reply["error"]


def test_secret_value_messages(world):
    """secret_value: JSON, NUL, raw bytes (1..65536, no NUL) for a known grant; anything else
    refused; the value is never echoed."""
    fresh(world, "sb4", {"secrets": [grant("K1", ["secure.allowed.test"], placeholder())]})
    ok = ctl_raw(world, {"op": "secret_value", "sandbox": "sb4", "name": "K1"}, b"x" * 65536)
    assert ok == {"ok": True}
    for msg, raw in (({"op": "secret_value", "sandbox": "sb4", "name": "NOPE"}, b"v"),
                     ({"op": "secret_value", "sandbox": "nope", "name": "K1"}, b"v"),
                     ({"op": "secret_value", "sandbox": "sb4", "name": "K1"}, b""),
                     ({"op": "secret_value", "sandbox": "sb4", "name": "K1"}, b"a\0b"),
                     ({"op": "secret_value", "sandbox": "sb4", "name": "K1"}, b"x" * 65537),
                     ({"op": "stats"}, b"v")):
        r = ctl_raw(world, msg, raw)
        assert r["ok"] is False, (msg, r)
        assert "xxxx" not in json.dumps(r)
    assert world.ctl({"op": "unregister", "sandbox": "sb4"})["ok"]
    sent = world.last_received()
    assert sent["headers"]["Authorization"] == f"Bearer {V_BEARER}"


def test_stats_and_log_name_the_interception(world):
    """Decision log lines of intercepted requests say "intercepted" and the KEYs used (names
    only); stats count intercepted connections and substitutions."""
    said(world.https(f"https://{HOST}:8443/echo?n=1", "-H", f"Authorization: Bearer {P_BEARER}"))
    assert world.wait_log(lambda x: x.get("intercepted") and x.get("secrets") == ["K_BEARER"]
                          and x["method"] == "GET" and x["host"] == HOST)
    st = world.ctl({"op": "stats"})["sandboxes"]["sb1"]
    assert st["intercepted"] >= 1 and st["substituted"] >= 1 and "misdirected" in st


def test_other_grant_header_is_substituted(world):
    """A grant's own header (x-api-key, no prefix) on its own host gets its value."""
    r = world.https(f"https://{OTHER}:8443/echo", "-H", f"x-api-key: {P_OTHER}")
    assert said(r)["headers"]["x-api-key"] == P_OTHER
    assert world.last_received()["headers"]["x-api-key"] == V_OTHER


def test_basic_credentials_are_substituted(world):
    """Authorization: Basic base64(user:PLACEHOLDER) reaches the host as base64(user:VALUE)."""
    import base64
    said(world.https(f"https://{HOST}:8443/echo", "-u", f"me:{P_BEARER}"))
    got = world.last_received()["headers"]["Authorization"]
    assert got.startswith("Basic ")
    assert base64.b64decode(got[6:]) == f"me:{V_BEARER}".encode()


def test_custom_header_and_query_are_substituted(world):
    """Any header value and the request target (query) are substituted."""
    said(world.https(f"https://{HOST}:8443/echo?key={P_BEARER}&x=1", "-H",
                     f"X-Custom: token={P_BEARER}"))
    sent = world.last_received()
    assert sent["path"] == f"/echo?key={V_BEARER}&x=1"
    assert sent["headers"]["X-Custom"] == f"token={V_BEARER}"


def test_accept_encoding_is_identity(world):
    """Responses must be scrubbable: the request's Accept-Encoding becomes identity."""
    said(world.https(f"https://{HOST}:8443/echo", "--compressed"))
    assert world.last_received()["headers"]["Accept-Encoding"] == "identity"


def test_body_without_opt_in_is_not_substituted(world):
    """A grant without "body" leaves the request body as the client wrote it."""
    r = world.https(f"https://{HOST}:8443/echo", "--data-binary", f"k={P_BEARER}")
    assert said(r)["body"] == f"k={P_BEARER}"
    assert world.last_received()["body"] == f"k={P_BEARER}"


def test_keep_alive_requests_are_each_substituted(world):
    """Two requests on one kept-alive intercepted connection: both substituted."""
    r = world.sh("curl", "-sS", "-v", "--max-time", "10", "--cacert", str(world.proxy_ca),
                 "-H", f"Authorization: Bearer {P_BEARER}", f"https://{HOST}:8443/echo?a",
                 f"https://{HOST}:8443/echo?b")
    assert r.returncode == 0, r
    assert b"Re-using existing connection" in r.stderr
    lines = world.received.read_text().splitlines()[-2:]
    assert [json.loads(x)["path"] for x in lines] == ["/echo?a", "/echo?b"]
    assert all(json.loads(x)["headers"]["Authorization"] == f"Bearer {V_BEARER}"
               for x in lines)


@pytest.mark.parametrize("path", ["/echo", "/chunked", "/close", "/header"])
def test_echoed_value_is_scrubbed(world, path):
    """The bound host echoes the value (Content-Length, chunked, to the close, in a header): the
    sandbox gets the placeholder instead, in well-framed responses."""
    r = world.https(f"https://{HOST}:8443{path}", "-i", "-H", f"Authorization: Bearer {P_BEARER}")
    assert r.returncode == 0, r
    assert V_BEARER.encode() not in r.stdout
    assert P_BEARER.encode() in r.stdout
    if path != "/header":
        body = r.stdout.split(b"\r\n\r\n", 1)[1]
        assert json.loads(body)["headers"]["Authorization"] == f"Bearer {P_BEARER}"


def test_sse_is_streamed_promptly_and_scrubbed(world):
    """An event stream's first event (holding the value) arrives scrubbed before the server ends
    the stream 3 s later: only bytes that may begin a value are held back."""
    code = f"""
import socket, ssl, time
ctx = ssl.create_default_context(cafile={str(world.proxy_ca)!r})
s = ctx.wrap_socket(socket.create_connection(("{HOST}", 8443), timeout=5), server_hostname="{HOST}")
t = time.time()
s.sendall(b"GET /sse HTTP/1.1\\r\\nHost: {HOST}:8443\\r\\nAuthorization: Bearer {P_BEARER}\\r\\n\\r\\n")
got = b""
while b"data: " not in got or b"\\n\\n" not in got.split(b"data: ", 1)[1]:
    got += s.recv(65536)
print(round(time.time() - t, 2)); print(got.decode())
"""
    r = world.sh(proxy_world.PY, "-c", code, timeout=20)
    assert r.returncode == 0, r
    out = r.stdout.decode()
    assert float(out.split()[0]) < 2.5
    assert f"data: Bearer {P_BEARER}" in out and V_BEARER not in out


def test_websocket_upgrade_is_relayed(world):
    """An Upgrade request is substituted, then bytes go both ways untouched after 101."""
    code = f"""
import socket, ssl
ctx = ssl.create_default_context(cafile={str(world.proxy_ca)!r})
s = ctx.wrap_socket(socket.create_connection(("{HOST}", 8443), timeout=5), server_hostname="{HOST}")
s.sendall(b"GET /ws HTTP/1.1\\r\\nHost: {HOST}:8443\\r\\nUpgrade: websocket\\r\\n"
          b"Connection: Upgrade\\r\\nAuthorization: Bearer {P_BEARER}\\r\\n\\r\\n")
got = b""
while b"\\r\\n\\r\\n" not in got:
    got += s.recv(4096)
assert got.startswith(b"HTTP/1.1 101"), got
s.sendall(b"ping-frame-bytes")
echo = b""
while len(echo) < 16:
    echo += s.recv(4096)
print(echo.decode())
"""
    r = world.sh(proxy_world.PY, "-c", code, timeout=20)
    assert r.returncode == 0, r
    assert r.stdout.decode().strip() == "ping-frame-bytes"
    assert world.last_received()["headers"]["Authorization"] == f"Bearer {V_BEARER}"


def test_value_not_arrived_is_503(world):
    """A grant whose value never arrived: 503 naming the KEY, never sent with the
    placeholder."""
    r = world.https(f"https://{HOST}:8443/echo?novalue", "-i", "-H", f"X-K: {P_NOVAL}")
    assert r.stdout.startswith(b"HTTP/1.1 503"), r
    assert b"K_NOVAL" in r.stdout and P_NOVAL.encode() not in r.stdout
    assert "novalue" not in (world.received.read_text() if world.received.exists() else "")


def test_upstream_wrong_name_is_502(world):
    """The upstream's certificate does not name the host: 502 naming the reason; nothing
    sent."""
    r = world.https("https://wrongname.test:8443/echo", "-i", "-H",
                    f"Authorization: Bearer {P_WRONG}")
    assert r.stdout.startswith(b"HTTP/1.1 502"), r
    assert b"certificate" in r.stdout.lower()


def test_upstream_not_trusted_is_502(world):
    """Without upstream_ca the test CA is not trusted: 502 naming the verification error."""
    ns = world.sandbox_netns()
    reply = world.register("sb-noca", POLICY, ns=ns, holder=ns,
                           extra=secrets_extra(world, upstream_ca=False))
    (world.tmp / "noca.pem").write_text(reply["ca"])
    r = proxy_world.run(proxy_world.ns_exec(ns, "curl", "-sS", "-i", "--max-time", "10",
                                            "--cacert", str(world.tmp / "noca.pem"),
                                            f"https://{HOST}:8443/echo"), check=False)
    assert r.stdout.startswith(b"HTTP/1.1 502"), r
    assert b"certificate verification failed" in r.stdout
    assert world.ctl({"op": "unregister", "sandbox": "sb-noca"})["ok"]


def test_client_not_trusting_the_ca_is_logged(world):
    """A client that does not trust the sandbox's CA fails its own way; the decision log and the
    audit say tls_client_rejected_ca with the host."""
    r = world.sh("curl", "-sS", "--max-time", "10", f"https://{HOST}:8443/echo")
    assert r.returncode != 0
    assert world.wait_log(lambda x: x.get("alert") == "tls_client_rejected_ca"
                          and x["host"] == HOST)
    assert any(a.get("type") == "tls_client_rejected_ca" or
               a.get("event") == "tls_client_rejected_ca" for a in world.audit_lines())


def test_unbound_host_is_tunnelled_untouched(world):
    """TLS to an allowed host without a grant is not intercepted: the client sees the real
    server's certificate (the test CA), not the sandbox's."""
    r = world.sh("curl", "-sS", "--max-time", "10", "--cacert", str(world.tmp / "ca.pem"),
                 "https://denied.test/", timeout=20)
    assert r.returncode == 0, r
    assert b"hello from the test internet" in r.stdout


def test_worker_restart_keeps_the_values(world):
    """A killed worker comes back with the registrations and their values: a request after the
    restart is still substituted."""
    import signal
    import time
    pid = world.worker_pid()
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        new = world.worker_pid()
        if new and new != pid:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the worker did not come back")
    said(world.https(f"https://{HOST}:8443/echo?after", "-H", f"Authorization: Bearer {P_BEARER}"))
    assert world.last_received()["headers"]["Authorization"] == f"Bearer {V_BEARER}"


@pytest.mark.parametrize("chunked", [False, True])
def test_body_opt_in_is_substituted(world, chunked):
    """A grant with "body": its placeholder in a request body is replaced (the body buffered,
    its Content-Length fixed; a chunked body re-framed with a length); another bound grant's
    placeholder in the same body (no opt-in) goes as written."""
    extra = ["-H", "Transfer-Encoding: chunked"] if chunked else []
    body = f"a={P_BODY}&b={P_BEARER}&c={P_BODY}"
    r = world.https(f"https://{HOST}:8443/echo", "--data-binary", body, *extra)
    assert said(r)["body"] == body  # the echo, scrubbed back
    sent = world.last_received()
    assert sent["body"] == f"a={V_BODY}&b={P_BEARER}&c={V_BODY}"
    assert sent["headers"]["Content-Length"] == str(len(sent["body"]))
    assert "Transfer-Encoding" not in sent["headers"]


def test_body_opt_in_over_1mib_is_413(world):
    """A body to substitute larger than 1 MiB: 413, nothing sent."""
    before = world.received.read_text()
    big = world.tmp / "big.txt"
    big.write_text(P_BODY + "x" * (1 << 20))
    r = world.https(f"https://{HOST}:8443/echo?big", "-i", "--data-binary", f"@{big}")
    assert r.stdout.startswith(b"HTTP/1.1 413"), r.stdout[:200]
    assert world.received.read_text() == before


def test_pinning_client_is_logged(world):
    """A client pinning another key (curl --pinnedpubkey) fails clearly on its side; the proxy
    logs tls_client_rejected_ca for the host."""
    r = world.https(f"https://{HOST}:8443/echo?pinned", "--pinnedpubkey",
                    "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    assert r.returncode != 0 and b"pinned" in r.stderr.lower()
    assert world.wait_log(lambda x: x.get("alert") == "tls_client_rejected_ca"
                          and "without a request" in x["rule"] and x["host"] == HOST)
