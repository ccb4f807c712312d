# SPDX-License-Identifier: Apache-2.0
"""`create --source URL [--git-ref REF]` (core/source.c): git runs inside the sandbox, so the
sandbox's network policy decides; a failed clone fails the create and leaves nothing behind.
The repository is the egress test world's (tests/egress_world.py: git smart HTTP at
http://allowed.test/git/repo.git, a private network no packet can leave)."""
import pytest

from conftest import needs_root
from egress_world import ALLOWED, proxy_missing, wak, world  # noqa: F401 (fixtures)

MISSING = proxy_missing()
pytestmark = [needs_root, pytest.mark.egress,
              pytest.mark.skipif(bool(MISSING), reason="no proxy mode: " + "; ".join(MISSING))]

REPO = f"http://{ALLOWED}/git/repo.git"


def test_clone_into_workspace_through_the_proxy(wak, world):
    res = wak("create", "src", "--network=proxy", "--allow-host", ALLOWED, "--source", REPO,
              "--git-ref", "main")
    assert res.rc == 0, res
    res = wak("exec", "src", "--", "sh", "-c", "pwd; cat /workspace/README; "
              "git -C /workspace rev-parse --abbrev-ref HEAD")
    assert res.stdout.split() == ["/workspace", "egress-git-ok", "main"], res
    x = wak.state("src")["x_agentkernel"]
    assert x["source_url"] == REPO and x["source_ref"] == "main"


def test_upstream_git_prefix_is_stripped(wak, world):
    res = wak("create", "src", "--network=proxy", "--allow-host", ALLOWED, "--source",
              "git:" + REPO)
    assert res.rc == 0, res
    assert wak("exec", "src", "--", "cat", "/workspace/README").stdout == "egress-git-ok\n"


def test_host_not_allowed_is_refused_before_anything_is_made(wak, world):
    res = wak("create", "src", "--network=proxy", "--source", "https://denied.test/x.git")
    assert res.rc == 1 and "--allow-host denied.test:443" in res.stderr, res
    assert wak.list() == []


def test_failed_clone_leaves_nothing(wak, world):
    res = wak("create", "src", "--network=proxy", "--allow-host", ALLOWED, "--source",
              f"http://{ALLOWED}/git/missing.git")
    assert res.rc == 1 and "cloning" in res.stderr, res
    assert wak.list() == []


def test_unknown_ref_fails_and_leaves_nothing(wak, world):
    res = wak("create", "src", "--network=proxy", "--allow-host", ALLOWED, "--source", REPO,
              "--git-ref", "no-such-branch")
    assert res.rc == 1 and "checking out 'no-such-branch'" in res.stderr, res
    assert wak.list() == []


def test_flag_combinations(wak, world):
    for args, msg in [(["--git-ref", "main"], "--git-ref requires --source"),
                      (["--source", REPO, "--no-start"], "--no-start"),
                      (["--source", REPO, "--no-network"], "needs the network"),
                      (["--source", REPO, "--mount-cwd", "--allow-host", ALLOWED],
                       "mounted workspace")]:
        res = wak("create", "src", "--network=proxy", *args) if "--no-network" not in args \
            else wak("create", "src", *args)
        assert res.rc in (1, 2) and msg in res.stderr, (args, res)
    assert wak.list() == []


@pytest.fixture
def api(wak, world, tmp_path):
    from serve_client import Server
    sock = tmp_path / "api.sock"
    key = "sources-test-key-0123456789abcdef"
    s = Server(wak, "--no-tcp", "--socket", str(sock), "--api-key", key, prefix=wak.prefix)
    s.key = key
    yield s
    s.stop()


def test_api_source_url_and_ref(wak, world, api):
    st, body = api.request("POST", "/sandboxes", {"name": "a1", "network": "proxy",
                                                  "network_policy": {"default": "deny", "rules": [
                                                      {"action": "allow", "host": ALLOWED}]},
                                                  "source_url": REPO, "source_ref": "main"},
                           unix=True)
    assert st == 201, body
    res = wak("exec", "a1", "--", "cat", "/workspace/README")
    assert res.stdout == "egress-git-ok\n", res


def test_api_source_refusals_and_failed_clone(wak, world, api):
    st, body = api.request("POST", "/sandboxes", {"name": "a2", "source_ref": "main"}, unix=True)
    assert st == 400 and "source_ref requires source_url" in body["error"], body
    st, body = api.request("POST", "/sandboxes", {"name": "a2", "source_url": "ext::sh"},
                           unix=True)
    assert st == 400, body
    st, body = api.request("POST", "/sandboxes", {"name": "a2", "source_url": "https://h/x\u0000y"},
                           unix=True)
    assert st == 400, body
    st, body = api.request("POST", "/sandboxes", {"name": "a2", "network": "proxy",
                                                  "source_url": "https://denied.test/x.git"},
                           unix=True)
    assert st == 403 and "--allow-host denied.test:443" in body["error"], body
    st, body = api.request("POST", "/sandboxes", {"name": "a2", "network": "proxy",
                                                  "network_policy": {"default": "deny", "rules": [
                                                      {"action": "allow", "host": ALLOWED}]},
                                                  "source_url": f"http://{ALLOWED}/git/no.git"},
                           unix=True)
    assert st == 500 and "cloning" in body["error"], body
    assert wak.list() == []
