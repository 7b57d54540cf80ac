"""What `ns` reports: each container's namespaces against the host's and the others'.

Made by tracer/views/namespaces.py, printed by tracer/output/terminal/namespaces.py; the JSON
shapes are documented in the README ("ns --json").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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
        return asdict(self)


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
        return asdict(self)
