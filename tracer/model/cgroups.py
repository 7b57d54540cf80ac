"""What `cgroup` reports: where a container's cgroups are, what limits it, what it uses, and
which processes are in it. Made by tracer/views/cgroups.py from what tracer/kernel/cgroupfs.py
read; printed by tracer/output/terminal/cgroups.py; the JSON (`dtrace-tree/cgroup/1`) is in the
README.

Each value of `limits` and `usage` names the file it came from (`sources`); a null one says
why (`why_null`): "no limit", or why it is not available. Keys of both are "limits.<field>" or
"usage.<field>".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA = "dtrace-tree/cgroup/1"
LIMITS = ("memory_bytes", "memory_swap_bytes", "memory_reservation_bytes", "cpu_quota_us",
          "cpu_period_us", "cpus", "cpu_shares", "cpu_weight", "cpuset_cpus",
          "pids_max")  # fmt: skip
USAGE = ("memory_bytes", "pids", "cpu_ns", "cpu_throttled_periods", "cpu_throttled_ns",
         "io_read_bytes", "io_write_bytes")  # fmt: skip
NO_LIMIT = "no limit"


@dataclass
class CgroupProcess:
    pid: int
    role: str  # init | child | exec (from the process tree) | other (only in the cgroup)
    cmdline: list[str]
    cgroup: str  # the cgroup below the container's it is in ("" for the container's own)


@dataclass
class IoLimit:
    device: str  # MAJ:MIN
    read_bps: int | None
    write_bps: int | None
    read_iops: int | None
    write_iops: int | None


@dataclass
class CgroupSubject:
    id: str
    name: str | None
    init_pid: int | None


@dataclass
class CgroupReport:
    """`cgroup CONTAINER`."""

    container: CgroupSubject
    version: int | None  # 1 (legacy or hybrid) | 2 (unified)
    mode: str | None  # legacy | hybrid | unified
    driver: str  # cgroupfs | systemd | none (no cgroup of its own: rootless on v1) | unknown
    cgroupns: str | None  # host | private (the container's cgroup namespace) | None: unknown
    paths: dict[str, str]  # controller (or "unified") -> the cgroup's directory on the host
    limits: dict[str, int | float | str | None]
    usage: dict[str, int | None]
    io_limits: list[IoLimit]
    processes: list[CgroupProcess]
    sources: dict[str, str] = field(default_factory=dict)
    why_null: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "container": vars(self.container).copy(),
            "version": self.version,
            "mode": self.mode,
            "driver": self.driver,
            "cgroupns": self.cgroupns,
            "paths": dict(self.paths),
            "limits": dict(self.limits),
            "usage": dict(self.usage),
            "io_limits": [vars(x).copy() for x in self.io_limits],
            "processes": [{**vars(p), "cmdline": list(p.cmdline)} for p in self.processes],
            "sources": dict(self.sources),
            "why_null": dict(self.why_null),
            "notes": list(self.notes),
        }
