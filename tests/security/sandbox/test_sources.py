# SPDX-License-Identifier: Apache-2.0
"""A hostile source URL or ref (from a prompt-injected agent driving `create --source`, the API's
source_url or MCP's sandbox_create) tries to run a command or read a host file through git:
option injection (--upload-pack, -c, ssh's -oProxyCommand), local transports (file://, plain
paths), git's remote helpers (ext::, fd::), control characters, and refs that are options.

What must hold: each is refused before anything is created (exit 2, no sandbox recorded), and
none of the commands it smuggles ever runs (its marker file never appears). git itself runs
inside the sandbox and only with https, http, ssh and git allowed (protocol.allow=never)."""
import pytest

from conftest import needs_root

pytestmark = needs_root

BAD_URLS = [
    "--upload-pack=/bin/touch {m}",
    "--upload-pack={m}",
    "-u{m}",
    "--config=core.sshCommand=touch",
    "file://{m}",
    "file:///etc",
    "/etc",
    "./repo",
    "../repo",
    "ext::touch{m}",
    "ext::sh -c touch% {m}",
    "fd::3",
    "git:ext::touch{m}",
    "ssh://-oProxyCommand=touch{m}/x",
    "ssh://-oProxyCommand=x@host/x",
    "-oProxyCommand=touch@host:x",
    "https://host/x\nmore",
    "https://host/x\x00y",
    "https://host/x y",
    "https://user:secret@host/x",
    "https://-host/x",
    "https://host:99999/x",
    "https:///x",
    "x" * 3000,
    "https://host/" + "a" * 3000,
    "",
]

BAD_REFS = ["--orphan=x", "-b", "-", "HEAD@{1}", "../../etc", "a..b", "refs//x", "x.lock",
            "/abs", "a b", "a\nb", "x" * 300, "a~1", "a^", "a:b", "*", "a?", ".hidden"]


@pytest.mark.parametrize("url", BAD_URLS)
def test_bad_source_url_is_refused(ak, tmp_path, url):
    marker = tmp_path / "pwned"
    u = url.replace("{m}", str(marker))
    if "\x00" in u:
        pytest.skip("an argv cannot hold NUL (the API's JSON can: tested there)")
    res = ak("create", "src", "--network=full", "--source", u)
    assert res.rc == 2, res
    assert ak.list() == []
    assert not marker.exists()


@pytest.mark.parametrize("ref", BAD_REFS)
def test_bad_git_ref_is_refused(ak, tmp_path, ref):
    res = ak("create", "src", "--network=full", "--source", "https://example.org/r.git",
             "--git-ref", ref)
    assert res.rc == 2 and "git ref" in res.stderr, res
    assert ak.list() == []
