# SPDX-License-Identifier: Apache-2.0
"""`export NAME` (upstream's `sandbox export`): a tar of the sandbox's own files, made inside it;
bounded, never written through a link, and nothing written when it fails."""
import os
import tarfile

from conftest import needs_root

pytestmark = needs_root


def test_export_holds_the_sandboxs_files_and_not_the_hosts(ak, sandbox, tmp_path):
    assert ak("exec", sandbox, "--", "sh", "-c", "echo mine > /root/f; mkdir -p /var/x").rc == 0
    out = tmp_path / "box.tar"
    res = ak("export", sandbox, "-o", str(out))
    assert res.rc == 0 and "Exported" in res.stdout, res
    with tarfile.open(out) as t:
        names = t.getnames()
        assert t.extractfile("./root/f").read() == b"mine\n"
    assert "./var/x" in names
    assert not any(n.startswith(("./usr/", "./proc/", "./etc/")) for n in names), names[:20]


def test_export_is_bounded_and_leaves_nothing_when_too_big(ak, sandbox, tmp_path):
    assert ak("exec", sandbox, "--", "sh", "-c", "head -c 200000 /dev/urandom > /root/big").rc == 0
    out = tmp_path / "small.tar"
    res = ak("export", sandbox, "-o", str(out), "--max-size", "64K")
    assert res.rc == 1 and "larger than --max-size" in res.stderr, res
    assert not out.exists() and [p for p in os.listdir(tmp_path) if p != "data"] == []


def test_export_replaces_a_planted_link_instead_of_following_it(ak, sandbox, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    out = tmp_path / "out.tar"
    out.symlink_to(victim)
    assert ak("export", sandbox, "-o", str(out)).rc == 0
    assert victim.read_text() == "keep" and not out.is_symlink()
