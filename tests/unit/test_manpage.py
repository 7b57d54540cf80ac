"""The man page, docs/dtrace-tree.1: generated from the command line (docs/manpage.py), so
the committed page is the generated one; it holds every command and option `--help` shows,
every exit code and every variable the code reads; and man renders it without a warning."""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.main import get_command

from tests.support.cli import invoke
from tracer.cli import app
from tracer.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "dtrace-tree.1"


def generator():
    spec = importlib.util.spec_from_file_location("manpage", ROOT / "docs" / "manpage.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def rendered() -> str:
    """The page as man shows it, plain text at 200 columns."""
    out = subprocess.run(
        ["man", "-l", str(PAGE)],
        capture_output=True,
        text=True,
        env={**os.environ, "MANWIDTH": "200", "MAN_KEEP_FORMATTING": "", "MANPAGER": "cat"},
        check=True,
    )
    return re.sub(r".\x08", "", out.stdout)  # overstrike bold, if any


def test_the_committed_page_is_the_one_the_cli_generates():
    assert PAGE.read_text() == generator().page(), (
        "docs/dtrace-tree.1 is stale: python docs/manpage.py > docs/dtrace-tree.1"
    )


@pytest.mark.skipif(shutil.which("man") is None, reason="man-db is not installed")
def test_man_renders_it_without_a_warning():
    warnings = subprocess.run(
        ["man", "--warnings", "-l", str(PAGE)],
        capture_output=True,
        text=True,
        env={**os.environ, "MANWIDTH": "80", "MANPAGER": "cat"},
    )
    assert warnings.returncode == 0 and warnings.stderr == "", warnings.stderr
    text = rendered()
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "EXIT STATUS",
                    "ENVIRONMENT", "FILES", "JSON", "EXAMPLES", "SEE ALSO"):  # fmt: skip
        assert re.search(rf"^{section}$", text, re.M), section


def leaf_commands() -> list[tuple[str, ...]]:
    """Every command that runs something (`lab up`, not `lab`), as its words."""
    root = get_command(app)
    ctx = root.make_context("dtrace-tree", [], resilient_parsing=True)
    return [tuple(sub.command_path.split()[1:]) for _, sub in generator().commands(root, ctx)]


@pytest.mark.skipif(shutil.which("man") is None, reason="man-db is not installed")
@pytest.mark.parametrize("path", leaf_commands(), ids=" ".join)
def test_each_command_s_help_is_in_the_page(path):
    """What `--help` prints for a command (its usage, each option's flags, its examples)
    is what the page says of it."""
    help_text = invoke(*path, "--help").output
    usage = re.search(r"^Usage: \S+ (.+)$", help_text, re.M)  # after the program's name
    assert usage is not None
    page = rendered()
    assert f"dtrace-tree {usage.group(1).strip()}" in page
    listed = help_text.split("Options:")[1].split("Examples:")[0]
    for flags in re.findall(r"^  (-[^ ].*?)(?:  |$)", listed, re.M):
        assert flags.strip() in page, flags
    for example in re.findall(r"^    (dtrace-tree .+)$", help_text, re.M):
        assert example in page, example


def test_every_exit_code_and_every_variable_the_code_reads_is_in_the_page():
    page = PAGE.read_text()
    for code in ExitCode:
        assert re.search(rf"\\fB{int(code)}\\fR\n{code.name}", page), code
    read = set()
    for f in (ROOT / "tracer").rglob("*.py"):
        text = f.read_text()
        read |= set(re.findall(r"""(?:environ|env)\.get\(\s*["']([A-Z_]+)["']""", text))
        read |= set(re.findall(r"""envvar=["']([A-Z_]+)["']""", text))
        read |= set(re.findall(r"""^[A-Z_]*ENV = ["']([A-Z_]+)["']""", text, re.M))
    assert {"DOCKER_HOST", "DTRACE_HOST_ROOT", "NO_COLOR", "DTRACE_LAB_STACK"} <= read
    read -= {"LISTEN_FDS", "LISTEN_PID"}  # read in a dockerd's environment, not the tool's
    environment = page.split(".SH ENVIRONMENT")[1].split(".SH ")[0].replace("\\-", "-")
    assert sorted(v for v in read if v not in environment) == []
