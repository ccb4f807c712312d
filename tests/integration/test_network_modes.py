# SPDX-License-Identifier: Apache-2.0
"""Network modes (docs/network.md): none, proxy and full as the CLI, the record and the sandbox
see them, and proxy mode's capture inside the sandbox's own network namespace — against
fake_proxy.py, a test double of agentkernel-proxy that answers every captured connection with
where it was going, so these tests need neither the real proxy nor any outside network. Nothing
here sends a packet beyond the sandbox's namespace: a proxy-mode sandbox has no interface out."""
import json
import os
import pathlib
import signal
import time

import pytest

from conftest import needs_root, snapshot_cache

pytestmark = [needs_root]
PY = "/usr/bin/python3"
FAKE = str(pathlib.Path(__file__).with_name("fake_proxy.py"))


@pytest.fixture
def proxied(ak):
    """ak, with the fake proxy as agentkernel-proxy; the proxy it starts is killed afterwards."""
    ak.env["AGENTKERNEL_PROXY"] = FAKE
    yield ak
    pidfile = snapshot_cache(ak.data_dir).parent / "proxy" / "fake-proxy.pid"
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
        except ProcessLookupError:
            pass


CONNECT = ("import socket,sys\n"
           "s=socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)\n"
           "print(s.recv(200).decode().strip())\n")


def test_mode_is_recorded(ak):
    """Every spelling of a mode lands in the record as that mode's name; booleans mean none or
    "on" (proxy), and an unknown mode is a usage error that creates nothing."""
    for i, (args, want) in enumerate([(["--network", "proxy"], "proxy"), (["--network=full"], "full"),
                       (["--network", "none"], "none"), (["--no-network"], "none"),
                       (["--network"], "proxy")]):
        name = f"m{i}"
        res = ak("create", "--no-start", *args, name)
        assert res.rc == 0, res
        assert ak.state(name)["x_agentkernel"]["network"] == want, args
    res = ak("create", "--no-start", "--network=sideways", "bad")
    assert res.rc == 2 and "invalid network mode 'sideways'" in res.stderr, res
    assert "bad" not in ak.names()


def test_host_rules_build_the_policy(ak):
    """--deny-host and --allow-host become the record's policy: deny first, then allow, over the
    built-in list, default deny; a pattern that is no host is refused before anything is
    created."""
    res = ak("create", "--no-start", "--network", "proxy", "--allow-host", "*.example.com:443",
             "--deny-host", "evil.example.com", "p")
    assert res.rc == 0, res
    pol = ak.state("p")["x_agentkernel"]["network_policy"]
    assert pol["default"] == "deny"
    assert [(r["action"], r["host"]) for r in pol["rules"][:2]] == [
        ("deny", "evil.example.com"), ("allow", "*.example.com")]
    assert pol["rules"][1]["ports"] == [443]
    # under them, the built-in list (model APIs, registries, git hosting)
    assert any(r["host"] == "registry.npmjs.org" for r in pol["rules"][2:])
    res = ak("create", "--no-start", "--network", "proxy", "--allow-host", "a..b", "q")
    assert res.rc == 2 and "not a host pattern" in res.stderr, res
    assert "q" not in ak.names()
    # outside proxy mode the policy would do nothing: said, not silently kept
    res = ak("create", "--no-start", "--network", "full", "--allow-host", "x.org", "f")
    assert res.rc == 0 and "enforced only in proxy mode" in res.stderr, res


def test_config_modes_and_domains(ak, tmp_path):
    """[security] network = "proxy" and [security.domains] (upstream's allow/block/allowlist_only)
    reach the record as the mode and the policy."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "agentkernel.toml").write_text(
        '[security]\nnetwork = "proxy"\n[security.domains]\nallow = ["*.github.com"]\n'
        'block = ["gist.github.com"]\nallowlist_only = true\n'
        '[network]\nhosts = { "api.internal" = "198.18.0.2" }\n')
    assert ak("trust", "-y", cwd=proj).rc == 0
    res = ak("create", "--no-start", "c", cwd=proj)
    assert res.rc == 0, res
    x = ak.state("c")["x_agentkernel"]
    assert x["network"] == "proxy"
    pol = x["network_policy"]
    assert pol["default"] == "deny"
    assert [(r["action"], r["host"]) for r in pol["rules"]] == [
        ("deny", "gist.github.com"), ("allow", "*.github.com")]
    assert pol["hosts"] == {"api.internal": "198.18.0.2"}


def test_proxy_mode_captures_every_tcp_connection(proxied):
    """In proxy mode a connect() to any IPv4 address, on any port, ends at the proxy's listener,
    which learns the destination (SO_ORIGINAL_DST); an explicit client reaches the same port."""
    for ip, port in [("93.184.216.34", 443), ("10.1.2.3", 22), ("169.254.169.254", 80),
                     ("127.0.0.1", 15001)]:
        res = proxied("run", "--no-config", "--network", "proxy", "--", PY, "-c", CONNECT, ip,
                      str(port))
        assert res.rc == 0, res
        kind = "explicit" if port == 15001 else "transparent"
        assert res.stdout.split()[2:] == [kind, f"{ip}:{port}"], res


def test_proxy_mode_refuses_what_is_not_tcp(proxied):
    """UDP (but DNS) and ICMP to anywhere are refused at once; IPv6 has no route; the sandbox's
    own loopback stays its own; resolv.conf names the proxy's responder; the proxy variables are
    set for cooperative clients."""
    code = ("import socket,os,subprocess\n"
            "u=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); u.settimeout(2)\n"
            "try:\n u.connect(('8.8.8.8',9)); u.send(b'x'); u.recv(10); print('udp-open')\n"
            "except OSError as e: print('udp-refused', type(e).__name__)\n"
            "try:\n socket.create_connection(('2606:2800:220:1::1',443),2); print('v6-open')\n"
            "except OSError as e: print('v6-refused', e.errno)\n"
            "s=socket.socket(); s.bind(('127.0.0.1',8080)); s.listen(1)\n"
            "c=socket.create_connection(('127.0.0.1',8080),2); a,_=s.accept(); print('lo-ok')\n"
            "print(open('/etc/resolv.conf').read().strip())\n"
            "print(' '.join(os.environ.get(k,'-') for k in ('HTTP_PROXY','https_proxy',"
            "'ALL_PROXY','NO_PROXY','no_proxy')))\n")
    res = proxied("run", "--no-config", "--network", "proxy", "--", PY, "-c", code)
    assert res.rc == 0, res
    lines = res.stdout.splitlines()
    assert lines[0].startswith("udp-refused"), res
    assert lines[1] == "v6-refused 101", res  # ENETUNREACH
    assert lines[2] == "lo-ok"
    assert lines[3] == "nameserver 127.0.0.1"
    p = "http://127.0.0.1:15001"
    assert lines[4] == f"{p} {p} {p} localhost,127.0.0.1,::1 localhost,127.0.0.1,::1"


def test_proxy_mode_kept_sandbox_registers_and_leaves(proxied):
    """A kept proxy-mode sandbox registers with its policy and decision log, keeps working after
    the CLI that started it exits, and is unregistered when stopped."""
    res = proxied("create", "--network", "proxy", "--allow-host", "api.example.com", "k")
    assert res.rc == 0, res
    res = proxied("exec", "k", "--", PY, "-c", CONNECT, "198.18.0.9", "8443")
    assert res.rc == 0 and "transparent 198.18.0.9:8443" in res.stdout, res
    log = proxied.data_dir / "run" / "k" / "network.jsonl"
    deadline = time.time() + 5
    while time.time() < deadline and not log.exists():
        time.sleep(0.05)
    assert json.loads(log.read_text().splitlines()[0])["port"] == 8443
    assert oct(log.stat().st_mode & 0o777) == "0o600"
    assert proxied("stop", "k").rc == 0
    assert proxied("start", "k").rc == 0
    res = proxied("exec", "k", "--", PY, "-c", CONNECT, "198.18.0.9", "80")
    assert res.rc == 0 and "transparent 198.18.0.9:80" in res.stdout, res


def test_proxy_mode_without_proxy_is_a_clear_error(ak, tmp_path):
    """No proxy binary: the start fails with a message naming it, and leaves nothing running."""
    res = ak("run", "--no-config", "--network", "proxy", "--", "true",
             env={"AGENTKERNEL_PROXY": str(tmp_path / "missing"), "PATH": "/usr/bin:/bin"})
    assert res.rc == 125 and "needs the egress proxy" in res.stderr, res


def test_network_cli_policy_and_log(proxied, tmp_path):
    """`network policy NAME [--set FILE]` reads and replaces a running sandbox's policy (recorded
    and handed to its proxy); a bad policy or a sandbox in another mode is refused with exit 2;
    `network log NAME` prints the decision log."""
    assert proxied("create", "--network", "proxy", "n").rc == 0
    # running: the proxy's answer (the fake's for a sandbox registered without a policy)
    pol = json.loads(proxied("network", "policy", "n", check=True).stdout)
    assert pol["default"] == "deny"
    # not running: the built-in policy, from the record's side
    assert proxied("create", "--no-start", "--network", "proxy", "s").rc == 0
    pol = json.loads(proxied("network", "policy", "s", check=True).stdout)
    assert pol["default"] == "deny" and any(r["host"] == "pypi.org" for r in pol["rules"])
    new = {"default": "deny", "rules": [{"action": "allow", "host": "*.example.org",
                                         "ports": [443]}]}
    (tmp_path / "p.json").write_text(json.dumps(new))
    assert proxied("network", "policy", "n", "--set", tmp_path / "p.json").rc == 0
    got = json.loads(proxied("network", "policy", "n", check=True).stdout)
    assert got["rules"][0]["host"] == "*.example.org"
    assert proxied.state("n")["x_agentkernel"]["network_policy"]["rules"][0]["host"] == \
        "*.example.org"
    res = proxied("network", "policy", "n", "--set", "-", input=b'{"default":"maybe"}')
    assert res.rc == 2, res
    assert proxied("create", "--no-start", "--network", "full", "f").rc == 0
    res = proxied("network", "policy", "f", "--set", tmp_path / "p.json")
    assert res.rc == 2 and "proxy mode" in res.stderr, res
    assert proxied("exec", "n", "--", PY, "-c", CONNECT, "198.18.0.1", "443").rc == 0
    deadline = time.time() + 5
    while time.time() < deadline:
        out = proxied("network", "log", "n", check=True).stdout
        if out:
            break
        time.sleep(0.05)
    assert json.loads(out.splitlines()[0])["port"] == 443
    res = proxied("network", "policy", "nosuch")
    assert res.rc == 1 and "not found" in res.stderr


def test_network_api(proxied):
    """The API's create takes a mode; GET/PUT /sandboxes/{name}/network/policy read and replace
    the policy (a bad one is a 400 that changes nothing); GET .../network/log gives the entries,
    and ?follow=1 streams new ones as server-sent events."""
    from serve_client import Server
    import http.client
    s = Server(proxied)
    try:
        st, body = s.request("POST", "/sandboxes", {"name": "a", "network": "proxy"})
        assert st == 201, body
        assert s.request("POST", "/sandboxes", {"name": "b", "network": "sideways"})[0] == 400
        st, body = s.request("GET", "/sandboxes/a/network/policy")
        assert st == 200 and body["data"]["default"] == "deny", body
        new = {"default": "allow", "rules": [{"action": "deny", "host": "*.evil.example"}]}
        st, body = s.request("PUT", "/sandboxes/a/network/policy", new)
        assert st == 200 and body["data"]["rules"][0]["host"] == "*.evil.example", body
        st, body = s.request("PUT", "/sandboxes/a/network/policy", {"default": 1})
        assert st == 400, body
        assert s.request("GET", "/sandboxes/a/network/policy")[1]["data"]["default"] == "allow"
        assert s.request("GET", "/sandboxes/a/network/log")[1]["data"] == {"entries": []}
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
        c.request("GET", "/sandboxes/a/network/log?follow=1", headers=s.auth())
        r = c.getresponse()
        assert r.status == 200 and r.getheader("Content-Type") == "text/event-stream"
        assert proxied("exec", "a", "--", PY, "-c", CONNECT, "198.18.0.3", "8080").rc == 0
        ev = b""
        while b"\n\n" not in ev:
            ev += r.read1(4096)
        assert ev.startswith(b"event: entry\ndata: "), ev
        assert json.loads(ev.split(b"data: ", 1)[1].split(b"\n")[0])["port"] == 8080
        c.close()
        st, body = s.request("GET", "/sandboxes/a/network/log?limit=1")
        assert st == 200 and len(body["data"]["entries"]) == 1
        assert s.request("GET", "/sandboxes/a/network/log?limit=0")[0] == 400
        assert s.request("DELETE", "/sandboxes/a")[0] == 200
    finally:
        s.stop()


# ---- with the real agentkernel-proxy (built beside the CLI) ----

PROXY_BIN = pathlib.Path(__file__).resolve().parents[2] / "build" / "src" / "agentkernel-proxy"


@pytest.fixture
def real_proxy(ak):
    """ak with the real proxy; whatever proxy its sandboxes started is stopped afterwards (asked
    for its pids over its own control socket)."""
    if not PROXY_BIN.exists() and not os.environ.get("AGENTKERNEL_PROXY"):
        pytest.skip("agentkernel-proxy is not built")
    yield ak
    ctl = snapshot_cache(ak.data_dir).parent / "proxy" / "control"
    if ctl.exists():
        import socket as so
        s = so.socket(so.AF_UNIX, so.SOCK_SEQPACKET)
        try:
            s.connect(str(ctl))
            s.send(b'{"op":"stats"}')
            st = json.loads(s.recv(65536))
            for k in ("worker_pid", "supervisor_pid"):
                try:
                    os.kill(int(st[k]), signal.SIGKILL)
                except (KeyError, ProcessLookupError):
                    pass
        except OSError:
            pass
        finally:
            s.close()


@pytest.fixture
def web():
    """An HTTP server at 10.23x.n.2:8089 in a network namespace made for this test (only the
    host's own veth reaches it)."""
    import random
    import subprocess
    n = random.randint(1, 250)
    ns, hif, nif = f"akwire{n}", f"akwh{n}", f"akwn{n}"
    hip, pip = f"10.232.{n}.1", f"10.232.{n}.2"
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)
    run("ip", "netns", "add", ns)
    srv = None
    try:
        run("ip", "link", "add", hif, "type", "veth", "peer", "name", nif)
        run("ip", "link", "set", nif, "netns", ns)
        run("ip", "addr", "add", f"{hip}/24", "dev", hif)
        run("ip", "link", "set", hif, "up")
        run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{pip}/24", "dev", nif)
        run("ip", "netns", "exec", ns, "ip", "link", "set", nif, "up")
        code = ("import http.server\nclass H(http.server.BaseHTTPRequestHandler):\n"
                " def do_GET(self):\n  b=b'hello-from-web\\n'\n  self.send_response(200)\n"
                "  self.send_header('Content-Length',str(len(b)))\n  self.end_headers()\n"
                "  self.wfile.write(b)\n def log_message(self,*a): pass\n"
                f"http.server.HTTPServer(('{pip}',8089),H).serve_forever()\n")
        srv = subprocess.Popen(["ip", "netns", "exec", ns, PY, "-c", code])
        time.sleep(0.3)
        yield pip
    finally:
        if srv:
            srv.kill()
            srv.wait()
        subprocess.run(["ip", "link", "del", hif], capture_output=True)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


FETCH = ("import urllib.request,sys,os\n"
         "h=urllib.request.ProxyHandler({} if sys.argv[2]=='direct' else None)\n"
         "o=urllib.request.build_opener(h)\n"
         "try:\n r=o.open(sys.argv[1],timeout=5); print(r.status, r.read().decode().strip())\n"
         "except urllib.error.HTTPError as e: print(e.code, e.headers.get('X-Agentkernel-Rule'))\n")


def test_real_proxy_end_to_end(real_proxy, web):
    """Through the real proxy: an allowed address answers, transparently (proxy variables
    ignored) and as an explicit client; another private address gets 403 naming why; a static
    name resolves through the proxy's responder and is allowed by name; the log says all of it."""
    ak = real_proxy
    url = f"http://{web}:8089/"
    res = ak("create", "--no-config", "--network", "proxy", "--allow-host", f"{web}:8089", "w")
    assert res.rc == 0, res
    for how in ("direct", "env"):
        res = ak("exec", "w", "--", PY, "-c", FETCH, url, how)
        assert res.stdout == "200 hello-from-web\n", (how, res)
    other = web.rsplit(".", 1)[0] + ".3"
    res = ak("exec", "w", "--", PY, "-c", FETCH, f"http://{other}:8089/", "env")
    assert res.stdout.startswith("403 ") and "private address" in res.stdout, res
    # a static name, allowed by name only: resolved by the proxy, no query leaves the host
    pol = {"default": "deny", "rules": [{"action": "allow", "host": "web.test", "ports": [8089]}],
           "hosts": {"web.test": web}}
    res = ak("network", "policy", "w", "--set", "-", input=json.dumps(pol).encode())
    assert res.rc == 0, res
    res = ak("exec", "w", "--", PY, "-c", FETCH, "http://web.test:8089/", "direct")
    assert res.stdout == "200 hello-from-web\n", res
    res = ak("exec", "w", "--", PY, "-c", FETCH, url, "direct")  # the address alone: no rule
    assert res.stdout.startswith("403 "), res
    log = [json.loads(x) for x in ak("network", "log", "w", check=True).stdout.splitlines()]
    assert any(e["action"] == "allow" and e["host"] == "web.test" for e in log), log
    assert any(e["action"] == "deny" for e in log), log


def _proxy_stats(ak):
    import socket as so
    ctl = snapshot_cache(ak.data_dir).parent / "proxy" / "control"
    s = so.socket(so.AF_UNIX, so.SOCK_SEQPACKET)
    try:
        s.connect(str(ctl))
        s.send(b'{"op":"stats"}')
        return json.loads(s.recv(65536))
    finally:
        s.close()


@pytest.mark.parametrize("point", ["native-egress-registered", "native-recorded"])
def test_failed_proxy_start_leaves_nothing(proxied, point):
    """A proxy-mode start that fails after its registration takes the registration back (and
    everything else, as any failed start): the proxy forgets the sandbox, and it then starts."""
    assert proxied("create", "--no-start", "--network", "proxy", "undo").rc == 0
    res = proxied("start", "undo", env={"AGENTKERNEL_TEST_HOOK": f"fail:{point}"})
    assert res.rc != 0 and f"injected failure at '{point}'" in res.stderr, res
    assert "undo" not in _proxy_stats(proxied)["sandboxes"]
    assert not (proxied.data_dir / "run" / "undo").exists()
    assert proxied("start", "undo").rc == 0
    assert "undo" in _proxy_stats(proxied)["sandboxes"]
    res = proxied("exec", "undo", "--", PY, "-c", CONNECT, "198.18.0.4", "443")
    assert "transparent 198.18.0.4:443" in res.stdout, res
    assert proxied("stop", "undo").rc == 0
    assert "undo" not in _proxy_stats(proxied)["sandboxes"]


def test_metrics_count_egress_per_sandbox(real_proxy, web):
    """serve's /metrics carries the proxy's counters per sandbox: a request allowed and one
    denied show in agentkernel_egress_allowed_total / _denied_total of that sandbox."""
    from serve_client import Server
    ak = real_proxy
    assert ak("create", "--no-config", "--network", "proxy", "--allow-host", f"{web}:8089",
              "m").rc == 0
    assert ak("exec", "m", "--", PY, "-c", FETCH, f"http://{web}:8089/", "direct").rc == 0
    other = web.rsplit(".", 1)[0] + ".3"
    ak("exec", "m", "--", PY, "-c", FETCH, f"http://{other}:8089/", "env")
    s = Server(ak)
    try:
        st, _, raw = s.exchange("GET", "/metrics")
        text = raw.decode()
    finally:
        s.stop()
    assert st == 200, text
    values = {}
    for line in text.splitlines():
        if line.startswith("agentkernel_egress_") and 'sandbox="m"' in line:
            name, v = line.split("{", 1)[0], float(line.rsplit(" ", 1)[1])
            values[name] = v
    assert values.get("agentkernel_egress_allowed_total", 0) >= 1, text
    assert values.get("agentkernel_egress_denied_total", 0) >= 1, text
    assert values.get("agentkernel_egress_received_bytes_total", 0) > 0, text
