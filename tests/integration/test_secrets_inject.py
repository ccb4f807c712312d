# SPDX-License-Identifier: Apache-2.0
"""Secret injection, the registrant's side (issue 15 part B, docs/secrets.md): what a start hands
the egress proxy (the grants, [network] ca_file's certificates, each value in its own control
message) and what it leaves in the sandbox (placeholders, the proxy's CA in trust files and
variables, never a value); bindings need proxy mode; a coding agent's provider key becomes a
binding.

The proxy here is tests/fake_secrets_proxy.py, a stand-in that speaks the control protocol and
records what it got (values as SHA-256 only): these tests judge agentkernel's side whatever the
proxy does with traffic. The end-to-end tests through the real proxy are in
tests/integration/test_secrets_inject_e2e.py.
"""
import hashlib
import json
import os
import pathlib
import re
import secrets

import pytest

from conftest import needs_root
from secrets_inject import fake_env, fake_log, make_ca, stop_fake
from serve_client import Server

pytestmark = needs_root

PLACEHOLDER = re.compile(r"AGENTKERNEL_PLACEHOLDER_[0-9a-f]{32}")
TRUST_VARS = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO",
              "PIP_CERT")
RUN_TRUST = "/run/agentkernel/trust"


@pytest.fixture
def fak(ak, tmp_path):
    """The `ak` fixture's CLI with the stand-in proxy (ended afterwards)."""
    ak.env.update(fake_env(tmp_path))
    yield ak
    for s in ak.list():
        ak("remove", s["name"], timeout=60)
    stop_fake(ak)


def canary(label):
    return f"sk-{label}-" + secrets.token_hex(24)


def sha(v):
    return hashlib.sha256(v.encode()).hexdigest()


def sh(ak, name, script):
    res = ak("exec", name, "--", "sh", "-c", script)
    assert res.rc == 0, res
    return res.stdout


def environs(ak, name):
    """The environments of every process of a running sandbox, read from the host (so that the
    search never carries the canary inside, nor into a command line or the audit log)."""
    pid = json.loads((ak.data_dir / "run" / name / "runtime.json").read_text())["pid"]
    ns = os.readlink(f"/proc/{pid}/ns/pid")
    out = b""
    for p in pathlib.Path("/proc").iterdir():
        try:
            if p.name.isdigit() and os.readlink(p / "ns/pid") == ns:
                out += (p / "environ").read_bytes() + b"\n"
        except OSError:
            pass
    return out


def registers(ak, name):
    return [m for m in fake_log(ak) if m["op"] == "register" and m["sandbox"] == name]


def values(ak, name):
    return {m["name"]: m for m in fake_log(ak) if m["op"] == "secret_value"
            and m["sandbox"] == name}


# ---------------------------------------------------------------- bindings need proxy mode

@pytest.mark.parametrize("mode", [["--no-network"], ["--network", "none"],
                                  ["--network", "full"]])
def test_bindings_refused_without_proxy_mode(fak, mode):
    """-S with network none or full: nothing could put the value in (none), or requests would
    bypass the proxy (full). create fails naming --network proxy; no record, no proxy call."""
    assert fak("secret", "set", "K", input=b"value-k").rc == 0
    res = fak("create", "b", "--no-config", *mode, "-S", "K:api.example.com")
    assert res.rc != 0 and "--network proxy" in res.stderr, res
    assert not fak.state_file("b").exists()
    assert not fake_log(fak)


def test_api_bindings_refused_without_proxy_mode(fak):
    """POST /sandboxes with secrets and "network": false: refused, nothing created."""
    assert fak("secret", "set", "K", input=b"value-k").rc == 0
    srv = Server(fak)
    try:
        st, body = srv.request("POST", "/sandboxes", {"name": "apib", "network": False,
                                                      "secrets": ["K:api.example.com"]})
    finally:
        srv.stop()
    assert st in (400, 422) and "--network proxy" in body["error"], (st, body)
    assert not fak.state_file("apib").exists()


def test_forged_record_with_bindings_and_no_network_does_not_start(fak):
    """A record edited to bind a secret with network none: the start is refused the same way
    (a record is input read back from disk), nothing is registered."""
    assert fak("secret", "set", "K", input=b"value-k").rc == 0
    assert fak("create", "old", "--no-config", "--no-network", "--no-start").rc == 0
    st = fak.state("old")
    st["secret_bindings"] = ["K:api.example.com"]
    fak.state_file("old").write_text(json.dumps(st))
    res = fak("start", "old")
    assert res.rc != 0 and "--network proxy" in res.stderr, res
    assert not registers(fak, "old")


# ---------------------------------------------------------------- the registration

def test_registration_carries_grants_then_each_value(fak):
    """register holds one grant per KEY (hosts, header, prefix, the placeholder $KEY holds
    inside, body false unless --secret-body), never a value; then one secret_value per KEY whose
    bytes after the NUL are exactly the vault's value."""
    a, b = canary("a"), canary("b")
    assert fak("secret", "set", "KA", input=a.encode()).rc == 0
    assert fak("secret", "set", "KB", input=b.encode()).rc == 0
    res = fak("create", "box", "--no-config", "--network", "proxy",
              "-S", "KA:api.example.com", "-S", "KA:uploads.example.com",
              "-S", "KB:h.example.org:x-api-key", "--secret-body", "KB")
    assert res.rc == 0, res
    inside = dict(ln.split("=", 1) for ln in sh(fak, "box", 'echo "KA=$KA"; echo "KB=$KB"')
                  .splitlines())
    regs = registers(fak, "box")
    assert len(regs) == 1 and regs[0]["n_fds"] == 5, regs
    grants = {g["name"]: g for g in regs[0]["secrets"]}
    assert grants["KA"] == {"name": "KA", "hosts": ["api.example.com", "uploads.example.com"],
                            "header": "Authorization", "prefix": "Bearer ",
                            "placeholder": inside["KA"], "body": False}, grants
    assert grants["KB"] == {"name": "KB", "hosts": ["h.example.org"], "header": "x-api-key",
                            "prefix": "", "placeholder": inside["KB"], "body": True}, grants
    assert PLACEHOLDER.fullmatch(inside["KA"]) and PLACEHOLDER.fullmatch(inside["KB"])
    vals = values(fak, "box")
    assert vals["KA"]["value_sha256"] == sha(a) and vals["KA"]["value_len"] == len(a)
    assert vals["KB"]["value_sha256"] == sha(b) and vals["KA"]["nul"]
    for p in fak.data_dir.rglob("*"):
        if p.is_file():
            data = p.read_bytes()
            assert a.encode() not in data and b.encode() not in data, p
    assert "upstream_ca" not in regs[0]


def test_every_start_new_placeholders_and_values_again(fak):
    """stop/start: a fresh registration with fresh placeholders, and the values sent again."""
    assert fak("secret", "set", "K", input=b"value-k").rc == 0
    assert fak("create", "box", "--no-config", "--network", "proxy",
               "-S", "K:api.example.com").rc == 0
    first = sh(fak, "box", 'echo "$K"').strip()
    assert fak("stop", "box").rc == 0
    assert fak("start", "box").rc == 0
    second = sh(fak, "box", 'echo "$K"').strip()
    assert first != second and PLACEHOLDER.fullmatch(second)
    regs = registers(fak, "box")
    assert [r["secrets"][0]["placeholder"] for r in regs] == [first, second]
    assert len([m for m in fake_log(fak) if m["op"] == "secret_value"]) == 2


def test_config_body_opt_in(fak, tmp_path):
    """[secrets] KEY = {host, header, body = true}: that grant says body true."""
    assert fak("secret", "set", "CFGK", input=b"value-cfg").rc == 0
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "agentkernel.toml").write_text(
        '[sandbox]\nname = "cfgbox"\n[security]\nnetwork = "proxy"\n'
        '[secrets]\nCFGK = { host = "api.example.com", header = "x-api-key", body = true }\n')
    assert fak("trust", "--yes", proj / "agentkernel.toml").rc == 0
    res = fak("create", "--config", proj / "agentkernel.toml", cwd=proj)
    assert res.rc == 0, res
    g = registers(fak, "cfgbox")[0]["secrets"][0]
    assert g["name"] == "CFGK" and g["body"] is True and g["header"] == "x-api-key", g


def test_bound_hosts_allowed_after_the_users_deny_rules(fak):
    """The registered policy allows each bound host on 443, placed after the user's deny rules
    (--deny-host wins) and before the rest."""
    assert fak("secret", "set", "K", input=b"value-k").rc == 0
    res = fak("create", "box", "--no-config", "--network", "proxy",
              "--deny-host", "api.example.com", "--allow-host", "other.example",
              "-S", "K:api.example.com", "-S", "K:bound.example.net")
    assert res.rc == 0, res
    rules = registers(fak, "box")[0]["policy"]["rules"]
    hosts = [(r["action"], r["host"]) for r in rules]
    assert hosts[:3] == [("deny", "api.example.com"), ("allow", "api.example.com"),
                         ("allow", "bound.example.net")], hosts
    assert rules[2].get("ports") == [443]
    assert ("allow", "other.example") in hosts


# ---------------------------------------------------------------- trust inside

def test_trust_files_and_variables(fak):
    """The host image (its /etc is the host's, read-only): the proxy's CA alone and a bundle of
    the system's certificates plus the CA in /run/agentkernel/trust; SSL_CERT_FILE,
    REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, GIT_SSL_CAINFO, PIP_CERT name the bundle,
    NODE_EXTRA_CA_CERTS the CA alone; the host's bundle is untouched."""
    ca = pathlib.Path(fak.env["FAKE_PROXY_CA"]).read_text()
    host_bundle = pathlib.Path("/etc/ssl/certs/ca-certificates.crt").read_bytes()
    assert fak("secret", "set", "K", input=b"value-k").rc == 0
    assert fak("create", "box", "--no-config", "--network", "proxy",
               "-S", "K:api.example.com").rc == 0
    env = dict(ln.split("=", 1) for ln in sh(fak, "box", "env").splitlines() if "=" in ln)
    for v in TRUST_VARS:
        assert env[v] == f"{RUN_TRUST}/agentkernel-combined.crt", (v, env)
    assert env["NODE_EXTRA_CA_CERTS"] == f"{RUN_TRUST}/agentkernel-proxy.crt"
    alone = sh(fak, "box", f"cat {RUN_TRUST}/agentkernel-proxy.crt")
    assert alone.strip() == ca.strip()
    combined = sh(fak, "box", f"cat {RUN_TRUST}/agentkernel-combined.crt")
    assert combined.rstrip().endswith(ca.strip())
    assert combined.count("BEGIN CERTIFICATE") == host_bundle.count(b"BEGIN CERTIFICATE") + 1
    assert pathlib.Path("/etc/ssl/certs/ca-certificates.crt").read_bytes() == host_bundle
    # the clients take it: openssl verifies the CA against the bundle the variables name
    out = sh(fak, "box", f"openssl verify -CAfile \"$SSL_CERT_FILE\" {RUN_TRUST}/"
                         "agentkernel-proxy.crt 2>&1 || true")
    assert ": OK" in out, out


def test_trust_rewritten_at_every_start(fak):
    """The proxy makes a new CA at each registration: after stop/start the files hold the new
    one, and the old one is gone from the bundle (not piled up)."""
    assert fak("secret", "set", "K", input=b"value-k").rc == 0
    assert fak("create", "box", "--no-config", "--network", "proxy",
               "-S", "K:api.example.com").rc == 0
    old = pathlib.Path(fak.env["FAKE_PROXY_CA"]).read_text()
    assert fak("stop", "box").rc == 0
    new = make_ca(pathlib.Path(fak.env["FAKE_PROXY_CA"]).parent.parent / "ca2").read_text()
    pathlib.Path(fak.env["FAKE_PROXY_CA"]).write_text(new)
    assert fak("start", "box").rc == 0
    combined = sh(fak, "box", f"cat {RUN_TRUST}/agentkernel-combined.crt")
    assert new.strip() in combined and old.strip() not in combined
    assert combined.count("# agentkernel proxy CA") == 1


def test_no_trust_without_bindings(fak):
    """A proxy-mode sandbox without secrets: nothing intercepted, so no CA and no variables."""
    assert fak("create", "box", "--no-config", "--network", "proxy").rc == 0
    out = sh(fak, "box", f"env; ls {RUN_TRUST} 2>&1 || true")
    assert "SSL_CERT_FILE" not in out and "NODE_EXTRA_CA_CERTS" not in out, out
    assert all("secrets" not in r for r in registers(fak, "box"))


# ---------------------------------------------------------------- [network] ca_file

def write_config(proj, ca_file):
    proj.mkdir(exist_ok=True)
    (proj / "agentkernel.toml").write_text(
        f'[sandbox]\nname = "cabox"\n[security]\nnetwork = "proxy"\n'
        f'[network]\nca_file = "{ca_file}"\n')
    return proj / "agentkernel.toml"


def test_ca_file_goes_to_the_proxy_as_pem(fak, tmp_path):
    """[network] ca_file: its certificates travel in register's upstream_ca (the proxy never
    opens a path the user names); the record keeps the path, and a later start reads it again."""
    ca = make_ca(tmp_path / "upstream")
    assert fak("secret", "set", "K", input=b"value-k").rc == 0
    cfg = write_config(tmp_path / "proj", ca)
    assert fak("trust", "--yes", cfg).rc == 0
    res = fak("create", "--config", cfg, "-S", "K:api.example.com", cwd=tmp_path / "proj")
    assert res.rc == 0, res
    assert registers(fak, "cabox")[0]["upstream_ca"] == ca.read_text()
    assert fak("stop", "cabox").rc == 0
    assert fak("start", "cabox").rc == 0
    assert registers(fak, "cabox")[1]["upstream_ca"] == ca.read_text()


@pytest.mark.parametrize("bad", ["symlink", "group-writable", "private-key", "too-big",
                                 "not-pem", "directory", "fifo"])
def test_ca_file_refused_unless_a_private_cert_file(fak, tmp_path, bad):
    """ca_file is believed only as what it claims: a regular file (a symlink, a directory, a
    FIFO are refused, never followed or blocked on), nobody else may write it, it holds PEM
    certificates and no private key, at most 32 KiB. The start fails naming the file; nothing
    is registered."""
    ca = make_ca(tmp_path / "upstream")
    target = tmp_path / "ca-file"
    if bad == "symlink":
        target.symlink_to(ca)
    elif bad == "group-writable":
        target.write_bytes(ca.read_bytes())
        os.chmod(target, 0o664)
    elif bad == "private-key":
        target.write_bytes(ca.read_bytes() + (tmp_path / "upstream" / "ca.key").read_bytes())
    elif bad == "too-big":
        target.write_bytes(ca.read_bytes() * 64)
    elif bad == "not-pem":
        target.write_text("hello\n")
    elif bad == "directory":
        target.mkdir()
    elif bad == "fifo":
        os.mkfifo(target)
    assert fak("secret", "set", "K", input=b"value-k").rc == 0
    cfg = write_config(tmp_path / "proj", target)
    assert fak("trust", "--yes", cfg).rc == 0
    res = fak("create", "--config", cfg, "-S", "K:api.example.com", cwd=tmp_path / "proj",
              timeout=60)
    assert res.rc != 0 and "ca_file" in res.stderr and str(target) in res.stderr, res
    assert not registers(fak, "cabox")
    assert not fak.state_file("cabox").exists()


# ---------------------------------------------------------------- coding agents' keys

def test_agent_key_from_the_environment_becomes_a_binding(fak):
    """create -a claude with ANTHROPIC_API_KEY in the host environment (none in the vault): inside
    $ANTHROPIC_API_KEY is a placeholder; the proxy gets a grant to api.anthropic.com in
    x-api-key and the key itself in a secret_value message; the key is in no process
    environment of the sandbox, and nowhere in the data directory."""
    key = canary("ant")
    res = fak("create", "cl", "--no-config", "--network", "proxy", "-a", "claude",
              env={"ANTHROPIC_API_KEY": key})
    assert res.rc == 0, res
    assert fak("exec", "cl", "--detach", "--", "sleep", "60").rc == 0
    ph = sh(fak, "cl", 'echo "$ANTHROPIC_API_KEY"').strip()
    assert PLACEHOLDER.fullmatch(ph), ph
    env = environs(fak, "cl")
    assert b"ANTHROPIC_API_KEY=" + ph.encode() in env and key.encode() not in env
    g = registers(fak, "cl")[0]["secrets"]
    assert g == [{"name": "ANTHROPIC_API_KEY", "hosts": ["api.anthropic.com"],
                  "header": "x-api-key", "prefix": "", "placeholder": ph, "body": False}], g
    assert values(fak, "cl")["ANTHROPIC_API_KEY"]["value_sha256"] == sha(key)
    for p in fak.data_dir.rglob("*"):
        if p.is_file():
            assert key.encode() not in p.read_bytes(), p


def test_agent_key_from_the_vault(fak):
    """create -a codex with OPENAI_API_KEY in the vault: an Authorization Bearer grant to
    api.openai.com (and no environment needed)."""
    key = canary("oai")
    assert fak("secret", "set", "OPENAI_API_KEY", input=key.encode()).rc == 0
    env = {k: v for k, v in fak.env.items() if k != "OPENAI_API_KEY"}
    fak.env = env
    assert fak("create", "cx", "--no-config", "--network", "proxy", "-a", "codex").rc == 0
    g = registers(fak, "cx")[0]["secrets"][0]
    assert (g["name"], g["hosts"], g["header"], g["prefix"]) == \
        ("OPENAI_API_KEY", ["api.openai.com"], "Authorization", "Bearer "), g
    assert values(fak, "cx")["OPENAI_API_KEY"]["value_sha256"] == sha(key)


@pytest.mark.parametrize("mode", ["none", "full"])
def test_agent_key_never_enters_a_sandbox_without_the_proxy(fak, mode):
    """-a claude with the key in the environment but network none or full: the key is not
    given at all (neither the value nor a placeholder; a note says why) -- upstream copied it
    in clear."""
    key = canary("ant")
    res = fak("create", "cl", "--no-config", "--network", mode, "-a", "claude",
              env={"ANTHROPIC_API_KEY": key})
    assert res.rc == 0, res
    assert "proxy" in res.stderr, res
    assert fak("exec", "cl", "--detach", "--", "sleep", "60").rc == 0
    assert sh(fak, "cl", 'echo "[$ANTHROPIC_API_KEY]"').strip() == "[]"
    env = environs(fak, "cl")
    assert b"ANTHROPIC_API_KEY" not in env and key.encode() not in env


def test_run_with_the_configs_agent_gets_a_placeholder(fak, tmp_path):
    """`run` with `[agent] preferred = "claude"` in agentkernel.toml and the key in the
    environment: the one-shot sandbox's command sees a placeholder, the proxy the key."""
    key = canary("run")
    proj = tmp_path / "proj"
    proj.mkdir()
    cfg = proj / "agentkernel.toml"
    cfg.write_text('[agent]\npreferred = "claude"\n')
    assert fak("trust", "--yes", cfg).rc == 0
    res = fak("run", "--config", cfg, "--network", "proxy", "--", "sh", "-c",
              'echo "$ANTHROPIC_API_KEY"', cwd=proj, env={"ANTHROPIC_API_KEY": key})
    assert res.rc == 0 and PLACEHOLDER.fullmatch(res.stdout.strip()), res
    assert key.encode() not in res.out + res.err
    assert [m for m in fake_log(fak) if m["op"] == "secret_value"
            and m["name"] == "ANTHROPIC_API_KEY" and m["value_sha256"] == sha(key)]


def test_api_agent_key_from_serves_environment(fak):
    """POST /sandboxes {"agent": "codex"} with OPENAI_API_KEY in serve's environment: a
    placeholder inside, the key to the proxy only, no answer holds it."""
    key = canary("api")
    srv = Server(fak, env={"OPENAI_API_KEY": key})
    try:
        st, body = srv.request("POST", "/sandboxes", {"name": "apiag", "agent": "codex"})
        assert st == 201, body
        assert key not in json.dumps(body)
    finally:
        srv.stop()
    ph = sh(fak, "apiag", 'echo "$OPENAI_API_KEY"').strip()
    assert PLACEHOLDER.fullmatch(ph), ph
    assert values(fak, "apiag")["OPENAI_API_KEY"]["value_sha256"] == sha(key)


def test_api_body_opt_in(fak):
    """POST /sandboxes with "secret_body": [KEY] (the CLI's --secret-body): that grant says body
    true, the other false; a secret_body that is not a list of strings is a 400 and creates
    nothing."""
    assert fak("secret", "set", "KA", input=b"value-a").rc == 0
    assert fak("secret", "set", "KB", input=b"value-b").rc == 0
    srv = Server(fak)
    try:
        st, body = srv.request("POST", "/sandboxes", {"name": "apibad", "network": "proxy",
                                                      "secrets": ["KA:api.example.com"],
                                                      "secret_body": "KA"})
        assert st == 400, body
        st, body = srv.request("POST", "/sandboxes", {
            "name": "apibody", "network": "proxy",
            "secrets": ["KA:api.example.com", "KB:h.example.org:x-api-key"],
            "secret_body": ["KB"]})
        assert st == 201, body
    finally:
        srv.stop()
    assert "apibad" not in fak.names()
    grants = {g["name"]: g for g in registers(fak, "apibody")[0]["secrets"]}
    assert grants["KB"]["body"] is True and grants["KA"]["body"] is False, grants
