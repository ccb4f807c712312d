# SPDX-License-Identifier: Apache-2.0
"""`serve`'s lifecycle events: GET /events (server-sent events fed from the audit log), the
webhooks (`--webhook-url`, signed, retried) and HTTPS (`--tls`), driven as upstream's users
do, the official Node SDK included."""
import hashlib
import hmac
import http.client
import json
import os
import subprocess
import time

import pytest

from conftest import AK
from serve_client import Server, free_port, https_request, make_cert
from webhook_sink import Sink
from test_serve import node_test


def open_events(server, query="", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    h = dict(server.auth())
    h.update(headers or {})
    c.request("GET", "/events" + query, headers=h)
    return c, c.getresponse()


def read_events(resp, want, timeout=30):
    """Events (name, data) until `want` of them, or the timeout."""
    out, name = [], None
    deadline = time.time() + timeout
    while len(out) < want and time.time() < deadline:
        line = resp.readline()
        if not line:
            break
        line = line.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            out.append((name, json.loads(line[6:])))
    return out


@pytest.fixture
def server(ak):
    s = Server(ak)
    yield s
    s.stop()


def test_events_stream_lifecycle(server):
    c, resp = open_events(server)
    assert resp.status == 200
    assert resp.getheader("Content-Type") == "text/event-stream"
    assert resp.readline() == b": connected\n"
    assert server.request("POST", "/sandboxes", {"name": "ev1", "labels": {"team": "a"}})[0] == 201
    assert server.request("POST", "/sandboxes/ev1/exec", {"command": ["sh", "-c", "exit 3"]})[0] \
        == 409
    assert server.request("POST", "/sandboxes/ev1/stop")[0] == 200
    assert server.request("DELETE", "/sandboxes/ev1")[0] == 200
    evs = read_events(resp, 5)
    c.close()
    names = [n for n, _ in evs]
    assert names == ["sandbox.created", "sandbox.started", "sandbox.exec.completed",
                     "sandbox.stopped", "sandbox.deleted"], evs
    created = evs[0][1]
    assert set(created) == {"event", "timestamp", "sandbox", "labels", "metadata"}
    assert created["sandbox"] == "ev1" and created["labels"] == {"team": "a"}
    assert created["metadata"]["backend"] == "native"
    ex = evs[2][1]["metadata"]
    assert ex["command"] == ["sh", "-c", "exit 3"] and ex["exit_code"] == 3
    assert ex["success"] is False


def test_events_filter_by_sandbox(server, ak):
    c, resp = open_events(server, "?sandbox=evb")
    assert resp.readline() == b": connected\n"
    assert ak("create", "eva").rc == 0  # the CLI's changes are events too (one audit log)
    assert ak("create", "evb").rc == 0
    evs = read_events(resp, 1)
    c.close()
    assert evs and evs[0][0] == "sandbox.created" and evs[0][1]["sandbox"] == "evb"
    assert server.request("GET", "/events?sandbox=-bad")[0] == 400


def test_webhook_signed_and_retried(ak, tmp_path):
    ok = Sink()
    failing = Sink(status=500)
    secret = tmp_path / "hook-secret"
    secret.write_text("s3cret-for-the-test\n")
    secret.chmod(0o600)
    s = Server(ak, "--webhook-url", ok.url + "/hook?x=1", "--webhook-url", failing.url,
               "--webhook-secret-file", str(secret))
    try:
        assert s.request("POST", "/sandboxes", {"name": "wh"})[0] == 201
        hits = ok.wait(2)
        assert len(hits) >= 2
        path, headers, body = hits[0]
        assert path == "/hook?x=1"
        assert headers["content-type"] == "application/json"
        want = hmac.new(b"s3cret-for-the-test", body, hashlib.sha256).hexdigest()
        assert headers["x-agentkernel-signature-256"] == "sha256=" + want
        assert json.loads(body)["event"] == "sandbox.created"
        assert json.loads(hits[1][2])["event"] == "sandbox.started"
        # an endpoint that fails gets each event 3 times (100 and 200 ms apart), then no more
        fh = failing.wait(6)
        assert len(fh) == 6 and [json.loads(b)["event"] for _, _, b in fh[:3]] == \
            ["sandbox.created"] * 3
        time.sleep(1)
        assert len(failing.hits) == 6
    finally:
        s.stop()
        ok.close()
        failing.close()


def test_webhook_secret_generated_private(ak):
    sink = Sink()
    s = Server(ak, "--webhook-url", sink.url)
    try:
        key = ak.data_dir / "webhook-secret"
        assert key.stat().st_mode & 0o777 == 0o600
        assert s.request("POST", "/run", {"command": ["true"]})[0] == 200
        _, headers, body = sink.wait(1)[0]
        want = hmac.new(key.read_text().strip().encode(), body, hashlib.sha256).hexdigest()
        assert headers["x-agentkernel-signature-256"] == "sha256=" + want
    finally:
        err = s.stop()
        sink.close()
    assert key.read_text().strip() not in err  # where it is, never what it is


@pytest.mark.parametrize("url", ["file:///etc/passwd", "gopher://127.0.0.1/", "ftp://x/",
                                 "http://a b/", "http://x/\r\nX: y", "not a url",
                                 "http://" + "a" * 3000])
def test_webhook_url_refused(ak, url):
    r = subprocess.run([AK, "serve", "--port", str(free_port()), "--webhook-url", url],
                       env=ak.env, capture_output=True, timeout=10)
    assert r.returncode == 2, r


def test_tls(ak, tmp_path):
    cert, key = make_cert(tmp_path)
    s = Server(ak, "--tls", "--tls-cert", str(cert), "--tls-key", str(key), wait=False)
    try:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                if https_request(s.port, cert, "GET", "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        k = (ak.data_dir / "api-key").read_text().strip()
        assert https_request(s.port, cert, "GET", "/sandboxes")[0] == 401
        st, body = https_request(s.port, cert, "POST", "/run", k, {"command": ["echo", "tls"]})
        assert (st, body["data"]["output"]) == (200, "tls\n")
        # plain HTTP on the TLS port gets no answer
        with pytest.raises((http.client.HTTPException, OSError)):
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
            c.request("GET", "/health")
            c.getresponse().read()
        # the official SDK, unchanged, trusting the certificate the Node way
        env = dict(ak.env, AGENTKERNEL_BASE_URL=f"https://127.0.0.1:{s.port}",
                   AGENTKERNEL_API_KEY=k, NODE_EXTRA_CA_CERTS=str(cert))
        res = node_test("tls.test.mjs", env)
        out = res.stdout.decode()
        assert res.returncode == 0, out[-4000:] + res.stderr.decode()[-2000:]
        assert "# fail 0" in out
    finally:
        s.stop()


def test_tls_with_plain_unix_socket(ak, tmp_path):
    cert, key = make_cert(tmp_path)
    sock = str(tmp_path / "api.sock")
    s = Server(ak, "--tls", "--tls-cert", str(cert), "--tls-key", str(key), "--socket", sock,
               wait=False)
    try:
        deadline = time.time() + 10
        while not os.path.exists(sock) and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)
        assert s.request("GET", "/sandboxes", unix=True, key=False)[0] == 200
        assert https_request(s.port, cert, "GET", "/health")[0] == 200
    finally:
        s.stop()


def start_fails(ak, *args):
    r = subprocess.run([AK, "serve", "--port", str(free_port()), *args], env=ak.env,
                       capture_output=True, timeout=15)
    return r.returncode, r.stderr.decode()


def test_tls_options_refused(ak, tmp_path):
    cert, key = make_cert(tmp_path)
    rc, err = start_fails(ak, "--tls-cert", str(cert))
    assert rc == 2 and "together" in err
    rc, err = start_fails(ak, "--require-tls")
    assert rc == 2 and "plain" in err
    rc, err = start_fails(ak, "--require-tls", "--tls-cert", str(cert), "--tls-key", str(key),
                          "--socket", str(tmp_path / "s.sock"))
    assert rc == 2 and "--socket" in err
    key.chmod(0o644)
    rc, err = start_fails(ak, "--tls-cert", str(cert), "--tls-key", str(key))
    assert rc == 2 and "other users" in err
    key.chmod(0o600)
    link = tmp_path / "link.pem"
    link.symlink_to(key)
    rc, err = start_fails(ak, "--tls-cert", str(cert), "--tls-key", str(link))
    assert rc == 2 and "symbolic link" in err
    rc, err = start_fails(ak, "--tls-cert", str(cert), "--tls-key", str(cert.parent / "none"))
    assert rc == 2
    other = tmp_path / "other.pem"
    other.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    other.chmod(0o600)
    rc, err = start_fails(ak, "--tls-cert", str(cert), "--tls-key", str(other))
    assert rc == 1 and "cannot start" in err


def wait_https(port, cert):
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            if https_request(port, cert, "GET", "/health")[0] == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("no HTTPS answer")


def test_tls_self_signed(ak):
    """--tls alone: upstream makes a self-signed certificate; here it is kept in the data
    directory (key 0600) so clients trust it once, and reused at the next start."""
    s = Server(ak, "--tls", wait=False)
    cert, key = ak.data_dir / "tls-cert.pem", ak.data_dir / "tls-key.pem"
    try:
        deadline = time.time() + 10
        while not cert.exists() and time.time() < deadline:
            time.sleep(0.1)
        wait_https(s.port, cert)
        assert key.stat().st_mode & 0o777 == 0o600
        k = (ak.data_dir / "api-key").read_text().strip()
        st, body = https_request(s.port, cert, "POST", "/run", k, {"command": ["echo", "ss"]})
        assert (st, body["data"]["output"]) == (200, "ss\n")
        env = dict(ak.env, AGENTKERNEL_BASE_URL=f"https://localhost:{s.port}",
                   AGENTKERNEL_API_KEY=k, NODE_EXTRA_CA_CERTS=str(cert))
        res = node_test("tls.test.mjs", env)
        out = res.stdout.decode()
        assert res.returncode == 0, out[-4000:] + res.stderr.decode()[-2000:]
    finally:
        err = s.stop()
    assert "tls-cert.pem" in err and "BEGIN" not in err
    first = cert.read_bytes()
    s = Server(ak, "--tls", wait=False)
    try:
        wait_https(s.port, cert)
        assert cert.read_bytes() == first
    finally:
        s.stop()
    key.chmod(0o644)
    rc, err = start_fails(ak, "--tls")
    assert rc == 2 and "other users" in err
    key.unlink()
    rc, err = start_fails(ak, "--tls")
    assert rc == 2 and "without" in err
