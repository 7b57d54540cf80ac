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
    environment,
    examples,
    notes,
    service,
)


@app.command(
    epilog=examples(
        ("dtrace-tree show", "every engine on this host: daemons, shims, containers, processes"),
        (
            "dtrace-tree show -a lab-web 4211",
            "two containers (a name, any PID of its chain), stopped ones too",
        ),
        (
            "dtrace-tree show -H unix:///run/docker.sock --json > before.json",
            "one engine, saved as JSON (schema dtrace-tree/show/2)",
        ),
        (
            "dtrace-tree show --from node-a.json --from node-b.json",
            "several saved hosts side by side, and what the fleet says",
        ),
    ),
)
def show(
    ctx: typer.Context,
    containers: ContainersArg = None,
    all_: AllOpt = False,
    host: HostOpt = None,
    as_json: JsonOpt = False,
    from_file: FromManyOpt = None,
) -> None:
    """The live chain: dockerd -> containerd -> containerd-shim -> container processes."""
    from tracer.views.selection import counts, select

    env = environment(ctx)
    if from_file and len(from_file) > 1:
        _fleet(ctx, from_file, containers or [], all_, host, as_json)
        return
    everything = service(ctx, host, from_file[0] if from_file else None).topology()
    topo = select(everything, containers or [], include_stopped=all_)
    notes(env, topo, engines=as_json)  # on a terminal the tree shows each engine's notes itself
    if as_json:
        env.write_json(topo.to_json())
        return
    from tracer.output.terminal import tree

    env.print(tree.topology(topo, {e.title: counts(e) for e in everything.engines}))


@app.command(
    epilog=examples(
        (
            "dtrace-tree diff before.json after.json",
            "which containers kept running (exit 0), which did not (exit 1)",
        ),
        (
            "dtrace-tree diff --json before.json after.json",
            "the same as JSON (schema dtrace-tree/diff/1)",
        ),
    ),
)
def diff(
    ctx: typer.Context,
    before: Annotated[str, typer.Argument(help="A snapshot taken before (show --json).")],
    after: Annotated[str, typer.Argument(help="A snapshot taken after, of the same host.")],
    as_json: JsonOpt = False,
) -> None:
    """Which containers kept running across two snapshots (survive's verdict for a restart
    someone else did). Exit 0 when all did, 1 when some did not, 2 for bad input."""
    from tracer.views.compare import compare

    env, saved = environment(ctx), service(ctx)
    doc = compare(saved.load(before), saved.load(after))
    if as_json:
        env.write_json(doc.to_json())
    else:
        from tracer.output.terminal import compare as view

        env.print(view.comparison(doc))
    raise typer.Exit(0 if doc.all_kept else 1)


def _fleet(
    ctx: typer.Context,
    paths: list[str],
    containers: list[str],
    include_stopped: bool,
    host: str | None,
    as_json: bool,
) -> None:
    """Several hosts: each one's tree (or JSON), then what the fleet as a whole says."""
    from tracer.views.selection import select

    env = environment(ctx)
    doc = service(ctx, host).fleet(paths)
    if containers:
        from tracer.errors import UsageError

        raise UsageError("several hosts: select containers in each host's own show")
    doc.topologies = [select(t, [], include_stopped=include_stopped) for t in doc.topologies]
    if as_json:
        env.write_json(doc.to_json())
        return
    from tracer.output.terminal import fleet as view

    env.print(view.fleet(doc))
