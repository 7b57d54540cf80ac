"""Graphviz DOT: what every diagram shares, and turning DOT into SVG, PNG or PDF.

tracer/output/diagram is the only package that imports `graphviz`. Building DOT source is pure
(a model in, a string out) and deterministic: everything is sorted, and the only time in it is
the snapshot's own `host.taken_at`, so one snapshot always gives byte-identical DOT. `render`
then pipes that source through Graphviz's `dot` binary.

Every piece of text from the host is untrusted (container command lines and names are chosen
by whoever built the image or ran the process). Labels are plain DOT strings, never HTML-like
labels, and each piece goes through `dot_text`: `for_terminal` makes controls visible, then
backslashes are doubled (DOT reads `\\N`, `\\G`, `\\l`, `\\n` in labels as escapes) and `&`
becomes `&amp;` (Graphviz decodes entities in plain labels too). `graphviz.nohtml` stops a
label that looks like `<...>` from being taken as an HTML label, and `graphviz.quote` escapes
double quotes. Graphviz escapes `<`, `>` and `&` itself when it writes SVG, so nothing from a
container becomes markup. Node and cluster names are made here from PIDs and sanitised ids.
"""

from __future__ import annotations

import contextlib
import math
import re
import textwrap
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import PurePath
from typing import Any

import graphviz

from tracer.errors import MissingBinaryError, TracerError
from tracer.model.topology import Container, Process, Topology, natural_key
from tracer.untrusted import for_terminal

FORMATS = ("svg", "png", "pdf", "dot")
FONT = "DejaVu Sans"
WRAP = 40  # characters per label line of a command line
LARGE = 50  # containers: from here dot's layout work is bounded (see graph)

# The colours of every diagram, so that a daemon, a container's init or a runc step look the
# same in each (fill, line).
PALETTE = {
    "blue": {"fillcolor": "#cfe2ff", "color": "#1f5fbf"},  # daemons
    "teal": {"fillcolor": "#d3f3f1", "color": "#117a75"},
    "purple": {"fillcolor": "#f3d9f1", "color": "#a1329b"},  # monitors (shims, conmon)
    "green": {"fillcolor": "#d8f5d0", "color": "#2b8a3e"},  # a container's own
    "white": {"fillcolor": "#ffffff", "color": "#4d4d4d"},
    "yellow": {"fillcolor": "#fff3bf", "color": "#b08900"},  # entered, written
    "grey": {"fillcolor": "#eeeeee", "color": "#777777"},  # the host's
}
NODE_STYLE = {
    "dockerd": PALETTE["blue"] | {"penwidth": "2"},
    "containerd": PALETTE["teal"] | {"penwidth": "2"},
    "shim": PALETTE["purple"],
    "init": PALETTE["green"],
    "child": PALETTE["white"],
    "exec": PALETTE["yellow"],
    "proxy": {"fillcolor": "#e3ecfa", "color": "#1f5fbf"},
    "host": PALETTE["grey"] | {"shape": "ellipse"},
    "missing": {"fillcolor": "#fbe3e3", "color": "#c92a2a", "style": "dashed,filled"},
    "stopped": {"fillcolor": "#f1f3f5", "color": "#868e96", "style": "dashed,rounded,filled"},
    "container": {"fillcolor": "#f8f9fa", "color": "#495057"},
}
CONTAINER_CLUSTER = {"style": "rounded,filled", "fillcolor": "#f8f9fa", "color": "#495057"}

Label = str  # a DOT label made by `label`: escaped, and marked as not HTML


# -- text ---------------------------------------------------------------------------------------


def dot_text(text: str) -> str:
    """One line of untrusted text, made inert for a plain (non-HTML) DOT label."""
    return for_terminal(str(text)).replace("\\", "\\\\").replace("&", "&amp;")


def label(*lines: str, left: bool = False) -> Label:
    """A multi-line label of untrusted lines, centred (`\\n` after each line but the last) or
    left-justified (`\\l` after each line): the only DOT escapes in it."""
    if left:
        return graphviz.nohtml("".join(dot_text(line) + "\\l" for line in lines))
    return graphviz.nohtml("\\n".join(dot_text(line) for line in lines))


def wrapped(text: str, width: int = WRAP, lines: int = 3) -> list[str]:
    """A long command line as a few label lines, cut with an ellipsis. Controls are made
    visible first, so a wrap never splits a character; `label` escapes each line."""
    out = textwrap.wrap(
        for_terminal(text),
        width=width,
        max_lines=lines,
        placeholder=" …",
        break_on_hyphens=False,
    )
    return out or [""]


def program(argv: list[str], fallback: str) -> str:
    """The program's file name (argv[0] without its directory)."""
    return (PurePath(argv[0]).name or fallback) if argv and argv[0] else fallback


def cmd(p: Process) -> str:
    return " ".join(p.cmdline) or f"[{p.name}]"


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else many or word + 's'}"


# -- common pieces --------------------------------------------------------------------------------


def graph(topo: Topology, view: str) -> graphviz.Digraph:
    host = topo.host or {}
    facts = [str(host[k]) for k in ("hostname", "taken_at") if host.get(k)]
    g = graphviz.Digraph("dtrace_tree")
    g.attr(
        "graph",
        label=label(
            f"dtrace-tree: {view}", *(["host " + "  ".join(facts)] if facts else []), left=True
        ),
        labelloc="t",
        labeljust="l",
        fontname=FONT,
        fontsize="16",
        rankdir="LR",
        compound="true",
        newrank="true",
        nodesep="0.18",
        ranksep="0.5",
        bgcolor="white",
        pad="0.2",
    )
    if len(topo.containers()) > LARGE:
        # dot's network simplex dominates on big graphs (150 containers: 108 s); two passes
        # per node bring that to 4 s. Small graphs lay out the same without the limit.
        g.attr("graph", nslimit="2", nslimit1="2")
    g.attr("node", shape="box", style="rounded,filled", fontname=FONT, fontsize="10")
    g.attr("edge", fontname=FONT, fontsize="9", arrowsize="0.7")
    return g


def cluster(s: graphviz.Digraph, title: Label, fontsize: str = "11", **attrs: str) -> None:
    s.attr(label=title, fontname=FONT, fontsize=fontsize, labeljust="l", **attrs)


def by_name(containers: Iterable[Container]) -> list[Container]:
    return sorted(containers, key=lambda c: (natural_key(c.name or ""), c.id))


def cid(c: Container) -> str:
    """A name-safe key for a container: its id is untrusted text when read from a file."""
    return re.sub("[^0-9a-zA-Z]", "_", c.id)[:64] or "none"


class Names:
    """The names of the clusters and nodes a diagram makes of containers and processes, unique
    in the diagram. Graphviz has one node, and one cluster, per name: a name declared under two
    engines is one node in two clusters, which dot draws in the wrong place or crashes on (it
    segfaulted on a busy host where one container was seen under two engines); two ids that
    `cid` makes alike would be one container. Names are made here: the graphviz package writes
    them as they are given."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def new(self, key: str, scope: str) -> str:
        """key, if no name is key yet; else key with the scope (an engine, a container) and a
        count."""
        name, n = key, 1
        while name in self._taken:
            n += 1
            name = f"{key}_{scope}_{n}"
        self._taken.add(name)
        return name


def title(c: Container) -> Label:
    ident = [c.name or "(name unknown)"] + ([c.short_id] if c.name != c.id else [])  # ctr's ids
    return label(*ident, c.image or "(image unknown)")


def pnode(pid: int) -> str:
    return f"p{int(pid)}"


def proc_key(p: Process) -> tuple[int, int]:
    """The init first, then by PID."""
    return (0 if p.role == "init" else 1, p.pid)


def height(n: int) -> int:
    """Rows of a grid of n one-node containers, for a roughly square picture: such a node
    is about 2.5 times as wide as it is tall."""
    return max(1, math.ceil(math.sqrt(2.5 * n)))


def grid(g: graphviz.Digraph, units: list[tuple[str, str]], height: int) -> None:
    """Stack units `height` high, then start a new column: an invisible edge from the last node
    of each unit to the first node of the unit `height` places on. Without it, dot puts every
    container in one column, hundreds of them high."""
    for i in range(height, len(units)):
        g.edge(units[i - height][1], units[i][0], style="invis")


# -- output ---------------------------------------------------------------------------------------


# dot is stopped after this much CPU time: a layout that needs more is one nobody waits for (a
# host drawn badly took 189 s); the caller draws something smaller instead (tracer/output/
# diagram). CPU time, not wall time, so that a busy machine does not cut a layout short; the
# wall clock stops it at WALL_FACTOR times that.
DOT_SECONDS = 10.0
WALL_FACTOR = 3
# A bitmap or a page at most this many inches a side (at dot's 96 dpi, 11520 px): dot scales a
# larger drawing down to fit, so a PNG stays one that a viewer opens (not 32767 px, 817 MB).
MAX_INCHES = 120


class DotTooSlow(TracerError):
    """dot did not finish within its time."""


def render(dot_source: str, fmt: str, seconds: float = DOT_SECONDS) -> bytes:
    """The diagram as svg, png or pdf, made by Graphviz's `dot`; for dot, the source itself.
    DotTooSlow when dot needs more than seconds of CPU (the kernel stops it: RLIMIT_CPU) or
    WALL_FACTOR times that on the clock (killed)."""
    import resource
    import signal
    import subprocess  # the graphviz package's pipe() has no time limit

    if fmt == "dot":
        return dot_source.encode()
    if fmt not in FORMATS:
        raise ValueError(f"unknown diagram format {fmt!r}")
    argv = ["dot", f"-T{fmt}"]
    if fmt in ("png", "pdf"):
        argv.append(f"-Gsize={MAX_INCHES},{MAX_INCHES}")  # only ever scales down
    too_slow = f"dot did not lay the diagram out within {seconds:g} s"
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)  # fmt: skip
    except FileNotFoundError as exc:
        raise MissingBinaryError("dot", "graphviz") from exc
    with proc:
        cpu = max(1, math.ceil(seconds))  # whole seconds: what RLIMIT_CPU counts
        # set before dot has its input, so before it lays anything out; if it is gone
        # already, communicate says how it ended
        with contextlib.suppress(OSError):
            resource.prlimit(proc.pid, resource.RLIMIT_CPU, (cpu, cpu + 1))
        try:
            out, err = proc.communicate(dot_source.encode(), timeout=seconds * WALL_FACTOR)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.communicate()
            raise DotTooSlow(too_slow) from exc
    if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        raise DotTooSlow(too_slow)
    if proc.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines()
        why = lines[0] if lines else f"exit status {proc.returncode}"
        raise TracerError(f"dot failed to render {fmt}: {why}")
    return out


def default_name(host: Mapping[str, Any], fmt: str, ns: bool = False) -> str:
    """`<hostname>-<YYYYmmdd-HHMMSS>[-ns].<fmt>`, named by the snapshot's host and time. The
    hostname may come from a file: only [A-Za-z0-9._-] is kept and no leading dot, so it stays
    one plain file name."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", str(host.get("hostname") or "host"))[:64]
    name = name.lstrip(".") or "host"
    try:
        when = datetime.fromisoformat(str(host.get("taken_at")))
    except ValueError:
        when = datetime.now().astimezone()
    return f"{name}-{when:%Y%m%d-%H%M%S}{'-ns' if ns else ''}.{fmt}"
