"""`show` on a terminal: each engine as a tree, daemon -> containerd -> shim -> processes."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Group, RenderableType
from rich.tree import Tree

from tracer.model.topology import (
    STATE_MARKS,
    Container,
    Containerd,
    Dockerd,
    Engine,
    Process,
    Proxy,
    Topology,
)
from tracer.output.terminal.style import ON_OFF, STYLE, cmdline, text
from tracer.views.selection import Counts, counts


def topology(topo: Topology, totals: Mapping[str, Counts] | None = None) -> RenderableType:
    """Each engine as a tree; totals (by engine title) count what the selection left out."""
    parts: list[RenderableType] = [engine(e, (totals or {}).get(e.title)) for e in topo.engines]
    if topo.orphans:
        tree = Tree(text(("shims whose containerd is not running", "bold red")))
        for c in topo.orphans:
            _container(tree, c, via=f"containerd {c.shim.address if c.shim else '?'} gone")
        parts.append(tree)
    if not parts:
        parts.append(text(("no Docker engine on this host", STYLE["dim"])))
    return Group(*parts)


def engine(e: Engine, total: Counts | None = None) -> Tree:
    d = e.daemon(Dockerd)
    if d:
        root = Tree(
            text(
                ("dockerd", STYLE["dockerd"]),
                f" {d.pid}",
                (f"  api {d.api_socket or '?'}", STYLE["dim"]),
                f"  live-restore {ON_OFF[d.live_restore]}",
                ("" if d.reachable else f"  API unreachable: {d.api_error}", "red"),
            )
        )
    else:
        root = Tree(text(("dockerd not running", "bold red"), (f"  ({e.title})", STYLE["dim"])))
    cd = e.daemon(Containerd)
    if cd:
        how = "child of dockerd, " if cd.managed else ""
        link = "socket" if cd.proven and d else "serves"
        node = root.add(
            text(
                ("containerd", STYLE["containerd"]),
                f" {cd.pid}",
                (f"  {cd.socket}", STYLE["dim"]),
                (f"  [{how}{link}]", STYLE["dim"]),
            )
        )
    else:
        node = root.add(text(("containerd not found", "red")))
    for c in e.containers:
        _container(node, c, via="")
    for c in e.containers:
        for p in c.proxies:
            root.add(_proxy(p, c.label))
    for p in e.unmatched_proxies:
        root.add(_proxy(p, None))
    shown = counts(e)
    root.add(text(("containers: " + (total or shown).line(shown.stopped), STYLE["dim"])))
    for line in e.notes:
        root.add(text(("note: " + line, STYLE["dim"])))
    return root


def _proxy(p: Proxy, owner: str | None) -> RenderableType:
    return text(
        ("docker-proxy", STYLE["proxy"]),
        f" {p.pid}  {p.proto} {p.host_address} -> {p.container_address}",
        (f"  {owner}" if owner else "  (container unknown)", STYLE["name"]),
    )


def _container(parent: Tree, c: Container, via: str) -> None:
    ident: list[tuple[str, str] | str] = [
        (c.name or "(name unknown)", STYLE["name"]),
        f" {c.short_id}",
    ]
    image: list[tuple[str, str] | str] = [(f"  {c.image}", STYLE["dim"])] if c.image else []
    if c.shim is None:
        parent.add(
            text(("○ ", STYLE["dim"]), *ident, *image, (f"  {c.state}, no process", STYLE["dim"]))
        )
        return
    link = f"re-parented: ppid {c.shim.ppid}" if c.shim.reparented else "child of containerd"
    mark = [(f"  ({STATE_MARKS[c.state]})", "bold yellow")] if c.state in STATE_MARKS else []
    node = parent.add(
        text(
            ("containerd-shim", STYLE["shim"]),
            f" {c.shim.pid} ",
            (f"[{via + ', ' if via else ''}{link}]", STYLE["dim"]),
            "  ",
            *ident,
            *mark,
            *image,
        )
    )
    _processes(node, c.processes, c.shim.pid)


def _processes(node: Tree, procs: list[Process], root_pid: int) -> None:
    by_parent: dict[int, list[Process]] = {}
    for p in procs:
        by_parent.setdefault(p.ppid, []).append(p)
    seen: set[int] = set()

    def add(tree: Tree, ppid: int) -> None:
        for p in by_parent.get(ppid, []):
            if p.pid in seen:
                continue
            seen.add(p.pid)
            sub = tree.add(
                text(
                    f"{p.pid} ",
                    (f"{p.role:<5}", STYLE.get(p.role, "")),
                    f" {cmdline(p.cmdline or [p.name])}",
                )
            )
            add(sub, p.pid)

    add(node, root_pid)
