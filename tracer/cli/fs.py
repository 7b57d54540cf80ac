"""`fs` and `cgroup`: what a container is made of (its layers, its writable layer, its volumes
and binds), and what limits it (its cgroups). Both read the host's own files, so they answer
with dockerd down; the API only adds names."""

from __future__ import annotations

from typing import Annotated

import typer

from tracer.cli.core import HostOpt, JsonOpt, app, emit_json, host_root, note, observe, print_view


@app.command()
def fs(
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
    from tracer.errors import cannot_read
    from tracer.runtimes import storage
    from tracer.views import storage as view
    from tracer.views.selection import resolve

    topo = observe(host)
    me = resolve(topo, container)
    found = storage.read_in(topo, me, host_root(), list_changes=changes)
    doc = view.report(me, found, {c.id: c.label for c in topo.containers()})
    if doc.root is None and doc.mounts is None and not doc.layers:
        denied = [e for e in doc.notes if "permission denied" in e]
        if denied:
            path = denied[0].split(":")[0]
            raise cannot_read(path, "SYS_PTRACE" if path.startswith("/proc") else "DAC_READ_SEARCH")
    for line in doc.notes:
        note(line)
    if as_json:
        emit_json(doc.to_json())
        return
    from tracer.output.terminal import storage as render

    print_view(render.fs(doc))


@app.command()
def cgroup(
    container: Annotated[str, typer.Argument(help="Name, id, unique id prefix or host PID.")],
    host: HostOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """cgroups: where the container's are (v1/v2, cgroupfs/systemd driver), its limits and
    usage with the file each came from, and the processes in it (docker exec ones marked)."""
    from tracer.errors import NotRunningError, cannot_read
    from tracer.kernel import cgroupfs
    from tracer.views import cgroups as view
    from tracer.views.namespaces import host_namespaces
    from tracer.views.selection import resolve

    topo = observe(host)
    me = resolve(topo, container)
    if me.init_pid is None:
        raise NotRunningError(
            f"{me.label} is {me.state}: a stopped container has no process, so it is in no "
            "cgroup (Docker makes it at start and removes it at exit)",
            f"start it with: docker start {me.label}",
        )
    found = cgroupfs.read(host_root(), me.init_pid)
    if not found.members:
        why = "; ".join(found.errors) or "no cgroup listed"
        if "permission denied" in why:
            raise cannot_read(f"/proc/{me.init_pid}/cgroup")
        raise NotRunningError(
            f"{me.label}'s init (pid {me.init_pid}) could not be read: {why}",
            "it may have just exited; run the command again",
        )
    doc = view.report(me, found, host_namespaces(topo))
    for line in doc.notes:
        note(line)
    if as_json:
        emit_json(doc.to_json())
        return
    from tracer.output.terminal import cgroups as render

    print_view(render.cgroup(doc))
