"""Diagrams with Graphviz: the architecture, the namespaces, a survival (one module each), and
what they share (dot.py: escaping, layout helpers, rendering). The only package that imports
`graphviz`."""

from __future__ import annotations

from tracer.model.topology import Topology


def source(topo: Topology, ns: bool = False, compact: bool = False) -> str:
    """The DOT source of the architecture view, or of the namespace view with ns."""
    if ns:
        from tracer.output.diagram.namespaces import namespaces

        return namespaces(topo, compact)
    from tracer.output.diagram.architecture import architecture

    return architecture(topo, compact)
