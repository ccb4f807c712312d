#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Counts test results from meson's testlog.json files (TAP subtests count one each) and pytest
JUnit XML files, and prints the final "N passed, M failed" line CI reads."""
import json
import sys
import xml.etree.ElementTree as ET

passed = failed = skipped = 0
failures = []  # (where, name, first line of its message): printed so a CI log names them
attacks = {}  # security suite: attacker -> [passed, failed]
for path in sys.argv[1:]:
    try:
        if path.endswith(".json"):
            for line in open(path):
                t = json.loads(line)
                out = t.get("stdout") or ""
                oks = sum(1 for l in out.splitlines() if l.startswith("ok "))
                nots = sum(1 for l in out.splitlines() if l.startswith("not ok "))
                if oks or nots:
                    passed += oks
                    failed += nots
                    if t["result"] != "OK" and nots == 0:
                        failed += 1  # crashed or timed out after its last TAP line
                        failures.append((path, t.get("name", "?"), t["result"]))
                    for l in out.splitlines():
                        if l.startswith("not ok "):
                            failures.append((path, t.get("name", "?"), l))
                elif t["result"] == "OK":
                    passed += 1
                elif t["result"] == "SKIP":
                    skipped += 1
                else:
                    failed += 1
                    failures.append((path, t.get("name", "?"), t["result"]))
        else:
            root = ET.parse(path).getroot()
            for case in root.iter("testcase"):
                parts = case.get("classname", "").split(".")
                for c in case:
                    if c.tag in ("failure", "error"):
                        msg = (c.get("message") or c.text or "").strip().splitlines()
                        failures.append((path, f"{case.get('classname')}::{case.get('name')}",
                                         f"{c.tag}: {msg[0][:300] if msg else ''}"))
                if len(parts) > 2 and parts[0] == "security":
                    bad = any(c.tag in ("failure", "error") for c in case)
                    skip = any(c.tag == "skipped" for c in case)
                    if not skip:
                        attacks.setdefault(parts[1], [0, 0])[1 if bad else 0] += 1
            for suite in root.iter("testsuite"):
                tests = int(suite.get("tests", 0))
                bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
                skip = int(suite.get("skipped", 0))
                passed += tests - bad - skip
                failed += bad
                skipped += skip
    except (OSError, ValueError, ET.ParseError) as e:
        print(f"cannot read {path}: {e}", file=sys.stderr)
        failed += 1
for where, name, what in failures:
    print(f"FAILED {name} ({where}): {what}")
if attacks:
    by = ", ".join(f"{a} {p + f}" for a, (p, f) in sorted(attacks.items()))
    total = sum(p + f for p, f in attacks.values())
    bad = sum(f for _, f in attacks.values())
    print(f"security suite: {total} attack cases run ({by}), {bad} failed "
          f"(counted once per build that ran them)")
if skipped:
    print(f"({skipped} skipped)")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
