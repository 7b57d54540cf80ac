"""/proc/<pid>/mountinfo: the mounts a process sees.

`parse_mount_points` keeps the mount points alone (the lab's clean-up); `parse_mountinfo` keeps
every field (`fs`: a container's union root and its volumes, binds and tmpfs; `cgroup`: where
the hierarchies are mounted). Both are total: a row that is not one is skipped. A mount seen in
a container's namespace is found on the host by its device and root (`host_path`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tracer.kernel.root import HostRoot
from tracer.untrusted import number

_OCTAL = re.compile(r"\\([0-7]{3})")


def parse_mount_points(lines: Iterable[str]) -> list[str]:
    """Mount points (field 5) of /proc/<pid>/mountinfo rows, with the kernel's octal escapes
    (space, tab, newline, backslash) undone."""
    points = []
    for line in lines:
        fields = line.split(" ")
        if len(fields) > 4 and fields[4]:
            points.append(_OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4]))
    return points


def unescape(text: str) -> str:
    """A mountinfo field with the kernel's octal escapes (``\\040`` for a space) undone."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), text) if "\\" in text else text


@dataclass(frozen=True)
class Mount:
    """One row of /proc/<pid>/mountinfo (proc(5)), its text fields unescaped."""

    mount_id: int
    parent_id: int
    major: int
    minor: int
    root: str  # the path inside the mounted file system that is seen at `point`
    point: str  # where, in this process's mount namespace
    options: tuple[str, ...]  # per-mount options: rw/ro, nosuid, relatime, ...
    optional: tuple[str, ...]  # shared:N, master:N, propagate_from:N, unbindable
    fstype: str
    source: str
    super_options: tuple[str, ...]  # per-superblock options (overlay: lowerdir=..., ...)

    @property
    def device(self) -> str:
        return f"{self.major}:{self.minor}"

    @property
    def read_only(self) -> bool:
        return "ro" in self.options

    @property
    def propagation(self) -> str:
        """private, shared, slave, shared+slave or unbindable: what the optional fields say
        (mountinfo cannot tell rprivate from private: recursion is not recorded)."""
        tags = {field.split(":", 1)[0] for field in self.optional}
        if "unbindable" in tags:
            return "unbindable"
        if "shared" in tags and "master" in tags:
            return "shared+slave"
        if "shared" in tags:
            return "shared"
        if "master" in tags:
            return "slave"
        return "private"

    def option(self, name: str) -> str | None:
        """The value of a super option `name=value` (None if absent)."""
        prefix = name + "="
        for opt in self.super_options:
            if opt.startswith(prefix):
                return opt[len(prefix) :]
        return None


def parse_mountinfo(lines: Iterable[str]) -> list[Mount]:
    """Rows of /proc/<pid>/mountinfo; a line that is not one is skipped (never raises)."""
    out = []
    for line in lines:
        mount = _row(line.rstrip("\n"))
        if mount is not None:
            out.append(mount)
    return out


def _row(line: str) -> Mount | None:
    fields = line.split(" ")
    try:
        dash = fields.index("-", 6)
    except ValueError:
        return None
    if len(fields) < dash + 3 or len(fields) < 6:
        return None
    mount_id, parent_id = number(fields[0]), number(fields[1])
    major, _, minor = fields[2].partition(":")
    dev_major, dev_minor = number(major), number(minor)
    if None in (mount_id, parent_id, dev_major, dev_minor) or not fields[4]:
        return None
    assert mount_id is not None and parent_id is not None  # for mypy: checked just above
    assert dev_major is not None and dev_minor is not None
    # Super options: commas inside values are escaped by the kernel (\054), so ',' splits.
    supers = ",".join(fields[dash + 3 :])  # an unescaped space cannot be there; be lenient
    return Mount(
        mount_id=mount_id,
        parent_id=parent_id,
        major=dev_major,
        minor=dev_minor,
        root=unescape(fields[3]),
        point=unescape(fields[4]),
        options=tuple(fields[5].split(",")),
        optional=tuple(f for f in fields[6:dash] if f),
        fstype=unescape(fields[dash + 1]),
        source=unescape(fields[dash + 2]),
        super_options=tuple(unescape(o) for o in supers.split(",") if o),
    )


def overlay_dirs(value: str | None) -> list[str]:
    """overlayfs's lowerdir value split into its directories, top first. overlayfs escapes a
    ':' inside a path as '\\:'; '::' (data-only lower layers, Linux 6.5+) is not a layer of
    the merged view's own and is skipped as an empty entry."""
    if not value:
        return []
    parts = re.split(r"(?<!\\):", value)
    return [p.replace("\\:", ":") for p in parts if p]


def read(root: HostRoot, pid: int) -> list[Mount]:
    """pid's mount table. OSError if it cannot be read (gone, or not ours to read)."""
    with open(f"{root.pid_dir(pid)}/mountinfo", "rb") as f:
        data = f.read()
    return parse_mountinfo(os.fsdecode(data).splitlines())


def host_table(root: HostRoot) -> tuple[list[Mount], str]:
    """The host's mount table and whose it is: PID 1's, or kthreadd's (PID 2, which lives
    in the initial namespaces) where PID 1's cannot be read; never this process's own, which
    may run in a container. ([], "unknown: why") if neither can be read."""
    why = ""
    for pid, who in ((1, "pid 1"), (2, "pid 2 (kthreadd)")):
        try:
            return read(root, pid), who
        except OSError as exc:
            why = exc.strerror or type(exc).__name__
    return [], f"unknown: /proc/1/mountinfo and /proc/2/mountinfo: {why.lower()}"


def host_path(host: Sequence[Mount], mount: Mount) -> str | None:
    """Where a mount seen in another namespace is on the host: a host mount of the same
    device whose root contains the mount's root, the deepest such root first; None if no
    host mount shows that part of the device (a tmpfs of the container's own, say)."""
    best: Mount | None = None
    for cand in host:
        if cand.major != mount.major or cand.minor != mount.minor:
            continue
        if not _under(mount.root, cand.root):
            continue
        if best is None or len(cand.root) > len(best.root):
            best = cand
    if best is None:
        return None
    rest = mount.root[len(best.root) :].lstrip("/") if best.root != "/" else mount.root[1:]
    return os.path.join(best.point, rest) if rest else best.point


def _under(path: str, top: str) -> bool:
    return top == "/" or path == top or path.startswith(top.rstrip("/") + "/")
