# SPDX-License-Identifier: Apache-2.0
"""agentkernel's TOML reader against the toml-test suite (Debian's golang-github-burntsushi-toml-dev
ships it) and against Python's tomllib on documents shaped like agentkernel.toml."""
import json
import math
import os
import pathlib
import re
import subprocess

import pytest

BUILD = pathlib.Path(os.environ.get("AGENTKERNEL_BUILD",
                                    pathlib.Path(__file__).resolve().parents[2] / "build"))
DUMP = BUILD / "tests" / "toml-dump"
SUITE = pathlib.Path("/usr/share/gocode/src/github.com/BurntSushi/toml/internal/toml-test/tests")

needs_suite = pytest.mark.skipif(not SUITE.is_dir(),
                                 reason="toml-test suite not installed (scripts/deps.sh installs it)")


def cases(kind):
    if not SUITE.is_dir():
        return []
    return sorted(str(p.relative_to(SUITE / kind)) for p in (SUITE / kind).rglob("*.toml"))


def dump(path):
    res = subprocess.run([str(DUMP), str(path)], capture_output=True, timeout=10)
    assert res.returncode in (0, 1), res
    return res.returncode, res.stdout.decode()


def untag(v):
    """toml-test's tagged JSON to plain values."""
    if isinstance(v, list):
        return [untag(x) for x in v]
    if isinstance(v, dict) and set(v) == {"type", "value"} and isinstance(v["type"], str):
        t, s = v["type"], v["value"]
        if t == "integer":
            return int(s)
        if t == "float":
            return float(s.replace("_", ""))
        if t == "bool":
            return s == "true"
        if t == "string":
            return s
        return ("datetime", s)
    if isinstance(v, dict):
        return {k: untag(x) for k, x in v.items()}
    return v


def same(ours, want):
    if isinstance(want, tuple):  # dates and times are kept as their text
        def norm(s):  # the suite writes fractions padded with zeros
            s = s.replace(" ", "T").replace("t", "T").replace("z", "Z")
            return re.sub(r"\.(\d*?)0+(?=\D|$)", lambda m: "." + m.group(1), s).replace(".Z", "Z")
        return isinstance(ours, str) and norm(ours) == norm(want[1])
    if isinstance(want, float):
        if math.isnan(want):
            return ours is None or (isinstance(ours, float) and math.isnan(ours))
        if math.isinf(want):
            return ours is None or ours == want
        return isinstance(ours, (int, float)) and not isinstance(ours, bool) and \
            (ours == want or math.isclose(ours, want, rel_tol=1e-15))
    if isinstance(want, bool) or isinstance(want, int):
        return type(ours) is type(want) and ours == want
    if isinstance(want, list):
        return isinstance(ours, list) and len(ours) == len(want) and \
            all(same(a, b) for a, b in zip(ours, want))
    if isinstance(want, dict):
        return isinstance(ours, dict) and set(ours) == set(want) and \
            all(same(ours[k], want[k]) for k in want)
    return ours == want


@needs_suite
@pytest.mark.parametrize("case", cases("valid"))
def test_valid(case):
    rc, out = dump(SUITE / "valid" / case)
    assert rc == 0, out
    want = untag(json.loads((SUITE / "valid" / case).with_suffix(".json").read_text()))
    # jansson writes NaN and infinities as null (JSON has neither)
    ours = json.loads(out)
    assert same(ours, want), f"\nours: {ours}\nwant: {want}"


@needs_suite
@pytest.mark.parametrize("case", cases("invalid"))
def test_invalid(case):
    rc, out = dump(SUITE / "invalid" / case)
    assert rc == 1, f"accepted an invalid document: {out[:300]}"
    assert out.startswith("error: line ") or "UTF-8" in out, out


def test_error_positions(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text('[sandbox]\nname = "x"\n\n[resources]\nvcpus = 01\n')
    rc, out = dump(f)
    assert rc == 1 and out.startswith("error: line 5, column 9:"), out
    f.write_text('a = 1\na = 2\n')
    rc, out = dump(f)
    assert rc == 1 and "line 2, column 1: duplicate key 'a'" in out, out
