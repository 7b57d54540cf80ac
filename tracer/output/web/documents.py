"""The documents `serve` answers with, made from one look at the host: the same JSON as the
commands (`show -H all --json`, `ns --json`, and `ns|fs|cgroup CONTAINER --json`) and the
diagrams of `export` (SVG)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tracer.errors import TracerError, UsageError
from tracer.kernel.root import HostRoot
from tracer.model.topology import Topology
from tracer.output.web.hub import encode

VIEWS = ("architecture", "namespaces")
DOCUMENTS = ("show", "show-all", "ns") + tuple(f"diagram:{v}" for v in VIEWS)
DETAILS = ("ns", "fs", "cgroup")
# Told after each diagram is drawn: (the document, None) when it was, else (the document, one
# line of why it is not what the page asked for: dot failed, or ran out of time, and what was
# drawn instead).
Tell = Callable[[str, str | None], None]


def document(topo: Topology, what: str, tell: Tell | None = None) -> bytes:
    """One of DOCUMENTS, made from topo (everything seen, stopped containers too). A diagram
    that dot cannot draw is one line saying why, in the diagram's place (told to `tell`):
    the state and the JSON do not depend on Graphviz."""
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

    if engines:
        shown = only(shown, set(engines.split("|")))
    compact = len(shown.containers()) > diagram.FULL_UP_TO[view]
    try:
        # out of time, smaller drawings follow (one node per engine at last)
        data, notes = diagram.draw(shown, "svg", view == "namespaces", compact)
    except Exception as exc:  # noqa: BLE001 - the page is served without it, saying why
        # dot crashed (a signal), failed or had no time left (TracerError); anything else is a
        # fault of ours, named by its type, which the state and JSON need not share
        said = exc.line() if isinstance(exc, TracerError) else f"{type(exc).__name__}: {exc}"
        why = f"the {view} diagram could not be drawn: {said}"
        if tell is not None:
            tell(what, why)
        return undrawn(why)
    if tell is not None:
        tell(what, "; ".join(notes) or None)
    return data


def undrawn(why: str) -> bytes:
    """An SVG of one line, in the place of a diagram that could not be drawn: why. Written
    here, as dot is what failed; the text is escaped (it may quote dot, or the host)."""
    from html import escape

    from tracer.untrusted import for_terminal

    text = for_terminal(why)
    line, width = escape(text, quote=False), 20 + 7 * len(text)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}pt" height="40pt" '
        f'viewBox="0 0 {width} 40"><text x="10" y="25" font-family="DejaVu Sans" '
        f'font-size="12" fill="#c92a2a">{line}</text></svg>'
    ).encode(errors="replace")


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
