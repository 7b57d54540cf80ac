"""What `diff` reports: each container of two snapshots of one host, before and after."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from tracer.model.topology import Labelled

SCHEMA = "dtrace-tree/diff/1"
# kept: the very same init process (PID and start time) in the same namespaces;
# restarted: running in both, another init process; stopped: known after, no process;
# removed: unknown after; started: known before without a process, running after; new: running
# after, unknown before.
VERDICTS = ("kept", "restarted", "stopped", "removed", "started", "new")


@dataclass
class Side:
    hostname: str | None
    taken_at: str | None


@dataclass
class Change(Labelled):
    id: str
    name: str | None
    verdict: str  # one of VERDICTS
    init_pid_before: int | None
    init_pid_after: int | None
    start_time_same: bool
    namespaces_same: bool


@dataclass
class Comparison:
    before: Side
    after: Side
    containers: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, verdict: str) -> int:
        return sum(1 for c in self.containers if c.verdict == verdict)

    @property
    def all_kept(self) -> bool:
        """Every container that ran before runs on, unchanged (`diff` exits 0)."""
        return all(c.verdict in ("kept", "started", "new") for c in self.containers)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "before": asdict(self.before),
            "after": asdict(self.after),
            "containers": [asdict(c) for c in self.containers],
            "summary": {v: self.count(v) for v in VERDICTS},
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class DaemonChange:
    """A daemon between two snapshots (`serve`): gone (its process ended) or new."""

    role: str  # dockerd, containerd, ...
    pid: int
    verdict: str  # gone | new
    engine: str  # the title of the engine it was (or is) in
