"""Namespaces as the kernel shows them: nsfs links, nsfs mounts, and the ioctls of ioctl_ns(2).

A namespace is an inode of the nsfs file system. Three things hold one alive, and each is seen
through /proc: a task in it (`/proc/<pid>/task/<tid>/ns/<type>` reads `net:[4026531840]`), a
bind mount of it (a mountinfo row of fstype `nsfs` whose root field is `net:[INODE]`), an open
fd on it (`/proc/<pid>/fd/<n>` reads `net:[INODE]` too). Its owning user namespace and, for
PID and user namespaces, its parent are only told by ioctls on an fd of it (NS_GET_USERNS,
NS_GET_PARENT); each of those returns a new fd that itself holds a namespace, so every fd
opened here is closed before the function returns. No library reads these (psutil reads no
namespace; lsns is C): written by hand.

Opening a path to ask an ioctl must change nothing and reach only the namespace meant: the
path is first opened with O_PATH (no open() of whatever file it turns out to be: a FIFO, a
tape drive), its inode checked against the one expected, and only then re-opened for reading
through /proc/self/fd. A path that now names another file (a PID reused, a mount replaced)
gives None: the caller leaves that namespace's relatives unknown and never borrows another's.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Collection
from dataclasses import dataclass

from tracer.kernel.mountinfo import unescape

# linux/nsfs.h: _IO(0xb7, 1) and _IO(0xb7, 2)
NS_GET_USERNS = 0xB701
NS_GET_PARENT = 0xB702
# The eight types of namespaces, in lsns's order, and the file of each under /proc/<pid>/ns.
TYPES = ("mnt", "net", "pid", "uts", "ipc", "user", "cgroup", "time")
_TYPES = frozenset(TYPES)
# What one thread of a process may have of its own: unshare(2) and setns(2) refuse a new mount
# or user namespace to a multithreaded process, and a task's PID and time namespaces are fixed
# for its life (setns and unshare change only those of its children). So the other tasks of
# a process are read for these four types only.
PER_THREAD = ("net", "uts", "ipc", "cgroup")
FOR_CHILDREN = {"pid_for_children": "pid", "time_for_children": "time"}
HIERARCHICAL = frozenset({"pid", "user"})  # the types NS_GET_PARENT answers for


def parse_link(link: str) -> tuple[str, int] | None:
    """("net", 4026531840) from "net:[4026531840]"; None for any other link (a socket, a
    pipe, a file, an anon inode)."""
    kind, sep, rest = link.partition(":[")
    if not sep or kind not in _TYPES or not rest.endswith("]"):
        return None
    digits = rest[:-1]
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 20:
        return None  # the same rule as untrusted.number, inlined: 80,000 links on a busy host
    return kind, int(digits)


@dataclass(frozen=True)
class NsMountRow:
    """One nsfs bind mount as one mount namespace sees it."""

    kind: str
    inode: int
    point: str  # where, in that mount namespace


def nsfs_mounts(data: bytes) -> list[NsMountRow]:
    """The nsfs rows of a mountinfo table (proc(5)): the namespace in the root field, the
    mount point unescaped. Only rows with ` - nsfs ` are split: a host's table has thousands
    of rows and a handful of these; most tables (a container's) have none."""
    out: list[NsMountRow] = []
    if b" - nsfs " not in data:
        return out
    for raw in data.split(b"\n"):
        if b" - nsfs " not in raw:
            continue
        fields = os.fsdecode(raw).split(" ")
        if len(fields) < 5:
            continue
        found = parse_link(unescape(fields[3]))
        if found is not None:
            out.append(NsMountRow(found[0], found[1], unescape(fields[4])))
    return out


@dataclass(frozen=True)
class Relatives:
    """What the ioctls tell of one namespace; None where the kernel refuses (EPERM: the owner
    or parent is outside what this process may see; EINVAL: no parent for this type)."""

    owner: int | None
    parent: int | None


def nsfs_device() -> int | None:
    """The device number of nsfs (st_dev of any namespace file); None without /proc."""
    try:
        return os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return None


def _open_verified(path: str, inode: int, dev: int | None, dir_fd: int | None) -> int | None:
    """An O_RDONLY fd on path if it is the nsfs inode expected, else None; nothing but an
    O_PATH open (which runs no driver code) touches a file that turns out to be another.
    A process's own `ns/<type>` link can only lead to a namespace: opened directly."""
    if path.startswith(("ns/", "task/")):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            return None
        try:
            if os.fstat(fd).st_ino == inode:
                return fd
        except OSError:
            pass
        os.close(fd)
        return None
    try:
        handle = os.open(path, os.O_PATH | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        st = os.fstat(handle)
        if st.st_ino != inode or (dev is not None and st.st_dev != dev):
            return None
        return os.open(f"/proc/self/fd/{handle}", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    finally:
        os.close(handle)


class _Gone(Exception):
    """The namespace file went away under an ioctl."""


REFUSED = (errno.EPERM, errno.EINVAL, errno.ENOTTY, errno.EACCES)
MAX_DEPTH = 64  # user and PID namespaces nest 32 deep at most: the bound is only a guard

Above = dict[int, tuple[str, Relatives]]  # inode -> (type, its relatives)


def relatives(
    path: str,
    kind: str,
    inode: int,
    dev: int | None = None,
    dir_fd: int | None = None,
    known: Collection[int] = frozenset(),
) -> tuple[Relatives, Above] | None:
    """The owner (NS_GET_USERNS) and, for pid and user namespaces, the parent (NS_GET_PARENT)
    of the namespace at path (relative to dir_fd), if path is still that namespace; None if
    it is not. Also the namespaces above it (owning user namespaces, parent PID namespaces)
    up to the top this process may see, or to one already known: they are namespaces too,
    held alive by this one even when no process, mount or fd is in them. Every fd met on the
    way is closed before returning."""
    fd = _open_verified(path, inode, dev, dir_fd)
    if fd is None:
        return None
    above: Above = {}
    try:
        return _up(fd, kind, above, known, {inode}, 0), above
    except _Gone:
        return None
    finally:
        os.close(fd)


def _up(
    fd: int, kind: str, above: Above, known: Collection[int], seen: set[int], depth: int
) -> Relatives:
    """The relatives of fd's namespace, one ioctl each; _Gone if it went away under one.
    Each fd an ioctl returns is climbed from (when its namespace is new) before it is closed:
    one ioctl per relation, where asking the owner again from above would take two."""
    owner = _step(fd, NS_GET_USERNS, "user", above, known, seen, depth)
    parent = None
    if kind in HIERARCHICAL:  # a user namespace's parent is its owner: met above already
        parent = _step(fd, NS_GET_PARENT, kind, above, known, seen, depth)
    return Relatives(owner=owner, parent=parent)


def _step(
    fd: int,
    request: int,
    kind: str,
    above: Above,
    known: Collection[int],
    seen: set[int],
    depth: int,
) -> int | None:
    """The inode of the namespace the ioctl returns an fd of, and that namespace's own
    relatives into `above` when it is neither known nor seen; None if the kernel refuses (the
    top of what may be seen, or no parent for this type)."""
    try:
        got = fcntl.ioctl(fd, request)
    except OSError as exc:
        if exc.errno in REFUSED:
            return None
        raise _Gone from exc
    try:
        ino = os.fstat(got).st_ino
        if ino in known or ino in seen or depth >= MAX_DEPTH:
            return ino
        seen.add(ino)
        try:
            above[ino] = (kind, _up(got, kind, above, known, seen, depth + 1))
        except (_Gone, OSError):
            seen.discard(ino)  # not told after all: left out, never invented
        return ino
    except OSError as exc:
        raise _Gone from exc
    finally:
        os.close(got)
