# SPDX-License-Identifier: Apache-2.0
"""A hostile sandbox speaks HTTP/2 to the egress proxy's interception (issue 15;
docs/network.md, "HTTP/2"): raw frames from inside the sandbox (H2_CLIENT below, no library
between it and the wire), to the HTTP/2 echo server of tests/mitm_world.py (secure.allowed.test
and secure.denied.test, port 8444). What must hold in every test: the proxy's worker neither
crashes nor wedges (the same worker answers a normal request afterwards), a secret's value goes
only to its own host, and nothing is logged with a value or a placeholder."""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from conftest import have, needs_root  # noqa: E402
import proxy_world  # noqa: E402
from mitm_world import (HOST, OTHER, P_BEARER, P_OTHER, POLICY, V_BEARER,  # noqa: E402
                        V_BODY, V_OTHER, V_WRONG, MitmWorld)

pytestmark = [needs_root, pytest.mark.skipif(
    not (have("ip") and have("nft") and have("curl") and have("openssl")
         and os.path.exists(proxy_world.PROXY)),
    reason="needs ip, nft, curl, openssl and a built agentkernel-proxy")]

VALUES = (V_BEARER, V_OTHER, V_WRONG, V_BODY)

# A raw HTTP/2 client: frames built by hand (HPACK literals without indexing), sent over TLS
# (ALPN h2) to the address given (transparently intercepted), then the frames read back until
# the connection ends or 5 s pass. Prints one line per frame received: TYPE FLAGS STREAM and,
# for HEADERS, the :status; for GOAWAY/RST_STREAM, the error code; "EOF" at the end.
H2_CLIENT = r"""
import socket, ssl, struct, sys, time
import hpack
host, addr, ca, mode = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
args = sys.argv[5:]
def integer(v, prefix, first=0):
    m = (1 << prefix) - 1
    if v < m:
        return bytes([first | v])
    out = [first | m]; v -= m
    while v >= 128:
        out.append(v % 128 + 128); v //= 128
    out.append(v)
    return bytes(out)
def lit(n, v):
    n, v = n.encode(), v.encode() if isinstance(v, str) else v
    return b"\x00" + integer(len(n), 7) + n + integer(len(v), 7) + v
def block(fields):
    return b"".join(lit(n, v) for n, v in fields)
def frame(t, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([t, flags]) + struct.pack(">I", sid) + payload
DATA, HEADERS, RST, SETTINGS, PING, GOAWAY, WINDOW, CONT = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS = 1, 4
def req(path="/echo", extra=(), authority=None, method="GET"):
    return block([(":method", method), (":scheme", "https"), (":path", path),
                  (":authority", authority or host)] + list(extra))
ctx = ssl.create_default_context(cafile=ca); ctx.set_alpn_protocols(["h2"])
s = ctx.wrap_socket(socket.create_connection((addr, 8444), timeout=10), server_hostname=host)
print("ALPN", s.selected_alpn_protocol(), flush=True)
out = [b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", frame(SETTINGS, 0, 0)]
if mode == "get":
    out.append(frame(HEADERS, END_HEADERS | END_STREAM, 1, req(extra=[("authorization", args[0])] if args else [])))
elif mode == "authority":
    out.append(frame(HEADERS, END_HEADERS | END_STREAM, 1, req(authority=args[0], extra=[("x-api-key", args[1])])))
elif mode == "host_beside_authority":
    out.append(frame(HEADERS, END_HEADERS | END_STREAM, 1, req(extra=[("host", args[0])])))
elif mode == "huge_headers":
    # 30 KB in a HEADERS and a CONTINUATION (each within the 16 KiB frame size)
    out.append(frame(HEADERS, END_STREAM, 1, req(extra=[("x-big", "a" * 15000)])))
    out.append(frame(CONT, END_HEADERS, 1, lit("x-big2", "b" * 15000)))
    out.append(frame(HEADERS, END_HEADERS | END_STREAM, 3, req()))
elif mode == "many_fields":
    out.append(frame(HEADERS, END_HEADERS | END_STREAM, 1, req(extra=[("x-f%d" % i, "v") for i in range(150)])))
    out.append(frame(HEADERS, END_HEADERS | END_STREAM, 3, req()))
elif mode == "stream_flood":
    for i in range(1000):
        out.append(frame(HEADERS, END_HEADERS, 1 + 2 * i, req(method="POST")))
elif mode == "rst_flood":
    for i in range(20000):
        out.append(frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i, req()))
        out.append(frame(RST, 0, 1 + 2 * i, struct.pack(">I", 8)))
elif mode == "continuation_flood":
    out.append(frame(HEADERS, 0, 1, req()))
    for i in range(5000):
        out.append(frame(CONT, 0, 1, lit("x-c%d" % i, "v")))
elif mode == "data_on_zero":
    out.append(frame(DATA, 0, 0, b"hello"))
elif mode == "bad_hpack":
    out.append(frame(HEADERS, END_HEADERS | END_STREAM, 1, b"\xff\xff\xff\xff\xff\xff"))
elif mode == "garbage":
    out = [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]
elif mode == "ping_flood":
    for i in range(20000):
        out.append(frame(PING, 0, 0, struct.pack(">Q", i)))
elif mode == "settings_flood":
    for i in range(5000):
        out.append(frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 65535)))
elif mode == "body_split":
    # another host's placeholder split across two DATA frames of a POST
    ph = args[0].encode(); half = len(ph) // 2
    out.append(frame(HEADERS, END_HEADERS, 1, req(method="POST", extra=[("content-type", "text/plain")])))
    out.append(frame(DATA, 0, 1, b"k=" + ph[:half]))
    out.append(frame(DATA, END_STREAM, 1, ph[half:]))
elif mode == "crlf_value":
    out.append(frame(HEADERS, END_HEADERS | END_STREAM, 1, req(extra=[("x-a", "a\r\nx-injected: 1")])))
elif mode == "window_stall":
    # a big response, no window to send it in: the proxy must hold it within its bounds
    out[1] = frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 0))
    for i in range(50):
        out.append(frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i, req(path="/big", extra=[("authorization", args[0])])))
try:
    s.sendall(b"".join(out))
except OSError as e:
    print("SENDERR", e, flush=True)
dec = hpack.Decoder()
buf = b""; end = time.time() + (float(args[-1]) if mode == "window_stall" else 5)
s.settimeout(0.5)
while time.time() < end:
    try:
        d = s.recv(65536)
    except socket.timeout:
        continue
    except OSError as e:
        print("RECVERR", e, flush=True); break
    if not d:
        break
    buf += d
    while len(buf) >= 9:
        n = struct.unpack(">I", b"\x00" + buf[:3])[0]
        if len(buf) < 9 + n:
            break
        t, fl, sid = buf[3], buf[4], struct.unpack(">I", buf[5:9])[0] & 0x7fffffff
        p = buf[9:9 + n]; buf = buf[9 + n:]
        info = ""
        if t == HEADERS:
            try:
                info = "status=" + dict(dec.decode(p)).get(":status", "?")
            except Exception:
                info = "status=?"
        elif t in (GOAWAY,):
            info = "code=%d" % struct.unpack(">I", p[4:8])[0]
        elif t == RST:
            info = "code=%d" % struct.unpack(">I", p[:4])[0]
        elif t == DATA:
            info = "len=%d" % n
            sys.stdout.buffer.write(b"BODY " + p.replace(b"\n", b" ") + b"\n")
        print("FRAME", t, fl, sid, info, flush=True)
print("EOF", flush=True)
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = MitmWorld(tmp_path_factory.mktemp("mitm-h2-attack"), POLICY)
    (w.tmp / "h2client.py").write_text(H2_CLIENT)
    yield w
    w.close()


def attack(world, mode, *args, host=HOST, addr="198.18.0.3", timeout=60):
    r = world.sh(proxy_world.PY, str(world.tmp / "h2client.py"), host, addr, str(world.proxy_ca),
                 mode, *args, timeout=timeout)
    out = r.stdout.decode("latin-1")
    assert "ALPN h2" in out, r
    return out


def frames(out, t):
    return [x.split() for x in out.splitlines() if x.startswith(f"FRAME {t} ")]


def still_serves(world, pid):
    """The same worker answers a normal h2 request (substituted) after the attack."""
    r = world.sh("curl", "-sS", "--http2", "--max-time", "10", "--cacert", str(world.proxy_ca),
                 "-w", "\n%{http_version} %{http_code}", "-H", f"Authorization: Bearer {P_BEARER}",
                 f"https://{HOST}:8444/echo")
    assert r.stdout.endswith(b"\n2 200"), r
    assert world.worker_pid() == pid
    assert world.proxy.poll() is None
    text = world.log.read_text() if world.log.exists() else ""
    for v in VALUES:
        assert v not in text
    assert "AGENTKERNEL_PLACEHOLDER_" not in text


def received(world):
    return world.received.read_text() if world.received.exists() else ""


def test_h2_raw_request_is_substituted(world):
    """The raw client itself works: a request with the placeholder gets 200, the value arrives."""
    pid = world.worker_pid()
    out = attack(world, "get", f"Bearer {P_BEARER}")
    assert ["FRAME", "1", "4", "1", "status=200"] in frames(out, 1) or any(
        f[3] == "1" and f[4] == "status=200" for f in frames(out, 1)), out
    assert world.last_received()["headers"]["authorization"] == f"Bearer {V_BEARER}"
    assert V_BEARER not in out
    still_serves(world, pid)


def test_h2_authority_of_another_grants_host(world):
    """:authority names secure.denied.test (another grant's host) on a connection intercepted
    for secure.allowed.test, with that host's placeholder: 403, nothing received."""
    pid, before = world.worker_pid(), received(world)
    out = attack(world, "authority", OTHER, P_OTHER)
    assert any(f[3] == "1" and f[4] == "status=403" for f in frames(out, 1)), out
    assert received(world) == before
    still_serves(world, pid)


def test_h2_host_field_beside_authority(world):
    """:authority names the intercepted host but a host field names another (a server that
    reads host would be fronted): 403, nothing received."""
    pid, before = world.worker_pid(), received(world)
    out = attack(world, "host_beside_authority", OTHER)
    assert any(f[3] == "1" and f[4] == "status=403" for f in frames(out, 1)), out
    assert received(world) == before
    still_serves(world, pid)


def test_h2_placeholder_split_across_data_frames(world):
    """Another host's placeholder split across two DATA frames of a POST: refused (403 or a
    reset), the server never gets the value or the placeholder, audited."""
    pid, before = world.worker_pid(), received(world)
    out = attack(world, "body_split", P_OTHER)
    assert any(f[3] == "1" and f[4] == "status=403" for f in frames(out, 1)) or frames(out, 3), out
    assert V_OTHER not in received(world) and P_OTHER not in received(world)[len(before):]
    assert any(a.get("type", a.get("event")) == "secret_misdirected" and a.get("secret") == "K_OTHER"
               for a in world.audit_lines())
    still_serves(world, pid)


def test_h2_huge_header_list(world):
    """A 30 KB header list in HEADERS and CONTINUATION (past the 16 KiB limit): that stream is
    refused with 431 (nothing of it goes upstream), the next stream on the connection is
    answered; the worker goes on."""
    pid, before = world.worker_pid(), received(world)
    out = attack(world, "huge_headers")
    st = {f[3]: f[4] for f in frames(out, 1)}
    assert st.get("1") == "status=431" and st.get("3") == "status=200", out
    assert "a" * 1000 not in received(world)[len(before):]
    still_serves(world, pid)


def test_h2_too_many_header_fields(world):
    """150 header fields on one stream: refused (431) without harm to the next stream."""
    pid = world.worker_pid()
    out = attack(world, "many_fields")
    st = {f[3]: f[4] for f in frames(out, 1)}
    assert st.get("1") == "status=431" and st.get("3") == "status=200", out
    still_serves(world, pid)


def test_h2_stream_flood(world):
    """1000 streams opened at once and never ended: at most 100 are kept, the rest are reset;
    the worker stays up and serves."""
    pid = world.worker_pid()
    out = attack(world, "stream_flood", timeout=90)
    refused = [f for f in frames(out, 3) if f[4] == "code=7"]  # REFUSED_STREAM
    assert len(refused) >= 800 or frames(out, 7), out[-2000:]
    still_serves(world, pid)


def test_h2_rapid_reset_flood(world):
    """20000 streams opened and reset at once (CVE-2023-44487): the connection is ended by the
    proxy (GOAWAY) rather than its upstream flooded; the worker serves afterwards."""
    pid, before = world.worker_pid(), received(world)
    out = attack(world, "rst_flood", timeout=120)
    assert frames(out, 7) or "EOF" in out, out[-2000:]
    assert len(received(world)[len(before):].splitlines()) < 20000
    still_serves(world, pid)


def test_h2_continuation_flood(world):
    """A HEADERS without END_HEADERS and 5000 CONTINUATION frames (CVE-2024-27316's kind): the
    connection ends (GOAWAY) within the limit; the worker serves afterwards."""
    pid = world.worker_pid()
    out = attack(world, "continuation_flood")
    assert frames(out, 7) or "RECVERR" in out or "EOF" in out, out
    assert not any(f[4] == "status=200" for f in frames(out, 1)), out
    still_serves(world, pid)


@pytest.mark.parametrize("mode", ["data_on_zero", "bad_hpack", "garbage"])
def test_h2_bad_frames(world, mode):
    """Protocol violations (DATA on stream 0, a broken HPACK block, HTTP/1.1 where the preface
    belongs): the connection ends (GOAWAY or close), logged as an HTTP/2 denial; the worker
    serves afterwards."""
    pid = world.worker_pid()
    out = attack(world, mode)
    assert "EOF" in out or "RECVERR" in out, out
    assert not any(f[4] == "status=200" for f in frames(out, 1)), out
    assert world.wait_log(lambda x: "HTTP/2 from the sandbox" in (x.get("rule") or ""))
    still_serves(world, pid)


@pytest.mark.parametrize("mode", ["ping_flood", "settings_flood"])
def test_h2_ack_floods(world, mode):
    """20000 PINGs or 5000 SETTINGS without reading the answers: nghttp2's outbound-ACK and
    SETTINGS limits end the connection; the worker serves afterwards."""
    pid = world.worker_pid()
    attack(world, mode, timeout=90)
    still_serves(world, pid)


def test_h2_crlf_in_header_value(world):
    """A header value with CR LF: the stream is refused (nghttp2's field checks), no header is
    injected upstream."""
    pid, before = world.worker_pid(), received(world)
    out = attack(world, "crlf_value")
    assert not any(f[4] == "status=200" for f in frames(out, 1)), out
    assert "x-injected" not in received(world)[len(before):]
    still_serves(world, pid)


def test_h2_window_stall_is_bounded(world):
    """50 streams of 1 MiB responses to a client that opens no window: the proxy holds what the
    windows bound (no response is buffered whole), keeps serving others meanwhile, and the
    values never reach the stalled client."""
    pid = world.worker_pid()
    out = attack(world, "window_stall", f"Bearer {P_BEARER}", "3", timeout=60)
    assert V_BEARER not in out
    still_serves(world, pid)
    status = open(f"/proc/{pid}/status").read()
    rss = int([x for x in status.splitlines() if x.startswith("VmRSS")][0].split()[1])
    assert rss < 200 * 1024, status  # KiB: far below 50 whole responses buffered twice
