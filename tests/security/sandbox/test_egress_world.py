# SPDX-License-Identifier: Apache-2.0
"""The egress test world (tests/egress_world.py) works and is sealed: the ground the egress
attacks (test_egress_bypass.py) and functional tests (test_egress_function.py) stand on.

These run today: with plain clients in the world's host namespace and with `agentkernel run
--network` (the slirp4netns path, `full` mode once issue 14 lands). If one of them fails, the
egress tests' verdicts mean nothing.
"""
import json

import pytest

from conftest import have
from egress_world import (ALLOWED, ALLOWED_IP, ALLOWED_IP6, BIG, CA_PREP, DENIED, DNS_IP,
                          DNS_QUERY, DOH_IP, HOST_IP, HOST_PORTS, PING, PY, TCP_SEND, UDP_SEND,
                          WS_CLIENT, big_sha256, ca_env, wak, world)  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.egress]


def full_network():
    """The option that gives today's unfiltered network: `--network full` where modes exist
    (plain `--network` may come to mean proxy), else `--network`."""
    import subprocess
    from conftest import AK
    out = subprocess.run([AK, "run", "--help"], capture_output=True, text=True).stdout
    return "--network=full" if "full" in out else "--network"


def test_the_world_is_sealed(world):
    """Neither the host namespace nor the world has an interface but lo and their veth pair;
    their only routes lead into each other; a DNS query to the machine's real resolver (an
    outside server) ends in the world's DNS log, addressed to that resolver: it never left."""
    assert world.links("host") == sorted(["lo", world.hif])
    assert world.links("world") == sorted(["lo", world.wif])
    routes = world.routes("host")
    for ln in routes.splitlines():
        assert "lo" in ln.split() or world.hif in ln.split() or ln.startswith(("multicast",)), ln
    if not world.real_resolver or ":" in world.real_resolver:
        pytest.skip("the machine names no IPv4 resolver")
    m = world.mark()
    res = world.host(PY, "-c", DNS_QUERY, world.real_resolver, 53, ALLOWED, 1, "udp")
    assert res.stdout.decode().split()[:2] == ["rcode", "0"], res
    evs = world.events(m, srv="dns")
    assert [e["dst"] for e in evs] == [world.real_resolver], evs
    # and the resolv.conf agentkernel reads there names the world
    assert world.host("cat", "/etc/resolv.conf").stdout.decode().split()[:2] == \
        ["nameserver", DNS_IP]


def test_plain_clients_reach_every_server(world):
    """From the host namespace: HTTP keep-alive, HTTPS with the test CA (SNI recorded), the
    WebSocket echo, a streamed download, git over https, DNS over UDP, TCP, DoH and DoT, the UDP
    and odd-port TCP echoes, the SOCKS listener, ICMP, the host's loopback and abstract socket
    services, IPv6; every one recorded."""
    ca = str(world.ca)
    m = world.mark()
    res = world.host("curl", "-sSv", "--max-time", "10", f"http://{ALLOWED}/a",
                     f"http://{ALLOWED}/b")
    assert res.returncode == 0 and b"Re-using existing connection" in res.stderr, res
    assert [json.loads(ln)["target"] for ln in res.stdout.splitlines()] == ["/a", "/b"]
    res = world.host("curl", "-sS", "--max-time", "10", "--cacert", ca, f"https://{DENIED}/s")
    assert json.loads(res.stdout)["sni"] == DENIED, res
    res = world.host("env", f"SSL_CERT_FILE={ca}", PY, "-c", WS_CLIENT, ALLOWED, 443, "tls")
    assert res.stdout == b"ws-ok\n", res
    res = world.host("sh", "-c", f"curl -sS --max-time 60 http://{ALLOWED}/big?bytes={BIG} | "
                     "sha256sum", timeout=120)
    assert res.stdout.split()[0].decode() == big_sha256(BIG), res
    res = world.host("env", f"GIT_SSL_CAINFO={ca}", "git", "ls-remote",
                     f"https://{ALLOWED}/git/repo.git")
    assert b"refs/heads/main" in res.stdout, res
    for proto, port in (("udp", 53), ("tcp", 53)):
        res = world.host(PY, "-c", DNS_QUERY, DNS_IP, port, ALLOWED, 1, proto)
        assert res.stdout.split() == [b"rcode", b"0", b"answers", b"1"], res
    res = world.host("curl", "-sS", "--max-time", "10", "--cacert", ca, "--doh-url",
                     f"https://{DOH_IP}/dns-query", "-o", "/dev/null", "-w", "%{http_code}",
                     f"http://{DENIED}/via-doh")
    assert res.stdout == b"200", res
    res = world.host(PY, "-c", UDP_SEND, ALLOWED_IP, 9999)
    assert res.stdout.startswith(b"reply"), res
    res = world.host(PY, "-c", TCP_SEND, "203.0.113.7", 7777, "odd\\n")
    assert b"tcp-7777" in res.stdout, res
    res = world.host(PY, "-c", TCP_SEND, ALLOWED_IP, 1080, "\\x05\\x01\\x00")
    assert b"connected" in res.stdout, res
    res = world.host(PY, "-c", PING, "192.0.2.9")
    assert res.stdout == b"reply\n", res
    res = world.host(PY, "-c", TCP_SEND, "127.0.0.1", HOST_PORTS[0], "lo")
    assert b"host-" in res.stdout, res
    res = world.host(PY, "-c", TCP_SEND, ALLOWED_IP6, 7777, "six")
    assert b"tcp-7777" in res.stdout, res
    res = world.host(PY, "-c", "import socket,sys; s=socket.socket(socket.AF_UNIX); "
                     "s.connect('\\0'+sys.argv[1]); print(s.recv(100))", world.abstract)
    assert b"host-unix" in res.stdout, res
    evs = world.events(m)
    kinds = {e["srv"] for e in evs}
    assert {"http", "tls", "ws", "dns", "udp", "tcp", "socks", "wire", "host",
            "host-unix"} <= kinds, kinds
    assert {e["transport"] for e in evs if e["srv"] == "dns"} >= {"udp", "tcp", "doh"}
    assert any(e["srv"] == "wire" and e["proto"] == "icmp" and e["dst"] == "192.0.2.9"
               for e in evs)
    # DoT: a TLS DNS client in two lines of Python
    dot = ("import socket,ssl,struct,sys\nctx=ssl.create_default_context(cafile=sys.argv[1])\n"
           "s=ctx.wrap_socket(socket.create_connection(('dot.test',853),5),"
           "server_hostname='dot.test')\n"
           "q=struct.pack('>HHHHHH',1,256,1,0,0,0)+b'\\x07allowed\\x04test\\x00'+"
           "struct.pack('>HH',1,1)\ns.sendall(struct.pack('>H',len(q))+q)\n"
           "print(len(s.recv(512)) > 2)")
    m = world.mark()
    res = world.host(PY, "-c", dot, ca)
    assert res.stdout == b"True\n", res
    assert any(e["srv"] == "dns" and e["transport"] == "dot" for e in world.events(m))


@pytest.mark.skipif(not have("slirp4netns"), reason="needs slirp4netns")
def test_todays_network_reaches_the_world(wak, world):
    """`agentkernel run --network [full]` (slirp4netns) in the world's host namespace: inside, the
    test names resolve through the world's DNS and curl, python urllib, node fetch, git over
    https, the WebSocket echo and a streamed download (checksum) work: the world is usable
    by the tests that will run in `proxy` mode."""
    script = CA_PREP + " && ".join([
        f"curl -sS --max-time 10 https://{ALLOWED}/curl",
        f"{PY} -c \"import urllib.request as u; print(u.urlopen('https://{ALLOWED}/py', "
        "timeout=10).read().decode().strip())\"",
        f"{PY} -c \"$AKEG_WS\" {ALLOWED} 443 tls",
        f"git ls-remote https://{ALLOWED}/git/repo.git",
        f"curl -sS --max-time 60 http://{ALLOWED}/big?bytes={BIG} | sha256sum",
    ])
    if have("node"):
        script += (f" && node -e \"fetch('https://{ALLOWED}/node').then(r => r.text())"
                   ".then(t => process.stdout.write(t))\"")
    m = world.mark()
    res = wak("run", full_network(), *ca_env(world), "-e", "AKEG_WS=" + WS_CLIENT, "--",
              "sh", "-c", script, timeout=240)
    assert res.rc == 0, res
    out = res.stdout
    for path in ("/curl", "/py") + (("/node",) if have("node") else ()):
        assert f'"target": "{path}"' in out, (path, out)
    assert "ws-ok" in out and "refs/heads/main" in out and big_sha256(BIG) in out, out
    hosts = {e.get("host") for e in world.events(m, srv="http")}
    assert hosts == {ALLOWED}, hosts
    assert HOST_IP not in {e["dst"] for e in world.events(m, srv="http")}
