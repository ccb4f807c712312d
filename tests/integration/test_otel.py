# SPDX-License-Identifier: Apache-2.0
"""`serve --otel-endpoint` (upstream's): a span per request, OTLP/HTTP JSON to <endpoint>/v1/traces,
checked against a small collector on loopback (tests/otel_collector.py): the document's shape,
ids, times, attributes, W3C traceparent, and that a slow or dead collector never slows requests
(spans are dropped and counted instead)."""
import re
import subprocess
import time

from conftest import AK, needs_root
from otel_collector import Collector
from serve_client import Server, free_port

pytestmark = needs_root


def attrs(span):
    out = {}
    for a in span["attributes"]:
        v = a["value"]
        out[a["key"]] = v.get("stringValue", v.get("intValue"))
    return out


def test_spans_shape_and_attributes(ak):
    col = Collector()
    s = Server(ak, "--otel-endpoint", col.url)
    try:
        assert ak("create", "ot", "--no-network").rc == 0
        tp = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
        st, _ = s.request("POST", "/sandboxes/ot/exec", {"command": ["true"]},
                          headers={"traceparent": tp})
        assert st == 200
        assert s.request("POST", "/sandboxes/ot/pause")[0] == 200
        assert s.request("POST", "/sandboxes/ot/resume")[0] == 200
        assert s.request("GET", "/nosuch")[0] == 404
        assert col.wait(lambda sp: len(sp) >= 4), col.spans()
    finally:
        s.stop()
    path, headers, body = col.posts[0]
    assert path == "/v1/traces" and headers["Content-Type"] == "application/json"
    import json
    doc = json.loads(body)
    res = doc["resourceSpans"][0]
    assert {"key": "service.name", "value": {"stringValue": "agentkernel"}} in \
        res["resource"]["attributes"]
    assert res["scopeSpans"][0]["scope"]["name"] == "agentkernel"
    spans = col.spans()
    for sp in spans:
        assert re.fullmatch(r"[0-9a-f]{32}", sp["traceId"]) and sp["traceId"] != "0" * 32
        assert re.fullmatch(r"[0-9a-f]{16}", sp["spanId"])
        assert sp["kind"] == 2
        t0, t1 = int(sp["startTimeUnixNano"]), int(sp["endTimeUnixNano"])
        assert abs(t0 / 1e9 - time.time()) < 120 and t0 <= t1
    by = {(attrs(sp)["http.method"], attrs(sp)["http.target"]): sp for sp in spans}
    ex = by[("POST", "/sandboxes/ot/exec")]
    a = attrs(ex)
    assert a["http.status_code"] == "200" and a["http.route"] == "/sandboxes/:name/exec"
    assert a["agentkernel.sandbox"] == "ot" and a["agentkernel.backend"] == "native"
    assert ex["traceId"] == "ab" * 16 and ex["parentSpanId"] == "cd" * 8
    assert ex["name"] == "POST /sandboxes/:name/exec"
    assert ("POST", "/sandboxes/ot/pause") in by and ("POST", "/sandboxes/ot/resume") in by
    miss = by[("GET", "/nosuch")]
    assert attrs(miss)["http.status_code"] == "404" and "parentSpanId" not in miss
    assert len({sp["spanId"] for sp in spans}) == len(spans)


def test_dead_or_slow_collector_never_slows_requests(ak):
    slow = Collector(delay=30)
    dead_port = free_port()
    for url in (slow.url, f"http://127.0.0.1:{dead_port}"):
        s = Server(ak, "--otel-endpoint", url)
        try:
            t0 = time.time()
            for _ in range(300):
                assert s.request("GET", "/status")[0] == 200
            took = time.time() - t0
            assert took < 30, took  # requests never wait for the exporter
        finally:
            t0 = time.time()
            s.stop()
            assert time.time() - t0 < 20, "serve's stop waited on the collector"
    slow.stop()


def test_endpoint_from_environment_and_bad_ones(ak):
    col = Collector()
    s = Server(ak, env={"OTEL_EXPORTER_OTLP_ENDPOINT": col.url + "/base/",
                        "OTEL_SERVICE_NAME": "svc-x"})
    try:
        assert s.request("GET", "/status")[0] == 200
        assert col.wait(lambda sp: len(sp) >= 1)
    finally:
        s.stop()
    assert col.posts[0][0] == "/base/v1/traces"
    assert b'"svc-x"' in col.posts[0][2]
    for bad in ("ftp://x/", "file:///etc/passwd", "http://a b/", "not a url"):
        r = subprocess.run([AK, "serve", "--port", str(free_port()), "--otel-endpoint", bad],
                           env=ak.env, capture_output=True, timeout=15)
        assert r.returncode == 2 and b"--otel-endpoint" in r.stderr, (bad, r)
    col.stop()
