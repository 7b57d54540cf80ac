"""`ns`: namespaces, the matrix of all containers, one container in full, or (`--all`) every
namespace of the host."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tracer.cli.core import FromOpt, HostOpt, JsonOpt, app, environment, examples, service

if TYPE_CHECKING:
    from tracer.app.environment import Environment
    from tracer.app.service import Service

TYPES_HELP = "mnt, net, pid, uts, ipc, user, cgroup or time"


@app.command(
    epilog=examples(
        ("dtrace-tree ns", "every running container against each namespace type"),
        ("dtrace-tree ns lab-web", "one container: each namespace, who shares it, and why"),
        (
            "dtrace-tree ns --all",
            "every namespace on the host, whoever holds it: the user and PID trees",
        ),
        ("dtrace-tree ns --all --type net --leaked --json", "leaked network namespaces, as JSON"),
    ),
)
def ns(
    ctx: typer.Context,
    container: Annotated[
        str | None,
        typer.Argument(help="Name, id, unique id prefix or host PID; none for the matrix."),
    ] = None,
    host: HostOpt = None,
    as_json: JsonOpt = False,
    from_file: FromOpt = None,
    every: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Every namespace on the host, whoever holds it (a task, an nsfs bind mount in "
            "any mount namespace, an open fd), with its owner, parent and users (containers, "
            "engines, pods, the host, nobody); the user and PID trees on a terminal. JSON: "
            "schema dtrace-tree/namespaces/1. Every engine is looked at.",
        ),
    ] = False,
    kind: Annotated[
        str | None,
        typer.Option("--type", metavar="TYPE", help=f"With --all: only this type ({TYPES_HELP})."),
    ] = None,
    leaked: Annotated[
        bool,
        typer.Option(
            "--leaked",
            help="With --all: only the leaked ones (held by a runtime's sandbox mount alone, "
            "no live sandbox behind it), each with the command that releases it (never run).",
        ),
    ] = False,
) -> None:
    """Namespaces: what each container isolates, and what it shares with the host or others;
    with --all, every namespace of the host."""
    from tracer.errors import DeniedError, UsageError

    if every or kind or leaked:
        if not every:
            raise UsageError("--type and --leaked go with --all")
        if container or from_file or host:
            raise UsageError("--all takes no container, --from or -H: it reads the whole host")
        _everything(environment(ctx), service(ctx), kind, leaked, as_json)
        return
    from tracer.model.namespaces import NsMatrix, NsReport
    from tracer.views import namespaces
    from tracer.views.selection import resolve

    env, looking = environment(ctx), service(ctx, host, from_file)
    topo = looking.topology()
    doc: NsMatrix | NsReport
    if container is None:
        doc = namespaces.matrix(topo)
    else:
        live = from_file is None  # a saved snapshot's engines are not asked why
        root = looking.root() if live else None
        doc = namespaces.report_for(topo, resolve(topo, container), asked=live, root=root)
    if not doc.host:
        env.note(
            "the host's namespaces could not be read (neither PID 1 nor kthreadd): "
            "'isolated' is unknown"
        )
    if as_json:
        env.write_json(doc.to_json())
    else:
        from tracer.output.terminal import namespaces as view

        env.print(view.matrix(doc) if isinstance(doc, NsMatrix) else view.container(doc))
    if isinstance(doc, NsMatrix) and doc.unreadable:
        # Never "no running containers" when the truth is "I could not see".
        raise DeniedError(
            f"the namespaces of {len(doc.unreadable)} running containers could not be read "
            f"({', '.join(doc.unreadable[:5])}{', ...' if len(doc.unreadable) > 5 else ''})",
            "run as root (or with CAP_SYS_PTRACE)",
        )


def _everything(
    env: Environment, looking: Service, kind: str | None, leaked: bool, as_json: bool
) -> None:
    """`ns --all`: parse, look, render; exit 3 when, not root, some processes were unreadable."""
    import os

    from tracer.errors import DeniedError, UsageError
    from tracer.kernel.nsfs import TYPES
    from tracer.snapshot.namespaces import NsWalk
    from tracer.views.namespaces import inventory

    if kind is not None and kind not in TYPES:
        raise UsageError(f"--type {kind}: not a namespace type ({TYPES_HELP})")
    root = looking.root()
    walk = NsWalk(root)  # every namespace, read in show's walk of the processes
    seen = looking.observation(also=walk.process)
    inv = inventory.look(
        root, seen.topology, seen.host, (kind,) if kind else TYPES, leaked, walk.finish()
    )
    for line in inv.notes:
        env.note(line)
    if as_json:
        env.write_json(inv.to_json())
    else:
        from tracer.output.terminal import namespaces as view

        env.print(view.everything(inv))
    if inv.unreadable:
        pids = sorted(inv.unreadable)
        shown = ", ".join(str(p) for p in pids[:5]) + (", ..." if len(pids) > 5 else "")
        many = len(pids) != 1
        line = (
            f"the namespaces, mounts or fds of {len(pids)} process{'es' if many else ''} "
            f"could not be read (PID{'s' if many else ''} {shown})"
        )
        if os.geteuid() != 0:
            raise DeniedError(line, "run as root (or with CAP_SYS_PTRACE)")
        env.note(line)
