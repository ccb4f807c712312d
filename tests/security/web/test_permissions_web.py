# SPDX-License-Identifier: Apache-2.0
"""A web page in the developer's browser tries to grant itself permissions through `serve`'s
/permissions routes (a grant the user never made; an `always` one would also open every later
MCP server), or to read or revoke the user's grants. A page can send simple cross-origin
requests (text/plain, form bodies, no custom headers so no key) and, through DNS rebinding,
same-"origin" requests with a foreign Host.

What must hold: without the key every /permissions route is 401; a body that is not
application/json is 415; a foreign Origin, Host or cross-site Sec-Fetch-Site is 403 even with
the key; no grant is stored and permissions.json is never written by such a request."""
import pytest

from conftest import needs_root
from serve_client import Server

pytestmark = needs_root

EVIL = "http://evil.example"
GRANT = b'{"kind":"sandbox_create","scope":"always"}'


@pytest.fixture
def server(ak):
    s = Server(ak)
    yield s
    s.stop()


@pytest.fixture
def open_server(ak):
    s = Server(ak, "--insecure-no-auth")
    yield s
    s.stop()


def browser(server, method, path, body=None, ctype=None, host=None, origin=None, extra=None,
            key=False):
    h = {}
    if ctype:
        h["Content-Type"] = ctype
    if host is not None:
        h["Host"] = host
    if origin is not None:
        h["Origin"] = origin
    h.update(extra or {})
    return server.exchange(method, path, raw=body, headers=h, key=key)[0]


def nothing_granted(server, ak):
    st, body = server.request("GET", "/permissions")
    assert st == 200 and body["data"] == [], body
    assert not (ak.data_dir / "permissions.json").exists()


@pytest.mark.parametrize("method, path, body", [
    ("GET", "/permissions", None),
    ("POST", "/permissions/grant", GRANT),
    ("POST", "/permissions/check", b'{"kind":"sandbox_create"}'),
    ("DELETE", "/permissions/grant_" + "0" * 32, None),
])
def test_routes_without_key_are_401(server, ak, method, path, body):
    """Every /permissions route wants the key a page cannot have."""
    st = browser(server, method, path, body, ctype="application/json" if body else None)
    assert st == 401
    nothing_granted(server, ak)


@pytest.mark.parametrize("ctype", ["text/plain", "text/plain;charset=UTF-8",
                                   "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=x"])
def test_simple_request_grant_refused(open_server, ak, ctype):
    """A <form> or no-preflight fetch posting a grant: 415, even on a keyless server."""
    assert browser(open_server, "POST", "/permissions/grant", GRANT, ctype=ctype) == 415
    nothing_granted(open_server, ak)


def test_grant_without_content_type_refused(open_server, ak):
    """A grant body with no Content-Type at all (an untyped Blob) is 415."""
    assert browser(open_server, "POST", "/permissions/grant", GRANT,
                   extra={"Content-Type": None}) == 415
    nothing_granted(open_server, ak)


@pytest.mark.parametrize("origin", [EVIL, "null", "http://127.0.0.1.evil.example"])
def test_cross_origin_grant_refused(open_server, ak, origin):
    """A cross-origin JSON grant (a page that got past the preflight) is 403."""
    assert browser(open_server, "POST", "/permissions/grant", GRANT, ctype="application/json",
                   origin=origin) == 403
    nothing_granted(open_server, ak)


def test_cross_origin_grant_refused_with_key(server, ak):
    """Even a request carrying the key is 403 from a foreign Origin."""
    assert browser(server, "POST", "/permissions/grant", GRANT, ctype="application/json",
                   origin=EVIL, key=True) == 403
    nothing_granted(server, ak)


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_cross_site_fetch_metadata_grant_refused(open_server, ak, site):
    """Sec-Fetch-Site other than same-origin (what browsers send) is 403."""
    assert browser(open_server, "POST", "/permissions/grant", GRANT, ctype="application/json",
                   extra={"Sec-Fetch-Site": site}) == 403
    nothing_granted(open_server, ak)


def test_dns_rebinding_grant_refused(open_server, ak):
    """A rebound page (Host: evil.example:port) cannot grant, list or revoke."""
    host = f"evil.example:{open_server.port}"
    assert browser(open_server, "POST", "/permissions/grant", GRANT, ctype="application/json",
                   host=host) == 403
    assert browser(open_server, "GET", "/permissions", host=host) == 403
    nothing_granted(open_server, ak)


def test_rebinding_cannot_revoke_users_grant(server, ak):
    """A user's grant survives a rebound or cross-origin DELETE."""
    st, body = server.request("POST", "/permissions/grant",
                              {"kind": "sandbox_remove", "scope": "session"})
    gid = body["data"]["grant_id"]
    assert browser(server, "DELETE", f"/permissions/{gid}",
                   host=f"evil.example:{server.port}", key=True) == 403
    assert browser(server, "DELETE", f"/permissions/{gid}", origin=EVIL, key=True) == 403
    assert browser(server, "DELETE", f"/permissions/{gid}") == 401
    st, body = server.request("GET", "/permissions")
    assert [g["id"] for g in body["data"]] == [gid]
