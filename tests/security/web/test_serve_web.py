# SPDX-License-Identifier: Apache-2.0
"""A web page in the developer's browser attacks `agentkernel serve` on 127.0.0.1 (issue 12,
finding 5). A page can send "simple" cross-origin requests without a preflight (text/plain,
form-urlencoded or multipart bodies; no custom headers, so no API key), and, through DNS
rebinding, make its own name resolve to 127.0.0.1 and read the answers (Host: evil.example).
The client here sends exactly what a browser would.

What must hold: out of the box the API wants a key a page cannot have; whatever the key
configuration, a body that is not application/json is 415, a foreign Host or Origin is 403, a
preflight gets no CORS grant, and no route runs for such a request."""
import subprocess

import pytest

from conftest import AK, needs_root
from serve_client import Server, free_port

pytestmark = needs_root

EVIL = "http://evil.example"
RUN = {"command": ["sh", "-c", "echo pwned"]}


@pytest.fixture
def server(ak):
    """The default server: no key given, so it makes one for its owner."""
    s = Server(ak)
    yield s
    s.stop()


@pytest.fixture
def open_server(ak):
    """A server with --insecure-no-auth: the browser rules must hold without any key. (A
    server from before the flag was keyless by default: that one then.)"""
    try:
        s = Server(ak, "--insecure-no-auth")
    except RuntimeError:
        s = Server(ak)
    yield s
    s.stop()


def browser(server, method, path, body=None, ctype=None, host=None, origin=None, extra=None,
            unix=False):
    """A request as a page's fetch() or <form> would send it: no Authorization header."""
    h = {}
    if ctype:
        h["Content-Type"] = ctype
    if host is not None:
        h["Host"] = host
    if origin is not None:
        h["Origin"] = origin
    h.update(extra or {})
    return server.exchange(method, path, raw=body, headers=h, key=False, unix=unix)


def assert_nothing_ran(ak):
    assert ak.names() == [], "a sandbox was created by a refused request"


# ---- CSRF: simple requests a page may send without a preflight ----

@pytest.mark.parametrize("ctype, body", [
    ("text/plain", b'{"command":["sh","-c","echo pwned"]}'),
    ("text/plain;charset=UTF-8", b'{"command":["sh","-c","echo pwned"]}'),
    ("application/x-www-form-urlencoded", b'{"command":["sh","-c","echo pwned"]}='),
    ("multipart/form-data; boundary=x",
     b'--x\r\nContent-Disposition: form-data; name="{\\"command\\":[\\"id\\"]}"\r\n\r\n\r\n--x--'),
])
def test_csrf_simple_body_to_run_refused_without_key(open_server, ak, ctype, body):
    """A page POSTs a JSON-looking body as a simple request to /run on a server that needs no key
    at all (--insecure-no-auth): it must be 415 and run nothing (before: 200, command run)."""
    st, hdrs, text = browser(open_server, "POST", "/run", body, ctype=ctype, origin=None)
    assert st == 415, text
    assert b"pwned" not in text
    assert_nothing_ran(ak)


def test_csrf_text_plain_create_refused_with_generated_key(server, ak):
    """The same CSRF against the default server: refused (415 before the key is even looked at),
    no sandbox created."""
    st, _, text = browser(server, "POST", "/sandboxes", b'{"name":"csrf"}', ctype="text/plain")
    assert st == 415, text
    assert_nothing_ran(ak)


def test_text_plain_refused_even_with_the_key(server):
    """Defence in depth: a request that has the key but a text/plain body is still 415."""
    st, body = server.request("POST", "/run", raw=b'{"command":["true"]}',
                              headers={"Content-Type": "text/plain"})
    assert st == 415, body


def test_body_without_content_type_refused(open_server, ak):
    """fetch(url, {method: 'POST', body: blob}) with an untyped Blob sends no Content-Type: a
    body without one is 415 too."""
    st, _, text = open_server.exchange("POST", "/sandboxes", raw=b'{"name":"nocty"}',
                                       headers={"Content-Type": None}, key=False)
    assert st == 415, text
    assert_nothing_ran(ak)


def test_form_post_without_body_to_a_verb_route_refused(open_server, ak):
    """<form method=post action=http://127.0.0.1:PORT/gc> with no fields still sends
    Content-Type: application/x-www-form-urlencoded and Content-Length: 0: it is 415, so
    body-less state-changing routes (gc, start, stop) cannot be triggered by a form."""
    st, _, text = browser(open_server, "POST", "/gc", b"",
                          ctype="application/x-www-form-urlencoded")
    assert st == 415, text


# ---- cross-origin reads and preflights ----

@pytest.mark.parametrize("origin", [EVIL, "null", "http://localhost:3000",
                                    "http://127.0.0.1.evil.example", "file://"])
def test_foreign_origin_refused(open_server, origin):
    """A request carrying a foreign Origin (another site, a sandboxed iframe's "null", another
    local port, a look-alike name) is 403 even where no key is needed."""
    st, hdrs, text = browser(open_server, "GET", "/sandboxes", origin=origin)
    assert st == 403, text
    assert not any(k.startswith("access-control-") for k in hdrs)


def test_foreign_origin_refused_with_the_key(server):
    """A foreign Origin is refused even when the request somehow carries the key."""
    st, body = server.request("GET", "/sandboxes", headers={"Origin": EVIL})
    assert st == 403, body


def test_own_origin_is_served(server):
    """Control: the server's own loopback origin (same port) is fine with the key."""
    for o in (f"http://127.0.0.1:{server.port}", f"http://localhost:{server.port}"):
        assert server.request("GET", "/sandboxes", headers={"Origin": o})[0] == 200, o


def test_preflight_gets_no_cors_grant(open_server):
    """An OPTIONS preflight from a page (to send application/json cross-origin) gets 403 and no
    Access-Control-Allow-* header, so the browser never sends the real request."""
    st, hdrs, _ = browser(open_server, "OPTIONS", "/run", origin=EVIL, extra={
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,authorization"})
    assert st == 403
    assert not any(k.startswith("access-control-") for k in hdrs), hdrs


def test_no_cors_headers_on_any_answer(server):
    """No response ever grants CORS: not /health, not a success, not an error."""
    for method, path, key in (("GET", "/health", False), ("GET", "/sandboxes", True),
                              ("GET", "/nowhere", True), ("GET", "/sandboxes", False)):
        _, hdrs, _ = server.exchange(method, path, key=key)
        assert not any(k.startswith("access-control-") for k in hdrs), (path, hdrs)


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_cross_site_fetch_metadata_refused(open_server, site):
    """A browser labels a request another site made (Sec-Fetch-Site); a no-cors GET carries no
    Origin, so that label is what refuses it."""
    st, _, text = browser(open_server, "GET", "/sandboxes", extra={"Sec-Fetch-Site": site})
    assert st == 403, text


# ---- DNS rebinding: the page's own name now resolves to 127.0.0.1 ----

def test_dns_rebinding_refused_without_key(open_server, ak):
    """Host: evil.example:PORT (same-origin for the page after rebinding, so it could read the
    answer): 403 on reads and on /run, even with no key configured (before: 200)."""
    host = f"evil.example:{open_server.port}"
    st, _, text = browser(open_server, "GET", "/sandboxes", host=host)
    assert st == 403, text
    st, _, text = browser(open_server, "POST", "/run", b'{"command":["id"]}',
                          ctype="application/json", host=host)
    assert st == 403 and b"uid=" not in text
    assert_nothing_ran(ak)


def test_dns_rebinding_refused_with_key(server):
    """A rebound Host is refused even with a valid key (the key may sit in a page's storage)."""
    st, body = server.request("GET", "/sandboxes",
                              headers={"Host": f"evil.example:{server.port}"})
    assert st == 403, body


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1.nip.io", "localhost.evil.example",
                                  "127.0.0.2", "0.0.0.0", "[::ffff:127.0.0.1]", "", "localhost:x",
                                  "localhost:99999", "local host"])
def test_foreign_or_malformed_host_refused(open_server, host):
    """Only loopback names (localhost, 127.0.0.1, [::1], with or without a port) are answered."""
    st, _, text = browser(open_server, "GET", "/health", host=host)
    assert st in (400, 403), (host, text)


def test_loopback_hosts_answered(server):
    """Control: the loopback names, with and without the port, in any case."""
    for h in ("localhost", f"localhost:{server.port}", "127.0.0.1", f"127.0.0.1:{server.port}",
              "[::1]", f"[::1]:{server.port}", "LOCALHOST"):
        assert server.request("GET", "/sandboxes", headers={"Host": h})[0] == 200, h


def test_duplicate_host_refused(open_server):
    """Two Host headers (one loopback, one foreign) are ambiguous: 400, never 'the first wins'."""
    import socket
    with socket.create_connection(("127.0.0.1", open_server.port), timeout=5) as c:
        c.sendall(b"GET /sandboxes HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n")
        assert c.recv(100).startswith(b"HTTP/1.1 400")


# ---- the key ----

def test_default_server_requires_a_key(server, ak):
    """The default server (no key given) refuses every route but /health without the generated
    key: run, stream, batch, create, list, status, stats, metrics, audit (before: all open)."""
    for method, path, body in (("POST", "/run", RUN), ("POST", "/run/stream", RUN),
                               ("POST", "/batch/run", {"commands": [RUN]}),
                               ("POST", "/sandboxes", {"name": "x"}), ("GET", "/sandboxes", None),
                               ("GET", "/status", None), ("GET", "/stats", None),
                               ("GET", "/metrics", None), ("GET", "/audit", None),
                               ("POST", "/gc", None)):
        st, resp = server.request(method, path, body, key=False)
        assert st == 401, (path, resp)
    assert_nothing_ran(ak)


def test_health_reveals_nothing(server):
    """/health stays open and says "ok" and nothing else: no version, no server banner."""
    st, hdrs, text = server.exchange("GET", "/health", key=False)
    assert (st, text) == (200, b'{"success":true,"data":"ok"}')
    assert "server" not in hdrs and "x-powered-by" not in hdrs


@pytest.mark.parametrize("mangle", [
    lambda k: k[:-1],                       # one character short
    lambda k: k + "0",                      # one character long
    lambda k: k[:-1] + ("0" if k[-1] != "0" else "1"),  # last character wrong
    lambda k: k.upper(),                    # case
    lambda k: k[:10] + " " + k[10:],        # a space inside
    lambda k: "",                           # empty
    lambda k: k[:32],                       # a prefix
])
def test_almost_right_keys_refused(server, mangle):
    """Keys that are nearly the generated one are refused, as Bearer and as X-API-Key."""
    bad = mangle(server.key)
    st, body = server.request("GET", "/sandboxes", headers={"Authorization": f"Bearer {bad}"})
    assert st == 401, body
    st, body = server.request("GET", "/sandboxes", key=False, headers={"X-API-Key": bad})
    assert st == 401, body


def test_wrong_auth_schemes_refused(server):
    """Basic auth with the key, a lower-case scheme, the key without a scheme: all 401."""
    import base64
    k = server.key
    for h in (f"Basic {base64.b64encode(f'x:{k}'.encode()).decode()}", f"bearer{k}", k,
              f"Token {k}"):
        st, body = server.request("GET", "/sandboxes", headers={"Authorization": h})
        assert st == 401, (h, body)


def test_forwarding_headers_grant_nothing(server):
    """Headers that claim an identity or an origin (X-Forwarded-For/-Host/-User, X-Real-IP,
    X-Remote-User, Forwarded) are not trusted: still 401 without the key."""
    st, body = server.request("GET", "/sandboxes", key=False, headers={
        "X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1", "X-Forwarded-Host": "localhost",
        "X-Forwarded-User": "root", "X-Remote-User": "root", "Forwarded": "for=127.0.0.1"})
    assert st == 401, body


def test_refused_requests_do_not_become_metric_labels(server):
    """Unauthenticated requests with made-up methods and paths do not each add a metric series
    (bounded labels: 'other', 'rejected')."""
    for i in range(20):
        server.exchange("GET", f"/made-up-{i}", key=False)
        server.exchange(f"X{i}", "/", key=False)
    st, text = server.request("GET", "/metrics")
    assert st == 200
    assert b"made-up" not in text and b'method="X1"' not in text


# ---- the flag that turns all of this off ----

def test_no_auth_refused_off_loopback(ak):
    """--insecure-no-auth together with a non-loopback --host is refused (exit 2)."""
    res = subprocess.run([AK, "serve", "--insecure-no-auth", "--host", "0.0.0.0", "--port",
                          str(free_port())], env=ak.env, capture_output=True, timeout=10)
    assert res.returncode == 2 and b"refusing" in res.stderr


def test_non_loopback_needs_a_chosen_key(ak):
    """--host 0.0.0.0 without a key of the user's own is refused: the generated key is for the
    owner on this machine, not for a network."""
    res = subprocess.run([AK, "serve", "--host", "0.0.0.0", "--port", str(free_port())],
                         env=ak.env, capture_output=True, timeout=10)
    assert res.returncode == 2 and b"refusing to serve" in res.stderr


def test_no_auth_warns_loudly(ak):
    """--insecure-no-auth starts (loopback only) with a loud warning on every start."""
    s = Server(ak, "--insecure-no-auth")
    err = s.stop()
    assert "WARNING" in err and "NO AUTHENTICATION" in err


def test_removed_flag_is_refused(ak):
    """The old --allow-unauthenticated is refused with an explanation, not silently accepted."""
    res = subprocess.run([AK, "serve", "--allow-unauthenticated", "--port", str(free_port())],
                         env=ak.env, capture_output=True, timeout=10)
    assert res.returncode == 2 and b"gone" in res.stderr
