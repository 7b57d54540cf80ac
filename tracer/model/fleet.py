"""Several hosts side by side (`show --from a --from b`, `export --from a --from b`): each
host's snapshot as it was saved, and what a platform team asks of the whole fleet."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tracer.model.topology import Topology

SCHEMA = "dtrace-tree/fleet/1"


@dataclass
class HostLine:
    hostname: str | None
    taken_at: str | None
    source: str  # the file it was read from
    engines: int
    containers: int  # running
    processes: int  # the running containers' processes


@dataclass
class Exposed:
    """Something on one host that the fleet summary points at."""

    hostname: str | None
    what: str  # an engine's title, or a container's label
    why: str  # "live-restore off", "net pid" (namespaces shared with the host), ...


@dataclass
class Fleet:
    topologies: list[Topology]
    hosts: list[HostLine]
    # Engines whose containers would die with their daemon (live-restore off, or not known).
    no_live_restore: list[Exposed] = field(default_factory=list)
    unknown_live_restore: list[Exposed] = field(default_factory=list)
    # Running containers in one of the host's own namespaces (net, pid, ipc, uts, mnt).
    host_namespaces: list[Exposed] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "hosts": [t.to_json() for t in self.topologies],
            "summary": {
                "hosts": [asdict(h) for h in self.hosts],
                "engines": sum(h.engines for h in self.hosts),
                "containers": sum(h.containers for h in self.hosts),
                "no_live_restore": [asdict(e) for e in self.no_live_restore],
                "unknown_live_restore": [asdict(e) for e in self.unknown_live_restore],
                "host_namespaces": [asdict(e) for e in self.host_namespaces],
            },
        }
