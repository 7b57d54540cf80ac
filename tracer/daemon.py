"""Start and stop long-running daemons that must outlive the tool.

Daemons are started through a throw-away shell that backgrounds them and exits at once,
so they are never our children: nothing of ours has to reap them, and they are re-parented
exactly like daemons started by an init system.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence

import psutil

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


def alive(pid: int | None, create_time: float | None = None) -> bool:
    """Is pid running (and, if create_time is given, still the same process)?"""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(proc.create_time() - create_time) < 0.05
    except psutil.Error:
        return False


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.1) -> bool:
    """Poll predicate until it is true or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def stop(pid: int, timeout: float = 20.0) -> bool:
    """SIGTERM pid, wait up to timeout, then SIGKILL. True if it was running."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    if not wait_until(lambda: not alive(pid), timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not alive(pid), 5.0)
    return True
