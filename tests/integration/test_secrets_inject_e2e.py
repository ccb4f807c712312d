# SPDX-License-Identifier: Apache-2.0
"""Secret injection end to end (issue 15 part B, docs/secrets.md): a sandbox with bindings, the
real agentkernel-proxy intercepting TLS for the bound hosts, and the HTTPS servers of the private
test world (tests/egress_world.py: its own test CA, in network namespaces the fixture creates;
nothing can leave). The proxy trusts the world's CA through `[network] ca_file`; the bound name
comes through `[network] hosts`.

What must hold: curl, python3 urllib, node fetch and git inside trust the proxy's CA without any
help; the world's server receives the real value (header, Bearer, query) and the sandbox gets
the placeholder back where the server echoed it; the placeholder sent anywhere else (another
allowed host, plain HTTP, a Host that is not the SNI) is refused and never arrives; a client
that pins the server's key fails clearly; the value is never inside the sandbox (environment,
files, memory of its processes).
"""
import base64
import json
import os
import pathlib
import re
import secrets
import subprocess

import pytest

from conftest import have, needs_root
from egress_world import (ALLOWED, ALLOWED_IP, PY, proxy_missing, wak,  # noqa: F401
                          world)
from secrets_inject import intercepting_proxy

MISSING = proxy_missing()
pytestmark = [needs_root, pytest.mark.egress,
              pytest.mark.skipif(bool(MISSING), reason="proxy mode missing: " + "; ".join(MISSING)),
              pytest.mark.skipif(not intercepting_proxy(),
                                 reason="agentkernel-proxy of this build does not intercept bound "
                                 "hosts yet (issue 15 part B: branch mitm's interception, not "
                                 "merged)")]

PLACEHOLDER = re.compile(r"AGENTKERNEL_PLACEHOLDER_[0-9a-f]{32}")
OTHER = "other." + ALLOWED     # allowed by the policy, bound to BEARER only
UNBOUND = "free." + ALLOWED    # allowed, bound to nothing: tunnelled untouched


class Keys:
    def __init__(self):
        self.key = "sk-key-" + secrets.token_hex(20)
        self.bearer = "sk-bearer-" + secrets.token_hex(20)

    def forms(self):
        out = []
        for v in (self.key, self.bearer):
            b = v.encode()
            out += [b, base64.b64encode(b), b.hex().encode(), b[6:26]]
        return out


@pytest.fixture
def ibox(wak, world, tmp_path):
    """Sandbox 'ibox': KEY bound to allowed.test in x-api-key, BEARER to allowed.test and
    other.allowed.test (Authorization: Bearer); the policy allows *.allowed.test."""
    k = Keys()
    assert wak("secret", "set", "KEY", input=k.key.encode()).rc == 0
    assert wak("secret", "set", "BEARER", input=k.bearer.encode()).rc == 0
    proj = tmp_path / "proj"
    proj.mkdir()
    cfg = proj / "agentkernel.toml"
    cfg.write_text(f'[sandbox]\nname = "ibox"\n[network]\nca_file = "{world.ca}"\n'
                   f'hosts = {{ "{ALLOWED}" = "{ALLOWED_IP}" }}\n')
    assert wak("trust", "--yes", cfg).rc == 0
    res = wak("create", "--config", cfg, "--network", "proxy", "--allow-host", "*." + ALLOWED,
              "-S", f"KEY:{ALLOWED}:x-api-key", "-S", f"BEARER:{ALLOWED}",
              "-S", f"BEARER:{OTHER}", cwd=proj)
    assert res.rc == 0, res
    return k


def sh(ak, script, timeout=120):
    return ak("exec", "ibox", "--", "sh", "-c", script, timeout=timeout)


def requests_with(world, mark, value):
    """The world's HTTP requests since mark whose target or headers hold value."""
    return [e for e in world.events(mark, srv="http")
            if value in e.get("target", "") or any(value in h for h in e.get("headers", []))]


def assert_clean_output(k, res):
    for f in k.forms():
        assert f not in res.out and f not in res.err, res


# ---------------------------------------------------------------- the value arrives

@pytest.mark.parametrize("how", ["connect", "transparent"])
def test_curl_sends_the_real_value(world, wak, ibox, how):
    """curl with $KEY in x-api-key, $BEARER as Bearer and in the query: the server gets the
    values; its echo of the query comes back with the placeholder; curl trusted the proxy's CA
    by itself (no -k, no --cacert)."""
    unset = "" if how == "connect" else \
        "unset HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy; "
    m = world.mark()
    res = sh(wak, unset + f'curl -sS --max-time 20 "https://{ALLOWED}/curl?t=$BEARER" '
                          '-H "x-api-key: $KEY" -H "Authorization: Bearer $BEARER"; echo; '
                          'echo "PH=$BEARER"')
    assert res.rc == 0, res
    got = requests_with(world, m, ibox.key)
    assert got and any(f"Bearer {ibox.bearer}" in h for h in got[0]["headers"]), got
    assert ibox.bearer in got[0]["target"], got
    ph = res.stdout.split("PH=")[1].strip()
    assert PLACEHOLDER.fullmatch(ph) and ph in res.stdout.split("PH=")[0], res
    assert_clean_output(ibox, res)


def test_python_node_and_git_trust_the_proxy(world, wak, ibox):
    """python3 urllib, node fetch and git (http.extraHeader) reach the bound host with the
    value, each trusting the proxy's CA through what the sandbox was given."""
    script = (f"{PY} -c \"import os, urllib.request as u; r = u.Request('https://{ALLOWED}/py', "
              "headers={'x-api-key': os.environ['KEY']}); print(u.urlopen(r, timeout=20).read()"
              ".decode())\" && "
              f'HOME=/tmp git -c http.extraHeader="x-api-key: $KEY" ls-remote '
              f'https://{ALLOWED}/git/repo.git')
    if have("node"):
        script += (f" && node -e \"fetch('https://{ALLOWED}/node', {{headers: {{'x-api-key': "
                   "process.env.KEY}}).then(r => r.text()).then(t => process.stdout.write(t))\"")
    m = world.mark()
    res = sh(wak, script)
    assert res.rc == 0, (res.stdout[-1500:], res.stderr[-3000:])
    targets = {e["target"].split("?")[0] for e in requests_with(world, m, ibox.key)}
    assert "/py" in targets and any(t.startswith("/git/") for t in targets), targets
    if have("node"):
        assert "/node" in targets, targets
    assert_clean_output(ibox, res)


# ---------------------------------------------------------------- and nowhere else

def test_placeholder_to_another_intercepted_host_is_refused(world, wak, ibox):
    """$KEY (bound to allowed.test only) sent to other.allowed.test, which is intercepted for
    BEARER: 403 naming KEY, and the world receives nothing that holds the value."""
    m = world.mark()
    res = sh(wak, f'curl -sS --max-time 20 -o /dev/null -w "%{{http_code}}" '
                  f'https://{OTHER}/x -H "x-api-key: $KEY"; echo; '
                  f'curl -sS --max-time 20 https://{OTHER}/x -H "x-api-key: $KEY"')
    assert res.stdout.startswith("403"), res
    assert "KEY" in res.stdout, res
    assert not requests_with(world, m, ibox.key)
    assert_clean_output(ibox, res)


@pytest.mark.parametrize("host", [ALLOWED, UNBOUND])
def test_placeholder_over_plain_http_is_refused(world, wak, ibox, host):
    """A placeholder in a plain-HTTP request (to the bound host or any other): 403, the value is
    only ever sent over verified TLS; the world gets neither the value nor the request."""
    m = world.mark()
    res = sh(wak, f'curl -sS --max-time 20 -w "\\n%{{http_code}}" http://{host}/plain '
                  '-H "x-api-key: $KEY"')
    assert res.stdout.strip().endswith("403"), res
    assert not requests_with(world, m, ibox.key)
    assert not [e for e in world.events(m, srv="http") if e.get("target") == "/plain"]


def test_unbound_tls_host_gets_the_placeholder_never_the_value(world, wak, ibox):
    """TLS to an allowed host that no binding names is tunnelled untouched: what arrives there
    is the worthless placeholder, never the value (documented)."""
    m = world.mark()
    res = sh(wak, "unset HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy; "
                  f'curl -sS --max-time 20 --cacert /dev/null -k https://{UNBOUND}/u '
                  '-H "x-api-key: $KEY"; echo')
    assert not requests_with(world, m, ibox.key)
    assert_clean_output(ibox, res)


def test_host_sni_mismatch_is_refused(world, wak, ibox):
    """TLS to allowed.test (SNI) with `Host: other.allowed.test`: 403 Host/SNI mismatch, and the
    value goes nowhere."""
    m = world.mark()
    res = sh(wak, f'curl -sS --max-time 20 -w "\\n%{{http_code}}" https://{ALLOWED}/m '
                  f'-H "Host: {OTHER}" -H "x-api-key: $KEY"')
    assert res.stdout.strip().endswith("403"), res
    assert not requests_with(world, m, ibox.key)


def test_pinning_client_fails_clearly(world, wak, ibox):
    """A client that pins the real server's key (curl --pinnedpubkey) sees the proxy's
    certificate instead and fails with its own clear error; no request arrives."""
    pub = subprocess.run(
        f"openssl x509 -in {world.base / 'leaf.pem'} -pubkey -noout | openssl pkey -pubin "
        "-outform der | openssl dgst -sha256 -binary | base64", shell=True,
        capture_output=True, text=True, check=True).stdout.strip()
    m = world.mark()
    res = sh(wak, f'curl -sS --max-time 20 --pinnedpubkey "sha256//{pub}" '
                  f'https://{ALLOWED}/pin -H "x-api-key: $KEY"')
    assert res.rc != 0 and re.search(r"pinned|public key", res.stderr, re.I), res
    assert not [e for e in world.events(m, srv="http") if e.get("target") == "/pin"]


# ---------------------------------------------------------------- the value is never inside

def sandbox_pids(ak):
    pid = json.loads((ak.data_dir / "run" / "ibox" / "runtime.json").read_text())["pid"]
    ns = os.readlink(f"/proc/{pid}/ns/pid")
    out = []
    for p in pathlib.Path("/proc").iterdir():
        try:
            if p.name.isdigit() and os.readlink(p / "ns/pid") == ns:
                out.append(int(p.name))
        except OSError:
            pass
    return out


def memory_of(pid, limit=1 << 30):
    """The readable memory of a process, read from the host (bounded)."""
    data = []
    total = 0
    try:
        maps = pathlib.Path(f"/proc/{pid}/maps").read_text().splitlines()
        with open(f"/proc/{pid}/mem", "rb", 0) as mem:
            for ln in maps:
                lo, hi = (int(x, 16) for x in ln.split()[0].split("-"))
                if "r" not in ln.split()[1] or hi - lo > (256 << 20) or total > limit:
                    continue
                try:
                    mem.seek(lo)
                    data.append(mem.read(hi - lo))
                    total += hi - lo
                except (OSError, ValueError, OverflowError):
                    pass
    except OSError:
        pass
    return b"".join(data)


def test_value_never_inside_an_injecting_sandbox(world, wak, ibox):
    """After requests whose responses echoed the values (scrubbed by the proxy), a process that
    kept a response in memory: no form of either value in any process's environment, command
    line or memory, nor in any file of the sandbox's own filesystem."""
    keep = (f"{PY} -c \"import os, time, urllib.request as u; r = u.Request('https://{ALLOWED}/"
            "k?t=' + os.environ['BEARER'], headers={'x-api-key': os.environ['KEY']}); "
            "body = u.urlopen(r, timeout=20).read(); open('/tmp/echo', 'wb').write(body); "
            "time.sleep(120)\"")
    assert wak("exec", "ibox", "--detach", "--", "sh", "-c", keep).rc == 0
    for _ in range(100):
        r = sh(wak, "cat /tmp/echo 2>/dev/null")
        if r.stdout:
            break
        import time
        time.sleep(0.1)
    assert PLACEHOLDER.search(r.stdout), r
    forms = ibox.forms()
    for pid in sandbox_pids(wak):
        for what in ("environ", "cmdline"):
            try:
                data = pathlib.Path(f"/proc/{pid}/{what}").read_bytes()
            except OSError:
                continue
            assert not [f for f in forms if f in data], (pid, what)
        mem = memory_of(pid)
        assert not [f for f in forms if f in mem], pid
    root = pathlib.Path(f"/proc/{sandbox_pids(wak)[0]}/root")
    for dirpath, dirs, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel.split(os.sep)[0] in ("proc", "sys", "usr", "dev"):
            dirs[:] = []
            continue
        for f in files:
            p = os.path.join(dirpath, f)
            try:
                if not os.path.isfile(p) or os.path.islink(p) or os.path.getsize(p) > (32 << 20):
                    continue
                data = open(p, "rb").read()
            except OSError:
                continue
            assert not [x for x in forms if x in data], p
