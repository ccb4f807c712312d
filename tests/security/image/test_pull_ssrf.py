# SPDX-License-Identifier: Apache-2.0
"""A request that names an image against the puller (SSRF): the image's registry, a redirect from
a registry, a token realm, or a name that resolves there, point at loopback, the private network
or the cloud metadata address.

Each case runs in a network namespace (and mount namespace) the test creates: loopback only, with
the private addresses added to it and a listener on each that counts connections, and /etc/hosts
replaced by a bind mount only that namespace sees (so `evil.test` resolves to 10.1.2.3 there).
Nothing leaves the namespace. What must hold: unless the user configured the registry
(`[images] insecure_registries` / AGENTKERNEL_INSECURE_REGISTRIES, or the mirror), the puller
refuses before connecting — whether the CLI user, the API or MCP named it, and whether the name,
a redirect or a token realm leads there — and the listeners see no connection. A configured
registry still works.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import AK, needs_root

pytestmark = [needs_root,
              pytest.mark.skipif(not shutil.which("unshare") or not shutil.which("ip"),
                                 reason="needs unshare and ip")]

PORT = 5000
V4 = ["127.0.0.1", "10.1.2.3", "169.254.169.254", "100.64.0.1", "172.16.5.5", "192.168.77.1"]
V6 = ["::1", "fd00::1"]
HOSTS = "10.1.2.3 evil.test\n::1 evil6.test\n169.254.169.254 metadata.test\n"

# Runs inside the namespaces: sets up loopback, the listeners and /etc/hosts, runs the scenario's
# commands, prints one JSON line: each command's result and the connections each listener saw.
HARNESS = r'''
import http.client, http.server, json, os, socket, subprocess, sys, threading, time
cfg = json.load(open(sys.argv[1]))
def sh(*a):
    subprocess.run(a, check=True, capture_output=True)
sh("ip", "link", "set", "lo", "up")
for a in cfg["v4"]:
    if a != "127.0.0.1":
        sh("ip", "addr", "add", a + "/32", "dev", "lo")
for a in cfg["v6"]:
    if a != "::1":
        sh("ip", "-6", "addr", "add", a + "/128", "dev", "lo", "nodad")
sh("mount", "--make-rprivate", "/")
sh("mount", "--bind", cfg["hosts_file"], "/etc/hosts")
seen = {}
lock = threading.Lock()
def make(family, addr, port, behaviour):
    key = f"{addr}:{port}"
    seen[key] = 0
    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass
        def do_GET(self):
            kind, _, arg = behaviour.partition(" ")
            if kind == "redirect":
                self.send_response(307)
                self.send_header("Location", arg)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif kind == "auth":
                self.send_response(401)
                self.send_header("WWW-Authenticate", f'Bearer realm="{arg}",service="s"')
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                body = b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
    class S(http.server.ThreadingHTTPServer):
        address_family = family
        daemon_threads = True
        def verify_request(self, request, client_address):
            with lock:
                seen[key] += 1
            return True
    s = S((addr, port), H)
    threading.Thread(target=s.serve_forever, daemon=True).start()
for a in cfg["v4"]:
    make(socket.AF_INET, a, cfg["port"], cfg["behaviour"].get(f"{a}:{cfg['port']}", "404"))
for a in cfg["v6"]:
    make(socket.AF_INET6, a, cfg["port"], cfg["behaviour"].get(f"[{a}]:{cfg['port']}", "404"))
for extra in cfg.get("extra", []):
    make(socket.AF_INET, "127.0.0.1", extra["port"], extra["behaviour"])
results = []
env = dict(os.environ, **cfg["env"])
for cmd in cfg["commands"]:
    if cmd[0] == "api":
        port = 5999
        srv = subprocess.Popen([cfg["ak"], "serve", "--port", str(port), "--api-key", "k" * 32],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                c = socket.create_connection(("127.0.0.1", port), timeout=0.2)
                c.close()
                break
            except OSError:
                time.sleep(0.05)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("POST", "/sandboxes", body=json.dumps(cmd[1]),
                  headers={"Content-Type": "application/json",
                           "Authorization": "Bearer " + "k" * 32})
        r = c.getresponse()
        results.append({"rc": r.status, "out": r.read().decode(), "err": ""})
        srv.terminate()
        srv.wait()
        continue
    if cmd[0] == "mcp":
        msgs = [{"jsonrpc": "2.0", "id": 1, "method": "initialize",
                 "params": {"protocolVersion": "2024-11-05", "capabilities": {},
                            "clientInfo": {"name": "t", "version": "0"}}},
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                 "params": {"name": "permission_grant",
                            "arguments": {"kind": "sandbox_create", "granted": True}}},
                {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                 "params": {"name": "sandbox_create", "arguments": cmd[1]}}]
        p = subprocess.run([cfg["ak"], "mcp-server"], env=env, capture_output=True, timeout=120,
                           input="".join(json.dumps(m) + "\n" for m in msgs).encode())
        results.append({"rc": p.returncode, "out": p.stdout.decode(), "err": p.stderr.decode()})
        continue
    p = subprocess.run([cfg["ak"], *cmd], env=env, capture_output=True, timeout=120)
    results.append({"rc": p.returncode, "out": p.stdout.decode(), "err": p.stderr.decode()})
print(json.dumps({"results": results, "seen": seen}))
'''


def run_in_netns(ak, tmp_path, commands, env=None, behaviour=None, extra=None):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n::1 localhost ip6-localhost\n" + HOSTS)
    v6 = V6 if os.path.exists("/proc/sys/net/ipv6") else []
    # the namespace's commands get the ak fixture's environment, minus any registry
    # configuration it may carry, plus what the case configures
    run_env = {k: v for k, v in ak.env.items()
               if (k.startswith("AGENTKERNEL") or k in ("PATH", "HOME")) and
               k not in ("AGENTKERNEL_INSECURE_REGISTRIES", "AGENTKERNEL_REGISTRY_MIRROR")}
    for k in ("http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy",
              "NO_PROXY"):
        run_env[k] = ""  # no proxy but the case's
    run_env.update(env or {})
    cfg = {"v4": V4, "v6": v6, "port": PORT, "hosts_file": str(hosts), "ak": AK, "env": run_env,
           "commands": commands, "behaviour": behaviour or {}, "extra": extra or []}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    (tmp_path / "harness.py").write_text(HARNESS)
    base_env = {k: v for k, v in os.environ.items()
                if k not in ("AGENTKERNEL_INSECURE_REGISTRIES", "AGENTKERNEL_REGISTRY_MIRROR")}
    p = subprocess.run(["unshare", "--net", "--mount", "--", "/usr/bin/python3",
                        str(tmp_path / "harness.py"), str(tmp_path / "cfg.json")],
                       capture_output=True, timeout=600, env=base_env)
    assert p.returncode == 0, p.stderr.decode()
    return json.loads(p.stdout.decode().splitlines()[-1])


def refused(doc, i=0):
    r = doc["results"][i]
    assert r["rc"] != 0, r
    text = r["err"] + r["out"]
    assert "refusing" in text and "insecure_registries" in text, r


def no_connections(doc, but=()):
    got = {k: v for k, v in doc["seen"].items() if v and k not in but}
    assert not got, f"the puller connected to {got}"


NAMED = [
    ("loopback", f"127.0.0.1:{PORT}/x:1"),
    ("loopback-other", f"127.0.0.2:{PORT}/x:1"),
    ("loopback-short", f"127.1:{PORT}/x:1"),
    ("loopback-decimal", f"2130706433:{PORT}/x:1"),
    ("unspecified", f"0.0.0.0:{PORT}/x:1"),
    ("localhost", f"localhost:{PORT}/x:1"),
    ("ipv6-loopback", f"[::1]:{PORT}/x:1"),
    ("ipv4-mapped", f"[::ffff:127.0.0.1]:{PORT}/x:1"),
    ("rfc1918-10", f"10.1.2.3:{PORT}/x:1"),
    ("rfc1918-172", f"172.16.5.5:{PORT}/x:1"),
    ("rfc1918-192", f"192.168.77.1:{PORT}/x:1"),
    ("cgnat", f"100.64.0.1:{PORT}/x:1"),
    ("metadata", f"169.254.169.254:{PORT}/x:1"),
    ("ula", f"[fd00::1]:{PORT}/x:1"),
    ("multicast", f"224.0.0.1:{PORT}/x:1"),
    ("dns-to-private", f"evil.test:{PORT}/x:1"),
    ("dns-to-loopback6", f"evil6.test:{PORT}/x:1"),
    ("dns-to-metadata", f"metadata.test:{PORT}/x:1"),
]


@pytest.mark.parametrize("image", [n for _, n in NAMED], ids=[i for i, _ in NAMED])
def test_cli_pull_of_a_private_registry_is_refused(ak, tmp_path, image):
    """`images pull` (the CLI user counts as 'a request naming one'): refused, no connection."""
    doc = run_in_netns(ak, tmp_path, [["images", "pull", image]])
    refused(doc)
    no_connections(doc)


def test_run_with_a_private_image_is_refused(ak, tmp_path):
    """`run -i` and `create -i` pull first: the same refusal, nothing recorded."""
    doc = run_in_netns(ak, tmp_path, [["run", "-i", f"10.1.2.3:{PORT}/x:1", "--", "true"],
                                      ["create", "x", "-i", f"localhost:{PORT}/x:1"],
                                      ["list", "--json"]])
    refused(doc, 0)
    refused(doc, 1)
    assert json.loads(doc["results"][2]["out"]) == []
    no_connections(doc)


@pytest.mark.parametrize("image", [f"127.0.0.1:{PORT}/x:1", f"169.254.169.254:{PORT}/x:1",
                                   f"evil.test:{PORT}/x:1"])
def test_api_create_with_a_private_image_is_refused(ak, tmp_path, image):
    """POST /sandboxes {"image": ...} from an API client: refused, no connection."""
    doc = run_in_netns(ak, tmp_path, [["api", {"name": "ssrf", "image": image}]])
    r = doc["results"][0]
    assert r["rc"] >= 400 and "refusing" in r["out"], r
    no_connections(doc)


def test_mcp_create_with_a_private_image_is_refused(ak, tmp_path):
    """MCP sandbox_create naming the metadata service's address as a registry."""
    doc = run_in_netns(ak, tmp_path, [["mcp", {"name": "ssrf",
                                               "image": f"169.254.169.254:{PORT}/x:1"}],
                                      ["list", "--json"]])
    out = doc["results"][0]["out"]
    assert "refusing" in out and "insecure_registries" in out, doc["results"][0]
    assert json.loads(doc["results"][1]["out"]) == []
    no_connections(doc)


def test_redirect_to_loopback_is_refused(ak, tmp_path):
    """A configured registry (127.0.0.1:5001) answers with a redirect to an unconfigured
    loopback port: the hop is refused; only the configured registry saw a connection."""
    extra = [{"port": 5001, "behaviour": f"redirect http://127.0.0.1:{PORT}/v2/x/manifests/1"}]
    doc = run_in_netns(ak, tmp_path, [["images", "pull", "127.0.0.1:5001/x:1"]],
                       env={"AGENTKERNEL_INSECURE_REGISTRIES": "127.0.0.1:5001"}, extra=extra)
    refused(doc)
    assert doc["seen"]["127.0.0.1:5001"] >= 1
    no_connections(doc, but=("127.0.0.1:5001",))


def test_redirect_to_a_name_resolving_to_metadata_is_refused(ak, tmp_path):
    """The redirect names a host whose address (after DNS) is the metadata service."""
    extra = [{"port": 5001, "behaviour": f"redirect http://metadata.test:{PORT}/latest/x"}]
    doc = run_in_netns(ak, tmp_path, [["images", "pull", "127.0.0.1:5001/x:1"]],
                       env={"AGENTKERNEL_INSECURE_REGISTRIES": "127.0.0.1:5001"}, extra=extra)
    refused(doc)
    no_connections(doc, but=("127.0.0.1:5001",))


@pytest.mark.parametrize("realm", [f"http://127.0.0.1:{PORT}/token",
                                   f"http://169.254.169.254:{PORT}/latest/meta-data",
                                   f"http://evil.test:{PORT}/token"])
def test_token_realm_on_a_private_address_is_refused(ak, tmp_path, realm):
    """A configured registry's 401 names a token realm on loopback/metadata: not contacted."""
    extra = [{"port": 5001, "behaviour": f"auth {realm}"}]
    doc = run_in_netns(ak, tmp_path, [["images", "pull", "127.0.0.1:5001/x:1"]],
                       env={"AGENTKERNEL_INSECURE_REGISTRIES": "127.0.0.1:5001"}, extra=extra)
    refused(doc)
    no_connections(doc, but=("127.0.0.1:5001",))


def test_configured_registry_is_reached(ak, tmp_path):
    """Configured (the test registry's way): the puller connects; the registry says 404. The
    same host on another port stays refused."""
    env = {"AGENTKERNEL_INSECURE_REGISTRIES": f"10.1.2.3:{PORT},evil.test:{PORT}"}
    doc = run_in_netns(ak, tmp_path, [["images", "pull", f"10.1.2.3:{PORT}/x:1"],
                                      ["images", "pull", f"evil.test:{PORT}/x:1"],
                                      ["images", "pull", f"10.1.2.3:{PORT + 1}/x:1"]], env=env)
    for i in (0, 1):
        r = doc["results"][i]
        assert r["rc"] != 0 and "not found" in r["err"], r
    assert doc["seen"][f"10.1.2.3:{PORT}"] >= 2
    refused(doc, 2)


def test_a_configured_proxy_is_reached_but_does_not_open_private_names(ak, tmp_path):
    """A proxy the environment names (on a private address, as company proxies are) is the
    user's configuration: reached. A request naming a private address is still refused, proxy
    or not (the proxy would resolve it for us)."""
    proxy = f"http://10.1.2.3:{PORT}"
    env = {"https_proxy": proxy, "http_proxy": proxy}
    doc = run_in_netns(ak, tmp_path, [["images", "pull", "registry.example/x:1"],
                                      ["images", "pull", f"192.168.77.1:{PORT}/x:1"],
                                      ["images", "pull", f"localhost:{PORT}/x:1"]], env=env)
    r = doc["results"][0]
    assert r["rc"] != 0 and "refusing" not in r["err"], r
    assert doc["seen"][f"10.1.2.3:{PORT}"] >= 1
    refused(doc, 1)
    refused(doc, 2)
    assert doc["seen"][f"192.168.77.1:{PORT}"] == 0 and doc["seen"][f"127.0.0.1:{PORT}"] == 0


def test_configured_mirror_is_reached(ak, tmp_path):
    """The mirror is configuration too: a loopback mirror serves Docker Hub names."""
    env = {"AGENTKERNEL_REGISTRY_MIRROR": f"http://127.0.0.1:{PORT}"}
    doc = run_in_netns(ak, tmp_path, [["images", "pull", "alpine:3.20"]], env=env)
    assert doc["results"][0]["rc"] != 0
    assert doc["seen"][f"127.0.0.1:{PORT}"] >= 1
