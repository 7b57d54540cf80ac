"""`fs` and `cgroup`: what a container is made of (its layers, its writable layer, its volumes
and binds), and what limits it (its cgroups). Both read the host's own files, so they answer
with dockerd down; the API only adds names."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Protocol, TypeVar

import typer

from tracer.cli.core import HostOpt, JsonOpt, app, environment, examples, service

if TYPE_CHECKING:
    from tracer.kernel.root import HostRoot
    from tracer.model.cgroups import CgroupReport
    from tracer.model.storage import FsReport
    from tracer.model.topology import Container, Topology

ContainerArg = Annotated[str, typer.Argument(help="Name, id, unique id prefix or host PID.")]


class _Report(Protocol):
    notes: list[str]

    def to_json(self) -> dict[str, Any]: ...


R = TypeVar("R", bound=_Report)


def _answer(
    ctx: typer.Context,
    host: str | None,
    container: str,
    as_json: bool,
    report: Callable[[Topology, Container, HostRoot], R],
    draw: Callable[[R], object],
) -> None:
    """One look, the container found in it, its report (the report's notes on stderr), then
    the report as JSON or drawn for the terminal."""
    from tracer.views.selection import resolve

    env, looking = environment(ctx), service(ctx, host)
    topo = looking.topology()
    doc = report(topo, resolve(topo, container), looking.root())
    for line in doc.notes:
        env.note(line)
    if as_json:
        env.write_json(doc.to_json())
    else:
        env.print(draw(doc))


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
    container: ContainerArg,
    changes: Annotated[
        bool,
        typer.Option("--changes", help="List the files the container changed (A/C/D)."),
    ] = False,
    host: HostOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Storage: the union root, the layers top first (and which containers share them), the
    writable layer's changes, and the volumes, binds and tmpfs mounts."""
    from tracer.views.storage import report_for

    def report(topo: Topology, me: Container, root: HostRoot) -> FsReport:
        return report_for(topo, me, root, list_changes=changes)

    _answer(ctx, host, container, as_json, report, _drawn_fs)


def _drawn_fs(doc: FsReport) -> object:
    from tracer.output.terminal import storage  # rich only to draw: not for --json

    return storage.fs(doc)


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
    container: ContainerArg,
    host: HostOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """cgroups: where the container's are (v1/v2, cgroupfs/systemd driver), its limits and
    usage with the file each came from, and the processes in it (docker exec ones marked)."""
    from tracer.views.cgroups import report_for

    _answer(ctx, host, container, as_json, report_for, _drawn_cgroup)


def _drawn_cgroup(doc: CgroupReport) -> object:
    from tracer.output.terminal import cgroups  # rich only to draw: not for --json

    return cgroups.cgroup(doc)
