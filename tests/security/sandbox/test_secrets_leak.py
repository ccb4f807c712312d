# SPDX-License-Identifier: Apache-2.0
"""Secrets that never enter the sandbox (issue 15, part A): a canary hunt.

A canary secret (from 32 random bytes) is stored in the vault and bound to a host
(`-S CANARY:api.example.com`); a second one is bound inline (`-S INLINE=<value>:host`, the
discouraged form), a third through the HTTP API, a fourth arrives by `POST /secrets`, a sixth is
the coding agent's key (`-a claude` with ANTHROPIC_API_KEY in the host environment: it becomes a
binding, issue 15 part B). A fifth is
written into the sandbox on purpose (`--secret-file`): it may be exactly there and nowhere else.
Then everything a sandbox (or anyone looking at agentkernel's traces) can read is searched, from
the host, so that the search itself never carries a canary inside: every process's environment,
command line and readable memory (/proc/PID/mem of each sandbox process, read by the host), every
file of the sandbox's own filesystem, a detached command's logs; and on the host side the state
files, the audit log, every file of the data directory, `info`/`list`/`audit` output, API and MCP
responses, and the error messages of failing commands. No canary may appear in any of its forms:
the value, its base64 and hex, the random bytes it came from and their hex and base64, and a
20-byte slice of the value. Inside, $CANARY holds a placeholder instead.

Bindings need proxy mode (issue 15 part B): the sandboxes here are `--network proxy`, started
with tests/fake_secrets_proxy.py as their proxy (it speaks the control protocol, gets the values
over it as the real one does, and forwards nothing): what is searched is what agentkernel itself
put or left somewhere. The values' way through the real proxy is
tests/integration/test_secrets_inject_e2e.py's.
"""
import base64
import json
import os
import pathlib
import re
import secrets
import shutil
import subprocess
import time

import pytest

from conftest import Ak, mcp_call, needs_root, snapshot_cache
from secrets_inject import fake_env, stop_fake
from serve_client import Server

pytestmark = needs_root

PLACEHOLDER = re.compile(rb"AGENTKERNEL_PLACEHOLDER_[0-9a-f]{32}")
SKIP_TOP = {"proc", "sys", "usr"}  # the kernel's views and the host's read-only /usr
FILE_MAX = 32 << 20


class Canary:
    def __init__(self, label):
        self.raw = secrets.token_bytes(32)
        self.value = f"sk-{label}-" + base64.urlsafe_b64encode(self.raw).decode().rstrip("=")
        v = self.value.encode()
        self.forms = {
            "value": v,
            "value-base64": base64.b64encode(v),
            "value-hex": v.hex().encode(),
            "value-HEX": v.hex().upper().encode(),
            "raw": self.raw,
            "raw-hex": self.raw.hex().encode(),
            "raw-base64": base64.b64encode(self.raw)[:40],
            "slice": v[len(v) - 24:len(v) - 4],
        }

    def find(self, data):
        """The forms found in data (bytes)."""
        return [k for k, f in self.forms.items() if f in data]


def hits(canaries, data):
    return {c.value[:12]: found for c in canaries for found in [c.find(data)] if found}


class World:
    """One sandbox with every kind of secret, and the canaries."""

    def __init__(self, base):
        self.ak = Ak(base / "data", env=fake_env(base))
        self.bound = Canary("bound")
        self.inline = Canary("inline")
        self.api = Canary("api")
        self.posted = Canary("posted")
        self.file = Canary("file")
        self.agent = Canary("agent")  # -a claude's ANTHROPIC_API_KEY, from the host environment
        self.hidden = [self.bound, self.inline, self.api, self.posted, self.agent]
        self.outputs = []  # (what, bytes) of every CLI/API/MCP answer

    def cli(self, *args, **kw):
        res = self.ak(*args, **kw)
        self.outputs.append((" ".join(map(str, args))[:80], res.out + res.err))
        return res


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = World(tmp_path_factory.mktemp("secrets-leak"))
    ak = w.ak
    assert w.cli("secret", "set", "CANARY", input=w.bound.value.encode()).rc == 0
    assert w.cli("secret", "set", "FILE_CANARY", input=w.file.value.encode()).rc == 0
    res = w.cli("create", "leak", "--network", "proxy", "--no-config",
                "-S", "CANARY:api.example.com",
                "-S", "CANARY:uploads.example.com:x-api-key",
                "-S", f"INLINE={w.inline.value}:api.inline.example",
                "--secret-file", "FILE_CANARY", "-a", "claude",
                env={"ANTHROPIC_API_KEY": w.agent.value})
    assert res.rc == 0, res
    # a command that keeps its environment alive, and a detached one that prints it
    assert w.cli("exec", "leak", "--detach", "--", "sh", "-c",
                 'X="$CANARY"; exec sleep 300').rc == 0
    res = w.cli("exec", "leak", "--detach", "--", "sh", "-c", 'echo "$CANARY $INLINE"; env')
    assert res.rc == 0, res
    w.detached_id = json.loads(res.out)["id"]
    yield w
    for name in ("leak", "api-leak"):
        ak("remove", name, timeout=60)
    stop_fake(ak)
    shutil.rmtree(snapshot_cache(ak.data_dir).parent, ignore_errors=True)


def mcp_text(doc):
    return json.dumps(doc.get("result") or {}) + json.dumps(doc.get("error"))


def init_pid(w, name="leak"):
    return json.loads((w.ak.data_dir / "run" / name / "runtime.json").read_text())["pid"]


def sandbox_pids(w):
    """The host pids of every process in the sandbox's pid namespace."""
    ns = os.readlink(f"/proc/{init_pid(w)}/ns/pid")
    pids = []
    for p in pathlib.Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if os.readlink(p / "ns/pid") == ns:
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


MAPPING_MAX = 4 << 30  # larger readable mappings are reservations (a sanitizer's shadow)
CHUNK = 64 << 20
OVERLAP = 4096  # more than any form of a canary, so none is cut between two chunks


def read_memory(pid):
    """Every readable mapping of pid, read from the host through /proc/PID/mem, in chunks of at
    most 64 MiB that overlap (a generator: an ASan build's processes map terabytes). Mappings
    over 4 GiB are reservations, not data a process wrote, and are skipped."""
    try:
        maps, mem = open(f"/proc/{pid}/maps"), open(f"/proc/{pid}/mem", "rb", 0)
    except OSError:
        return  # it has exited since it was listed
    with maps, mem:
        for line in maps:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            if "r" not in parts[1] or (len(parts) > 5 and parts[5] in ("[vvar]", "[vsyscall]")):
                continue
            if hi - lo > MAPPING_MAX:
                continue
            at = lo
            while at < hi:
                try:
                    mem.seek(at)
                    yield mem.read(min(CHUNK + OVERLAP, hi - at))
                except (OSError, ValueError, OverflowError):
                    break
                at += CHUNK


def walk_files(root, skip_top=()):
    root = pathlib.Path(root)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel = pathlib.Path(dirpath).relative_to(root)
        if rel == pathlib.Path("."):
            dirnames[:] = [d for d in dirnames if d not in skip_top]
        for f in filenames:
            p = pathlib.Path(dirpath) / f
            try:
                if p.is_symlink() or not p.is_file() or p.stat().st_size > FILE_MAX:
                    continue
                yield p, p.read_bytes()
            except OSError:
                continue


# ---- inside the sandbox ----

def test_placeholder_not_value_in_the_environment(world):
    """$CANARY, $INLINE and the agent's $ANTHROPIC_API_KEY inside hold
    AGENTKERNEL_PLACEHOLDER_<32 hex>, and every process's environment and command line holds no
    canary."""
    res = world.cli("exec", "leak", "--", "sh", "-c",
                    'printf "%s\\n%s\\n%s\\n" "$CANARY" "$INLINE" "$ANTHROPIC_API_KEY"')
    lines = res.out.split()
    assert len(lines) == 3 and all(PLACEHOLDER.fullmatch(x) for x in lines), res
    assert len(set(lines)) == 3
    for pid in sandbox_pids(world):
        for what in ("environ", "cmdline"):
            try:
                data = pathlib.Path(f"/proc/{pid}/{what}").read_bytes()
            except OSError:
                continue  # it has exited since it was listed
            assert not hits(world.hidden + [world.file], data), (pid, what)


def test_no_canary_in_sandbox_process_memory(world):
    """The host reads the memory of every process of the sandbox (the agent, its handlers, the
    commands): no bound or inline canary in any form."""
    pids = sandbox_pids(world)
    assert len(pids) >= 2, pids
    placeholder = world.ak("exec", "leak", "--", "sh", "-c", 'echo "$CANARY"').out.strip()
    seen_placeholder = False
    for pid in pids:
        for mem in read_memory(pid):
            assert not hits(world.hidden, mem), pid
            seen_placeholder = seen_placeholder or placeholder in mem
    # the reader works: the placeholder the sleeping command holds is found
    assert seen_placeholder


def test_no_canary_in_any_file_of_the_sandbox(world):
    """Every file of the sandbox's own filesystem (its root, /etc, /run, /tmp, /root, /var,
    /dev/shm ...; not the host's read-only /usr): no canary; the --secret-file canary exactly in
    /run/agentkernel/secrets/FILE_CANARY (it was asked for) and nowhere else."""
    root = f"/proc/{init_pid(world)}/root"
    seen_file = []
    n = 0
    for p, data in walk_files(root, SKIP_TOP):
        n += 1
        assert not hits(world.hidden, data), p
        if world.file.find(data):
            seen_file.append(str(p.relative_to(root)))
    assert n > 5
    assert seen_file == ["run/agentkernel/secrets/FILE_CANARY"], seen_file
    data = pathlib.Path(root, "run/agentkernel/secrets/FILE_CANARY").read_bytes()
    assert data == world.file.value.encode()


def test_secret_file_is_read_only_and_announced(world):
    """The secret file is 0400 and AGENTKERNEL_SECRETS_PATH names its directory (upstream)."""
    res = world.cli("exec", "leak", "--", "sh", "-c",
                    'stat -c %a /run/agentkernel/secrets/FILE_CANARY; echo "$AGENTKERNEL_SECRETS_PATH"')
    assert res.out.split() == [b"400", b"/run/agentkernel/secrets"], res


def test_detached_logs_hold_placeholders(world):
    """A detached command that prints its environment: its logs hold placeholders, no canary."""
    for _ in range(50):
        res = world.cli("exec-logs", "leak", world.detached_id)
        if PLACEHOLDER.search(res.out):
            break
        time.sleep(0.1)
    assert PLACEHOLDER.search(res.out), res
    assert not hits(world.hidden + [world.file], res.out + res.err)


# ---- the host's traces ----

def test_no_canary_in_state_audit_or_any_data_file(world):
    """Every file of the data directory (records, runtime files, the audit log, the vault, logs)
    and of the /etc snapshot cache: no canary in any form; the record keeps names and hosts."""
    n = 0
    for base in (world.ak.data_dir, snapshot_cache(world.ak.data_dir).parent):
        for p, data in walk_files(base):
            n += 1
            assert not hits(world.hidden + [world.file], data), p
    assert n > 3
    st = world.ak.state("leak")
    assert st["secret_bindings"] == ["CANARY:api.example.com",
                                     "CANARY:uploads.example.com:x-api-key",
                                     "INLINE:api.inline.example"]
    assert st["secret_files"] == ["FILE_CANARY"]
    events = [json.loads(line) for line in
              (world.ak.data_dir / "audit.jsonl").read_text().splitlines() if line.strip()]
    # what happened to secrets is on the record, by name
    assert any(e["type"] == "secret_stored" and e.get("name") == "CANARY" for e in events)
    created = [e for e in events if e["type"] == "sandbox_created" and e.get("name") == "leak"]
    assert created and created[0]["secret_bindings"] == st["secret_bindings"], created
    assert any(e["type"] == "secret_file_written" and e.get("name") == "FILE_CANARY" and
               e.get("sandbox") == "leak" for e in events), events[-5:]


def test_vault_files_private_and_encrypted(world):
    """secrets.json and secrets.key are 0600 in a 0700 directory; the store holds v1 payloads."""
    d = world.ak.data_dir
    assert os.stat(d).st_mode & 0o777 == 0o700
    for f in ("secrets.json", "secrets.key"):
        assert os.stat(d / f).st_mode & 0o777 == 0o600, f
    store = json.loads((d / "secrets.json").read_text())
    assert all(v.startswith("v1:") for v in store["secrets"].values())
    assert set(store["secrets"]) >= {"CANARY", "INLINE", "FILE_CANARY"}


def test_info_list_audit_and_secret_list_show_no_value(world):
    """info, list --json, audit, secret list: names and hosts only."""
    for args in (("info", "leak"), ("list", "--json"), ("audit",), ("secret", "list"),
                 ("secret", "list", "--json")):
        res = world.cli(*args)
        assert res.rc == 0, (args, res)
        assert not hits(world.hidden + [world.file], res.out + res.err), args
    assert b"CANARY" in world.cli("secret", "list").out


def test_failing_commands_do_not_echo_values(world):
    """Commands that fail on a binding or a value: their errors name the key, never the value."""
    v = world.bound.value
    attempts = [
        ("create", "x1", "--no-config", "-S", f"K={v}:bad host"),
        ("create", "x2", "--no-config", "-S", f"K={v}:api.example.com:x-api-key"),
        ("create", "x3", "--no-config", "-S", f"K={v}"),
        ("create", "x4", "--no-config", "-S", f"INLINE={v}:api.inline.example"),  # clobber
        ("run", "--no-config", "-S", f"bad/key={v}:api.example.com", "--", "true"),
        ("secret", "set", "bad name", v),
        ("secret", "get", "NOPE"),
    ]
    for args in attempts:
        res = world.cli(*args)
        assert res.rc != 0, (args, res)
        assert not hits(world.hidden, res.out + res.err), args
    # the clobber attempt left the vault's INLINE as it was
    assert world.ak("secret", "get", "INLINE").out.strip() == world.inline.value.encode()
    assert world.ak("list", "--json").out.count(b'"name"') == 1


def test_api_and_mcp_answers_hold_no_value(world):
    """Through `serve` with a key: POST /secrets, GET /secrets, create with the SDK's
    `secrets`/`secret_files` fields (a binding with an inline value), GET /sandboxes[/NAME],
    logs, audit, a failing create; through MCP: list, and a create with secrets (refused). No
    answer holds a canary; the API-created sandbox's record neither."""
    srv = Server(world.ak)
    try:
        answers = []
        # behind the key, like every route but /health
        assert srv.request("GET", "/secrets", key=False)[0] == 401
        assert srv.request("POST", "/secrets", {"name": "NOKEY", "value": "x-value"},
                           key=False)[0] == 401
        assert srv.request("DELETE", "/secrets/CANARY", key=False)[0] == 401
        assert world.ak("secret", "get", "NOKEY").rc != 0
        st, body = srv.request("POST", "/secrets", {"name": "POSTED", "value": world.posted.value})
        assert st == 200 and body["data"] == "Secret stored", body
        answers.append(body)
        st, body = srv.request("GET", "/secrets")
        assert st == 200 and "POSTED" in [e["name"] for e in body["data"]], body
        answers.append(body)
        st, body = srv.request("POST", "/sandboxes", {
            "name": "api-leak", "secrets": [f"APIKEY={world.api.value}:api.example.com",
                                            "POSTED:api.example.com"],
            "secret_files": ["POSTED:/tmp/posted"]})
        assert st == 201, body
        answers.append(body)
        assert body["data"]["secret_files"] == ["POSTED:/tmp/posted"]
        for path in ("/sandboxes", "/sandboxes/api-leak", "/sandboxes/leak",
                     "/sandboxes/leak/logs", "/audit"):
            st, body = srv.request("GET", path)
            assert st == 200, (path, body)
            answers.append(body)
        st, body = srv.request("POST", "/sandboxes", {
            "name": "api-bad", "secrets": [f"K={world.api.value}:no host"]})
        assert st == 400, body
        answers.append(body)
        st, body = srv.request("POST", "/secrets", {"name": "bad name", "value": world.api.value})
        assert st == 400, body
        answers.append(body)
        for a in answers:
            assert not hits(world.hidden + [world.file], json.dumps(a).encode()), a
        st, body = srv.request("DELETE", "/secrets/NOPE")
        assert st == 404
    finally:
        world.outputs.append(("serve stderr", srv.stop().encode()))
    rec = world.ak.state_file("api-leak").read_bytes()
    assert not hits(world.hidden, rec)
    assert json.loads(rec)["secret_bindings"] == ["APIKEY:api.example.com",
                                                  "POSTED:api.example.com"]
    # the API-created sandbox: placeholders inside, the posted secret's file where it was asked
    res = world.ak("exec", "api-leak", "--", "sh", "-c", 'echo "$APIKEY"; cat /tmp/posted')
    assert PLACEHOLDER.match(res.out.split()[0]), res
    assert res.out.split()[1] == world.posted.value.encode()
    for pid_root in [f"/proc/{init_pid(world, 'api-leak')}/root"]:
        for p, data in walk_files(pid_root, SKIP_TOP):
            assert not hits([world.api, world.bound, world.inline], data), p
    doc = mcp_call(world.ak, "sandbox_list", {})
    assert not hits(world.hidden, mcp_text(doc).encode())
    doc = mcp_call(world.ak, "sandbox_create",
                   {"name": "mcp-leak", "secrets": [f"K={world.api.value}:evil.example.com"]})
    text = mcp_text(doc)
    assert "not accepted over MCP" in text, doc
    assert not hits(world.hidden, text.encode())
    assert not world.ak.state_file("mcp-leak").exists()


def test_every_answer_collected_is_clean(world):
    """Everything the CLI, the server's stderr and the API said during this module."""
    for what, data in world.outputs:
        assert not hits(world.hidden, data), what


def test_host_process_titles_hold_no_value(world, tmp_path):
    """`create -S K=value:host` while it waits for the vault's lock: its command line, as any
    local user reads it in /proc, no longer holds the value (the CLI wipes it at once)."""
    import fcntl
    v = Canary("argv")
    lock = open(world.ak.data_dir / ".secrets.lock", "a")
    fcntl.flock(lock, fcntl.LOCK_EX)
    p = world.ak.popen("create", "argv-leak", "--no-config", "--no-start",
                       "-S", f"ARGV={v.value}:api.example.com",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(1.0)
        cmdline = pathlib.Path(f"/proc/{p.pid}/cmdline").read_bytes()
        assert b"argv-leak" in cmdline
        assert not v.find(cmdline), cmdline
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
        out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert b"warning" in err and not v.find(out + err)
    world.ak("remove", "argv-leak")
    world.ak("secret", "delete", "ARGV")


@pytest.fixture
def fak(ak, tmp_path):
    """The `ak` fixture's CLI with the stand-in proxy (bindings need proxy mode)."""
    ak.env.update(fake_env(tmp_path))
    yield ak
    for s in ak.list():
        ak("remove", s["name"], timeout=60)
    stop_fake(ak)


def test_placeholder_secrets_files_hold_placeholders(fak):
    """--placeholder-secrets: a secret file holds a placeholder, never the value; for a bound key
    it is the same placeholder as $KEY (so the proxy will know it), for an unbound one a fresh
    one. The value is in no file of the sandbox."""
    bound, unbound = Canary("ph-bound"), Canary("ph-unbound")
    assert fak("secret", "set", "PH_BOUND", input=bound.value.encode()).rc == 0
    assert fak("secret", "set", "PH_FREE", input=unbound.value.encode()).rc == 0
    res = fak("create", "phbox", "--network", "proxy", "--no-config", "--placeholder-secrets",
             "-S", "PH_BOUND:api.example.com", "--secret-file", "PH_BOUND",
             "--secret-file", "PH_FREE:/tmp/free")
    assert res.rc == 0, res
    res = fak("exec", "phbox", "--", "sh", "-c",
             'echo "$PH_BOUND"; cat /run/agentkernel/secrets/PH_BOUND; echo; cat /tmp/free')
    env_ph, file_ph, free_ph = res.out.split()
    assert PLACEHOLDER.fullmatch(env_ph) and env_ph == file_ph, res
    assert PLACEHOLDER.fullmatch(free_ph) and free_ph != env_ph, res
    pid = json.loads((fak.data_dir / "run" / "phbox" / "runtime.json").read_text())["pid"]
    for p, data in walk_files(f"/proc/{pid}/root", SKIP_TOP):
        assert not hits([bound, unbound], data), p
    assert fak.state("phbox")["placeholder_secrets"] is True


def test_upstream_record_with_inline_value_is_shown_and_migrated_without_it(fak):
    """A record upstream wrote keeps `KEY=value:host` in clear. info, list and the API show it
    without the value; the next start moves the value into the vault and rewrites the record
    with `KEY:host`; inside, $KEY is a placeholder."""
    c = Canary("upstream")
    assert fak("create", "old", "--network", "proxy", "--no-config", "--no-start").rc == 0
    st = fak.state("old")
    st["secret_bindings"] = [f"OLD_KEY={c.value}:api.example.com"]
    fak.state_file("old").write_text(json.dumps(st, indent=2))
    for args in (("info", "old"), ("info", "--json", "old"), ("list", "--json")):
        res = fak(*args)
        assert res.rc == 0 and not c.find(res.out + res.err), (args, res)
    assert b"OLD_KEY:api.example.com" in fak("info", "--json", "old").out
    srv = Server(fak)
    try:
        st_, body = srv.request("GET", "/sandboxes/old")
        assert st_ == 200 and not c.find(json.dumps(body).encode()), body
    finally:
        srv.stop()
    res = fak("start", "old")
    assert res.rc == 0 and not c.find(res.out + res.err), res
    assert not c.find(fak.state_file("old").read_bytes())
    assert fak.state("old")["secret_bindings"] == ["OLD_KEY:api.example.com"]
    assert fak("secret", "get", "OLD_KEY").out.strip() == c.value.encode()
    res = fak("exec", "old", "--", "sh", "-c", 'echo "$OLD_KEY"')
    assert PLACEHOLDER.fullmatch(res.out.strip()), res


def test_permissive_home_view_hides_the_vault(fak, tmp_path):
    """The permissive profile shows $HOME read-only; HOME holds the vault (the data and user
    directory, AGENTKERNEL_DATA_DIR=$HOME/data). Inside, neither secrets.json nor secrets.key
    can be read, and the bound canary is nowhere in the sandbox's files."""
    from conftest import _open_tmp_path
    _open_tmp_path(tmp_path)
    (tmp_path / "proj").mkdir()
    c = Canary("home")
    assert fak("secret", "set", "HOME_KEY", input=c.value.encode()).rc == 0
    assert (fak.data_dir / "secrets.key").exists()
    res = fak("run", "--network", "proxy", "--no-config", "-p", "permissive",
             "-S", "HOME_KEY:api.example.com", "--", "sh", "-c",
             "ls -A /home/user/data; echo END; cat /home/user/data/secrets.key "
             "/home/user/data/secrets.json 2>&1 | head -c 300; echo; echo $HOME_KEY",
             env={"HOME": str(tmp_path)}, cwd=tmp_path / "proj")
    assert res.rc == 0, res
    assert res.stdout.split("END")[0].strip() == "", res
    assert "v1:" not in res.stdout and not c.find(res.out), res
    assert PLACEHOLDER.search(res.out), res


def test_secret_restricted_to_its_hosts_cannot_be_bound_elsewhere(fak):
    """`secret set KEY --host api.openai.com`: a binding of KEY to any other host is refused by
    create (CLI and API: 403, nothing created), and a record forged to bind it elsewhere gets no
    placeholder for that binding at start (the record is checked again)."""
    assert fak("secret", "set", "RKEY", "--host", "api.openai.com", "--host", "*.example.com",
              input=b"restricted-value").rc == 0
    res = fak("create", "r1", "--no-config", "--no-start", "-S", "RKEY:evil.example.net")
    assert res.rc != 0 and "may be sent only to" in res.stderr, res
    assert not fak.state_file("r1").exists()
    for host in ("api.openai.com", "example.com", "uploads.example.com"):
        res = fak("create", "r-" + host.replace(".", "-"), "--no-config", "--no-start",
                 "-S", f"RKEY:{host}")
        assert res.rc == 0, (host, res)
    srv = Server(fak)
    try:
        st, body = srv.request("POST", "/sandboxes", {"name": "r2",
                                                      "secrets": ["RKEY:attacker.example.org"]})
        assert st == 403 and "may be sent only to" in body["error"], body
        assert not fak.state_file("r2").exists()
        st, body = srv.request("GET", "/secrets")
        e = [x for x in body["data"] if x["name"] == "RKEY"][0]
        assert e["hosts"] == ["api.openai.com", "*.example.com"], e
    finally:
        srv.stop()
    # a forged record (or a list changed since): the binding is skipped at start
    assert fak("create", "r3", "--network", "proxy", "--no-config", "--no-start",
              "-S", "RKEY:api.openai.com").rc == 0
    st = fak.state("r3")
    st["secret_bindings"] = ["RKEY:evil.example.net"]
    fak.state_file("r3").write_text(json.dumps(st, indent=2))
    res = fak("start", "r3")
    assert res.rc == 0 and "may be sent only to" in res.stderr, res
    assert fak("exec", "r3", "--", "sh", "-c", 'echo "[$RKEY]"').out.strip() == b"[]"
    # clearing the list allows any host again
    assert fak("secret", "hosts", "RKEY").rc == 0
    assert fak("create", "r4", "--no-config", "--no-start", "-S", "RKEY:evil.example.net").rc == 0
