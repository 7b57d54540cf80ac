"""The command line itself: every command documents itself, both entry points work."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from tracer.cli import app


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
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_python_dash_m_and_the_console_script_are_the_same_app():
    by_module = subprocess.run(
        [sys.executable, "-m", "tracer", "--help"], capture_output=True, text=True
    )
    assert by_module.returncode == 0 and "survive" in by_module.stdout
    script = shutil.which("dtrace-tree", path=str(Path(sys.executable).parent))
    assert script, "the dtrace-tree console script is not installed"
    by_script = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert by_script.stdout == by_module.stdout


def test_usage_errors_are_one_line_and_exit_2():
    result = subprocess.run(
        [sys.executable, "-m", "tracer", "show", "--no-such-flag"], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
