# SPDX-License-Identifier: Apache-2.0
"""Fixtures of the hostile-container attacks: real engines (tests/engines.py), one dockerd and
one podman service for the whole package, and the CLI pointed at them. Every attack runs
against both engines."""
import os
import time

import pytest

import engines
from conftest import STATIC_AGENT


@pytest.fixture(scope="package", params=["docker", "podman"])
def engine(request, tmp_path_factory):
    if not engines.available(request.param):
        pytest.skip(f"{request.param} is not installed")
    cls = engines.Docker if request.param == "docker" else engines.Podman
    e = cls(tmp_path_factory.mktemp(request.param))
    yield e
    e.stop()


@pytest.fixture
def eak(ak, engine):
    """The CLI pointed at the engine, with the static agent (it runs inside the containers).
    Afterwards: no container of the test's left behind."""
    ak.env.update(engine.env)
    ak.env["AGENTKERNEL_AGENT"] = STATIC_AGENT
    ak.engine = engine
    before = set(engine.containers())
    yield ak
    for s in ak.list():
        ak("remove", s["name"])
    ak("pool", "clear")
    deadline = time.time() + 20  # --fast runs remove their container in the background
    while set(engine.containers()) != before and time.time() < deadline:
        time.sleep(0.2)
    assert set(engine.containers()) == before, "containers left behind"


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
