"""The Environment a command runs in is passed in: a test hands the CLI its own streams and
variables (HTTPie's MockEnvironment), and every byte the command writes, every variable it
reads, and the one error line are in that Environment, not in the process's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import an_environment as an_env
from tests.support.cli import one_error_line, written
from tests.support.cli import run_in as run
from tests.support.topologies import LAB_SNAPSHOT
from tracer.app.environment import PIPED_WIDTH
from tracer.app.service import Service
from tracer.errors import DeniedError, ExitCode


def test_a_command_writes_to_its_environment_not_to_the_process(capfd):
    env = an_env(NO_COLOR="1")
    assert run(env, "show", "--from", str(LAB_SNAPSHOT), "lab-web") == 0
    assert "lab-web" in written(env.stdout) and "\x1b[" not in written(env.stdout)
    assert capfd.readouterr() == ("", "")  # nothing went to the real stdout or stderr


def test_json_is_compact_in_a_pipe():
    env = an_env()
    assert run(env, "show", "--json", "--from", str(LAB_SNAPSHOT)) == 0
    text = written(env.stdout)
    assert text.count("\n") == 1  # one compact line: stdout is no terminal
    names = {c["name"] for e in json.loads(text)["engines"] for c in e["containers"]}
    assert {"lab-web", "lab-sidecar"} <= names


def test_from_stdin_reads_the_environment_s_stdin():
    env = an_env()
    env.stdin.write(LAB_SNAPSHOT.read_text())
    env.stdin.seek(0)
    assert run(env, "ns", "--from", "-", "lab-sidecar") == 0
    assert "shared with lab-web" in written(env.stdout)


def test_an_error_is_one_line_on_the_environment_s_stderr(tmp_path: Path):
    env = an_env()
    code = run(env, "show", "--from", str(tmp_path / "missing.json"))
    assert code == ExitCode.USAGE
    one_error_line(written(env.stderr), "--from", "No such file or directory")
    assert written(env.stdout) == ""


def test_usage_errors_name_the_command_s_help():
    env = an_env()
    assert run(env, "show", "--no-such-flag") == ExitCode.USAGE
    one_error_line(
        written(env.stderr), "No such option: --no-such-flag", "(see: dtrace-tree show --help)"
    )


def blind(top: Path) -> str:
    """A host's / whose /proc has processes but no kthreadd: another PID namespace's."""
    (top / "proc" / "1").mkdir(parents=True)
    return str(top)


def test_the_host_root_comes_from_the_environment_s_variables(tmp_path: Path):
    """DTRACE_HOST_ROOT in the Environment (not in the process's): a / whose /proc shows no
    kthreadd is refused, exit 3, before anything is read."""
    blind(tmp_path)
    env = an_env(DTRACE_HOST_ROOT=str(tmp_path))
    assert env.host_root == str(tmp_path)
    assert run(env, "show", "--json") == ExitCode.PERMISSION
    one_error_line(written(env.stderr), f"{tmp_path}/proc has no kthreadd", "--pid=host")
    with pytest.raises(DeniedError):
        Service(env).root()


def test_the_option_outranks_the_variable(tmp_path: Path):
    env = an_env(DTRACE_HOST_ROOT=str(tmp_path))
    assert run(env, "--host-root", str(tmp_path / "nowhere"), "fs", "x") == ExitCode.USAGE
    one_error_line(written(env.stderr), f"--host-root {tmp_path / 'nowhere'}: no such directory")


def test_debug_from_the_environment_re_raises(tmp_path: Path):
    env = an_env(DTRACE_DEBUG="1")
    with pytest.raises(DeniedError):
        run(env, "--host-root", blind(tmp_path), "show")


def test_the_engine_the_docker_cli_would_choose_is_the_environment_s():
    env = an_env(DOCKER_HOST="unix:///run/dtrace-lab/docker.sock")
    assert Service(env).chosen_engine() == "unix:///run/dtrace-lab/docker.sock"
    assert "(from DOCKER_HOST; -H all shows every engine)" in written(env.stderr)
    assert Service(an_env(DOCKER_HOST="unix:///x.sock"), engine="all").chosen_engine() is None


def test_width_and_colour_come_from_the_environment():
    assert an_env().width() == PIPED_WIDTH  # piped: not cut at 80 columns
    assert an_env(COLUMNS="100").width() == 100
    assert an_env().colors and not an_env(NO_COLOR="1").colors


def test_a_group_alone_shows_its_help_on_stderr_exit_2():
    for args in ([], ["lab"]):
        env = an_env()
        assert run(env, *args) == ExitCode.USAGE
        assert written(env.stderr).startswith(
            f"Usage: dtrace-tree {' '.join(args)}".rstrip() + " [OPTIONS]"
        )
        assert written(env.stdout) == ""
    env = an_env()
    assert run(env, "--debug") == ExitCode.USAGE
    one_error_line(written(env.stderr), "Missing command.")
