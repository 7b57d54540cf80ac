"""Every container runtime on the host, behind one small API: `observe` and `explain`.

`observe` walks the host once (tracer/snapshot/walk.py), asks each engine's API in a thread
of its own while the walk reads the rest (the API answers from another process: the thread
waits on a socket, not on the GIL), and builds the topology with each runtime in turn. The
runtimes are registered in the order they build (RUNTIMES, then any `register`ed): Docker
first takes each dockerd, the containerd it uses and the shims of its namespace; podman the
conmons it started; CRI the shims that hold pods; containerd then the containerds and shims
left, one engine per containerd namespace. The outputs find an engine's runtime by its name
(`runtime_of`), to ask it how its engines are drawn.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from tracer.kernel.root import HostRoot
from tracer.model.topology import ApiView, Container, Engine, Topology
from tracer.runtimes import docker, podman
from tracer.runtimes.base import Found, Runtime, RuntimeBase
from tracer.runtimes.containerd import cri, engine
from tracer.runtimes.flags import same_socket
from tracer.snapshot.host import Host, Proc
from tracer.snapshot.walk import AlsoEach, take

RUNTIMES: tuple[Runtime, ...] = (docker.RUNTIME, podman.RUNTIME, cri.RUNTIME, engine.RUNTIME)
_registered: list[Runtime] = list(RUNTIMES)
_UNKNOWN = RuntimeBase()


def runtimes() -> tuple[Runtime, ...]:
    """Every registered runtime, in the order they build."""
    return tuple(_registered)


def register(rt: Runtime, before: str | None = None) -> None:
    """Add a runtime, last or before the one named (to take what that one would take: a
    runtime that claims some conmons goes before podman, which takes only its own anyway)."""
    if any(r.name == rt.name for r in _registered):
        raise ValueError(f"a runtime named {rt.name!r} is already registered")
    names = [r.name for r in _registered]
    _registered.insert(names.index(before) if before in names else len(names), rt)


def unregister(name: str) -> None:
    _registered[:] = [r for r in _registered if r.name != name]


@contextlib.contextmanager
def registered(rt: Runtime, before: str | None = None) -> Iterator[Runtime]:
    """A runtime registered for the length of a with block (a test's fake runtime)."""
    register(rt, before)
    try:
        yield rt
    finally:
        unregister(rt.name)


def cli_programs() -> frozenset[str]:
    """The programs people drive the registered runtimes with (docker, podman, ctr...)."""
    return frozenset(p for rt in _registered for p in rt.look.cli)


def daemon_roles() -> frozenset[str]:
    """The daemons the registered runtimes chain (dockerd, containerd, kubelet...)."""
    return frozenset(role for rt in _registered for role in rt.look.chain)


def quiet_roles() -> frozenset[str]:
    """The daemons whose children tell nothing of containers (Look.quiet)."""
    return frozenset(role for rt in _registered for role in rt.look.quiet)


def runtime_of(engine: Engine | str) -> Runtime:
    """The runtime that built an engine (by its name); for a name no runtime here has (a
    snapshot saved by another version), a plain one that draws the engine by its daemons."""
    name = engine if isinstance(engine, str) else engine.runtime
    return next((r for r in _registered if r.name == name), _UNKNOWN)


@dataclass
class Observation:
    """One look at the host: the snapshot, and the topology built from it."""

    host: Host
    topology: Topology


def observe(
    root: HostRoot | None = None,
    only: str | None = None,
    also: AlsoEach | None = None,
) -> Observation:
    """Every engine on the host. With only (a unix:// URL), only that engine's API is asked:
    tracer.views.selection.only_engine then keeps that engine alone. also(pinned, uid) is
    called for each process as the walk reads it (`ns --all` reads every namespace in the
    same pass, while the APIs answer: on a busy host dockerd takes seconds to list its
    containers)."""
    root = root or HostRoot()
    asking = _Asking()

    every = runtimes()

    def ask(host: Host, daemon: Proc) -> None:  # as soon as the walk has read a daemon
        for rt in every:
            sock = rt.endpoint(host, daemon)
            if sock and (not only or same_socket(only, sock)):
                asking.ask(rt, daemon.pid, root.path(sock))  # a host path, seen from here

    host = take(root, every, on_daemon=ask, also=also)
    return Observation(host, build(host, asking.answers()))


class _Asking:
    """Each API asked by a thread of its own, from ask() until answers(). The threads wait on
    the engines' sockets while the walk goes on: at 300 containers dockerd takes ~50-120 ms to
    list them, which the walk hides when the API is asked as soon as dockerd is met."""

    def __init__(self) -> None:
        self._answers: dict[int, ApiView] = {}
        self._threads: list[threading.Thread] = []

    def ask(self, rt: Runtime, pid: int, endpoint: str) -> None:
        thread = threading.Thread(
            target=self._ask, args=(rt, pid, endpoint), name=f"api-{pid}", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def _ask(self, rt: Runtime, pid: int, endpoint: str) -> None:
        try:
            self._answers[pid] = rt.ask(endpoint)
        except Exception as exc:  # noqa: BLE001 - a thread must not die silently: say why
            self._answers[pid] = ApiView(error=f"{type(exc).__name__}: {exc}")

    def answers(self) -> dict[int, ApiView]:
        for thread in self._threads:
            thread.join()
        return self._answers


def build(host: Host, answers: Mapping[int, ApiView] | None = None) -> Topology:
    """Every engine on the host, from the snapshot and the APIs' answers (by daemon PID)."""
    found = Found()
    for rt in runtimes():
        rt.build(host, answers or {}, found)
    # By socket path, not by PID: the order stays when a daemon restarts.
    engines = sorted(found.engines, key=lambda e: (e.title, [d.pid for d in e.daemons]))
    topo = Topology(engines=engines, orphans=found.orphans, host=_host_json(host))
    topo.notes += found.notes
    denied = sum(1 for p in host.procs.values() if p.denied)
    if denied and host.euid != 0:
        topo.notes.append(
            f"{denied} processes could not be fully read: run as root (or with CAP_SYS_PTRACE) "
            "for the full view"
        )
    if not topo.engines and not topo.orphans:
        topo.notes.append(
            "no container engine found on this host (no dockerd, containerd, shim or conmon)"
        )
    return topo


def explain(
    topo: Topology, container: Container, root: HostRoot | None = None, asked: bool = True
) -> tuple[dict[str, str], Mapping[str, str]]:
    """Why the container shares what it shares: the options its engine was given (asked of
    the engine, unless asked is False: a saved snapshot), and what its runtime shares with the
    host by default."""
    engine = topo.engine_of(container)
    if engine is None:
        return {}, {}
    rt = runtime_of(engine)
    names = {c.id: c.label for c in topo.containers()}
    told = rt.explain(engine, container, names, root or HostRoot()) if asked else {}
    return told, rt.usually_shared


def _host_json(host: Host) -> dict[str, Any]:
    return {
        "hostname": host.hostname,
        "taken_at": dt.datetime.fromtimestamp(host.taken_at, dt.UTC).isoformat(timespec="seconds"),
        "root": host.euid == 0,
        "processes": len(host.procs),
        "namespaces": dict(host.host_ns),
        "namespaces_from": host.host_ns_source,
    }
