# SPDX-License-Identifier: Apache-2.0
"""The `host` image's /etc comes from a shared, read-only snapshot (runtime/etc-snapshot.c).

What must hold: a sandbox sees exactly what the per-start copy showed; a change to a host file
shows in the next sandbox; a snapshot a running sandbox uses is never removed, however many
newer ones are made; unused ones are pruned; no sandbox can change a snapshot others share.
"""
import os
import pathlib
import shutil
import time

import pytest

from conftest import needs_root, snapshot_cache

ISSUE = pathlib.Path("/etc/issue")  # on the allow-list, harmless to rewrite for a moment


def snapshots(ak):
    d = snapshot_cache(ak.data_dir)
    return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if d.exists() else []


def run(ak, cmd, **kw):
    return ak("run", "--no-network", "--", "sh", "-c", cmd, **kw)


@pytest.fixture
def host_issue():
    """Lets a test rewrite /etc/issue; puts the original back (content and times)."""
    if not ISSUE.is_file():
        pytest.skip("no /etc/issue on this host")
    st = ISSUE.stat()
    original = ISSUE.read_bytes()
    yield ISSUE
    ISSUE.write_bytes(original)
    os.utime(ISSUE, ns=(st.st_atime_ns, st.st_mtime_ns))


LISTING = "cd /etc && for f in * ; do stat -c '%n %F %a %u %s' \"$f\"; done; " \
          "cat passwd group hostname hosts | md5sum; readlink mtab os-release localtime"


@needs_root
def test_snapshot_shows_what_the_copy_showed(ak):
    snap = run(ak, LISTING)
    inline = run(ak, LISTING, env={"AGENTKERNEL_ETC_SNAPSHOTS": "0"})
    assert snap.rc == 0 and inline.rc == 0, (snap, inline)
    # directories are bound from the host in both; their sizes differ, nothing else may
    def strip(out):
        return [l for l in out.splitlines()]
    assert strip(snap.stdout) == strip(inline.stdout)
    assert len(snapshots(ak)) == 1
    # a second start reuses it
    assert run(ak, "true").rc == 0
    assert len(snapshots(ak)) == 1


@needs_root
def test_host_change_shows_in_the_next_sandbox(ak, host_issue):
    host_issue.write_text("first version\n")
    assert run(ak, "cat /etc/issue").stdout == "first version\n"
    host_issue.write_text("second version, same size?\n")
    assert run(ak, "cat /etc/issue").stdout == "second version, same size?\n"
    # same length, same mtime: the inode's ctime still moves, and so does the snapshot
    st = host_issue.stat()
    host_issue.write_text("third version, same size??\n")
    os.utime(host_issue, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert run(ak, "cat /etc/issue").stdout == "third version, same size??\n"


@needs_root
def test_snapshot_in_use_survives_pruning(ak, host_issue):
    host_issue.write_text("kept sandbox's version\n")
    assert ak("create", "old", "--no-network").rc == 0
    used = snapshots(ak)
    assert len(used) == 1
    for i in range(7):  # more new snapshots than are kept unused
        host_issue.write_text(f"version {i}\n")
        assert run(ak, "cat /etc/issue").stdout == f"version {i}\n"
        time.sleep(0.01)
    now = snapshots(ak)
    assert used[0] in now, "a snapshot a running sandbox uses was removed"
    assert len(now) <= 1 + 1 + 4, now  # the used one, the newest, and the kept unused ones
    res = ak("exec", "old", "--", "cat", "/etc/issue")
    assert res.stdout == "kept sandbox's version\n", res
    # once its sandbox is gone, the old snapshot may go with the next prune
    assert ak("remove", "old").rc == 0
    for i in range(6):
        host_issue.write_text(f"later {i}\n")
        assert run(ak, "true").rc == 0
        time.sleep(0.01)
    assert used[0] not in snapshots(ak)


@needs_root
@pytest.mark.parametrize("profile", ["moderate", "permissive"])
def test_sandbox_cannot_change_the_shared_snapshot(ak, profile):
    assert run(ak, "true").rc == 0
    snap = snapshot_cache(ak.data_dir) / snapshots(ak)[0]
    before = {p.name: p.read_bytes() for p in snap.iterdir() if p.is_file()}
    attack = ("echo pwned >> /etc/hosts; echo pwned > /etc/new; rm -f /etc/passwd; "
              "chmod 777 /etc/services; mount -o remount,rw /etc; mount -o remount,rw,bind /etc; "
              "echo pwned >> /etc/hosts; ln -s / /etc/escape; cat /etc/hosts")
    res = ak("run", "--no-network", "--profile", profile, "--", "sh", "-c", attack)
    assert "pwned" not in res.stdout
    after = {p.name: p.read_bytes() for p in snap.iterdir() if p.is_file()}
    assert after == before
    assert not (snap / "new").exists() and not (snap / "escape").exists()
    assert oct(os.stat(snap / "services").st_mode & 0o777) == oct(0o644) or \
        not (snap / "services").exists()
    # and the next sandbox sees the original
    assert "pwned" not in run(ak, "cat /etc/hosts").stdout


@needs_root
def test_builders_leftovers_are_removed(ak, host_issue):
    assert run(ak, "true").rc == 0
    root = snapshot_cache(ak.data_dir)
    stale = root / ".tmp-deadbeef-00000000"
    stale.mkdir()
    (stale / "passwd").write_text("half written\n")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    host_issue.write_text("a new snapshot prunes\n")
    assert run(ak, "cat /etc/issue").stdout == "a new snapshot prunes\n"
    assert not stale.exists()


@needs_root
def test_unusable_snapshot_dir_falls_back_to_copies(ak):
    # a file where the snapshots should be (the runtime directory's cache, and the data
    # directory's, its fallback): starts still work, /etc is filled per start
    cache = snapshot_cache(ak.data_dir)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text("not a directory\n")
    (ak.data_dir / "cache").mkdir(parents=True, exist_ok=True)
    (ak.data_dir / "cache" / "etc").write_text("not a directory\n")
    res = run(ak, "cat /etc/hostname; test -s /etc/ld.so.cache && echo cache-ok")
    assert res.rc == 0, res
    assert res.stdout == "agentkernel\ncache-ok\n"


@needs_root
def test_snapshot_names_are_keyed(ak, tmp_path):
    """A snapshot's name is what a sandbox reads in its mount table: it is keyed with a secret of
    its cache, so it tells nothing about the host's /etc (its files' inodes and times) and two
    caches name the same /etc differently."""
    from conftest import Ak
    other = Ak(tmp_path / "other-data")
    try:
        assert run(ak, "true").rc == 0 and run(other, "true").rc == 0
        mine, theirs = snapshots(ak), snapshots(other)
        assert len(mine) == 1 and len(theirs) == 1 and mine != theirs
        key = snapshot_cache(ak.data_dir) / "key"
        st = os.stat(key)
        assert st.st_size == 32 and st.st_uid == 0 and st.st_mode & 0o077 == 0
    finally:
        shutil.rmtree(snapshot_cache(other.data_dir).parent, ignore_errors=True)


@needs_root
def test_deleted_data_directory_leaves_no_runtime_files(ak, tmp_path):
    """The runtime directory of a data directory (its /etc snapshots, proxy sockets, in /run: a
    tmpfs on most hosts) records which data directory it is; once that is deleted, the first
    use of another data directory (and `gc`) removes it, but never what a sandbox or a proxy
    still uses: a held snapshot lock or proxy lock keeps it."""
    import fcntl
    from conftest import Ak
    gone = [Ak(tmp_path / f"gone-{i}") for i in range(3)]
    rt = [snapshot_cache(g.data_dir).parent for g in gone]
    try:
        for g in gone:
            assert run(g, "true").rc == 0
        for g, r in zip(gone, rt):
            rec = r / "data-dir"
            assert rec.read_text() == os.path.realpath(g.data_dir)
            assert os.stat(rec).st_mode & 0o077 == 0
        # gone[1]: a sandbox still uses its snapshot; gone[2]: a proxy still runs there
        [snap] = snapshots(gone[1])
        held = open(rt[1] / "etc" / f"{snap}.lock")
        fcntl.flock(held, fcntl.LOCK_SH)
        (rt[2] / "proxy").mkdir(mode=0o700)
        proxy_lock = open(rt[2] / "proxy" / "lock", "w")
        os.chmod(proxy_lock.name, 0o600)
        fcntl.flock(proxy_lock, fcntl.LOCK_EX)
        for g in gone:
            shutil.rmtree(g.data_dir)
        assert run(ak, "true").rc == 0  # a new data directory's first use
        assert not rt[0].exists()
        assert (rt[1] / "etc" / snap).is_dir() and (rt[2] / "proxy" / "lock").exists()
        # the data directory in use is never a candidate
        assert (snapshot_cache(ak.data_dir).parent / "data-dir").exists()
        held.close()
        proxy_lock.close()
        assert ak("gc").rc == 0
        assert not rt[1].exists() and not rt[2].exists()
        assert snapshots(ak)  # ours stays
    finally:
        for r in rt:
            shutil.rmtree(r, ignore_errors=True)


@needs_root
def test_runtime_sweep_acts_only_on_its_own_records(ak, tmp_path):
    """What the sweep removes is only ever a runtime directory whose record names, under the
    directory's own hash, a data directory that is gone: a record copied into another id's
    directory (naming a deleted path whose hash is not that id), a directory holding something
    the sweep does not know, and one whose record names a path that exists all stay."""
    import hashlib
    top = snapshot_cache(ak.data_dir).parent.parent
    gone = str(tmp_path / "never-made")

    def planted(name, record, extra=None):
        d = top / name
        d.mkdir(mode=0o700)
        (d / "data-dir").write_text(record)
        os.chmod(d / "data-dir", 0o600)
        if extra:
            (d / extra).mkdir(mode=0o700)
        return d

    top.mkdir(mode=0o700, exist_ok=True)
    own_id = hashlib.sha256(gone.encode()).hexdigest()[:16]
    wrong_id = "0" * 16  # not own_id's (a chance of 2^-64)
    live = str(tmp_path)
    dirs = [planted(wrong_id, gone),                          # not this directory's record
            planted(own_id, gone, extra="something-else"),    # holds what the sweep does not know
            planted(hashlib.sha256(live.encode()).hexdigest()[:16], live)]  # the path exists
    try:
        assert ak("gc").rc == 0
        for d in dirs:
            assert (d / "data-dir").exists(), d
        assert (dirs[1] / "something-else").is_dir()
        # the same, emptied of what it did not know: now it goes
        (dirs[1] / "something-else").rmdir()
        assert ak("gc").rc == 0
        assert not dirs[1].exists()
    finally:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
