"""Diagrams with Graphviz: the architecture, the namespaces, a survival (one module each), and
what they share (dot.py: escaping, layout helpers, rendering). The only package that imports
`graphviz`."""

from __future__ import annotations

from tracer.model.topology import Topology

# Containers above which a view is drawn one node per container (by export unless --full is
# given; by serve always), measured on synthetic hosts (2 processes per container;
# `dot -Tsvg`, 2-core VM):
# architecture, full view: 30 -> 0.1 s, 2342 x 2116 pt; 60 -> 0.4 s, 3755 x 3406 pt;
# 100 -> 2.1 s, 5168 x 5034 pt; 300 -> ~46 s. Compact: 300 -> 0.1 s. The namespace view grows
# down: 30 -> 1065 x 4926 pt, 100 -> 2367 x 12795 pt, 300 -> 19 s and 9574 x 33937 pt;
# compact at 300: 0.06 s, 3395 x 2289 pt.
FULL_UP_TO: dict[str, int] = {"architecture": 40, "namespaces": 24}


def draw(
    topo: Topology, fmt: str, ns: bool = False, compact: bool = False
) -> tuple[bytes, list[str]]:
    """The diagram rendered, never for longer than dot's time (dot.DOT_SECONDS) a try: when
    dot runs out of time, one node per container is drawn instead, and then, if even that is
    too slow, one node per engine. The notes say what was drawn instead, and why."""
    from tracer.output.diagram import dot
    from tracer.output.diagram.fleet import engines_only

    notes: list[str] = []
    tries = [("", lambda: source(topo, ns, compact))]
    if not compact:
        tries.append(("one node per container", lambda: source(topo, ns, True)))
    tries.append(("one node per engine, with its counts", lambda: engines_only(topo)))
    for i, (_what, make) in enumerate(tries):
        try:
            return dot.render(make(), fmt), notes
        except dot.DotTooSlow as exc:
            if i + 1 == len(tries):
                raise
            notes.append(f"{exc}: drawing {tries[i + 1][0]} instead")
    raise AssertionError("unreachable")


def source(topo: Topology, ns: bool = False, compact: bool = False) -> str:
    """The DOT source of the architecture view, or of the namespace view with ns."""
    if ns:
        from tracer.output.diagram.namespaces import namespaces

        return namespaces(topo, compact)
    from tracer.output.diagram.architecture import architecture

    return architecture(topo, compact)
