"""Restarting a daemon the way it is managed: systemd, or exactly as it was started.

A daemon under systemd is restarted with `systemctl restart <unit>`. Any other daemon is stopped
with SIGTERM and started again with the same command line, environment and working directory
(read from /proc before it stops; the environment is never printed). Its output goes to the
file its stdout pointed to, if that was a regular file.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass

import psutil

from tracer import daemon
from tracer.errors import EngineError


@dataclass(frozen=True)
class DaemonSpec:
    """How to start a daemon again: captured from /proc while it runs."""

    pid: int
    create_time: float
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str
    log: str
    unit: str | None  # systemd unit that runs it, if systemd is the init system

    @property
    def name(self) -> str:
        return os.path.basename(self.argv[0]) if self.argv else str(self.pid)

    def command(self) -> str:
        """A shell line that starts it again (for people; without the environment)."""
        if self.unit:
            return f"systemctl start {self.unit}"
        cd = f"cd {shlex.quote(self.cwd)}"
        return f"{cd} && {shlex.join(self.argv)} >>{shlex.quote(self.log)} 2>&1 &"


def capture(pid: int) -> DaemonSpec:
    try:
        proc = psutil.Process(pid)
        argv = tuple(proc.cmdline())
        env = proc.environ()
        cwd = proc.cwd()
        created = proc.create_time()
    except psutil.Error as exc:
        raise EngineError(f"cannot read how process {pid} was started: {exc}") from exc
    return DaemonSpec(
        pid=pid,
        create_time=created,
        argv=argv,
        env=env,
        cwd=cwd,
        log=_stdout_file(pid) or f"/tmp/dtrace-tree-{os.path.basename(argv[0])}.log",
        unit=_systemd_unit(pid),
    )


def _stdout_file(pid: int) -> str | None:
    try:
        target = os.readlink(f"/proc/{pid}/fd/1")
    except OSError:
        return None
    return target if target.startswith("/") and os.path.isfile(target) else None


def _systemd_unit(pid: int) -> str | None:
    """The .service unit of pid, when systemd is the init system and the cgroup says so."""
    if not os.path.isdir("/run/systemd/system"):
        return None
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return None
    units = re.findall(r"/([^/\s]+\.service)(?:/|$)", text, flags=re.MULTILINE)
    return units[-1] if units else None


def stop(spec: DaemonSpec, timeout: float = 60.0) -> float:
    """Stop it; returns the monotonic time at which it was gone."""
    if spec.unit:
        subprocess.run(["systemctl", "stop", spec.unit], check=False, capture_output=True)
    else:
        daemon.stop(spec.pid, timeout=timeout)
    if not daemon.wait_until(lambda: not daemon.alive(spec.pid, spec.create_time), timeout):
        raise EngineError(f"{spec.name} (pid {spec.pid}) did not stop within {timeout:.0f}s")
    return time.monotonic()


def start(spec: DaemonSpec) -> None:
    if spec.unit:
        out = subprocess.run(["systemctl", "start", spec.unit], capture_output=True, text=True)
        if out.returncode != 0:
            raise EngineError(f"systemctl start {spec.unit} failed: {out.stderr.strip()}")
        return
    daemon.start_detached(list(spec.argv), spec.log, env=spec.env, cwd=spec.cwd)


def find_successor(spec: DaemonSpec) -> int | None:
    """The PID of the daemon started again: same command line, newer than the old one."""
    for proc in psutil.process_iter(["pid", "cmdline", "create_time", "status"]):
        info = proc.info
        if (
            info["pid"] != spec.pid
            and tuple(info["cmdline"] or ()) == spec.argv
            and (info["create_time"] or 0) > spec.create_time
            and info["status"] != psutil.STATUS_ZOMBIE
        ):
            return int(info["pid"])
    return None
