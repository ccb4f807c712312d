# SPDX-License-Identifier: Apache-2.0
"""agentkernel.toml: read at create/run, recorded in the sandbox, applied at every start."""
import json
import os

import pytest


def write(d, text, ak=None):
    """Writes d/agentkernel.toml and, given ak, approves it as a user would (agentkernel trust):
    an unapproved config is refused (tests/security/sandbox/test_planted_config.py)."""
    (d / "agentkernel.toml").write_text(text)
    os.chmod(d / "agentkernel.toml", 0o644)
    if ak is not None:
        res = ak("trust", "--yes", d / "agentkernel.toml")
        assert res.rc == 0, res
    return d


@pytest.fixture
def proj(tmp_path):
    d = tmp_path / "proj"
    d.mkdir()
    (d / "hello.txt").write_text("hello from the host\n")
    return d


def audit(ak):
    res = ak("audit", "--json", "--last", "0")
    assert res.rc == 0, res
    return json.loads(res.out)


def test_init_writes_a_starter_and_never_overwrites(ak, proj):
    res = ak("init", "-n", "starter", cwd=proj)
    assert res.rc == 0, res
    text = (proj / "agentkernel.toml").read_text()
    assert 'name = "starter"' in text and 'preferred = "claude"' in text
    assert "memory_mb = 512" in text
    res = ak("init", cwd=proj)
    assert res.rc == 1 and "already exists" in res.stderr
    assert (proj / "agentkernel.toml").read_text() == text
    assert ak("init", "-a", "nosuch", cwd=proj).rc == 2


def test_create_applies_the_file(ak, proj):
    write(proj, """
[sandbox]
name = "fromfile"
init_script = "echo ran > /tmp/init-ran"

[agent]
git_name = "Ada"
git_email = "ada@example.com"

[resources]
memory_mb = 256

[security]
network = false

[[files]]
source = "hello.txt"
dest = "/tmp/injected/hello.txt"
mode = "0600"
""", ak)
    res = ak("create", cwd=proj)
    assert res.rc == 0, res
    st = ak.state("fromfile")
    assert st["memory_mb"] == 256 and st["init_script"] == "echo ran > /tmp/init-ran"
    out = ak("exec", "fromfile", "--", "sh", "-c",
             "cat /tmp/init-ran /tmp/injected/hello.txt; stat -c %a /tmp/injected/hello.txt;"
             "git config user.email 2>/dev/null || echo $GIT_CONFIG_VALUE_1")
    assert out.rc == 0, out
    assert out.stdout.split("\n")[:4] == ["ran", "hello from the host", "600", "ada@example.com"]
    # the files and the script come back on every start
    assert ak("stop", "fromfile").rc == 0
    assert ak("start", "fromfile").rc == 0
    assert ak("exec", "fromfile", "--", "cat", "/tmp/injected/hello.txt").stdout == \
        "hello from the host\n"


def test_flags_win_over_the_file_and_no_config_skips_it(ak, proj):
    write(proj, '[sandbox]\nname = "f"\n[resources]\nmemory_mb = 256\n', ak)
    assert ak("create", "a", "--no-start", "--memory", "300", cwd=proj).rc == 0
    assert ak.state("a")["memory_mb"] == 300
    assert ak("create", "b", "--no-start", "--no-config", cwd=proj).rc == 0
    assert ak.state("b")["memory_mb"] == 512
    assert ak("create", "c", "--no-start", "--config", proj / "agentkernel.toml").rc == 0
    assert ak.state("c")["memory_mb"] == 256


def test_bad_file_is_refused_with_its_position_and_nothing_is_created(ak, proj):
    write(proj, '[sandbox]\nname = "x"\n[resources]\nmemory_mb = "lots"\n')
    res = ak("create", cwd=proj)
    assert res.rc == 2 and "[resources] memory_mb: expected a non-negative integer" in res.stderr
    write(proj, '[sandbox]\nname = "x"\nname = "y"\n')
    res = ak("create", cwd=proj)
    assert res.rc == 2 and "line 3, column 1: duplicate key 'name'" in res.stderr, res
    write(proj, '[[files]]\nsource = "missing.txt"\ndest = "/tmp/m"\n')
    res = ak("create", "x", cwd=proj)
    assert res.rc == 2 and "missing.txt" in res.stderr
    assert ak.names() == []


def test_unknown_keys_warn(ak, proj):
    write(proj, '[sandbox]\nname = "w"\ncolour = "blue"\n[ssh]\nenabled = true\n', ak)
    res = ak("create", "--no-start", cwd=proj)
    assert res.rc == 0, res
    assert "unknown key 'colour' in [sandbox]" in res.stderr
    assert "[ssh] is not supported" in res.stderr


def test_secrets_section_binds_vault_secrets(ak, proj):
    """[secrets] NAME = "host" / {host, header}: a binding where the vault has NAME (its value
    never read from the file or the environment), a warning where it does not; `backend` is
    warned about; every entry shows in secret_mappings."""
    assert ak("secret", "set", "OPENAI_API_KEY", input=b"sk-config-test").rc == 0
    assert ak("secret", "set", "ANTHROPIC_API_KEY", input=b"sk-ant-config-test").rc == 0
    write(proj, '[sandbox]\nname = "sec"\n[secrets]\nbackend = "file"\n'
                'OPENAI_API_KEY = "api.openai.com"\n'
                'ANTHROPIC_API_KEY = { host = "api.anthropic.com", header = "x-api-key" }\n'
                'MISSING_KEY = "api.missing.example"\n', ak)
    res = ak("create", "--no-start", cwd=proj, env={"MISSING_KEY": "from-env"})
    assert res.rc == 0, res
    assert "[secrets] backend is not read" in res.stderr
    assert "[secrets] MISSING_KEY: not in the vault" in res.stderr
    st = ak.state("sec")
    assert sorted(st["secret_bindings"]) == ["ANTHROPIC_API_KEY:api.anthropic.com:x-api-key",
                                             "OPENAI_API_KEY:api.openai.com"]
    assert st["secret_mappings"]["MISSING_KEY"] == "api.missing.example"
    assert b"from-env" not in ak.state_file("sec").read_bytes()
    assert b"sk-" not in ak.state_file("sec").read_bytes()


def test_secrets_section_refuses_bad_entries(ak, proj):
    for text in ('[secrets]\nK = "host:8443"\n', '[secrets]\nK = 3\n',
                 '[secrets]\n"K=v" = "api.example.com"\n', '[secrets]\nK = "nodots"\n'):
        write(proj, '[sandbox]\nname = "bad"\n' + text)
        res = ak("trust", "--yes", proj / "agentkernel.toml")
        assert res.rc != 0, (text, res)


def test_init_script_failure_stops_the_sandbox_and_reports_its_code(ak, proj):
    write(proj, '[sandbox]\nname = "bad"\ninit_script = "echo boom >&2; exit 3"\n'
                '[security]\nnetwork = false\n', ak)
    res = ak("create", cwd=proj)
    assert res.rc == 1, res
    assert "init script failed (exit code 3): boom" in res.stderr
    info = json.loads(ak("info", "--json", "bad").out)
    assert info["status"] == "stopped"
    ev = [e for e in audit(ak) if e["type"] == "sandbox_error"]
    assert ev and "exit code 3" in ev[-1]["error"]
    assert ak("start", "bad").rc == 1  # and again on every start


def test_run_gets_files_and_init_script(ak, proj):
    write(proj, '[sandbox]\ninit_script = "echo x > /tmp/i"\n[security]\nnetwork = false\n'
                '[[files]]\nsource = "hello.txt"\ndest = "/tmp/h.txt"\n', ak)
    res = ak("run", "--", "cat", "/tmp/i", "/tmp/h.txt", cwd=proj)
    assert res.rc == 0, res
    assert res.stdout == "x\nhello from the host\n"
    assert ak.names() == []


@pytest.mark.parametrize("dest", ["/etc/greet.txt", "/usr/local/bin/tool", "/etc"])
def test_files_into_the_host_images_read_only_trees_are_refused_at_create(ak, proj, dest):
    """The host image's /etc, /usr, /bin, /lib... are the host's, read-only and shared: a
    [[files]] entry there is refused at create, saying why and what to do, and nothing is
    recorded (it used to record the sandbox and fail every start)."""
    write(proj, '[security]\nnetwork = false\n'
                f'[[files]]\nsource = "hello.txt"\ndest = "{dest}"\n', ak)
    res = ak("create", "f", cwd=proj)
    assert res.rc != 0 and "read-only and shared" in res.stderr and dest in res.stderr, res
    assert ak.names() == []


POLICY = """
[sandbox]
name = "pol"
[security]
network = false
[security.commands]
block = ["wget", "nc"]
"""


def test_blocked_commands_are_refused_and_audited(ak, proj, tmp_path):
    write(proj, POLICY, ak)
    assert ak("create", cwd=proj).rc == 0
    other = tmp_path / "elsewhere"
    other.mkdir()
    # the policy lives in the sandbox's record: exec from any directory enforces it (Q2)
    for argv in (["wget"], ["/usr/bin/wget"], ["nc", "-h"]):
        res = ak("exec", "pol", "--", *argv, cwd=other)
        assert res.rc == 126, res
        assert "blocked by the command policy" in res.stderr
    res = ak("exec", "pol", "-d", "--", "wget", cwd=other)
    assert res.rc == 126, res
    assert ak("exec", "pol", "--", "true").rc == 0
    v = [e for e in audit(ak) if e["type"] == "policy_violation"]
    assert len(v) == 4
    assert v[0]["sandbox"] == "pol" and v[0]["policy"] == "commands"
    assert "blocked command: wget" in v[0]["details"]


def test_a_symlink_does_not_get_around_a_block(ak, proj):
    write(proj, POLICY.replace('"wget", "nc"', '"cat"'), ak)
    assert ak("create", cwd=proj).rc == 0
    assert ak("exec", "pol", "--", "sh", "-c", "ln -s $(command -v cat) /tmp/kitty").rc == 0
    res = ak("exec", "pol", "--", "/tmp/kitty", "/etc/hostname")
    assert res.rc == 126 and "blocked" in res.stderr, res
    # what a policy cannot stop, as documented: a shell runs what it likes
    assert ak("exec", "pol", "--", "sh", "-c", "cat /etc/hostname").rc == 0


def test_allowlist_only(ak, proj):
    write(proj, """
[sandbox]
name = "allow"
[security]
network = false
[security.commands]
allow = ["echo", "ls", "sh"]
allowlist_only = true
""", ak)
    assert ak("create", cwd=proj).rc == 0
    assert ak("exec", "allow", "--", "echo", "ok").stdout == "ok\n"
    assert ak("exec", "allow", "--", "ls", "/").rc == 0
    res = ak("exec", "allow", "--", "cat", "/etc/hostname")
    assert res.rc == 126 and "allow list" in res.stderr
    # a link named like an allowed command but pointing elsewhere is refused
    assert ak("exec", "allow", "--", "sh", "-c", "ln -s $(command -v cat) /tmp/ls").rc == 0
    res = ak("exec", "allow", "--", "/tmp/ls", "/etc/hostname")
    assert res.rc == 126, res
    res = ak("exec", "allow", "--", "nosuchcommand")
    assert res.rc == 126


def test_run_checks_the_policy_before_starting(ak, proj):
    write(proj, POLICY, ak)
    res = ak("run", "--", "wget", cwd=proj)
    assert res.rc == 126 and "blocked" in res.stderr
    assert ak("run", "--", "true", cwd=proj).rc == 0


def test_seccomp_filter_from_the_file(ak, proj):
    write(proj, '[sandbox]\nname = "sc"\n[security]\nnetwork = false\nseccomp = "restrictive"\n', ak)
    assert ak("create", cwd=proj).rc == 0
    assert ak.state("sc")["x_agentkernel"]["seccomp"] == "restrictive"
    # ioprio_set is outside the restrictive allow-list, allowed by moderate's deny-list filter
    res = ak("exec", "sc", "--", "ionice", "-c", "3", "true")
    assert res.rc != 0 and "not permitted" in res.stderr, res
    assert ak("create", "plain", "--no-network", "--no-config").rc == 0
    assert ak("exec", "plain", "--", "ionice", "-c", "3", "true").rc == 0
    write(proj, '[security]\nseccomp = "/etc/custom.json"\n')
    res = ak("create", "x", "--no-start", cwd=proj)
    assert res.rc == 2 and "custom JSON" in res.stderr
