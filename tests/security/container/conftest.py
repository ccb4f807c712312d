# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the hostile-container attacks: real engines (tests/engines.py), one dockerd and
one podman service for the whole package, and the CLI pointed at them. Every attack runs
against both engines."""
import os

import pytest

import engines
from conftest import STATIC_AGENT


@pytest.fixture(scope="package", params=["docker", "podman"])
def engine(request, tmp_path_factory):
    yield from engines.started(request.param, tmp_path_factory)


@pytest.fixture
def eak(ak, engine):
    """The CLI pointed at the engine (engines.cli_on): no container of the test's left behind."""
    yield from engines.cli_on(ak, engine, STATIC_AGENT)


def create(eak, name, *args):
    """A kept sandbox of the engine whose commands see SBX=name."""
    res = eak("create", name, "-B", eak.engine.name, "-i", eak.engine.image, "--no-network",
              "-e", f"SBX={name}", *args)
    assert res.rc == 0, res
    return name


def sh(eak, name, script, *args, **kw):
    """Runs script with the busybox shell in sandbox name, as the sandbox's root."""
    res = eak("exec", name, "--", "sh", "-c", script, "sh", *args, **kw)
    return res


def uuid_of(eak, name):
    return eak.state(name)["uuid"]


def host_files(top):
    """Everything below top (not following links), as the host sees it: path -> lstat."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            out[p] = os.lstat(p)
    return out
