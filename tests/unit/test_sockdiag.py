"""sock_diag replies: parsed from bytes shaped like the kernel's, and never raising on others."""

from __future__ import annotations

import os
import socket
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracer.kernel import sockdiag


def message(inode: int, peer: int | None, name: bytes | None = None) -> bytes:
    body = struct.pack("=BBBBIII", 1, 1, 1, 0, inode, 0, 0)
    for kind, payload in (
        (0, name),
        (sockdiag.UNIX_DIAG_PEER, None if peer is None else struct.pack("=I", peer)),
    ):
        if payload is not None:
            rta = struct.pack("=HH", 4 + len(payload), kind) + payload
            body += rta + b"\0" * (-len(rta) % 4)
    head = struct.pack("=IHHII", 16 + len(body), sockdiag.SOCK_DIAG_BY_FAMILY, 2, 1, 0)
    return head + body


DONE = struct.pack("=IHHII", 20, sockdiag.NLMSG_DONE, 2, 1, 0) + b"\0" * 4


def test_peers_are_read_and_unconnected_sockets_skipped():
    data = message(100, 200) + message(300, None, b"/run/x.sock") + message(201, 100, b"@abc")
    assert sockdiag.parse(data) == ({100: 200, 201: 100}, False)


def test_done_ends_the_dump():
    assert sockdiag.parse(message(1, 2) + DONE + message(3, 4)) == ({1: 2}, True)


def test_the_request_asks_for_every_unix_socket_with_its_peer():
    req = sockdiag.request(seq=7)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", req)
    family, _, _, states, _, show, _, _ = struct.unpack_from("=BBHIIIII", req, 16)
    assert (length, kind, seq) == (len(req), sockdiag.SOCK_DIAG_BY_FAMILY, 7)
    assert flags & sockdiag.NLM_F_DUMP and family == 1
    assert states == 0xFFFFFFFF and show == sockdiag.UDIAG_SHOW_PEER


@given(st.binary(max_size=512))
def test_parser_is_total(data):
    peers, done = sockdiag.parse(data)
    assert isinstance(peers, dict) and isinstance(done, bool)


def test_this_namespace_answers():
    peers = sockdiag.unix_peers()  # may be empty in a sandbox, never raises
    assert all(isinstance(k, int) and isinstance(v, int) for k, v in peers.items())


def sock_diag_refused() -> bool:
    """Does the kernel (or a sandbox) refuse NETLINK_SOCK_DIAG here?"""
    try:
        socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, sockdiag.NETLINK_SOCK_DIAG).close()
    except OSError:
        return True
    return False


@pytest.fixture
def pair():
    """Two connected unix sockets, and their inodes."""
    if sock_diag_refused():
        pytest.skip("sock_diag is refused here")
    a, b = socket.socketpair(socket.AF_UNIX)
    with a, b:
        yield os.fstat(a.fileno()).st_ino, os.fstat(b.fileno()).st_ino


def test_a_socketpairs_ends_are_each_others_peers(pair):
    a, b = pair
    peers = sockdiag.unix_peers()
    assert (peers.get(a), peers.get(b)) == (b, a)


def test_naming_our_own_network_namespace_gives_the_same_answer(pair):
    a, b = pair
    own = sockdiag.unix_peers(netns=None)
    named = sockdiag.unix_peers(netns=f"/proc/{os.getpid()}/ns/net")
    assert (own.get(a), own.get(b)) == (b, a)
    assert (named.get(a), named.get(b)) == (b, a)
    assert {a: own[a], b: own[b]} == {a: named[a], b: named[b]}


@pytest.mark.skipif(os.geteuid() != 0, reason="joining a network namespace takes CAP_SYS_ADMIN")
def test_a_joined_namespace_is_dumped_by_the_thread_that_joined_it(pair):
    """The path taken for another process's namespace (a tool in a container, a rootless
    engine): a thread joins it, dumps it, and ends; here the namespace joined is our own."""
    a, b = pair
    peers = sockdiag._joined(f"/proc/{os.getpid()}/ns/net", lambda: sockdiag._dump(2.0))
    assert (peers.get(a), peers.get(b)) == (b, a)


@pytest.mark.parametrize(
    "netns",
    [
        "/nonexistent/ns/net",  # cannot be opened
        "/proc/0/ns/net",  # no such process
        "/dev/null",  # opens, but is no namespace
        "/",  # a directory
    ],
)
def test_a_namespace_that_cannot_be_joined_gives_nothing(netns):
    assert sockdiag.unix_peers(netns=netns) == {}
