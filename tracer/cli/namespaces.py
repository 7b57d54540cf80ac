"""`ns`: namespaces, the matrix of all containers or one container in full."""

from __future__ import annotations

from typing import Annotated

import typer

from tracer.cli.core import HostOpt, JsonOpt, app, emit_json, note, observe, print_view


@app.command()
def ns(
    container: Annotated[
        str | None,
        typer.Argument(help="Name, id, unique id prefix or host PID; none for the matrix."),
    ] = None,
    host: HostOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Namespaces: what each container isolates, and what it shares with the host or others."""
    from tracer.errors import NotRootError, NotRunningError
    from tracer.model.namespaces import NsMatrix, NsReport
    from tracer.views import namespaces
    from tracer.views.selection import resolve

    topo = observe(host)
    doc: NsMatrix | NsReport
    if container is None:
        doc = namespaces.matrix(topo)
    else:
        me = resolve(topo.containers(), container)
        if me.init_pid is None:
            raise NotRunningError(
                f"{me.label} is {me.state}: a stopped container has no process, "
                "so it has no namespaces",
                f"start it with: docker start {me.label}",
            )
        if not me.namespaces:
            raise NotRootError(f"reading /proc/{me.init_pid}/ns (permission denied)")
        from tracer.runtimes import explain

        told, usual = explain(topo, me)
        doc = namespaces.container_report(topo, me, told, usual)
    if not doc.host:
        note(
            "the host's namespaces could not be read (neither PID 1 nor kthreadd): "
            "'isolated' is unknown"
        )
    if as_json:
        emit_json(doc.to_json())
        return
    from tracer.output.terminal import namespaces as view

    print_view(view.matrix(doc) if isinstance(doc, NsMatrix) else view.container(doc))
