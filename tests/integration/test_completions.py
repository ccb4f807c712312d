# SPDX-License-Identifier: Apache-2.0
"""Shell completion: `completions bash|zsh|fish` and the `__complete` protocol its scripts use.
Candidates come from the verb and option tables and the store; listing a verb's options never
runs the verb (no sandbox made, no data directory created, no server started)."""
import os
import subprocess

from conftest import AK, needs_root

pytestmark = needs_root


def complete(ak, *words):
    """Candidates for the last of words (words[0] is the program)."""
    res = ak("__complete", str(len(words) - 1), *words)
    assert res.rc == 0, res
    return res.stdout.split()


def test_verbs_sub_verbs_and_options(ak):
    assert {"run", "create", "exec", "volume", "completions"} <= set(complete(ak, "agentkernel", ""))
    assert "__complete" not in complete(ak, "agentkernel", "")
    assert {"create", "list", "delete"} <= set(complete(ak, "agentkernel", "volume", ""))
    opts = complete(ak, "agentkernel", "run", "--")
    assert {"--keep", "--image", "--profile", "--help"} <= set(opts), opts
    # below `sandbox`, the same verbs
    assert "--keep" in complete(ak, "agentkernel", "sandbox", "run", "-")


def test_sandbox_names_for_verbs_that_take_one(ak, sandbox):
    assert complete(ak, "agentkernel", "exec", "") == [sandbox]
    assert complete(ak, "agentkernel", "stop", "b") == [sandbox]
    assert complete(ak, "agentkernel", "run", "--", "") == []  # the command's: the shell's


def test_listing_options_runs_nothing(ak, tmp_path):
    """`create --<Tab>` must not create, `run --<Tab>` must not run, and a data directory that
    does not exist yet is not made by completing."""
    for verb in ("create", "run", "remove", "gc"):
        assert "--help" in complete(ak, "agentkernel", verb, "--")
    assert not ak.data_dir.exists() or ak.names() == []
    fresh = tmp_path / "never"
    res = ak("__complete", "2", "agentkernel", "exec", "",
             env={"AGENTKERNEL_DATA_DIR": str(fresh)})
    assert res.rc == 0 and res.stdout == "", res
    assert not fresh.exists()


def test_serve_options_come_from_the_helper_without_serving(ak):
    res = ak("__complete", "2", "agentkernel", "serve", "--", timeout=10)
    assert res.rc == 0 and "--port" in res.stdout.split() and "--host" in res.stdout.split(), res


def test_bash_script_completes(ak, sandbox):
    script = ak("completions", "bash").stdout
    env = dict(ak.env, PATH=os.path.dirname(AK) + ":" + os.environ["PATH"])
    out = subprocess.run(
        ["bash", "-c", script + '\nCOMP_WORDS=(agentkernel ex); COMP_CWORD=1; _agentkernel; '
         'echo "${COMPREPLY[*]}"; COMP_WORDS=(agentkernel run --pro); COMP_CWORD=2; '
         '_agentkernel; echo "${COMPREPLY[*]}"; COMP_WORDS=(agentkernel info ""); COMP_CWORD=2; '
         '_agentkernel; echo "${COMPREPLY[*]}"'],
        env=env, capture_output=True, text=True, timeout=30)
    lines = out.stdout.splitlines()
    assert "exec" in lines[0].split() and "run" not in lines[0].split(), out
    assert lines[1] == "--profile", out
    assert lines[2] == sandbox, out


def test_scripts_for_each_shell_and_a_clear_error_otherwise(ak):
    for shell, marker in (("bash", "complete -o default -F"), ("zsh", "bashcompinit"),
                          ("fish", "complete -c agentkernel")):
        res = ak("completions", shell)
        assert res.rc == 0 and marker in res.stdout and "__complete" in res.stdout, res
    res = ak("completions", "tcsh")
    assert res.rc == 2 and "unknown shell 'tcsh'" in res.stderr, res
