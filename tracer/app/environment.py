"""The world a command runs in, passed in rather than read where it is used: the streams, whether
each is a terminal and how wide, colour (NO_COLOR), the environment variables, and the root
options (--host-root, --debug). On the model of HTTPie's `Environment` (httpie/context.py):
`main` makes one from the process, and a test makes one with StringIO streams and its own
variables (`Environment(stdout=io.StringIO(), environ={...})`) and reads what was written.

Everything a command writes goes through it: its result on stdout (a rich view, JSON, bytes),
notes and the one error line on stderr.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TextIO

PIPED_WIDTH = 160  # piped into a file or a doc, lines are not cut at rich's default of 80


def _stdin() -> TextIO:
    return sys.stdin


def _stdout() -> TextIO:
    return sys.stdout


def _stderr() -> TextIO:
    return sys.stderr


def _environ() -> Mapping[str, str]:
    return os.environ


@dataclass(frozen=True)
class Environment:
    """Streams, terminal, variables and root options of one run (defaults: this process's,
    taken when the Environment is made)."""

    stdin: TextIO = field(default_factory=_stdin)
    stdout: TextIO = field(default_factory=_stdout)
    stderr: TextIO = field(default_factory=_stderr)
    environ: Mapping[str, str] = field(default_factory=_environ)
    host_root: str | None = None  # --host-root, else DTRACE_HOST_ROOT: where the host's / is
    debug: bool = False  # --debug, or DTRACE_DEBUG: errors re-raised with their traceback
    stdout_isatty: bool = field(init=False)
    stderr_isatty: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stdout_isatty", _isatty(self.stdout))
        object.__setattr__(self, "stderr_isatty", _isatty(self.stderr))
        if self.host_root is None and self.environ.get("DTRACE_HOST_ROOT"):
            object.__setattr__(self, "host_root", self.environ["DTRACE_HOST_ROOT"])
        if self.environ.get("DTRACE_DEBUG"):
            object.__setattr__(self, "debug", True)

    def with_options(self, host_root: str | None, debug: bool) -> Environment:
        """The same run with the root options the command line gave (--host-root, --debug)."""
        return dataclasses.replace(self, host_root=host_root, debug=debug)

    # -- the terminal ----------------------------------------------------------------------

    @property
    def colors(self) -> bool:
        """Colour and styles, unless NO_COLOR is set (https://no-color.org)."""
        return not self.environ.get("NO_COLOR")

    def width(self, stderr: bool = False) -> int | None:
        """Columns for a view: COLUMNS if set; None on a terminal (rich measures it); else
        PIPED_WIDTH."""
        columns = self.environ.get("COLUMNS", "")
        if columns.isdigit() and int(columns) > 0:
            return int(columns)
        return None if (self.stderr_isatty if stderr else self.stdout_isatty) else PIPED_WIDTH

    # -- what a command writes -------------------------------------------------------------

    def print(self, renderable: object) -> None:
        """A rich renderable (a tree, a table) on stdout."""
        from tracer.output.terminal.style import console

        console(self.stdout, colors=self.colors, width=self.width()).print(renderable)

    def echo(self, line: str = "") -> None:
        """A line of plain text on stdout (the caller escapes what came from the host)."""
        self.stdout.write(line + "\n")

    def write_json(self, doc: object) -> None:
        """One JSON document on stdout: indented on a terminal, compact in a pipe."""
        from tracer.output import jsondoc

        jsondoc.write(doc, self.stdout, indent=self.stdout_isatty)

    def write_json_lines(self, docs: Iterable[object]) -> None:
        from tracer.output import jsondoc

        jsondoc.write_lines(docs, self.stdout)

    def write_bytes(self, data: bytes) -> None:
        """Bytes on stdout (a diagram with -o -), after the text already buffered."""
        self.stdout.flush()
        raw = getattr(self.stdout, "buffer", None)
        if raw is None:  # a text stream only (a test's StringIO)
            self.stdout.write(data.decode("utf-8", "surrogateescape"))
        else:
            raw.write(data)

    def note(self, line: str) -> None:
        """A one-line remark for people, on stderr (stdout stays clean for --json)."""
        from tracer.untrusted import for_terminal

        self.stderr.write(f"dtrace-tree: {for_terminal(line)}\n")

    def error(self, line: str) -> None:
        """The one error line of a failed command, on stderr."""
        from tracer.untrusted import for_terminal

        self.stderr.write(f"dtrace-tree: error: {for_terminal(line)}\n")

    @contextlib.contextmanager
    def waiting(self, what: str) -> Iterator[None]:
        """A spinner with the time spent, on a terminal's stderr, while something takes a while
        (dot on a big host, a daemon's restart); nothing when stderr is not a terminal."""
        if not self.stderr_isatty:
            yield
            return
        from tracer.output.terminal.style import console, spinner

        on = console(self.stderr, colors=self.colors, width=self.width(stderr=True))
        with spinner(what, on):
            yield


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (ValueError, OSError):  # a closed stream
        return False
