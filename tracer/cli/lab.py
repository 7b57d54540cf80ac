"""`lab up|status|down`: the private engine dtrace-tree starts, owns and removes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from tracer.cli.core import alone, app, environment, examples
from tracer.errors import EngineError, ExitCode, UsageError

if TYPE_CHECKING:
    from tracer.app.environment import Environment
    from tracer.ops.lab import LabStatus
    from tracer.ops.labconfig import LabPaths

lab_app = typer.Typer(
    help="A private, real Docker engine that dtrace-tree starts, owns and removes.",
)
app.add_typer(lab_app, name="lab")
lab_app.callback(invoke_without_command=True)(alone)
LabJson = Annotated[bool, typer.Option("--json", help="Print the lab status as JSON.")]
StackName = Annotated[
    str | None,
    typer.Option(
        "--stack",
        help="Which engine stack: 2023 (Debian 12's Docker 20.10, containerd 1.6) or 2026 "
        "(Debian sid's Docker 28, containerd 2, containerd image store; downloaded once). Each "
        "stack's lab is separate. Default: $DTRACE_LAB_STACK, else 2023.",
    ),
]


SecondDockerd = Annotated[
    bool,
    typer.Option(
        "--second-dockerd",
        help="A second dockerd on the lab's containerd (namespace moby, its own exec root, "
        "data root and bridge).",
    ),
]
SocketActivated = Annotated[
    bool,
    typer.Option(
        "--socket-activated",
        help="A dockerd on the lab's containerd started as systemd starts it: "
        "systemd-socket-activate -l SOCK dockerd -H fd://.",
    ),
]


Rootless = Annotated[
    bool,
    typer.Option(
        "--rootless",
        help="A rootless Docker engine (dockerd-rootless.sh: rootlesskit, slirp4netns) of a "
        "user the lab creates, with subordinate ids and /dev/net/tun opened to it.",
    ),
]


def _more(second: bool, activated: bool, rootless: bool) -> list[str]:
    wanted = (("second", second), ("activated", activated), ("rootless", rootless))
    return [n for n, on in wanted if on]


def _paths(stack: str | None) -> LabPaths:
    from tracer.ops.labconfig import STACKS, LabPaths

    if stack is None:
        return LabPaths()
    if stack not in STACKS:
        raise UsageError(f"--stack {stack}: no such stack", f"one of {', '.join(STACKS)}")
    return LabPaths.of(stack)


@lab_app.command(
    "up",
    epilog=examples(
        ("dtrace-tree lab up", "the lab's dockerd and containerd, and its demo containers"),
        (
            "dtrace-tree lab up --all",
            "also podman, a containerd with CRI and ctr containers, two more dockerds",
        ),
        (
            "dtrace-tree lab up --stack 2026",
            "the same on Docker 28 and containerd 2 (a lab of its own)",
        ),
        ("dtrace-tree lab up --no-live-restore", "for survive's other outcome: containers lost"),
    ),
)
def lab_up(
    ctx: typer.Context,
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
    second_dockerd: SecondDockerd = False,
    socket_activated: SocketActivated = False,
    rootless: Rootless = False,
    everything: Annotated[bool, typer.Option("--all", help="All of the above together.")] = False,
    stack: StackName = None,
    as_json: LabJson = False,
) -> None:
    """Start the lab engine and its demo containers (idempotent)."""
    from tracer.ops import lab

    env = environment(ctx)
    up = lab.up(
        live_restore=live_restore,
        paths=_paths(stack),
        progress=env.note,
        podman=podman or everything,
        containerd=containerd or everything,
        more=_more(
            second_dockerd or everything, socket_activated or everything, rootless or everything
        ),
    )
    _print(env, up, as_json)


@lab_app.command(
    "status",
    epilog=examples(
        ("dtrace-tree lab status", "what of the lab runs"),
        ("dtrace-tree lab status --stack 2026 --json", "the 2026 stack's lab, as JSON"),
    ),
)
def lab_status(ctx: typer.Context, stack: StackName = None, as_json: LabJson = False) -> None:
    """Say what of the lab runs. Exits 0 when the lab's API answers, 5 otherwise."""
    from tracer.ops import lab

    status = lab.status(_paths(stack))
    _print(environment(ctx), status, as_json)
    if not status.api:
        raise typer.Exit(int(ExitCode.ENGINE))


@lab_app.command(
    "down",
    epilog=examples(
        ("dtrace-tree lab down", "remove everything the lab of every stack made"),
        ("dtrace-tree lab down --second-dockerd", "only the second dockerd; the lab stays"),
    ),
)
def lab_down(
    ctx: typer.Context,
    stack: StackName = None,
    second_dockerd: SecondDockerd = False,
    socket_activated: SocketActivated = False,
    rootless: Rootless = False,
) -> None:
    """Remove everything the lab made: containers, daemons, mounts, bridge, sockets, dirs.
    Without --stack (and no $DTRACE_LAB_STACK): the lab of every stack. With
    --second-dockerd, --socket-activated or --rootless: only those, the lab stays."""
    from tracer.ops import lab
    from tracer.ops.labconfig import STACK_ENV, STACKS, LabPaths

    env = environment(ctx)
    named = stack or env.environ.get(STACK_ENV)
    labs = [_paths(named)] if named else [LabPaths.of(s) for s in STACKS]
    done = lab.Teardown()
    only = _more(second_dockerd, socket_activated, rootless)
    for paths in labs:
        one = lab.down(paths, progress=env.note, only=only)
        done.removed += one.removed
        done.left += one.left
    removed = f"removed {len(done.removed)} items" if done.removed else "nothing to remove"
    if done.left:
        raise EngineError(
            f"lab down {removed}, but could not remove: {'; '.join(done.left)}",
            "remove these by hand, or run `dtrace-tree lab down` again",
        )
    env.echo(f"lab is down; {removed}")


def _print(env: Environment, status: LabStatus, as_json: bool) -> None:
    if as_json:
        env.write_json(status.to_json())
        return
    from tracer.untrusted import for_terminal

    if not status.running:
        flag = "" if status.stack == "2023" else f" --stack {status.stack}"
        env.echo(f"lab is not running (start it with: dtrace-tree lab up{flag})")
        return
    lr = {True: "on", False: "off", None: "unknown"}[status.live_restore]
    env.echo(
        f"lab is up: containerd pid {status.containerd_pid}, dockerd pid {status.dockerd_pid}, "
        f"API {'answers' if status.api else 'does not answer'}, live-restore {lr}"
    )
    if status.versions:
        made = ", ".join(f"{for_terminal(k)} {for_terminal(v)}" for k, v in status.versions.items())
        env.echo(f"stack {status.stack}: {made}; storage {for_terminal(status.storage or '?')}")
    for c in status.containers:
        env.echo(
            f"  {for_terminal(c['name'] or '?'):<12} {c['state']:<8} {for_terminal(c['shape'])}"
        )
    if status.podman is not None:
        env.echo("podman (its own storage, no daemon):")
        for c in status.podman:
            env.echo(f"  {for_terminal(c['name']):<15} {c['state']:<8} {for_terminal(c['shape'])}")
    if status.ctr is not None:
        env.echo(f"ctr on the lab's second containerd (pid {status.cri_containerd_pid}, CRI on):")
        for c in status.ctr:
            env.echo(f"  {for_terminal(c['name']):<15} {c['state']:<8} {for_terminal(c['shape'])}")
    for extra in status.extras:
        names = ", ".join(for_terminal(n) for n in extra["containers"]) or "no containers"
        env.echo(f"{extra['title']} (pid {extra['dockerd_pid']}): {names}")
        env.echo(f"  DOCKER_HOST={extra['docker_host']}")
    env.echo(f"DOCKER_HOST={status.docker_host}")
