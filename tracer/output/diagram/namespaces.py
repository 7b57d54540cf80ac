"""The namespace diagram: processes grouped by the namespaces they are in.

Left to right: each container's processes and a note with the namespaces private to them;
then the namespaces shared by several containers; then the host's. An edge joins a group to
each shared or host namespace it is in, so sharing shows at a glance.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import graphviz

from tracer.model.namespaces import Namespace, NsInventory
from tracer.model.topology import Container, Process, Topology
from tracer.output.diagram import dot
from tracer.views.namespaces import MATRIX_TYPES, inventory

COLUMN = 12  # containers stacked in one column before the next column starts

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


# -- the namespace view ---------------------------------------------------------------------------


def namespaces(topo: Topology, compact: bool = False) -> str:
    """DOT source: processes grouped by the namespaces they are in.

    Left to right: each container's processes (a cluster; processes whose namespaces differ
    from their init's get a cluster of their own) and a note with the namespaces private to
    that group; then the namespaces shared by several containers; then the host's. An edge
    joins a group to each shared or host namespace it is in, so sharing shows at a glance.
    Compact: one node per container, host namespaces named in it instead of joined by edges.
    """
    g = dot.graph(topo, "namespaces: what each container isolates, and what it shares")
    host_ns = {str(k): int(v) for k, v in (topo.host.get("namespaces") or {}).items()}
    ctrs = [c for c in dot.by_name(topo.containers()) if c.processes]
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
    unique = dot.Names()  # one container under two engines: two units, never one name in both
    groups = [
        (e.title, [c for c in dot.by_name(e.containers) if c.processes]) for e in topo.engines
    ]
    groups.append(("shims whose containerd is not running", dot.by_name(topo.orphans)))
    for i, (heading, members) in enumerate(groups):
        members = [c for c in members if c.processes]
        if not members:
            continue
        with g.subgraph(name=f"cluster_nsengine_{i}") as box:  # one engine's containers
            heading_label = dot.label(f"engine {heading}", left=True)
            dot.cluster(box, heading_label, fontsize="12", color="#1f5fbf", style="rounded")
            units = [draw(box, c, klass, edges, unique, f"e{i}") for c in members]
            dot.grid(box, units, dot.height(len(units)) if compact else COLUMN)
    if not ctrs:
        g.node("nothing", label=dot.label("no running containers"), **dot.NODE_STYLE["stopped"])
    for kind, inode in sorted((k for k in users if klass(*k) == "shared"), key=_ns_key):
        names = sorted(c.name or c.short_id for c in ctrs if c.id in users[(kind, inode)])
        who = ", ".join(names) if len(names) <= 3 else dot.plural(len(names), "container")
        lines = [f"{kind} {inode}", *dot.wrapped("shared: " + who, lines=2)]
        g.node(_nsnode(kind, inode), label=dot.label(*lines), **NS_STYLE["shared"])
    if host_ns:
        with g.subgraph(name="cluster_host") as s:
            where = topo.host.get("namespaces_from") or "?"
            heading = dot.label("host namespaces", f"(read from {where})")
            dot.cluster(s, heading, color="#c92a2a", style="rounded")
            s.attr(rank="same")  # one column, also for the namespaces no container joins
            kinds = [k for k in MATRIX_TYPES if k in host_ns]
            if compact:
                lines = [f"{k} {host_ns[k]}" for k in kinds]
                s.node("host_ns", label=dot.label(*lines), **NS_STYLE["host"])
            for kind in kinds if not compact else ():
                s.node(
                    _nsnode(kind, host_ns[kind]),
                    label=dot.label(kind, f"{host_ns[kind]}"),
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
    for p in sorted(c.processes, key=dot.proc_key):
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
    g: graphviz.Digraph,
    c: Container,
    klass: Klass,
    edges: set[tuple[str, str, str, str]],
    names: dot.Names,
    engine: str,
) -> tuple[str, str]:
    """A container's cluster, with a sub-cluster per namespace set when it has several."""
    groups = _ns_groups(c)
    base = dict(next(iter(groups)))
    unit = names.new(dot.cid(c), engine)
    box_name = f"cluster_ns_{unit}"
    first = last = ""
    with g.subgraph(name=box_name) as box:
        dot.cluster(box, dot.title(c), **dot.CONTAINER_CLUSTER)
        for j, (sig, procs) in enumerate(groups.items()):
            ns = {k: v for k, v in sig if v is not None}
            name = f"{box_name}_{j}" if len(groups) > 1 else box_name
            if len(groups) > 1:
                with box.subgraph(name=name) as sub:
                    differs = [k for k, v in sig if base.get(k) != v]
                    why = "differs from the init in: " + " ".join(differs) if j else "as the init"
                    dot.cluster(sub, dot.label(why), fontsize="10", style="dashed,rounded")
                    a, b = _ns_group(sub, f"{unit}_{j}", procs, ns, klass, names)
            else:
                a, b = _ns_group(box, f"{unit}_{j}", procs, ns, klass, names)
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
    names: dot.Names,
) -> tuple[str, str]:
    """The processes of one namespace set, then a note listing its private namespaces."""
    nodes = []
    for p in procs:
        nodes.append(names.new(f"{dot.pnode(p.pid)}_ns", key))
        lines = [f"{p.role}  pid {p.pid}", *dot.wrapped(dot.cmd(p))]
        s.node(
            nodes[-1],
            label=dot.label(*lines),
            **dot.NODE_STYLE.get(p.role, dot.NODE_STYLE["child"]),
        )
    note = f"nsn_{key}"
    s.node(note, label=dot.label(*_ns_lines(ns, klass)), **NS_STYLE["private"])
    for n in nodes:
        s.edge(n, note, style="invis")
    return nodes[0], note


def _ns_compact(
    g: graphviz.Digraph,
    c: Container,
    klass: Klass,
    edges: set[tuple[str, str, str, str]],
    names: dot.Names,
    engine: str,
) -> tuple[str, str]:
    """One node for a container: its processes counted, its namespaces named by class."""
    groups = _ns_groups(c)
    sig, procs = next(iter(groups.items()))
    ns = {k: v for k, v in sig if v is not None}
    lines = [f"{c.name or '(name unknown)'}  {c.short_id}"]
    lines.append(dot.plural(len(c.processes), "process", "processes") + f" (init {procs[0].pid})")
    lines += _ns_lines(ns, klass, inodes=False)
    host = [k for k, v in ns.items() if klass(k, v) == "host"]
    if host:
        lines.append("host: " + " ".join(host))
    if len(groups) > 1:
        n = sum(len(p) for p in list(groups.values())[1:])
        lines.append(dot.plural(n, "process", "processes") + " in other namespaces")
    node = f"nsc_{names.new(dot.cid(c), engine)}"
    g.node(node, label=dot.label(*lines), **dot.NODE_STYLE["container"])
    for s2, members in groups.items():
        for kind, inode in s2:
            if inode is not None and klass(kind, inode) == "shared" and members:
                edges.add((node, _nsnode(kind, inode), "shared", ""))
    return node, node


def _ns_legend(g: graphviz.Digraph) -> None:
    """Namespaces by colour; an edge has the colour of the namespace it joins."""
    with g.subgraph(name="cluster_legend") as s:
        dot.cluster(
            s,
            dot.label("legend (an edge joins a group to a namespace it is in)"),
            color="#adb5bd",
            style="rounded",
        )
        for kind in NS_MEANING:
            s.node(f"legend_{kind}", label=dot.label(NS_MEANING[kind]), **NS_STYLE[kind])


# -- `export --ns --all`: every namespace of the host ----------------------------------------------

TREE_STYLE = {
    "host": {"fillcolor": "#ffe3e3", "color": "#c92a2a"},
    "containers": {"fillcolor": "#d8f5d0", "color": "#2b8a3e"},
    "other": {"fillcolor": "#f1f3f5", "color": "#868e96"},
    "leaked": {"fillcolor": "#ffc9c9", "color": "#c92a2a", "penwidth": "3"},
}


def inventory_diagram(inv: NsInventory, topo: Topology) -> str:
    """DOT source: the user-namespace tree and the PID-namespace tree (a parent's arrow to each
    child, as `lsns -T` nests them), each namespace labelled with the containers, engines and
    pods in it; the other namespaces hang from the user namespace that owns them, those
    with a container in them or no process at all (mounts, fds: leaks in red)."""
    g = dot.graph(topo, "every namespace: the user and PID trees, with their containers")
    shown = [n for n in inv.namespaces if n.type in ("user", "pid") or _drawn(n)]
    ids = {n.inode for n in shown}
    for kind, title_text in (("user", "user namespaces"), ("pid", "PID namespaces")):
        with g.subgraph(name=f"cluster_{kind}") as s:
            dot.cluster(s, dot.label(title_text), style="rounded", color="#adb5bd")
            for n in shown:
                if n.type == kind:
                    s.node(f"ns{n.inode}", _tree_label(n), **_tree_style(n))
    for n in shown:
        if n.type not in ("user", "pid"):
            g.node(f"ns{n.inode}", _tree_label(n), **_tree_style(n))
    for n in shown:
        if n.type in ("user", "pid") and n.parent in ids:
            g.edge(f"ns{n.parent}", f"ns{n.inode}", color="#495057")
        elif n.type not in ("user", "pid") and n.owner in ids:
            g.edge(f"ns{n.owner}", f"ns{n.inode}", style="dashed", color="#868e96",
                   label=dot.label("owns"))  # fmt: skip
    return g.source


def _drawn(n: Namespace) -> bool:
    """Beyond the two trees: namespaces with a container in them (not the host's), and
    those no process is in."""
    return (bool(n.containers) and not n.host) or not n.processes


def _tree_label(n: Namespace) -> dot.Label:
    lines = [f"{n.type} {n.inode}"]
    lines += dot.wrapped(inventory.label(n), lines=4)
    lines += [f"mount {m.path}" for m in n.mounts[:2]]
    lines += [f"fd {f.fd} of pid {f.pid}" for f in n.fds[:2]]
    if n.leaked:
        lines.append("LEAKED: " + (n.release or ""))
    elif n.processes:
        lines.append(dot.plural(len(n.processes), "process", "processes"))
    return dot.label(*lines)


def _tree_style(n: Namespace) -> dict[str, str]:
    if n.leaked:
        return TREE_STYLE["leaked"]
    if n.host:
        return TREE_STYLE["host"]
    return TREE_STYLE["containers" if n.containers or n.engines else "other"]
