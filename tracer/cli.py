"""The command line: parse, call the core, render. Errors become one line here, and only here."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from tracer.errors import ExitCode, TracerError


class _Group(TyperGroup):
    """Root command group: the one place where errors are translated for people."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise
        except TracerError as exc:
            if _debug(ctx):
                raise
            _fail(exc.line(), exc.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except BrokenPipeError:
            # `dtrace-tree show | head`: the reader left. Quietly, like any Unix tool on SIGPIPE.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(141) from None
        except Exception as exc:  # noqa: BLE001 - the last line of defence: no tracebacks
            if _debug(ctx):
                raise
            _fail(
                f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)",
                ExitCode.FAILURE,
            )


def _debug(ctx: Any) -> bool:
    root = ctx.find_root()
    return bool((root.obj or {}).get("debug")) or bool(os.environ.get("DTRACE_DEBUG"))


def _fail(line: str, code: int) -> None:
    from tracer.textsafe import for_terminal

    sys.stderr.write(f"dtrace-tree: error: {for_terminal(line)}\n")
    raise typer.Exit(int(code))


def note(line: str) -> None:
    """A one-line remark for people, on stderr (stdout stays clean for --json)."""
    from tracer.textsafe import for_terminal

    sys.stderr.write(f"dtrace-tree: {for_terminal(line)}\n")


def emit_json(doc: Any) -> None:
    """JSON on stdout: indented for a person at a terminal, compact for a pipe.

    (json's C encoder only runs without indent: 740 kB for 300 containers takes 10 ms
    compact and ten times that indented.)
    """
    from tracer.textsafe import for_json

    indent = 2 if sys.stdout.isatty() else None
    sys.stdout.write(json.dumps(for_json(doc), indent=indent, ensure_ascii=False) + "\n")


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    help="Make Docker's architecture visible on this host: "
    "dockerd -> containerd -> containerd-shim -> container, with real PIDs and namespaces.",
)
lab_app = typer.Typer(
    no_args_is_help=True,
    help="A private, real Docker engine that dtrace-tree starts, owns and removes.",
)
app.add_typer(lab_app, name="lab")


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", "--traceback", help="Re-raise errors with a traceback.")
    ] = False,
) -> None:
    ctx.obj = {"debug": debug}


# -- show --------------------------------------------------------------------------------

HostOpt = Annotated[
    str | None,
    typer.Option("-H", "--host", help="Only the engine whose API socket is this unix:// URL."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (schema in the README).")]
ContainersArg = Annotated[
    list[str] | None,
    typer.Argument(help="Only these containers: name, id, unique id prefix or host PID."),
]


def _notes(topo: Any) -> None:
    """The snapshot's notes (not root, API down, ...), one line each on stderr."""
    for line in topo.notes + [f"{e.title}: {n}" for e in topo.engines for n in e.notes]:
        note(line)


@app.command()
def show(
    containers: ContainersArg = None,
    all_: Annotated[
        bool, typer.Option("-a", "--all", help="Also list stopped containers.")
    ] = False,
    host: HostOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The live chain: dockerd -> containerd -> containerd-shim -> container processes."""
    from tracer.select import select
    from tracer.trace import trace

    topo = select(trace(host), containers or [], include_stopped=all_)
    _notes(topo)
    if as_json:
        emit_json(topo.to_json())
        return
    from tracer import render

    console().print(render.topology(topo))


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
    from tracer import nsview
    from tracer.errors import NotRootError, NotRunningError
    from tracer.select import resolve
    from tracer.trace import host_config, trace

    topo = trace(host)
    if container is None:
        doc = nsview.matrix(topo)
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
        doc = nsview.container_report(topo, me, host_config(topo, me))
    if not doc["host"]:
        note(
            "the host's namespaces could not be read (neither PID 1 nor kthreadd): "
            "'isolated' is unknown"
        )
    if as_json:
        emit_json(doc)
        return
    from tracer import render

    console().print(render.ns_matrix(doc) if container is None else render.ns_container(doc))


@app.command()
def survive(
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
        float, typer.Option("--timeout", help="Seconds to wait for the daemon to come back.")
    ] = 90.0,
    svg: Annotated[
        str | None, typer.Option("--svg", help="Also write a before/after diagram (SVG) here.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Restart the daemon and prove that every container kept running (live-restore)."""
    from tracer import survive as surv
    from tracer.errors import UsageError

    if daemon not in ("dockerd", "containerd"):
        raise UsageError(f"--daemon {daemon}: choose dockerd or containerd")
    opts = surv.Options(
        daemon=daemon, host=host, yes=yes, allow_downtime=allow_downtime, timeout=timeout
    )
    if svg and not os.access(os.path.dirname(os.path.abspath(svg)), os.W_OK):
        from tracer.errors import OutputError

        raise OutputError(f"cannot write {svg}: its directory is not writable (nothing restarted)")
    report = surv.run(opts, progress=note)
    if svg and report["verdict"] != "refused":
        from tracer import diagram

        _write(svg, diagram.render(diagram.survival(report), "svg"), make_dir=False)
        note(f"wrote {svg}")
    if as_json:
        emit_json(report)
    else:
        from tracer import render

        console().print(render.survive(report))
    codes = {"survived": ExitCode.OK, "refused": ExitCode.REFUSED, "lost": ExitCode.LOST}
    raise typer.Exit(int(codes[report["verdict"]]))


def console() -> Any:
    """stdout console: colour on a TTY, plain when piped or with NO_COLOR (rich decides)."""
    from rich.console import Console

    # Piped into a file or a doc, lines should not be cut at rich's default of 80 columns.
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(highlight=False, soft_wrap=False, width=160 if piped else None)


# -- export --------------------------------------------------------------------------------

COMPACT_HINT = 100  # containers: above this dot takes seconds (300: ~50 s) on the full view


@app.command()
def export(
    containers: ContainersArg = None,
    svg: Annotated[bool, typer.Option("--svg", help="Write SVG (the default).")] = False,
    png: Annotated[bool, typer.Option("--png", help="Write PNG.")] = False,
    pdf: Annotated[bool, typer.Option("--pdf", help="Write PDF.")] = False,
    as_dot: Annotated[bool, typer.Option("--dot", help="Write the DOT source.")] = False,
    output: Annotated[
        str | None,
        typer.Option(
            "-o", "--output", help="File to write (default: diagrams/<host>-<time>.<format>)."
        ),
    ] = None,
    from_file: Annotated[
        str | None,
        typer.Option("--from", help="Draw a saved `show --json` snapshot ('-' for stdin)."),
    ] = None,
    ns: Annotated[
        bool, typer.Option("--ns", help="The namespace view instead of the architecture.")
    ] = False,
    compact: Annotated[
        bool, typer.Option("--compact", help="One node per container, for hundreds of them.")
    ] = False,
    all_: Annotated[
        bool, typer.Option("-a", "--all", help="Also draw stopped containers.")
    ] = False,
    host: HostOpt = None,
) -> None:
    """Draw the `show` snapshot (or --ns, the namespaces) with Graphviz; print the file written."""
    from tracer import diagram
    from tracer.errors import UsageError
    from tracer.select import select
    from tracer.trace import only_engine, trace

    chosen = [f for f, on in (("svg", svg), ("png", png), ("pdf", pdf), ("dot", as_dot)) if on]
    if len(chosen) > 1:
        raise UsageError(f"choose one format, not {' and '.join('--' + f for f in chosen)}")
    suffix = os.path.splitext(output or "")[1].lstrip(".").lower()
    fmt = chosen[0] if chosen else suffix if suffix in diagram.FORMATS else "svg"
    if suffix in diagram.FORMATS and suffix != fmt:
        raise UsageError(f"-o {output} does not end in .{fmt} (drop --{fmt}, or rename)")
    if from_file is None:
        topo = trace(host)
    else:
        topo = _snapshot(from_file)
        if host:
            topo = only_engine(topo, host)
    topo = select(topo, containers or [], include_stopped=all_)
    _notes(topo)
    count = len(topo.containers())
    if count > COMPACT_HINT and not compact and fmt != "dot":
        note(f"{count} containers: dot may take a minute; --compact draws one node per container")
    data = diagram.render(diagram.source(topo, ns=ns, compact=compact), fmt)
    path = output or os.path.join("diagrams", diagram.default_name(topo.host, fmt, ns))
    _write(path, data, make_dir=output is None)
    print(path)


def _snapshot(path: str) -> Any:
    """A Topology from a `show --json` file; UsageError (one line) for anything else."""
    from tracer import diagram
    from tracer.errors import UsageError
    from tracer.model import SnapshotFormatError, from_json

    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
    except OSError as exc:
        raise UsageError(f"--from {path}: {exc.strerror or exc}") from exc
    try:
        topo = from_json(json.loads(text))
        diagram.check(topo)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, SnapshotFormatError
        what = str(exc) if isinstance(exc, SnapshotFormatError) else "not JSON"
        raise UsageError(
            f"--from {path}: {what}", "make one with: dtrace-tree show --json > FILE"
        ) from exc
    return topo


def _write(path: str, data: bytes, make_dir: bool) -> None:
    from tracer.errors import OutputError

    try:
        if make_dir:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    except OSError as exc:
        raise OutputError(
            f"cannot write {path}: {exc.strerror or exc}", "choose another file with -o"
        ) from exc


# -- lab -----------------------------------------------------------------------------------


@lab_app.command("up")
def lab_up(
    live_restore: Annotated[
        bool,
        typer.Option(
            "--live-restore/--no-live-restore",
            help="Keep containers running while dockerd restarts (--no-live-restore for the "
            "negative demo).",
        ),
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the lab status as JSON.")] = False,
) -> None:
    """Start the lab engine and its demo containers (idempotent)."""
    from tracer import lab

    status = lab.up(live_restore=live_restore, progress=note)
    _print_lab(status, as_json)


@lab_app.command("status")
def lab_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the lab status as JSON.")] = False,
) -> None:
    """Say what of the lab runs. Exits 0 when the lab's API answers, 5 otherwise."""
    from tracer import lab

    status = lab.status()
    _print_lab(status, as_json)
    if not status.api:
        raise typer.Exit(int(ExitCode.ENGINE))


@lab_app.command("down")
def lab_down() -> None:
    """Remove everything the lab made: containers, daemons, mounts, bridge, sockets, dirs."""
    from tracer import lab

    removed = lab.down(progress=note)
    print("lab is down" + (f"; removed {len(removed)} items" if removed else "; nothing to remove"))


def _print_lab(status: Any, as_json: bool) -> None:
    if as_json:
        emit_json(status.to_json())
        return
    from tracer.textsafe import for_terminal

    if not status.running:
        print("lab is not running (start it with: dtrace-tree lab up)")
        return
    lr = {True: "on", False: "off", None: "unknown"}[status.live_restore]
    print(
        f"lab is up: containerd pid {status.containerd_pid}, dockerd pid {status.dockerd_pid}, "
        f"API {'answers' if status.api else 'does not answer'}, live-restore {lr}"
    )
    for c in status.containers:
        print(f"  {for_terminal(c['name'] or '?'):<12} {c['state']:<8} {for_terminal(c['shape'])}")
    print(f"DOCKER_HOST={status.docker_host}")


def main() -> None:
    try:
        app(prog_name="dtrace-tree")
    finally:
        try:
            sys.stdout.flush()
        except BrokenPipeError:  # the reader left before the last buffered bytes
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
