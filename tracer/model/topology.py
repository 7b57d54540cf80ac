"""What `show` knows: engines, their daemons, containers, processes and the edges between them.

Plain data, no I/O. An `Engine` is runtime-neutral: the runtime that found it (tracer/runtimes)
and its daemons as a list, top of the chain first (Docker: dockerd, then its containerd; a bare
containerd: just containerd); each daemon is a dataclass of its own role. JSON in and out is
in tracer/model/show_json.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

RUNNING_STATES = ("running", "paused", "restarting")
# What the engine's API says of a container, in the words docker ps uses for the unusual ones.
STATE_MARKS = {"paused": "Paused", "restarting": "Restarting", "removing": "Removal In Progress",
               "dead": "Dead", "created": "Created"}  # fmt: skip

_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key in which numbers count as numbers: `s-2` before `s-10`, as people count."""
    return tuple((1, int(part)) if part.isdigit() else (0, part) for part in _DIGITS.split(text))


# -- what an engine's API said (one list call, one info call) --------------------------------


@dataclass(frozen=True)
class ApiContainer:
    """What one list call tells about a container (tracer/runtimes/dockerapi.py makes it)."""

    id: str
    name: str | None
    image: str | None
    state: str
    labels: dict[str, str]
    ips: tuple[str, ...]


@dataclass
class ApiView:
    """What one engine's API said (or why it said nothing)."""

    containers: Sequence[ApiContainer] | None = None
    live_restore: bool | None = None
    error: str | None = None


# -- processes and containers ---------------------------------------------------------------


@dataclass
class Process:
    pid: int
    ppid: int
    cmdline: list[str]
    role: str  # init | child | exec
    name: str = ""
    uid: int | None = None
    create_time: float = 0.0
    namespaces: dict[str, int] = field(default_factory=dict)
    start: int | None = None  # clock ticks after boot: with pid, the process's identity

    def same_process(self, other: Process) -> bool:
        """The one identity (tracer/kernel/procfs.py ProcessId): PID and start in clock ticks;
        snapshots written before `start` existed compare their create_time, made from the
        same ticks by the same formula."""
        if self.pid != other.pid:
            return False
        if self.start is not None and other.start is not None:
            return self.start == other.start
        return self.create_time == other.create_time


@dataclass
class Proxy:
    pid: int
    proto: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int

    @property
    def host_address(self) -> str:
        """`127.0.0.1:18080`, `[::]:18080` (an IPv6 address in brackets, as docker ps writes
        it), `:18080` when the proxy names no address."""
        return _address(self.host_ip, self.host_port)

    @property
    def container_address(self) -> str:
        return _address(self.container_ip, self.container_port)


def _address(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


SHIM = "containerd-shim"  # a containerd shim: Docker, bare containerd, one per CRI pod
CONMON = "conmon"  # podman's (and CRI-O's) monitor: one per container


@dataclass
class Monitor:
    """The process that holds a container and is its init's parent: a containerd shim (its
    containerd's -namespace and -address) or conmon (neither). It re-parents to PID 1 or a
    subreaper, so that the daemons above it can restart."""

    pid: int
    ppid: int
    cmdline: list[str]
    namespace: str | None
    address: str | None
    reparented: bool
    create_time: float = 0.0
    kind: str = SHIM


Shim = Monitor  # the name schema 1 gives it


@dataclass
class Pod:
    """The pod a container belongs to (CRI: from the OCI annotations in its bundle)."""

    id: str  # the sandbox's container id
    name: str | None = None
    namespace: str | None = None  # the Kubernetes namespace (not containerd's)
    uid: str | None = None
    sandbox: bool = False  # this container is the pod's sandbox (pause), holding its namespaces


class Labelled:
    """A container as reports call it: its name, else its short id."""

    id: str
    name: str | None

    @property
    def label(self) -> str:
        return self.name or self.id[:12]


@dataclass
class Container:
    id: str
    name: str | None
    image: str | None
    state: str
    init_pid: int | None = None
    shim_pid: int | None = None  # the containerd shim's (None under conmon): schema 1's field
    monitor: Monitor | None = None
    processes: list[Process] = field(default_factory=list)
    proxies: list[Proxy] = field(default_factory=list)
    namespaces: dict[str, int] = field(default_factory=dict)
    pod: Pod | None = None

    @property
    def shim(self) -> Monitor | None:
        """Its monitor when that is a containerd shim."""
        m = self.monitor
        return m if m is not None and m.kind == SHIM else None

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def running(self) -> bool:
        return self.init_pid is not None or self.state in RUNNING_STATES

    @property
    def label(self) -> str:
        return self.name or self.short_id


# -- daemons -----------------------------------------------------------------------------------


@dataclass
class Daemon:
    """A long-lived process of an engine. Each role is a subclass with its own facts."""

    ROLE: ClassVar[str] = "daemon"

    pid: int
    cmdline: list[str]

    @property
    def role(self) -> str:
        """What it is in its engine's chain (`dockerd`, `containerd`...)."""
        return self.ROLE

    @property
    def address(self) -> str | None:
        """The socket it serves, by which people name the engine."""
        return None


@dataclass
class Dockerd(Daemon):
    ROLE: ClassVar[str] = "dockerd"

    api_socket: str | None = None
    reachable: bool = False
    live_restore: bool | None = None
    api_error: str | None = None
    containerd_namespace: str = "moby"

    @property
    def address(self) -> str | None:
        return self.api_socket


@dataclass
class Containerd(Daemon):
    ROLE: ClassVar[str] = "containerd"

    socket: str = "?"
    managed: bool = False
    proven: bool = False  # the socket is a listener held by this very process
    connected: bool | None = None  # the daemon above holds a socket whose peer this one holds

    @property
    def address(self) -> str | None:
        return self.socket


@dataclass
class Kubelet(Daemon):
    """The CRI client of a containerd (its --container-runtime-endpoint)."""

    ROLE: ClassVar[str] = "kubelet"

    endpoint: str | None = None
    connected: bool | None = None  # holds a socket whose peer the containerd holds

    @property
    def address(self) -> str | None:
        return None  # named by the containerd it talks to


@dataclass
class Service(Daemon):
    """A daemon of a role the model has no class for (CRI-O's crio, a test's fake runtime's):
    its role by name, and the socket it serves; what else its runtime knows of it goes in the
    engine's facts."""

    kind: str = "daemon"
    socket: str | None = None

    @property
    def role(self) -> str:
        return self.kind

    @property
    def address(self) -> str | None:
        return self.socket


DAEMON_TYPES: tuple[type[Daemon], ...] = (Kubelet, Dockerd, Containerd)
D = TypeVar("D", bound=Daemon)


@dataclass
class Edge:
    src: int
    dst: int
    kind: str  # parent | socket | runtime-root | shim-address | reparented
    via: str = ""


@dataclass
class Engine:
    """One engine: its daemons (top of the chain first), containers and proven edges."""

    runtime: str  # the name of the runtime that found it (tracer/runtimes), as plain text
    daemons: list[Daemon] = field(default_factory=list)
    containers: list[Container] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unmatched_proxies: list[Proxy] = field(default_factory=list)
    namespace: str | None = None  # containerd's namespace of its containers (not Docker's)
    # The uid whose engine it is, when its runtime can tell (podman by its conmons' user;
    # not 0: rootless); None when not known.
    owner: int | None = None
    # The name its runtime gave it when no daemon's socket names it (podman: by its storage).
    named: str | None = None
    # What only its runtime knows of it, as plain data that the runtime sets when it builds the
    # engine and alone reads (podman: its `store`); show --json writes each as a key
    # of the engine (tracer/model/show_json.py).
    facts: dict[str, str | int | bool | None] = field(default_factory=dict)

    def daemon(self, kind: type[D]) -> D | None:
        """Its daemon of that role, if it runs."""
        for d in self.daemons:
            if isinstance(d, kind):
                return d
        return None

    @property
    def title(self) -> str:
        """The engine's name: the one its runtime gave it, else the socket of its topmost
        daemon that has one (and the containerd namespace, for a containerd that several
        engines share)."""
        if self.named is not None:
            return self.named
        where = f" [{self.namespace}]" if self.namespace else ""
        for d in self.daemons:
            if d.address:
                return d.address + where
        return "unknown engine" + where


@dataclass
class Topology:
    engines: list[Engine]
    orphans: list[Container] = field(default_factory=list)
    host: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def containers(self) -> list[Container]:
        return [c for e in self.engines for c in e.containers] + list(self.orphans)

    def engine_of(self, container: Container) -> Engine | None:
        """The engine that holds this very container (None for an orphan)."""
        for e in self.engines:
            if any(c is container for c in e.containers):
                return e
        return None

    def to_json(self) -> dict[str, Any]:
        from tracer.model.show_json import to_json

        return to_json(self)
