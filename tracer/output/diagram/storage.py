"""`export --fs`: what the selected containers are made of, as one picture.

Each container is a cluster holding its own layers (the writable layer on top of its init
layer); below them, the image layers, each drawn once however many containers stand on it
(keyed by chain id, which names a layer together with everything under it), with how many
containers use it; volumes and bind-mount sources are nodes of their own, joined to each
container that mounts them by an edge labelled with the destination. Built from `fs` reports
(tracer/views/storage.py); every label goes through dot.label, like every diagram here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from tracer.model.storage import FsReport, Layer
from tracer.model.topology import Topology
from tracer.output.diagram import dot
from tracer.output.units import size

STYLE = {
    "rw": dot.PALETTE["yellow"],
    "init": dot.PALETTE["teal"],
    "image": dot.PALETTE["green"],
    "lower": dot.PALETTE["grey"],
    "volume": dot.PALETTE["blue"] | {"shape": "cylinder"},
    "bind": dot.PALETTE["white"] | {"shape": "folder"},
}


def node(kind: str, key: str) -> str:
    """A DOT-safe, stable node name for untrusted text (a path, an id)."""
    return f"{kind}_{hashlib.sha256(key.encode('utf-8', 'surrogateescape')).hexdigest()[:16]}"


def _layer_label(layer: Layer, users: int | None) -> dot.Label:
    ident = (layer.diff_id or layer.cache_id or layer.path or "?").removeprefix("sha256:")[:12]
    lines = [f"{layer.role} layer", ident, size(layer.size_bytes, "size unknown")]
    if users is not None and layer.role in ("image", "lower"):
        lines.append(f"used by {dot.plural(users, 'container')}")
    return dot.label(*lines)


def storage(topo: Topology, reports: Sequence[FsReport]) -> str:
    """The DOT source of the storage view."""
    g = dot.graph(topo, "storage: layers (shared ones drawn once), volumes and binds")
    g.attr("graph", rankdir="TB")
    shared: dict[str, tuple[Layer, set[str]]] = {}  # node -> a layer, containers drawing it
    below: set[tuple[str, str]] = set()
    sources: dict[str, tuple[str, str, str | None]] = {}  # node -> kind, path, volume
    mounts: set[tuple[str, str, str]] = set()  # (container's top node, source node, label)
    for r in sorted(reports, key=lambda x: (x.container.name or "~", x.container.id)):
        key = "".join(ch if ch.isalnum() else "_" for ch in r.container.id)[:64]
        own = [x for x in r.layers if x.role in ("rw", "init")]
        rest = [x for x in r.layers if x.role not in ("rw", "init")]
        with g.subgraph(name=f"cluster_{key}") as s:
            c = r.container
            dot.cluster(s, dot.label(c.name or "(name unknown)", c.id[:12], c.image or "",
                                     c.state), **dot.CONTAINER_CLUSTER)  # fmt: skip
            names = []
            for layer in own:
                name = node(layer.role, f"{c.id}/{layer.role}")
                s.node(name, _layer_label(layer, None), **STYLE[layer.role])
                names.append(name)
            if not own:
                names.append(node("empty", c.id))
                s.node(names[0], dot.label("no layer could be read"), **STYLE["lower"])
        for layer in rest:
            name = node("layer", layer.chain_id or layer.cache_id or layer.path or "?")
            shared.setdefault(name, (layer, set()))[1].add(c.id)
            names.append(name)
        below |= {(a, b) for a, b in zip(names, names[1:], strict=False)}
        for m in r.mounts or []:
            if m.kind not in ("volume", "bind") or m.source is None:
                continue
            where = node(m.kind, m.source)
            sources[where] = (m.kind, m.source, m.volume)
            how = m.destination + ("  (ro)" if m.read_only else "")
            mounts.add((names[0], where, how))
    for name, (layer, users) in sorted(shared.items()):
        total = (len(layer.shared_with) + 1) if layer.shared_with is not None else None
        g.node(name, _layer_label(layer, total if total is not None else len(users)),
               **STYLE.get(layer.role, STYLE["lower"]))  # fmt: skip
    for a, b in sorted(below):
        g.edge(a, b, arrowhead="none", color="#868e96")
    for name, (kind, path, volume) in sorted(sources.items()):
        title = f"volume {volume}" if volume else "bind mount source"
        g.node(name, dot.label(title, *dot.wrapped(path, lines=4)), **STYLE[kind])
    for top, where, how in sorted(mounts):
        g.edge(top, where, label=dot.label(how), style="dashed", color="#1f5fbf")
    return str(g.source)
