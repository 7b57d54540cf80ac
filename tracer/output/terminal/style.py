"""What every terminal view shares: the console, the colours, and inert text.

Every piece of text from the host goes through `for_terminal` and into a `Text` object, never
into markup, so a container cannot inject escape sequences or rich markup into the output.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator

from rich.console import Console
from rich.text import Text

from tracer.untrusted import for_terminal

MAX_CMDLINE = 120
STYLE = {
    "dockerd": "bold blue",
    "containerd": "bold cyan",
    "shim": "magenta",
    "init": "green",
    "child": "default",
    "exec": "yellow",
    "proxy": "blue",
    "dim": "dim",
    "name": "bold",
}
ON_OFF = {True: "on", False: "off", None: "?"}


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """rich exits with status 1 when the reader of stdout leaves (`show | head`): let the
        CLI's one funnel make that exit 141, as for every other output."""
        self.quiet = True
        raise BrokenPipeError


def console(stderr: bool = False) -> Console:
    """A console on stdout (or stderr): colour and styles on a terminal; none at all when
    piped or with NO_COLOR set (rich alone would still write bold and dim under NO_COLOR)."""
    stream = sys.stderr if stderr else sys.stdout
    # Piped into a file or a doc, lines should not be cut at rich's default of 80 columns.
    piped = not stream.isatty() and "COLUMNS" not in os.environ
    plain = bool(os.environ.get("NO_COLOR"))
    return _Console(
        file=stream,
        highlight=False,
        soft_wrap=False,
        width=160 if piped else None,
        color_system=None if plain else "auto",
    )


def text(*parts: tuple[str, str] | str) -> Text:
    """A Text from (text, style) parts; every text part is escaped for the terminal."""
    out = Text()
    for part in parts:
        if isinstance(part, tuple):
            out.append(for_terminal(part[0]), style=part[1])
        else:
            out.append(for_terminal(part))
    return out


def cmdline(argv: Iterable[str], limit: int = MAX_CMDLINE) -> str:
    """A command line on one line, cut with an ellipsis at limit characters."""
    joined = " ".join(argv)
    return joined if len(joined) <= limit else joined[: limit - 1] + "…"


@contextlib.contextmanager
def spinner(what: str) -> Iterator[None]:
    """A transient spinner with the time spent, on stderr."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console(stderr=True), transient=True) as bar:
        bar.add_task(for_terminal(what), total=None)
        yield
