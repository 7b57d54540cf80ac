"""`fs` and `cgroup`: what a container is made of (its layers, its writable layer, its volumes
and binds), and what limits it (its cgroups). Both read the host's own files, so they answer
with dockerd down; the API only adds names."""

from __future__ import annotations

from typing import Annotated

import typer

from tracer.cli.core import HostOpt, JsonOpt, app, environment, examples, service


@app.command(
    epilog=examples(
        (
            "dtrace-tree fs lab-web",
            "its union root, its layers top first, volumes, binds and tmpfs",
        ),
        ("dtrace-tree fs --changes lab-web", "and every file it added, changed or deleted (A/C/D)"),
    ),
)
def fs(
    ctx: typer.Context,
    container: Annotated[str, typer.Argument(help="Name, id, unique id prefix or host PID.")],
    changes: Annotated[
        bool,
        typer.Option("--changes", help="List the files the container changed (A/C/D)."),
    ] = False,
    host: HostOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Storage: the union root, the layers top first (and which containers share them), the
    writable layer's changes, and the volumes, binds and tmpfs mounts."""
    from tracer.views.selection import resolve
    from tracer.views.storage import report_for

    env, looking = environment(ctx), service(ctx, host)
    topo = looking.topology()
    doc = report_for(topo, resolve(topo, container), looking.root(), list_changes=changes)
    for line in doc.notes:
        env.note(line)
    if as_json:
        env.write_json(doc.to_json())
        return
    from tracer.output.terminal import storage as render

    env.print(render.fs(doc))


@app.command(
    epilog=examples(
        (
            "dtrace-tree cgroup lab-web",
            "its cgroups, limits and usage, each with the file it came from",
        ),
        ("dtrace-tree cgroup --json lab-web", "the same as JSON (schema dtrace-tree/cgroup/1)"),
    ),
)
def cgroup(
    ctx: typer.Context,
    container: Annotated[str, typer.Argument(help="Name, id, unique id prefix or host PID.")],
    host: HostOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """cgroups: where the container's are (v1/v2, cgroupfs/systemd driver), its limits and
    usage with the file each came from, and the processes in it (docker exec ones marked)."""
    from tracer.views.cgroups import report_for
    from tracer.views.selection import resolve

    env, looking = environment(ctx), service(ctx, host)
    topo = looking.topology()
    doc = report_for(topo, resolve(topo, container), looking.root())
    for line in doc.notes:
        env.note(line)
    if as_json:
        env.write_json(doc.to_json())
        return
    from tracer.output.terminal import cgroups as render

    env.print(render.cgroup(doc))
