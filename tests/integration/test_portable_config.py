# SPDX-License-Identifier: Apache-2.0
"""export-config / import-config (upstream's): what travels (name, image, init script,
resources, agent, ports), exactly; what does not (anything of this host, security settings) is
named and not applied; the file read is bounded and cannot hang the CLI."""
import json
import os

from conftest import needs_root

pytestmark = needs_root

SCRIPT = 'echo "a \\"quoted\\" \\\\ line"\nprintf "%s\\t\\n" tab > /tmp/i'


def test_round_trip_keeps_what_travels(ak, tmp_path):
    init = tmp_path / "agentkernel.toml"
    assert ak("create", "src", "--no-start", "-p", "8081:80", "-p", "53/udp", "--memory", "300",
              "--cpus", "2", "-a", "claude").rc == 0
    # an init script with quotes, a backslash, a tab and a newline: escaped, read back exactly
    st = ak.state_file("src")
    doc = json.loads(st.read_text())
    doc.setdefault("x_agentkernel", {})["init_script"] = SCRIPT
    st.write_text(json.dumps(doc))
    out = ak("export-config", "src")
    assert out.rc == 0, out
    init.write_text(out.stdout)
    res = ak("import-config", str(init), "--as", "dst")
    assert res.rc == 0 and "created from config" in res.stdout, res
    a, b = ak("export-config", "src").stdout, ak("export-config", "dst").stdout
    assert a.replace("src", "X") == b.replace("dst", "X"), (a, b)
    info = json.loads(ak("info", "--json", "dst").out)
    assert info["memory_mb"] == 300 and info["vcpus"] == 2, info
    assert info["ports"] == ["8081:80", "53/udp"], info
    assert info["status"] == "stopped"


def test_security_and_host_settings_are_not_imported(ak, tmp_path):
    f = tmp_path / "evil.toml"
    (tmp_path / "secret.txt").write_text("host file")
    f.write_text('[sandbox]\nname = "imp"\n[security]\nprofile = "permissive"\n'
                 'mount_cwd = true\n[[files]]\nsource = "secret.txt"\ndest = "/tmp/s"\n')
    res = ak("import-config", str(f))
    assert res.rc == 0, res
    assert "not imported: [security]" in res.stderr and "not imported: [[files]]" in res.stderr
    info = json.loads(ak("info", "--json", "imp").out)
    assert info["profile"] == "moderate", info


def test_a_file_without_a_name_needs_as(ak, tmp_path):
    f = tmp_path / "noname.toml"
    f.write_text("[resources]\nmemory_mb = 256\n")
    res = ak("import-config", str(f))
    assert res.rc == 1 and "--as" in res.stderr, res
    assert ak("import-config", str(f), "--as", "named").rc == 0


def test_bad_files_are_refused_without_hanging(ak, tmp_path):
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    res = ak("import-config", str(fifo), timeout=20)
    assert res.rc != 0, res
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (2 << 20) + "\n")
    res = ak("import-config", str(big))
    assert res.rc == 1 and "1 MiB" in res.stderr, res
    bad = tmp_path / "bad.toml"
    bad.write_text('[sandbox]\nname = "x"\n[resources]\nmemory_mb = "lots"\n')
    assert ak("import-config", str(bad)).rc == 1
    assert ak.names() == []
