# SPDX-License-Identifier: Apache-2.0
"""`setup [-y]` (cli/cmd-setup.c): first-run preparation, idempotent; without a terminal and
without -y it only reports (changes nothing); doctor's checks after."""
import pytest

from conftest import needs_root


@needs_root
def test_report_only_without_terminal_or_yes(ak):
    assert not ak.data_dir.exists()
    res = ak("setup", input=b"")
    assert res.rc == 0, res
    assert "would: create the data directory" in res.stdout and "Nothing was changed" in res.stdout
    assert not ak.data_dir.exists()


@needs_root
def test_yes_prepares_then_is_idempotent(ak):
    res = ak("setup", "-y", "--keep-cgroups")  # a test leaves the host's mounts alone
    assert res.rc == 0, res
    assert "created the data directory" in res.stdout and "agentkernel is set up" in res.stdout
    assert "[ok     ] sandbox" in res.stdout  # doctor's checks ran, a test sandbox included
    assert (ak.data_dir.stat().st_mode & 0o777) == 0o700
    res = ak("setup", "-y", "-q", "--keep-cgroups")
    assert res.rc == 0 and "already set up" in res.stdout and "created" not in res.stdout, res
    res = ak("setup", input=b"")  # nothing to do: the checks, and no change
    assert res.rc == 0 and "already set up" in res.stdout, res


def test_unknown_backend_is_a_usage_error(ak):
    res = ak("setup", "-y", "-B", "nosuch")
    assert res.rc == 2, res
    assert not ak.data_dir.exists()


def _favored():
    with open("/proc/mounts") as f:
        return any(ln.split()[2] in ("cgroup", "cgroup2") and
                   "favordynmods" in ln.split()[3].split(",") for ln in f)


@needs_root
def test_cgroup_joins_step(ak):
    """native as root: where no cgroup hierarchy has favordynmods, setup offers the remount (a
    report without -y changes nothing) and --keep-cgroups leaves it out; where one has it, setup
    says joins are favored and has nothing to do for it."""
    assert ak("setup", "-y", "--keep-cgroups", "-q").rc == 0  # the directories, nothing else
    before = _favored()
    res = ak("setup", "-B", "native", "-q", input=b"")
    assert res.rc == 0, res
    if before:
        assert "cgroup joins: favored (favordynmods)" in res.stdout, res
        assert "already set up" in res.stdout, res
    else:
        assert "would: favor cgroup joins host-wide" in res.stdout, res
        assert "Nothing was changed" in res.stdout and not _favored(), res
        res = ak("setup", "-B", "native", "-q", "--keep-cgroups", input=b"")
        assert res.rc == 0 and "favor cgroup joins" not in res.stdout, res
    assert _favored() == before
