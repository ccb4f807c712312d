# SPDX-License-Identifier: Apache-2.0
"""The OpenTelemetry collector `serve --otel-endpoint` exports to is a third party (a SaaS, a
shared collector): what reaches it must not include what only the server's owner may know.

A request carries the API key (Authorization), commands and environment values in its body,
secrets set through /secrets, file contents, and query strings; an unauthenticated peer may try
to fill the collector (or the exporter's queue) with spans. What must hold: the exported JSON
holds none of the key, the body's values, the secret, the file's content or the query string;
requests without the key produce no span at all."""
import time

from conftest import needs_root
from otel_collector import Collector
from serve_client import Server

pytestmark = needs_root

SECRETS = ["ENVVALUE-5f1e", "ARGVALUE-77aa", "SECRETVALUE-9c3d", "FILECONTENT-1b2b",
           "QUERYVALUE-4e4e"]


def test_nothing_secret_is_exported(ak):
    col = Collector()
    s = Server(ak, "--otel-endpoint", col.url)
    try:
        st, body = s.request("POST", "/run", {"command": ["echo", "ARGVALUE-77aa"],
                                              "env": {"K": "ENVVALUE-5f1e"}})
        assert st == 200, body
        s.request("POST", "/secrets", {"name": "TOKEN_X", "value": "SECRETVALUE-9c3d"})
        assert ak("create", "lk", "--no-network").rc == 0
        s.request("PUT", "/sandboxes/lk/files/tmp/f", {"content": "FILECONTENT-1b2b"})
        s.request("GET", "/sandboxes?label=team:QUERYVALUE-4e4e")
        s.request("GET", "/sandboxes/lk/files/tmp/f")
        assert col.wait(lambda sp: len(sp) >= 6), col.spans()
    finally:
        s.stop()
    raw = col.raw()
    for v in SECRETS + [s.key]:
        assert v.encode() not in raw, v
    assert b"Authorization" not in b"".join(b for _, _, b in col.posts)


def test_unauthenticated_requests_make_no_spans(ak):
    col = Collector()
    s = Server(ak, "--otel-endpoint", col.url)
    try:
        for _ in range(50):
            assert s.request("POST", "/run", {"command": ["id"]}, key=False)[0] == 401
        assert s.request("GET", "/status")[0] == 200
        assert col.wait(lambda sp: len(sp) >= 1)
        time.sleep(1.5)
    finally:
        s.stop()
    targets = [a["value"]["stringValue"] for sp in col.spans() for a in sp["attributes"]
               if a["key"] == "http.target"]
    assert "/run" not in targets, targets
