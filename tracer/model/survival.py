"""What `survive` reports: the daemons and every running container before and after a restart.

Made by tracer/ops/survive.py, printed by tracer/output/terminal/survival.py and drawn by
tracer/output/diagram/survival.py; the JSON shape is documented in the README
("survive --json").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from tracer.model.topology import Labelled, Topology

SCHEMA = "dtrace-tree/survive/1"  # `survive --json` (docs/schemas/survive-1); reports written
# before it was named carry no `schema` key, and `--from` reads them still (model/show_json.py)
VERDICTS = ("survived", "lost", "refused")


@dataclass
class DaemonPids:
    dockerd_pid: int | None
    containerd_pid: int | None

    ROLES: ClassVar[tuple[str, ...]] = (
        "dockerd",
        "containerd",
    )  # the daemons a restart is checked around, top first

    def by_role(self) -> dict[str, int | None]:
        """Role -> PID (None: not running), top of the chain first."""
        return {"dockerd": self.dockerd_pid, "containerd": self.containerd_pid}


@dataclass
class RestartHow:
    pid: int
    how: str
    unit: str | None
    cmdline: list[str]


@dataclass
class PortOutage:
    port: str  # "tcp 127.0.0.1:18080"
    refused_ms: int


@dataclass
class DownView:
    """What /proc showed while the daemon was away."""

    dockerd_pid: int | None
    containerd_pid: int | None
    containers_running: int
    shims: list[int]
    topology: Topology


@dataclass
class ContainerFate(Labelled):
    id: str
    name: str | None
    init_pid_before: int | None
    init_pid_after: int | None
    start_time_same: bool
    namespaces_same: bool
    shim_pid_before: int | None
    shim_pid_after: int | None
    restart_policy: str | None
    survived: bool


@dataclass
class SurviveReport:
    daemon: str  # dockerd | containerd
    engine: str
    owned: bool
    live_restore: bool | None
    before: DaemonPids
    verdict: str | None = None  # one of VERDICTS once decided
    after: DaemonPids | None = None
    downtime_ms: int | None = None  # the daemon gone -> the API answering again
    api_back_ms: int | None = None  # the stop request -> the API answering again
    restart: RestartHow | None = None
    ports: list[PortOutage] = field(default_factory=list)
    during: DownView | None = None
    containers: list[ContainerFate] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def plain(obj: Any) -> Any:
            return None if obj is None else dict(vars(obj))

        during = None
        if self.during is not None:
            during = {**plain(self.during), "topology": self.during.topology.to_json()}
            during["shims"] = list(self.during.shims)
        return {
            "schema": SCHEMA,
            "daemon": self.daemon,
            "engine": self.engine,
            "owned": self.owned,
            "live_restore": self.live_restore,
            "verdict": self.verdict,
            "before": plain(self.before),
            "after": plain(self.after),
            "downtime_ms": self.downtime_ms,
            "api_back_ms": self.api_back_ms,
            "restart": plain(self.restart),
            "ports": [plain(p) for p in self.ports],
            "during": during,
            "containers": [plain(c) for c in self.containers],
            "notes": list(self.notes),
        }
