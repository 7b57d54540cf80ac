"""The command line as a user runs it: in this process (typer's CliRunner) or as a whole
process, its one-line errors, what a command imports, and the CLI as an unprivileged user."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, TextIO

from typer.testing import CliRunner

from tests.support import schemas
from tracer.app.environment import Environment

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "tracer"]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def invoke(*args: str, **env: str) -> Any:
    """The CLI in this process (typer's CliRunner), without colour; what it prints with --json
    checked against its JSON Schema (tests/support/schemas.py)."""
    from tracer.cli import app

    result = CliRunner().invoke(app, list(args), env={"NO_COLOR": "1", **env})
    schemas.check_output(args, result.stdout)
    return result


def an_environment(**environ: str) -> Environment:
    """An Environment of the CLI's own (HTTPie's MockEnvironment): StringIO streams, these
    variables and no others. Read what a command wrote with written(env.stdout)."""
    return Environment(
        stdin=io.StringIO(), stdout=io.StringIO(), stderr=io.StringIO(), environ=environ
    )


def run_in(env: Environment, *args: str) -> int:
    """The CLI in this process, in env: its exit code (nothing raised but with --debug)."""
    from typer.main import get_command

    from tracer.cli import app

    code: int = get_command(app).main(list(args), standalone_mode=False, obj=env)
    return code


def written(stream: TextIO) -> str:
    """What was written to a test Environment's stream."""
    assert isinstance(stream, io.StringIO)
    return stream.getvalue()


def run_cli(
    *args: str, check: bool = False, env: dict[str, str] | None = None, **kw: Any
) -> subprocess.CompletedProcess[str]:
    """The real CLI as a whole process, like a user runs it (no colour, 200 columns). What it
    prints with --json is checked against its JSON Schema (tests/support/schemas.py)."""
    proc = subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})},
        timeout=300,
        **kw,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"{args} exited {proc.returncode}: {proc.stderr}")
    if isinstance(proc.stdout, str):
        schemas.check_output(args, proc.stdout)
    return proc


def one_error_line(stderr: str, *words: str) -> str:
    """The single `dtrace-tree: error: ...` line of stderr, holding every word; no traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {lines}"
    assert lines[0].startswith("dtrace-tree: error: "), lines[0]
    assert "Traceback" not in stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


# -- what a command imports -----------------------------------------------------------------------

PROBE = """
import contextlib, io, json, sys
sys.argv = ["dtrace-tree", ARGS]
from tracer.cli import app
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        app(prog_name="dtrace-tree")
    except SystemExit:
        pass
print(json.dumps(sorted(m for m in sys.modules)))
"""

# Modules a reading command should not import (benchmarks/RESULTS.md: each costs tens of
# milliseconds at every start).
HEAVY = {"docker", "requests", "urllib3", "http.client", "psutil"}


def modules_after(*args: str) -> set[str]:
    """The modules imported once the CLI has run with these arguments, in a fresh process."""
    code = PROBE.replace("ARGS", repr(list(args))[1:-1] or "")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


# -- not root -----------------------------------------------------------------------------------

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]


def run_as_nobody(*args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI as an unprivileged user (Debian's python3: the venv's may live under /root)."""
    site = next(Path(sys.prefix, "lib").glob("python3*/site-packages"))
    return subprocess.run(
        [*NOBODY, "/usr/bin/python3", "-m", "tracer", *args], capture_output=True, text=True,
        cwd="/", timeout=120,
        env={"PYTHONPATH": f"{ROOT}:{site}", "PATH": os.environ["PATH"], "NO_COLOR": "1",
             "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/nonexistent"},
    )  # fmt: skip
