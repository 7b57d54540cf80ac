"""`lab up|status|down`: the private engine dtrace-tree starts, owns and removes."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tracer.cli.core import app, emit_json, note
from tracer.errors import EngineError, ExitCode

lab_app = typer.Typer(
    no_args_is_help=True,
    help="A private, real Docker engine that dtrace-tree starts, owns and removes.",
)
app.add_typer(lab_app, name="lab")
LabJson = Annotated[bool, typer.Option("--json", help="Print the lab status as JSON.")]


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
    podman: Annotated[
        bool,
        typer.Option("--podman", help="Also rootful podman containers (the lab's own storage)."),
    ] = False,
    containerd: Annotated[
        bool,
        typer.Option(
            "--containerd",
            help="Also a containerd of the lab's own (CRI on) with ctr containers.",
        ),
    ] = False,
    everything: Annotated[
        bool, typer.Option("--all", help="--podman and --containerd together.")
    ] = False,
    as_json: LabJson = False,
) -> None:
    """Start the lab engine and its demo containers (idempotent)."""
    from tracer.ops import lab

    up = lab.up(
        live_restore=live_restore,
        progress=note,
        podman=podman or everything,
        containerd=containerd or everything,
    )
    _print(up, as_json)


@lab_app.command("status")
def lab_status(as_json: LabJson = False) -> None:
    """Say what of the lab runs. Exits 0 when the lab's API answers, 5 otherwise."""
    from tracer.ops import lab

    status = lab.status()
    _print(status, as_json)
    if not status.api:
        raise typer.Exit(int(ExitCode.ENGINE))


@lab_app.command("down")
def lab_down() -> None:
    """Remove everything the lab made: containers, daemons, mounts, bridge, sockets, dirs."""
    from tracer.ops import lab

    done = lab.down(progress=note)
    removed = f"removed {len(done.removed)} items" if done.removed else "nothing to remove"
    if done.left:
        raise EngineError(
            f"lab down {removed}, but could not remove: {'; '.join(done.left)}",
            "remove these by hand, or run `dtrace-tree lab down` again",
        )
    print(f"lab is down; {removed}")


def _print(status: Any, as_json: bool) -> None:
    if as_json:
        emit_json(status.to_json())
        return
    from tracer.untrusted import for_terminal

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
    if status.podman is not None:
        print("podman (its own storage, no daemon):")
        for c in status.podman:
            print(f"  {for_terminal(c['name']):<15} {c['state']:<8} {for_terminal(c['shape'])}")
    if status.ctr is not None:
        print(f"ctr on the lab's second containerd (pid {status.cri_containerd_pid}, CRI on):")
        for c in status.ctr:
            print(f"  {for_terminal(c['name']):<15} {c['state']:<8} {for_terminal(c['shape'])}")
    print(f"DOCKER_HOST={status.docker_host}")
