"""What every terminal view shares: the console, the colours, and inert text.

Every piece of text from the host goes through `for_terminal` and into a `Text` object, never
into markup, so a container cannot inject escape sequences or rich markup into the output.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable

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


def console() -> Console:
    """stdout console: colour on a TTY, plain when piped or with NO_COLOR (rich decides)."""
    # Piped into a file or a doc, lines should not be cut at rich's default of 80 columns.
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(highlight=False, soft_wrap=False, width=160 if piped else None)


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
