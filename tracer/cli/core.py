"""The command line's root: the app, its options, and the one error funnel.

Every command (one module per command group in this package) parses, calls the core, renders.
Errors become one line on stderr with a documented exit code here, and only here.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any, NoReturn

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


def fail(line: str, code: int) -> NoReturn:
    """One line on stderr, then exit with code."""
    from tracer.untrusted import for_terminal

    sys.stderr.write(f"dtrace-tree: error: {for_terminal(line)}\n")
    raise typer.Exit(int(code))


def note(line: str) -> None:
    """A one-line remark for people, on stderr (stdout stays clean for --json)."""
    from tracer.untrusted import for_terminal

    sys.stderr.write(f"dtrace-tree: {for_terminal(line)}\n")


def notes(topo: Any) -> None:
    """The snapshot's notes (not root, API down, ...), one line each on stderr."""
    for line in topo.notes + [f"{e.title}: {n}" for e in topo.engines for n in e.notes]:
        note(line)


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
    help="Make Docker's architecture visible on this host: "
    "dockerd -> containerd -> containerd-shim -> container, with real PIDs and namespaces.",
)


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[
        bool, typer.Option("--debug", "--traceback", help="Re-raise errors with a traceback.")
    ] = False,
) -> None:
    ctx.obj = {"debug": debug}


# -- what several commands share ------------------------------------------------------------

HostOpt = Annotated[
    str | None,
    typer.Option("-H", "--host", help="Only the engine whose API socket is this unix:// URL."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (schema in the README).")]
ContainersArg = Annotated[
    list[str] | None,
    typer.Argument(help="Only these containers: name, id, unique id prefix or host PID."),
]
AllOpt = Annotated[bool, typer.Option("-a", "--all", help="Also list stopped containers.")]


def observe(host: str | None) -> Any:
    """The host's topology (only the engine at host, when given)."""
    from tracer.runtimes import observe as look
    from tracer.views.selection import only_engine

    topo = look(only=host).topology
    return only_engine(topo, host) if host else topo


def main() -> None:
    try:
        app(prog_name="dtrace-tree")
    finally:
        try:
            sys.stdout.flush()
        except BrokenPipeError:  # the reader left before the last buffered bytes
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
