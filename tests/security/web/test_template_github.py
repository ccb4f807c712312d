# SPDX-License-Identifier: Apache-2.0
"""A hostile git repository against `template add github:OWNER/REPO[/PATH][@REF]` (issue 17).

The repository is the attacker's: it can hold symbolic links (to /etc/passwd, to a directory),
huge or binary files, a template that would copy the user's files in, .gitattributes filters and
anything else a checkout would act on; the spec itself can try option injection or path escapes;
and the user's own git configuration could redirect the fetch. Served here as a bare repository
through a file:// base (AGENTKERNEL_GITHUB_URL), as GitHub would serve it.

What must hold: only a regular file of at most 64 KiB, reached through the repository's own
trees, becomes a template (and only one that parses as a template without [[files]]); nothing of
the repository is checked out or run; a refused fetch stores nothing and leaves no temporary
directory; the spec's names cannot escape PATH, inject options or pick another transport."""
import glob
import os
import subprocess

import pytest

from conftest import needs_root

pytestmark = needs_root

GOOD = '[sandbox]\nbase_image = "alpine:3.20"\n[template]\nhelp_text = "ok"\n'


def git(*args, cwd):
    subprocess.run(["git", "-c", "user.email=a@b", "-c", "user.name=a", *args], cwd=cwd,
                   check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    """A repository served at file://<tmp>/srv/evil/repo: build() commits files and publishes."""
    src = tmp_path / "src"
    src.mkdir()
    git("init", "-q", "-b", "main", ".", cwd=src)
    srv = tmp_path / "srv"

    class R:
        base = f"file://{srv}"
        work = src

        def build(self):
            git("add", "-A", cwd=src)
            git("commit", "-qm", "x", "--allow-empty", cwd=src)
            dest = srv / "evil" / "repo"
            if dest.exists():
                subprocess.run(["rm", "-rf", str(dest)], check=True)
            dest.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(["git", "clone", "-q", "--bare", str(src), str(dest)], check=True)

    return R()


def add(ak, repo, spec, *extra, env=None):
    e = {"AGENTKERNEL_GITHUB_URL": repo.base}
    e.update(env or {})
    return ak("template", "add", spec, *extra, env=e)


def temp_dirs():
    return set(glob.glob("/tmp/agentkernel-template-*"))


def local_names(ak):
    d = ak.data_dir / "templates"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_good_template_is_fetched(ak, repo):
    (repo.work / "agentkernel.toml").write_text(GOOD)
    (repo.work / "t").mkdir()
    (repo.work / "t" / "py.toml").write_text(GOOD)
    repo.build()
    res = add(ak, repo, "github:evil/repo")
    assert res.rc == 0 and res.stdout == "Template 'repo' fetched and cached (github)\n", res
    res = add(ak, repo, "github:evil/repo/t/py@main", "--name", "mine")
    assert res.rc == 0, res
    assert local_names(ak) == ["mine.toml", "repo.toml"]
    assert ak("template", "show", "mine").stdout == GOOD


def test_symlink_to_host_file_refused(ak, repo):
    """link.toml -> /etc/passwd: a checkout would have read the host's file; refused as a link."""
    os.symlink("/etc/passwd", repo.work / "link.toml")
    repo.build()
    before = temp_dirs()
    res = add(ak, repo, "github:evil/repo/link")
    assert res.rc != 0 and "symbolic link" in res.stderr, res
    assert local_names(ak) == [] and temp_dirs() == before


def test_path_through_symlinked_directory_not_followed(ak, repo):
    """d -> /etc in the repository, PATH d/passwd: git's trees have no such file."""
    os.symlink("/etc", repo.work / "d")
    repo.build()
    res = add(ak, repo, "github:evil/repo/d/passwd.toml")
    assert res.rc != 0 and "no file" in res.stderr, res
    assert local_names(ak) == []


def test_huge_file_refused(ak, repo):
    (repo.work / "big.toml").write_text("# " + "x" * (70 << 10) + "\n" + GOOD)
    repo.build()
    res = add(ak, repo, "github:evil/repo/big")
    assert res.rc != 0 and "64 KiB" in res.stderr, res
    assert local_names(ak) == []


def test_binary_and_directory_refused(ak, repo):
    (repo.work / "bin.toml").write_bytes(b"[sandbox]\x00\n")
    (repo.work / "dir.toml").mkdir()
    (repo.work / "dir.toml" / "x").write_text("x")
    repo.build()
    res = add(ak, repo, "github:evil/repo/bin")
    assert res.rc != 0 and "not text" in res.stderr, res
    res = add(ak, repo, "github:evil/repo/dir")
    assert res.rc != 0 and "directory" in res.stderr, res
    assert local_names(ak) == []


def test_template_copying_host_files_refused(ak, repo):
    """[[files]] would copy the user's files into every sandbox made from it: refused."""
    (repo.work / "agentkernel.toml").write_text(
        GOOD + '[[files]]\nsource = "id_rsa"\ndest = "/tmp/k"\n')
    repo.build()
    res = add(ak, repo, "github:evil/repo")
    assert res.rc != 0 and "files" in res.stderr, res
    assert local_names(ak) == []


def test_nothing_of_the_repository_runs(ak, repo, tmp_path):
    """.gitattributes with a filter, a post-checkout hook file in the tree: a checkout with the
    user's filters configured would run them. Nothing is checked out, so nothing runs."""
    marker = tmp_path / "ran"
    (repo.work / ".gitattributes").write_text("*.toml filter=evil\n")
    (repo.work / "agentkernel.toml").write_text(GOOD)
    repo.build()
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text(
        f'[filter "evil"]\n\tsmudge = touch {marker}\n\tclean = cat\n'
        f'[core]\n\tfsmonitor = touch {marker}\n'
        f'[url "file:///nonexistent/"]\n\tinsteadOf = {repo.base}/\n')
    res = add(ak, repo, "github:evil/repo", env={"HOME": str(home)})
    assert res.rc == 0, res  # the user's insteadOf did not redirect it either
    assert not marker.exists(), "something of the repository's or the user's config ran"


@pytest.mark.parametrize("spec", [
    "github:evil/repo/../../etc/passwd", "github:evil/repo/./x", "github:evil/repo//x",
    "github:-oProxyCommand=touch /tmp/x/repo", "github:evil/--upload-pack=touch /tmp/y",
    "github:evil", "github:evil/repo/x@-b", "github:evil/repo/x@a..b", "github:../repo/x",
    "github:evil/repo/x/", "github:evil/re po/x", "github:evil/repo/.git/config",
])
def test_bad_specs_refused_before_git(ak, repo, spec):
    before = temp_dirs()
    res = add(ak, repo, spec)
    assert res.rc == 2, res
    assert temp_dirs() == before and local_names(ak) == []


@pytest.mark.parametrize("base", ["ext::sh -c touch% /tmp/pwned", "fd::3", "/srv/repos",
                                  "ssh://host/x", "file:///tmp/x y"])
def test_other_transports_refused(ak, repo, base):
    res = ak("template", "add", "github:evil/repo", env={"AGENTKERNEL_GITHUB_URL": base})
    assert res.rc != 0 and "AGENTKERNEL_GITHUB_URL" in res.stderr, res
