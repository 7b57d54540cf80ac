"""Several hosts on a terminal: each host's tree under its name, then the fleet's summary."""

from __future__ import annotations

from rich.console import Group, RenderableType

from tracer.model.fleet import Exposed, Fleet
from tracer.output.terminal import tree
from tracer.output.terminal.style import STYLE, text


def fleet(doc: Fleet) -> RenderableType:
    parts: list[RenderableType] = []
    for line, topo in zip(doc.hosts, doc.topologies, strict=True):
        parts.append(
            text(
                ("host ", "bold"),
                (line.hostname or "?", STYLE["name"]),
                (f"  taken {line.taken_at or '?'}  from {line.source}", STYLE["dim"]),
            )
        )
        parts.append(tree.topology(topo))
    engines = sum(h.engines for h in doc.hosts)
    containers = sum(h.containers for h in doc.hosts)
    parts.append(
        text(
            ("fleet: ", "bold"),
            f"{len(doc.hosts)} hosts, {engines} engines, {containers} running containers",
        )
    )
    parts += _list(
        "engines without live-restore (their containers die with the daemon)",
        doc.no_live_restore,
        "bold red",
    )
    parts += _list("engines whose live-restore is not known", doc.unknown_live_restore, "yellow")
    parts += _list("containers in the host's own namespaces", doc.host_namespaces, "yellow")
    return Group(*parts)


def _list(title: str, items: list[Exposed], style: str) -> list[RenderableType]:
    if not items:
        return [text((f"{title}: none", STYLE["dim"]))]
    lines: list[RenderableType] = [text((f"{title}: {len(items)}", style))]
    for e in items:
        lines.append(text(f"  {e.hostname or '?'}  ", (e.what, STYLE["name"]), f"  {e.why}"))
    return lines
