"""Several hosts in one picture: a cluster per host, an engine per cluster inside it, one node
per container (its name, image and init), and the fleet's summary as the caption."""

from __future__ import annotations

import graphviz

from tracer.model.fleet import Fleet
from tracer.model.topology import Container, Dockerd, Topology
from tracer.output.diagram.dot import (
    FONT,
    NODE_STYLE,
    Names,
    by_name,
    cid,
    cluster,
    grid,
    height,
    label,
    plural,
)


def fleet(doc: Fleet) -> str:
    """DOT source. Node names carry the host's place in the fleet: PIDs and ids repeat across
    hosts."""
    g = graphviz.Digraph("dtrace_tree_fleet")
    engines = sum(h.engines for h in doc.hosts)
    running = sum(h.containers for h in doc.hosts)
    caption = [
        "dtrace-tree: a fleet of hosts",
        f"{plural(len(doc.hosts), 'host')}, {plural(engines, 'engine')}, "
        f"{running} running containers",
    ]
    if doc.no_live_restore:
        caption.append(
            "without live-restore (containers die with the daemon): "
            + ", ".join(f"{e.hostname} {e.what}" for e in doc.no_live_restore)
        )
    if doc.host_namespaces:
        caption.append(
            f"{plural(len(doc.host_namespaces), 'container')} in the host's own namespaces"
        )
    g.attr("graph", label=label(*caption, left=True), labelloc="t", labeljust="l")
    g.attr("graph", fontname=FONT, fontsize="16", rankdir="LR", compound="true", newrank="true")
    g.attr("graph", nodesep="0.15", ranksep="0.4", bgcolor="white", pad="0.2")
    if sum(len(t.containers()) for t in doc.topologies) > 50:
        g.attr("graph", nslimit="2", nslimit1="2")
    g.attr("node", shape="box", style="rounded,filled", fontname=FONT, fontsize="10")
    exposed = {(e.hostname, e.what) for e in doc.host_namespaces}
    names = Names()  # one container seen under two engines of a host: two nodes
    pairs = list(enumerate(zip(doc.hosts, doc.topologies, strict=True)))
    # Declared last first: in a left-to-right layout dot stacks the first cluster lowest.
    for h, (line, topo) in reversed(pairs):
        with g.subgraph(name=f"cluster_h{h}") as host:
            heading = label(
                f"host {line.hostname or '?'}", f"taken {line.taken_at or '?'}", left=True
            )
            cluster(host, heading, fontsize="14", color="#343a40", style="rounded")
            for i, engine in enumerate(topo.engines):
                with host.subgraph(name=f"cluster_h{h}_e{i}") as box:
                    d = engine.daemon(Dockerd)
                    lr = "" if d is None else {True: "on", False: "OFF", None: "?"}[d.live_restore]
                    lines = [f"engine {engine.title}"] + ([f"live-restore {lr}"] if lr else [])
                    style = {"color": "#c92a2a"} if lr == "OFF" else {"color": "#1f5fbf"}
                    cluster(box, label(*lines, left=True), style="rounded", **style)
                    daemons = [f"{x.role} {x.pid}" for x in engine.daemons] or ["no daemon"]
                    top = f"h{h}_e{i}_daemons"
                    box.node(top, label=label(*daemons), **NODE_STYLE["dockerd"])
                    shown = [c for c in by_name(engine.containers) if c.init_pid is not None]
                    units = [_container(box, names.new(f"h{h}_c_{cid(c)}", f"e{i}"), c,
                                        (line.hostname, c.label) in exposed)
                             for c in shown]  # fmt: skip
                    grid(box, units, height(len(units)))
                    for first, _ in units[: height(len(units))]:
                        box.edge(top, first, style="invis")
    return g.source


def _container(g: graphviz.Digraph, node: str, c: Container, exposed: bool) -> tuple[str, str]:
    lines = [f"{c.label}  {c.short_id}", c.image or "(image unknown)", f"init {c.init_pid}"]
    if exposed:
        lines.append("in the host's namespaces")
    style = NODE_STYLE["missing"] if exposed else NODE_STYLE["container"]
    g.node(node, label=label(*lines), **style)
    return node, node


def engines_only(topo: Topology) -> str:
    """DOT source of the last resort: one node per engine (its daemons and how many
    containers it runs), for a host whose containers dot cannot lay out in time."""
    g = graphviz.Digraph("dtrace_tree_engines")
    host = topo.host or {}
    caption = [f"dtrace-tree: {plural(len(topo.engines), 'engine')}, "
               f"{plural(len(topo.containers()), 'container')} (one node per engine)"]  # fmt: skip
    if host.get("hostname"):
        caption.append(f"host {host['hostname']}  {host.get('taken_at') or ''}".rstrip())
    g.attr("graph", label=label(*caption, left=True), labelloc="t", labeljust="l")
    g.attr("graph", fontname=FONT, fontsize="16", rankdir="LR", bgcolor="white", pad="0.2")
    g.attr("node", shape="box", style="rounded,filled", fontname=FONT, fontsize="10")
    units = []
    for i, engine in enumerate(topo.engines):
        running = sum(1 for c in engine.containers if c.init_pid is not None)
        lines = [f"engine {engine.title}"]
        lines += [f"{d.ROLE} {d.pid}" for d in engine.daemons] or ["no daemon"]
        lines.append(f"{plural(len(engine.containers), 'container')}, {running} running")
        g.node(f"e{i}", label=label(*lines), **NODE_STYLE["dockerd"])
        units.append((f"e{i}", f"e{i}"))
    if topo.orphans:
        g.node("orphans", label=label(f"{plural(len(topo.orphans), 'container')} of no engine"),
               **NODE_STYLE["missing"])  # fmt: skip
    grid(g, units, height(len(units)))
    return g.source
