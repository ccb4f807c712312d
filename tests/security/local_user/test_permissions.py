# SPDX-License-Identifier: Apache-2.0
"""Another local user (or anything that can put a file where agentkernel looks) tries to give an
MCP client grants its user never made, by planting permissions.json, the store of `always`
grants that every mcp-server and serve reads at start.

What must hold: the file is believed only when it is a regular file (not a link, FIFO or
directory) owned by the user, mode 0600 or tighter, at most 64 KiB and 256 grants, every entry
of the exact schema; otherwise none of it is believed (sandbox_create stays refused), the
server says why on stderr, and an `always` grant is refused rather than written over it (the
evidence is kept). A config directory others could write is refused as well."""
import json
import os
import stat
import subprocess

import pytest

from conftest import AK, ATTACKER_UID, needs_root

pytestmark = needs_root

GOOD_ID = "grant_" + "a" * 32


def entry(**kw):
    e = {"id": GOOD_ID, "kind": "sandbox_create", "scope": "always", "sandbox": None,
         "granted_at": 1}
    e.update(kw)
    return e


def doc(*entries, **top):
    d = {"version": 1, "grants": list(entries)}
    d.update(top)
    return d


def plant(ak, content, mode=0o600, uid=None):
    ak.data_dir.mkdir(mode=0o700, exist_ok=True)
    f = ak.data_dir / "permissions.json"
    f.write_text(content if isinstance(content, str) else json.dumps(content))
    os.chmod(f, mode)
    if uid is not None:
        os.chown(f, uid, uid)
    return f


def mcp(ak, *calls, env=None):
    msgs = [{"jsonrpc": "2.0", "id": 0, "method": "initialize",
             "params": {"protocolVersion": "2024-11-05"}}]
    for i, (tool, args) in enumerate(calls, 1):
        msgs.append({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                     "params": {"name": tool, "arguments": args}})
    res = ak("mcp-server", input="".join(json.dumps(m) + "\n" for m in msgs).encode(),
             timeout=60, env=env)
    out = {}
    for line in res.stdout.splitlines():
        m = json.loads(line)
        if m.get("id"):
            out[m["id"]] = m["result"]
    return [out[i] for i in range(1, len(calls) + 1)], res.stderr


def text(r):
    return r["content"][0]["text"]


def assert_refused(ak, f, why):
    """The planted grant is not believed, a new always grant does not overwrite the file."""
    before = f.read_bytes() if f.is_file() and not f.is_symlink() else None
    (create, g, lst), err = mcp(ak, ("sandbox_create", {"name": "planted"}),
                                ("permission_grant", {"kind": "sandbox_create", "granted": True,
                                                      "scope": "always"}),
                                ("permission_list", {}))
    assert create.get("isError") and "Permission required: sandbox_create" in text(create)
    assert why in err and "none of its grants is believed" in err, err
    assert g.get("isError") and why in text(g), g
    assert json.loads(text(lst)) == []
    assert ak.names() == []
    if before is not None:
        assert f.read_bytes() == before


def test_control_own_0600_file_is_believed(ak):
    """Control: the user's own well-formed file is believed (so the refusals below are the
    checks, not a broken loader)."""
    plant(ak, doc(entry()))
    (create,), err = mcp(ak, ("sandbox_create", {"name": "mine"}))
    assert not create.get("isError"), create
    assert "warning" not in err
    assert ak.names() == ["mine"]


def test_file_of_another_user_refused(ak, local_user):
    """A permissions.json owned by another user (0600 theirs) is not believed."""
    f = plant(ak, doc(entry()), uid=ATTACKER_UID)
    assert_refused(ak, f, "is not owned by you")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o666, 0o620, 0o601])
def test_file_open_to_group_or_others_refused(ak, mode):
    """A file others could read or write (mode looser than 0600) is not believed."""
    f = plant(ak, doc(entry()), mode=mode)
    assert_refused(ak, f, "must be mode 0600")
    assert stat.S_IMODE(f.stat().st_mode) == mode  # not silently "fixed" either


def test_symlink_to_a_good_file_refused(ak, tmp_path):
    """A link to a well-formed 0600 file of the user (an attacker's pointer) is not followed."""
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps(doc(entry())))
    os.chmod(target, 0o600)
    ak.data_dir.mkdir(mode=0o700, exist_ok=True)
    f = ak.data_dir / "permissions.json"
    f.symlink_to(target)
    assert_refused(ak, f, "is a symbolic link")
    assert f.is_symlink() and json.loads(target.read_text()) == doc(entry())


def test_fifo_refused_without_hanging(ak):
    """A FIFO in the file's place is refused at once (a reader would block forever)."""
    ak.data_dir.mkdir(mode=0o700, exist_ok=True)
    f = ak.data_dir / "permissions.json"
    os.mkfifo(f, 0o600)
    assert_refused(ak, f, "is not a regular file")


def test_directory_refused(ak):
    """A directory in the file's place is refused."""
    ak.data_dir.mkdir(mode=0o700, exist_ok=True)
    f = ak.data_dir / "permissions.json"
    f.mkdir(mode=0o700)
    assert_refused(ak, f, "is not a regular file")


def test_oversized_file_refused(ak):
    """A file over 64 KiB (valid JSON padded with whitespace) is not read."""
    f = plant(ak, json.dumps(doc(entry())) + " " * (64 << 10))
    assert_refused(ak, f, "larger than 64 KiB")


def test_too_many_grants_refused(ak):
    """More than 256 grants (each valid, within 64 KiB when compact) is not believed."""
    es = [entry(id=f"grant_{i:032x}") for i in range(257)]
    f = plant(ak, json.dumps(doc(*es), separators=(",", ":")))
    assert f.stat().st_size <= 64 << 10
    assert_refused(ak, f, "more than 256 grants")


@pytest.mark.parametrize("content", [
    "not json",
    "[]",
    json.dumps({"grants": [entry()]}),                        # no version
    json.dumps(doc(entry(), version=2)),                      # another version
    json.dumps(doc(entry(), extra=True)),                     # an unknown member
    json.dumps(doc(entry(kind="root_shell"))),                # unknown kind
    json.dumps(doc(entry(scope="once"))),                     # only always grants are kept
    json.dumps(doc(entry(scope="session"))),
    json.dumps(doc(entry(id="grant_xyz"))),                   # malformed id
    json.dumps(doc(entry(id="grant_" + "A" * 32))),           # upper-case hex
    json.dumps(doc(entry(id=7))),
    json.dumps(doc(entry(sandbox=""))),                       # empty sandbox
    json.dumps(doc(entry(sandbox="a\nb"))),                   # control character
    json.dumps(doc(entry(sandbox="x" * 129))),                # too long
    json.dumps(doc(entry(sandbox=["a"]))),
    json.dumps(doc(entry(granted_at=-1))),
    json.dumps(doc(entry(granted_at="now"))),
    json.dumps(doc(entry(note="hi"))),                        # unknown member in an entry
    json.dumps(doc(entry(), entry())),                        # duplicate id
    '{"version":1,"version":1,"grants":[]}',                  # duplicate key
    json.dumps(doc("grant")),
], ids=lambda c: c[:40])
def test_malformed_file_refused(ak, content):
    """Anything but the exact schema: none of the file is believed, even its good entries."""
    f = plant(ak, content)
    assert_refused(ak, f, "is not valid")


def test_config_dir_others_can_write_refused(ak, tmp_path):
    """Without AGENTKERNEL_DATA_DIR the file is in $XDG_CONFIG_HOME/agentkernel: if another
    user can write that directory's parent (where they could swap it), it is not used."""
    cfg = tmp_path / "cfg"
    (cfg / "agentkernel").mkdir(parents=True, mode=0o700)
    os.chmod(cfg, 0o777)  # world-writable, not sticky
    f = cfg / "agentkernel" / "permissions.json"
    f.write_text(json.dumps(doc(entry(kind="file_delete"))))
    os.chmod(f, 0o600)
    env = {k: v for k, v in ak.env.items() if k != "AGENTKERNEL_DATA_DIR"}
    env.update(HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(cfg))
    msgs = [{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
             "params": {"name": "permission_list", "arguments": {}}},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
             "params": {"name": "permission_grant",
                        "arguments": {"kind": "sandbox_create", "granted": True,
                                      "scope": "always"}}}]
    p = subprocess.run([AK, "mcp-server"], env=env, capture_output=True, timeout=60,
                       input="".join(json.dumps(m) + "\n" for m in msgs).encode())
    out = [json.loads(line)["result"] for line in p.stdout.splitlines()]
    assert json.loads(text(out[0])) == []
    assert out[1].get("isError"), out[1]
    assert b"warning" in p.stderr, p.stderr
    assert json.loads(f.read_text()) == doc(entry(kind="file_delete"))


def test_planted_file_is_not_trusted_by_serve_either(ak):
    """serve reads the same file: a loose one is refused there too (nothing listed)."""
    from serve_client import Server
    plant(ak, doc(entry()), mode=0o644)
    s = Server(ak)
    try:
        st, body = s.request("GET", "/permissions")
        assert st == 200 and body["data"] == []
        st, body = s.request("POST", "/permissions/check", {"kind": "sandbox_create"})
        assert body["data"]["allowed"] is False
    finally:
        err = s.stop()
    assert "must be mode 0600" in err
