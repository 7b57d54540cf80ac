"""The architecture diagram: engines, daemons, monitors, container processes, docker-proxy.

One cluster per engine, one per container; every daemon, monitor (a containerd shim, one per
container or per CRI pod; podman's conmon), container process and proxy is a node with its PID
and program; each engine draws the chain true for its runtime (Docker: dockerd -> containerd;
bare containerd and CRI: containerd and its namespace, under kubelet when it runs; podman: no
daemon). Edges are styled by kind, with a legend. `--compact` draws one node per container, in
a grid, for hundreds of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import graphviz

from tracer.model.topology import (
    Container,
    Containerd,
    Dockerd,
    Edge,
    Engine,
    Kubelet,
    Process,
    Proxy,
    Topology,
)
from tracer.output.diagram.dot import (
    CONTAINER_CLUSTER,
    NODE_STYLE,
    Label,
    Names,
    by_name,
    cid,
    cluster,
    cmd,
    graph,
    grid,
    height,
    label,
    plural,
    pnode,
    proc_key,
    program,
    title,
    wrapped,
)
from tracer.runtimes import runtime_of
from tracer.runtimes.base import Level, Missing

COLUMN = 12  # containers stacked in one column (full view) before the next column starts


# The model's edge kinds, plus `forwards` (docker-proxy -> the container owning -container-ip).
EDGE_STYLE: dict[str, dict[str, str]] = {
    "parent": {"color": "#4d4d4d", "style": "solid"},
    "socket": {"color": "#1f5fbf", "style": "bold", "penwidth": "2.5"},
    "shim-address": {"color": "#a1329b", "style": "dashed", "penwidth": "1.4"},
    "reparented": {"color": "#d9480f", "style": "dotted", "penwidth": "2"},
    "forwards": {"color": "#1c7c54", "style": "dashed", "penwidth": "1.4"},
}
# What each kind means when no engine drawn says it in its own words (its runtime's Look.edges).
EDGE_MEANING = {
    "parent": "ppid (the process tree)",
    "socket": "a client -> the daemon it talks to (a listener held by the daemon)",
    "shim-address": "a monitor -> the daemon it reports to",
    "reparented": "a monitor adopted by pid 1 or a subreaper",
    "forwards": "a port proxy -> its container",
}
# Layout only, not meaning: a shim is drawn after its containerd although its edge points at
# containerd (dir=back).
EDGE_LAYOUT = {
    "shim-address": {"dir": "back"},
}


def _engines(topo: Topology) -> list[Engine]:
    return sorted(topo.engines, key=lambda e: (e.title, [d.pid for d in e.daemons]))


def _legend(g: graphviz.Digraph, rows: list[tuple[str, dict[str, str], str]]) -> None:
    """One row per edge style: a short sample edge labelled with what it means."""
    with g.subgraph(name="cluster_legend") as s:
        cluster(s, label("legend"), color="#adb5bd", style="rounded")
        s.attr("node", shape="point", width="0.06", color="#495057", style="filled")
        for i, (cls, style, meaning) in enumerate(rows):
            s.node(f"legend_{i}_a")
            s.node(f"legend_{i}_b")
            s.edge(
                f"legend_{i}_a", f"legend_{i}_b", label=label(meaning), **{**style, "class": cls}
            )


# -- the architecture view ------------------------------------------------------------------------


@dataclass
class _Arch:
    """What has been drawn so far: the nodes, in drawing order, and the edges to draw at the
    end (at the top level, so that no edge declares a node inside the wrong cluster)."""

    compact: bool
    known: set[int] = field(default_factory=set)
    order: dict[str, int] = field(default_factory=dict)
    edges: dict[tuple[str, str, str], tuple[str, dict[str, str]]] = field(default_factory=dict)
    names: Names = field(default_factory=Names)
    units: dict[tuple[int, str], str] = field(default_factory=dict)  # (id(container), engine)

    def node(self, s: graphviz.Digraph, name: str, text: Label, style: Mapping[str, str]) -> None:
        """A node, declared once: a PID that two engines hold (a proxy attributed to both)
        stays in the cluster that drew it first, and the other links to it."""
        if name in self.order:
            return
        self.order[name] = len(self.order)
        if re.fullmatch(r"p\d+", name):
            self.known.add(int(name[1:]))
        s.node(name, label=text, **style)

    def unit(self, c: Container, engine: str) -> str:
        """The name of c's clusters and nodes under this engine (its key, `e<i>` or `orphans`):
        its id, or, for an id drawn already (under another engine, or an id that `cid` makes
        alike), its id with the engine and a count. Asked twice, the same answer."""
        key = (id(c), engine)
        if key not in self.units:
            self.units[key] = self.names.new(cid(c), engine)
        return self.units[key]

    def edge(self, kind: str, src: str, dst: str, text: str = "", **attrs: str) -> None:
        self.edges.setdefault((kind, src, dst), (text, attrs))

    def sorted_edges(self) -> list[tuple[str, str, str, str, dict[str, str]]]:
        """In the order of their nodes (as drawn), so that dot keeps containers in name order."""

        def key(item: tuple[tuple[str, str, str], tuple[str, dict[str, str]]]) -> tuple[Any, ...]:
            (kind, src, dst), (text, attrs) = item
            last = len(self.order)  # pid 1 and other nodes drawn later: their edges go last
            where = (self.order.get(src, last), self.order.get(dst, last), src, dst)
            return (*where, list(EDGE_STYLE).index(kind), text, sorted(attrs.items()))

        return [(k, s, d, t, a) for (k, s, d), (t, a) in sorted(self.edges.items(), key=key)]


def architecture(topo: Topology, compact: bool = False) -> str:
    """DOT source: one cluster per engine, one per container, nodes for every daemon, shim,
    container process and docker-proxy; edges styled by kind, and a legend."""
    g = graph(
        topo, "architecture: each engine's daemons -> its monitors (shim, conmon) -> containers"
    )
    st = _Arch(compact)
    for i, e in enumerate(_engines(topo)):
        with g.subgraph(name=f"cluster_engine_{i}") as s:
            _engine(s, e, i, st)
    if topo.orphans:
        with g.subgraph(name="cluster_orphans") as s:
            cluster(
                s,
                label("shims whose containerd is not running"),
                color="#c92a2a",
                style="dashed,rounded",
            )
            _containers(s, "orphans", topo.orphans, st, anchor=None)
    if not topo.engines and not topo.orphans:
        g.node("nothing", label=label("no container engine on this host"), **NODE_STYLE["stopped"])
    _model_edges(topo, st)
    for kind, src, dst, text, attrs in st.sorted_edges():
        for node in (src, dst):
            _outside_node(g, node, st)
        style = {**EDGE_STYLE[kind], **EDGE_LAYOUT.get(kind, {}), **attrs}
        g.edge(src, dst, label=label(text) if text else None, **style, **{"class": kind})
    _legend(g, [(k, EDGE_STYLE[k], meaning) for k, meaning in legend(topo).items()])
    return g.source


def legend(topo: Topology) -> dict[str, str]:
    """Edge kind -> `kind: what it means`, in the words of the runtimes whose engines are
    drawn (each meaning once, in the order of the engines), else in general words."""
    out = {}
    for kind in EDGE_STYLE:
        said: list[str] = []
        for e in _engines(topo):
            meaning = runtime_of(e).look.edges.get(kind)
            if meaning and meaning not in said:
                said.append(meaning)
        out[kind] = f"{kind}: " + ("; ".join(said) or EDGE_MEANING[kind])
    return out


def _engine(s: graphviz.Digraph, e: Engine, i: int, st: _Arch) -> None:
    rt = runtime_of(e)
    heading = ["engine " + e.title, f"runtime {e.runtime}"]
    d = e.daemon(Dockerd)
    if d and d.live_restore is not None:
        heading.append("live-restore " + ("on" if d.live_restore else "off"))
    heading += rt.describe(e) if e.daemons else []  # else in the daemonless engine's node
    cluster(s, label(*heading, left=True), fontsize="12", color="#1f5fbf", style="rounded")
    anchor = None  # the daemon its monitors report to: the last of the chain
    for level in rt.look.levels(e):
        anchor = _daemon(s, level, i, st)
    if not e.daemons and not rt.look.chain:
        lines = [f"{rt.look.daemonless}: no daemon", *rt.describe(e)]
        st.node(s, f"e{i}_nodaemon", label(*lines), NODE_STYLE["missing"] | {"style": "dashed"})
    proxies: list[tuple[Proxy, Container | None]] = [
        (p, c) for c in e.containers for p in c.proxies
    ]
    proxies += [(p, None) for p in e.unmatched_proxies]
    for p, owner in sorted(proxies, key=lambda x: x[0].pid):
        if st.compact and owner is not None:
            continue  # told in its container's node
        st.node(s, pnode(p.pid), _proxy_label(p), NODE_STYLE["proxy"])
        target = _entry(owner) if owner is not None else None
        if owner is not None and target is not None:  # the ports are in the proxy's label
            lhead = f"cluster_c_{st.unit(owner, f'e{i}')}"
            st.edge("forwards", pnode(p.pid), target, lhead=lhead)
    if e.containers:
        _containers(s, f"e{i}", e.containers, st, anchor, rt.look.monitor)


def _daemon(s: graphviz.Digraph, d: Level, i: int, st: _Arch) -> str | None:
    """A daemon's node, by its role (a missing one: what its runtime says of it); its name,
    or None for a missing one."""
    if isinstance(d, Missing):
        st.node(s, f"e{i}_no{d.role}", label(d.text), NODE_STYLE["missing"])
        return None
    node = pnode(d.pid)
    if d.pid in st.known:
        # One process, drawn once: a containerd that serves several engines (Docker's
        # namespace, a ctr namespace, CRI's) is drawn in the first, and linked from the others.
        return node
    lines = [program(d.cmdline, d.role), f"pid {d.pid}"]
    if isinstance(d, Kubelet):
        lines.append("CRI client")
    elif isinstance(d, Dockerd):
        lines.append(f"api {d.api_socket or '?'}")
        lines += [] if d.reachable else [f"API unreachable: {d.api_error or '?'}"]
    elif isinstance(d, Containerd):
        how = "child of dockerd" if d.managed else "listener proven" if d.proven else ""
        lines += [d.socket, *([how] if how else [])]
    elif d.address:
        lines.append(d.address)
    style = NODE_STYLE["containerd"] if isinstance(d, Containerd) else NODE_STYLE["dockerd"]
    st.node(s, node, label(*lines), style)
    return node


def _proxy_label(p: Proxy) -> Label:
    where = f"{p.proto} {p.host_address} -> {p.container_address}"
    return label("docker-proxy", f"pid {p.pid}", where)


def _entry(c: Container) -> str | None:
    """The node a port forward points at: the container's init (or its first process)."""
    if not c.processes:
        return None
    return pnode(min(c.processes, key=proc_key).pid)


def _containers(
    s: graphviz.Digraph,
    key: str,
    containers: list[Container],
    st: _Arch,
    anchor: str | None,
    monitor: str = "shim",
) -> None:
    if not st.compact:
        # In name order, COLUMN containers high, then the next column (see grid).
        units = [_full(s, c, st, st.unit(c, key)) for c in by_name(containers)]
        grid(s, units, COLUMN)
        return
    name = f"cluster_{key}_all"
    with s.subgraph(name=name) as box:
        n = len(containers)
        cluster(box, label(plural(n, "container")), style="rounded", color="#495057")
        # Declared last first: in a left-to-right layout dot stacks a column's first node lowest.
        units = [_compact(box, c, st, st.unit(c, key)) for c in reversed(by_name(containers))]
        units.reverse()
        rows = height(n)
        grid(box, units, rows)
        for first, _ in units[:rows] if anchor else ():  # the whole grid after containerd
            s.edge(anchor, first, style="invis")
    _aggregate(containers, units, anchor, name, st, monitor)


def _full(g: graphviz.Digraph, c: Container, st: _Arch, unit: str) -> tuple[str, str]:
    """A shim node, then a cluster with the container's processes; (first, last) node. Both
    sit in one invisible cluster, so that dot keeps a shim beside its container."""
    first = ""
    with g.subgraph(name=f"cluster_u_{unit}") as s:
        s.attr(label="", style="invis", margin="0")
        if c.monitor is not None and c.monitor.pid not in st.known:
            sh = c.monitor
            how = f"re-parented: ppid {sh.ppid}" if sh.reparented else f"ppid {sh.ppid}"
            lines = [program(sh.cmdline, sh.kind), f"pid {sh.pid}", how]
            if c.pod is not None:
                lines.append(f"pod {c.pod.name or c.pod.id[:12]}")
            first = pnode(sh.pid)
            st.node(s, first, label(*lines), NODE_STYLE["shim"])
        with s.subgraph(name=f"cluster_c_{unit}") as box:
            cluster(box, title(c), **CONTAINER_CLUSTER)
            procs = sorted((p for p in c.processes if p.pid not in st.known), key=proc_key)
            for p in procs:
                lines = [f"{p.role}  pid {p.pid}", *wrapped(cmd(p))]
                style = NODE_STYLE.get(p.role, NODE_STYLE["child"])
                st.node(box, pnode(p.pid), label(*lines), style)
            if procs:
                depth = _depths(procs)
                last = pnode(max(procs, key=lambda p: (depth[p.pid], -p.pid)).pid)
            else:
                last = f"c_{unit}_none"
                why = f"{c.state}: no process" if c.monitor is None else "processes not readable"
                why = "its processes: drawn under another engine" if c.processes else why
                st.node(box, last, label(why), NODE_STYLE["stopped"])
    return first or last, last


def _depths(procs: list[Process]) -> dict[int, int]:
    """How deep each process is in its container's tree (a guard: PID reuse can make cycles)."""
    ppid = {p.pid: p.ppid for p in procs}
    out = {}
    for p in procs:
        n, cur, seen = 0, p.pid, set()
        while cur in ppid and cur not in seen:
            seen.add(cur)
            cur = ppid[cur]
            n += 1
        out[p.pid] = n
    return out


def _compact(s: graphviz.Digraph, c: Container, st: _Arch, unit: str) -> tuple[str, str]:
    """One node for a whole container: its shim, init, process count and ports in the label."""
    lines = [f"{c.name or '(name unknown)'}  {c.short_id}", c.image or "(image unknown)"]
    run = [f"{c.monitor.kind} {c.monitor.pid}"] if c.monitor is not None else []
    init = next((p for p in c.processes if p.pid == c.init_pid), None)
    if init is not None:
        run.append(f"init {init.pid} {init.name or program(init.cmdline, '?')}")
    lines.append("  ".join(run) if run else f"{c.state}: no process")
    if c.processes:
        lines.append(plural(len(c.processes), "process", "processes"))
    for p in sorted(c.proxies, key=lambda x: x.pid):
        lines.append(f"{p.proto} {p.host_address} -> :{p.container_port} (proxy {p.pid})")
    node = f"c_{unit}"
    st.node(s, node, label(*lines), NODE_STYLE["container" if c.monitor else "stopped"])
    return node, node


def _aggregate(
    containers: list[Container],
    units: list[tuple[str, str]],
    anchor: str | None,
    cluster: str,
    st: _Arch,
    monitor: str,
) -> None:
    """Compact view: one shim-address edge for all of an engine's shims, and one reparented
    edge per adopter, instead of one or two per container."""
    monitors = {c.monitor.pid: c.monitor for c in containers if c.monitor is not None}
    shims = list(monitors.values())
    if not shims or not units:
        return
    first = units[0][0]
    if anchor:
        st.edge("shim-address", anchor, first, plural(len(shims), monitor), lhead=cluster)
    adopters: dict[int, int] = {}
    for sh in shims:
        if sh.reparented:
            adopters[sh.ppid] = adopters.get(sh.ppid, 0) + 1
    for ppid, n in sorted(adopters.items()):
        text = plural(n, monitor) + " re-parented"
        st.edge("reparented", pnode(ppid), first, text, lhead=cluster)


def _model_edges(topo: Topology, st: _Arch) -> None:
    """The model's edges (for orphans, which belong to no engine, their own links). The
    compact view keeps only the links between nodes it drew (daemons, stray proxies)."""
    raw: list[Edge] = [x for e in _engines(topo) for x in e.edges]
    for c in topo.orphans:
        if c.monitor is not None and c.monitor.reparented:
            raw.append(Edge(c.monitor.ppid, c.monitor.pid, "reparented", ""))
        raw.extend(Edge(p.ppid, p.pid, "parent", "ppid") for p in c.processes)
    for x in raw:
        if x.kind not in EDGE_STYLE:
            continue
        if st.compact and not (x.src in st.known and x.dst in st.known):
            continue
        text = "gRPC socket" if x.kind == "socket" else ""
        if x.kind == "shim-address":  # drawn from containerd's side; dir=back turns the arrow
            st.edge(x.kind, pnode(x.dst), pnode(x.src))
        else:
            st.edge(x.kind, pnode(x.src), pnode(x.dst), text)


def _outside_node(g: graphviz.Digraph, node: str, st: _Arch) -> None:
    """A node for a PID an edge names but no engine holds: pid 1 or a subreaper."""
    if not re.fullmatch(r"p\d+", node) or int(node[1:]) in st.known:
        return
    pid = int(node[1:])
    what = "init: adopts orphaned shims and conmons" if pid == 1 else "outside the engine"
    st.node(g, node, label(f"pid {pid}", what), NODE_STYLE["host"])
