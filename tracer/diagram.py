"""Diagrams of a snapshot: Graphviz DOT for the architecture and for the namespaces.

The only module that imports the `graphviz` package. Building the DOT source is pure (a
Topology in, a string out) and deterministic: everything is sorted, and the only time in it
is the snapshot's own `host.taken_at`, so one snapshot always gives byte-identical DOT.
`render` then pipes that source through Graphviz's `dot` binary.

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

import math
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePath
from typing import Any

import graphviz

from tracer.errors import MissingBinaryError, TracerError
from tracer.model import (
    Container,
    Edge,
    Engine,
    Process,
    Proxy,
    Shim,
    SnapshotFormatError,
    Topology,
)
from tracer.nsview import MATRIX_TYPES
from tracer.textsafe import for_terminal

FORMATS = ("svg", "png", "pdf", "dot")
FONT = "DejaVu Sans"
WRAP = 40  # characters per label line of a command line
COLUMN = 12  # containers stacked in one column (full view) before the next column starts
LARGE = 50  # containers: from here dot's layout work is bounded (see _graph)

# The model's edge kinds, plus `forwards` (docker-proxy -> the container owning -container-ip).
EDGE_STYLE: dict[str, dict[str, str]] = {
    "parent": {"color": "#4d4d4d", "style": "solid"},
    "socket": {"color": "#1f5fbf", "style": "bold", "penwidth": "2.5"},
    "shim-address": {"color": "#a1329b", "style": "dashed", "penwidth": "1.4"},
    "reparented": {"color": "#d9480f", "style": "dotted", "penwidth": "2"},
    "forwards": {"color": "#1c7c54", "style": "dashed", "penwidth": "1.4"},
}
EDGE_MEANING = {
    "parent": "parent: ppid (the process tree)",
    "socket": "socket: dockerd -> containerd (gRPC; a listener held by containerd)",
    "shim-address": "shim-address: shim -> its containerd (-address)",
    "reparented": "reparented: shim adopted by pid 1 or a subreaper",
    "forwards": "forwards: docker-proxy -> container (-container-ip)",
}
# Layout only, not meaning: a shim is drawn after its containerd although its edge points at
# containerd (dir=back).
EDGE_LAYOUT = {
    "shim-address": {"dir": "back"},
}
NODE_STYLE = {
    "dockerd": {"fillcolor": "#cfe2ff", "color": "#1f5fbf", "penwidth": "2"},
    "containerd": {"fillcolor": "#d3f3f1", "color": "#117a75", "penwidth": "2"},
    "shim": {"fillcolor": "#f3d9f1", "color": "#a1329b"},
    "init": {"fillcolor": "#d8f5d0", "color": "#2b8a3e"},
    "child": {"fillcolor": "#ffffff", "color": "#4d4d4d"},
    "exec": {"fillcolor": "#fff3bf", "color": "#b08900"},
    "proxy": {"fillcolor": "#e3ecfa", "color": "#1f5fbf"},
    "host": {"fillcolor": "#eeeeee", "color": "#777777", "shape": "ellipse"},
    "missing": {"fillcolor": "#fbe3e3", "color": "#c92a2a", "style": "dashed,filled"},
    "stopped": {"fillcolor": "#f1f3f5", "color": "#868e96", "style": "dashed,rounded,filled"},
    "container": {"fillcolor": "#f8f9fa", "color": "#495057"},
}
CONTAINER_CLUSTER = {"style": "rounded,filled", "fillcolor": "#f8f9fa", "color": "#495057"}
NS_STYLE = {
    "host": {"fillcolor": "#ffe3e3", "color": "#c92a2a"},
    "shared": {"fillcolor": "#fff3bf", "color": "#e67700", "penwidth": "2"},
    "private": {"fillcolor": "#d8f5d0", "color": "#2b8a3e", "shape": "note", "style": "filled"},
}
NS_EDGE = {
    "host": {"color": "#c92a2a99", "penwidth": "1.2", "minlen": "2"},
    "shared": {"color": "#e67700", "penwidth": "2.5"},
}
NS_MEANING = {
    "host": "host: the host's own namespace (not isolated)",
    "shared": "shared: one namespace, several containers",
    "private": "private: this container's alone",
}

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


def _cmd(p: Process) -> str:
    return " ".join(p.cmdline) or f"[{p.name}]"


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else many or word + 's'}"


# -- checking a snapshot read from a file ---------------------------------------------------------


def check(topo: Topology) -> None:
    """SnapshotFormatError unless each field the diagrams read has its documented type.

    `model.from_json` checks the shape; a file can still put a string where a PID goes, and
    PIDs become node names, so types are checked before any DOT is made from a file.
    """

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise SnapshotFormatError(f"malformed dtrace-tree snapshot: {what}")

    def num(value: Any, what: str, optional: bool = False) -> None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        need(ok or (optional and value is None), f"{what} is not a number")

    def text(value: Any, what: str, optional: bool = True) -> None:
        need(isinstance(value, str) or (optional and value is None), f"{what} is not text")

    def argv(value: Any, what: str) -> None:
        ok = isinstance(value, list) and all(isinstance(a, str) for a in value)
        need(ok, f"{what} command line is not a list of text")

    def proxy(p: Any) -> None:
        need(isinstance(p, Proxy), "proxy")
        num(p.pid, "proxy pid")
        num(p.host_port, "proxy host_port")
        num(p.container_port, "proxy container_port")
        for v in (p.proto, p.host_ip, p.container_ip):
            text(v, "proxy address", optional=False)

    def ns(value: Any, what: str) -> None:
        need(isinstance(value, dict), f"{what} namespaces")
        for k, v in value.items():
            text(k, f"{what} namespace type", optional=False)
            num(v, f"{what} namespace inode")

    def container(c: Container) -> None:
        text(c.id, "container id", optional=False)
        for v in (c.name, c.image, c.state):
            text(v, "container name, image or state")
        num(c.init_pid, "init_pid", optional=True)
        num(c.shim_pid, "shim_pid", optional=True)
        ns(c.namespaces, "container")
        if c.shim is not None:
            need(isinstance(c.shim, Shim), "shim")
            num(c.shim.pid, "shim pid")
            num(c.shim.ppid, "shim ppid")
            argv(c.shim.cmdline, "shim")
            text(c.shim.address, "shim address")
        for p in c.processes:
            need(isinstance(p, Process), "process")
            num(p.pid, "process pid")
            num(p.ppid, "process ppid")
            argv(p.cmdline, "process")
            text(p.role, "process role", optional=False)
            text(p.name, "process name", optional=False)
            ns(p.namespaces, "process")
        for x in c.proxies:
            proxy(x)

    need(isinstance(topo.host, dict), "host is not an object")
    for key in ("hostname", "taken_at", "namespaces_from"):
        text(topo.host.get(key), f"host.{key}")
    ns(topo.host.get("namespaces") or {}, "host")
    for e in topo.engines:
        if e.dockerd is not None:
            num(e.dockerd.pid, "dockerd pid")
            argv(e.dockerd.cmdline, "dockerd")
            text(e.dockerd.api_socket, "dockerd api_socket")
            text(e.dockerd.api_error, "dockerd api_error")
        if e.containerd is not None:
            num(e.containerd.pid, "containerd pid")
            argv(e.containerd.cmdline, "containerd")
            text(e.containerd.socket, "containerd socket", optional=False)
        for x in e.edges:
            num(x.src, "edge from")
            num(x.dst, "edge to")
            text(x.kind, "edge kind", optional=False)
            text(x.via, "edge via", optional=False)
        for px in e.unmatched_proxies:
            proxy(px)
        for c in e.containers:
            container(c)
    for c in topo.orphans:
        container(c)


# -- common pieces --------------------------------------------------------------------------------


def _graph(topo: Topology, view: str) -> graphviz.Digraph:
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


def _cluster(s: graphviz.Digraph, title: Label, fontsize: str = "11", **attrs: str) -> None:
    s.attr(label=title, fontname=FONT, fontsize=fontsize, labeljust="l", **attrs)


def _engines(topo: Topology) -> list[Engine]:
    def key(e: Engine) -> tuple[str, int, int]:
        return (e.title, e.dockerd.pid if e.dockerd else 0, e.containerd.pid if e.containerd else 0)

    return sorted(topo.engines, key=key)


def _sorted(containers: Iterable[Container]) -> list[Container]:
    return sorted(containers, key=lambda c: (c.name or "", c.id))


def _cid(c: Container) -> str:
    """A name-safe key for a container: its id is untrusted text when read from a file."""
    return re.sub("[^0-9a-zA-Z]", "_", c.id)[:64] or "none"


def _title(c: Container) -> Label:
    return label(c.name or "(name unknown)", c.short_id, c.image or "(image unknown)")


def _pnode(pid: int) -> str:
    return f"p{int(pid)}"


def _proc_key(p: Process) -> tuple[int, int]:
    """The init first, then by PID."""
    return (0 if p.role == "init" else 1, p.pid)


def _height(n: int) -> int:
    """Rows of a grid of n one-node containers, for a roughly square picture: such a node
    is about 2.5 times as wide as it is tall."""
    return max(1, math.ceil(math.sqrt(2.5 * n)))


def _grid(g: graphviz.Digraph, units: list[tuple[str, str]], height: int) -> None:
    """Stack units `height` high, then start a new column: an invisible edge from the last node
    of each unit to the first node of the unit `height` places on. Without it, dot puts every
    container in one column, hundreds of them high."""
    for i in range(height, len(units)):
        g.edge(units[i - height][1], units[i][0], style="invis")


def _legend(g: graphviz.Digraph, rows: list[tuple[str, dict[str, str], str]]) -> None:
    """One row per edge style: a short sample edge labelled with what it means."""
    with g.subgraph(name="cluster_legend") as s:
        _cluster(s, label("legend"), color="#adb5bd", style="rounded")
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

    def node(self, s: graphviz.Digraph, name: str, text: Label, style: Mapping[str, str]) -> None:
        self.order.setdefault(name, len(self.order))
        if re.fullmatch(r"p\d+", name):
            self.known.add(int(name[1:]))
        s.node(name, label=text, **style)

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
    g = _graph(topo, "architecture: dockerd -> containerd -> containerd-shim -> container")
    st = _Arch(compact)
    for i, e in enumerate(_engines(topo)):
        with g.subgraph(name=f"cluster_engine_{i}") as s:
            _engine(s, e, i, st)
    if topo.orphans:
        with g.subgraph(name="cluster_orphans") as s:
            _cluster(
                s,
                label("shims whose containerd is not running"),
                color="#c92a2a",
                style="dashed,rounded",
            )
            _containers(s, "orphans", topo.orphans, st, anchor=None)
    if not topo.engines and not topo.orphans:
        g.node("nothing", label=label("no Docker engine on this host"), **NODE_STYLE["stopped"])
    _model_edges(topo, st)
    for kind, src, dst, text, attrs in st.sorted_edges():
        for node in (src, dst):
            _outside_node(g, node, st)
        style = {**EDGE_STYLE[kind], **EDGE_LAYOUT.get(kind, {}), **attrs}
        g.edge(src, dst, label=label(text) if text else None, **style, **{"class": kind})
    _legend(g, [(k, EDGE_STYLE[k], EDGE_MEANING[k]) for k in EDGE_STYLE])
    return g.source


def _engine(s: graphviz.Digraph, e: Engine, i: int, st: _Arch) -> None:
    title = ["engine " + e.title]
    if e.dockerd and e.dockerd.live_restore is not None:
        title.append("live-restore " + ("on" if e.dockerd.live_restore else "off"))
    _cluster(s, label(*title, left=True), fontsize="12", color="#1f5fbf", style="rounded")
    if e.dockerd:
        d = e.dockerd
        lines = [program(d.cmdline, "dockerd"), f"pid {d.pid}", f"api {d.api_socket or '?'}"]
        if not d.reachable:
            lines.append(f"API unreachable: {d.api_error or '?'}")
        st.node(s, _pnode(d.pid), label(*lines), NODE_STYLE["dockerd"])
    else:
        st.node(s, f"e{i}_nodockerd", label("dockerd not running"), NODE_STYLE["missing"])
    anchor = None
    if e.containerd:
        cd = e.containerd
        how = "child of dockerd" if cd.managed else "listener proven" if cd.proven else ""
        lines = [program(cd.cmdline, "containerd"), f"pid {cd.pid}", cd.socket]
        lines += [how] if how else []
        anchor = _pnode(cd.pid)
        st.node(s, anchor, label(*lines), NODE_STYLE["containerd"])
    else:
        st.node(s, f"e{i}_nocontainerd", label("containerd not found"), NODE_STYLE["missing"])
    proxies: list[tuple[Proxy, Container | None]] = [
        (p, c) for c in e.containers for p in c.proxies
    ]
    proxies += [(p, None) for p in e.unmatched_proxies]
    for p, owner in sorted(proxies, key=lambda x: x[0].pid):
        if st.compact and owner is not None:
            continue  # told in its container's node
        st.node(s, _pnode(p.pid), _proxy_label(p), NODE_STYLE["proxy"])
        target = _entry(owner) if owner is not None else None
        if owner is not None and target is not None:  # the ports are in the proxy's label
            st.edge("forwards", _pnode(p.pid), target, lhead=f"cluster_c_{_cid(owner)}")
    if e.containers:
        _containers(s, f"e{i}", e.containers, st, anchor)


def _proxy_label(p: Proxy) -> Label:
    where = f"{p.proto} {p.host_ip}:{p.host_port} -> {p.container_ip}:{p.container_port}"
    return label("docker-proxy", f"pid {p.pid}", where)


def _entry(c: Container) -> str | None:
    """The node a port forward points at: the container's init (or its first process)."""
    if not c.processes:
        return None
    return _pnode(min(c.processes, key=_proc_key).pid)


def _containers(
    s: graphviz.Digraph, key: str, containers: list[Container], st: _Arch, anchor: str | None
) -> None:
    if not st.compact:
        # Drawn in reverse: in a left-to-right layout dot stacks a cluster's first node lowest.
        units = [_full(s, c, st) for c in _sorted(containers)]
        _grid(s, units, COLUMN)
        return
    name = f"cluster_{key}_all"
    with s.subgraph(name=name) as box:
        n = len(containers)
        _cluster(box, label(_plural(n, "container")), style="rounded", color="#495057")
        # Declared last first: in a left-to-right layout dot stacks a column's first node lowest.
        units = [_compact(box, c, st) for c in reversed(_sorted(containers))][::-1]
        height = _height(n)
        _grid(box, units, height)
        for first, _ in units[:height] if anchor else ():  # the whole grid after containerd
            s.edge(anchor, first, style="invis")
    _aggregate(containers, units, anchor, name, st)


def _full(g: graphviz.Digraph, c: Container, st: _Arch) -> tuple[str, str]:
    """A shim node, then a cluster with the container's processes; (first, last) node. Both
    sit in one invisible cluster, so that dot keeps a shim beside its container."""
    first = ""
    with g.subgraph(name=f"cluster_u_{_cid(c)}") as s:
        s.attr(label="", style="invis", margin="0")
        if c.shim is not None and c.shim.pid not in st.known:
            sh = c.shim
            how = f"re-parented: ppid {sh.ppid}" if sh.reparented else f"ppid {sh.ppid}"
            lines = [program(sh.cmdline, "containerd-shim"), f"pid {sh.pid}", how]
            first = _pnode(sh.pid)
            st.node(s, first, label(*lines), NODE_STYLE["shim"])
        with s.subgraph(name=f"cluster_c_{_cid(c)}") as box:
            _cluster(box, _title(c), **CONTAINER_CLUSTER)
            procs = sorted((p for p in c.processes if p.pid not in st.known), key=_proc_key)
            for p in procs:
                lines = [f"{p.role}  pid {p.pid}", *wrapped(_cmd(p))]
                style = NODE_STYLE.get(p.role, NODE_STYLE["child"])
                st.node(box, _pnode(p.pid), label(*lines), style)
            if procs:
                depth = _depths(procs)
                last = _pnode(max(procs, key=lambda p: (depth[p.pid], -p.pid)).pid)
            else:
                last = f"c_{_cid(c)}_none"
                why = f"{c.state}: no process" if c.shim is None else "processes not readable"
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


def _compact(s: graphviz.Digraph, c: Container, st: _Arch) -> tuple[str, str]:
    """One node for a whole container: its shim, init, process count and ports in the label."""
    lines = [f"{c.name or '(name unknown)'}  {c.short_id}", c.image or "(image unknown)"]
    run = [f"shim {c.shim.pid}"] if c.shim is not None else []
    init = next((p for p in c.processes if p.pid == c.init_pid), None)
    if init is not None:
        run.append(f"init {init.pid} {init.name or program(init.cmdline, '?')}")
    lines.append("  ".join(run) if run else f"{c.state}: no process")
    if c.processes:
        lines.append(_plural(len(c.processes), "process", "processes"))
    for p in sorted(c.proxies, key=lambda x: x.pid):
        lines.append(f"{p.proto} {p.host_ip}:{p.host_port} -> :{p.container_port} (proxy {p.pid})")
    node = f"c_{_cid(c)}"
    st.node(s, node, label(*lines), NODE_STYLE["container" if c.shim else "stopped"])
    return node, node


def _aggregate(
    containers: list[Container],
    units: list[tuple[str, str]],
    anchor: str | None,
    cluster: str,
    st: _Arch,
) -> None:
    """Compact view: one shim-address edge for all of an engine's shims, and one reparented
    edge per adopter, instead of one or two per container."""
    shims = [c.shim for c in containers if c.shim is not None]
    if not shims or not units:
        return
    first = units[0][0]
    if anchor:
        st.edge("shim-address", anchor, first, _plural(len(shims), "shim"), lhead=cluster)
    adopters: dict[int, int] = {}
    for sh in shims:
        if sh.reparented:
            adopters[sh.ppid] = adopters.get(sh.ppid, 0) + 1
    for ppid, n in sorted(adopters.items()):
        text = _plural(n, "shim") + " re-parented"
        st.edge("reparented", _pnode(ppid), first, text, lhead=cluster)


def _model_edges(topo: Topology, st: _Arch) -> None:
    """The model's edges (for orphans, which belong to no engine, their own links). The
    compact view keeps only the links between nodes it drew (daemons, stray proxies)."""
    raw: list[Edge] = [x for e in _engines(topo) for x in e.edges]
    for c in topo.orphans:
        if c.shim is not None and c.shim.reparented:
            raw.append(Edge(c.shim.ppid, c.shim.pid, "reparented", ""))
        raw.extend(Edge(p.ppid, p.pid, "parent", "ppid") for p in c.processes)
    for x in raw:
        if x.kind not in EDGE_STYLE:
            continue
        if st.compact and not (x.src in st.known and x.dst in st.known):
            continue
        text = "gRPC socket" if x.kind == "socket" else ""
        if x.kind == "shim-address":  # drawn from containerd's side; dir=back turns the arrow
            st.edge(x.kind, _pnode(x.dst), _pnode(x.src))
        else:
            st.edge(x.kind, _pnode(x.src), _pnode(x.dst), text)


def _outside_node(g: graphviz.Digraph, node: str, st: _Arch) -> None:
    """A node for a PID an edge names but no engine holds: pid 1 or a subreaper."""
    if not re.fullmatch(r"p\d+", node) or int(node[1:]) in st.known:
        return
    pid = int(node[1:])
    what = "init: adopts orphaned shims" if pid == 1 else "outside the engine"
    st.node(g, node, label(f"pid {pid}", what), NODE_STYLE["host"])


# -- the namespace view ---------------------------------------------------------------------------


def namespaces(topo: Topology, compact: bool = False) -> str:
    """DOT source: processes grouped by the namespaces they are in.

    Left to right: each container's processes (a cluster; processes whose namespaces differ
    from their init's get a cluster of their own) and a note with the namespaces private to
    that group; then the namespaces shared by several containers; then the host's. An edge
    joins a group to each shared or host namespace it is in, so sharing shows at a glance.
    Compact: one node per container, host namespaces named in it instead of joined by edges.
    """
    g = _graph(topo, "namespaces: what each container isolates, and what it shares")
    host_ns = {str(k): int(v) for k, v in (topo.host.get("namespaces") or {}).items()}
    ctrs = [c for c in _sorted(topo.containers()) if c.processes]
    users: dict[tuple[str, int], set[str]] = {}
    for c in ctrs:
        for p in c.processes:
            for kind in MATRIX_TYPES:
                if kind in p.namespaces:
                    users.setdefault((kind, p.namespaces[kind]), set()).add(c.id)

    def klass(kind: str, inode: int) -> str:
        if host_ns.get(kind) == inode:
            return "host"
        return "shared" if len(users.get((kind, inode), ())) > 1 else "private"

    edges: set[tuple[str, str, str, str]] = set()  # (from, namespace node, class, ltail)
    draw = _ns_compact if compact else _ns_container
    units = [draw(g, c, klass, edges) for c in ctrs]
    _grid(g, units, _height(len(units)) if compact else COLUMN)
    if not ctrs:
        g.node("nothing", label=label("no running containers"), **NODE_STYLE["stopped"])
    for kind, inode in sorted((k for k in users if klass(*k) == "shared"), key=_ns_key):
        names = sorted(c.name or c.short_id for c in ctrs if c.id in users[(kind, inode)])
        who = ", ".join(names) if len(names) <= 3 else _plural(len(names), "container")
        lines = [f"{kind} {inode}", *wrapped("shared: " + who, lines=2)]
        g.node(_nsnode(kind, inode), label=label(*lines), **NS_STYLE["shared"])
    if host_ns:
        with g.subgraph(name="cluster_host") as s:
            where = topo.host.get("namespaces_from") or "?"
            title = label("host namespaces", f"(read from {where})")
            _cluster(s, title, color="#c92a2a", style="rounded")
            s.attr(rank="same")  # one column, also for the namespaces no container joins
            kinds = [k for k in MATRIX_TYPES if k in host_ns]
            if compact:
                lines = [f"{k} {host_ns[k]}" for k in kinds]
                s.node("host_ns", label=label(*lines), **NS_STYLE["host"])
            for kind in kinds if not compact else ():
                s.node(
                    _nsnode(kind, host_ns[kind]),
                    label=label(kind, f"{host_ns[kind]}"),
                    **NS_STYLE["host"],
                )
    for src, dst, kind, tail in sorted(edges):
        if compact and kind == "host":
            continue  # named in the container's node instead
        attrs = {**NS_EDGE[kind], "class": f"ns-{kind}", "arrowhead": "none"}
        g.edge(src, dst, **attrs, **({"ltail": tail} if tail else {}))
    _ns_legend(g)
    return g.source


def _nsnode(kind: str, inode: int) -> str:
    return f"ns_{kind}_{int(inode)}"


def _ns_key(k: tuple[str, int]) -> tuple[int, int]:
    return (MATRIX_TYPES.index(k[0]), k[1])


Klass = Callable[[str, int], str]
Signature = tuple[tuple[str, int | None], ...]


def _ns_groups(c: Container) -> dict[Signature, list[Process]]:
    """The container's processes by the set of namespaces they are in; the init's set first."""
    groups: dict[Signature, list[Process]] = {}
    for p in sorted(c.processes, key=_proc_key):
        groups.setdefault(tuple((k, p.namespaces.get(k)) for k in MATRIX_TYPES), []).append(p)
    return groups


def _ns_lines(ns: Mapping[str, int], klass: Klass, inodes: bool = True) -> list[str]:
    mine = [f"{k} {v}" if inodes else k for k, v in ns.items() if klass(k, v) == "private"]
    if not ns:
        return ["namespaces unknown", "(not readable without root)"]
    if not inodes:
        return ["private: " + (" ".join(mine) or "none")]
    return ["private", *mine] if mine else ["nothing private"]


def _ns_container(
    g: graphviz.Digraph, c: Container, klass: Klass, edges: set[tuple[str, str, str, str]]
) -> tuple[str, str]:
    """A container's cluster, with a sub-cluster per namespace set when it has several."""
    groups = _ns_groups(c)
    base = dict(next(iter(groups)))
    cluster = f"cluster_ns_{_cid(c)}"
    first = last = ""
    with g.subgraph(name=cluster) as box:
        _cluster(box, _title(c), **CONTAINER_CLUSTER)
        for j, (sig, procs) in enumerate(groups.items()):
            ns = {k: v for k, v in sig if v is not None}
            name = f"{cluster}_{j}" if len(groups) > 1 else cluster
            if len(groups) > 1:
                with box.subgraph(name=name) as sub:
                    differs = [k for k, v in sig if base.get(k) != v]
                    why = "differs from the init in: " + " ".join(differs) if j else "as the init"
                    _cluster(sub, label(why), fontsize="10", style="dashed,rounded")
                    a, b = _ns_group(sub, f"{_cid(c)}_{j}", procs, ns, klass)
            else:
                a, b = _ns_group(box, f"{_cid(c)}_{j}", procs, ns, klass)
            first, last = first or a, b
            for kind, inode in ns.items():
                if klass(kind, inode) != "private":
                    edges.add((b, _nsnode(kind, inode), klass(kind, inode), name))
    return first, last


def _ns_group(
    s: graphviz.Digraph,
    key: str,
    procs: list[Process],
    ns: Mapping[str, int],
    klass: Klass,
) -> tuple[str, str]:
    """The processes of one namespace set, then a note listing its private namespaces."""
    nodes = []
    for p in procs:
        nodes.append(f"{_pnode(p.pid)}_ns")
        lines = [f"{p.role}  pid {p.pid}", *wrapped(_cmd(p))]
        s.node(nodes[-1], label=label(*lines), **NODE_STYLE.get(p.role, NODE_STYLE["child"]))
    note = f"nsn_{key}"
    s.node(note, label=label(*_ns_lines(ns, klass)), **NS_STYLE["private"])
    for n in nodes:
        s.edge(n, note, style="invis")
    return nodes[0], note


def _ns_compact(
    g: graphviz.Digraph, c: Container, klass: Klass, edges: set[tuple[str, str, str, str]]
) -> tuple[str, str]:
    """One node for a container: its processes counted, its namespaces named by class."""
    groups = _ns_groups(c)
    sig, procs = next(iter(groups.items()))
    ns = {k: v for k, v in sig if v is not None}
    lines = [f"{c.name or '(name unknown)'}  {c.short_id}"]
    lines.append(_plural(len(c.processes), "process", "processes") + f" (init {procs[0].pid})")
    lines += _ns_lines(ns, klass, inodes=False)
    host = [k for k, v in ns.items() if klass(k, v) == "host"]
    if host:
        lines.append("host: " + " ".join(host))
    if len(groups) > 1:
        n = sum(len(p) for p in list(groups.values())[1:])
        lines.append(_plural(n, "process", "processes") + " in other namespaces")
    node = f"nsc_{_cid(c)}"
    g.node(node, label=label(*lines), **NODE_STYLE["container"])
    for s2, members in groups.items():
        for kind, inode in s2:
            if inode is not None and klass(kind, inode) == "shared" and members:
                edges.add((node, _nsnode(kind, inode), "shared", ""))
    return node, node


def _ns_legend(g: graphviz.Digraph) -> None:
    """Namespaces by colour; an edge has the colour of the namespace it joins."""
    with g.subgraph(name="cluster_legend") as s:
        _cluster(
            s,
            label("legend (an edge joins a group to a namespace it is in)"),
            color="#adb5bd",
            style="rounded",
        )
        for kind in NS_MEANING:
            s.node(f"legend_{kind}", label=label(NS_MEANING[kind]), **NS_STYLE[kind])


# -- survive: before and after a restart --------------------------------------------------------


def survival(report: Mapping[str, Any]) -> str:
    """The DOT source of a `survive` report: the daemons and every container's shim and init
    before (left) and after (right) the restart; a kept process is joined to itself by a green
    `same process` edge, and a lost one is red."""
    g = graphviz.Digraph("dtrace_tree_survive")
    title = f"dtrace-tree survive: restart {report.get('daemon')} of {report.get('engine')}"
    outcome = f"verdict: {report.get('verdict')}; down {report.get('downtime_ms')} ms"
    g.attr("graph", label=label(title, outcome, left=True), labelloc="t", labeljust="l")
    g.attr("graph", fontname=FONT, fontsize="16", rankdir="LR", newrank="true")
    g.attr("graph", nodesep="0.15", ranksep="1.2", bgcolor="white", pad="0.2")
    g.attr("node", shape="box", style="rounded,filled", fontname=FONT, fontsize="10")
    g.attr("edge", fontname=FONT, fontsize="9", arrowsize="0.7")
    rows = sorted(report.get("containers") or [], key=lambda c: (str(c.get("name")), c["id"]))
    lost_style = {"fillcolor": "#ffe3e3", "color": "#c92a2a"}
    for side in ("before", "after"):
        daemons = report.get(side) or {}
        with g.subgraph(name=f"cluster_{side}") as s:
            _cluster(s, label(side), fontsize="14", color="#495057", style="rounded")
            for kind in ("dockerd", "containerd"):
                pid = daemons.get(f"{kind}_pid")
                text = label(kind, f"pid {pid}" if pid else "not running")
                s.node(f"{side}_{kind}", label=text, **NODE_STYLE[kind])
            for i, c in enumerate(rows):
                pid, shim = c.get(f"init_pid_{side}"), c.get(f"shim_pid_{side}")
                lost = side == "after" and not c.get("survived")
                text = label(
                    str(c.get("name") or str(c["id"])[:12]),
                    f"init pid {pid}" if pid else "no process",
                    f"shim pid {shim}" if shim else "no shim",
                )
                s.node(f"{side}_c{i}", label=text, **(lost_style if lost else NODE_STYLE["init"]))
    for kind in ("dockerd", "containerd"):
        how = "restarted" if report.get("daemon") == kind else "kept"
        g.edge(f"before_{kind}", f"after_{kind}", label=label(how), color="#adb5bd", style="dashed")
    for i, c in enumerate(rows):
        if c.get("survived"):
            edge = {"label": label("same process"), "color": "#2b8a3e", "penwidth": "2"}
        else:
            edge = {"label": label("lost"), "color": "#c92a2a", "style": "dashed"}
        g.edge(f"before_c{i}", f"after_c{i}", **edge)
    return g.source


# -- output ---------------------------------------------------------------------------------------


def source(topo: Topology, ns: bool = False, compact: bool = False) -> str:
    """The DOT source of the architecture view, or of the namespace view with ns."""
    return namespaces(topo, compact) if ns else architecture(topo, compact)


def render(dot_source: str, fmt: str) -> bytes:
    """The diagram as svg, png or pdf, made by Graphviz's `dot`; for dot, the source itself."""
    if fmt == "dot":
        return dot_source.encode()
    if fmt not in FORMATS:
        raise ValueError(f"unknown diagram format {fmt!r}")
    try:
        return graphviz.Source(dot_source).pipe(format=fmt, quiet=True)
    except graphviz.ExecutableNotFound as exc:
        raise MissingBinaryError("dot", "graphviz") from exc
    except graphviz.CalledProcessError as exc:
        err = (exc.stderr or b"").decode(errors="replace").strip().splitlines()
        why = err[0] if err else f"exit status {exc.returncode}"
        raise TracerError(f"dot failed to render {fmt}: {why}") from exc


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
