"""What `fs` reports: a container's union root, its layers, its writable layer's changes and
its other mounts. Made by tracer/views/storage.py from what tracer/runtimes/storage.py read;
printed by tracer/output/terminal/storage.py; the JSON (`dtrace-tree/fs/1`) is in the README.

`None` always means "could not be seen" (and a note says why), never "none": an empty list is
an answer, a null one is not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA = "dtrace-tree/fs/1"
ROLES = ("rw", "init", "image", "lower")  # lower: a read-only layer whose role is unknown


@dataclass
class UnionRoot:
    """The container's root file system as mounted (or, stopped, as it would be)."""

    fstype: str | None
    lowerdir: list[str]  # as the mount options say, top first
    upperdir: str | None
    workdir: str | None
    merged: str | None  # where the host sees it mounted (None when not mounted)
    source: str  # where these come from: "mountinfo of pid N", a driver's record ...


@dataclass
class Layer:
    role: str  # rw | init | image | lower
    path: str | None  # the layer's directory on the host
    cache_id: str | None = None  # the driver's directory name (overlay2/<cache-id>)
    diff_id: str | None = None  # sha256 of the layer's uncompressed tar
    chain_id: str | None = None  # its name in layerdb: the layer and everything under it
    link: str | None = None  # overlay2's short name, as in the mount's lowerdir (l/<link>)
    # As the engine's own tools count it: overlay2, layerdb's size and docker ps -s (bytes of
    # the files); containerd's snapshotter, `ctr snapshots usage` (disk blocks, as du).
    size_bytes: int | None = None
    shared_with: list[str] | None = None  # other containers using it (None: unknown)
    snapshot_key: str | None = None  # containerd's snapshotter: its key in the namespace
    snapshot_id: str | None = None  # and its directory (snapshots/<id>)


@dataclass
class FileChange:
    kind: str  # A | C | D (docker diff's letters)
    path: str


@dataclass
class Changes:
    """The writable layer read: what the container added, changed and deleted."""

    added: int
    changed: int
    deleted: int
    files: list[FileChange] | None = None  # listed with --changes only
    truncated: bool = False


@dataclass
class MountPoint:
    """One mount of the container other than its root."""

    destination: str
    kind: str  # volume | bind | tmpfs | generated | init | system | <fstype>
    source: str | None  # on the host (None: the file system is the container's own)
    volume: str | None
    read_only: bool
    propagation: str  # private | shared | slave | shared+slave | unbindable
    fstype: str


@dataclass
class FsSubject:
    id: str
    name: str | None
    image: str | None
    state: str
    init_pid: int | None


@dataclass
class FsReport:
    """`fs CONTAINER`."""

    container: FsSubject
    driver: str | None
    data_root: str | None
    root: UnionRoot | None
    layers: list[Layer]
    changes: Changes | None
    mounts: list[MountPoint] | None  # None: not running (no mount table to read)
    notes: list[str] = field(default_factory=list)
    # Where the host reaches the paths above (/proc/<pid>/root), when they are in the engine's
    # own mount namespace (rootless Docker's, RootlessKit's); None: the host's own paths.
    seen_from: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        return {"schema": SCHEMA, **doc}
