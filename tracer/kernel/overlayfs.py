"""overlayfs as the kernel writes it: what a writable (upper) layer holds, read from its files.

A container's changes live in its upper dir (Documentation/filesystems/overlayfs.rst): a new or
modified file is there whole (copied up), a deleted one is a *whiteout* (a character device
0/0), and a directory that replaced a lower one is *opaque* (xattr `trusted.overlay.opaque=y`),
hiding what the lower layers hold under it. An overlay mounted in a user namespace (rootless
Docker's, with the `userxattr` option, Linux 5.11+) keeps its own xattrs in the user.* namespace
instead: `user.overlay.opaque=y`.

`scan` lists the changes the way `docker diff` does on these machines: moby compares the
container's tree with its image's (archive.ChangesDirs, its "naive" diff; dockerd 20.10 here
uses it although `docker info` says "Native Overlay Diff: true": a directory whose mtime alone
changed is not listed, a file hidden by an opaque directory is listed as deleted). The same
answer is computed from the upper dir alone plus lookups in the lower layers: an entry of the
upper dir absent below is A (added); present below, C (changed) if its type, mode, owner or
device differ, or, not a directory, its size or mtime, or its security.capability; a whiteout
is D (deleted), and so is whatever an opaque directory hides; every directory holding a change
is C. Listed by path (docker lists them in the order of a Go map). Sizes are `docker ps -s`'s
(moby's directory.Size: files and links once per inode, directories not at all) and, for
containerd's snapshotter, `ctr snapshots usage`'s (its fs.DiskUsage: disk blocks of every
inode once, directories and the layer's own included, as du counts them).

Paths are seen from here (HostRoot.path already applied); the container may write while we
read, so an entry that vanishes is skipped, never fatal.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field

OPAQUE = "trusted.overlay.opaque"
USER_OPAQUE = "user.overlay.opaque"  # with the mount option userxattr (a user namespace's)
MAX_ENTRIES = 1_000_000  # a bound on one scan: a writable layer larger than this is cut


@dataclass(frozen=True)
class Change:
    kind: str  # A | C | D
    path: str  # in the container, from /


@dataclass
class Scan:
    """One writable layer, read: its size, its changes (counted; listed if asked)."""

    size_bytes: int = 0
    disk_bytes: int = 0  # 512-byte blocks, each inode once, directories included
    added: int = 0
    changed: int = 0
    deleted: int = 0
    changes: list[Change] | None = None  # None unless asked for
    entries: int = 0
    truncated: bool = False
    errors: list[str] = field(default_factory=list)  # what could not be read, and why


def is_whiteout(st: os.stat_result) -> bool:
    """A deleted file: a character device with device number 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def opaque_xattr(super_options: Sequence[str]) -> str:
    """The xattr that marks an opaque directory in the upper dir of a mount with these
    options: user.overlay.opaque with `userxattr`, else trusted.overlay.opaque."""
    return USER_OPAQUE if "userxattr" in super_options else OPAQUE


def is_opaque(path: str, xattr: str = OPAQUE) -> bool | None:
    """Does this directory hide every lower directory of its name? None if the xattr cannot be
    read (trusted.* needs CAP_SYS_ADMIN)."""
    try:
        return os.getxattr(path, xattr, follow_symlinks=False) == b"y"
    except OSError as exc:
        if exc.errno in (61, 95):  # ENODATA: no such xattr; EOPNOTSUPP
            return False
        return None


def size(top: str) -> tuple[int | None, str | None]:
    """moby's directory.Size of a layer directory, and why not if it cannot be read."""
    found = scan(top, (), list_changes=False, classify=False)
    if found.errors and found.entries == 0:
        return None, found.errors[0]
    return found.size_bytes, None


def scan(
    upper: str,
    lowers: Sequence[str],
    list_changes: bool = False,
    classify: bool = True,
    opaque: str = OPAQUE,
) -> Scan:
    """The upper dir read whole, depth first in name order. lowers: the lower dirs, top first
    (the container's init layer, then its image's layers). opaque: the xattr that marks an
    opaque directory (`opaque_xattr` of the mount's options)."""
    out = Scan(changes=[] if list_changes else None)
    try:
        top = os.lstat(upper)
    except OSError as exc:
        out.errors.append(f"{upper}: {_why(exc)}")
        return out
    if not stat.S_ISDIR(top.st_mode):
        out.errors.append(f"{upper}: not a directory")
        return out
    below = Lowers(lowers, opaque)
    found: dict[str, str] = {}  # path -> A | C | D
    seen_inodes: set[int] = set()
    disk_inodes = {top.st_ino}
    out.disk_bytes = top.st_blocks * 512
    stack = _listing(out, upper, "/")
    while stack:  # depth first, each directory before what it holds, names in order
        if out.entries >= MAX_ENTRIES:
            out.truncated = True
            break
        path = stack.pop()
        try:
            st = os.lstat(upper + path)
        except OSError:
            continue  # gone since the listing
        out.entries += 1
        is_dir = stat.S_ISDIR(st.st_mode)
        if st.st_ino not in disk_inodes:
            disk_inodes.add(st.st_ino)
            out.disk_bytes += st.st_blocks * 512
        if not is_dir and st.st_size and st.st_ino not in seen_inodes:
            seen_inodes.add(st.st_ino)
            out.size_bytes += st.st_size
        if classify and not _classify(out, upper, below, path, st, found):
            continue  # a whiteout: nothing under it
        if is_dir:
            stack.extend(_listing(out, upper, path))
    for path in list(found):  # every directory above a change has changed
        parent = os.path.dirname(path)
        while parent != "/" and parent not in found:
            found[parent] = "C"
            parent = os.path.dirname(parent)
    for path in sorted(found, key=lambda p: p.split("/")):
        _record(out, Change(found[path], path))
    return out


def _classify(
    out: Scan, upper: str, below: Lowers, path: str, st: os.stat_result, found: dict[str, str]
) -> bool:
    """One entry of the upper dir against the lower layers; False for a whiteout."""
    old = below.lstat(path)
    if is_whiteout(st):
        if old is not None:
            found[path] = "D"
        return False
    if old is None:
        found[path] = "A"
        return True
    if _differs(old, st) or _capability(below.where(path)) != _capability(upper + path):
        found[path] = "C"
    if stat.S_ISDIR(st.st_mode) and stat.S_ISDIR(old.st_mode):
        opaque = is_opaque(upper + path, below.opaque)
        if opaque is None:
            out.errors.append(f"{upper + path}: xattr {below.opaque} not readable")
        elif opaque:  # what the lower layers hold here is gone, unless made again above
            for name in below.listdir(path):
                child = f"{path.rstrip('/')}/{name}"
                if not os.path.lexists(upper + child):
                    found[child] = "D"
    return True


def _differs(old: os.stat_result, new: os.stat_result) -> bool:
    """moby's statDifferent: type and mode, owner, device; for a file also size and mtime (a
    directory's size and mtime are no measure of change, moby#9874)."""
    if (old.st_mode, old.st_uid, old.st_gid, old.st_rdev) != (
        new.st_mode,
        new.st_uid,
        new.st_gid,
        new.st_rdev,
    ):
        return True
    if stat.S_ISDIR(old.st_mode):
        return False
    return old.st_size != new.st_size or not _same_time(old.st_mtime_ns, new.st_mtime_ns)


def _same_time(a: int, b: int) -> bool:
    """moby's sameFsTimeSpec: equal, or the same second when one of them has no nanoseconds
    (some file systems and tar keep seconds only)."""
    second = 1_000_000_000
    return a == b or (a // second == b // second and (a % second == 0 or b % second == 0))


def _capability(path: str | None) -> bytes:
    if path is None:
        return b""
    try:
        return os.getxattr(path, "security.capability", follow_symlinks=False)
    except OSError:
        return b""


class Lowers:
    """The lower layers seen as overlayfs merges them: the topmost entry of a name wins, a
    whiteout hides the name below it, a file hides what lies below it, an opaque directory
    hides the directories below it. Each directory's layers are found once."""

    def __init__(self, lowers: Sequence[str], opaque: str = OPAQUE) -> None:
        self.opaque = opaque
        self._dirs: dict[str, list[str]] = {"/": list(lowers)}  # dir -> the layers merged there

    def _layers(self, directory: str) -> list[str]:
        if directory not in self._dirs:
            parent = os.path.dirname(directory)
            merged: list[str] = []
            for layer in self._layers(parent):
                st = _lstat(f"{layer}{directory}")
                if st is None:
                    continue
                if is_whiteout(st) or not stat.S_ISDIR(st.st_mode):
                    break
                merged.append(layer)
                if is_opaque(f"{layer}{directory}", self.opaque):
                    break
            self._dirs[directory] = merged
        return self._dirs[directory]

    def where(self, path: str) -> str | None:
        """The lower file that shows at path (None if none does)."""
        for layer in self._layers(os.path.dirname(path)):
            st = _lstat(f"{layer}{path}")
            if st is not None:
                return None if is_whiteout(st) else f"{layer}{path}"
        return None

    def lstat(self, path: str) -> os.stat_result | None:
        where = self.where(path)
        return _lstat(where) if where else None

    def listdir(self, directory: str) -> list[str]:
        """The names in a directory of the merged lower layers."""
        shown: dict[str, bool] = {}
        for layer in self._layers(directory):
            try:
                names = os.listdir(f"{layer}{directory}")
            except OSError:
                continue
            for name in names:
                if name not in shown:
                    st = _lstat(f"{layer}{directory.rstrip('/')}/{name}")
                    shown[name] = st is not None and not is_whiteout(st)
        return sorted(n for n, visible in shown.items() if visible)


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except OSError:
        return None


def _listing(out: Scan, upper: str, rel: str) -> list[str]:
    """The paths in one directory of the upper dir, last name first (for a stack)."""
    here = upper if rel == "/" else upper + rel
    try:
        names = os.listdir(here)
    except FileNotFoundError:
        return []
    except OSError as exc:
        out.errors.append(f"{here}: {_why(exc)}")
        return []
    prefix = "" if rel == "/" else rel
    return [f"{prefix}/{name}" for name in sorted(names, reverse=True)]


def _record(out: Scan, change: Change) -> None:
    if change.kind == "A":
        out.added += 1
    elif change.kind == "C":
        out.changed += 1
    else:
        out.deleted += 1
    if out.changes is not None:
        out.changes.append(change)


def _why(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()
