"""`export`: Graphviz diagrams of the live snapshot, or of a saved one."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from tracer.cli.core import (
    ContainersArg,
    FromManyOpt,
    HostOpt,
    app,
    environment,
    examples,
    notes,
    service,
)

if TYPE_CHECKING:
    from tracer.app.environment import Environment
    from tracer.app.service import Service
    from tracer.model.topology import Topology


@app.command(
    epilog=examples(
        ("dtrace-tree export", "an SVG of every engine, in a new file under diagrams/"),
        ("dtrace-tree export --ns -o namespaces.png", "the namespaces, as PNG"),
        (
            "dtrace-tree export --from before.json --dot -o -",
            "the DOT source of a saved snapshot, on stdout",
        ),
    ),
)
def export(
    ctx: typer.Context,
    containers: ContainersArg = None,
    svg: Annotated[bool, typer.Option("--svg", help="Write SVG (the default).")] = False,
    png: Annotated[bool, typer.Option("--png", help="Write PNG.")] = False,
    pdf: Annotated[bool, typer.Option("--pdf", help="Write PDF.")] = False,
    as_dot: Annotated[bool, typer.Option("--dot", help="Write the DOT source.")] = False,
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            help="File to write, '-' for stdout (default: a new file "
            "diagrams/<host>-<time>[-N].<format>, never one that exists).",
        ),
    ] = None,
    from_file: FromManyOpt = None,
    ns: Annotated[
        bool, typer.Option("--ns", help="The namespace view instead of the architecture.")
    ] = False,
    compact: Annotated[
        bool, typer.Option("--compact", help="One node per container, however few.")
    ] = False,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="Every process, however many containers (above 40, or 24 with --ns, the "
            "default is one node per container).",
        ),
    ] = False,
    all_: Annotated[
        bool,
        typer.Option(
            "-a",
            "--all",
            help="Also draw stopped containers. With --ns: every namespace of the host (the "
            "user and PID trees with their containers, engines and pods; the namespaces no "
            "process is in, leaks in red), as `ns --all` finds them.",
        ),
    ] = False,
    fs: Annotated[
        bool,
        typer.Option(
            "--fs",
            help="The storage view: each container's layer stack (shared layers drawn once), "
            "its volumes and bind sources.",
        ),
    ] = False,
    host: HostOpt = None,
) -> None:
    """Draw the `show` snapshot (or --ns, the namespaces) with Graphviz; print the file written."""
    from tracer.errors import UsageError
    from tracer.output import diagram
    from tracer.output.diagram import dot
    from tracer.views.selection import select

    env = environment(ctx)
    chosen = [f for f, on in (("svg", svg), ("png", png), ("pdf", pdf), ("dot", as_dot)) if on]
    if len(chosen) > 1:
        raise UsageError(f"choose one format, not {' and '.join('--' + f for f in chosen)}")
    if compact and full:
        raise UsageError("choose --compact or --full, not both")
    if fs and (ns or from_file):
        raise UsageError("--fs reads this host's storage: it goes with neither --ns nor --from")
    suffix = os.path.splitext(output or "")[1].lstrip(".").lower()
    fmt = chosen[0] if chosen else suffix if suffix in dot.FORMATS else "svg"
    if suffix in dot.FORMATS and suffix != fmt:
        raise UsageError(f"-o {output} does not end in .{fmt} (drop --{fmt}, or rename)")
    if ns and all_:
        if from_file or containers or host or fs:
            raise UsageError("--ns --all draws this whole host: no --from, -H, --fs or selection")
        _every_namespace(env, service(ctx, None), fmt, output)
        return
    if from_file and len(from_file) > 1:
        if ns or containers:
            raise UsageError(
                "several hosts are drawn one node per container: no --ns, no selection"
            )
        _fleet(env, service(ctx, host), from_file, fmt, output)
        return
    looking = service(ctx, host, from_file[0] if from_file else None)
    topo = select(looking.topology(), containers or [], include_stopped=all_)
    notes(env, topo)
    count = len(topo.containers())
    view = "namespaces" if ns else "architecture"
    if not fs and not compact and not full and count > diagram.FULL_UP_TO[view]:
        compact = True
        env.note(
            f"{count} containers: drawing one node per container (--full draws every process, "
            f"which dot takes long to lay out and few can read)"
        )
    with env.waiting(f"drawing {count} containers with Graphviz's dot ({fmt})"):
        if fs:
            data = dot.render(_storage(looking, topo), fmt)
        else:
            data, drawn = diagram.draw(topo, fmt, ns, compact)
            for line in drawn:
                env.note(line)
    if output == "-":
        env.write_bytes(data)
        return
    name = dot.default_name(topo.host, fmt, ns)
    if fs:
        stem, ext = os.path.splitext(name)
        name = f"{stem}-fs{ext}"
    path = output or _new_file(os.path.join("diagrams", name))
    write_file(path, data, make_dir=output is None)
    env.echo(path)


def _every_namespace(env: Environment, looking: Service, fmt: str, output: str | None) -> None:
    """`export --ns --all`: the trees of `ns --all`, drawn."""
    from tracer.output.diagram import dot
    from tracer.output.diagram.namespaces import inventory_diagram
    from tracer.snapshot.namespaces import NsWalk
    from tracer.views.namespaces import inventory

    root = looking.root()
    walk = NsWalk(root)  # every namespace, read in show's walk of the processes
    seen = looking.observation(also=walk.process)
    inv = inventory.look(root, seen.topology, seen.host, found=walk.finish())
    for line in inv.notes:
        env.note(line)
    with env.waiting(f"drawing {len(inv.namespaces)} namespaces with Graphviz's dot ({fmt})"):
        data = dot.render(inventory_diagram(inv, seen.topology), fmt)
    if output == "-":
        env.write_bytes(data)
        return
    stem, ext = os.path.splitext(dot.default_name(seen.topology.host, fmt, True))
    path = output or _new_file(os.path.join("diagrams", f"{stem}-all{ext}"))
    write_file(path, data, make_dir=output is None)
    env.echo(path)


def _storage(looking: Service, topo: Topology) -> str:
    """The DOT source of `--fs`: each selected container's storage, read from this host."""
    from tracer.output.diagram.storage import storage
    from tracer.runtimes.storage import read_in
    from tracer.views.storage import report

    root = looking.root()
    names = {c.id: c.label for c in topo.containers()}
    return storage(topo, [report(c, read_in(topo, c, root), names) for c in topo.containers()])


def _fleet(
    env: Environment, saved: Service, paths: list[str], fmt: str, output: str | None
) -> None:
    """Several hosts side by side, one cluster each, the fleet's summary as the caption."""
    from tracer.output.diagram import dot
    from tracer.output.diagram.fleet import fleet

    doc = saved.fleet(paths)
    count = sum(len(t.containers()) for t in doc.topologies)
    with env.waiting(
        f"drawing {len(paths)} hosts, {count} containers, with Graphviz's dot ({fmt})"
    ):
        data = dot.render(fleet(doc), fmt)
    if output == "-":
        env.write_bytes(data)
        return
    path = output or _new_file(os.path.join("diagrams", f"fleet-{len(paths)}-hosts.{fmt}"))
    write_file(path, data, make_dir=output is None)
    env.echo(path)


def _new_file(path: str) -> str:
    """path, or path-2, path-3, ... : a default name never overwrites an earlier diagram (two
    exports in the same second, of different selections, would otherwise share a name)."""
    stem, ext = os.path.splitext(path)
    n = 1
    while os.path.lexists(path):
        n += 1
        path = f"{stem}-{n}{ext}"
    return path


def write_file(path: str, data: bytes, make_dir: bool) -> None:
    """Write an output file; OutputError (one line, exit 10) if it cannot be."""
    from tracer.errors import OutputError

    try:
        if make_dir:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    except BrokenPipeError:
        raise  # `-o /dev/stdout | head`: the reader left (exit 141, as for stdout)
    except OSError as exc:
        raise OutputError(
            f"cannot write {path}: {exc.strerror or exc}", "choose another file with -o"
        ) from exc
