"""`fs` on a terminal: the union root, the layer stack top first, the changes, the mounts."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from tracer.model.storage import FsReport, Layer, MountPoint
from tracer.output.terminal.style import STYLE, text
from tracer.output.units import size

SHOWN_SHARERS = 5  # a base layer may be shared by hundreds: count them, name a few
ROLE_STYLE = {"rw": "yellow", "init": "cyan", "image": "green", "lower": "default"}


def short(ident: str | None) -> str:
    """An id cut for the eye: 12 hex digits (sha256: dropped; -init kept)."""
    if not ident:
        return "-"
    hexa = ident.removeprefix("sha256:")
    return hexa[:12] + ("-init" if hexa.endswith("-init") else "")


def fs(doc: FsReport) -> RenderableType:
    c = doc.container
    parts: list[RenderableType] = [
        text(
            (c.name or "(name unknown)", STYLE["name"]),
            f" {c.id[:12]}",
            (f"  image {c.image}" if c.image else "", STYLE["dim"]),
            f"  {c.state}" + (f" (init pid {c.init_pid})" if c.init_pid else ""),
        ),
        text(
            "driver ",
            (doc.driver or "unknown", "bold"),
            (f"  data root {doc.data_root}" if doc.data_root else "  data root unknown", "dim"),
        ),
    ]
    parts += _root(doc)
    parts.append(_layers(doc.layers))
    parts += _changes(doc)
    parts += _mounts(doc.mounts)
    return Group(*parts)


def _root(doc: FsReport) -> list[RenderableType]:
    r = doc.root
    if r is None:
        return [text(("root: not seen (no mount, no driver record)", "red"))]
    where = f"mounted at {r.merged}" if r.merged else "not mounted"
    if r.merged and doc.seen_from:  # in the engine's own mount namespace (rootless)
        where += f" in the engine's mount namespace (the host: under {doc.seen_from})"
    out: list[RenderableType] = [
        text("root ", (r.fstype or "overlay", "bold"), f" {where}", (f"  (from {r.source})", "dim"))
    ]
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
    table.add_column(no_wrap=True, style=STYLE["dim"])
    table.add_column(overflow="fold")
    table.add_row("  upperdir", text(r.upperdir or "-"))
    table.add_row("  workdir", text(r.workdir or "-"))
    for i, lower in enumerate(r.lowerdir):
        table.add_row("  lowerdir" if i == 0 else "", text(lower))
    out.append(table)
    return out


def _layers(layers: list[Layer]) -> RenderableType:
    table = Table(
        title="layers, top first",
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    # containerd's snapshotter names a layer's directory by its snapshot id (snapshots/<id>)
    snapshots = any(layer.snapshot_id for layer in layers)
    for name in ("role", "size", "snapshot" if snapshots else "cache id", "diff id", "chain id",
                 "shared with"):  # fmt: skip
        table.add_column(name, no_wrap=name != "shared with", overflow="fold")
    for layer in layers:
        table.add_row(
            text((layer.role, ROLE_STYLE.get(layer.role, ""))),
            size(layer.size_bytes),
            text(layer.snapshot_id or "-") if snapshots else text(short(layer.cache_id)),
            text(short(layer.diff_id)),
            text(short(layer.chain_id)),
            _sharers(layer),
        )
    if not layers:
        table.add_row(text(("no layer could be read", "red")), "", "", "", "", "")
    return table


def _sharers(layer: Layer) -> Text:
    shared = layer.shared_with
    if shared is None:
        return text(("unknown", STYLE["dim"]))
    if not shared:
        return text(("this container only", STYLE["dim"]))
    names = ", ".join(shared[:SHOWN_SHARERS])
    more = f", +{len(shared) - SHOWN_SHARERS} more" if len(shared) > SHOWN_SHARERS else ""
    count = f"{len(shared)} other container{'s' if len(shared) > 1 else ''}: "
    return text(count, (names + more, STYLE["name"]))


def _changes(doc: FsReport) -> list[RenderableType]:
    ch = doc.changes
    if ch is None:
        return [text(("writable layer: not read (see the notes on stderr)", "red"))]
    total = ch.added + ch.changed + ch.deleted
    line = text(
        "writable layer: ",
        (f"{total} change{'s' if total != 1 else ''}", "bold"),
        f" ({ch.added} added, {ch.changed} changed, {ch.deleted} deleted)",
        ("" if ch.files is not None or not total else "  --changes lists them", STYLE["dim"]),
    )
    out: list[RenderableType] = [line]
    for change in ch.files or []:
        colour = {"A": "green", "C": "yellow", "D": "red"}.get(change.kind, "")
        out.append(text("  ", (change.kind, colour), f" {change.path}"))
    return out


def _mounts(mounts: list[MountPoint] | None) -> list[RenderableType]:
    if mounts is None:
        return [text(("mounts: none to read (the container has no process)", STYLE["dim"]))]
    own = [m for m in mounts if m.kind != "system"]
    system = [m for m in mounts if m.kind == "system"]
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title="mounts",
                  title_justify="left", title_style="bold")  # fmt: skip
    for name in ("destination", "kind", "source on the host", "mode"):
        table.add_column(name, no_wrap=name != "source on the host", overflow="fold")
    for m in own:
        kind = f"volume {m.volume}" if m.volume else m.kind
        source = m.source or f"({m.fstype} of the container's own)"
        mode = ("ro" if m.read_only else "rw") + f" {m.propagation}"
        table.add_row(text(m.destination), text(kind), text(source), mode)
    out: list[RenderableType] = [table] if own else [text(("mounts: only the runtime's", "dim"))]
    if system:
        points = {m.destination for m in system}
        tops = [p for p in dict.fromkeys(m.destination for m in system) if not _inside(p, points)]
        out.append(
            text(
                (
                    f"+ {len(system)} mounts the runtime makes at and under {', '.join(tops)}"
                    " (--json lists them)",
                    STYLE["dim"],
                )
            )
        )
    return out


def _inside(path: str, others: set[str]) -> bool:
    """Is path below another of these mount points?"""
    parent = path.rsplit("/", 1)[0]
    while parent:
        if parent in others:
            return True
        parent = parent.rsplit("/", 1)[0]
    return False
