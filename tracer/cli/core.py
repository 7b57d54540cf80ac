"""The command line's root: the app, its options, the Environment of a run, and the one error
funnel.

Every command (one module per command group in this package) parses, asks the application
service (tracer/app/service.py) for what it shows, renders through its Environment
(tracer/app/environment.py). Errors become one line on stderr with a documented exit code here,
and only here.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperGroup

from tracer.app.environment import Environment
from tracer.app.service import Service
from tracer.errors import ExitCode, TracerError

if TYPE_CHECKING:
    from tracer.model.topology import Topology

DEBUG_FLAGS = ("--debug", "--traceback")


class _Group(TyperGroup):
    """Root command group: the one place where errors are translated for people."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: object,
    ) -> int:
        """click's main, with its errors as one line: a usage error is `dtrace-tree: error:
        <what> (see: <command> --help)`, exit 2, not click's four lines. `obj` (main's, or a
        test's CliRunner.invoke(..., obj=...)) is the Environment of the run; by default, this
        process's."""
        given = extra.get("obj")
        env = given if isinstance(given, Environment) else Environment()
        argv = list(sys.argv[1:] if args is None else args)
        code = _run(self, argv, env, prog_name or "dtrace-tree")
        if standalone_mode:
            sys.exit(code)
        return code


def _run(group: TyperGroup, args: list[str], env: Environment, prog_name: str) -> int:
    """Parse and run the command; every way it can end, as an exit code (and one line)."""
    args = _debug_first(args)
    if args[:1] == ["--debug"]:
        env = env.with_options(env.host_root, debug=True)
    try:
        with group.make_context(prog_name, args, obj=env) as ctx:
            group.invoke(ctx)
        return 0
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # click's errors (typer vendors click: ClickException)
        if exc.exit_code != ExitCode.USAGE:
            return fail(env, exc.format_message(), exc.exit_code)
        where = getattr(exc, "ctx", None)  # click's UsageError: the command being parsed
        path = where.command_path if where is not None else prog_name
        return fail(env, f"{exc.format_message()} (see: {path} --help)", ExitCode.USAGE)
    except (typer.Abort, KeyboardInterrupt):
        return fail(env, "interrupted", ExitCode.INTERRUPTED)
    except TracerError as exc:
        if env.debug:
            raise
        return fail(env, exc.line(), exc.exit_code)
    except BrokenPipeError:
        # `dtrace-tree show | head`: the reader left. Quietly, like any Unix tool on SIGPIPE.
        _drop_stdout(env)
        return ExitCode.BROKEN_PIPE
    except Exception as exc:  # the last line of defence: no tracebacks
        if env.debug:
            raise
        why = f"internal error: {type(exc).__name__}: {exc} (rerun with --debug for a traceback)"
        return fail(env, why, ExitCode.FAILURE)


def _debug_first(args: list[str]) -> list[str]:
    """--debug anywhere before `--` (`show --debug` too), moved to where the root option is
    parsed: the error text says "rerun with --debug" after any command."""
    end = args.index("--") if "--" in args else len(args)
    head = [a for a in args[:end] if a not in DEBUG_FLAGS]
    if len(head) == end:
        return args
    return ["--debug", *head, *args[end:]]


def _drop_stdout(env: Environment) -> None:
    """What is left in stdout's buffer goes nowhere (the reader has gone: flushing it at exit
    would fail again)."""
    try:
        fd = env.stdout.fileno()
    except (OSError, ValueError):  # a stream with no descriptor (a test's StringIO)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def fail(env: Environment, line: str, code: int) -> int:
    """One line on stderr; the exit code to end with."""
    env.error(line)
    return int(code)


def examples(*pairs: tuple[str, str]) -> str:
    """A command's epilog: its examples, each command line and what it does, as --help prints
    them (unwrapped) and docs/manpage.py reads them back for the man page."""
    lines = [f"  {command}\n      {what}" for command, what in pairs]
    return "Examples:\n\n\b\n" + "\n".join(lines)


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Make Docker's architecture visible on this host: "
    "dockerd -> containerd -> containerd-shim -> container, with real PIDs and namespaces.",
    epilog=examples(
        ("dtrace-tree lab up", "start the lab: a private Docker engine with demo containers"),
        ("dtrace-tree show", "every engine on this host, its daemons, shims and containers"),
        ("dtrace-tree ns lab-web", "one container's namespaces: what it shares, and why"),
        (
            "dtrace-tree trace -- docker run --rm busybox true",
            "a container's life, from the kernel",
        ),
        ("dtrace-tree export", "the same picture as show, drawn (SVG) in diagrams/"),
        ("dtrace-tree survive", "restart the lab's dockerd; prove every container kept running"),
        ("dtrace-tree serve", "a live page of this host (http://127.0.0.1:8780/?token=...)"),
    ),
)


def environment(ctx: typer.Context) -> Environment:
    """The Environment of this run (made by main, --host-root and --debug applied)."""
    env = ctx.find_object(Environment)
    return env if env is not None else Environment()


def service(ctx: typer.Context, engine: str | None = None, snapshot: str | None = None) -> Service:
    """The one way to look (tracer/app/service.py): at the engine -H names (None: the docker
    CLI's choice, 'all': every engine), or at the snapshot saved in `snapshot`."""
    return Service(environment(ctx), engine, snapshot)


def notes(env: Environment, topo: Topology, engines: bool = True) -> None:
    """The snapshot's notes (not root, API down, ...), one line each on stderr; without
    engines, the host's only (the tree prints each engine's notes under it)."""
    per_engine = [f"{e.title}: {n}" for e in topo.engines for n in e.notes] if engines else []
    for line in topo.notes + per_engine:
        env.note(line)


def alone(ctx: typer.Context) -> None:
    """A group called with nothing at all (`dtrace-tree`, `dtrace-tree lab`): its help, on
    stderr, exit 2; with options but no command, the usage error click says."""
    if ctx.invoked_subcommand is not None:
        return
    for name in ctx.params:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name == "COMMANDLINE":
            ctx.fail("Missing command.")
    environment(ctx).stderr.write(ctx.get_help() + "\n")
    raise typer.Exit(ExitCode.USAGE)


def _version(ctx: typer.Context, value: bool) -> None:
    if value:
        from tracer import __version__

        environment(ctx).echo(f"dtrace-tree {__version__}")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
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
    env = environment(ctx)
    ctx.obj = env.with_options(host_root or env.host_root, env.debug or debug)
    alone(ctx)


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
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (schema: docs/schemas/).")]
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


def main(env: Environment | None = None) -> None:
    """`python -m tracer` and the `dtrace-tree` script: the app, in this process's Environment
    (or the one given)."""
    env = env or Environment()
    try:
        only_invoked(app, sys.argv[1:])(prog_name="dtrace-tree", obj=env)
    finally:
        try:
            env.stdout.flush()
        except BrokenPipeError:  # the reader left before the last buffered bytes
            _drop_stdout(env)


def only_invoked(full: typer.Typer, args: Sequence[str]) -> typer.Typer:
    """The app with only the command that args name first (`show`, `lab`), its root options
    and settings kept; else the whole app (no command, an option first, a name it has not).
    typer makes a click command of every registered command at each start, evaluating each
    signature's annotations (13-22 ms here, benchmarks/NOTES.md); one is all a run needs.
    Its --help and its errors read the same: they name only that command."""
    import copy

    from typer.main import get_command_name

    if not args or args[0].startswith("-"):
        return full
    commands = [
        c
        for c in full.registered_commands
        if (c.name or (c.callback and get_command_name(c.callback.__name__))) == args[0]
    ]
    groups = [g for g in full.registered_groups if g.name == args[0]]
    if not commands and not groups:
        return full
    lean = copy.copy(full)
    lean.registered_commands, lean.registered_groups = commands, groups
    return lean
