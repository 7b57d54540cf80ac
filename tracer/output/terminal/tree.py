"""`show` on a terminal: each engine as a tree, with the chain that is true for its runtime.

The engine's runtime (tracer/runtimes, `Look`) says which daemons chain, what to say of one
that does not run, and what its monitors are called: Docker: dockerd -> containerd ->
containerd-shim (one per container) -> processes. Bare containerd (ctr, nerdctl): containerd
and its namespace -> shim -> processes. CRI: (kubelet ->) containerd -> one shim per pod ->
each of the pod's containers -> processes. podman: no daemon; conmon (one per container) ->
processes. Each daemon is drawn by its role.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Group, RenderableType
from rich.text import Text
from rich.tree import Tree

from tracer.kernel.procfs import program
from tracer.model.topology import (
    STATE_MARKS,
    Container,
    Containerd,
    Dockerd,
    Engine,
    Kubelet,
    Monitor,
    Process,
    Proxy,
    Topology,
)
from tracer.output.terminal.style import ON_OFF, STYLE, cmdline, text
from tracer.runtimes import runtime_of
from tracer.runtimes.base import Level, Look, Missing
from tracer.views.selection import Counts, counts


def topology(topo: Topology, totals: Mapping[str, Counts] | None = None) -> RenderableType:
    """Each engine as a tree; totals (by engine title) count what the selection left out."""
    parts: list[RenderableType] = [engine(e, (totals or {}).get(e.title)) for e in topo.engines]
    if topo.orphans:
        tree = Tree(text(("shims whose containerd is not running", "bold red")))
        for c in topo.orphans:
            gone = f"containerd {c.shim.address if c.shim else '?'} gone"
            _container(tree, c, via=gone, parent_name="containerd")
        parts.append(tree)
    if not parts:
        parts.append(text(("no container engine on this host", STYLE["dim"])))
    return Group(*parts)


def engine(e: Engine, total: Counts | None = None) -> Tree:
    """The engine's daemons as its runtime chains them (each one missing said so), top first,
    its containers under the last (grouped by pod when they have pods), its proxies under the
    top; an engine with no daemon at all is headed by its runtime's name and facts."""
    rt = runtime_of(e)
    look = rt.look
    levels = look.levels(e)
    facts = text(*[(f"  {line}", STYLE["dim"]) for line in rt.describe(e)])
    if levels:
        root = node = Tree(_head(e, levels[0], None, look).append_text(facts))
        for above, level in zip(levels, levels[1:], strict=False):
            node = node.add(_head(e, level, above, look))
    else:
        head = text((look.daemonless, STYLE["dockerd"]), ("  no daemon", STYLE["dim"]))
        root = node = Tree(head.append_text(facts))
    if any(c.pod for c in e.containers):
        pods: dict[str, list[Container]] = {}
        for c in e.containers:
            pods.setdefault(c.pod.id if c.pod else c.id, []).append(c)
        for members in pods.values():
            _pod(node, members, look)
    else:
        for c in e.containers:
            _container(node, c, via="", parent_name=look.monitor_parent)
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


def _head(e: Engine, level: Level, above: Level | None, look: Look) -> Text:
    if isinstance(level, Missing):
        named = [] if above is not None else [(f"  ({e.title})", STYLE["dim"])]
        return text((level.text, "bold red" if above is None else "red"), *named)
    if isinstance(level, Dockerd):
        return text(
            ("dockerd", STYLE["dockerd"]),
            f" {level.pid}",
            (f"  api {level.api_socket or '?'}", STYLE["dim"]),
            f"  live-restore {ON_OFF[level.live_restore]}",
            ("" if level.reachable else f"  API unreachable: {level.api_error}", "red"),
        )
    if isinstance(level, Kubelet):
        link = "  [connected]" if level.connected else ""
        return text(("kubelet", STYLE["dockerd"]), f" {level.pid}", (link, STYLE["dim"]))
    if isinstance(level, Containerd):
        where = f"  namespace {e.namespace}" if e.namespace else ""
        tag = f"  {look.tag}" if look.tag else ""
        served: list[tuple[str, str]] = []
        if above is not None and above.role == Dockerd.ROLE:  # how it serves that dockerd
            how = "child of dockerd, " if level.managed else ""
            proven = "socket" if level.proven and isinstance(above, Dockerd) else "serves"
            served = [(f"  [{how}{proven}]", STYLE["dim"])]
        return text(("containerd", STYLE["containerd"]), f" {level.pid}",
                    (f"  {level.socket}", STYLE["dim"]), (where, STYLE["name"]),
                    (tag, STYLE["dim"]), *served)  # fmt: skip
    address = [(f"  {level.address}", STYLE["dim"])] if level.address else []
    name = program(level.cmdline) or level.role
    return text((name, STYLE["dockerd"]), f" {level.pid}", *address)


def _pod(parent: Tree, members: list[Container], look: Look) -> None:
    """One pod: its shim, then each container under it (the sandbox first)."""
    first = members[0]
    pod = first.pod
    name = f"{pod.namespace}/{pod.name}" if pod and pod.namespace else (pod.name if pod else None)
    m = first.monitor
    if m is None:
        holder = parent.add(text("pod ", (name or "?", STYLE["name"]), "  (no shim running)"))
    else:
        holder = parent.add(
            _monitor(
                m,
                look.monitor_parent,
                "",
                "  pod ",
                (name or "(name unknown)", STYLE["name"]),
                (f"  one {look.monitor} for its {len(members)} containers", STYLE["dim"]),
            )
        )
    for c in members:
        role = "sandbox " if c.pod and c.pod.sandbox else ""
        image = [(f"  {c.image}", STYLE["dim"])] if c.image else []
        state = [] if c.init_pid else [(f"  {c.state}, no process", STYLE["dim"])]
        sub = holder.add(
            text((role, STYLE["dim"]), (c.name or "(name unknown)", STYLE["name"]),
                 f" {c.short_id}", *image, *state)
        )  # fmt: skip
        _processes(sub, c.processes, m.pid if m else 0)


def _proxy(p: Proxy, owner: str | None) -> RenderableType:
    return text(
        ("docker-proxy", STYLE["proxy"]),
        f" {p.pid}  {p.proto} {p.host_address} -> {p.container_address}",
        (f"  {owner}" if owner else "  (container unknown)", STYLE["name"]),
    )


def _container(parent: Tree, c: Container, via: str, parent_name: str) -> None:
    ident: list[tuple[str, str] | str] = [(c.name or "(name unknown)", STYLE["name"])]
    if c.name != c.id:  # ctr's ids are the names people give
        ident.append(f" {c.short_id}")
    image: list[tuple[str, str] | str] = [(f"  {c.image}", STYLE["dim"])] if c.image else []
    m = c.monitor
    if m is None:
        parent.add(
            text(("○ ", STYLE["dim"]), *ident, *image, (f"  {c.state}, no process", STYLE["dim"]))
        )
        return
    mark = [(f"  ({STATE_MARKS[c.state]})", "bold yellow")] if c.state in STATE_MARKS else []
    node = parent.add(_monitor(m, parent_name, via, "  ", *ident, *mark, *image))
    _processes(node, c.processes, m.pid)


def _monitor(m: Monitor, parent_name: str, via: str, *held: tuple[str, str] | str) -> Text:
    """A monitor's line: its kind and PID, how it is tied (via what, and whose child it is or
    that it was re-parented), then what it holds."""
    link = f"re-parented: ppid {m.ppid}" if m.reparented else f"child of {parent_name}"
    how = (f"[{via + ', ' if via else ''}{link}]", STYLE["dim"])
    return text((m.kind, STYLE["shim"]), f" {m.pid} ", how, *held)


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
