"""`ns`: namespaces, the matrix of all containers or one container in full."""

from __future__ import annotations

from typing import Annotated

import typer

from tracer.cli.core import FromOpt, HostOpt, JsonOpt, app, emit_json, note, print_view, snapshot


@app.command()
def ns(
    container: Annotated[
        str | None,
        typer.Argument(help="Name, id, unique id prefix or host PID; none for the matrix."),
    ] = None,
    host: HostOpt = None,
    as_json: JsonOpt = False,
    from_file: FromOpt = None,
) -> None:
    """Namespaces: what each container isolates, and what it shares with the host or others."""
    from tracer.errors import DeniedError
    from tracer.model.namespaces import NsMatrix, NsReport
    from tracer.views import namespaces
    from tracer.views.selection import resolve

    topo = snapshot(host, from_file)
    doc: NsMatrix | NsReport
    if container is None:
        doc = namespaces.matrix(topo)
    else:
        doc = namespaces.report_for(topo, resolve(topo, container), asked=from_file is None)
    if not doc.host:
        note(
            "the host's namespaces could not be read (neither PID 1 nor kthreadd): "
            "'isolated' is unknown"
        )
    if as_json:
        emit_json(doc.to_json())
    else:
        from tracer.output.terminal import namespaces as view

        print_view(view.matrix(doc) if isinstance(doc, NsMatrix) else view.container(doc))
    if isinstance(doc, NsMatrix) and doc.unreadable:
        # Never "no running containers" when the truth is "I could not see".
        raise DeniedError(
            f"the namespaces of {len(doc.unreadable)} running containers could not be read "
            f"({', '.join(doc.unreadable[:5])}{', ...' if len(doc.unreadable) > 5 else ''})",
            "run as root (or with CAP_SYS_PTRACE)",
        )
