"""`export`: Graphviz diagrams of the live snapshot, or of a saved one."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer

from tracer.cli.core import ContainersArg, HostOpt, app, note, notes, observe

COMPACT_HINT = 100  # containers: above this dot takes seconds (300: ~50 s) on the full view


@app.command()
def export(
    containers: ContainersArg = None,
    svg: Annotated[bool, typer.Option("--svg", help="Write SVG (the default).")] = False,
    png: Annotated[bool, typer.Option("--png", help="Write PNG.")] = False,
    pdf: Annotated[bool, typer.Option("--pdf", help="Write PDF.")] = False,
    as_dot: Annotated[bool, typer.Option("--dot", help="Write the DOT source.")] = False,
    output: Annotated[
        str | None,
        typer.Option(
            "-o", "--output", help="File to write (default: diagrams/<host>-<time>.<format>)."
        ),
    ] = None,
    from_file: Annotated[
        str | None,
        typer.Option("--from", help="Draw a saved `show --json` snapshot ('-' for stdin)."),
    ] = None,
    ns: Annotated[
        bool, typer.Option("--ns", help="The namespace view instead of the architecture.")
    ] = False,
    compact: Annotated[
        bool, typer.Option("--compact", help="One node per container, for hundreds of them.")
    ] = False,
    all_: Annotated[
        bool, typer.Option("-a", "--all", help="Also draw stopped containers.")
    ] = False,
    host: HostOpt = None,
) -> None:
    """Draw the `show` snapshot (or --ns, the namespaces) with Graphviz; print the file written."""
    from tracer.errors import UsageError
    from tracer.output import diagram
    from tracer.output.diagram import dot
    from tracer.views.selection import only_engine, select

    chosen = [f for f, on in (("svg", svg), ("png", png), ("pdf", pdf), ("dot", as_dot)) if on]
    if len(chosen) > 1:
        raise UsageError(f"choose one format, not {' and '.join('--' + f for f in chosen)}")
    suffix = os.path.splitext(output or "")[1].lstrip(".").lower()
    fmt = chosen[0] if chosen else suffix if suffix in dot.FORMATS else "svg"
    if suffix in dot.FORMATS and suffix != fmt:
        raise UsageError(f"-o {output} does not end in .{fmt} (drop --{fmt}, or rename)")
    if from_file is None:
        topo = observe(host)
    else:
        topo = _snapshot(from_file)
        if host:
            topo = only_engine(topo, host)
    topo = select(topo, containers or [], include_stopped=all_)
    notes(topo)
    count = len(topo.containers())
    if count > COMPACT_HINT and not compact and fmt != "dot":
        note(f"{count} containers: dot may take a minute; --compact draws one node per container")
    data = dot.render(diagram.source(topo, ns=ns, compact=compact), fmt)
    path = output or os.path.join("diagrams", dot.default_name(topo.host, fmt, ns))
    write_file(path, data, make_dir=output is None)
    print(path)


def _snapshot(path: str) -> Any:
    """A Topology from a `show --json` file; UsageError (one line) for anything else."""
    import json

    from tracer.errors import SnapshotFormatError, UsageError
    from tracer.model.show_json import from_json

    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
    except OSError as exc:
        raise UsageError(f"--from {path}: {exc.strerror or exc}") from exc
    hint = "make one with: dtrace-tree show --json > FILE"
    try:
        return from_json(json.loads(text))
    except SnapshotFormatError as exc:
        raise UsageError(f"--from {path}: {exc.message}", hint) from exc
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, or absurd nesting
        raise UsageError(f"--from {path}: not JSON", hint) from exc


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
