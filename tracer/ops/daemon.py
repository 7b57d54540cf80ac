"""Start and stop long-running daemons that must outlive the tool.

Daemons are started through a throw-away shell that backgrounds them and exits at once,
so they are never our children: nothing of ours has to reap them, and they are re-parented
exactly like daemons started by an init system. They are stopped by identity (a ProcessId,
tracer/kernel/procfs.py), through a pidfd: a PID reused meanwhile is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

from tracer.kernel import procfs
from tracer.kernel.procfs import ProcessId
from tracer.kernel.root import HostRoot

_SPAWN = 'exec </dev/null; "$@" >>"$DTRACE_LOG" 2>&1 & echo $!'


def start_detached(
    argv: Sequence[str],
    log_path: str,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> int:
    """Start argv in a new session, detached, logging to log_path; return its PID."""
    run_env = dict(os.environ if env is None else env)
    run_env["DTRACE_LOG"] = log_path
    out = subprocess.run(
        ["/bin/sh", "-c", _SPAWN, "sh", *argv],
        env=run_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        start_new_session=True,
    )
    # The backgrounded daemon inherits DTRACE_LOG; harmless, and it keeps the spawn one line.
    return int(out.stdout.strip())


def identify(pid: int | None, root: HostRoot | None = None) -> ProcessId | None:
    """The process that holds pid now (None: none, or a zombie)."""
    return procfs.identify(root or HostRoot(), pid) if pid else None


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll predicate until it is true or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def stop(ident: ProcessId, timeout: float = 20.0, root: HostRoot | None = None) -> bool:
    """SIGTERM that very process, wait up to timeout, then SIGKILL. True if it was running.

    The signals go through a pidfd opened while the process was checked to be the one asked
    for, so a PID reused in between is never signalled."""
    root = root or HostRoot()
    try:
        pidfd = os.pidfd_open(ident.pid)
    except OSError:  # gone already (ESRCH), or a kernel without pidfds
        return False
    try:
        if not ident.alive(root):
            return False  # its PID belongs to another process now
        signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        if not wait_until(lambda: not ident.alive(root), timeout):
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            wait_until(lambda: not ident.alive(root), 5.0)
        return True
    finally:
        os.close(pidfd)
