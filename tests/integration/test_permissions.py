# SPDX-License-Identifier: Apache-2.0
"""Interactive permission grants (upstream's permission_grant/list/revoke, issue 17): over MCP,
sandbox_create and sandbox_remove need a grant as upstream; once grants are used once, session
grants live as long as the server process, always grants are kept in permissions.json and read
back at the next start. The HTTP server has a store of its own (GET /permissions, POST
/permissions/grant, POST /permissions/check, DELETE /permissions/{id})."""
import json
import os
import re
import stat
import subprocess

import pytest

from conftest import AK, needs_root
from serve_client import Server

pytestmark = needs_root

REQUIRED = re.compile(r"^Error: Permission required: (\w+) for (sandbox '[^']*'|all sandboxes)\. "
                      r"Grant with permission_grant tool\. Request ID: req_[0-9a-f]{32}$")
GRANT_ID = re.compile(r"^grant_[0-9a-f]{32}$")


def session(ak, *calls, env=None):
    """One mcp-server process answering these tools/call requests in order: their results
    (each {"text", "error"}), and the server's stderr."""
    msgs = [{"jsonrpc": "2.0", "id": 0, "method": "initialize",
             "params": {"protocolVersion": "2024-11-05", "capabilities": {},
                        "clientInfo": {"name": "t", "version": "1"}}}]
    for i, (tool, args) in enumerate(calls, 1):
        msgs.append({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                     "params": {"name": tool, "arguments": args}})
    res = ak("mcp-server", input="".join(json.dumps(m) + "\n" for m in msgs).encode(),
             timeout=120, env=env)
    out = {}
    for line in res.stdout.splitlines():
        m = json.loads(line)
        if m.get("id"):
            r = m["result"]
            out[m["id"]] = {"text": r["content"][0]["text"], "error": bool(r.get("isError"))}
    assert len(out) == len(calls), res
    return [out[i] for i in range(1, len(calls) + 1)], res.stderr


def grant(kind, scope=None, sandbox=None, granted=True):
    a = {"kind": kind, "granted": granted}
    if scope:
        a["scope"] = scope
    if sandbox:
        a["sandbox"] = sandbox
    return ("permission_grant", a)


def test_create_without_grant_refused_with_upstreams_words(ak):
    """sandbox_create without a grant: upstream's error text with a fresh request id, and no
    sandbox."""
    (a, b), _ = session(ak, ("sandbox_create", {"name": "nope"}),
                        ("sandbox_create", {"name": "nope"}))
    assert a["error"] and REQUIRED.match(a["text"]), a
    assert "sandbox_create for sandbox 'nope'" in a["text"]
    assert a["text"][-36:] != b["text"][-36:]  # a new request id each time
    assert ak.names() == []


def test_remove_without_grant_refused(ak, sandbox):
    """sandbox_remove without a grant is refused and the sandbox stays."""
    (r,), _ = session(ak, ("sandbox_remove", {"name": sandbox}))
    assert r["error"] and REQUIRED.match(r["text"]), r
    assert "sandbox_remove for sandbox 'box'" in r["text"]
    assert ak.names() == ["box"]


def test_once_grant_is_used_once(ak):
    """A once grant (the default scope) lets one create through, then is gone."""
    g, one, two, lst = session(ak, grant("sandbox_create"), ("sandbox_create", {"name": "one"}),
                               ("sandbox_create", {"name": "two"}), ("permission_list", {}))[0]
    doc = json.loads(g["text"])
    assert doc["granted"] is True and doc["kind"] == "sandbox_create" and doc["scope"] == "once"
    assert GRANT_ID.match(doc["grant_id"])
    assert not one["error"], one
    assert two["error"] and "sandbox_create for sandbox 'two'" in two["text"]
    assert json.loads(lst["text"]) == []
    assert ak.names() == ["one"]


def test_grant_for_one_sandbox_only(ak):
    """A grant naming a sandbox answers only for that one."""
    _, other, mine = session(ak, grant("sandbox_create", "session", "mine"),
                             ("sandbox_create", {"name": "other"}),
                             ("sandbox_create", {"name": "mine"}))[0]
    assert other["error"] and REQUIRED.match(other["text"])
    assert not mine["error"], mine
    assert ak.names() == ["mine"]


def test_session_grant_lives_for_the_process(ak):
    """A session grant serves every call of its process and no other process."""
    res, _ = session(ak, grant("sandbox_create", "session"), grant("sandbox_remove", "session"),
                     ("sandbox_create", {"name": "s1"}), ("sandbox_create", {"name": "s2"}),
                     ("sandbox_remove", {"name": "s1"}))
    assert not any(r["error"] for r in res), res
    (again,), _ = session(ak, ("sandbox_create", {"name": "s3"}))
    assert again["error"] and REQUIRED.match(again["text"])
    assert ak.names() == ["s2"]
    assert not (ak.data_dir / "permissions.json").exists()  # nothing kept of a session


def test_always_grant_persists_across_restarts_until_revoked(ak):
    """An always grant is kept (0600) and believed by the next server; revoked, it is gone."""
    (g,), _ = session(ak, grant("sandbox_create", "always"))
    gid = json.loads(g["text"])["grant_id"]
    f = ak.data_dir / "permissions.json"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert [x["id"] for x in json.loads(f.read_text())["grants"]] == [gid]
    (lst, c1, c2), _ = session(ak, ("permission_list", {}), ("sandbox_create", {"name": "a1"}),
                               ("sandbox_create", {"name": "a2"}))
    assert [x["id"] for x in json.loads(lst["text"])] == [gid]
    assert not c1["error"] and not c2["error"], (c1, c2)  # not consumed
    (rv,), _ = session(ak, ("permission_revoke", {"id": gid}))
    assert not rv["error"], rv
    assert json.loads(f.read_text())["grants"] == []
    (c3,), _ = session(ak, ("sandbox_create", {"name": "a3"}))
    assert c3["error"] and REQUIRED.match(c3["text"])
    assert ak.names() == ["a1", "a2"]


def test_denied_grant_stores_nothing(ak):
    """granted=false: upstream's 'Permission denied by user.', and nothing stored."""
    d, lst, c = session(ak, grant("sandbox_create", "always", granted=False),
                        ("permission_list", {}), ("sandbox_create", {"name": "x"}))[0]
    assert d == {"text": "Permission denied by user.", "error": False}
    assert json.loads(lst["text"]) == [] and c["error"]
    assert not (ak.data_dir / "permissions.json").exists()


def test_revoke_unknown_ids(ak):
    """Revoking an id that is not a grant (unknown, or a path) is an error result and leaves
    the grants there."""
    res, _ = session(ak, grant("sandbox_create", "session"),
                     ("permission_revoke", {"id": "grant_" + "0" * 32}),
                     ("permission_revoke", {"id": "../../etc/passwd"}),
                     ("permission_revoke", {}),
                     ("permission_list", {}))
    gid = json.loads(res[0]["text"])["grant_id"]
    assert res[1]["error"] and "no permission grant" in res[1]["text"]
    assert res[2]["error"] and res[3]["error"]
    assert [x["id"] for x in json.loads(res[4]["text"])] == [gid]


def test_revoke_then_create_refused(ak):
    """Grant, revoke in the same process, then create: refused."""
    msgs = [{"jsonrpc": "2.0", "id": 0, "method": "initialize",
             "params": {"protocolVersion": "2024-11-05"}}]
    p = subprocess.Popen([AK, "mcp-server"], env=ak.env, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def call(i, tool, args):
        p.stdin.write((json.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                                   "params": {"name": tool, "arguments": args}}) + "\n").encode())
        p.stdin.flush()
        while True:
            m = json.loads(p.stdout.readline())
            if m.get("id") == i:
                return m["result"]
    try:
        p.stdin.write((json.dumps(msgs[0]) + "\n").encode())
        p.stdin.flush()
        g = call(1, "permission_grant", {"kind": "sandbox_create", "granted": True,
                                          "scope": "session"})
        gid = json.loads(g["content"][0]["text"])["grant_id"]
        assert not call(2, "permission_revoke", {"id": gid}).get("isError")
        r = call(3, "sandbox_create", {"name": "late"})
        assert r["isError"] and REQUIRED.match(r["content"][0]["text"])
        assert call(4, "permission_revoke", {"id": gid})["isError"]  # already gone
    finally:
        p.stdin.close()
        p.wait(timeout=30)
    assert ak.names() == []


@pytest.mark.parametrize("args, what", [
    ({"kind": "root_shell", "granted": True}, "kind"),
    ({"kind": "sandbox_create", "granted": True, "scope": "forever"}, "scope"),
    ({"kind": "sandbox_create", "granted": "yes"}, "granted"),
    ({"kind": "sandbox_create"}, "granted"),
    ({"kind": "sandbox_create", "granted": True, "sandbox": 7}, "sandbox"),
    ({"kind": "sandbox_create", "granted": True, "sandbox": "x" * 129}, "sandbox"),
    ({"kind": "sandbox_create", "granted": True, "sandbox": "a\nb"}, "sandbox"),
    ({"kind": "sandbox_create", "granted": True, "request_id": "r" * 200}, "request_id"),
])
def test_bad_grants_refused(ak, args, what):
    """A malformed grant is an error result naming what is wrong, and stores nothing."""
    (r, lst), _ = session(ak, ("permission_grant", args), ("permission_list", {}))
    assert r["error"] and what in r["text"], r
    assert json.loads(lst["text"]) == []


def test_tools_listed_as_available(ak):
    """The three tools are no longer listed as missing."""
    msgs = [{"jsonrpc": "2.0", "id": 1, "method": "initialize",
             "params": {"protocolVersion": "2024-11-05"}},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}]
    res = ak("mcp-server", input="".join(json.dumps(m) + "\n" for m in msgs).encode())
    tools = {t["name"]: t for t in json.loads(res.stdout.splitlines()[1])["result"]["tools"]}
    for n in ("permission_grant", "permission_list", "permission_revoke"):
        assert "not available" not in tools[n]["description"]
    assert tools["permission_grant"]["inputSchema"]["properties"]["scope"]["default"] == "once"


def test_config_dir_without_data_dir(ak, tmp_path):
    """Without AGENTKERNEL_DATA_DIR, always grants go to $XDG_CONFIG_HOME/agentkernel
    (upstream's config dir), made 0700, the file 0600."""
    env = {k: v for k, v in ak.env.items() if k != "AGENTKERNEL_DATA_DIR"}
    env["HOME"] = str(tmp_path / "home")
    env["XDG_CONFIG_HOME"] = str(tmp_path / "cfg")
    msgs = [{"jsonrpc": "2.0", "id": 1, "method": "tools/call",
             "params": {"name": "permission_grant",
                        "arguments": {"kind": "file_delete", "granted": True,
                                      "scope": "always"}}}]
    p = subprocess.run([AK, "mcp-server"], env=env, capture_output=True, timeout=60,
                       input=(json.dumps(msgs[0]) + "\n").encode())
    assert b"isError" not in p.stdout, p
    f = tmp_path / "cfg" / "agentkernel" / "permissions.json"
    assert stat.S_IMODE(f.stat().st_mode) == 0o600
    assert stat.S_IMODE(f.parent.stat().st_mode) == 0o700
    assert json.loads(f.read_text())["grants"][0]["kind"] == "file_delete"


# ---- HTTP ----

@pytest.fixture
def server(ak):
    s = Server(ak)
    yield s
    s.stop()


def test_http_grant_list_check_revoke(server, ak):
    """The HTTP routes: grant, list, check (consumes nothing), revoke, 404 after."""
    st, body = server.request("POST", "/permissions/check", {"kind": "sandbox_remove"})
    assert st == 200 and body["data"]["allowed"] is False, body
    st, body = server.request("POST", "/permissions/grant",
                              {"kind": "sandbox_remove", "sandbox": "web"})
    assert st == 200, body
    g = body["data"]
    assert g["granted"] is True and g["scope"] == "once" and GRANT_ID.match(g["grant_id"])
    for _ in range(2):  # check consumes nothing
        st, body = server.request("POST", "/permissions/check",
                                  {"kind": "sandbox_remove", "sandbox": "web"})
        assert st == 200 and body["data"]["allowed"] is True, body
    st, body = server.request("POST", "/permissions/check",
                              {"kind": "sandbox_remove", "sandbox": "other"})
    assert body["data"]["allowed"] is False
    st, body = server.request("POST", "/permissions/check", {"kind": "sandbox_remove"})
    assert body["data"]["allowed"] is False  # "all sandboxes" needs a grant for all
    st, body = server.request("GET", "/permissions")
    assert st == 200 and [x["id"] for x in body["data"]] == [g["grant_id"]]
    assert body["data"][0]["sandbox"] == "web"
    st, _ = server.request("DELETE", f"/permissions/{g['grant_id']}")
    assert st == 200
    st, _ = server.request("DELETE", f"/permissions/{g['grant_id']}")
    assert st == 404
    st, body = server.request("GET", "/permissions")
    assert body["data"] == []


@pytest.mark.parametrize("body", [
    {"kind": "everything"}, {"scope": "once"}, {"kind": "sudo_exec", "scope": "never"},
    {"kind": "sudo_exec", "sandbox": ["a"]}, {"kind": "sudo_exec", "granted": "no"}, [],
])
def test_http_bad_grant_is_400(server, body):
    """A malformed grant body is 400 and stores nothing."""
    st, _ = server.request("POST", "/permissions/grant", body)
    assert st == 400
    assert server.request("GET", "/permissions")[1]["data"] == []


def test_http_store_is_its_own_but_always_is_shared(server, ak):
    """A session grant made over HTTP does not open MCP (a store per process, as upstream);
    an always grant is in the file both read at start."""
    st, _ = server.request("POST", "/permissions/grant",
                           {"kind": "sandbox_create", "scope": "session"})
    assert st == 200
    (c,), _ = session(ak, ("sandbox_create", {"name": "h1"}))
    assert c["error"] and REQUIRED.match(c["text"])
    st, _ = server.request("POST", "/permissions/grant",
                           {"kind": "sandbox_create", "scope": "always"})
    assert st == 200
    (c,), _ = session(ak, ("sandbox_create", {"name": "h2"}))
    assert not c["error"], c
    assert ak.names() == ["h2"]


def test_http_create_needs_no_grant(server, ak):
    """The HTTP API is the key holder's (the user's own door): its create is not gated (as
    upstream's HTTP server)."""
    st, body = server.request("POST", "/sandboxes", {"name": "direct", "network": False})
    assert st in (200, 201), body
    assert ak.names() == ["direct"]
