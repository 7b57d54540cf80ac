"""`show`: the live chain of every engine."""

from __future__ import annotations

from tracer.cli.core import (
    AllOpt,
    ContainersArg,
    HostOpt,
    JsonOpt,
    app,
    emit_json,
    notes,
    observe,
    print_view,
)


@app.command()
def show(
    containers: ContainersArg = None,
    all_: AllOpt = False,
    host: HostOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The live chain: dockerd -> containerd -> containerd-shim -> container processes."""
    from tracer.views.selection import select

    topo = select(observe(host), containers or [], include_stopped=all_)
    notes(topo)
    if as_json:
        emit_json(topo.to_json())
        return
    from tracer.output.terminal import tree

    print_view(tree.topology(topo))
