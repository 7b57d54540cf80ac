"""Restarting a daemon the way it is managed: systemd, or exactly as it was started.

A daemon under systemd is restarted with `systemctl stop|start <unit>` (`systemctl --user -M
<user>@` for a unit of a user's manager: rootless Docker). A daemon that a service manager
started (`-H fd://`, LISTEN_FDS/LISTEN_PID in its environment, a unit in its cgroup) but that
no systemd PID 1 can restart is refused before anything is touched: started again by hand, it
would not get its listening socket back (socket activation passes it as fd 3). Any other
daemon is stopped with SIGTERM and started again with the same command line, environment and
working directory (read from /proc before it stops, through one pinned fd so that all of it
belongs to that very process; the environment is never printed). Its output goes to the file
its stdout pointed to, if that was a regular file.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from dataclasses import dataclass

from tracer.errors import EngineError, RefusedError
from tracer.kernel import procfs
from tracer.kernel.procfs import ProcessId
from tracer.kernel.root import HostRoot
from tracer.ops import daemon


@dataclass(frozen=True)
class DaemonSpec:
    """How to start a daemon again: captured from /proc while it runs."""

    ident: ProcessId
    cmdline: tuple[str, ...]
    env: dict[str, str]
    cwd: str
    log: str
    unit: str | None  # systemd unit that runs it, if systemd is the init system
    manager: Manager | None = None  # what says a service manager started it

    @property
    def systemctl(self) -> list[str]:
        """systemctl, talking to the manager that runs the unit (a user's, for rootless)."""
        user = self.manager.user if self.manager else None
        return ["systemctl", "--user", "-M", f"{user}@"] if user else ["systemctl"]

    @property
    def pid(self) -> int:
        return self.ident.pid

    @property
    def name(self) -> str:
        return os.path.basename(self.cmdline[0]) if self.cmdline else str(self.pid)

    def command(self) -> str:
        """A shell line that starts it again (for people; without the environment)."""
        if self.unit:
            return shlex.join([*self.systemctl, "start", self.unit])
        cd = f"cd {shlex.quote(self.cwd)}"
        return f"{cd} && {shlex.join(self.cmdline)} >>{shlex.quote(self.log)} 2>&1 &"


def capture(pid: int, root: HostRoot | None = None) -> DaemonSpec:
    """Everything needed to start pid again, read through one fd on its /proc directory."""
    root = root or HostRoot()
    try:
        with procfs.Pinned(root, pid) as p:
            ident = p.ident
            cmdline = p.cmdline()
            env = procfs.environ(p.read("environ"))
            cwd = p.readlink("cwd")
            stdout = _stdout_file(p, root)
            cgroup = p.read("cgroup").decode(errors="replace")
    except OSError as exc:
        raise EngineError(f"cannot read how process {pid} was started: {exc.strerror}") from exc
    if not cmdline:
        raise EngineError(f"cannot read how process {pid} was started: it is gone")
    return DaemonSpec(
        ident=ident,
        cmdline=cmdline,
        env=env,
        cwd=cwd,
        log=stdout or f"/tmp/dtrace-tree-{os.path.basename(cmdline[0])}.log",
        unit=_systemd_unit(cgroup) if root.lexists("/run/systemd/system") else None,
        manager=manager_of(pid, cmdline, env, cgroup, root),
    )


@dataclass(frozen=True)
class Manager:
    """A service manager started the daemon: how we know, and which unit and user it is."""

    evidence: tuple[str, ...]
    unit: str | None = None  # the systemd unit in its cgroup
    user: str | None = None  # the user whose `systemd --user` runs that unit


def manager_of(
    pid: int, argv: tuple[str, ...], env: dict[str, str], cgroup: str, root: HostRoot
) -> Manager | None:
    """Did a service manager start it? `-H fd://` (dockerd takes its API socket from the
    manager), LISTEN_FDS with LISTEN_PID = its own PID (sd_listen_fds(3)), or a .service unit
    in its cgroup (/system.slice/docker.service; a user's manager: user@<uid>.service/…)."""
    from tracer.runtimes.flags import flag_values

    evidence = []
    if any(h.startswith("fd://") for h in flag_values(argv, "-H", "--host")):
        evidence.append("-H fd://")
    if env.get("LISTEN_FDS") and env.get("LISTEN_PID") == str(pid):
        evidence.append(f"LISTEN_FDS={env['LISTEN_FDS']} and LISTEN_PID={pid} in its environment")
    unit = _systemd_unit(cgroup)
    user = None
    if unit:
        evidence.append(f"systemd unit {unit} in its cgroup")
        owner = re.search(r"/user@(\d+)\.service/", cgroup)
        user = _user_name(int(owner.group(1)), root) if owner else None
    if not evidence:
        return None
    return Manager(tuple(evidence), unit, user)


def _user_name(uid: int, root: HostRoot) -> str:
    for line in (root.read_text("/etc/passwd") or "").splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[2] == str(uid):
            return fields[0]
    return str(uid)


def refusal(spec: DaemonSpec, listen: str | None = None) -> RefusedError | None:
    """Why restarting spec by hand would break it, with what to run instead; None if it can
    be restarted (by its systemd unit, or by hand as it was started)."""
    m = spec.manager
    if m is None or spec.unit:
        return None
    if m.unit:
        what = f"restart it with: systemctl {'--user ' if m.user else ''}restart {m.unit}"
    elif listen:
        what = f"to restart it: kill {spec.pid}, then start it as it was started: " + shlex.join(
            ["systemd-socket-activate", "-l", listen, *spec.cmdline]
        )
    else:
        what = "restart it with the service manager that started it"
    return RefusedError(
        f"{spec.name} (pid {spec.pid}) was started by a service manager "
        f"({'; '.join(m.evidence)}) and systemd is not PID 1 here: restarted by hand it would "
        "not get its listening socket back, so nothing was touched",
        what,
    )


def _stdout_file(p: procfs.Pinned, root: HostRoot) -> str | None:
    try:
        target = p.readlink("fd/1")
    except OSError:
        return None
    return target if target.startswith("/") and os.path.isfile(root.path(target)) else None


def _systemd_unit(cgroup: str) -> str | None:
    """The .service unit in a /proc/<pid>/cgroup text (systemd being the init system)."""
    units = re.findall(r"/([^/\s]+\.service)(?:/|$)", cgroup, flags=re.MULTILINE)
    return units[-1] if units else None


def stop(spec: DaemonSpec, timeout: float = 60.0, root: HostRoot | None = None) -> float:
    """Stop it; returns the monotonic time at which it was gone."""
    root = root or HostRoot()
    if spec.unit:
        subprocess.run([*spec.systemctl, "stop", spec.unit], check=False, capture_output=True)
    else:
        daemon.stop(spec.ident, timeout=timeout, root=root)
    if not daemon.wait_until(lambda: not spec.ident.alive(root), timeout):
        raise EngineError(f"{spec.name} (pid {spec.pid}) did not stop within {timeout:.0f}s")
    return time.monotonic()


def start(spec: DaemonSpec) -> None:
    if spec.unit:
        argv = [*spec.systemctl, "start", spec.unit]
        out = subprocess.run(argv, capture_output=True, text=True)
        if out.returncode != 0:
            raise EngineError(f"{shlex.join(argv)} failed: {out.stderr.strip()}")
        return
    daemon.start_detached(list(spec.cmdline), spec.log, env=spec.env, cwd=spec.cwd)


def find_successor(spec: DaemonSpec, root: HostRoot | None = None) -> ProcessId | None:
    """The daemon started again: same command line, started after the old one, alive."""
    root = root or HostRoot()
    for pid in root.pids():
        if pid == spec.pid:
            continue
        try:
            with procfs.Pinned(root, pid) as p:
                if p.stat.state == "Z" or p.stat.start_ticks < spec.ident.start:
                    continue
                if p.cmdline() == spec.cmdline:
                    return p.ident
        except OSError:
            continue
    return None
