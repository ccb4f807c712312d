# SPDX-License-Identifier: Apache-2.0
"""A hostile sandbox goes after its masked directories (/proc/acpi, /proc/driver, a permissive
sandbox's home credential directories).

A mask is an empty read-only directory over what the sandbox must not see. It is not a
filesystem of its own (each superblock costs the host a shrinker slot in every memory cgroup,
issue 18's density goal): every mask is a read-only copy of one directory of the sandbox's own
root tmpfs, the /proc directory that the sandbox's /proc covers (src/runtime/runtime.c,
mask_dir). What the attacks try: to write, create, rename into or change a mask; to make one
writable again; to reach the directory it copies (through every place the sandbox may write,
or under /proc); to learn anything of the host from its mountinfo entry. What must hold: each
mask stays empty and read-only, and shows only the sandbox's own root filesystem.
"""
import json
import os
import pathlib

import pytest

from conftest import needs_root

pytestmark = needs_root

MASKS = ("/proc/acpi", "/proc/driver")


def sh(ak, name, script):
    return ak("exec", name, "--", "sh", "-c", script)


def present(ak, name):
    """The masks this host has (a directory /proc lacks is not masked)."""
    out = sh(ak, name, "cat /proc/self/mountinfo").stdout.splitlines()
    points = {l.split()[4] for l in out}
    return [m for m in MASKS if m in points]


def test_masks_are_empty_and_refuse_every_write(ak, sandbox):
    """The sandbox's root tries to create a file, a directory, a fifo, a symlink in each mask,
    to rename a file of its own into one, to chmod and chown it. Must hold: every attempt fails
    and the mask is still empty."""
    masks = present(ak, sandbox)
    assert masks, "no masked directory on this host"
    for m in masks:
        res = sh(ak, sandbox,
                 f"echo x > /tmp/f; r=0; "
                 f"touch {m}/a 2>/dev/null && r=1; mkdir {m}/d 2>/dev/null && r=2; "
                 f"mkfifo {m}/p 2>/dev/null && r=3; ln -s /etc {m}/l 2>/dev/null && r=4; "
                 f"mv /tmp/f {m}/f 2>/dev/null && r=5; chmod 777 {m} 2>/dev/null && r=6; "
                 f"chown 1000 {m} 2>/dev/null && r=7; echo r=$r; ls -A {m} | wc -l; "
                 f"stat -c %a {m}")
        assert res.rc == 0, res
        assert res.stdout.split() == ["r=0", "0", "555"], (m, res)


def test_masks_cannot_be_made_writable_or_removed(ak, sandbox):
    """The sandbox's root remounts a mask read-write, mounts a tmpfs over it, unmounts it.
    Must hold: all refused (no CAP_SYS_ADMIN), the mask still empty and read-only."""
    for m in present(ak, sandbox):
        res = sh(ak, sandbox,
                 f"mount -o remount,bind,rw {m} 2>/dev/null && echo remounted; "
                 f"mount -t tmpfs t {m} 2>/dev/null && echo mounted; "
                 f"umount -l {m} 2>/dev/null && echo unmounted; "
                 f"touch {m}/a 2>/dev/null && echo wrote; ls -A {m} | wc -l")
        assert res.stdout.split() == ["0"], (m, res)


def test_writes_everywhere_never_reach_a_mask(ak, sandbox):
    """A mask copies a directory of the sandbox's root filesystem: the sandbox writes a file
    named after it into every place it may write (/tmp, /run, /var, /root, /dev/shm, /dev, its
    workdir) and tries "/proc/../proc". Must hold: the masks stay empty."""
    masks = present(ak, sandbox)
    res = sh(ak, sandbox,
             "for d in /tmp /run /var /root /dev/shm /dev /; do "
             "mkdir -p $d/proc 2>/dev/null; touch $d/proc/acpi-canary $d/acpi-canary "
             "2>/dev/null; done; mkdir /proc/../proc/x 2>/dev/null; "
             + "; ".join(f"ls -A {m}" for m in masks) + "; echo end")
    assert res.stdout.split() == ["end"], res


def test_mask_mountinfo_shows_only_the_sandbox_root(ak, sandbox):
    """Each mask's mountinfo entry: read-only, nosuid, nodev, noexec, on the same filesystem as
    the sandbox's '/' (its own root tmpfs: nothing of the host, no filesystem of its own), its
    root the covered /proc directory."""
    lines = sh(ak, sandbox, "cat /proc/self/mountinfo").stdout.splitlines()
    root = [l.split() for l in lines if l.split()[4] == "/"]
    assert len(root) == 1, lines
    for m in present(ak, sandbox):
        f = [l.split() for l in lines if l.split()[4] == m]
        assert len(f) == 1, (m, lines)
        f = f[0]
        assert f[2] == root[0][2], (f, root)  # the root tmpfs's device
        assert f[3] == "/proc", f
        assert set(f[5].split(",")) >= {"ro", "nosuid", "nodev", "noexec"}, f
        assert f[f.index("-") + 1] == "tmpfs", f


def own_superblocks(ak, name):
    """The filesystems a sandbox holds of its own: the devices in its agent's mountinfo that the
    host's has not (its binds of the host are the host's), and its agent's state directory."""
    pid = json.loads((ak.data_dir / "run" / name / "runtime.json").read_text())["pid"]
    host = {l.split()[2] for l in open("/proc/self/mountinfo")}
    devs = {l.split()[2] for l in open(f"/proc/{pid}/mountinfo")} - host
    st = os.stat(f"/proc/{pid}/fd/5")
    return devs | {f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"}


def test_a_sandbox_holds_six_filesystems(ak, sandbox):
    """Density (issue 18): a default sandbox mounts its root tmpfs, /dev, devpts, its disk,
    proc, and keeps its agent's state tmpfs: 6 (7 superblocks with its IPC namespace's
    mqueue), not one more per mask. Fails on the code before masks copied the root's /proc:
    8."""
    assert len(own_superblocks(ak, sandbox)) == 6, own_superblocks(ak, sandbox)


@pytest.mark.parametrize("secret", [".ssh", ".aws"])
def test_home_credential_masks_are_empty_copies(ak, tmp_path, secret):
    """Permissive shows the home with its credential directories masked: the sandbox lists and
    writes into one. Must hold: empty, read-only, the host's canary unseen and untouched."""
    home = tmp_path / "home"
    (home / secret).mkdir(parents=True, mode=0o700)
    (home / secret / "canary").write_text("CANARY")
    for p in (home, tmp_path, tmp_path.parent):  # a home the sandbox's ids may enter
        os.chmod(p, 0o755)
    ak.env["HOME"] = str(home)
    res = ak("run", "--profile", "permissive", "--no-network", "--", "sh", "-c",
             f"ls -A /home/user/{secret} | wc -l; touch /home/user/{secret}/x 2>/dev/null "
             f"&& echo wrote; grep -c ' /home/user/{secret} ' /proc/self/mountinfo")
    assert res.rc == 0, res
    assert res.stdout.split() == ["0", "1"], res
    assert (home / secret / "canary").read_text() == "CANARY"
    assert sorted(p.name for p in (home / secret).iterdir()) == ["canary"]
