"""The command line itself: every command documents itself, both entry points are one app, and
every failure is one line on stderr with its documented exit code."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command

from tests.support.cli import ROOT, invoke, one_error_line
from tests.support.topologies import containerd, dockerd, engine, running
from tracer.cli import app
from tracer.errors import ExitCode
from tracer.model.topology import Topology


def _commands(group, prefix=()):
    for name, cmd in sorted(group.commands.items()):
        yield (*prefix, name), cmd
        if hasattr(cmd, "commands"):
            yield from _commands(cmd, (*prefix, name))


COMMANDS = list(_commands(get_command(app)))


def test_every_command_is_reachable():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert names >= {"show", "ns", "export", "survive", "lab", "lab up", "lab down", "lab status"}


@pytest.mark.parametrize(
    ("path", "cmd"), COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else ""
)
def test_every_command_and_option_has_help(path, cmd):
    assert (cmd.help or "").strip(), f"{' '.join(path)} has no help"
    for param in cmd.params:
        if param.param_type_name == "option":
            assert (param.help or "").strip(), f"{' '.join(path)} {param.opts} has no help"
    result = invoke(*path, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output


@pytest.mark.parametrize(
    "args",
    [(*path, "--help") for path, _ in COMMANDS]
    + [("show", "--bogus"), ("ns", "--all", "--type", "bogus"), ("nosuch",), ("--version",)],
    ids=" ".join,
)
def test_the_app_made_for_one_command_answers_as_the_whole_app(args):
    """main() builds only the command it runs (only_invoked): the same help, errors, exits."""
    from typer.testing import CliRunner

    from tracer.cli.core import only_invoked

    lean, whole = (
        CliRunner().invoke(a, list(args), env={"NO_COLOR": "1"})
        for a in (only_invoked(app, args), app)
    )
    assert (lean.exit_code, lean.output) == (whole.exit_code, whole.output)
    if args[0] in {p[0] for p, _ in COMMANDS}:
        assert only_invoked(app, args) is not app  # one command was made, not all


def example_lines(cmd) -> list[str]:
    """The command lines of its examples (what each does is indented further)."""
    return [line.strip() for line in (cmd.epilog or "").splitlines() if line.startswith("  dtr")]


@pytest.mark.parametrize(
    ("path", "cmd"),
    [(p, c) for p, c in COMMANDS if not hasattr(c, "commands")],
    ids=lambda v: " ".join(v) if isinstance(v, tuple) else "",
)
def test_every_command_has_examples_that_parse(path, cmd):
    """`--help` ends with examples of the command itself, and each one is a valid command
    line: click parses it (options, their values, arguments) as it would parse the user's."""
    assert (cmd.epilog or "").startswith("Examples:"), f"{' '.join(path)} has no examples"
    lines = example_lines(cmd)
    assert lines, f"{' '.join(path)}: no example command line"
    assert "Examples:" in invoke(*path, "--help").output
    for line in lines:
        words = shlex.split(line.split(" | ")[0].split(" > ")[0])
        assert words[: 1 + len(path)] == ["dtrace-tree", *path], line
        cmd.make_context(" ".join(path), words[1 + len(path) :])  # raises a UsageError if wrong


def test_the_root_help_has_examples_of_the_main_commands():
    root = get_command(app)
    lines = example_lines(root)
    assert {line.split()[1] for line in lines} >= {"show", "ns", "trace", "survive"}
    assert all(line.split()[1] in root.commands for line in lines)


def test_python_dash_m_and_the_console_script_are_the_same_app():
    by_module = subprocess.run(
        [sys.executable, "-m", "tracer", "--help"], capture_output=True, text=True
    )
    assert by_module.returncode == 0 and "survive" in by_module.stdout
    script = shutil.which("dtrace-tree", path=str(Path(sys.executable).parent))
    assert script, "the dtrace-tree console script is not installed"
    by_script = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert by_script.stdout == by_module.stdout


def test_the_exit_codes_are_those_documented_and_signals_are_as_a_shell_says():
    documented = re.findall(r"^\| (\d+) \|", (ROOT / "docs" / "exit-codes.md").read_text(), re.M)
    assert sorted(int(code) for code in documented) == sorted(ExitCode)
    assert ExitCode.INTERRUPTED == 128 + signal.SIGINT
    assert ExitCode.BROKEN_PIPE == 128 + signal.SIGPIPE


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["show", "--no-such-flag"], ["No such option: --no-such-flag", "dtrace-tree show --help"]),
        (["frobnicate"], ["No such command 'frobnicate'", "(see: dtrace-tree --help)"]),
        (["survive", "--timeout", "-5"], ["-5.0 is not in the range x>=1.0"]),
        (["show", "-H", ""], ["-H is empty", "-H all"]),
        (["export", "--compact", "--full", "--from", "x"], ["choose --compact or --full"]),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args, words):
    result = subprocess.run([sys.executable, "-m", "tracer", *args], capture_output=True, text=True)
    assert result.returncode == ExitCode.USAGE, result.stderr
    one_error_line(result.stderr, *words)
    assert result.stdout == ""


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_h_is_help_everywhere(flag):
    for path in ([], ["show"], ["lab", "up"]):
        result = invoke(*path, flag)
        assert result.exit_code == 0 and "Usage:" in result.output, path


def test_version():
    from tracer import __version__

    result = invoke("--version")
    assert (result.exit_code, result.output) == (0, f"dtrace-tree {__version__}\n")


def test_debug_is_taken_after_the_command_too():
    out = run_planted('RuntimeError("boom")', "show", "--debug")
    assert "Traceback (most recent call last)" in out.stderr
    out = run_planted('RuntimeError("boom")', "show", "--json", "--traceback")
    assert "Traceback (most recent call last)" in out.stderr


# -- the error funnel, with a failure planted where the command calls the core ---------------

PLANT = """
import sys
import tracer.runtimes

def planted(*args, **kwargs):
    raise {error}

tracer.runtimes.observe = planted
sys.argv = ["dtrace-tree", *sys.argv[1:]]
from tracer.cli import main
main()
"""


def run_planted(error: str, *args: str) -> subprocess.CompletedProcess[str]:
    code = PLANT.format(error=error)
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )


def test_a_tracer_error_is_its_line_and_its_code():
    out = run_planted('__import__("tracer.errors").errors.EngineError("down", "start it")', "show")
    assert out.returncode == ExitCode.ENGINE
    assert one_error_line(out.stderr) == "dtrace-tree: error: down (start it)"


def test_an_unexpected_error_is_one_line_exit_1_and_names_debug():
    out = run_planted('RuntimeError("boom\\nsecond line")', "show", "--json")
    assert out.returncode == ExitCode.FAILURE
    line = one_error_line(out.stderr, "internal error: RuntimeError: boom", "--debug")
    assert "\\n" in line  # the newline of the message is shown, not obeyed
    assert out.stdout == ""


@pytest.mark.parametrize("how", [["--debug"], ["--traceback"]])
def test_debug_re_raises_with_the_traceback(how):
    out = run_planted('RuntimeError("boom")', *how, "show")
    assert out.returncode == 1
    assert "Traceback (most recent call last)" in out.stderr
    assert "RuntimeError: boom" in out.stderr


def test_debug_from_the_environment():
    code = PLANT.format(error='RuntimeError("boom")')
    out = subprocess.run(
        [sys.executable, "-c", code, "show"],
        capture_output=True,
        text=True,
        env={"DTRACE_DEBUG": "1", "PATH": "/usr/bin:/bin"},
    )
    assert "Traceback (most recent call last)" in out.stderr


def test_ctrl_c_exits_130_with_one_line():
    out = run_planted("KeyboardInterrupt()", "show")
    assert out.returncode == ExitCode.INTERRUPTED == 130
    assert one_error_line(out.stderr) == "dtrace-tree: error: interrupted"


def test_a_reader_that_left_exits_141_quietly():
    out = run_planted("BrokenPipeError()", "show")
    assert out.returncode == ExitCode.BROKEN_PIPE == 141
    assert out.stderr == ""


def test_a_real_closed_pipe_exits_141(tmp_path):
    """`dtrace-tree ... | head -c 1` on output far larger than the pipe's buffer."""
    big = tmp_path / "big.json"
    many = [running(f"{i:064x}", f"c-{i}", 10_000 + 2 * i, [10_001 + 2 * i]) for i in range(500)]
    topo = Topology(engines=[engine(dockerd(), containerd(), containers=many)])
    big.write_text(json.dumps(topo.to_json()))
    script = f"{sys.executable} -m tracer export --from {big} --dot -o /dev/stdout | head -c 1"
    out = subprocess.run(
        ["bash", "-c", script + '; echo "${PIPESTATUS[0]}" >&2'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stderr.strip().splitlines()[-1] == "141", out.stderr
    assert "Traceback" not in out.stderr


def test_lab_down_that_left_something_exits_5_naming_it(monkeypatch):
    from tracer.ops import lab

    left = lab.Teardown(removed=["dockerd 7"], left=["directory /x (Permission denied)"])
    # every stack's lab is taken down; the 2023 one left something
    monkeypatch.delenv("DTRACE_LAB_STACK", raising=False)
    monkeypatch.setattr(
        lab, "down", lambda paths, progress, only: {"2023": left}.get(paths.stack, lab.Teardown())
    )
    monkeypatch.setattr(lab, "require_root", lambda what="": None)
    result = invoke("lab", "down")
    assert result.exit_code == ExitCode.ENGINE
    assert result.output.strip().splitlines() == [
        "dtrace-tree: error: lab down removed 1 items, but could not remove: "
        "directory /x (Permission denied) (remove these by hand, or run `dtrace-tree lab down` "
        "again)"
    ]


# -- saved snapshots, pipes and colours -----------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    """The recorded lab as `show --json` wrote it."""
    from tests.support.topologies import LAB_SNAPSHOT

    return str(LAB_SNAPSHOT)


@pytest.mark.parametrize("args", [["show"], ["show", "--json"], ["ns"], ["ns", "--json"]])
def test_a_closed_pipe_exits_141_quietly_in_every_mode(saved, args):
    proc = subprocess.Popen(
        [sys.executable, "-m", "tracer", *args, "--from", saved],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader left before anything was written
    assert proc.wait(timeout=60) == ExitCode.BROKEN_PIPE
    assert proc.stderr.read() == b""


def test_no_color_means_no_escape_sequence_at_all_on_a_terminal(saved):
    def on_a_terminal(**env: str) -> str:
        cmd = f"{sys.executable} -m tracer show --from {saved}"
        return subprocess.run(
            ["script", "-qc", cmd, "/dev/null"],
            capture_output=True,
            text=True,
            env={**{k: v for k, v in os.environ.items() if k != "NO_COLOR"}, **env},
        ).stdout

    assert "\x1b[" in on_a_terminal(TERM="xterm")  # colours and bold by default
    assert "lab-web" in on_a_terminal(NO_COLOR="1", TERM="xterm")
    assert "\x1b[" not in on_a_terminal(NO_COLOR="1", TERM="xterm")


@pytest.mark.parametrize(
    "named", [{"schema": "dtrace-tree/survive/1"}, {}], ids=["report", "report-before-schema"]
)
def test_show_from_a_saved_snapshot_or_a_survive_report(saved, tmp_path, named):
    from_show = invoke("show", "--from", saved, "lab-web")
    assert from_show.exit_code == 0 and "lab-web" in from_show.output
    doc = json.loads(Path(saved).read_text())
    report = tmp_path / "survive.json"
    report.write_text(json.dumps({**named, "verdict": "survived", "during": {"topology": doc}}))
    from_report = invoke("show", "--from", str(report), "lab-web")
    assert from_report.output == from_show.output
    ns = invoke("ns", "--from", saved, "lab-sidecar")
    assert ns.exit_code == 0 and "shared with lab-web" in ns.output


def test_a_long_wait_shows_a_spinner_on_a_terminal_and_nothing_in_a_pipe(tmp_path):
    from tests.support.topologies import diagram_host

    snap = tmp_path / "big.json"
    snap.write_text(json.dumps(diagram_host(60).to_json()))
    cmd = f"{sys.executable} -m tracer export --from {snap} --svg -o {tmp_path / 'a.svg'}"
    on_a_terminal = subprocess.run(
        ["script", "-qc", cmd, "/dev/null"], capture_output=True, text=True, timeout=120
    ).stdout
    assert "drawing 62 containers with Graphviz's dot (svg)" in on_a_terminal
    piped = subprocess.run(cmd.split(), capture_output=True, text=True, timeout=120)
    assert "drawing 62 containers with Graphviz" not in piped.stderr


def test_lab_up_without_an_extra_starts_none(monkeypatch):
    """`lab up` alone starts no extra dockerd (an empty list is none, not all)."""
    from tracer.ops.labconfig import LabPaths
    from tracer.ops.stacks import extras

    assert extras.of(LabPaths(), []) == []
    assert [e.extra.name for e in extras.of(LabPaths())] == list(extras.EXTRAS)
    started = []
    monkeypatch.setattr(extras.daemon, "start_detached", lambda *a, **k: started.append(a))
    extras.up(LabPaths(), [], bins=None, progress=lambda _m: None)
    assert started == []
