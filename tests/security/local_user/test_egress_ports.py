# SPDX-License-Identifier: Apache-2.0
"""Published ports in proxy mode, attacked by another local user (src/backend/port-relay.c).

The relay's listener is on the host's loopback, like `full` mode's and docker's published ports:
every local user may connect to it, by design. What another user must not do: ask the sandbox's
agent for a connection of its own (TCP_CONNECT: the agent's socket is in the owner's 0700 run
directory), take the published port away from a running sandbox, or keep a port of ours open
after the sandbox is gone.
"""
import socket
import time

from conftest import needs_root

pytestmark = needs_root


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ASK_AGENT = """
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print("refused", e.errno); sys.exit(0)
s.sendall(struct.pack("<IHHHIQ", 14, 64, 0, 28, 8, int(sys.argv[2])))
print("connected", s.recv(8))
"""

STEAL = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); print("bound")
except OSError as e:
    print("refused", e.errno)
"""


def test_other_user_cannot_ask_the_agent_for_a_connection(ak, local_user):
    """The other user connects to the sandbox's agent socket to send TCP_CONNECT itself: the
    connection is refused (the run directory is the owner's alone)."""
    port = free_port()
    assert ak("create", "mine", "--network", "proxy", "-p", f"{port}:8000").rc == 0
    sock = ak.data_dir / "run" / "mine" / "agent.sock"
    assert sock.exists()
    res = local_user.python(ASK_AGENT, str(sock), "8000")
    assert res.stdout.startswith("refused"), res


def test_other_user_cannot_take_the_published_port(ak, local_user):
    """While the sandbox runs, the other user cannot bind its published port (even with
    SO_REUSEADDR); after the sandbox is removed nothing of ours holds it."""
    port = free_port()
    assert ak("create", "held", "--network", "proxy", "-p", f"{port}:8000").rc == 0
    res = local_user.python(STEAL, str(port))
    assert res.stdout.startswith("refused"), res
    assert ak("remove", "held").rc == 0
    deadline = time.time() + 5
    while time.time() < deadline:
        res = local_user.python(STEAL, str(port))
        if res.stdout.startswith("bound"):
            break
        time.sleep(0.1)
    assert res.stdout.startswith("bound"), res
