"""One snapshot of the host, as plain data: every process once, plus the files and sockets that
prove the links between them. Everything after the walk (tracer/snapshot/walk.py) is a pure
function of a `Host`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tracer.kernel.procfs import Proc

__all__ = ["Host", "Proc", "is_parent"]  # Proc: the one process record (procfs)


T = TypeVar("T")


def is_parent(parent: Proc | None, child: Proc) -> bool:
    """Is parent really child's parent? ppid matches and the parent is not younger.

    A parent that started after its child holds a reused PID: never invent that link. Start
    times are the kernel's clock ticks, compared exactly (a parent forks within its own tick
    or later).
    """
    return (
        parent is not None
        and parent.pid == child.ppid
        and parent.pid != child.pid
        and parent.start <= child.start
    )


@dataclass
class Host:
    procs: dict[int, Proc]
    taken_at: float = 0.0
    hostname: str = ""
    euid: int = 0
    host_ns: dict[str, int] = field(default_factory=dict)
    host_ns_source: str = "unknown"
    listeners: dict[int, dict[int, str]] = field(default_factory=dict)  # pid -> {inode: path}
    sockets: dict[int, frozenset[int]] = field(default_factory=dict)  # daemon pid -> inodes
    peers: dict[int, int] = field(default_factory=dict)  # daemon socket inode -> peer inode
    cwd: dict[int, str] = field(default_factory=dict)  # pid -> its working directory
    files: dict[str, str] = field(default_factory=dict)  # host path -> text, for the files read
    exists: frozenset[str] = frozenset()  # host paths found to exist
    dirs: dict[str, tuple[str, ...]] = field(default_factory=dict)  # host dir -> its names
    _kids: dict[int, list[Proc]] | None = field(default=None, init=False, repr=False)
    _memo: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def reset(self) -> None:
        """Forget what was derived from procs (after procs changed)."""
        self._kids = None
        self._memo.clear()

    def derived(self, key: str, make: Callable[[Host], T]) -> T:
        """make(self), computed once per state of procs (reset() forgets it): what several
        runtimes derive from the same processes, such as the list of shims."""
        if key not in self._memo:
            self._memo[key] = make(self)
        return self._memo[key]

    def running(self, program_name: str) -> list[Proc]:
        """Every live process of that program, by PID."""
        return sorted(
            (p for p in self.procs.values() if p.program == program_name and not p.zombie),
            key=lambda p: p.pid,
        )

    def children(self, pid: int) -> list[Proc]:
        """Children of pid, as long as the parent is older than the child (no PID reuse)."""
        return self._children().get(pid, [])

    def _children(self) -> dict[int, list[Proc]]:
        cached = self._kids
        if cached is None:
            cached = {}
            for proc in sorted(self.procs.values(), key=lambda p: (p.start, p.pid)):
                if is_parent(self.procs.get(proc.ppid), proc):
                    cached.setdefault(proc.ppid, []).append(proc)
            self._kids = cached
        return cached

    def descendants(self, pid: int) -> list[Proc]:
        """The whole subtree under pid (not pid itself), depth first; safe against cycles."""
        out: list[Proc] = []
        seen = {pid}
        stack = list(reversed(self.children(pid)))
        while stack:
            proc = stack.pop()
            if proc.pid in seen:
                continue
            seen.add(proc.pid)
            out.append(proc)
            stack.extend(reversed(self.children(proc.pid)))
        return out
