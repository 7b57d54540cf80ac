"""`survive`: restart a daemon and prove that every container kept running.

Before: every running container's init PID, start time, shim and namespace inodes, and the
daemons' PIDs. Then the daemon is restarted the way it is managed (tracer.restart), the
daemon-down view is traced while it is away, published ports are probed, and after the API
answers again the same facts are compared. Nothing is restarted when it would lose containers
(live-restore off) unless --allow-downtime asks for exactly that demonstration.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tracer import argv as args
from tracer import daemon, lab, restart
from tracer.errors import EngineError, ExitCode, TimeoutError_, TracerError
from tracer.model import Engine, Proxy, Topology

Progress = Callable[[str], None]


class RefusedError(TracerError):
    exit_code = ExitCode.REFUSED


@dataclass(frozen=True)
class Seen:
    """One running container at one moment."""

    id: str
    name: str | None
    init_pid: int | None
    init_start: float | None
    shim_pid: int | None
    namespaces: dict[str, int]


@dataclass
class Moment:
    dockerd_pid: int | None
    containerd_pid: int | None
    containers: dict[str, Seen]
    proxies: list[Proxy]


def moment(engine: Engine | None) -> Moment:
    if engine is None:
        return Moment(None, None, {}, [])
    seen = {}
    for c in engine.containers:
        if c.init_pid is None:
            continue
        init = next((p for p in c.processes if p.pid == c.init_pid), None)
        seen[c.id] = Seen(
            id=c.id,
            name=c.name,
            init_pid=c.init_pid,
            init_start=init.create_time if init else None,
            shim_pid=c.shim_pid,
            namespaces=dict(c.namespaces),
        )
    return Moment(
        dockerd_pid=engine.dockerd.pid if engine.dockerd else None,
        containerd_pid=engine.containerd.pid if engine.containerd else None,
        containers=seen,
        proxies=[p for c in engine.containers for p in c.proxies],
    )


@dataclass
class Options:
    daemon: str = "dockerd"  # or "containerd"
    host: str | None = None  # -H unix:///path; None: the lab
    yes: bool = False
    allow_downtime: bool = False
    timeout: float = 90.0


@dataclass
class PortProbe:
    """Connects to each published port every 20 ms while the daemon restarts."""

    proxies: list[Proxy]
    refused_ms: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _targets(self) -> dict[str, tuple[str, int]]:
        """Each published TCP port: its name in the report -> where to connect (a wildcard
        host IP is reached on loopback)."""
        return {
            f"{p.proto} {p.host_ip}:{p.host_port}": (
                "127.0.0.1" if p.host_ip in ("0.0.0.0", "") else p.host_ip,
                p.host_port,
            )
            for p in self.proxies
            if p.proto == "tcp"
        }

    def _run(self) -> None:
        targets = self._targets()
        down_since: dict[str, float | None] = dict.fromkeys(targets)
        self.refused_ms.update(dict.fromkeys(targets, 0.0))
        while not self._stop.is_set():
            for k, (host, port) in targets.items():
                ok = _connects(host, port)
                now = time.monotonic()
                since = down_since[k]
                if not ok and since is None:
                    down_since[k] = now
                elif ok and since is not None:
                    self.refused_ms[k] += (now - since) * 1000
                    down_since[k] = None
            self._stop.wait(0.02)
        for k, since in down_since.items():
            if since is not None:
                self.refused_ms[k] += (time.monotonic() - since) * 1000

    def wait_open(self, timeout: float) -> bool:
        """Until every probed port accepts connections again (docker-proxy respawned)."""
        targets = self._targets().values()
        return daemon.wait_until(
            lambda: all(_connects(host, port) for host, port in targets), timeout, interval=0.05
        )


def _connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


# -- choosing the engine ---------------------------------------------------------------------


def pick_engine(topo: Topology, host: str | None) -> tuple[Engine, bool]:
    """The engine to restart and whether dtrace-tree owns it (the lab)."""
    paths = lab.LabPaths()
    lab_sockets = {str(paths.docker_sock), str(paths.containerd_sock)}

    def owned(e: Engine) -> bool:
        return bool(
            (e.dockerd and e.dockerd.api_socket in lab_sockets)
            or (e.containerd and e.containerd.socket in lab_sockets)
        )

    if host:
        from tracer.trace import only_engine

        (engine,) = only_engine(topo, host).engines[:1]
        return engine, owned(engine)
    for e in topo.engines:
        if e.dockerd and owned(e):
            return e, True
    raise EngineError(
        "the lab is not running, so there is nothing of dtrace-tree's to restart",
        "start it with: dtrace-tree lab up, or pick an engine with -H unix:///var/run/docker.sock",
    )


def restart_policies(engine: Engine) -> dict[str, str]:
    """Restart policy per container id, from dockerd's own hostconfig.json files (no API)."""
    if not engine.dockerd:
        return {}
    data_root = args.flag_value(engine.dockerd.cmdline, "--data-root") or "/var/lib/docker"
    out = {}
    for c in engine.containers:
        try:
            with open(f"{data_root}/containers/{c.id}/hostconfig.json", encoding="utf-8") as f:
                name = (json.load(f).get("RestartPolicy") or {}).get("Name") or "no"
        except (OSError, ValueError, AttributeError):
            continue
        out[c.id] = name
    return out


# -- the run -----------------------------------------------------------------------------------


def run(opts: Options, progress: Progress = lambda _m: None) -> dict[str, Any]:
    """Restart and compare. Returns the report; raises for errors before anything changed."""
    from tracer.trace import trace

    lab.require_root("survive")
    topo = trace()
    engine, owned = pick_engine(topo, opts.host)
    label = engine.title
    if not owned and not opts.yes:
        raise RefusedError(
            f"{label} is not the lab: dtrace-tree restarts an engine it does not own only when "
            "told to",
            f"confirm with: dtrace-tree survive -H {opts.host} --daemon {opts.daemon} --yes",
        )
    if engine.dockerd is None or not engine.dockerd.reachable:
        why = engine.dockerd.api_error if engine.dockerd else "dockerd is not running"
        raise EngineError(f"the engine at {label} is unreachable ({why}): nothing was restarted")
    if opts.daemon == "containerd" and engine.containerd is None:
        raise EngineError(f"no containerd found for {label}: nothing was restarted")

    before = moment(engine)
    policies = restart_policies(engine)
    report: dict[str, Any] = {
        "daemon": opts.daemon,
        "engine": label,
        "owned": owned,
        "live_restore": engine.dockerd.live_restore,
        "verdict": None,
        "before": {"dockerd_pid": before.dockerd_pid, "containerd_pid": before.containerd_pid},
        "after": None,
        "downtime_ms": None,
        "api_back_ms": None,
        "restart": None,
        "ports": [],
        "during": None,
        "containers": [],
        "notes": [],
    }
    if opts.daemon == "dockerd" and engine.dockerd.live_restore is not True:
        if not opts.allow_downtime:
            report["verdict"] = "refused"
            report["containers"] = [_row(s, None, policies) for s in before.containers.values()]
            report["notes"].append(
                "live-restore is off: restarting dockerd would stop every container listed. "
                'Enable it with "live-restore": true in daemon.json, then reload dockerd with '
                "SIGHUP (kill -HUP <dockerd pid>): no restart needed. --allow-downtime restarts "
                "anyway, to demonstrate the loss."
            )
            return report
        report["notes"].append("live-restore is off and --allow-downtime was given")

    target_pid, managed_cd = _target(engine, opts.daemon)
    spec = restart.capture(target_pid)
    report["restart"] = _how(spec, managed_cd)
    if opts.daemon == "dockerd" and engine.containerd and engine.containerd.managed:
        report["notes"].append(
            "containerd is dockerd's child (managed): it stops and starts with dockerd, "
            "while the shims stay"
        )
    if before.proxies and opts.daemon == "dockerd":
        report["notes"].append(
            "docker-proxy dies with dockerd (parent-death signal) and is started again "
            "with a new PID: published ports refuse connections meanwhile"
        )
    probe = PortProbe(before.proxies)
    probe.start()
    try:
        progress(f"stopping {spec.name} (pid {spec.pid}) {report['restart']['how']}")
        t_stop = time.monotonic()
        t_gone = restart.stop(spec) if not managed_cd else _kill_managed(spec)
        progress(f"{spec.name} is down; tracing the daemon-down view")
        report["during"] = _during(engine)
        if not managed_cd:
            progress(f"starting {spec.name} again")
            restart.start(spec)
        t_back = _wait_back(engine, spec, opts, progress, managed_cd)
        report["downtime_ms"] = round((t_back - t_gone) * 1000)
        report["api_back_ms"] = round((t_back - t_stop) * 1000)
        if opts.daemon == "dockerd" and before.proxies:
            probe.wait_open(15)
    finally:
        probe.stop()
    report["ports"] = [
        {"port": k, "refused_ms": round(v)} for k, v in sorted(probe.refused_ms.items())
    ]

    after_topo = trace()
    after_engine = _same_engine(after_topo, engine)
    after = moment(after_engine)
    report["after"] = {"dockerd_pid": after.dockerd_pid, "containerd_pid": after.containerd_pid}
    rows = [_row(s, after.containers.get(cid), policies) for cid, s in before.containers.items()]
    report["containers"] = rows
    report["verdict"] = "survived" if all(r["survived"] for r in rows) else "lost"
    return report


def _target(engine: Engine, which: str) -> tuple[int, bool]:
    if which == "dockerd":
        assert engine.dockerd is not None
        return engine.dockerd.pid, False
    assert engine.containerd is not None
    return engine.containerd.pid, engine.containerd.managed


def _how(spec: restart.DaemonSpec, managed_cd: bool) -> dict[str, Any]:
    if managed_cd:
        how = "by SIGTERM; dockerd starts its managed containerd again"
    elif spec.unit:
        how = f"with systemctl ({spec.unit})"
    else:
        how = "by SIGTERM, then the same command line, environment and directory"
    return {"pid": spec.pid, "how": how, "unit": spec.unit, "cmdline": list(spec.argv)}


def _kill_managed(spec: restart.DaemonSpec) -> float:
    daemon.stop(spec.pid, timeout=30)
    return time.monotonic()


def _during(engine: Engine) -> dict[str, Any]:
    """The daemon-down view: what /proc shows while the daemon is away."""
    from tracer.trace import trace

    topo = trace()
    ids = {c.id for c in engine.containers if c.init_pid}
    seen = [c for c in topo.containers() if c.id in ids and c.init_pid]
    down = _same_engine(topo, engine)
    return {
        "dockerd_pid": down.dockerd.pid if down and down.dockerd else None,
        "containerd_pid": down.containerd.pid if down and down.containerd else None,
        "containers_running": len(seen),
        "shims": sorted(c.shim_pid for c in seen if c.shim_pid),
        "topology": topo.to_json(),
    }


def _same_engine(topo: Topology, old: Engine) -> Engine | None:
    for e in topo.engines:
        if old.dockerd and e.dockerd and e.dockerd.api_socket == old.dockerd.api_socket:
            return e
    for e in topo.engines:
        if old.containerd and e.containerd and e.containerd.socket == old.containerd.socket:
            return e
    return None


def _wait_back(
    engine: Engine,
    spec: restart.DaemonSpec,
    opts: Options,
    progress: Progress,
    managed_cd: bool,
) -> float:
    """Until the API answers with its container list; retry a start once; never leave it down."""
    assert engine.dockerd is not None
    api_socket = engine.dockerd.api_socket

    def api_back() -> bool:
        from tracer.trace import query_api

        view = query_api(api_socket)
        if view.error is not None:
            return False
        if opts.daemon == "containerd":  # dockerd answered throughout: wait for the new containerd
            return restart.find_successor(spec) is not None and _reconnected(api_socket)
        return True

    progress(f"waiting for the API at {api_socket} (timeout {opts.timeout:.0f}s)")
    if daemon.wait_until(api_back, opts.timeout, interval=0.05):
        return time.monotonic()
    if not managed_cd and restart.find_successor(spec) is None:
        progress(f"{spec.name} is not running: starting it once more")
        restart.start(spec)
        if daemon.wait_until(api_back, opts.timeout, interval=0.1):
            return time.monotonic()
    running = [c.label for c in engine.containers if c.init_pid and daemon.alive(c.init_pid)]
    raise TimeoutError_(
        f"{spec.name} did not come back within {opts.timeout:.0f}s (twice); "
        f"containers still running: {', '.join(running) or 'none'}",
        f"to recover, start it by hand: {spec.command()}; its log: {spec.log}",
    )


def _reconnected(api_socket: str | None) -> bool:
    from tracer.dockerapi import Api

    try:
        with Api(f"unix://{api_socket}") as api:
            return api.reaches_containerd()
    except EngineError:
        return False


def _row(before: Seen, after: Seen | None, policies: dict[str, str]) -> dict[str, Any]:
    same_pid = bool(after and after.init_pid == before.init_pid)
    same_start = bool(
        after
        and before.init_start is not None
        and after.init_start is not None
        and abs(after.init_start - before.init_start) < 0.011
    )
    same_ns = bool(after and after.namespaces == before.namespaces)
    return {
        "id": before.id,
        "name": before.name,
        "init_pid_before": before.init_pid,
        "init_pid_after": after.init_pid if after else None,
        "start_time_same": same_start,
        "namespaces_same": same_ns,
        "shim_pid_before": before.shim_pid,
        "shim_pid_after": after.shim_pid if after else None,
        "restart_policy": policies.get(before.id),
        "survived": same_pid and same_start and same_ns,
    }
