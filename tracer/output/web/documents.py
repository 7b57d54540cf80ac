"""The documents `serve` answers with, made from one look at the host: the same JSON as the
commands (`show -H all --json`, `ns --json`, and `ns|fs|cgroup CONTAINER --json`) and the
diagrams of `export` (SVG)."""

from __future__ import annotations

from typing import Any

from tracer.errors import UsageError
from tracer.kernel.root import HostRoot
from tracer.model.topology import Topology
from tracer.output.web.hub import encode

VIEWS = ("architecture", "namespaces")
DOCUMENTS = ("show", "show-all", "ns") + tuple(f"diagram:{v}" for v in VIEWS)
DETAILS = ("ns", "fs", "cgroup")


def document(topo: Topology, what: str) -> bytes:
    """One of DOCUMENTS, made from topo (everything seen, stopped containers too)."""
    from tracer.views.selection import select

    shown = select(topo, [], include_stopped=what == "show-all")
    if what in ("show", "show-all"):
        return encode(shown.to_json())
    if what == "ns":
        from tracer.views.namespaces import matrix

        return encode(matrix(topo).to_json())
    view, _, engines = what.removeprefix("diagram:").partition("@")
    if view not in VIEWS:
        raise ValueError(f"no document {what!r}")
    from tracer.output import diagram
    from tracer.output.diagram import dot

    if engines:
        shown = only(shown, set(engines.split("|")))
    compact = len(shown.containers()) > diagram.FULL_UP_TO[view]
    return dot.render(diagram.source(shown, view == "namespaces", compact), "svg")


def diagram_key(view: str, engines: list[str]) -> str:
    """The document name of a diagram of some engines only (each named by one of its daemons'
    addresses), for Look.get."""
    return f"diagram:{view}" + ("@" + "|".join(sorted(set(engines))) if engines else "")


def only(topo: Topology, addresses: set[str]) -> Topology:
    """The engines one of whose daemons has one of these addresses (an engine whose dockerd is
    down is still found by its containerd's socket)."""
    keep = [e for e in topo.engines if any(d.address in addresses for d in e.daemons)]
    return Topology(engines=keep, orphans=[], host=topo.host, notes=topo.notes)


def detail(topo: Topology, ref: str, what: str, root: HostRoot) -> bytes:
    """`ns|fs|cgroup CONTAINER --json` of the container ref names (a name, id, unique prefix or
    PID, as the commands take it). The commands' errors: UsageError (no such container),
    NotRunningError (stopped), DeniedError."""
    from tracer.views.selection import resolve

    me = resolve(topo, ref)
    if what == "ns":
        from tracer.views.namespaces import report_for as ns_report

        return encode(ns_report(topo, me, root=root).to_json())
    if what == "fs":
        from tracer.views.storage import report_for as fs_report

        return encode(fs_report(topo, me, root).to_json())
    if what == "cgroup":
        from tracer.views.cgroups import report_for as cgroup_report

        return encode(cgroup_report(topo, me, root).to_json())
    raise UsageError(f"no such view of a container: {what}")


def every_namespace(look: Any, root: HostRoot) -> bytes:
    """`ns --all --json` (schema dtrace-tree/namespaces/1) next to one look at the host: its
    topology names the containers and engines (by process identity, from look.host)."""
    from tracer.views.namespaces import inventory

    return encode(inventory.look(root, look.topology, look.host).to_json())
