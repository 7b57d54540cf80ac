"""What `show` knows: engines, containers, processes and the edges between them.

Plain data, no I/O. `to_json` gives the documented schema (README, "show --json");
`from_json` reads it back, so a saved snapshot can be rendered on another machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

SCHEMA = "dtrace-tree/show/1"
# The types under /proc/<pid>/ns, in the order they are listed there.
NS_TYPES = (
    "cgroup",
    "ipc",
    "mnt",
    "net",
    "pid",
    "pid_for_children",
    "time",
    "time_for_children",
    "user",
    "uts",
)

EDGE_KINDS = ("parent", "socket", "shim-address", "reparented")
ROLES = ("init", "child", "exec")
RUNNING_STATES = ("running", "paused", "restarting")


# -- what an engine's API said (one list call, one info call) --------------------------------


@dataclass(frozen=True)
class ApiContainer:
    """What one list call tells about a container (tracer.dockerapi makes it)."""

    id: str
    name: str | None
    image: str | None
    state: str
    labels: dict[str, str]
    ips: tuple[str, ...]
    network_mode: str | None


@dataclass
class ApiView:
    """What one engine's API said (or why it said nothing)."""

    containers: Sequence[ApiContainer] | None = None
    live_restore: bool | None = None
    error: str | None = None


# -- what show knows ------------------------------------------------------------------------


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


@dataclass
class Proxy:
    pid: int
    proto: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int


@dataclass
class Shim:
    pid: int
    ppid: int
    cmdline: list[str]
    namespace: str | None
    address: str | None
    reparented: bool
    create_time: float = 0.0


@dataclass
class Container:
    id: str
    name: str | None
    image: str | None
    state: str
    init_pid: int | None = None
    shim_pid: int | None = None
    shim: Shim | None = None
    processes: list[Process] = field(default_factory=list)
    proxies: list[Proxy] = field(default_factory=list)
    namespaces: dict[str, int] = field(default_factory=dict)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def running(self) -> bool:
        return self.init_pid is not None or self.state in RUNNING_STATES

    @property
    def label(self) -> str:
        return self.name or self.short_id


@dataclass
class Dockerd:
    pid: int
    cmdline: list[str]
    api_socket: str | None
    reachable: bool
    live_restore: bool | None
    api_error: str | None = None
    containerd_namespace: str = "moby"


@dataclass
class Containerd:
    pid: int
    socket: str
    managed: bool
    cmdline: list[str] = field(default_factory=list)
    proven: bool = False  # the socket is a listener held by this very process
    connected: bool | None = None  # dockerd holds a socket whose peer this process holds


@dataclass
class Edge:
    src: int
    dst: int
    kind: str
    via: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"from": self.src, "to": self.dst, "kind": self.kind, "via": self.via}


@dataclass
class Engine:
    dockerd: Dockerd | None
    containerd: Containerd | None
    containers: list[Container] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    unmatched_proxies: list[Proxy] = field(default_factory=list)

    @property
    def title(self) -> str:
        if self.dockerd and self.dockerd.api_socket:
            return self.dockerd.api_socket
        if self.containerd:
            return self.containerd.socket
        return "unknown engine"


@dataclass
class Topology:
    engines: list[Engine]
    orphans: list[Container] = field(default_factory=list)
    host: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def containers(self) -> list[Container]:
        return [c for e in self.engines for c in e.containers] + list(self.orphans)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "host": self.host,
            "engines": [_engine_json(e) for e in self.engines],
            "orphans": [_container_json(c) for c in self.orphans],
            "notes": list(self.notes),
        }


def _plain(flat: Any) -> dict[str, Any]:
    """The fields of a flat dataclass (Process, Shim, Proxy, the daemons), lists and dicts
    copied: dataclasses.asdict does the same through a deep copy of every value, and was a
    tenth of `show --json` at 300 containers."""
    return {
        k: list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v
        for k, v in vars(flat).items()
    }


def _engine_json(engine: Engine) -> dict[str, Any]:
    return {
        "dockerd": _plain(engine.dockerd) if engine.dockerd else None,
        "containerd": _plain(engine.containerd) if engine.containerd else None,
        "containers": [_container_json(c) for c in engine.containers],
        "edges": [e.to_json() for e in engine.edges],
        "unmatched_proxies": [_plain(p) for p in engine.unmatched_proxies],
        "notes": list(engine.notes),
    }


def _container_json(c: Container) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.name,
        "image": c.image,
        "state": c.state,
        "init_pid": c.init_pid,
        "shim_pid": c.shim_pid,
        "shim": _plain(c.shim) if c.shim else None,
        "processes": [_plain(p) for p in c.processes],
        "proxies": [_plain(p) for p in c.proxies],
        "namespaces": dict(c.namespaces),
    }


# -- reading a saved snapshot back ------------------------------------------------------------


class SnapshotFormatError(ValueError):
    pass


def from_json(doc: Any) -> Topology:
    """A Topology from `show --json` output; SnapshotFormatError if doc is not one."""
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise SnapshotFormatError(f"not a dtrace-tree snapshot (expected schema {SCHEMA!r})")
    try:
        return Topology(
            engines=[_engine(e) for e in doc["engines"]],
            orphans=[_container(c) for c in doc.get("orphans", [])],
            host=dict(doc.get("host") or {}),
            notes=list(doc.get("notes") or []),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SnapshotFormatError(f"malformed dtrace-tree snapshot: {exc!r}") from exc


def _engine(e: dict[str, Any]) -> Engine:
    return Engine(
        dockerd=Dockerd(**e["dockerd"]) if e.get("dockerd") else None,
        containerd=Containerd(**e["containerd"]) if e.get("containerd") else None,
        containers=[_container(c) for c in e.get("containers", [])],
        edges=[Edge(x["from"], x["to"], x["kind"], x.get("via", "")) for x in e.get("edges", [])],
        notes=list(e.get("notes") or []),
        unmatched_proxies=[Proxy(**p) for p in e.get("unmatched_proxies", [])],
    )


def _container(c: dict[str, Any]) -> Container:
    return Container(
        id=str(c["id"]),
        name=c.get("name"),
        image=c.get("image"),
        state=str(c["state"]),
        init_pid=c.get("init_pid"),
        shim_pid=c.get("shim_pid"),
        shim=Shim(**c["shim"]) if c.get("shim") else None,
        processes=[_process(p) for p in c.get("processes", [])],
        proxies=[Proxy(**p) for p in c.get("proxies", [])],
        namespaces={str(k): int(v) for k, v in (c.get("namespaces") or {}).items()},
    )


def _process(p: dict[str, Any]) -> Process:
    fields = {k: v for k, v in p.items() if k != "namespaces"}
    ns = {str(k): int(v) for k, v in (p.get("namespaces") or {}).items()}
    return Process(**fields, namespaces=ns)
