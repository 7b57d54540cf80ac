"""Terminal rendering with rich: the only module (besides the CLI) that imports it.

Every piece of text from the host goes through `for_terminal` and into a `Text` object, never
into markup, so a container cannot inject escape sequences or rich markup into the tree.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Group, RenderableType
from rich.text import Text
from rich.tree import Tree

from tracer.model import Container, Engine, Process, Proxy, Topology
from tracer.textsafe import for_terminal

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


def _t(*parts: tuple[str, str] | str) -> Text:
    """Build a Text from (text, style) parts; every text part is escaped for the terminal."""
    out = Text()
    for part in parts:
        if isinstance(part, tuple):
            out.append(for_terminal(part[0]), style=part[1])
        else:
            out.append(for_terminal(part))
    return out


def cmdline(argv: Iterable[str], limit: int = MAX_CMDLINE) -> str:
    text = " ".join(argv)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def topology(topo: Topology) -> RenderableType:
    parts: list[RenderableType] = [engine(e) for e in topo.engines]
    if topo.orphans:
        tree = Tree(_t(("shims whose containerd is not running", "bold red")))
        for c in topo.orphans:
            _container(tree, c, via=f"containerd {c.shim.address if c.shim else '?'} gone")
        parts.append(tree)
    if not parts:
        parts.append(_t(("no Docker engine on this host", STYLE["dim"])))
    return Group(*parts)


def engine(e: Engine) -> Tree:
    if e.dockerd:
        d = e.dockerd
        lr = {True: "on", False: "off", None: "?"}[d.live_restore]
        root = Tree(
            _t(
                ("dockerd", STYLE["dockerd"]),
                f" {d.pid}",
                (f"  api {d.api_socket or '?'}", STYLE["dim"]),
                f"  live-restore {lr}",
                ("" if d.reachable else f"  API unreachable: {d.api_error}", "red"),
            )
        )
    else:
        root = Tree(_t(("dockerd not running", "bold red"), (f"  ({e.title})", STYLE["dim"])))
    if e.containerd:
        cd = e.containerd
        how = "child of dockerd, " if cd.managed else ""
        link = "socket" if cd.proven and e.dockerd else "serves"
        node = root.add(
            _t(
                ("containerd", STYLE["containerd"]),
                f" {cd.pid}",
                (f"  {cd.socket}", STYLE["dim"]),
                (f"  [{how}{link}]", STYLE["dim"]),
            )
        )
    else:
        node = root.add(_t(("containerd not found", "red")))
    for c in e.containers:
        _container(node, c, via="")
    for p in [p for c in e.containers for p in c.proxies]:
        owner = next(c for c in e.containers if p in c.proxies)
        root.add(_proxy(p, owner.label))
    for p in e.unmatched_proxies:
        root.add(_proxy(p, None))
    for line in e.notes:
        root.add(_t(("note: " + line, STYLE["dim"])))
    return root


def _proxy(p: Proxy, owner: str | None) -> Text:
    return _t(
        ("docker-proxy", STYLE["proxy"]),
        f" {p.pid}  {p.proto} {p.host_ip}:{p.host_port} -> {p.container_ip}:{p.container_port}",
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
            _t(("○ ", STYLE["dim"]), *ident, *image, (f"  {c.state}, no process", STYLE["dim"]))
        )
        return
    link = f"re-parented: ppid {c.shim.ppid}" if c.shim.reparented else "child of containerd"
    node = parent.add(
        _t(
            ("containerd-shim", STYLE["shim"]),
            f" {c.shim.pid} ",
            (f"[{via + ', ' if via else ''}{link}]", STYLE["dim"]),
            "  ",
            *ident,
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
                _t(
                    f"{p.pid} ",
                    (f"{p.role:<5}", STYLE.get(p.role, "")),
                    f" {cmdline(p.cmdline or [p.name])}",
                )
            )
            add(sub, p.pid)

    add(node, root_pid)
