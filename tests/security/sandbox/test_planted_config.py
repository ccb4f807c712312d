# SPDX-License-Identifier: Apache-2.0
"""A hostile sandbox plants or edits agentkernel.toml in its workspace (the user's project
directory), hoping the next `run`, `create` or `serve` there trusts it: to copy host files into a
sandbox with [[files]], or to change profile, network, mounts, command policy or the API key.

What must hold: a config is honoured only when it is owned by the caller, not writable by group
or others, and approved (`agentkernel trust`) with exactly its current bytes; a refused config
stops the command (exit 2), says why and how to approve it, and changes nothing. [[files]]
sources stay inside the config's directory at every start: no absolute path, no `..`, no symlink
leaving it, no magic link, regular files of bounded size only.

The project belongs to a user of the host (PROJECT_OWNER_UID), and the attacks run from two
seats (the `seat` fixture), since two layers stand between a sandbox and a planted config:
- root: root works in that user's project. The project's owner is the sandbox's root there (a
  workspace is idmapped to its directory's owner), so whatever the sandbox plants is that
  user's on the host, and root refuses it as not its own; root's own approved config there is
  not even the sandbox's to edit, replace or link.
- owner: the user runs agentkernel rootless in their own project. Their sandbox's root is the
  caller itself, so what it plants is owned by the caller, and only the approval by hash stops
  it: every refusal reason (new, changed, symbolic link, not a regular file) is checked here.
The host secret is a file only the caller can read (root's, or the user's own 0600 file)."""
import json
import os
import socket
import subprocess
import time

import pytest

from conftest import PROJECT_OWNER_UID, needs_root

pytestmark = needs_root

SECRET = "host-secret-7f3a9c"
OWNER = PROJECT_OWNER_UID


@pytest.fixture
def secret(tmp_path):
    """A host file only root can read, outside every project directory."""
    p = tmp_path / "host-secret"
    p.write_text(SECRET + "\n")
    os.chmod(p, 0o600)
    return p


@pytest.fixture
def proj(tmp_path):
    d = tmp_path / "proj"
    d.mkdir()
    (d / "data.txt").write_text("project data\n")
    return d


def write(d, text, name="agentkernel.toml"):
    p = d / name
    p.write_text(text)
    os.chmod(p, 0o644)
    return p


def trust(ak, path):
    res = ak("trust", "--yes", path)
    assert res.rc == 0, res
    return res


def workspace_box(ak, proj, name="box"):
    """A running sandbox whose /workspace is the project directory (the attacker's seat)."""
    res = ak("create", name, "--no-network", "--no-config", "-d", proj)
    assert res.rc == 0, res
    return name


def in_box(ak, box, script, check=True):
    res = ak("exec", box, "--", "sh", "-c", script)
    if check:
        assert res.rc == 0, res
    return res


def refused(res, why="not trusted"):
    assert res.rc == 2, res
    assert why in res.stderr, res
    assert SECRET not in res.stdout + res.stderr, res


# ---- a config the sandbox plants or edits, from both seats ----

class Seat:
    """Who runs agentkernel in the user's project (see the module's doc): kind "root" or
    "owner", the caller's Ak and uid, the project (PROJECT_OWNER_UID's, with data.txt) and a
    host secret only the caller can read."""

    def __init__(self, kind, ak, base):
        self.kind = kind
        self.ak = ak
        self.caller = 0 if kind == "root" else OWNER
        self.base = base
        self.proj = self.users_dir(base / "proj")
        self.users_file(self.proj / "data.txt", "project data\n")
        self.secret = self.callers_file(base / "host-secret", SECRET + "\n", 0o600)

    def users_dir(self, d):
        """A directory of the project's owner (the user's project and what is in it)."""
        d.mkdir()
        os.chown(d, OWNER, OWNER)
        return d

    def users_file(self, p, text):
        p.write_text(text)
        os.chown(p, OWNER, OWNER)
        return p

    def callers_dir(self, d):
        d.mkdir()
        os.chown(d, self.caller, self.caller)
        return d

    def callers_file(self, p, text, mode=0o644):
        """A file the caller wrote (a config it then approves, its secret)."""
        p.write_text(text)
        os.chown(p, self.caller, self.caller)
        os.chmod(p, mode)
        return p

    def config(self, d, text, name="agentkernel.toml"):
        return self.callers_file(d / name, text)

    def planted_refused(self, res, why="not trusted"):
        """A config the sandbox wrote: root refuses it as another user's file (its owner is the
        project's), the owner for the reason given (the approval layer)."""
        refused(res, "not owned by you" if self.kind == "root" else why)


@pytest.fixture(params=["root", "owner"])
def seat(request, tmp_path):
    ak = request.getfixturevalue("ak" if request.param == "root" else "rootless_owner")
    return Seat(request.param, ak, tmp_path)


def planted_by_the_sandbox(path):
    """What the sandbox wrote is the project owner's on the host, whoever the caller is (never
    root's: finding 1)."""
    st = os.lstat(path)
    assert (st.st_uid, st.st_gid) == (OWNER, OWNER), (path, st.st_uid, st.st_gid)


def test_run_refuses_a_config_the_sandbox_planted(seat):
    """The sandbox writes agentkernel.toml with [[files]] naming a host secret: the next `run`
    in the project stops with a trust error (not silently ignoring it), copying nothing."""
    ak, proj = seat.ak, seat.proj
    box = workspace_box(ak, proj)
    in_box(ak, box, f"""cat > /workspace/agentkernel.toml <<'EOF'
[[files]]
source = "{seat.secret}"
dest = "/tmp/loot"
EOF""")
    planted_by_the_sandbox(proj / "agentkernel.toml")
    res = ak("run", "--no-network", "--", "cat", "/tmp/loot", cwd=proj)
    seat.planted_refused(res)
    assert "agentkernel trust" in res.stderr and "--no-config" in res.stderr, res
    assert ak.names() == [box]


def test_create_refuses_a_planted_config_and_creates_nothing(seat):
    """The planted config asks for the permissive profile, network and the home directory: `create`
    refuses it and records no sandbox."""
    ak, proj = seat.ak, seat.proj
    box = workspace_box(ak, proj)
    in_box(ak, box, """cat > /workspace/agentkernel.toml <<'EOF'
[sandbox]
name = "evil"
[security]
profile = "permissive"
network = true
mount_cwd = true
EOF""")
    planted_by_the_sandbox(proj / "agentkernel.toml")
    res = ak("create", cwd=proj)
    seat.planted_refused(res)
    assert ak.names() == [box]


def test_an_approved_config_edited_by_the_sandbox_is_refused(seat):
    """The user approved their config; the sandbox appends a line turning the command policy off
    (a later key cannot be added without changing the bytes): refused as changed. Root's own
    config in the user's project is not the sandbox's to write at all: unchanged, still
    honoured."""
    ak, proj = seat.ak, seat.proj
    p = seat.config(proj, '[sandbox]\nname = "pol"\n[security]\nnetwork = false\n'
                          '[security.commands]\nblock = ["wget"]\n')
    trust(ak, p)
    assert ak("run", "--", "true", cwd=proj).rc == 0
    before = p.read_bytes()
    box = workspace_box(ak, proj)
    res = in_box(ak, box, "printf '\\n' >> /workspace/agentkernel.toml", check=False)
    if seat.kind == "root":
        assert res.rc != 0 and "Permission denied" in res.stderr, res
        assert p.read_bytes() == before and os.stat(p).st_uid == 0
        res = ak("run", "--", "wget", cwd=proj)  # the approved policy still holds
        assert res.rc != 0 and "command 'wget'" in res.stderr, res
        assert ak.names() == [box]
        return
    assert res.rc == 0, res
    res = ak("run", "--", "wget", cwd=proj)
    refused(res, "changed since it was approved")
    res = ak("create", cwd=proj)
    refused(res, "changed since it was approved")
    assert ak.names() == [box]


def test_replacing_the_approved_file_by_rename_is_refused(seat):
    """The sandbox cannot edit in place but swaps a new file in with rename(): the path is
    approved, the bytes are not. Root's config in the user's project cannot even be replaced
    (its owner is not the sandbox's to delete): the approved one stays and is used."""
    ak, proj = seat.ak, seat.proj
    p = seat.config(proj, '[sandbox]\nname = "x"\n')
    trust(ak, p)
    before = p.read_bytes()
    box = workspace_box(ak, proj)
    res = in_box(ak, box, "printf '[security]\\nprofile = \"permissive\"\\n' > /workspace/.t && "
                          "mv /workspace/.t /workspace/agentkernel.toml", check=False)
    if seat.kind == "root":
        assert res.rc != 0, res
        assert p.read_bytes() == before and os.stat(p).st_uid == 0
        assert ak("create", "--no-start", cwd=proj).rc == 0
        assert ak.names() == [box, "x"]
        return
    assert res.rc == 0, res
    refused(ak("create", "--no-start", cwd=proj))
    assert ak.names() == [box]


def test_no_config_still_skips_a_refused_config(seat):
    """--no-config is the way around a refused file: it is not read at all."""
    ak, proj = seat.ak, seat.proj
    box = workspace_box(ak, proj)
    in_box(ak, box, "echo 'garbage = [' > /workspace/agentkernel.toml")
    planted_by_the_sandbox(proj / "agentkernel.toml")
    res = ak("run", "--no-network", "--no-config", "--", "echo", "ok", cwd=proj)
    assert res.rc == 0 and res.stdout == "ok\n", res


def test_explicit_config_flag_is_checked_too(seat):
    """--config FILE goes through the same check as ./agentkernel.toml."""
    ak, proj = seat.ak, seat.proj
    box = workspace_box(ak, proj)
    in_box(ak, box, f"printf '[[files]]\\nsource = \"data.txt\"\\ndest = \"/tmp/d\"\\n' "
                    f"> /workspace/other.toml")
    planted_by_the_sandbox(proj / "other.toml")
    seat.planted_refused(ak("run", "--no-network", "--config", proj / "other.toml", "--", "true"),
                         "it is new")


def test_a_symlinked_config_is_refused(seat):
    """The sandbox replaces agentkernel.toml with a symlink to a config the user approved
    elsewhere: a config must be a regular file named by its own path."""
    ak, proj = seat.ak, seat.proj
    other = seat.callers_dir(seat.base / "other")
    p = seat.config(other, '[security]\nprofile = "permissive"\n')
    trust(ak, p)
    box = workspace_box(ak, proj)
    in_box(ak, box, f"ln -s {p} /workspace/agentkernel.toml")
    planted_by_the_sandbox(proj / "agentkernel.toml")
    refused(ak("run", "--no-network", "--", "true", cwd=proj), "symbolic link")


def test_a_dangling_symlinked_config_is_not_silently_ignored(seat):
    """A dangling agentkernel.toml symlink does not make the config vanish unnoticed."""
    ak, proj = seat.ak, seat.proj
    box = workspace_box(ak, proj)
    in_box(ak, box, "ln -s /nonexistent/agentkernel.toml /workspace/agentkernel.toml")
    res = ak("run", "--no-network", "--", "true", cwd=proj)
    assert res.rc == 2 and "agentkernel.toml" in res.stderr, res


def test_a_fifo_config_neither_hangs_nor_counts(seat):
    """A FIFO named agentkernel.toml would block a reader forever: refused at once."""
    ak, proj = seat.ak, seat.proj
    box = workspace_box(ak, proj)
    in_box(ak, box, "mkfifo /workspace/agentkernel.toml")
    planted_by_the_sandbox(proj / "agentkernel.toml")
    t0 = time.time()
    res = ak("run", "--no-network", "--", "true", cwd=proj, timeout=30)
    assert res.rc == 2 and "not a regular file" in res.stderr, res
    assert time.time() - t0 < 20


def test_a_hard_link_of_an_approved_config_is_not_approved(seat):
    """Approvals belong to a path: a hard link the sandbox makes of an approved config (same
    bytes, same inode) elsewhere in the workspace is a new, unapproved config. Root's approved
    config in the user's project cannot even be linked by the sandbox (not its owner's file)."""
    ak, proj = seat.ak, seat.proj
    sub = seat.users_dir(proj / "sub")
    p = seat.config(sub, '[security]\nprofile = "permissive"\n')
    trust(ak, p)
    box = workspace_box(ak, proj)
    res = in_box(ak, box, "ln /workspace/sub/agentkernel.toml /workspace/agentkernel.toml",
                 check=False)
    if seat.kind == "root":
        assert res.rc != 0 and not os.path.lexists(proj / "agentkernel.toml"), res
        return
    assert res.rc == 0, res
    refused(ak("run", "--no-network", "--", "true", cwd=proj), "it is new")


def test_serve_refuses_a_planted_config_with_an_api_key(seat):
    """A planted [api] api_key would let the sandbox choose the key of the user's API server:
    `serve` in that directory refuses to start."""
    ak, proj = seat.ak, seat.proj
    box = workspace_box(ak, proj)
    in_box(ak, box, "printf '[api]\\napi_key = \"attacker-chosen-key\"\\n' "
                    "> /workspace/agentkernel.toml")
    planted_by_the_sandbox(proj / "agentkernel.toml")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = ak.popen("serve", "--port", str(port), cwd=proj, stdout=subprocess.PIPE,
                 stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail("serve started with a planted config")
    assert p.returncode != 0 and b"not trusted" in err, err
    why = b"not owned by you" if seat.kind == "root" else b"it is new"
    assert why in err, err


# ---- [[files]] sources ----

def approved(ak, proj, source, dest="/tmp/loot"):
    p = write(proj, f'[security]\nnetwork = false\n[[files]]\nsource = "{source}"\n'
                    f'dest = "{dest}"\n')
    return ak("trust", "--yes", p)


def file_refused(ak, proj, source, why):
    """The config naming this source can be neither approved nor used."""
    res = approved(ak, proj, source)
    assert res.rc == 1 and why in res.stderr, res
    res = ak("run", "--", "cat", "/tmp/loot", cwd=proj)
    assert res.rc == 2 and why in res.stderr, res
    assert SECRET not in res.stdout + res.stderr, res
    assert ak.names() == []


def test_files_absolute_source_refused(ak, proj, secret):
    """[[files]] source = "/etc/shadow" (here: a root-only host file)."""
    file_refused(ak, proj, str(secret), "absolute")
    file_refused(ak, proj, "/etc/shadow", "absolute")


def test_files_dotdot_source_refused(ak, proj, secret):
    """A relative source that climbs out of the config's directory."""
    file_refused(ak, proj, f"../{secret.name}", "'..'")
    file_refused(ak, proj, f"sub/../../{secret.name}", "'..'")


def test_files_symlink_out_of_the_directory_refused(ak, proj, secret):
    """A source inside the directory that is a symlink leaving it (absolute or relative)."""
    (proj / "abs").symlink_to(secret)
    file_refused(ak, proj, "abs", "outside")
    (proj / "rel").symlink_to(f"../{secret.name}")
    file_refused(ak, proj, "rel", "outside")
    (proj / "shadow").symlink_to("/etc/shadow")
    file_refused(ak, proj, "shadow", "outside")


def test_files_magic_link_refused(ak, proj):
    """A source symlink into /proc/self/... (a magic link to whatever the reader holds)."""
    (proj / "me").symlink_to("/proc/self/root/etc/shadow")
    file_refused(ak, proj, "me", "outside")
    (proj / "fd").symlink_to("/proc/self/fd/0")
    file_refused(ak, proj, "fd", "outside")


def test_files_fifo_refused_without_hanging(ak, proj):
    """A FIFO as source would block the reader forever: refused as not a regular file."""
    os.mkfifo(proj / "pipe")
    t0 = time.time()
    file_refused(ak, proj, "pipe", "not a regular file")
    assert time.time() - t0 < 30


def test_files_directory_refused(ak, proj):
    (proj / "dir").mkdir()
    file_refused(ak, proj, "dir", "not a regular file")


def test_files_huge_source_refused(ak, proj):
    """A (sparse) 1 GiB source is refused by size, not read."""
    with open(proj / "huge", "wb") as f:
        f.truncate(1 << 30)
    file_refused(ak, proj, "huge", "larger than")


def test_files_swapped_for_a_symlink_between_starts(seat):
    """The config was fine at create; the sandbox replaces the source with a symlink to a host
    secret, and waits for the next start, which copies files again: that start refuses."""
    ak, proj, secret = seat.ak, seat.proj, seat.secret
    p = seat.config(proj, '[sandbox]\nname = "sw"\n[security]\nnetwork = false\n'
                          'mount_cwd = true\n[[files]]\nsource = "data.txt"\ndest = "/tmp/data"\n')
    trust(ak, p)
    assert ak("create", cwd=proj).rc == 0
    assert ak("exec", "sw", "--", "cat", "/tmp/data").stdout == "project data\n"
    in_box(ak, "sw", f"rm /workspace/data.txt && ln -s {secret} /workspace/data.txt")
    planted_by_the_sandbox(proj / "data.txt")
    assert ak("stop", "sw").rc == 0
    res = ak("start", "sw")
    assert res.rc != 0 and "outside" in res.stderr, res
    assert SECRET not in res.stdout + res.stderr
    # the sandbox never got it
    ak("start", "sw")
    out = ak("exec", "sw", "--", "sh", "-c", "cat /tmp/data 2>&1; true")
    assert SECRET not in out.stdout


def test_files_source_directory_swapped_for_a_symlink(seat):
    """The config lives in a subdirectory of the workspace; the sandbox swaps that subdirectory
    for a symlink to a host directory holding a file of the same name."""
    ak, proj, secret = seat.ak, seat.proj, seat.secret
    sub = seat.users_dir(proj / "sub")
    seat.users_file(sub / secret.name, "harmless\n")
    p = seat.config(sub, f'[sandbox]\nname = "sd"\n[security]\nnetwork = false\n'
                         f'[[files]]\nsource = "{secret.name}"\ndest = "/tmp/x"\n')
    trust(ak, p)
    assert ak("create", "--config", p, "-d", proj).rc == 0
    in_box(ak, "sd", f"mv /workspace/sub /workspace/sub.old && ln -s {secret.parent} "
                     f"/workspace/sub")
    planted_by_the_sandbox(proj / "sub")
    assert ak("stop", "sd").rc == 0
    res = ak("start", "sd")
    assert res.rc != 0, res
    assert SECRET not in res.stdout + res.stderr
    out = ak("exec", "sd", "--", "sh", "-c", "cat /tmp/x 2>&1; true")
    assert SECRET not in out.stdout


def test_old_record_with_an_absolute_source_is_refused_at_start(ak, proj, secret):
    """A record written by an older version holds absolute [[files]] sources: start refuses it
    with a clear message instead of copying the host file."""
    p = write(proj, '[sandbox]\nname = "old"\n[security]\nnetwork = false\n'
                    '[[files]]\nsource = "data.txt"\ndest = "/tmp/data"\n')
    trust(ak, p)
    assert ak("create", "--no-start", cwd=proj).rc == 0
    f = ak.state_file("old")
    st = json.loads(f.read_text())
    st["x_agentkernel"]["files"][0]["source"] = str(secret)
    st["x_agentkernel"].pop("files_dir", None)
    f.write_text(json.dumps(st, indent=2))
    res = ak("start", "old")
    assert res.rc != 0 and "absolute" in res.stderr and "recreate" in res.stderr, res
    out = ak("exec", "old", "--", "sh", "-c", "cat /tmp/data 2>&1; true")
    assert SECRET not in out.stdout + out.stderr
