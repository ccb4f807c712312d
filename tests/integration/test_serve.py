# SPDX-License-Identifier: Apache-2.0
"""`agentkernel serve`: the HTTP contract, auth, limits, streaming, concurrency, the reconciler,
and the official SDKs (Node SDK, MCP SDK) driving it unchanged."""
import concurrent.futures
import http.client
import json
import os
import pathlib
import socket
import subprocess
import time

import pytest

from conftest import AK
from serve_client import Server, free_port

SDK_DIR = pathlib.Path(__file__).resolve().parents[1] / "sdk"


@pytest.fixture
def server(ak):
    s = Server(ak)
    yield s
    s.stop()


def test_envelope_and_core_routes(server):
    assert server.request("GET", "/health") == (200, {"success": True, "data": "ok"})
    st, body = server.request("POST", "/run", {"command": ["echo", "hi"], "fast": True})
    assert (st, body) == (200, {"success": True, "data": {"output": "hi\n"}})
    st, body = server.request("POST", "/run", {"command": ["sh", "-c", "echo x; exit 3"]})
    assert st == 409 and body["success"] is False and body["exit_code"] == 3
    assert "Command exited with code 3" in body["error"]
    assert server.request("POST", "/run", {"command": []})[0] == 400
    st, body = server.request("POST", "/run", raw="{nope")
    assert st == 400 and body["error"].startswith("Invalid JSON")
    assert server.request("GET", "/nowhere") == (404, {"success": False, "error": "Not found"})
    st, body = server.request("GET", "/status")
    # a server started without keys of its own makes one: the keyless API was issue 12's
    # finding 5 (any local user, and web pages, could run commands)
    assert st == 200 and body["data"]["api_key_configured"] is True
    st, body = server.request("GET", "/stats")
    assert st == 200 and "sandbox_count" in body["data"]


def test_sandbox_routes(server, ak):
    st, body = server.request("POST", "/sandboxes", {"name": "api1", "labels": {"t": "x"},
                                                     "lifecycle": {"auto_stop_after_seconds": 600}})
    assert st == 201, body
    info = body["data"]
    assert info["status"] == "running" and info["labels"] == {"t": "x"}
    assert info["lifecycle"] == {"auto_stop_after_seconds": 600}
    assert server.request("POST", "/sandboxes", {"name": "api1"})[0] == 409
    assert server.request("POST", "/sandboxes", {"name": "-bad"})[0] == 400
    assert server.request("POST", "/sandboxes", {"name": "p", "profile": "x"})[0] == 400
    assert server.request("GET", "/sandboxes?label=t:x")[1]["data"][0]["name"] == "api1"
    assert server.request("GET", "/sandboxes?label=t:y")[1]["data"] == []
    assert server.request("GET", f"/sandboxes/by-uuid/{info['uuid']}")[1]["data"]["name"] == "api1"
    st, body = server.request("PATCH", "/sandboxes/api1", {"labels": {"n": "1"}, "description": "d",
                                                           "lifecycle": None})
    assert st == 200 and body["data"]["labels"] == {"n": "1"} and "lifecycle" not in body["data"]
    assert server.request("POST", "/sandboxes/api1/stop")[0] == 200
    assert server.request("GET", "/sandboxes/api1")[1]["data"]["status"] == "stopped"
    st, body = server.request("POST", "/sandboxes/api1/exec", {"command": ["true"]})
    assert st == 409 and "not running" in body["error"]
    assert server.request("POST", "/sandboxes/api1/start")[0] == 200
    st, body = server.request("POST", "/sandboxes/api1/exec",
                              {"command": ["id", "-u"], "sudo": True})
    assert st == 403  # sudo exec needs [api] allow_sudo_exec
    st, body = server.request("POST", "/sandboxes/api1/resize", {"memory_mb": 300})
    assert st == 200 and body["data"]["memory_mb"] == 300
    st, body = server.request("POST", "/sandboxes/api1/extend", {"by": "1d"})
    assert st == 200, body  # no TTL: it gets one from now (upstream's behaviour, issue 17)
    st, body = server.request("GET", "/sandboxes/api1/logs")
    assert st == 200 and any(e["event"] == "sandbox_created" for e in body["data"])
    assert server.request("GET", "/sandboxes/nosuch/logs")[0] == 404
    st, body = server.request("POST", "/lifecycle/reconcile", {"dry_run": True})
    assert st == 200 and body["data"]["dry_run"] is True
    st, body = server.request("POST", "/gc")
    assert st == 200 and body["data"] == {"removed": [], "count": 0}
    st, body = server.request("GET", "/audit?last=2")
    assert st == 200 and len(body["data"]) == 2
    assert server.request("DELETE", "/sandboxes/api1") == (200, {"success": True,
                                                                 "data": "Sandbox removed"})
    assert server.request("GET", "/sandboxes/api1")[0] == 404
    assert ak.names() == []


def test_file_paths(server):
    assert server.request("POST", "/sandboxes", {"name": "fp", "network": False})[0] == 201
    st, body = server.request("PUT", "/sandboxes/fp/files//tmp/a%20b/%C3%BC.txt",
                              {"content": "x", "encoding": "utf8"})
    assert (st, body["data"]) == (200, "Wrote 1 bytes to /tmp/a b/ü.txt")
    assert server.request("GET", "/sandboxes/fp/files/tmp/a b/ü.txt".replace(" ", "%20")
                          .replace("ü", "%C3%BC"))[1]["data"]["content"] == "x"
    for bad in ("/sandboxes/fp/files/etc/shadow", "/sandboxes/fp/files/proc/1/environ",
                "/sandboxes/fp/files/tmp/../etc/passwd"):
        assert server.request("GET", bad)[0] == 400, bad
    st, body = server.request("PUT", "/sandboxes/fp/files/tmp/b64",
                              {"content": "!!notbase64", "encoding": "base64"})
    assert st == 400
    assert server.request("GET", "/sandboxes/fp/files/tmp/missing")[0] == 404
    st, body = server.request("POST", "/sandboxes/fp/files", {"files": {"/tmp/ok": "1",
                                                                        "/proc/x": "2"}})
    assert st == 400  # every path is checked before anything is written
    assert server.request("GET", "/sandboxes/fp/files/tmp/ok")[0] == 404


def test_auth(ak):
    s = Server(ak, "--api-key", "k1", "--api-key", "k2")
    try:
        assert s.request("GET", "/health")[0] == 200
        # /metrics names sandboxes and counts what clients do: it needs the key (issue 12)
        assert s.request("GET", "/metrics")[0] == 401
        assert s.request("GET", "/metrics", headers={"Authorization": "Bearer k2"})[0] == 200
        st, body = s.request("GET", "/sandboxes")
        assert (st, body["error"]) == (401, "Missing Authorization header")
        st, body = s.request("GET", "/sandboxes", headers={"Authorization": "Basic x"})
        assert body["error"] == "Invalid authorization format. Use: Bearer <api_key>"
        st, body = s.request("GET", "/sandboxes", headers={"Authorization": "Bearer k3"})
        assert (st, body["error"]) == (401, "Invalid API key")
        for k in ("k1", "k2"):
            assert s.request("GET", "/sandboxes", headers={"Authorization": f"Bearer {k}"})[0] == 200
        assert s.request("GET", "/status", headers={"Authorization": "Bearer k1"})[1]["data"][
            "api_key_configured"] is True
    finally:
        s.stop()


def test_refuses_open_non_loopback(ak):
    res = subprocess.run([AK, "serve", "--host", "0.0.0.0", "--port", str(free_port())],
                         env=ak.env, capture_output=True, timeout=10)
    assert res.returncode == 2 and b"refusing to serve" in res.stderr


def test_port_in_use(ak, server):
    res = subprocess.run([AK, "serve", "--port", str(server.port)], env=ak.env,
                         capture_output=True, timeout=10)
    assert res.returncode == 1 and b"already in use" in res.stderr


def test_body_limit_and_garbage(server):
    st, body = server.request("POST", "/run", raw=b"x" * (16 * 1024 * 1024 + 1))
    assert st == 413
    # half a request, then silence, then a hang-up: the server goes on
    for junk in (b"GARBAGE\r\n\r\n", b"POST /run HTTP/1.1\r\nContent-Length: 100\r\n\r\n{",
                 b"\x00\xff" * 100, b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as c:
            c.sendall(junk)
            try:
                c.recv(100)
            except OSError:
                pass
    assert server.request("GET", "/health")[0] == 200


def test_blocked_command_over_the_api_is_audited(server, ak, tmp_path):
    (tmp_path / "agentkernel.toml").write_text('[security.commands]\nblock = ["wget"]\n')
    ak("trust", "--yes", tmp_path / "agentkernel.toml", check=True)  # read once approved
    assert ak("create", "pol", "--no-network", cwd=tmp_path).rc == 0
    st, body = server.request("POST", "/sandboxes/pol/exec", {"command": ["wget", "-q", "x"]})
    assert st == 403 and "blocked" in body["error"]
    st, body = server.request("POST", "/sandboxes/pol/exec/detach", {"command": ["/usr/bin/wget"]})
    assert st == 403
    audit = json.loads(ak("audit", "--json", "-l", "0").out)
    assert sum(e["type"] == "policy_violation" for e in audit) == 2


def stream(server, cmd, read_events=None):
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    c.request("POST", "/run/stream", body=json.dumps({"command": cmd}),
              headers={"Content-Type": "application/json", **server.auth()})
    r = c.getresponse()
    return c, r


def test_stream_is_incremental_and_keeps_order(server):
    c, r = stream(server, ["sh", "-c", "echo a; sleep 1; echo b"])
    assert r.status == 200 and r.getheader("Content-Type") == "text/event-stream"
    t0 = time.time()
    lines, times = [], []
    while True:
        line = r.readline()
        if not line:
            break
        if line.startswith(b"data:") and b'"data"' in line:
            times.append(time.time() - t0)
        lines.append(line)
    c.close()
    text = b"".join(lines).decode()
    assert text.startswith("event: started\n")
    assert text.rstrip().endswith('event: done\ndata: {"exit_code":0,"success":true}')
    assert len(times) == 2 and times[1] - times[0] > 0.7


def test_stream_client_leaving_kills_the_command(server, ak):
    marker = f"ak-stream-{os.getpid()}"
    c, r = stream(server, ["sh", "-c", f"echo start; exec sleep 600 # {marker}"])
    assert r.readline() == b"event: started\n"
    time.sleep(0.5)
    c.close()
    deadline = time.time() + 10
    while time.time() < deadline:
        out = subprocess.run(["pgrep", "-f", marker], capture_output=True)
        if out.returncode != 0:
            break
        time.sleep(0.1)
    assert out.returncode != 0, "the command outlived its client"


def test_concurrent_clients(server):
    assert server.request("POST", "/sandboxes", {"name": "conc", "network": False})[0] == 201

    def one(i):
        return server.request("POST", "/sandboxes/conc/exec", {"command": ["echo", str(i)]})

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        # a stalled client holds only its own connection
        stalled = socket.create_connection(("127.0.0.1", server.port))
        stalled.sendall(b"POST /run HTTP/1.1\r\nContent-Length: 50\r\n\r\n")
        results = list(pool.map(one, range(64)))
        stalled.close()
    assert all(st == 200 for st, _ in results)
    assert sorted(int(b["data"]["output"]) for _, b in results) == list(range(64))


def test_reconciler_removes_expired_sandboxes(ak):
    s = Server(ak, "--reconcile-interval", "1")
    try:
        assert ak("create", "short", "--no-network", "--ttl", "3s").rc == 0
        deadline = time.time() + 10
        while time.time() < deadline and "short" in ak.names():
            time.sleep(0.2)
        assert "short" not in ak.names()
        assert "removed expired sandbox 'short'" in s.stop()
    finally:
        if s.proc.poll() is None:
            s.stop()


def test_metrics(server):
    server.request("POST", "/run", {"command": ["true"]})
    server.request("GET", "/sandboxes/whatever")
    assert server.request("POST", "/sandboxes", {"name": "met", "network": False})[0] == 201
    st, text = server.request("GET", "/metrics")
    text = text.decode()
    assert 'agentkernel_http_requests_total{method="POST",path="/run",status="200"} 1' in text
    assert 'path="/sandboxes/:name",status="404"' in text  # names never become labels
    assert 'agentkernel_sandbox_lifecycle_total{action="created",backend="native"} 1' in text
    assert "agentkernel_commands_total" in text
    assert "agentkernel_sandboxes_active 1" in text
    assert 'agentkernel_build_info{version="' in text
    assert 'agentkernel_sandbox_memory_bytes{sandbox="met"}' in text
    assert 'agentkernel_sandbox_pids{sandbox="met"}' in text


def node_test(script, env):
    if not (SDK_DIR / "node_modules").is_dir():
        if os.environ.get("AK_REQUIRE_SDK") == "1":
            pytest.fail("tests/sdk/node_modules missing: run npm ci in tests/sdk")
        pytest.skip("SDK packages not installed (scripts/test.sh runs npm ci in tests/sdk)")
    return subprocess.run(["node", "--test", "--test-reporter=tap", script], cwd=SDK_DIR,
                          env=env, capture_output=True, timeout=600)


@pytest.mark.parametrize("auth", [False, True])
def test_official_node_sdk(ak, auth, tmp_path):
    """auth=False: the default server and its generated key, handed to the SDK the way the docs
    tell a user to (AGENTKERNEL_API_KEY=$(cat ~/.agentkernel/api-key)); auth=True: a key of the
    user's choosing, with the SDK's auth failures checked too. The sandbox the SDK creates with
    secrets is a proxy-mode one that trusts the proxy's CA (issue 15 part B): through the real
    proxy where it injects, else the stand-in (tests/fake_secrets_proxy.py)."""
    from secrets_inject import fake_env, injecting_proxy, stop_fake
    if not injecting_proxy():
        ak.env.update(fake_env(tmp_path))
    secret = "sdk-secret-" + os.urandom(8).hex()
    assert ak("secret", "set", "SDK_KEY", input=secret.encode()).rc == 0
    s = Server(ak, *(["--api-key", "sdk-key"] if auth else []))
    env = dict(ak.env, AGENTKERNEL_BASE_URL=s.url, AK_SDK_SECRET=secret)
    env["AGENTKERNEL_API_KEY"] = (ak.data_dir / "api-key").read_text().strip() if not auth \
        else "sdk-key"
    if auth:
        env.update(AK_EXPECT_AUTH="1")
    try:
        res = node_test("sdk.test.mjs", env)
    finally:
        s.stop()
        stop_fake(ak)
    out = res.stdout.decode()
    assert res.returncode == 0, out[-4000:] + res.stderr.decode()[-2000:]
    assert "# fail 0" in out


def test_mcp_with_the_official_sdk(ak):
    res = node_test("mcp.test.mjs", dict(ak.env, AGENTKERNEL_BIN=AK))
    out = res.stdout.decode()
    assert res.returncode == 0, out[-4000:] + res.stderr.decode()[-2000:]
    assert "# fail 0" in out


def test_deep_json_refused(server):
    """Request bodies are parsed by recursion on a connection thread's small stack: nesting
    past 64 levels is refused before parsing, and the server goes on."""
    deep = '{"command":["true"],"x":' + "[" * 65 + "]" * 65 + "}"
    st, body = server.request("POST", "/run", raw=deep)
    assert st == 400 and "nested deeper" in body["error"]
    ok = '{"command":["true"],"x":' + "[" * 60 + "]" * 60 + "}"
    assert server.request("POST", "/run", raw=ok)[0] == 200
    tricky = '{"command":["true"],"x":"' + "[" * 1000 + '"}'  # brackets in a string do not count
    assert server.request("POST", "/run", raw=tricky)[0] == 200


def test_print_api_key(ak):
    """`serve --print-api-key` makes the key when missing (0600) and prints it, for
    `export AGENTKERNEL_API_KEY=$(agentkernel serve --print-api-key)`; a server then takes it."""
    res = ak("serve", "--print-api-key")
    key_file = ak.data_dir / "api-key"
    assert res.rc == 0 and res.stdout.strip() == key_file.read_text().strip()
    assert len(res.stdout.strip()) == 64 and key_file.stat().st_mode & 0o777 == 0o600
    assert ak("serve", "--print-api-key").stdout == res.stdout  # made once
    s = Server(ak)
    try:
        assert s.key == res.stdout.strip()
        assert s.request("GET", "/sandboxes")[0] == 200
    finally:
        s.stop()
