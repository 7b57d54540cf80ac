"""One tracing session: subscribe, look at the host, run the command (or wait), let the engines
settle, stop. What `trace` records, in the order that loses nothing:

1. look at the host (`look`: what `show` sees: the containers' names, inits and namespaces),
   before subscribing: dockerd runs `runc --version` and `docker-init --version` when its API
   is asked for /info, and those are the tracer's doing, not the traced command's;
2. subscribe (tracer/snapshot/recorder.py), so that every process started from then on has
   a fork event; then read the process table once, for the processes already there (events
   queue in the kernel's buffer meanwhile);
3. run the command as the calling user would (the same user, environment, directory and
   terminal: it is the tracer's own child), with its stdout on stderr when stdout carries JSON
   lines; or wait for Ctrl-C or the duration;
4. after the command exits, keep tracing until the engines have been quiet for `grace`
   seconds (what the command set going: runc start's exit, the shim's delete after a
   `docker rm`), at most `settle` seconds;
5. look again, after the trace, for the names of the containers it made.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from tracer.errors import CommandError
from tracer.kernel import connector
from tracer.kernel.root import HostRoot
from tracer.model.topology import Topology
from tracer.model.trace import KnownContainer, Recording
from tracer.snapshot.host import Host, Proc
from tracer.snapshot.recorder import Recorder
from tracer.snapshot.walk import Walk

SETTLE = 5.0  # seconds: the most to wait for the engines to go quiet after the command
INTERRUPT_WAIT = 10.0  # seconds: after Ctrl-C, how long to wait for the command to end


@dataclass
class Options:
    command: list[str] = field(default_factory=list)
    everything: bool = False
    duration: float | None = None
    grace: float = 0.5
    settle: float = SETTLE
    buffer: int | None = None  # the socket's receive buffer; None: the connector's default
    stdout_to_stderr: bool = False  # the command's stdout: not into a JSON stream


Look = Callable[[], tuple[Host, Topology]]


def record(
    root: HostRoot,
    opts: Options,
    engine: Callable[[str], bool],
    look: Look,
    ready: Callable[[], None] | None = None,
) -> Recording:
    """Trace the command (or until Ctrl-C / the duration) and return what was recorded."""
    host, topo = look()  # before subscribing: asking dockerd's API makes it run helpers
    buffer = connector.DEFAULT_BUFFER if opts.buffer is None else opts.buffer
    rec = Recorder(root, engine, everything=opts.everything, buffer=buffer)
    rec.open()
    try:
        now = Walk(root, ()).processes()  # after: every process that runs already
    except BaseException:
        rec.abort()
        raise
    rec.start(known_processes(now, host))
    ready = ready or (lambda: None)
    status: int | None = None
    interrupted = False
    try:
        if opts.command:
            status, interrupted = _run(opts.command, rec, opts.stdout_to_stderr, ready)
            rec.mark()
            if not interrupted:
                rec.quiet(opts.grace, max(opts.settle, opts.grace))
        else:
            ready()
            _wait(opts.duration)
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        rec.stop()
        raise
    recording = rec.stop()
    # Once more, after the trace (not traced): the containers it made, their names and their
    # docker-proxies. What the first look saw wins: those are the processes the trace met.
    try:
        _, after = look()
    except Exception:  # noqa: BLE001 - the trace is taken: names are a bonus
        after = Topology(engines=[])
    recording.containers = {**known_containers(after), **known_containers(topo)}
    recording.command = list(opts.command) or None
    recording.command_status = status
    recording.host_ns = dict(host.host_ns)
    recording.interrupted = interrupted
    return recording


def _run(
    argv: list[str], rec: Recorder, to_stderr: bool, ready: Callable[[], None]
) -> tuple[int | None, bool]:
    """Run the command; its wait status, and whether Ctrl-C interrupted it."""
    try:
        proc = subprocess.Popen(argv, stdout=sys.stderr if to_stderr else None)
    except FileNotFoundError as exc:
        raise CommandError(f"{argv[0]}: command not found", found=False) from exc
    except OSError as exc:
        raise CommandError(f"{argv[0]}: {exc.strerror or exc}") from exc
    rec.watch(proc.pid)
    ready()
    try:
        _, status = os.waitpid(proc.pid, 0)
        proc.returncode = 0  # reaped here: keep Popen from waiting again
        return status, False
    except KeyboardInterrupt:
        # The terminal sent SIGINT to the command too: give it a moment to end.
        deadline = time.monotonic() + INTERRUPT_WAIT
        while time.monotonic() < deadline:
            try:
                pid, status = os.waitpid(proc.pid, os.WNOHANG)
            except (ChildProcessError, KeyboardInterrupt):
                break
            if pid:
                proc.returncode = 0
                return status, True
            time.sleep(0.05)
        return None, True


def _wait(duration: float | None) -> None:
    deadline = None if duration is None else time.monotonic() + duration
    while deadline is None or time.monotonic() < deadline:
        time.sleep(0.1 if deadline is None else max(0.0, min(0.1, deadline - time.monotonic())))


def known_processes(now: Host, looked: Host) -> dict[int, Proc]:
    """The processes running when the trace began, as the recorder and the views know them,
    with the namespaces the look read (of the same process: same start ticks)."""
    out = {}
    for pid, p in now.procs.items():
        seen = looked.procs.get(pid)
        ns = dict(seen.namespaces) if seen is not None and seen.start == p.start else {}
        out[pid] = replace(p, namespaces=ns)
    return out


def known_containers(topo: Topology) -> dict[str, KnownContainer]:
    """The containers `show` sees: names, inits, shims, their namespaces, docker-proxies."""
    out = {}
    for c in topo.containers():
        out[c.id] = KnownContainer(
            id=c.id,
            name=c.name,
            init_pid=c.init_pid,
            shim_pid=c.shim_pid,
            namespaces=dict(c.namespaces),
            proxies=tuple(p.pid for p in c.proxies),
        )
    return out
