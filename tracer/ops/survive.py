"""`survive`: restart a daemon and prove that every container kept running.

Before: every running container's init (its ProcessId: PID and start time), shim and
namespace inodes, and the daemons' PIDs. Then the daemon is restarted the way it is managed
(tracer/ops/restart.py), the daemon-down view is traced while it is away, published ports are
probed (tracer/ops/ports.py), and after the API answers again the same facts are compared.
Nothing is restarted when it would lose containers (live-restore off) unless --allow-downtime
asks for exactly that demonstration.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from tracer.errors import EngineError, RefusedError, WaitTimeoutError
from tracer.kernel.procfs import ProcessId
from tracer.kernel.root import HostRoot
from tracer.model.survival import (
    ContainerFate,
    DaemonPids,
    DownView,
    PortOutage,
    RestartHow,
    SurviveReport,
)
from tracer.model.topology import Containerd, Dockerd, Engine, Proxy, Topology
from tracer.ops import daemon, lab, restart
from tracer.ops.ports import PortProbe
from tracer.runtimes import Observation, docker, observe

Progress = Callable[[str], None]
Waiting = Callable[[str], AbstractContextManager[None]]


@dataclass(frozen=True)
class Seen:
    """One running container at one moment."""

    id: str
    name: str | None
    init: ProcessId | None
    shim_pid: int | None
    namespaces: dict[str, int]

    @property
    def init_pid(self) -> int | None:
        return self.init.pid if self.init else None


@dataclass
class Moment:
    daemons: DaemonPids
    containers: dict[str, Seen]
    proxies: list[Proxy]


def moment(obs: Observation, engine: Engine | None) -> Moment:
    if engine is None:
        return Moment(DaemonPids(None, None), {}, [])
    seen = {}
    for c in engine.containers:
        if c.init_pid is None:
            continue
        init = obs.host.procs.get(c.init_pid)
        seen[c.id] = Seen(
            id=c.id,
            name=c.name,
            init=init.ident if init else None,
            shim_pid=c.shim_pid,
            namespaces=dict(c.namespaces),
        )
    return Moment(
        DaemonPids(_pid(engine, Dockerd), _pid(engine, Containerd)),
        containers=seen,
        proxies=[p for c in engine.containers for p in c.proxies],
    )


def _pid(engine: Engine | None, kind: type[Dockerd] | type[Containerd]) -> int | None:
    d = engine.daemon(kind) if engine else None
    return d.pid if d else None


@dataclass
class Options:
    daemon: str = "dockerd"  # or "containerd"
    host: str | None = None  # -H unix:///path; None: the lab
    yes: bool = False
    allow_downtime: bool = False
    timeout: float = 90.0


# -- choosing the engine ---------------------------------------------------------------------


def pick_engine(topo: Topology, host: str | None) -> tuple[Engine, bool]:
    """The engine to restart and whether dtrace-tree owns it (the lab)."""
    paths = lab.LabPaths()
    lab_sockets = {str(paths.docker_sock), str(paths.containerd_sock)}

    def owned(e: Engine) -> bool:
        return any(d.address in lab_sockets for d in e.daemons)

    if host:
        from tracer.views.selection import only_engine

        (engine,) = only_engine(topo, host).engines[:1]
        return engine, owned(engine)
    for e in topo.engines:  # the lab's own dockerd (its extra ones share its containerd)
        if (d := e.daemon(Dockerd)) and d.address == str(paths.docker_sock):
            return e, True
    raise EngineError(
        "the lab is not running, so there is nothing of dtrace-tree's to restart",
        "start it with: dtrace-tree lab up, or pick an engine with -H unix:///var/run/docker.sock",
    )


def restart_policies(engine: Engine, root: HostRoot) -> dict[str, str]:
    """Restart policy per container id, from dockerd's own hostconfig.json files (no API)."""
    dockerd = engine.daemon(Dockerd)
    if not dockerd:
        return {}
    data_root = docker.data_root(dockerd, root)
    out = {}
    for c in engine.containers:
        text = root.read_text(f"{data_root}/containers/{c.id}/hostconfig.json")
        try:
            name = (json.loads(text or "").get("RestartPolicy") or {}).get("Name") or "no"
        except (ValueError, AttributeError):
            continue
        out[c.id] = name
    return out


# -- the run -----------------------------------------------------------------------------------


def run(
    opts: Options,
    progress: Progress = lambda _m: None,
    root: HostRoot | None = None,
    waiting: Waiting = lambda _what: contextlib.nullcontext(),
) -> SurviveReport:
    """Restart and compare. Returns the report; raises for errors before anything changed.
    progress(line) says each step; `with waiting(what):` wraps each wait that may be long."""
    root = root or HostRoot()
    lab.require_root("survive")
    obs = observe(root)
    engine, owned = pick_engine(obs.topology, opts.host)
    label = engine.title
    if not owned and not opts.yes:
        raise RefusedError(
            f"{label} is not the lab: dtrace-tree restarts an engine it does not own only when "
            "told to",
            f"confirm with: dtrace-tree survive -H {opts.host} --daemon {opts.daemon} --yes",
        )
    dockerd, cd = engine.daemon(Dockerd), engine.daemon(Containerd)
    if dockerd is None or not dockerd.reachable:
        why = dockerd.api_error if dockerd else "dockerd is not running"
        raise EngineError(f"the engine at {label} is unreachable ({why}): nothing was restarted")
    if opts.daemon == "containerd" and cd is None:
        raise EngineError(f"no containerd found for {label}: nothing was restarted")

    before = moment(obs, engine)
    policies = restart_policies(engine, root)
    report = SurviveReport(
        daemon=opts.daemon,
        engine=label,
        owned=owned,
        live_restore=dockerd.live_restore,
        before=before.daemons,
    )
    if opts.daemon == "dockerd" and dockerd.live_restore is not True:
        if not opts.allow_downtime:
            report.verdict = "refused"
            report.containers = [_fate(s, None, policies) for s in before.containers.values()]
            report.notes.append(
                "live-restore is off: restarting dockerd would stop every container listed. "
                'Enable it with "live-restore": true in daemon.json, then reload dockerd with '
                "SIGHUP (kill -HUP <dockerd pid>): no restart needed. --allow-downtime restarts "
                "anyway, to demonstrate the loss."
            )
            return report
        report.notes.append("live-restore is off and --allow-downtime was given")

    managed_cd = opts.daemon == "containerd" and cd is not None and cd.managed
    target = dockerd if opts.daemon == "dockerd" else cd
    assert target is not None
    spec = restart.capture(target.pid, root)
    refused = restart.refusal(spec, dockerd.api_socket if target is dockerd else None)
    if refused is not None:  # before the first signal: the engine is untouched
        raise refused
    report.restart = _how(spec, managed_cd)
    if opts.daemon == "dockerd" and cd is not None and cd.managed:
        report.notes.append(
            "containerd is dockerd's child (managed): it stops and starts with dockerd, "
            "while the shims stay"
        )
    if before.proxies and opts.daemon == "dockerd":
        report.notes.append(
            "docker-proxy dies with dockerd (parent-death signal) and is started again "
            "with a new PID: published ports refuse connections meanwhile"
        )
    probe = PortProbe(before.proxies)
    probe.start()
    try:
        progress(f"stopping {spec.name} (pid {spec.pid}) {report.restart.how}")
        t_stop = time.monotonic()
        with waiting(f"waiting for {spec.name} (pid {spec.pid}) to exit"):
            if managed_cd:
                daemon.stop(spec.ident, timeout=30, root=root)
                t_gone = time.monotonic()
            else:
                t_gone = restart.stop(spec, root=root)
        progress(f"{spec.name} is down; tracing the daemon-down view")
        report.during = _during(engine, root)
        if not managed_cd:
            progress(f"starting {spec.name} again")
            restart.start(spec)
        with waiting(f"waiting for the API at {dockerd.api_socket} to answer again"):
            t_back = _wait_back(dockerd, spec, opts, progress, managed_cd, before, root)
        report.downtime_ms = round((t_back - t_gone) * 1000)
        report.api_back_ms = round((t_back - t_stop) * 1000)
        if opts.daemon == "dockerd" and before.proxies:
            probe.wait_open(15)
    finally:
        probe.stop()
    report.ports = [PortOutage(k, round(v)) for k, v in sorted(probe.refused_ms.items())]

    after_obs = observe(root)
    after = moment(after_obs, _same_engine(after_obs.topology, engine))
    report.after = after.daemons
    report.containers = [
        _fate(s, after.containers.get(cid), policies) for cid, s in before.containers.items()
    ]
    report.verdict = "survived" if all(c.survived for c in report.containers) else "lost"
    return report


def _how(spec: restart.DaemonSpec, managed_cd: bool) -> RestartHow:
    if managed_cd:
        how = "by SIGTERM; dockerd starts its managed containerd again"
    elif spec.unit:
        how = f"with {' '.join(spec.systemctl)} ({spec.unit})"
    else:
        how = "by SIGTERM, then the same command line, environment and directory"
    return RestartHow(pid=spec.pid, how=how, unit=spec.unit, cmdline=list(spec.cmdline))


def _during(engine: Engine, root: HostRoot) -> DownView:
    """The daemon-down view: what /proc shows while the daemon is away."""
    topo = observe(root).topology
    ids = {c.id for c in engine.containers if c.init_pid}
    seen = [c for c in topo.containers() if c.id in ids and c.init_pid]
    down = _same_engine(topo, engine)
    return DownView(
        dockerd_pid=_pid(down, Dockerd),
        containerd_pid=_pid(down, Containerd),
        containers_running=len(seen),
        shims=sorted(c.shim_pid for c in seen if c.shim_pid),
        topology=topo,
    )


def _same_engine(topo: Topology, old: Engine) -> Engine | None:
    """The engine that answers on old's sockets (its daemons' PIDs may all be new)."""
    for kind in (Dockerd, Containerd):
        was = old.daemon(kind)
        for e in topo.engines:
            now = e.daemon(kind)
            if was and now and now.address == was.address:
                return e
    return None


def _wait_back(
    dockerd: Dockerd,
    spec: restart.DaemonSpec,
    opts: Options,
    progress: Progress,
    managed_cd: bool,
    before: Moment,
    root: HostRoot,
) -> float:
    """Until the API answers with its container list; retry a start once; never leave it down."""
    from tracer.runtimes.dockerapi import DockerApi

    api_socket = dockerd.api_socket or ""

    def api_back() -> bool:
        if docker.RUNTIME.ask(api_socket).error is not None:
            return False
        if opts.daemon == "containerd":  # dockerd answered throughout: wait for the new containerd
            return (
                restart.find_successor(spec, root) is not None
                and DockerApi(api_socket).reaches_containerd()
            )
        return True

    progress(f"waiting for the API at {api_socket} (timeout {opts.timeout:.0f}s)")
    if daemon.wait_until(api_back, opts.timeout, interval=0.05):
        return time.monotonic()
    if not managed_cd and restart.find_successor(spec, root) is None:
        progress(f"{spec.name} is not running: starting it once more")
        restart.start(spec)
        if daemon.wait_until(api_back, opts.timeout, interval=0.1):
            return time.monotonic()
    running = [
        s.name or s.id[:12] for s in before.containers.values() if s.init and s.init.alive(root)
    ]
    raise WaitTimeoutError(
        f"{spec.name} did not come back within {opts.timeout:.0f}s (twice); "
        f"containers still running: {', '.join(running) or 'none'}",
        recovery_hint(spec),
    )


def recovery_hint(spec: restart.DaemonSpec) -> str:
    """The log, then (last, so that it pastes into a shell as it is) the command to start the
    daemon again."""
    return f"its log: {spec.log}; to recover, start it by hand with: {spec.command()}"


def _fate(before: Seen, after: Seen | None, policies: dict[str, str]) -> ContainerFate:
    """Survived: the very same init process (PID and start time) in the same namespaces."""
    same_pid = bool(after and after.init_pid == before.init_pid)
    same_process = bool(after and before.init is not None and after.init == before.init)
    # Equal inode numbers prove the same namespaces only for the same process: the kernel
    # gives a freed namespace's number to the next one (a restarted container gets its old
    # numbers back, seen here with `docker restart`).
    same_ns = same_process and bool(after and after.namespaces == before.namespaces)
    return ContainerFate(
        id=before.id,
        name=before.name,
        init_pid_before=before.init_pid,
        init_pid_after=after.init_pid if after else None,
        start_time_same=same_process,
        namespaces_same=same_ns,
        shim_pid_before=before.shim_pid,
        shim_pid_after=after.shim_pid if after else None,
        restart_policy=policies.get(before.id),
        survived=same_pid and same_process and same_ns,
    )
