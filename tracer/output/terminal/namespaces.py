"""`ns` on a terminal: the matrix of all containers, one container's namespaces, or (`ns --all`)
every namespace of the host as trees."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from tracer.kernel.nsfs import TYPES
from tracer.model.namespaces import Namespace, NsEntry, NsInventory, NsMatrix, NsReport
from tracer.output.terminal.style import STYLE, cmdline, text
from tracer.views.namespaces import MATRIX_TYPES, inventory

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
    """`ns CONTAINER`: one row per namespace type, why under its state (so the table fits 60
    columns as well as 200), then every process against init."""
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
    table.add_column("state, and why", overflow="fold", ratio=1)
    for e in _rows(doc.namespaces):
        cell = _state(e)
        if e.why and not e.why.startswith("shared with "):
            cell.append("\n").append_text(text((e.why, STYLE["dim"])))
        host = str(e.host_inode if e.host_inode is not None else "?")
        table.add_row(e.type, str(e.inode), host, cell)
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
    """`ns`: containers x namespace types in short words (own, host, or the letter of a group
    shared with other containers, listed below), so that every value is readable at 60
    columns; names fold rather than being cut."""
    letters = _letters(doc)
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    table.add_column("container", overflow="fold", ratio=1, min_width=8)
    table.add_column("init", no_wrap=True)
    for k in MATRIX_TYPES:
        table.add_column(_SHORT.get(k, k), no_wrap=True)
    for c in doc.containers:
        cells = []
        for k in MATRIX_TYPES:
            value = c.cells.get(k, "?")
            if value.startswith("shared:"):
                cells.append(text((letters.get((k, c.namespaces.get(k, 0)), "="), "yellow")))
            else:
                word = "own" if value == "isolated" else value
                cells.append(text((word, _CELL.get(value, STYLE["dim"]))))
        table.add_row(text((c.name or c.id[:12], STYLE["name"])), str(c.init_pid), *cells)
    parts: list[RenderableType] = [
        table,
        text(
            (
                "own: the container's alone; host: the host's; A, B, ...: shared by the "
                "containers listed below; ?: could not be read. "
                f"Host namespaces from {doc.host_from}.",
                STYLE["dim"],
            )
        ),
    ]
    for (kind, inode), letter in letters.items():
        group = next(g for g in doc.groups if (g.type, g.inode) == (kind, inode))
        parts.append(
            text(
                (f"{letter} ", "bold yellow"),
                f"{kind} {inode}: ",
                (", ".join(group.containers), STYLE["name"]),
            )  # fmt: skip
        )
    if not doc.containers:
        parts.append(text(("no running containers", STYLE["dim"])))
    return Group(*parts)


_CELL = {"host": "red", "isolated": "green"}
_SHORT = {"cgroup": "cgrp"}  # the widest header; the legend says the rest


def _letters(doc: NsMatrix) -> dict[tuple[str, int], str]:
    """A letter for each namespace shared by several containers: A..Z, then AA, AB, ..."""
    shared = [
        (g.type, g.inode)
        for g in doc.groups
        if len(g.containers) > 1 and not g.host and not g.type.endswith("_for_children")
    ]
    out = {}
    for i, key in enumerate(shared):
        name = ""
        n = i
        while True:
            name = chr(ord("A") + n % 26) + name
            n = n // 26 - 1
            if n < 0:
                break
        out[key] = name
    return out


# -- `ns --all` ---------------------------------------------------------------------------------


def everything(inv: NsInventory) -> RenderableType:
    """`ns --all`: the user-namespace tree (with what each owns) and the PID-namespace tree,
    as `lsns -T` draws them but with containers, engines and pods named; then the namespaces
    no process is in. Every line folds rather than being cut, so it fits 80 columns."""
    parts: list[RenderableType] = []
    owns = inventory.owned(inv)
    for kind, title in (("user", "user namespaces"), ("pid", "PID namespaces")):
        roots = inventory.tree(inv, kind)
        if not roots:
            continue
        top = Tree(text((title, "bold")))
        for node in roots:
            _node(top, node, owns if kind == "user" else {})
        parts.append(top)
    if not parts:  # --type net, --leaked: no tree to draw, every one listed
        others, title = inv.namespaces, "namespaces"
    else:
        others = [n for n in inventory.hidden(inv) if n.type not in ("user", "pid") or n.leaked]
        title = "hidden namespaces (no process in them)"
    if others:
        top = Tree(text((title, "bold")))
        for n in others:
            _hidden(top, n, inv.host_ns.get("user"))
        parts.append(top)
    parts.append(_summary(inv))
    return Group(*parts)


def _head(n: Namespace) -> Text:
    out = text((f"{n.type} {n.inode}", "bold"), "  ", (inventory.label(n), STYLE["name"]))
    if n.processes:
        many = len(n.processes)
        out.append_text(text((f"  {many} process{'es' if many > 1 else ''}", STYLE["dim"])))
    if n.leaked:
        out.append_text(text(("  LEAKED", "bold red")))
    return out


def _node(parent: Tree, node: inventory.Node, owns: dict[int, list[Namespace]]) -> None:
    n = node.ns
    branch = parent.add(_head(n))
    _holders(branch, n)
    mine = owns.get(n.inode, [])
    if mine:
        count: dict[str, int] = {}
        for m in mine:
            count[m.type] = count.get(m.type, 0) + 1
        words = ", ".join(f"{k} {v}" for k, v in sorted(count.items()))
        branch.add(text(("owns " + words, STYLE["dim"])))
    for child in sorted(node.children, key=lambda c: c.ns.inode):
        _node(branch, child, owns)


def _holders(branch: Tree, n: Namespace) -> None:
    for m in n.mounts:
        branch.add(text(("mount ", STYLE["dim"]), m.path, (f"  (mnt {m.mount_ns})", STYLE["dim"])))
    for f in n.fds:
        branch.add(text(("fd ", STYLE["dim"]), f"{f.fd} of pid {f.pid}"))
    if not n.processes and not n.mounts and not n.fds:
        branch.add(text(("held by the namespaces below it", STYLE["dim"])))


def _hidden(top: Tree, n: Namespace, host_user: int | None) -> None:
    branch = top.add(_head(n))
    _holders(branch, n)
    if n.owner is not None and n.owner != host_user:
        branch.add(text(("owner user ", STYLE["dim"]), str(n.owner)))
    if n.why:
        branch.add(text((n.why, "red" if n.leaked else STYLE["dim"])))
    if n.release:
        branch.add(text(("release with: ", STYLE["dim"]), (n.release, "bold")))


def _summary(inv: NsInventory) -> Text:
    count: dict[str, int] = {}
    for n in inv.namespaces:
        count[n.type] = count.get(n.type, 0) + 1
    words = ", ".join(f"{k} {count[k]}" for k in TYPES if k in count)
    hidden = len(inventory.hidden(inv))
    leaked = sum(1 for n in inv.namespaces if n.leaked)
    many = len(inv.namespaces)
    line = (
        f"{many} namespace{'' if many == 1 else 's'} ({words or 'none'}); {hidden} with no process"
    )
    if leaked:
        line += f"; {leaked} leaked"
    return text((line, STYLE["dim"]))
