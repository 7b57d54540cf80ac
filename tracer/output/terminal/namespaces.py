"""`ns` on a terminal: the matrix of all containers, or one container's namespaces."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from tracer.model.namespaces import NsEntry, NsMatrix, NsReport
from tracer.output.terminal.style import STYLE, cmdline, text
from tracer.views.namespaces import MATRIX_TYPES

_CELL = {"host": "red", "isolated": "green"}


def _state(entry: NsEntry) -> Text:
    if entry.isolated is None:
        return text(("?", STYLE["dim"]))
    if not entry.isolated:
        return text(("host", "red"))
    if entry.shared_with:
        return text(("shared with ", "yellow"), (", ".join(entry.shared_with), "yellow"))
    return text(("isolated", "green"))


def _rows(entries: list[NsEntry]) -> list[NsEntry]:
    """*_for_children rows only where they differ from their parent type (after unshare)."""
    by_type = {e.type: e for e in entries}
    return [
        e
        for e in entries
        if not e.type.endswith("_for_children")
        or (parent := by_type.get(e.type.removesuffix("_for_children"))) is None
        or parent.inode != e.inode
    ]


def container(doc: NsReport) -> RenderableType:
    """`ns CONTAINER`: one row per namespace type, then every process against init."""
    c = doc.container
    head = text(
        (c.name or c.id[:12], STYLE["name"]),
        f" {c.id[:12]}  init pid {c.init_pid}",
        (f"  (host namespaces from {doc.host_from})", STYLE["dim"]),
    )
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("type", no_wrap=True)
    table.add_column("inode", no_wrap=True)
    table.add_column("host", no_wrap=True)
    table.add_column("", no_wrap=True)
    table.add_column("why", overflow="fold", style=STYLE["dim"])
    for e in _rows(doc.namespaces):
        why = e.why if (e.why and not e.why.startswith("shared with ")) else ""
        table.add_row(
            e.type,
            str(e.inode),
            str(e.host_inode if e.host_inode is not None else "?"),
            _state(e),
            text(why),
        )
    procs = Tree(text(("processes (docker exec joins these namespaces with setns)", STYLE["dim"])))
    for p in doc.processes:
        if p.same_as_init:
            where = text(("same namespaces as init", "green"))
        else:
            where = text(("differs from init", "red"))
        procs.add(
            text(
                f"{p.pid} ",
                (f"{p.role:<5}", STYLE.get(p.role, "")),
                f" {cmdline(p.cmdline, 50)}  ",
            ).append_text(where)
        )
    return Group(head, table, procs)


def matrix(doc: NsMatrix) -> RenderableType:
    """`ns`: containers x namespace types (own / host / = other), then the shared groups."""
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="bold")
    table.add_column("container", no_wrap=True)
    table.add_column("init", no_wrap=True)
    for k in MATRIX_TYPES:
        table.add_column(k, no_wrap=True)
    for c in doc.containers:
        cells = []
        for k in MATRIX_TYPES:
            value = c.cells.get(k, "?")
            if value.startswith("shared:"):
                others = value[len("shared:") :].split(",")
                more = f"+{len(others) - 1}" if len(others) > 1 else ""
                cells.append(text(("=" + others[0] + more, "yellow")))
            else:
                cells.append(text(("own" if value == "isolated" else value, _CELL.get(value, ""))))
        table.add_row(text((c.name or c.id[:12], STYLE["name"])), str(c.init_pid), *cells)
    parts: list[RenderableType] = [
        table,
        text(
            (
                "own: private to the container; host: the host's; =X: shared with container X"
                f" (host namespaces from {doc.host_from})",
                STYLE["dim"],
            )
        ),
    ]
    shared = [
        g
        for g in doc.groups
        if len(g.containers) > 1 and not g.host and not g.type.endswith("_for_children")
    ]
    for g in shared:
        parts.append(text(f"{g.type} {g.inode}: ", (", ".join(g.containers), STYLE["name"])))
    if not doc.containers:
        parts.append(text(("no running containers", STYLE["dim"])))
    return Group(*parts)
