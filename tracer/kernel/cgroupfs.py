"""cgroups as the kernel shows them: /proc/<pid>/cgroup, the mounted hierarchies, their files.

cgroup v1 (Documentation/admin-guide/cgroup-v1) has one hierarchy per controller (or group of
controllers), each mounted on its own (`/sys/fs/cgroup/memory`, ...); a process is in one
cgroup of each, and /proc/<pid>/cgroup has one line per hierarchy, `N:controllers:/path`.
cgroup v2 (Documentation/admin-guide/cgroup-v2.rst) has one hierarchy, mounted at
/sys/fs/cgroup (type cgroup2), and one line `0::/path`. A *hybrid* host mounts v1 controllers
and an empty v2 hierarchy beside them (`/sys/fs/cgroup/unified`): both kinds of line appear.

The path in /proc/<pid>/cgroup is relative to the cgroup namespace of the reader, and a
hierarchy may be mounted from a cgroup other than its root (field 4 of mountinfo): the
directory of a cgroup is the mount point plus the path below the mount's root.

`read` gathers, for one process, every file the `cgroup` view interprets (the list is below,
per version); the view (tracer/views/cgroups.py) is a pure function of what was read.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tracer.kernel import mountinfo
from tracer.kernel.root import HostRoot
from tracer.untrusted import number

UNIFIED = "unified"  # the key of the v2 hierarchy, beside the v1 controllers' names
# v1 super options that are not controllers (cgroup-v1/cgroups.rst, "Mount options").
_NOT_CONTROLLERS = {"rw", "ro", "xattr", "noprefix", "clone_children", "cpuset_v2_mode",
                    "none", "all", "favordynmods"}  # fmt: skip
# Where v1 says "no limit": PAGE_COUNTER_MAX pages, e.g. 9223372036854771712 with 4 KiB pages.
V1_UNLIMITED = 1 << 62
MAX_SUBGROUPS = 1000  # cgroups below the container's whose processes are also listed

# The files the view interprets, by hierarchy key (v1) or for the one v2 directory.
V1_FILES = {
    "memory": ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes",
               "memory.soft_limit_in_bytes", "memory.usage_in_bytes"),
    "cpu": ("cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares", "cpu.stat"),
    "cpuacct": ("cpuacct.usage",),
    "cpuset": ("cpuset.cpus",),
    "pids": ("pids.max", "pids.current"),
    "blkio": ("blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device",
              "blkio.throttle.read_iops_device", "blkio.throttle.write_iops_device",
              "blkio.throttle.io_service_bytes_recursive"),
}  # fmt: skip
V2_FILES = ("cgroup.controllers", "memory.max", "memory.swap.max", "memory.low",
            "memory.current", "cpu.max", "cpu.weight", "cpu.stat", "cpuset.cpus",
            "cpuset.cpus.effective", "pids.max", "pids.current", "io.max", "io.stat")  # fmt: skip


@dataclass(frozen=True)
class Membership:
    """One line of /proc/<pid>/cgroup."""

    hierarchy: int
    controllers: tuple[str, ...]  # () on the v2 line; ("name=systemd",) for a named one
    path: str

    @property
    def keys(self) -> tuple[str, ...]:
        return self.controllers or (UNIFIED,)


def parse_proc_cgroup(lines: Iterable[str]) -> list[Membership]:
    """The lines of /proc/<pid>/cgroup; a line that is not one is skipped (never raises)."""
    out = []
    for line in lines:
        ident, sep, rest = line.rstrip("\n").partition(":")
        controllers, sep2, path = rest.partition(":")
        hierarchy = number(ident)
        if not sep or not sep2 or hierarchy is None or not path.startswith("/"):
            continue
        names = tuple(c for c in controllers.split(",") if c)
        if (hierarchy == 0) != (not names):  # v2 is hierarchy 0 with no controller named
            continue
        out.append(Membership(hierarchy, names, path))
    return out


@dataclass(frozen=True)
class Hierarchy:
    """A mounted cgroup hierarchy."""

    version: int
    controllers: frozenset[str]  # v1: its controllers (and name=...); v2: empty
    point: str
    root: str  # the cgroup mounted there ("/" on the host)


def hierarchies(mounts: Sequence[mountinfo.Mount]) -> list[Hierarchy]:
    out = []
    for m in mounts:
        if m.fstype == "cgroup2":
            out.append(Hierarchy(2, frozenset(), m.point, m.root))
        elif m.fstype == "cgroup":
            names = {o for o in m.super_options if o not in _NOT_CONTROLLERS and "=" not in o}
            names |= {o for o in m.super_options if o.startswith("name=")}
            out.append(Hierarchy(1, frozenset(names), m.point, m.root))
    return out


def mode(mounts: Sequence[mountinfo.Mount]) -> str | None:
    """unified (v2 only), hybrid (v1 controllers and a v2 hierarchy), legacy (v1 only), as
    Docker and systemd name them; None when no cgroup file system is mounted."""
    kinds = {m.fstype for m in mounts if m.fstype in ("cgroup", "cgroup2")}
    if kinds == {"cgroup2"}:
        return "unified"
    if kinds == {"cgroup", "cgroup2"}:
        return "hybrid"
    return "legacy" if kinds else None


def directory(member: Membership, where: Sequence[Hierarchy]) -> str | None:
    """The host directory of this cgroup: under a mount of its hierarchy whose root contains
    its path (the shallowest such root); None if no mount shows it."""
    wanted = set(member.controllers)
    best: Hierarchy | None = None
    for h in where:
        if member.hierarchy == 0:
            if h.version != 2:
                continue
        elif h.version != 1 or not wanted <= h.controllers:
            continue
        if not _under(member.path, h.root):
            continue
        if best is None or len(h.root) < len(best.root):
            best = h
    if best is None:
        return None
    rest = member.path[len(best.root) :] if best.root != "/" else member.path
    return os.path.normpath(best.point + "/" + rest.lstrip("/"))


def _under(path: str, top: str) -> bool:
    return top == "/" or path == top or path.startswith(top.rstrip("/") + "/")


# -- one process's cgroups, read ---------------------------------------------------------------


@dataclass
class CgroupRead:
    """Everything the view interprets about one process's cgroups, as read."""

    pid: int
    members: list[Membership] = field(default_factory=list)
    mode: str | None = None
    mounts_from: str = "unknown"  # whose mount table located the hierarchies
    dirs: dict[str, str] = field(default_factory=dict)  # key (controller | unified) -> dir
    files: dict[str, str] = field(default_factory=dict)  # host path -> text
    missing: dict[str, str] = field(default_factory=dict)  # host path -> why not read
    procs: dict[int, str] = field(default_factory=dict)  # pid -> its cgroup below ("" = it)
    procs_from: str | None = None  # the directory whose cgroup.procs was read
    errors: list[str] = field(default_factory=list)

    def text(self, key: str, name: str) -> str | None:
        where = self.dirs.get(key)
        return self.files.get(f"{where}/{name}") if where else None

    def file(self, key: str, name: str) -> str | None:
        where = self.dirs.get(key)
        return f"{where}/{name}" if where else None


def read(root: HostRoot, pid: int) -> CgroupRead:
    """pid's cgroups: its memberships, where they are, and the files of V1_FILES/V2_FILES.
    What cannot be read is recorded with why (errors, missing), never guessed."""
    out = CgroupRead(pid)
    text, why = _read(root, f"{root.pid_dir(pid)}/cgroup", raw=True)
    if text is None:
        out.errors.append(f"/proc/{pid}/cgroup: {why}")
        return out
    out.members = parse_proc_cgroup(text.splitlines())
    table, out.mounts_from = mountinfo.host_table(root)
    out.mode = mode(table)
    where = hierarchies(table)
    for member in out.members:
        found = directory(member, where)
        for key in member.keys:
            if found is None:
                out.errors.append(f"no mounted {key} hierarchy shows {member.path}")
            else:
                out.dirs[key] = found
    v2_only = all(m.hierarchy == 0 for m in out.members)
    wanted: list[tuple[str, str]] = []
    if v2_only and UNIFIED in out.dirs:
        wanted = [(out.dirs[UNIFIED], name) for name in V2_FILES]
    else:
        for key, names in V1_FILES.items():
            if key in out.dirs:
                wanted += [(out.dirs[key], name) for name in names]
        cpuset = next((h for h in where if "cpuset" in h.controllers), None)
        if cpuset is not None:  # the whole machine's CPUs, to tell "all" from a cpuset
            wanted.append((cpuset.point, "cpuset.cpus"))
    for directory_, name in wanted:
        path = f"{directory_}/{name}"
        text, why = _read(root, path)
        if text is None:
            out.missing[path] = why or "unreadable"
        else:
            out.files[path] = text
    _read_procs(root, out, v2_only)
    return out


def _read_procs(root: HostRoot, out: CgroupRead, v2_only: bool) -> None:
    """Every process in the cgroup and the cgroups below it (a container may make its own)."""
    order = (UNIFIED,) if v2_only else ("pids", "memory", "cpu", "name=systemd", UNIFIED)
    top = next((out.dirs[k] for k in order if k in out.dirs), None)
    if top is None:
        return
    out.procs_from = top
    todo, seen = [top], 0
    while todo and seen < MAX_SUBGROUPS:
        here = todo.pop()
        seen += 1
        text, why = _read(root, f"{here}/cgroup.procs")
        if text is None:
            out.errors.append(f"{here}/cgroup.procs: {why}")
            continue
        below = os.path.relpath(here, top)
        for line in text.split():
            if (pid := number(line)) is not None:
                out.procs[pid] = "" if below == "." else below
        try:
            with os.scandir(root.path(here)) as it:
                todo.extend(f"{here}/{e.name}" for e in it if e.is_dir(follow_symlinks=False))
        except OSError:
            pass
    if todo:
        out.errors.append(f"more than {MAX_SUBGROUPS} cgroups below {top}: the rest not read")


def _read(root: HostRoot, path: str, raw: bool = False) -> tuple[str | None, str | None]:
    """A small text file (cgroup files are at most a few pages) and why not."""
    try:
        with open(path if raw else root.path(path), "rb") as f:
            return os.fsdecode(f.read(1 << 20)), None
    except OSError as exc:
        return None, (exc.strerror or type(exc).__name__).lower()


# -- reading the files' formats (cgroup-v2.rst "Interface Files", "Format") --------------------


def limit(text: str | None) -> tuple[int | None, bool]:
    """A single-value limit file: (value, unlimited). "max" (v2, pids) and -1 or
    PAGE_COUNTER_MAX (v1) are "no limit": (None, True). Unreadable text: (None, False)."""
    word = (text or "").strip()
    if word in ("max", "-1"):
        return None, True
    value = number(word, digits=20)
    if value is not None and value >= V1_UNLIMITED:
        return None, True
    return value, False


def flat_keyed(text: str | None) -> dict[str, int]:
    """`key value` lines (cpu.stat, memory.stat)."""
    out = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if (n := number(value.strip(), digits=20)) is not None:
            out[key] = n
    return out


def nested_keyed(text: str | None) -> dict[str, dict[str, str]]:
    """`MAJ:MIN key=value ...` lines (io.max, io.stat)."""
    out: dict[str, dict[str, str]] = {}
    for line in (text or "").splitlines():
        words = line.split()
        if words:
            out[words[0]] = dict(w.split("=", 1) for w in words[1:] if "=" in w)
    return out


def device_values(text: str | None) -> dict[str, int]:
    """v1 `MAJ:MIN value` lines (blkio.throttle.*_device)."""
    out = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and (n := number(parts[1], digits=20)) is not None:
            out[parts[0]] = n
    return out


def io_service_bytes(text: str | None) -> dict[str, int]:
    """v1 blkio.throttle.io_service_bytes: `MAJ:MIN Read|Write|... N` lines, summed by op."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 3 and (n := number(parts[2], digits=20)) is not None:
            out[parts[1]] = out.get(parts[1], 0) + n
    return out


def cpu_max(text: str | None) -> tuple[int | None, int | None, bool]:
    """v2 cpu.max `$MAX $PERIOD`: (quota, period, unlimited)."""
    words = (text or "").split()
    if len(words) != 2:
        return None, None, False
    period = number(words[1], digits=20)
    if words[0] == "max":
        return None, period, True
    return number(words[0], digits=20), period, False
