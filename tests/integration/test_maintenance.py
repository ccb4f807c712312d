# SPDX-License-Identifier: Apache-2.0
"""TTL, gc, lifecycle policies, archive/recover, resize and metadata updates through the CLI."""
import datetime
import hashlib
import json
import pathlib
import time

import pytest

from conftest import needs_root


def parse(ts):
    return datetime.datetime.fromisoformat(ts[:26] + ts[-6:] if "." in ts else ts)


def tree_digest(root):
    """Every file under the data directory except the audit log, with contents."""
    h = hashlib.sha256()
    for p in sorted(pathlib.Path(root).rglob("*")):
        if p.is_file() and "audit" not in p.name:
            h.update(str(p).encode() + p.read_bytes())
    return h.hexdigest()


def set_field(ak, name, **fields):
    st = ak.state(name)
    st.update(fields)
    ak.state_file(name).write_text(json.dumps(st, indent=2))


def hours_ago(h):
    t = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=h)
    return t.isoformat()


def test_extend_ttl_accepts_days_and_gives_sandboxes_without_ttl_one(ak):
    """extend-ttl adds to the current expiry; a sandbox without a TTL gets one from now
    (upstream's behaviour, issue 17 item 7); bad durations are usage errors."""
    assert ak("create", "t", "--no-start", "--ttl", "1h").rc == 0
    before = parse(ak.state("t")["expires_at"])
    res = ak("extend-ttl", "t", "--by", "1d2h")
    assert res.rc == 0, res
    after = parse(ak.state("t")["expires_at"])
    assert abs((after - before).total_seconds() - 26 * 3600) < 5
    assert ak.state("t")["ttl_seconds"] >= 27 * 3600 - 5
    assert ak("create", "forever", "--no-start").rc == 0
    assert ak.state("forever").get("expires_at") is None
    res = ak("extend-ttl", "forever", "--by", "2h")
    assert res.rc == 0 and "now expires at" in res.stdout, res
    exp = parse(ak.state("forever")["expires_at"])
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((exp - now).total_seconds() - 2 * 3600) < 30
    assert ak("extend-ttl", "t", "--by", "0").rc == 2
    assert ak("extend-ttl", "t", "--by", "soon").rc == 2


def test_gc_with_labels_removes_only_expired_matches(ak):
    for name, label in (("x1", "a"), ("x2", "b"), ("live", "a")):
        assert ak("create", name, "--no-start", "-l", f"team={label}",
                  *(["--ttl", "1"] if name != "live" else [])).rc == 0
    time.sleep(1.2)
    res = ak("gc", "--dry-run", "-l", "team=a")
    assert res.rc == 0 and res.stdout == "Would remove x1\n", res
    assert ak.names() == ["live", "x1", "x2"]
    assert ak("gc", "-l", "team=a").stdout == "Removed x1\n"
    assert ak.names() == ["live", "x2"]
    assert ak("gc").stdout == "Removed x2\n"
    assert ak.names() == ["live"]


def test_reconcile_dry_run_changes_nothing_on_disk(ak):
    assert ak("create", "idle", "--no-network").rc == 0
    assert ak("update", "idle", "--auto-stop", "1m", "--auto-archive", "2h").rc == 0
    set_field(ak, "idle", last_activity_at=hours_ago(3))
    digest = tree_digest(ak.data_dir)
    res = ak("reconcile", "--dry-run", "--json")
    assert res.rc == 0, res
    out = json.loads(res.out)
    assert out["dry_run"] is True and out["archived"] == ["idle"]
    assert out["actions"][0]["action"] == "archive"
    assert out["actions"][0]["reason"].endswith("(threshold=7200s)")
    assert tree_digest(ak.data_dir) == digest
    assert json.loads(ak("info", "--json", "idle").out)["status"] == "running"


def test_archive_refuses_start_until_recovered(ak):
    assert ak("create", "arc", "--no-network").rc == 0
    assert ak("update", "arc", "--auto-archive", "1h").rc == 0
    set_field(ak, "arc", last_activity_at=hours_ago(2))
    res = ak("reconcile")
    assert res.rc == 0 and "archive" in res.stdout, res
    info = json.loads(ak("info", "--json", "arc").out)
    assert info["status"] == "archived"
    res = ak("start", "arc")
    assert res.rc == 1 and "archived" in res.stderr and "recover" in res.stderr
    assert ak("recover", "arc").rc == 0
    assert ak("start", "arc").rc == 0
    assert ak("exec", "arc", "--", "true").rc == 0
    st = ak.state("arc")
    assert st.get("archived_at") is None and st.get("archived_reason") is None


def test_reconcile_stops_then_deletes(ak):
    assert ak("create", "old", "--no-network").rc == 0
    assert ak("update", "old", "--auto-stop", "10s").rc == 0
    set_field(ak, "old", last_activity_at=hours_ago(1))
    out = json.loads(ak("reconcile", "--json").out)
    assert out["stopped"] == ["old"]
    assert json.loads(ak("info", "--json", "old").out)["status"] == "stopped"
    assert ak("update", "old", "--auto-delete", "1m").rc == 0
    set_field(ak, "old", archived_at=hours_ago(1), archived_reason="stale")
    out = json.loads(ak("reconcile", "--json").out)
    assert out["removed"] == ["old"]
    assert ak.names() == []


def test_activity_is_touched_by_exec_and_files(ak, sandbox):
    for op in (("exec", sandbox, "--", "true"), ("cp", "-", f"{sandbox}:/tmp/x"),
               ("cp", f"{sandbox}:/tmp/x", "-"), ("exec", sandbox, "-d", "--", "true")):
        set_field(ak, sandbox, last_activity_at="2026-01-01T00:00:00Z")
        assert ak(*op, input=b"x").rc == 0
        assert ak.state(sandbox)["last_activity_at"] != "2026-01-01T00:00:00Z", op


def mem_limit(uuid):
    for p in (f"/sys/fs/cgroup/memory/agentkernel/{uuid}/memory.limit_in_bytes",
              f"/sys/fs/cgroup/agentkernel/{uuid}/memory.max"):
        try:
            return int(pathlib.Path(p).read_text())
        except FileNotFoundError:
            continue
    return None


@needs_root
def test_resize_running_native_sandbox_in_place(ak, sandbox):
    uuid = ak.state(sandbox)["uuid"]
    bg = json.loads(ak("exec", sandbox, "-d", "--", "sleep", "60").out)
    assert mem_limit(uuid) == 512 << 20
    res = ak("resize", sandbox, "--memory", "300", "--cpus", "2")
    assert res.rc == 0 and "in place" in res.stdout, res
    assert mem_limit(uuid) == 300 << 20
    st = ak.state(sandbox)
    assert st["memory_mb"] == 300 and st["vcpus"] == 2 and st["uuid"] == uuid
    # in place: what ran before still runs
    listed = json.loads(ak("exec-list", "--json", sandbox).out)
    assert [d["status"] for d in listed if d["id"] == bg["id"]] == ["running"]
    assert ak("resize", sandbox, "--memory", "8").rc == 2


def test_update_labels_description_lifecycle(ak):
    assert ak("create", "u", "--no-start", "-l", "a=1").rc == 0
    assert ak("update", "u", "-l", "b=2", "--description", "hello").rc == 0
    st = ak.state("u")
    assert st["labels"] == {"b": "2"} and st["description"] == "hello"
    assert ak("update", "u", "--clear-labels", "--clear-description").rc == 0
    st = ak.state("u")
    assert not st.get("labels") and st.get("description") is None
    assert ak("update", "u", "--auto-stop", "5m", "--auto-delete", "1d").rc == 0
    assert ak.state("u")["lifecycle_policy"] == {"auto_stop_after_seconds": 300,
                                                 "auto_delete_after_seconds": 86400}
    assert ak("update", "u", "--no-lifecycle").rc == 0
    assert ak.state("u").get("lifecycle_policy") is None
    assert ak("update", "u", "-l", "bad key=x").rc == 2
    assert ak("update", "nosuch", "--description", "x").rc == 1
    assert ak("update", "u").rc == 2


@pytest.mark.parametrize("verb", ["extend-ttl", "archive", "recover", "resize", "update"])
def test_help_of_one_sandbox_verbs_reports_no_success(ak, verb):
    """`VERB --help` prints the help and nothing else: it used to go on to report success for a
    sandbox named '(null)' (or uninitialised memory) (issue 17, item 7)."""
    res = ak(verb, "--help")
    assert res.rc == 0 and "Usage:" in res.stdout, res
    for word in ("(null)", "Archived", "Recovered", "Resized", "now expires", "Updated"):
        assert word not in res.stdout + res.stderr, res


def test_clean_removes_what_is_not_running_and_with_force_the_rest(ak):
    """`clean` (upstream's): stopped sandboxes go, running ones are named and kept; `clean -f`
    removes those too, with nothing of them left."""
    for n in ("up", "down"):
        assert ak("create", n, "--no-network").rc == 0
    assert ak("stop", "down").rc == 0
    res = ak("clean")
    assert res.rc == 0 and "Removed 'down'" in res.stdout and "Skipping 'up'" in res.stdout, res
    assert "1 removed, 1 skipped" in res.stdout
    assert ak.names() == ["up"]
    res = ak("clean", "-f")
    assert res.rc == 0 and "Removed 'up'" in res.stdout and "1 removed, 0 skipped" in res.stdout
    assert ak.names() == []
