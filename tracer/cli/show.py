"""`show`: the live chain of every engine; `diff`: two saved snapshots compared."""

from __future__ import annotations

from typing import Annotated

import typer

from tracer.cli.core import (
    AllOpt,
    ContainersArg,
    FromManyOpt,
    HostOpt,
    JsonOpt,
    app,
    emit_json,
    fleet_of,
    load_snapshot,
    notes,
    print_view,
    snapshot,
)


@app.command()
def show(
    containers: ContainersArg = None,
    all_: AllOpt = False,
    host: HostOpt = None,
    as_json: JsonOpt = False,
    from_file: FromManyOpt = None,
) -> None:
    """The live chain: dockerd -> containerd -> containerd-shim -> container processes."""
    from tracer.views.selection import counts, select

    if from_file and len(from_file) > 1:
        _fleet(from_file, containers or [], all_, host, as_json)
        return
    everything = snapshot(host, from_file[0] if from_file else None)
    topo = select(everything, containers or [], include_stopped=all_)
    notes(topo, engines=as_json)  # on a terminal the tree shows each engine's notes itself
    if as_json:
        emit_json(topo.to_json())
        return
    from tracer.output.terminal import tree

    print_view(tree.topology(topo, {e.title: counts(e) for e in everything.engines}))


@app.command()
def diff(
    before: Annotated[str, typer.Argument(help="A snapshot taken before (show --json).")],
    after: Annotated[str, typer.Argument(help="A snapshot taken after, of the same host.")],
    as_json: JsonOpt = False,
) -> None:
    """Which containers kept running across two snapshots (survive's verdict for a restart
    someone else did). Exit 0 when all did, 1 when some did not, 2 for bad input."""
    from tracer.views.compare import compare

    doc = compare(load_snapshot(before), load_snapshot(after))
    if as_json:
        emit_json(doc.to_json())
    else:
        from tracer.output.terminal import compare as view

        print_view(view.comparison(doc))
    raise typer.Exit(0 if doc.all_kept else 1)


def _fleet(
    paths: list[str], containers: list[str], include_stopped: bool, host: str | None, as_json: bool
) -> None:
    """Several hosts: each one's tree (or JSON), then what the fleet as a whole says."""
    from tracer.views.selection import select

    doc = fleet_of(paths, host)
    if containers:
        from tracer.errors import UsageError

        raise UsageError("several hosts: select containers in each host's own show")
    doc.topologies = [select(t, [], include_stopped=include_stopped) for t in doc.topologies]
    if as_json:
        emit_json(doc.to_json())
        return
    from tracer.output.terminal import fleet as view

    print_view(view.fleet(doc))
