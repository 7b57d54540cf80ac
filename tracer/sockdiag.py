"""Unix socket peers from the kernel, through NETLINK_SOCK_DIAG (what `ss -xp` shows).

/proc/net/unix names listeners but cannot say which client is connected to which accepted
socket; sock_diag's UNIX_DIAG_PEER can. No library wraps this, so it is written here, small:
one dump request, then {socket inode: peer inode} for every connected unix socket of the
caller's network namespace.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator

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


def unix_peers(timeout: float = 2.0) -> dict[int, int]:
    """Every connected unix socket of this network namespace and its peer; {} when the
    kernel or the sandbox refuses sock_diag (the links are then proven by listeners only)."""
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
