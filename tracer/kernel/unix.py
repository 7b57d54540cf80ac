"""Unix sockets as /proc shows them: which a process holds, and which are listening where.

`/proc/<pid>/fd/N` links read `socket:[INODE]`; `/proc/<pid>/net/unix` (one table per network
namespace) names the listening sockets with their paths. Together they prove which process
serves a socket path. Which client is connected to which server takes sock_diag
(tracer/kernel/sockdiag.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

from tracer.kernel.root import HostRoot

ACCEPTCON = 0x10000  # __SO_ACCEPTCON: the socket listens


SOCKET = "socket:["  # how an fd link on a socket starts


def socket_inodes(root: HostRoot, pid: int) -> set[int]:
    """The inodes of every socket pid holds open (empty if its fds cannot be read)."""
    inodes: set[int] = set()
    fd_dir = f"{root.pid_dir(pid)}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return inodes
    for name in names:
        with contextlib.suppress(OSError, ValueError):
            target = os.readlink(f"{fd_dir}/{name}")
            if target.startswith(SOCKET):
                inodes.add(int(target[8:-1]))
    return inodes


def inodes_of(links: Iterable[str]) -> set[int]:
    """The socket inodes among fd links ("socket:[123]")."""
    inodes: set[int] = set()
    for target in links:
        if target.startswith(SOCKET):
            with contextlib.suppress(ValueError):
                inodes.add(int(target[8:-1]))
    return inodes


def listening(root: HostRoot, pid: int) -> dict[int, str]:
    """Listening unix sockets of pid's network namespace: {inode: path} (from net/unix)."""
    try:
        with open(f"{root.pid_dir(pid)}/net/unix", encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return {}
    return parse_unix_table(lines)


def parse_unix_table(lines: Iterable[str]) -> dict[int, str]:
    """Parse /proc/net/unix rows into {inode: path} for listening, named sockets."""
    out = {}
    for line in lines:
        parts = line.split(None, 7)
        if len(parts) < 8:
            continue
        try:
            flags, inode = int(parts[3], 16), int(parts[6])
        except ValueError:
            continue
        if flags & ACCEPTCON:
            out[inode] = parts[7]
    return out
