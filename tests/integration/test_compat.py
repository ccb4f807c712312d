# SPDX-License-Identifier: Apache-2.0
"""Drop-in compatibility of the state files with upstream (the seed's SandboxState, via serde).

SEED_RULES below restates the seed's struct: field, JSON types serde accepts, required or not.
A file we write must satisfy it (so upstream loads it) and a file upstream writes must load here.
"""
import json

import pytest

from conftest import needs_root

pytestmark = needs_root

U16, U32, U64 = 65535, 2**32 - 1, 2**64 - 1
BACKENDS = {"docker", "podman", "firecracker", "apple", "hyperlight", "kubernetes", "nomad",
            "daytona", "runloop", "e2b", "modal", "agentcomputer"}


def uint(limit):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= limit


def opt(check):
    return lambda v: v is None or check(v)


def strs(v):
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def strmap(v):
    return isinstance(v, dict) and all(isinstance(x, str) for x in v.values())


def port(v):
    return (isinstance(v, dict) and opt(uint(U16))(v.get("host_port")) and uint(U16)(v["container_port"])
            and v.get("protocol", "tcp") in ("tcp", "udp"))


def lifecycle(v):
    return v is None or (isinstance(v, dict) and all(opt(uint(U64))(v.get(k)) for k in
                         ("auto_stop_after_seconds", "auto_archive_after_seconds", "auto_delete_after_seconds")))


is_str = lambda v: isinstance(v, str)
is_bool = lambda v: isinstance(v, bool)

# field: (required, check) -- "required" means serde errors when it is missing
SEED_RULES = {
    "name": (True, is_str), "uuid": (False, is_str), "image": (True, is_str),
    "vcpus": (True, uint(U32)), "memory_mb": (True, uint(U64)), "vsock_cid": (True, uint(U32)),
    "created_at": (True, is_str), "backend": (False, lambda v: v is None or v in BACKENDS),
    "remote_id": (False, opt(is_str)), "remote_namespace": (False, opt(is_str)),
    "ttl_seconds": (False, opt(uint(U64))), "expires_at": (False, opt(is_str)),
    "ports": (False, lambda v: isinstance(v, list) and all(port(p) for p in v)),
    "ssh_enabled": (False, is_bool), "ssh_host_port": (False, opt(uint(U16))),
    "volumes": (False, strs), "agent": (False, opt(is_str)), "secret_bindings": (False, strs),
    "secret_files": (False, strs), "placeholder_secrets": (False, is_bool),
    "proxy_port": (False, opt(uint(U16))), "secret_mappings": (False, strmap),
    "init_script": (False, opt(is_str)), "created_from_template": (False, opt(is_str)),
    "template_help_text": (False, opt(is_str)), "labels": (False, strmap),
    "description": (False, opt(is_str)), "last_activity_at": (False, opt(is_str)),
    "archived_at": (False, opt(is_str)), "archived_reason": (False, opt(is_str)),
    "lifecycle_policy": (False, lifecycle),
}


def seed_accepts(doc):
    for field, (required, check) in SEED_RULES.items():
        if field not in doc:
            assert not required, f"missing {field}"
            continue
        assert check(doc[field]), f"{field}={doc[field]!r} would not deserialize"
    return True


# what the seed's serde_json::to_string_pretty writes for a full record
SEED_FULL = {
    "name": "from-upstream", "uuid": "0190f0a1-7a0b-7c3d-8e9f-0a1b2c3d4e5f", "image": "alpine:3.20",
    "vcpus": 2, "memory_mb": 1024, "vsock_cid": 7, "created_at": "2026-01-01T00:00:00.123+00:00",
    "backend": "docker", "remote_id": None, "remote_namespace": None, "ttl_seconds": 3600,
    "expires_at": "2026-01-01T01:00:00.123+00:00",
    "ports": [{"host_port": 8080, "container_port": 80, "protocol": "tcp"}],
    "ssh_enabled": False, "ssh_host_port": None, "volumes": ["data:/data"], "agent": "claude",
    "secret_bindings": [], "secret_files": [], "placeholder_secrets": False, "proxy_port": None,
    "secret_mappings": {"OPENAI_API_KEY": "api.openai.com"}, "init_script": "echo hi",
    "created_from_template": "python", "template_help_text": None, "labels": {"env": "prod"},
    "description": "made upstream", "last_activity_at": "2026-01-01T00:00:00.123+00:00",
    "archived_at": None, "archived_reason": None,
    "lifecycle_policy": {"auto_stop_after_seconds": 600},
    "workspace_revision": 3,  # a newer upstream's field: must survive our rewrites
}


def write(ak, name, doc):
    (ak.data_dir / "sandboxes").mkdir(parents=True, exist_ok=True)
    ak.state_file(name).write_text(json.dumps(doc, indent=2))


def test_seed_minimal_file_loads_and_gets_a_uuid(ak):
    write(ak, "my-sandbox", {"name": "my-sandbox", "image": "python:3.12-alpine", "vcpus": 4,
                             "memory_mb": 2048, "vsock_cid": 10, "created_at": "2024-01-01T00:00:00Z"})
    [s] = ak.list()
    assert s["name"] == "my-sandbox" and s["vcpus"] == 4 and s["memory_mb"] == 2048
    doc = ak.state("my-sandbox")
    assert len(doc["uuid"]) == 36  # back-filled and written, as the seed does
    assert seed_accepts(doc)
    # CIDs continue after the highest recorded one
    assert ak("create", "--no-start", "next").rc == 0
    assert ak.state("next")["vsock_cid"] == 11


def test_seed_full_file_loads_and_survives_rewrites(ak):
    write(ak, "from-upstream", SEED_FULL)
    res = ak("info", "--json", "from-upstream")
    info = json.loads(res.out)
    assert info["backend"] == "docker" and info["labels"] == {"env": "prod"}
    assert info["ports"] == ["8080:80"]
    # with no Docker engine here it says so, instead of running it elsewhere
    nodocker = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    res = ak("start", "from-upstream", env=nodocker)
    assert res.rc == 1 and "backend 'docker' is not available" in res.stderr, res
    doc = ak.state("from-upstream")
    for k, v in SEED_FULL.items():
        assert doc[k] == v, k  # nothing lost, nothing changed
    # and it is not removed behind docker's back either (its container may still exist)
    res = ak("remove", "from-upstream", env=nodocker)
    assert res.rc == 1 and "docker" in res.stderr, res
    assert ak.state_file("from-upstream").exists()
    ak.state_file("from-upstream").unlink()


def test_our_files_load_in_the_seed(ak):
    assert ak("create", "ours", "--no-network", "-l", "team=ml", "--ttl", "1h", "-p", "18081:80",
              "-e", "A=1", "--description", "d").rc == 0
    doc = ak.state("ours")
    assert seed_accepts(doc)
    assert doc["backend"] is None  # upstream has no 'native'; it lives in our extension key
    assert doc["x_agentkernel"]["backend"] == "native"
    assert doc["ports"] == [{"host_port": 18081, "container_port": 80, "protocol": "tcp"}]
    assert doc["labels"] == {"team": "ml"}
    # the seed's field order, then our extension
    keys = list(doc)
    assert keys[:7] == ["name", "uuid", "image", "vcpus", "memory_mb", "vsock_cid", "created_at"]
    assert keys[-1] == "x_agentkernel"
    # activity is recorded (at most once a second) and the file stays valid after exec
    # rewrites it
    before = "2026-01-01T00:00:00+00:00"
    ak.state_file("ours").write_text(json.dumps(dict(doc, last_activity_at=before), indent=2))
    assert ak("exec", "ours", "--", "true").rc == 0
    after = ak.state("ours")
    assert seed_accepts(after) and after["last_activity_at"] != before


def test_unknown_fields_survive_our_writes(ak):
    doc = dict(SEED_FULL, name="keepme", backend=None, image="host", ports=[], lifecycle_policy=None)
    doc["x_agentkernel"] = {"backend": "native", "network": False, "future_knob": [1, 2]}
    write(ak, "keepme", doc)
    for spec in doc.get("volumes", []):  # volumes a sandbox names must exist to start it
        assert ak("volume", "create", spec.split(":")[0]).rc == 0
    assert ak("start", "keepme").rc == 0   # rewrites the record (last_activity_at)
    assert ak("exec", "keepme", "--", "true").rc == 0  # and again
    after = ak.state("keepme")
    assert after["last_activity_at"] != doc["last_activity_at"]
    assert after["workspace_revision"] == 3
    assert after["x_agentkernel"]["future_knob"] == [1, 2]
    assert after["secret_mappings"] == SEED_FULL["secret_mappings"]
    assert seed_accepts(after)


