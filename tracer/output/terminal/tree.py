"""`show` on a terminal: each engine as a tree, with the chain that is true for its runtime.

Docker: dockerd -> containerd -> containerd-shim (one per container) -> processes. Bare
containerd (ctr, nerdctl): containerd and its namespace -> shim -> processes. CRI: (kubelet ->)
containerd -> one shim per pod -> each of the pod's containers -> processes. podman: no daemon;
conmon (one per container) -> processes.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Group, RenderableType
from rich.tree import Tree

from tracer.model.topology import (
    SHIM,
    STATE_MARKS,
    Container,
    Containerd,
    Dockerd,
    Engine,
    Kubelet,
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
        parts.append(text(("no container engine on this host", STYLE["dim"])))
    return Group(*parts)


def engine(e: Engine, total: Counts | None = None) -> Tree:
    if e.runtime == "podman":
        root = _podman(e)
    elif e.runtime in ("containerd", "cri"):
        root = _containerd(e)
    else:
        root = _docker(e)
    shown = counts(e)
    root.add(text(("containers: " + (total or shown).line(shown.stopped), STYLE["dim"])))
    for line in e.notes:
        root.add(text(("note: " + line, STYLE["dim"])))
    return root


def _docker(e: Engine) -> Tree:
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
    return root


def _containerd(e: Engine) -> Tree:
    """containerd and its namespace at the top (under kubelet, when it is the client); CRI
    pods as one shim each, holding their containers."""
    cd = e.daemon(Containerd)
    where = f"  namespace {e.namespace}" if e.namespace else ""
    kind = "  CRI" if e.runtime == "cri" else ""
    head = (
        text(("containerd", STYLE["containerd"]), f" {cd.pid}", (f"  {cd.socket}", STYLE["dim"]),
             (where, STYLE["name"]), (kind, STYLE["dim"]))
        if cd
        else text(("containerd not found", "red"), (f"  ({e.title})", STYLE["dim"]))
    )  # fmt: skip
    kubelet = e.daemon(Kubelet)
    if kubelet is None:
        root = node = Tree(head)
    else:
        link = "  [connected]" if kubelet.connected else ""
        root = Tree(text(("kubelet", STYLE["dockerd"]), f" {kubelet.pid}", (link, STYLE["dim"])))
        node = root.add(head)
    if e.runtime != "cri":
        for c in e.containers:
            _container(node, c, via="")
        return root
    pods: dict[str, list[Container]] = {}
    for c in e.containers:
        pods.setdefault(c.pod.id if c.pod else c.id, []).append(c)
    for members in pods.values():
        _pod(node, members)
    return root


def _pod(parent: Tree, members: list[Container]) -> None:
    """One pod: its shim, then each container under it (the sandbox first)."""
    first = members[0]
    pod = first.pod
    name = f"{pod.namespace}/{pod.name}" if pod and pod.namespace else (pod.name if pod else None)
    m = first.monitor
    if m is None:
        holder = parent.add(text("pod ", (name or "?", STYLE["name"]), "  (no shim running)"))
    else:
        link = f"re-parented: ppid {m.ppid}" if m.reparented else "child of containerd"
        holder = parent.add(
            text(
                ("containerd-shim", STYLE["shim"]),
                f" {m.pid} ",
                (f"[{link}]", STYLE["dim"]),
                "  pod ",
                (name or "(name unknown)", STYLE["name"]),
                (f"  one shim for its {len(members)} containers", STYLE["dim"]),
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


def _podman(e: Engine) -> Tree:
    """podman has no daemon: its storage at the top, one conmon per container under it."""
    who = f"  uid {e.owner} (rootless)" if e.owner else ""
    root = Tree(
        text(("podman", STYLE["dockerd"]), ("  no daemon", STYLE["dim"]),
             (f"  storage {e.store}", STYLE["dim"]), who)
    )  # fmt: skip
    for c in e.containers:
        _container(root, c, via="")
    return root


def _proxy(p: Proxy, owner: str | None) -> RenderableType:
    return text(
        ("docker-proxy", STYLE["proxy"]),
        f" {p.pid}  {p.proto} {p.host_address} -> {p.container_address}",
        (f"  {owner}" if owner else "  (container unknown)", STYLE["name"]),
    )


def _container(parent: Tree, c: Container, via: str) -> None:
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
    parent_name = "containerd" if m.kind == SHIM else "podman"
    link = f"re-parented: ppid {m.ppid}" if m.reparented else f"child of {parent_name}"
    mark = [(f"  ({STATE_MARKS[c.state]})", "bold yellow")] if c.state in STATE_MARKS else []
    node = parent.add(
        text(
            (m.kind, STYLE["shim"]),
            f" {m.pid} ",
            (f"[{via + ', ' if via else ''}{link}]", STYLE["dim"]),
            "  ",
            *ident,
            *mark,
            *image,
        )
    )
    _processes(node, c.processes, m.pid)


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
