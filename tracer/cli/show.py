"""`show`: the live chain of every engine."""

from __future__ import annotations

from tracer.cli.core import (
    AllOpt,
    ContainersArg,
    FromOpt,
    HostOpt,
    JsonOpt,
    app,
    emit_json,
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
    from_file: FromOpt = None,
) -> None:
    """The live chain: dockerd -> containerd -> containerd-shim -> container processes."""
    from tracer.views.selection import counts, select

    everything = snapshot(host, from_file)
    topo = select(everything, containers or [], include_stopped=all_)
    notes(topo)
    if as_json:
        emit_json(topo.to_json())
        return
    from tracer.output.terminal import tree

    print_view(tree.topology(topo, {e.title: counts(e) for e in everything.engines}))
