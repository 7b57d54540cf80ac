"""The command line's root: the app, its options, and the one error funnel.

Every command (one module per command group in this package) parses, calls the core, renders.
Errors become one line on stderr with a documented exit code here, and only here.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Annotated, Any, NoReturn

import typer
from typer._click import exceptions as click_errors  # typer 0.26-0.28 vendors click here
from typer.core import TyperGroup

from tracer.errors import ExitCode, TracerError

DEBUG_FLAGS = ("--debug", "--traceback")


class _Group(TyperGroup):
    """Root command group: the one place where errors are translated for people."""

    def main(  # type: ignore[override]
        self,
        args: list[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """click's main, with its errors as one line: a usage error is `dtrace-tree: error:
        <what> (see: <command> --help)`, exit 2, not click's four lines."""
        args = _debug_first(list(sys.argv[1:] if args is None else args))
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError as exc:
            exc.show()  # `dtrace-tree` alone, or `dtrace-tree lab`: the help, as click shows it
            sys.exit(exc.exit_code)
        except click_errors.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "dtrace-tree"
            fail(f"{exc.format_message()} (see: {where} --help)", ExitCode.USAGE)
        except click_errors.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        except typer.Abort:
            fail("interrupted", ExitCode.INTERRUPTED)
        if standalone_mode:
            sys.exit(rv if isinstance(rv, int) else 0)
        return rv

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort):
            raise
        except TracerError as exc:
            if _debug(ctx):
                raise
            fail(exc.line(), exc.exit_code)
        except KeyboardInterrupt:
            fail("interrupted", ExitCode.INTERRUPTED)
        except BrokenPipeError:
            # `dtrace-tree show | head`: the reader left. Quietly, like any Unix tool on SIGPIPE.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(ExitCode.BROKEN_PIPE) from None
        except Exception as exc:  # noqa: BLE001 - the last line of defence: no tracebacks
            if _debug(ctx):
                raise
            fail(
                f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)",
                ExitCode.FAILURE,
            )


def _debug(ctx: Any) -> bool:
    root = ctx.find_root()
    return bool((root.obj or {}).get("debug")) or bool(os.environ.get("DTRACE_DEBUG"))


def _debug_first(args: list[str]) -> list[str]:
    """--debug anywhere before `--` (`show --debug` too), moved to where the root option is
    parsed: the error text says "rerun with --debug" after any command."""
    end = args.index("--") if "--" in args else len(args)
    head = [a for a in args[:end] if a not in DEBUG_FLAGS]
    if len(head) == end:
        return args
    return ["--debug", *head, *args[end:]]


def fail(line: str, code: int) -> NoReturn:
    """One line on stderr, then exit with code."""
    from tracer.untrusted import for_terminal

    sys.stderr.write(f"dtrace-tree: error: {for_terminal(line)}\n")
    raise SystemExit(int(code))


def note(line: str) -> None:
    """A one-line remark for people, on stderr (stdout stays clean for --json)."""
    from tracer.untrusted import for_terminal

    sys.stderr.write(f"dtrace-tree: {for_terminal(line)}\n")


def notes(topo: Any, engines: bool = True) -> None:
    """The snapshot's notes (not root, API down, ...), one line each on stderr; without
    engines, the host's only (the tree prints each engine's notes under it)."""
    per_engine = [f"{e.title}: {n}" for e in topo.engines for n in e.notes] if engines else []
    for line in topo.notes + per_engine:
        note(line)


@contextlib.contextmanager
def waiting(what: str) -> Iterator[None]:
    """A spinner with the time spent, on a terminal's stderr, while something takes a while
    (dot on a big host, a daemon's restart); nothing when stderr is not a terminal."""
    if not sys.stderr.isatty():
        yield
        return
    from tracer.output.terminal.style import spinner

    with spinner(what):
        yield


def emit_json(doc: Any) -> None:
    from tracer.output import jsondoc

    jsondoc.write(doc)


def print_view(renderable: Any) -> None:
    """A rich renderable on stdout."""
    from tracer.output.terminal.style import console

    console().print(renderable)


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Make Docker's architecture visible on this host: "
    "dockerd -> containerd -> containerd-shim -> container, with real PIDs and namespaces.",
)


def _version(value: bool) -> None:
    if value:
        from tracer import __version__

        print(f"dtrace-tree {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug", "--traceback", help="Re-raise errors with a traceback (after a command too)."
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    host_root: Annotated[
        str | None,
        typer.Option(
            "--host-root",
            envvar="DTRACE_HOST_ROOT",
            help="Where the host's / is mounted when dtrace-tree runs in a container (e.g. "
            "/host, with --pid=host). Found by itself at /host in a container.",
        ),
    ] = None,
) -> None:
    ctx.obj = {"debug": debug, "host_root": host_root}


# -- what several commands share ------------------------------------------------------------

HostOpt = Annotated[
    str | None,
    typer.Option(
        "-H",
        "--host",
        help="Only the engine whose API socket is this unix:// URL; 'all' for every engine. "
        "Default: DOCKER_HOST, DOCKER_CONTEXT or the current docker context, as the docker CLI "
        "chooses; with none of them, every engine.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (schema in the README).")]
ContainersArg = Annotated[
    list[str] | None,
    typer.Argument(help="Only these containers: name, id, unique id prefix or host PID."),
]
AllOpt = Annotated[bool, typer.Option("-a", "--all", help="Also list stopped containers.")]


FromOpt = Annotated[
    str | None,
    typer.Option(
        "--from",
        help="Read a saved snapshot instead of this host: `show --json` output, or a `survive "
        "--json` report (its snapshot taken while the daemon was down); '-' for stdin.",
    ),
]


FromManyOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--from",
        help="Read a saved snapshot instead of this host: `show --json` output, or a `survive "
        "--json` report; '-' for stdin. Several --from: several hosts side by side.",
    ),
]


def fleet_of(paths: list[str], host: str | None) -> Any:
    """Several saved snapshots (one host each) and the fleet's summary."""
    from tracer.errors import UsageError
    from tracer.views.fleet import fleet
    from tracer.views.selection import only_engine

    if paths.count("-") > 1:
        raise UsageError("--from -: stdin can be read once")
    topos = [load_snapshot(p) for p in paths]
    if host and host != "all":
        topos = [only_engine(t, host) for t in topos]
    return fleet(list(zip(paths, topos, strict=True)))


def load_snapshot(path: str) -> Any:
    """A Topology from a `show --json` file (or the daemon-down snapshot of a `survive --json`
    report); UsageError (one line) for anything else."""
    import json

    from tracer.errors import SnapshotFormatError, UsageError
    from tracer.model.show_json import from_json

    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
    except OSError as exc:
        raise UsageError(f"--from {path}: {exc.strerror or exc}") from exc
    hint = "make one with: dtrace-tree show --json > FILE"
    try:
        doc = json.loads(text)
        during = doc.get("during") if isinstance(doc, dict) and "verdict" in doc else None
        if isinstance(during, dict) and "topology" in during:
            doc = during["topology"]  # a survive report: what /proc showed while it was down
        return from_json(doc)
    except SnapshotFormatError as exc:
        raise UsageError(f"--from {path}: {exc.message}", hint) from exc
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, or absurd nesting
        raise UsageError(f"--from {path}: not JSON", hint) from exc


def snapshot(host: str | None, from_file: str | None) -> Any:
    """The topology to show: the saved one (only the engine at -H, if given), or this host's."""
    if from_file is None:
        return observe(host)
    from tracer.views.selection import only_engine

    topo = load_snapshot(from_file)
    if host and host != "all":
        topo = only_engine(topo, host)
    return topo


def chosen_engine(host: str | None) -> str | None:
    """The engine the user means (-H, else the docker CLI's environment), said on stderr when
    it comes from the environment; None for every engine."""
    from tracer.runtimes.dockercontext import choose

    choice = choose(host)
    if choice.from_environment:
        note(f"showing the engine at {choice.url} (from {choice.why}; -H all shows every engine)")
    return choice.url


def host_root() -> Any:
    """The HostRoot every command reads the host through: --host-root (or DTRACE_HOST_ROOT);
    in a container without it, the host's / at /host; else this process's own / and /proc.
    DeniedError (exit 3) when the host's processes are not visible from here."""
    from typer._click.globals import get_current_context  # typer 0.26-0.28 vendor click

    from tracer.errors import DeniedError, UsageError
    from tracer.kernel import root as roots

    ctx = get_current_context(silent=True)
    obj = (ctx.find_root().obj if ctx else None) or {}
    if "root" in obj:
        return obj["root"]  # one choice (and one note) per command
    given = obj.get("host_root")
    if given:
        if not os.path.isdir(given):
            raise UsageError(f"--host-root {given}: no such directory")
        chosen = roots.for_container(given)
    elif roots.in_container() and os.path.isdir(roots.HOST_MOUNT):
        chosen = roots.for_container(roots.HOST_MOUNT)
        note(f"running in a container: reading the host through {roots.HOST_MOUNT}")
    else:
        chosen = roots.HostRoot()
    if not roots.sees_host_processes(chosen):
        raise DeniedError(
            f"the host's processes are not visible from here ({chosen.proc} has no kthreadd: "
            "this is not the host's PID namespace)",
            "run the container with --pid=host (Kubernetes: hostPID: true), or mount the "
            "host's / and give --host-root",
        )
    obj["root"] = chosen
    return chosen


def observe(host: str | None) -> Any:
    """The host's topology: the engine the user means, or every engine."""
    from tracer.runtimes import observe as look
    from tracer.views.selection import only_engine

    url = chosen_engine(host)
    root = host_root()
    topo = look(root, only=url).topology
    _own_container(topo)
    return only_engine(topo, url) if url else topo


def _own_container(topo: Any) -> None:
    """Say so when dtrace-tree itself runs in one of the containers it shows."""
    me = os.getpid()
    for c in topo.containers():
        if any(p.pid == me for p in c.processes):
            note(f"dtrace-tree itself runs in container {c.label} ({c.short_id}), shown too")
            return


def main() -> None:
    try:
        app(prog_name="dtrace-tree")
    finally:
        try:
            sys.stdout.flush()
        except BrokenPipeError:  # the reader left before the last buffered bytes
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
