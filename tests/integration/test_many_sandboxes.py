# SPDX-License-Identifier: Apache-2.0
"""Many sandboxes at once (issue 18's density goal): `list` reads the records and checks which
run on several threads when there are many, and `create` remembers the highest id slot instead
of reading every record. These pin that neither changes what is listed or which slot is given."""
import json

from conftest import needs_root

pytestmark = needs_root

N = 150  # above the threshold for threads (64 per thread, on a machine with 2 cores or more)


def test_list_of_many_names_each_once_with_its_own_status_and_labels(ak):
    """Each record is listed once, and each one's status is its own (the running ones are the
    ones started, wherever they fall among the records), with filters as for a few."""
    for i in range(N):
        assert ak("create", "--no-start", f"m{i:03d}", "-l", f"k={i % 3}").rc == 0
    started = {"m007", "m074", "m149"}
    for n in started:
        assert ak("start", n).rc == 0, n
    try:
        listed = ak.list()
        assert sorted(s["name"] for s in listed) == [f"m{i:03d}" for i in range(N)]
        assert {s["name"] for s in listed if s["status"] == "running"} == started
        text = ak("list", check=True).stdout.splitlines()[1:]
        rows = {line.split()[0]: line.split()[1] for line in text}
        assert len(rows) == N
        assert {n for n, st in rows.items() if st == "running"} == started
        ones = json.loads(ak("list", "--json", "-l", "k=1", check=True).out)
        assert sorted(s["name"] for s in ones) == [f"m{i:03d}" for i in range(N) if i % 3 == 1]
        assert {s["name"] for s in ones if s["status"] == "running"} == {"m007"}
    finally:
        for n in started:
            ak("stop", n)


def test_create_gives_each_sandbox_its_own_slot_with_the_memo(ak):
    """The id slot (vsock_cid, which picks the sandbox's uid range) stays unique: after creates
    (which remember the highest), a removal, and a record that appears behind the CLI's back
    with a higher slot."""
    def cids():
        out = {}
        for f in (ak.data_dir / "sandboxes").glob("*.json"):
            s = json.loads(f.read_text())
            out[s["name"]] = s["vsock_cid"]
        return out

    for i in range(5):
        assert ak("create", "--no-start", f"c{i}").rc == 0
    assert ak("remove", "c2").rc == 0
    assert ak("create", "--no-start", "c5").rc == 0
    seen = cids()
    assert len(set(seen.values())) == len(seen), seen
    # a record copied in with a higher slot (an older tool, a restore)
    rec = json.loads((ak.data_dir / "sandboxes" / "c0.json").read_text())
    rec.update(name="copied", vsock_cid=max(seen.values()) + 10)
    rec.pop("uuid", None)
    path = ak.data_dir / "sandboxes" / "copied.json"
    path.write_text(json.dumps(rec))
    path.chmod(0o600)
    assert ak("create", "--no-start", "after").rc == 0
    seen = cids()
    assert len(set(seen.values())) == len(seen), seen
    assert seen["after"] > seen["copied"], seen
