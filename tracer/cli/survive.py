"""`survive`: restart a daemon and prove that every container kept running."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from tracer.cli.core import JsonOpt, app, environment, examples
from tracer.errors import ExitCode


@app.command(
    epilog=examples(
        ("dtrace-tree survive", "restart the lab's dockerd; prove every container kept running"),
        (
            "dtrace-tree survive --daemon containerd --svg survive.svg",
            "containerd, with a before/after diagram",
        ),
        (
            "dtrace-tree survive -H unix:///run/docker.sock --yes --json",
            "an engine the lab does not own, reported as JSON",
        ),
    ),
)
def survive(
    ctx: typer.Context,
    daemon: Annotated[
        str, typer.Option("--daemon", help="Which daemon to restart: dockerd or containerd.")
    ] = "dockerd",
    host: Annotated[
        str | None,
        typer.Option("-H", "--host", help="An engine other than the lab (needs --yes)."),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm restarting an engine dtrace-tree does not own.")
    ] = False,
    allow_downtime: Annotated[
        bool,
        typer.Option(
            "--allow-downtime", help="Restart even with live-restore off (loses containers)."
        ),
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=1.0, help="Seconds to wait for the daemon to come back (at least 1)."
        ),
    ] = 90.0,
    svg: Annotated[
        str | None, typer.Option("--svg", help="Also write a before/after diagram (SVG) here.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Restart the daemon and prove that every container kept running (live-restore)."""
    from tracer.errors import OutputError, UsageError
    from tracer.ops import survive as surviving

    env = environment(ctx)
    if daemon not in ("dockerd", "containerd"):
        raise UsageError(f"--daemon {daemon}: choose dockerd or containerd")
    opts = surviving.Options(
        daemon=daemon, host=host, yes=yes, allow_downtime=allow_downtime, timeout=timeout
    )
    if svg and not os.access(os.path.dirname(os.path.abspath(svg)), os.W_OK):
        raise OutputError(f"cannot write {svg}: its directory is not writable (nothing restarted)")
    report = surviving.run(opts, progress=env.note, waiting=env.waiting)
    if svg and report.verdict != "refused":
        from tracer.cli.export import write_file
        from tracer.output.diagram.dot import render
        from tracer.output.diagram.survival import survival

        write_file(svg, render(survival(report), "svg"), make_dir=False)
        env.note(f"wrote {svg}")
    if as_json:
        env.write_json(report.to_json())
    else:
        from tracer.output.terminal import survival as view

        env.print(view.report(report))
    codes = {"survived": ExitCode.OK, "refused": ExitCode.REFUSED, "lost": ExitCode.LOST}
    raise typer.Exit(int(codes[report.verdict or "lost"]))
