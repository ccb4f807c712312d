# SPDX-License-Identifier: Apache-2.0
"""A hostile container of the docker and podman backends attacks the channel between the host
and the agent in it.

Commands in a container run as its root. They try to make the host's exec/cp for one sandbox run
in another (a symlink from where the host looks for the agent's socket to another sandbox's), to
put an impostor where the host looks (their own listener, even their own copy of our agent told
the sandbox's uuid, after killing every process of the real one they can), to reach the agent's
socket themselves, to read and forge the agent's detached-command records, and to leave
something in any host directory the container can reach that the host trusts later (the run
directory, the warm pool's entries and locks). What must hold: the host's commands for a sandbox
run in that sandbox or fail, never in another; nothing of the agent's socket or state is visible
inside; nothing the container writes lands in agentkernel's data directory.
"""
import json
import os
import secrets
import subprocess
import time

import pytest

from conftest import needs_root, needs_static_agent
from .conftest import create, sh, uuid_of

pytestmark = [needs_root, needs_static_agent]

# Where the agent's socket was inside a container before (the host's run directory, bound
# read-write): a hostile command looks there first, then for any socket at all.
OLD_RUN = "/.agentkernel/run"
FIND_SOCKETS = ("busybox find / \\( -path /proc -o -path /sys \\) -prune -o -type s -print "
                "2>/dev/null")


def who(eak, name):
    """Which sandbox the host's exec for name reached (its SBX), or None when it failed."""
    res = sh(eak, name, 'echo "$SBX"')
    return res.stdout.strip() if res.rc == 0 else None


def test_socket_symlinked_to_another_sandbox(eak):
    """Every socket the container can find, and the place the agent's socket used to be, is
    replaced by a symlink to the host path of another sandbox's socket. The host's exec for the
    first sandbox must still run in it."""
    a, b = create(eak, "a"), create(eak, "b")
    other = eak.data_dir / "run" / b / "agent.sock"
    res = sh(eak, a, f'for s in $({FIND_SOCKETS}) {OLD_RUN}/agent.sock; do '
             'busybox mkdir -p "$(busybox dirname "$s")"; busybox rm -f "$s"; '
             'busybox ln -s "$1" "$s"; done; echo planted', str(other))
    assert "planted" in res.stdout, res
    assert who(eak, a) == "a"
    assert who(eak, b) == "b"


def test_impostor_agent_where_the_host_looks(eak):
    """The container kills every process of its agent it may signal, then starts its own copy
    of our agent (told the sandbox's own uuid) on every socket path it can find and where the
    socket used to be. The host must keep reaching the real agent (or fail), never the
    impostor."""
    a = create(eak, "a")
    create(eak, "b")
    u = uuid_of(eak, a)
    script = (
        # the shell's own kill: kill -1 spares the caller (busybox kill would end this script)
        f'paths="$({FIND_SOCKETS}) {OLD_RUN}/agent.sock"; kill -9 -1 2>/dev/null; '
        'for p in $paths; do busybox mkdir -p "$(busybox dirname "$p")"; '
        f'(SBX=impostor /.agentkernel/agent --listen "$p" --uuid {u} --state-dir /tmp/st 2>/dev/null'
        ' || SBX=impostor /.agentkernel/agent --listen "$p" --state-dir /tmp/st) '
        '</dev/null >/dev/null 2>&1 & done; busybox sleep 1; echo started')
    res = eak("exec", "-d", a, "--", "sh", "-c", script)
    assert res.rc == 0, res
    time.sleep(2)
    # the real agent survived its container's kill -9 -1 (an init ignores it from inside)
    assert who(eak, a) == "a"
    assert who(eak, "b") == "b"
    # the attack is in place: the impostors listen
    res = sh(eak, a, "busybox ps -o args")
    assert "--state-dir /tmp/st" in res.stdout, res


def test_agent_socket_is_not_reachable_from_inside(eak):
    """A command looks for the agent's socket (to talk to the agent itself: run commands with
    the agent's privileges, read every detached command's output). It must find none."""
    a = create(eak, "a")
    res = sh(eak, a, FIND_SOCKETS + "; echo end")
    assert res.rc == 0 and res.stdout == "end\n", res  # no socket anywhere in the container
    res = sh(eak, a, f"busybox ls -A {OLD_RUN} /.agentkernel/state 2>/dev/null; echo end")
    assert res.stdout.split() == ["/.agentkernel/state:", "end"], res


def test_detached_records_are_invisible(eak):
    """A detached command's record and logs are the agent's: another command searches the whole
    container (every mount) for them and for the agent's state tmpfs."""
    a = create(eak, "a")
    token = secrets.token_hex(8)
    res = eak("exec", "-d", a, "--", "sh", "-c", f"echo {token}-out; echo {token}-err >&2; "
              "busybox sleep 60")
    assert res.rc == 0, res
    time.sleep(0.5)
    res = sh(eak, a, "busybox grep -rl " + token + " / --exclude-dir=proc --exclude-dir=sys "
             "2>/dev/null; busybox grep -c agentkernel/state /proc/self/mountinfo; "
             "busybox ls -A /.agentkernel/state 2>&1")
    lines = res.stdout.split()
    assert not [l for l in lines if l.startswith("/")], res  # no file holds the output
    assert "0" in lines, res  # no state tmpfs among the container's mounts
    # the host still has it
    lst = eak("sandbox", "exec-list", a)
    assert lst.rc == 0 and "sleep" in lst.stdout, lst


def test_detached_records_cannot_be_forged(eak):
    """A command writes forged records and logs where the agent's state used to be (and every
    directory named like it); the host's view of detached commands stays the agent's."""
    a = create(eak, "a")
    token = secrets.token_hex(8)
    res = eak("exec", "-d", a, "--", "sh", "-c", f"echo real-{token}; busybox sleep 60")
    assert res.rc == 0, res
    ids = [json.loads(res.stdout)["id"]]
    time.sleep(0.5)
    forge = ('for d in /.agentkernel/state /.agentkernel/state/detached; do '
             'busybox mkdir -p "$d/$1" 2>/dev/null; echo forged > "$d/$1/stdout"; '
             'echo \'{"id":"$1","pid":1,"argv":["forged"]}\' > "$d/$1/record.json"; '
             'for f in "$d"/*/stdout; do echo forged > "$f"; done; done 2>/dev/null; true')
    for i in ids:
        sh(eak, a, forge, i)
    lst = eak("sandbox", "exec-list", a)
    assert lst.rc == 0 and "forged" not in lst.stdout, lst
    for i in ids:
        logs = eak("sandbox", "exec-logs", a, i)
        if logs.rc == 0:
            assert logs.stdout == f"real-{token}\n", logs


def mounts_inside(eak, name):
    res = sh(eak, name, "busybox cat /proc/self/mountinfo")
    return [l.split()[4] for l in res.stdout.splitlines()]


def write_everywhere(eak, name, token, run=None):
    """From inside: the token into every directory of every mount (but /proc, /sys, /dev), and
    over every file of /.agentkernel; returns the result. The token travels in two halves, so
    that no command line holds it whole (the audit log keeps those)."""
    script = (
        'set -- "$1$2"; '
        'for m in $(busybox awk \'{print $5}\' /proc/self/mountinfo); do case "$m" in '
        '/proc*|/sys*|/dev*) continue;; esac; '
        'for d in $(busybox find "$m" -xdev -type d 2>/dev/null | busybox head -200); do '
        'echo "$1" > "$d/.pwn-$1" 2>/dev/null; done; done; '
        'for f in $(busybox find /.agentkernel 2>/dev/null); do '
        '[ -f "$f" ] && (echo "$1" > "$f") 2>/dev/null; done; '
        f'busybox mkdir -p {OLD_RUN} 2>/dev/null; for f in lock agent.sock engine-runtime.json; '
        f'do busybox rm -f {OLD_RUN}/$f; echo "$1" > {OLD_RUN}/$f; done 2>/dev/null; echo done')
    halves = (token[:len(token) // 2], token[len(token) // 2:])
    if run:
        return eak(*run, "--", "sh", "-c", script, "sh", *halves)
    return sh(eak, name, script, *halves)


def data_dir_holds(eak, token):
    hits = []
    for dirpath, _, filenames in os.walk(eak.data_dir):
        for n in filenames:
            p = os.path.join(dirpath, n)
            if token in n:
                hits.append(p)
                continue
            try:
                with open(p, "rb") as f:
                    if token.encode() in f.read(1 << 20):
                        hits.append(p)
            except OSError:
                pass
    return hits


def test_nothing_written_inside_reaches_the_data_directory(eak):
    """The container writes a token into every directory of every mount it has, over every file
    of /.agentkernel and where the host's run directory used to be bound. None of it may appear
    in agentkernel's data directory (the host trusts what is there), and the sandbox keeps
    working."""
    a = create(eak, "a")
    token = secrets.token_hex(8)
    res = write_everywhere(eak, a, token)
    assert "done" in res.stdout, res
    assert data_dir_holds(eak, token) == []
    assert who(eak, a) == "a"
    assert eak("stop", a).rc == 0 and eak("start", a).rc == 0
    assert who(eak, a) == "a"


def test_agent_binary_stays_read_only(eak):
    """The agent binary is a host file bound into every container: overwriting, truncating or
    replacing it from inside must fail, and the host's copy stays as it was."""
    a = create(eak, "a")
    agent = eak.env["AGENTKERNEL_AGENT"]
    before = open(agent, "rb").read()
    res = sh(eak, a, "echo x > /.agentkernel/agent; busybox truncate -s 0 /.agentkernel/agent; "
             "busybox cp /bin/busybox /.agentkernel/agent; busybox mv /bin/busybox "
             "/.agentkernel/agent; busybox rm -f /.agentkernel/agent; "
             "busybox chmod 4755 /.agentkernel/agent; true")
    assert res.rc == 0, res
    assert open(agent, "rb").read() == before
    assert os.stat(agent).st_mode & 0o7000 == 0
    assert who(eak, a) == "a"


def test_pooled_container_cannot_touch_the_pool(eak):
    """A --fast run (a container from the warm pool) writes everywhere it can, over the pool's
    lock and socket files included. Nothing reaches the data directory, and the next runs still
    get fresh containers that work."""
    eng = eak.engine
    fast = ["run", "--fast", "-B", eng.name, "-i", eng.image, "--no-network"]
    assert eak(*fast, "--", "true").rc == 0  # fills the pool
    deadline = time.time() + 60
    while not [c for c in eng.containers() if c.startswith("agentkernel-pool-")] and \
            time.time() < deadline:
        time.sleep(0.2)
    token = secrets.token_hex(8)
    res = write_everywhere(eak, None, token, run=fast)
    assert res.rc == 0 and "done" in res.stdout, res
    assert data_dir_holds(eak, token) == []
    for _ in range(2):
        res = eak(*fast, "--", "sh", "-c", 'test ! -e "/.pwn-$1$2" && echo fresh', "sh",
                  token[:8], token[8:])
        assert res.rc == 0 and res.stdout == "fresh\n", res


def test_a_record_pointing_at_another_sandbox_is_refused(eak):
    """Defence in depth: even if the host's record of where a's agent is named b's agent (a
    forged or stale record), a's exec must not run in b: b's agent answers with b's uuid."""
    a, b = create(eak, "a"), create(eak, "b")
    ra = eak.data_dir / "run" / a / "engine-runtime.json"
    rb = eak.data_dir / "run" / b / "engine-runtime.json"
    assert ra.exists() and rb.exists()
    rec = json.loads(rb.read_text())
    rec["uuid"] = uuid_of(eak, a)
    ra.write_text(json.dumps(rec))
    os.chmod(ra, 0o600)
    res = sh(eak, a, 'echo "$SBX"')
    assert res.rc != 0 and "b" not in res.stdout.split(), res
    assert "another sandbox" in res.stderr, res
    assert who(eak, b) == "b"


def test_a_record_others_may_write_is_not_believed(eak):
    """The host's record of the agent is believed only when it is a regular file of ours that
    nobody else may write: one made group- or world-writable (or a symlink) is refused."""
    a = create(eak, "a")
    ra = eak.data_dir / "run" / a / "engine-runtime.json"
    os.chmod(ra, 0o666)
    res = sh(eak, a, "true")
    assert res.rc != 0 and "not trusted" in res.stderr, res
    os.chmod(ra, 0o600)
    os.rename(ra, str(ra) + ".real")
    os.symlink(str(ra) + ".real", ra)
    res = sh(eak, a, "true")
    assert res.rc != 0, res
    os.unlink(ra)
    os.rename(str(ra) + ".real", ra)
    assert who(eak, a) == "a"


def test_a_container_without_a_record_fails_clearly(eak):
    """A container started by an older agentkernel has no record of its agent (nor an agent
    that tells its sandbox): exec must fail and say how to fix it, and stop/start fixes it."""
    a = create(eak, "a")
    (eak.data_dir / "run" / a / "engine-runtime.json").unlink()
    res = sh(eak, a, "true")
    assert res.rc != 0 and "restart it" in res.stderr, res
    assert eak("stop", a).rc == 0 and eak("start", a).rc == 0
    assert who(eak, a) == "a"


def test_a_changed_seccomp_file_is_replaced(eak):
    """Podman takes our seccomp profile as a file under the data directory, read at every
    container start: one changed since (here to allow everything), or swapped for a link, must
    be rewritten before the next container uses it."""
    if eak.engine.name != "podman":
        pytest.skip("docker takes the profile inline")
    create(eak, "a")
    [f] = list((eak.data_dir / "seccomp").glob("*.json"))
    good = f.read_text()
    f.write_text('{"defaultAction":"SCMP_ACT_ALLOW"}')
    create(eak, "b")
    assert f.read_text() == good
    f.unlink()
    lax = eak.data_dir / "lax.json"
    lax.write_text('{"defaultAction":"SCMP_ACT_ALLOW"}')
    f.symlink_to(lax)
    create(eak, "c")
    assert not f.is_symlink() and f.read_text() == good
    assert lax.read_text() == '{"defaultAction":"SCMP_ACT_ALLOW"}'


def build_image(eng, tmp_path, dockerfile, tag):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    if eng.name == "docker":
        cmd, env = ["docker", "build", "-q", "-t", tag, str(ctx)], dict(os.environ, **eng.env,
                                                                          DOCKER_BUILDKIT="0")
    else:
        cmd, env = eng.base + ["build", "-q", "--format", "docker", "-t", tag, str(ctx)], eng.penv
    p = subprocess.run(cmd, env=env, capture_output=True)
    assert p.returncode == 0, p.stderr
    return tag


def test_image_healthcheck_never_runs_behind_the_agent(eak, tmp_path):
    """An image's HEALTHCHECK is a command the engine itself runs in the container, every second
    here, outside the agent (no command policy, no audit, from the first moment). It must never
    run: the container is made with health checks off."""
    eng = eak.engine
    base = eng.image if eng.name == "docker" else "localhost/akbusybox:1"
    tag = build_image(eng, tmp_path, f"FROM {base}\nHEALTHCHECK --interval=1s CMD "
                      "/bin/busybox sh -c 'echo ran >> /tmp/healthcheck'\n",
                      "akhealth:1" if eng.name == "docker" else "localhost/akhealth:1")
    res = eak("create", "h", "-B", eng.name, "-i", tag, "--no-network")
    assert res.rc == 0, res
    time.sleep(3)
    res = sh(eak, "h", "busybox cat /tmp/healthcheck 2>/dev/null; echo end")
    assert res.stdout == "end\n", res
    assert eng.inspect("agentkernel-h")["Config"]["Healthcheck"]["Test"] == ["NONE"]
