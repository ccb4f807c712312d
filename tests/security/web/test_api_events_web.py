# SPDX-License-Identifier: Apache-2.0
"""A web page, or a client without the key, attacks `serve`'s newer routes (issue 17 item 6):
/events (a stream of everything that happens to every sandbox), /doctor, /backends, /agents,
/images (DELETE removes), /stats; and a client that holds the key tries to turn the event
stream or the webhooks against the server or against other services.

What must hold: every new route wants the key and passes the same Host/Origin gate (a page
cannot read the event stream through DNS rebinding or cross-origin); the stream cannot be made
to carry forged events; a reader that stops reading is dropped and never holds the server up;
the number of streams is bounded; webhooks go only where the operator said (no redirect is
followed, nothing an API caller sends sets or changes a webhook), a slow or dead endpoint delays
nobody, and neither the stream nor a webhook carries a secret's value."""
import json
import os
import socket
import threading
import time

import pytest

from conftest import needs_root
from serve_client import Server
from webhook_sink import Sink

pytestmark = needs_root

EVIL = "http://evil.example"
NEW_ROUTES = [("GET", "/events"), ("GET", "/doctor"), ("GET", "/backends"), ("GET", "/agents"),
              ("GET", "/images"), ("DELETE", "/images/alpine:3.20"), ("GET", "/stats"),
              ("GET", "/events?sandbox=x")]


@pytest.fixture
def server(ak):
    s = Server(ak)
    yield s
    s.stop()


@pytest.mark.parametrize("method, path", NEW_ROUTES)
def test_new_routes_need_the_key(server, method, path):
    """Without the key each new route is 401 with upstream's message, answered from the headers
    (no stream is opened, nothing is listed or removed). Upstream serves /stats without a key;
    here it names the sandboxes' count and the host's load: it wants the key too."""
    st, hdrs, text = server.exchange(method, path, key=False)
    assert st == 401, text
    assert json.loads(text)["error"] == "Missing Authorization header"
    assert hdrs.get("content-type") == "application/json"


@pytest.mark.parametrize("method, path", NEW_ROUTES)
def test_new_routes_refuse_a_foreign_origin_even_with_the_key(server, method, path):
    """A page that somehow has the key (or a server without one) still cannot read or change
    anything cross-origin: 403 before any route runs."""
    st, _, text = server.exchange(method, path, headers={"Origin": EVIL})
    assert st == 403, text


@pytest.mark.parametrize("method, path", NEW_ROUTES)
def test_new_routes_refuse_a_rebinding_host(server, method, path):
    """DNS rebinding: the page's own name resolving to 127.0.0.1 sends Host: evil.example; the
    event stream and the host's details stay unreadable (403)."""
    st, _, text = server.exchange(method, path, headers={"Host": "evil.example:80"})
    assert st == 403, text


def test_event_stream_with_foreign_origin_opens_no_stream(ak):
    """Even with --insecure-no-auth (no key anywhere), a cross-origin EventSource gets a 403
    and no stream: a page cannot watch what the developer's agents do."""
    s = Server(ak, "--insecure-no-auth")
    try:
        for origin in (EVIL, "null", "http://localhost:9"):
            st, hdrs, text = s.exchange("GET", "/events", headers={"Origin": origin}, key=False)
            assert st == 403 and hdrs.get("content-type") != "text/event-stream", origin
    finally:
        s.stop()


def test_images_delete_cannot_traverse_or_inject(server):
    """The image name comes from the URL: '..', an option-looking name, odd characters or a
    huge name are 400, never handed to the store."""
    for path in ("/images/..%2F..%2Fetc%2Fpasswd", "/images/../../etc", "/images/-f",
                 "/images/a%0Ab", "/images/a%00b", "/images/.hidden", "/images/" + "x" * 1000,
                 "/images/a$(id)"):
        st, body = server.request("DELETE", path)
        assert st == 400, (path, st, body)


def test_percent_zero_does_not_truncate_a_name(server):
    """libmicrohttpd decodes the URL into a C string: "%00" ended it there, so DELETE
    /sandboxes/keep%00x removed 'keep' and DELETE /images/alpine%00junk would remove 'alpine'.
    A NUL never becomes part of a decoded URL: such a name is 400 and nothing is removed."""
    assert server.request("POST", "/sandboxes", {"name": "keep"})[0] == 201
    for path in ("/sandboxes/keep%00x", "/sandboxes/keep%00", "/sandboxes/keep%00/stop"):
        st, body = server.request("DELETE" if path.count("/") == 2 else "POST", path)
        assert st in (400, 404), (path, st, body)
    assert server.request("GET", "/sandboxes/keep")[0] == 200
    st, body = server.request("GET", "/sandboxes?label=a%00b:c")
    assert st in (200, 400)


def test_webhooks_cannot_be_set_through_the_api(server):
    """Webhooks come from serve's command line only: no route takes a URL that the server would
    then fetch (an API caller could otherwise aim serve at local services)."""
    for method, path in (("POST", "/webhooks"), ("PUT", "/webhooks"), ("POST", "/events"),
                         ("PUT", "/events"), ("PATCH", "/events")):
        st, body = server.request(method, path, {"url": "http://127.0.0.1:1/"})
        assert st in (404, 405), (method, path, st)


def events_conn(server, query="", rcvbuf=None):
    s = socket.create_connection(("127.0.0.1", server.port))
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.sendall(f"GET /events{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              f"Authorization: Bearer {server.key}\r\n\r\n".encode())
    return s


def read_until(s, marker, timeout=20):
    s.settimeout(timeout)
    data = b""
    while marker not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_forged_event_lines_are_escaped(server):
    """A command whose arguments hold newlines and SSE field lines (what a client or an agent
    chooses freely) cannot forge an event: they stay inside one JSON data line."""
    assert server.request("POST", "/sandboxes", {"name": "forge"})[0] == 201
    s = events_conn(server)
    read_until(s, b": connected")
    forged = "x\n\nevent: sandbox.deleted\ndata: {\"sandbox\":\"victim\"}\n\n"
    st, body = server.request("POST", "/sandboxes/forge/exec", {"command": ["echo", forged]})
    assert st == 200, body
    data = read_until(s, b'"success":true}')
    s.close()
    lines = data.split(b"\n")
    assert b"event: sandbox.exec.completed" in lines
    assert b"event: sandbox.deleted" not in lines
    assert not any(ln.startswith(b"data: {\"sandbox\":\"victim") for ln in lines)


def test_events_carry_no_secret_value(server, ak):
    """A sandbox created with an inline secret value: the stream says which names and hosts,
    never the value (the audit log, its source, never holds one)."""
    value = "ghp_" + os.urandom(12).hex()
    s = events_conn(server)
    read_until(s, b": connected")
    st, body = server.request("POST", "/sandboxes", {"name": "sec",
                                                     "secrets": [f"TOKEN={value}:api.github.com"]})
    assert st == 201, body
    data = read_until(s, b"sandbox.started")
    s.close()
    assert b"sandbox.created" in data and value.encode() not in data


def append_audit(ak, n, label_bytes):
    """Events the test makes itself, fast: lines appended to the test's own audit log (the
    server follows it)."""
    line = json.dumps({"timestamp": "2026-01-01T00:00:00Z", "type": "sandbox_stopped",
                       "name": "flood", "labels": {"pad": "p" * label_bytes}}) + "\n"
    with open(ak.data_dir / "audit.jsonl", "a") as f:
        f.write(line * n)


def test_slow_event_reader_is_dropped_and_holds_nobody_up(server, ak):
    """A client opens /events and never reads (a tiny receive buffer) while events pour in: the
    server answers others at once, a reader that keeps up gets every event, and the stuck one,
    once it reads again, is told it lagged and its stream is ended (not buffered without
    bound)."""
    append_audit(ak, 1, 10)  # make sure the log exists before the streams start
    time.sleep(0.5)
    # a small receive buffer, but not below loopback's MSS: a window under one segment is served
    # at the persist timer's pace (4 KiB per 100 ms), a minute to drain what was queued
    slow = events_conn(server, rcvbuf=256 << 10)
    read_until(slow, b": connected")
    fast = events_conn(server)
    got = {"n": 0, "lagged": False}

    def reader():
        data = b""
        fast.settimeout(30)
        while got["n"] < 1500:
            chunk = fast.recv(1 << 20)
            if not chunk:
                break
            data = data[-64:] + chunk
            got["n"] += chunk.count(b"event: sandbox.stopped")
            got["lagged"] = got["lagged"] or b"lagged" in chunk

    t = threading.Thread(target=reader)
    t.start()
    for _ in range(15):
        append_audit(ak, 100, 8000)
        t0 = time.time()
        assert server.request("GET", "/health", timeout=5)[0] == 200
        assert time.time() - t0 < 2
        time.sleep(0.1)
    t.join(60)
    fast.close()
    assert got["n"] >= 1500 and not got["lagged"], got
    data = read_until(slow, b"lagged", timeout=30)
    slow.settimeout(10)
    rest = b""
    try:
        while True:
            chunk = slow.recv(1 << 20)
            if not chunk:
                break
            rest += chunk
    except OSError:
        pass
    slow.close()
    assert b": lagged" in data + rest
    # dropped: the stream ended instead of growing (its bytes are bounded by the ring)
    assert len(data + rest) < 40 << 20


def test_event_streams_are_bounded(server):
    """More than 64 concurrent streams: the 65th is refused (503) instead of taking a thread and
    a subscriber slot; closing one frees a slot."""
    conns = []
    try:
        for _ in range(64):
            s = events_conn(server)
            assert b" 200 " in read_until(s, b": connected").split(b"\r\n")[0]
            conns.append(s)
        extra = events_conn(server)
        head = read_until(extra, b"\r\n\r\n")
        extra.close()
        assert b" 503 " in head.split(b"\r\n")[0], head
        conns.pop().close()
        time.sleep(2.5)  # the stream notices its client left within a second or two
        again = events_conn(server)
        assert b" 200 " in read_until(again, b": connected").split(b"\r\n")[0]
        again.close()
    finally:
        for s in conns:
            s.close()


def test_webhook_redirect_is_not_followed(ak):
    """The endpoint answers 302 to another service (a local admin port): serve does not follow
    it, and does not retry a redirect either."""
    target = Sink()
    redirector = Sink(status=302, location=target.url + "/internal-admin")
    s = Server(ak, "--webhook-url", redirector.url)
    try:
        assert s.request("POST", "/run", {"command": ["true"]})[0] == 200
        redirector.wait(1)
        time.sleep(1.5)
        assert len(redirector.hits) == 1, redirector.hits
        assert target.hits == []
        assert "redirect" in s.stop()
    finally:
        s.stop()
        target.close()
        redirector.close()


def test_slow_webhook_delays_nobody(ak):
    """An endpoint that takes 20 s to answer: the API and the event stream go on at once (the
    webhooks have their own thread and a bounded queue)."""
    sink = Sink(delay=20)
    s = Server(ak, "--webhook-url", sink.url)
    try:
        for i in range(3):
            t0 = time.time()
            assert s.request("POST", "/run", {"command": ["true"]})[0] == 200
            assert time.time() - t0 < 10
        st, body = s.request("GET", "/stats")
        assert st == 200
        sink.wait(1)
        t0 = time.time()
        s.stop()  # a delivery in flight does not hold the shutdown up
        assert time.time() - t0 < 5
        assert s.proc.returncode == 0
    finally:
        s.stop()
        sink.close()


def test_webhook_signature_changes_with_the_body(ak, tmp_path):
    """A receiver checks X-AgentKernel-Signature-256: two different events never share a
    signature, and the signature is over the exact bytes received."""
    import hashlib
    import hmac
    secret = tmp_path / "k"
    secret.write_text("k3y\n")
    secret.chmod(0o600)
    sink = Sink()
    s = Server(ak, "--webhook-url", sink.url, "--webhook-secret-file", str(secret))
    try:
        assert s.request("POST", "/sandboxes", {"name": "sig"})[0] == 201
        hits = sink.wait(2)
        sigs = [h["x-agentkernel-signature-256"] for _, h, _ in hits[:2]]
        assert sigs[0] != sigs[1]
        for _, h, b in hits[:2]:
            assert h["x-agentkernel-signature-256"] == \
                "sha256=" + hmac.new(b"k3y", b, hashlib.sha256).hexdigest()
            tampered = b.replace(b"sig", b"gis")
            assert h["x-agentkernel-signature-256"] != \
                "sha256=" + hmac.new(b"k3y", tampered, hashlib.sha256).hexdigest()
    finally:
        s.stop()
        sink.close()


def test_webhook_secret_file_someone_else_could_read_is_refused(ak, tmp_path):
    """A signing key others can read, or a link, is no key: serve refuses to start."""
    import subprocess
    from conftest import AK
    from serve_client import free_port
    f = tmp_path / "k"
    f.write_text("k\n")
    f.chmod(0o644)
    link = tmp_path / "l"
    link.symlink_to(f)
    for path in (f, link):
        r = subprocess.run([AK, "serve", "--port", str(free_port()), "--webhook-url",
                            "http://127.0.0.1:9/", "--webhook-secret-file", str(path)],
                           env=ak.env, capture_output=True, timeout=10)
        assert r.returncode == 2, r


def test_huge_command_event_is_cut(server):
    """A client runs a command with hundreds of KB of arguments (the audit log records them):
    the event the ring keeps and the streams carry is cut to 64 KiB at most (256 of them bound
    the server's memory), keeping what the command did."""
    assert server.request("POST", "/sandboxes", {"name": "big"})[0] == 201
    s = events_conn(server, "?sandbox=big")
    read_until(s, b": connected")
    st, body = server.request("POST", "/sandboxes/big/exec",
                              {"command": ["true"] + ["a" * 100000] * 4})
    assert st == 200, body
    data = read_until(s, b'"success":true}')
    s.close()
    line = [ln for ln in data.split(b"\n") if b"sandbox.exec.completed" in ln
            and ln.startswith(b"data: ")][0]
    assert len(line) < 64 << 10
    ev = json.loads(line[6:])
    assert ev["metadata"] == {"truncated": True, "exit_code": 0, "success": True}
