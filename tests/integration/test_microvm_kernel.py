# SPDX-License-Identifier: Apache-2.0
"""The microvm backend's minimal guest kernel (docs/backends.md, "The guest kernel").

Building it takes many minutes on a small machine, so CI does not: what CI checks is the config
(scripts/build-microvm-kernel.sh --check-config: every line of microvm/kernel.config survives
`make olddefconfig` on allnoconfig of Debian's linux-source-6.1, nothing is a module; ~30 s),
that the script and agentkernel agree on the kernel's file name (source version and the
fragment's hash), and what `doctor` says. Where the kernel has been built on this machine, a VM
boots with it: its own kernel, no modules anywhere.
"""
import os
import pathlib
import shutil
import subprocess

import pytest

import oci
from conftest import STATIC_AGENT, Ak, is_root

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build-microvm-kernel.sh"
SOURCE = pathlib.Path("/usr/src/linux-source-6.1.tar.xz")

needs_source = pytest.mark.skipif(not SOURCE.exists(),
                                  reason="needs linux-source-6.1 (scripts/deps.sh)")


def built_kernel():
    out = subprocess.run([SCRIPT, "--print-path"], capture_output=True, text=True)
    p = pathlib.Path(out.stdout.strip()) if out.returncode == 0 else None
    return p if p and p.is_file() else None


@needs_source
def test_config_fragment_survives_olddefconfig(tmp_path):
    """Every CONFIG_ line of microvm/kernel.config is in the final .config as written (a symbol
    renamed, misspelt or with an unmet dependency would vanish silently), and nothing is a
    module: the initramfs of the minimal kernel carries none."""
    res = subprocess.run([SCRIPT, "--check-config"], capture_output=True, text=True,
                         env=dict(os.environ, AK_KERNEL_WORK=str(tmp_path)), timeout=600)
    assert res.returncode == 0, res.stderr
    assert "kernel config ok" in res.stdout, res.stdout
    assert list(tmp_path.iterdir()) == []  # its work tree removed


@needs_source
def test_a_lost_symbol_fails_the_check(tmp_path):
    """The check itself: a fragment with a symbol that cannot survive (a misspelt one) fails
    with the symbol named."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    (root / "microvm").mkdir()
    shutil.copy(SCRIPT, root / "scripts")
    frag = (ROOT / "microvm" / "kernel.config").read_text()
    (root / "microvm" / "kernel.config").write_text(frag + "CONFIG_VIRTIO_MMIO_TYPO=y\n")
    work = tmp_path / "work"
    work.mkdir()
    res = subprocess.run([root / "scripts" / "build-microvm-kernel.sh", "--check-config"],
                         capture_output=True, text=True,
                         env=dict(os.environ, AK_KERNEL_WORK=str(work)), timeout=600)
    assert res.returncode != 0 and "CONFIG_VIRTIO_MMIO_TYPO=y" in res.stderr, res


def test_script_and_agentkernel_agree_on_the_kernel_name(tmp_path):
    """agentkernel looks for the file the script makes: vmlinuz-<source version>-<hash of the
    fragment>, the hash embedded at build time."""
    out = subprocess.run([SCRIPT, "--print-path"], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(out.stderr.strip())
    suffix = "-" + pathlib.Path(out.stdout.strip()).name.rsplit("-", 1)[1]
    kdir = tmp_path / "kernels"
    kdir.mkdir(mode=0o755)
    os.chmod(tmp_path, 0o755)
    ak = Ak(tmp_path / "data")
    res = ak("doctor", env={"AGENTKERNEL_VM_KERNEL": "minimal", "AGENTKERNEL_VM_ACCEL": "tcg",
                            "AGENTKERNEL_VM_DRIVER": "qemu",
                            "AGENTKERNEL_VM_KERNEL_DIR": str(kdir)})
    assert f"vmlinuz-*{suffix}'" in res.stdout and "not built" in res.stdout, res.stdout


_MISSING = [what for what, ok in (
    ("root", is_root()),
    ("qemu-system-x86_64", shutil.which("qemu-system-x86_64")),
    ("the minimal kernel (scripts/build-microvm-kernel.sh)", built_kernel()),
    ("mkfs.erofs", shutil.which("mkfs.erofs")),
    ("umoci, skopeo, docker-registry", oci.tools_present()),
    ("a static agent", STATIC_AGENT),
) if not ok]


@pytest.mark.skipif(bool(_MISSING), reason="needs " + ", ".join(_MISSING))
def test_a_vm_boots_the_minimal_kernel_without_modules(tmp_path):
    """With AGENTKERNEL_VM_KERNEL=minimal a VM runs that kernel (not Debian's, not the host's),
    its initramfs holds no module (the cached cpio has no .ko) and the kernel has no module
    support at all (no /proc/modules)."""
    reg = oci.Registry(tmp_path / "registry")
    try:
        layout = oci.Layout(tmp_path / "layout")
        oci.build_base(layout, "base", tmp_path / "bundles")
        ref = reg.push(layout.path, "base", "test/base:1")
        ak = Ak(tmp_path / "data", env={"AGENTKERNEL_VM_KERNEL": "minimal",
                                        "AGENTKERNEL_AGENT": STATIC_AGENT})
        reg.configure(ak.env)
        res = ak("run", "-B", "microvm", "--no-network", "-i", ref, "--", "sh", "-c",
                 "cat /proc/version; test -e /proc/modules && echo MODULES || echo nomodules",
                 timeout=300)
        assert res.rc == 0, res
        version = res.stdout.splitlines()[0]
        assert version != pathlib.Path("/proc/version").read_text().strip()
        assert "cloud-amd64" not in version and "Debian" in version, version
        assert res.stdout.splitlines()[1] == "nomodules", res
        cpios = list((ak.data_dir / "cache" / "microvm").glob("initrd-minimal-*.cpio"))
        assert len(cpios) == 1, list((ak.data_dir / "cache" / "microvm").iterdir())
        assert b".ko\0" not in cpios[0].read_bytes()
    finally:
        reg.stop()
