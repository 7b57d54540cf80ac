"""Unix socket peers from the kernel, through NETLINK_SOCK_DIAG (what `ss -xp` shows).

/proc/net/unix names listeners but cannot say which client is connected to which accepted
socket; sock_diag's UNIX_DIAG_PEER can. No library wraps this, so it is written here, small:
one dump request, then {socket inode: peer inode} for every connected unix socket of one
network namespace. sock_diag answers for the namespace of the socket that asks, so the
namespace of the daemons is joined first when it is not this process's own (a tool in a
container, a rootless engine): by a thread of its own, since setns moves only its caller.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable, Iterator

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
UDIAG_SHOW_PEER = 0x4
UNIX_DIAG_PEER = 2
ALL_STATES = 0xFFFFFFFF

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_REQ = struct.Struct("=BBHIIIII")  # family, protocol, pad, states, ino, show, cookie[2]
_MSG = struct.Struct("=BBBBIII")  # family, type, state, pad, ino, cookie[2]
_RTA = struct.Struct("=HH")  # len, type


def request(seq: int = 1) -> bytes:
    body = _REQ.pack(socket.AF_UNIX, 0, 0, ALL_STATES, 0, UDIAG_SHOW_PEER, 0, 0)
    head = _NLMSGHDR.pack(
        _NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0
    )
    return head + body


def parse(data: bytes) -> tuple[dict[int, int], bool]:
    """{inode: peer inode} from one recv()'s netlink messages, and whether the dump is done.

    Total on any input: a truncated or malformed message ends the parse, never raises.
    """
    peers: dict[int, int] = {}
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            return peers, True
        if kind in (NLMSG_DONE, NLMSG_ERROR):
            return peers, True
        if kind == SOCK_DIAG_BY_FAMILY and length >= _NLMSGHDR.size + _MSG.size:
            msg = offset + _NLMSGHDR.size
            inode = _MSG.unpack_from(data, msg)[4]
            for rta_type, payload in _attributes(data, msg + _MSG.size, offset + length):
                if rta_type == UNIX_DIAG_PEER and len(payload) >= 4:
                    peers[inode] = struct.unpack_from("=I", payload)[0]
        offset += (length + 3) & ~3
    return peers, False


def _attributes(data: bytes, start: int, end: int) -> Iterator[tuple[int, bytes]]:
    pos = start
    while pos + _RTA.size <= end:
        length, kind = _RTA.unpack_from(data, pos)
        if length < _RTA.size or pos + length > end:
            return
        yield kind, data[pos + _RTA.size : pos + length]
        pos += (length + 3) & ~3


CLONE_NEWNET = 0x40000000


def unix_peers(netns: str | None = None, timeout: float = 2.0) -> dict[int, int]:
    """Every connected unix socket of a network namespace and its peer: the namespace of the
    `/proc/<pid>/ns/net` file netns, or this process's own. {} when it cannot be joined (not
    root) or the kernel or a sandbox refuses sock_diag: the links are then proven by
    listeners only."""
    if netns is None or _is_mine(netns):
        return _dump(timeout)
    return _joined(netns, lambda: _dump(timeout))


def _is_mine(netns: str) -> bool:
    try:
        return os.stat(netns).st_ino == os.stat("/proc/thread-self/ns/net").st_ino
    except OSError:  # our own /proc may be out of sight (a container, a test): join it then
        return False


def _joined(netns: str, work: Callable[[], dict[int, int]]) -> dict[int, int]:
    """work() run by a new thread that has joined the network namespace at netns. setns
    moves only the calling thread, and this one ends there; {} if it cannot join."""
    import threading

    out: dict[int, int] = {}

    def run() -> None:
        try:
            fd = os.open(netns, os.O_RDONLY)
            try:
                _setns(fd, CLONE_NEWNET)
            finally:
                os.close(fd)
        except OSError:
            return
        out.update(work())

    thread = threading.Thread(target=run, name="dtrace-tree-netns", daemon=True)
    thread.start()
    thread.join()
    return out


def _setns(fd: int, nstype: int) -> None:
    """os.setns (Python 3.12+), or the libc call through ctypes on 3.11."""
    if hasattr(os, "setns"):
        os.setns(fd, nstype)
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _dump(timeout: float) -> dict[int, int]:
    """One sock_diag dump of the calling thread's network namespace."""
    peers: dict[int, int] = {}
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
    except OSError:
        return peers
    with sock:
        sock.settimeout(timeout)
        try:
            sock.sendall(request(seq=os.getpid() & 0xFFFF))
            done = False
            while not done:
                found, done = parse(sock.recv(1 << 16))
                peers.update(found)
        except OSError:
            return peers
    return peers
