"""What every terminal view shares: the console, the colours, and inert text.

Every piece of text from the host goes through `for_terminal` and into a `Text` object, never
into markup, so a container cannot inject escape sequences or rich markup into the output.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import TextIO

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


def console(file: TextIO, colors: bool, width: int | None) -> Console:
    """A console on file: colour and styles on a terminal, none at all when piped or when
    colors is False (NO_COLOR: rich alone would still write bold and dim); width None: rich
    measures the terminal. The CLI's Environment says which (tracer/app/environment.py)."""
    return _Console(
        file=file,
        highlight=False,
        soft_wrap=False,
        width=width,
        color_system="auto" if colors else None,
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
def spinner(what: str, on: Console) -> Iterator[None]:
    """A transient spinner with the time spent, on the console given (stderr's)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=on, transient=True) as bar:
        bar.add_task(for_terminal(what), total=None)
        yield
