"""`trace`: watch containers come to life (and end), event by event, from the kernel."""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING, Annotated

import typer

from tracer.cli.core import app, environment, examples, service

if TYPE_CHECKING:
    from tracer.app.environment import Environment
    from tracer.model.topology import Topology
    from tracer.model.trace import Trace
    from tracer.snapshot.host import Host


@app.command(
    context_settings={"allow_interspersed_args": False},
    epilog=examples(
        (
            "dtrace-tree trace -- docker run --rm busybox true",
            "a container's whole life: each process, its role and container",
        ),
        ("dtrace-tree trace --duration 30", "whatever happens to containers for 30 seconds"),
        (
            "dtrace-tree trace --json -o exec.svg -- docker exec lab-web ps",
            "JSON lines, and the story drawn",
        ),
    ),
)
def trace(
    ctx: typer.Context,
    command: Annotated[
        list[str] | None,
        typer.Argument(
            help="The command to trace, after `--` (e.g. -- docker run -d busybox sleep 9). "
            "Without one: until Ctrl-C or --duration.",
            show_default=False,
        ),
    ] = None,
    all_: Annotated[
        bool,
        typer.Option("--all", help="Every process on the host, not only what concerns containers."),
    ] = False,
    duration: Annotated[
        float | None,
        typer.Option("--duration", help="Without a command: stop after this many seconds."),
    ] = None,
    grace: Annotated[
        float,
        typer.Option(
            "--grace",
            help="After the command exits, trace until the engines have been quiet this long "
            "(seconds; at most 5 s, or the grace if longer).",
        ),
    ] = 0.5,
    buffer: Annotated[
        int | None,
        typer.Option(
            "--buffer",
            help="The kernel's receive buffer for the events, in bytes (default 16 MiB, "
            "which the kernel doubles).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="JSON lines: one object per event, then a summary (schema: docs/schemas/).",
        ),
    ] = False,
    svg: Annotated[bool, typer.Option("--svg", help="Also draw the story (SVG), to -o.")] = False,
    png: Annotated[bool, typer.Option("--png", help="Also draw the story (PNG), to -o.")] = False,
    as_dot: Annotated[
        bool, typer.Option("--dot", help="Also write the DOT source, to -o.")
    ] = False,
    output: Annotated[
        str | None,
        typer.Option("-o", "--output", help="The diagram's file (.svg, .png or .dot)."),
    ] = None,
) -> None:
    """Trace fork, exec, exit and name changes from the kernel: the role and container of
    each process, and the story of each container (needs root)."""
    from tracer.errors import ExitCode

    env, looking = environment(ctx), service(ctx)
    argv = list(command or [])
    fmt = _diagram_format(svg, png, as_dot, output)
    _check(argv, duration, grace, buffer, fmt, output)
    from tracer.snapshot import session
    from tracer.views import lifecycle, roles

    opts = session.Options(
        command=argv,
        everything=all_,
        duration=duration,
        grace=grace,
        buffer=buffer,
        stdout_to_stderr=as_json,
    )
    what = " ".join(argv) if argv else "until Ctrl-C" if duration is None else f"for {duration:g} s"

    def look() -> tuple[Host, Topology]:
        """The walk of `show`, every engine: the processes and containers already there."""
        seen = looking.observation()
        return seen.host, seen.topology

    rec = session.record(
        looking.root(),
        opts,
        roles.engine_program,
        look,
        ready=lambda: env.note(f"tracing {what}" + ("" if all_ else " (what concerns containers)")),
    )
    result = lifecycle.trace(rec)
    if as_json:
        env.write_json_lines(result.json_lines())
    else:
        from tracer.output.terminal import trace as view

        env.print(view.render(result))
    if fmt is not None and output is not None:
        _draw(env, result, fmt, output)
    if rec.loss.lost or rec.loss.overflows:
        env.note(f"{rec.loss.lost} events were lost: this trace is incomplete (a larger --buffer)")
    if rec.interrupted and rec.command:  # without one, Ctrl-C is how a trace ends
        raise typer.Exit(int(ExitCode.INTERRUPTED))
    exit_code, signal = rec.command_end
    if signal:  # as a shell reports it: 128 + the signal
        env.note(f"the traced command was killed by signal {signal}")
        raise typer.Exit(128 + signal)
    if exit_code:
        env.note(f"the traced command exited {exit_code}")
        raise typer.Exit(exit_code)


def _diagram_format(svg: bool, png: bool, as_dot: bool, output: str | None) -> str | None:
    from tracer.errors import UsageError

    chosen = [f for f, on in (("svg", svg), ("png", png), ("dot", as_dot)) if on]
    if len(chosen) > 1:
        raise UsageError(f"choose one format, not {' and '.join('--' + f for f in chosen)}")
    suffix = os.path.splitext(output or "")[1].lstrip(".").lower()
    if output == "-":
        raise UsageError("-o -: the trace itself is on stdout; give the diagram a file")
    if output is None:
        if chosen:
            raise UsageError(f"--{chosen[0]} needs -o FILE")
        return None
    fmt = chosen[0] if chosen else suffix
    if fmt not in ("svg", "png", "dot"):
        raise UsageError(f"-o {output}: say --svg, --png or --dot (or end it in one of them)")
    if suffix in ("svg", "png", "dot") and suffix != fmt:
        raise UsageError(f"-o {output} does not end in .{fmt} (drop --{fmt}, or rename)")
    return fmt


def _check(
    argv: list[str],
    duration: float | None,
    grace: float,
    buffer: int | None,
    fmt: str | None,
    output: str | None,
) -> None:
    """Refuse what cannot work before subscribing: a trace cannot be taken again."""
    from tracer.errors import CommandError, MissingBinaryError, OutputError, UsageError

    if argv and duration is not None:
        raise UsageError("--duration is for tracing without a command (the command's end ends it)")
    if duration is not None and duration <= 0:
        raise UsageError(f"--duration {duration:g}: give a positive number of seconds")
    if grace < 0:
        raise UsageError(f"--grace {grace:g}: give a number of seconds, 0 or more")
    if buffer is not None and buffer < 4096:
        raise UsageError(f"--buffer {buffer}: at least 4096 bytes")
    if fmt in ("svg", "png") and shutil.which("dot") is None:
        raise MissingBinaryError("dot", "graphviz")
    if output is not None and not os.access(os.path.dirname(os.path.abspath(output)), os.W_OK):
        raise OutputError(f"cannot write {output}: its directory is not writable (nothing traced)")
    if argv and shutil.which(argv[0]) is None:
        if os.sep in argv[0] and os.path.exists(argv[0]):
            raise CommandError(f"{argv[0]}: not executable")
        raise CommandError(f"{argv[0]}: command not found", found=False)


def _draw(env: Environment, result: Trace, fmt: str, path: str) -> None:
    from tracer.cli.export import write_file
    from tracer.output.diagram.dot import render
    from tracer.output.diagram.trace import story_diagram

    write_file(path, render(story_diagram(result), fmt), make_dir=False)
    env.note(f"wrote {path}")
