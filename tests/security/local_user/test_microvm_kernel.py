# SPDX-License-Identifier: Apache-2.0
"""The microvm backend's minimal guest kernel (docs/backends.md, "The guest kernel") is a file
agentkernel boots as the sandbox's kernel: one another local user could write or replace would
be that user's code in every VM. So it is taken only from a directory that is root's (it and
every directory above it) and only as a regular file that is root's and written by no group or
other; otherwise refused with the reason, never booted and never silently replaced by Debian's
kernel. Observed through `doctor`'s microvm line (it names the kernel a VM would boot), with a
kernel directory made by the test (AGENTKERNEL_VM_KERNEL_DIR) and a stand-in file: no VM boots.
"""
import os
import pathlib
import shutil
import subprocess

import pytest

from conftest import ATTACKER_UID, needs_root

ROOT = pathlib.Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "build-microvm-kernel.sh"

pytestmark = [needs_root, pytest.mark.skipif(
    not shutil.which("qemu-system-x86_64") or shutil.which("firecracker"),
    reason="needs qemu-system-x86_64 (the qemu driver's doctor line)")]


def kernel_name():
    """The file name the build script gives the kernel (and agentkernel looks for)."""
    out = subprocess.run([SCRIPT, "--print-path"], capture_output=True, text=True,
                         env=dict(os.environ, AK_KERNEL_SRC="/usr/src/linux-source-6.1.tar.xz"))
    if out.returncode != 0:
        pytest.skip(f"no linux-source-6.1: {out.stderr.strip()}")
    return pathlib.Path(out.stdout.strip()).name


def microvm_line(ak, kdir, mode="minimal"):
    out = ak("doctor", env={"AGENTKERNEL_VM_KERNEL_DIR": str(kdir),
                            "AGENTKERNEL_VM_KERNEL": mode, "AGENTKERNEL_VM_ACCEL": "tcg",
                            "AGENTKERNEL_VM_DRIVER": "qemu"}).stdout
    for line in out.splitlines():
        if line.split("]", 1)[-1].split()[:1] == ["microvm"]:
            return line
    raise AssertionError(out)


@pytest.fixture
def kdir(tmp_path):
    """A root-owned 0755 kernel directory with a root-owned 0644 stand-in kernel in it."""
    d = tmp_path / "kernels"
    d.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)
    f = d / kernel_name()
    f.write_bytes(b"not a kernel, never booted here\n")
    os.chmod(f, 0o644)
    return d, f


def test_a_root_owned_kernel_is_taken(ak, kdir):
    """The control: root's file in root's directory is the kernel doctor names."""
    d, f = kdir
    line = microvm_line(ak, d)
    assert "minimal kernel" in line and f.name in line, line


def test_kernel_file_owned_by_another_user_is_refused(ak, kdir):
    """Another user's file, even with a safe mode, is refused (they could rewrite it)."""
    d, f = kdir
    os.chown(f, ATTACKER_UID, ATTACKER_UID)
    line = microvm_line(ak, d)
    assert "not root-owned" in line and "refusing" in line, line


@pytest.mark.parametrize("mode", [0o664, 0o646, 0o666])
def test_kernel_file_writable_by_others_is_refused(ak, kdir, mode):
    """Root's file that a group or everyone may write is refused."""
    d, f = kdir
    os.chmod(f, mode)
    line = microvm_line(ak, d)
    assert "writable by others" in line and "refusing" in line, line


def test_kernel_directory_of_another_user_is_refused(ak, kdir):
    """A directory another user owns lets them swap the file (rename): refused."""
    d, f = kdir
    os.chown(d, ATTACKER_UID, ATTACKER_UID)
    line = microvm_line(ak, d)
    assert "not root-owned" in line and str(d) in line, line


def test_world_writable_kernel_directory_is_refused(ak, kdir):
    """A world-writable (even sticky) kernel directory is refused: anyone could add a newer
    vmlinuz-* that the lookup would prefer."""
    d, f = kdir
    os.chmod(d, 0o1777)
    line = microvm_line(ak, d)
    assert "writable by others" in line, line


def test_parent_directory_of_another_user_is_refused(ak, tmp_path):
    """A directory above the kernel directory that another user owns lets them replace the
    whole subtree: refused."""
    parent = tmp_path / "theirs"
    parent.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)
    d = parent / "kernels"
    d.mkdir(mode=0o755)
    (d / kernel_name()).write_bytes(b"x")
    os.chown(parent, ATTACKER_UID, ATTACKER_UID)
    line = microvm_line(ak, d)
    assert "not root-owned" in line and str(parent) in line, line


def test_symlinked_kernel_is_refused(ak, kdir, tmp_path):
    """A symbolic link in the file's place (to a file anyone may write) is not followed."""
    d, f = kdir
    target = tmp_path / "elsewhere"
    target.write_bytes(b"x")
    os.chown(target, ATTACKER_UID, ATTACKER_UID)
    f.unlink()
    f.symlink_to(target)
    line = microvm_line(ak, d)
    assert "not a regular file" in line, line


def test_symlinked_kernel_directory_is_refused(ak, kdir, tmp_path):
    """The kernel directory itself as a symbolic link is refused (O_NOFOLLOW)."""
    d, f = kdir
    link = tmp_path / "link"
    link.symlink_to(d)
    line = microvm_line(ak, link)
    assert "is not a directory" in line and "minimal kernel '" not in line, line


def test_unsafe_minimal_kernel_is_not_silently_replaced_in_auto_mode(ak, kdir):
    """With no kernel asked for (auto: the minimal one when built), a minimal kernel that is
    there but unsafe is an error, not a quiet fall back to Debian's kernel."""
    d, f = kdir
    os.chmod(f, 0o666)
    line = microvm_line(ak, d, mode="")
    assert "refusing" in line and "Debian kernel" not in line, line


def test_a_kernel_of_another_config_is_not_taken(ak, kdir):
    """A kernel built from another config fragment (another hash in its name) is not the
    minimal kernel of this build: doctor says it is not built."""
    d, f = kdir
    f.rename(d / (f.name.rsplit("-", 1)[0] + "-0000000000000000"))
    line = microvm_line(ak, d)
    assert "not built" in line, line
