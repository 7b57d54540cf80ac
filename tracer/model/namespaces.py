"""What `ns` reports: each container's namespaces against the host's and the others'.

Made by tracer/views/namespaces/, printed by tracer/output/terminal/namespaces.py; the JSON
shapes are documented in the README ("ns --json").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

NS_SCHEMA = "dtrace-tree/ns/1"  # `ns --json` and `ns CONTAINER --json` (docs/schemas/ns-1)


@dataclass
class NsEntry:
    """One namespace of a container's init."""

    type: str
    inode: int
    host_inode: int | None
    isolated: bool | None  # None when the host's namespaces could not be read
    shared_with: list[str] = field(default_factory=list)
    why: str | None = None


@dataclass
class NsProcess:
    """One process of the container, against its init."""

    pid: int
    role: str
    cmdline: list[str]
    namespaces: dict[str, int]
    same_as_init: bool


@dataclass
class NsSubject:
    id: str
    name: str | None
    init_pid: int | None


@dataclass
class NsReport:
    """`ns CONTAINER`."""

    container: NsSubject
    host: dict[str, int]
    host_from: str | None
    namespaces: list[NsEntry]
    processes: list[NsProcess]

    def to_json(self) -> dict[str, Any]:
        return {"schema": NS_SCHEMA, **asdict(self)}


@dataclass
class NsRow:
    """One container of the matrix; cells: type -> isolated | host | shared:<names>."""

    id: str
    name: str | None
    init_pid: int | None
    namespaces: dict[str, int]
    cells: dict[str, str]


@dataclass
class NsGroup:
    """A namespace shared by several containers, or a host namespace a container is in."""

    type: str
    inode: int
    containers: list[str]
    host: bool


@dataclass
class NsMatrix:
    """`ns`: containers x namespace types."""

    host: dict[str, int]
    host_from: str | None
    containers: list[NsRow]
    groups: list[NsGroup]
    unreadable: list[str] = field(default_factory=list)  # running, namespaces not readable

    def to_json(self) -> dict[str, Any]:
        return {"schema": NS_SCHEMA, **asdict(self)}


# -- `ns --all`: every namespace on the host ---------------------------------------------------

SCHEMA = "dtrace-tree/namespaces/1"


@dataclass(frozen=True)
class NsMount:
    """An nsfs bind mount: where, and in which mount namespace (its inode)."""

    path: str
    mount_ns: int


@dataclass(frozen=True)
class NsFd:
    """An open fd on a namespace: whose (pid) and which."""

    pid: int
    fd: int


@dataclass(frozen=True)
class NsProc:
    """A process met by the walk: its start (with the pid, its identity), name and owner."""

    pid: int
    start: int
    name: str
    uid: int | None


@dataclass
class NsHeld:
    """One namespace as the kernel showed it (tracer/snapshot/namespaces.py): what holds it
    and its relatives; `confirmed` once an open of it proved it still there."""

    inode: int
    type: str
    processes: dict[int, int] = field(default_factory=dict)  # pid -> start ticks
    tasks: int = 0  # tasks (threads) in it, over all its processes
    for_children: list[int] = field(default_factory=list)  # pids whose next children enter it
    mounts: list[NsMount] = field(default_factory=list)
    fds: list[NsFd] = field(default_factory=list)
    owner: int | None = None
    parent: int | None = None
    confirmed: bool = False
    above: bool = False  # found as the owner or parent of another namespace


@dataclass
class NsScan:
    """Every namespace the walk reached, the processes it met, and what it could not read."""

    namespaces: dict[int, NsHeld]
    procs: dict[int, NsProc]
    unreadable: dict[int, list[str]] = field(default_factory=dict)  # pid -> what was denied
    unread_mount_ns: list[int] = field(default_factory=list)  # no process whose table we read
    vanished: int = 0  # seen once, gone by the time it was opened: left out


@dataclass(frozen=True)
class NsVerdict:
    """A runtime's word on a namespace held by its sandbox mount alone (runtimes/netns.py)."""

    leaked: bool
    why: str
    release: str | None = None  # the command that releases it (printed, never run)


@dataclass
class NsContainerRef:
    name: str | None
    id: str
    engine: str


@dataclass
class NsEngineRef:
    """An engine whose daemon (or rootless engine whose containers) live in a namespace."""

    name: str
    runtime: str
    pids: list[int] = field(default_factory=list)
    rootless: bool = False


@dataclass
class Namespace:
    """One namespace of `ns --all`: the keys of schema dtrace-tree/namespaces/1."""

    inode: int
    type: str
    processes: list[int]
    mounts: list[NsMount]
    fds: list[NsFd]
    owner: int | None
    parent: int | None
    containers: list[NsContainerRef]
    host: bool
    leaked: bool
    engines: list[NsEngineRef] = field(default_factory=list)
    pods: list[str] = field(default_factory=list)
    tasks: int = 0
    for_children: list[int] = field(default_factory=list)
    command: str | None = None  # the program of its lowest process, as lsns shows it
    release: str | None = None  # the command that releases a leaked one (never run)
    why: str | None = None  # why it is leaked, or why that could not be told


@dataclass
class NsInventory:
    """`ns --all`."""

    namespaces: list[Namespace]
    host_ns: dict[str, int]
    unreadable: dict[int, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "namespaces": [_namespace_json(n) for n in self.namespaces],
            "initial": dict(self.host_ns),
            "unreadable": [{"pid": p, "what": w} for p, w in sorted(self.unreadable.items())],
            "notes": list(self.notes),
        }


def _namespace_json(n: Namespace) -> dict[str, Any]:
    """One namespace as schema dtrace-tree/namespaces/1 has it (dataclasses.asdict, which
    deep-copies every value, took a third of `ns --all --json` at 2,600 namespaces)."""
    return {
        "inode": n.inode,
        "type": n.type,
        "processes": list(n.processes),
        "mounts": [{"path": m.path, "mount_ns": m.mount_ns} for m in n.mounts],
        "fds": [{"pid": f.pid, "fd": f.fd} for f in n.fds],
        "owner": n.owner,
        "parent": n.parent,
        "containers": [{"name": c.name, "id": c.id, "engine": c.engine} for c in n.containers],
        "host": n.host,
        "leaked": n.leaked,
        "engines": [
            {"name": e.name, "runtime": e.runtime, "pids": list(e.pids), "rootless": e.rootless}
            for e in n.engines
        ],
        "pods": list(n.pods),
        "tasks": n.tasks,
        "for_children": list(n.for_children),
        "command": n.command,
        "release": n.release,
        "why": n.why,
    }
