"""The kernel's process events: the proc connector (netlink NETLINK_CONNECTOR, CN_IDX_PROC).

Every fork, exec, exit and comm change on the host arrives as one 76-byte datagram (16 bytes
nlmsghdr, 20 bytes cn_msg, 40 bytes proc_event: what@0, cpu@4, timestamp_ns@8 (CLOCK_MONOTONIC),
data@16; include/uapi/linux/cn_proc.h). This module owns the socket: the subscription and its
acknowledgement, the parsing (total: never raises), and every way of noticing that events were
lost, because a tracer that hides loss shows an empty or partial story as if it were whole:

- `recv` fails with ENOBUFS once per overflow of the receive buffer (the socket keeps going);
- `cn_msg.seq` counts per CPU (kernel send_msg: the same counter for acks, and acks of other
  listeners are broadcast too), so a gap on one CPU is that many lost messages;
- the Drops column of /proc/net/netlink counts every message dropped at this socket, including
  a loss at the end of the stream that no later sequence number reveals.

The receive buffer is sized with SO_RCVBUFFORCE (CAP_NET_ADMIN): the default 212,992 bytes
holds about 256 events (each queued datagram costs ~832 bytes), which one `docker run` burst
can fill (docs/CONTAINERS.md §3).

The kernel ignores a subscription from a non-initial user or PID namespace without an error
(cn_proc.c cn_proc_mcast_ctl: "Events are reported with respect to the initial pid and user
namespaces so ignore requestors from other namespaces"), and sends no acknowledgement then:
`subscribe` waits for the acknowledgement of its own request, so that case is an error, never
an empty trace. (Events may still arrive on such a socket while another process on the host is
subscribed; their PIDs are the initial namespace's.)
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import select
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import NamedTuple

from tracer.errors import BlindError, TracerError

NETLINK_CONNECTOR = 11
CN_IDX_PROC = 1
CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN = 1
PROC_CN_MCAST_IGNORE = 2
NLMSG_DONE = 3
SO_RCVBUFFORCE = 33  # asm-generic/socket.h; the socket module does not name it

# proc_event.what (include/uapi/linux/cn_proc.h)
NONE = 0x0  # an acknowledgement
FORK = 0x1
EXEC = 0x2
UID = 0x4
GID = 0x40
SID = 0x80
PTRACE = 0x100
COMM = 0x200
COREDUMP = 0x40000000
EXIT = 0x80000000

EVENT_SIZE = 76
DEFAULT_BUFFER = 16 << 20  # the kernel doubles it (32 MiB, as SO_RCVBUF reads): ~40,000 events
NO_CPU = 0xFFFFFFFF  # acks of kernels before 5.x carried cpu -1 and the requester's seq

# nlmsghdr (len, type, flags, seq, pid), cn_msg (idx, val, seq, ack, len, flags), proc_event
# (what, cpu, timestamp_ns) and six u32 of its data: all of exit's, fork's four, exec's two.
_EVENT = struct.Struct("=IHHIIIIIIHHIIQIIIIII")
_REQUEST = struct.Struct("=IHHIIIIIIHHI")


class Event(NamedTuple):
    """One process event, as the kernel sent it. PIDs are the initial namespace's.

    fork: pid/tgid are the child's, ppid/ptgid the parent's (the thread that forked, and its
    process). exec, comm: pid/tgid of the process. exit: pid/tgid, code (a wait status:
    code >> 8 is the exit status, code & 0x7f the killing signal), ppid/ptgid the parent at
    exit. A thread has pid != tgid.
    """

    what: int
    cpu: int
    seq: int
    ts: int  # CLOCK_MONOTONIC nanoseconds
    pid: int
    tgid: int
    ppid: int = 0
    ptgid: int = 0
    code: int = 0
    comm: str = ""
    ack: int = 0  # for acknowledgements: the cn_msg ack (request's ack + 1); data.ack.err


def parse(data: bytes | bytearray | memoryview, size: int | None = None) -> Event | None:
    """One datagram as an Event; None if it is not a proc connector event (total)."""
    size = len(data) if size is None else size
    if size < EVENT_SIZE:
        return None
    (_nl_len, _nl_type, _nl_flags, _nl_seq, _nl_pid, idx, val, seq, ack, _len, _flags,
     what, cpu, ts, a, b, c, d, e, f) = _EVENT.unpack_from(data)  # fmt: skip
    if idx != CN_IDX_PROC or val != CN_VAL_PROC:
        return None
    if what == FORK:  # parent pid, parent tgid, child pid, child tgid
        return Event(what, cpu, seq, ts, c, d, a, b)
    if what == EXIT:  # pid, tgid, exit_code, exit_signal, parent pid, parent tgid
        return Event(what, cpu, seq, ts, a, b, e, f, c)
    if what == COMM:  # pid, tgid, comm[16]
        raw = bytes(data[60:76]).split(b"\0", 1)[0]
        return Event(what, cpu, seq, ts, a, b, comm=os.fsdecode(raw))
    if what == NONE:  # an acknowledgement: data.ack.err
        return Event(what, cpu, seq, ts, 0, 0, code=a, ack=ack)
    return Event(what, cpu, seq, ts, a, b)


def listen_request(op: int, nonce: int) -> bytes:
    """The netlink message that subscribes (or unsubscribes) this socket; the kernel's
    acknowledgement carries nonce + 1 in cn_msg.ack."""
    return _REQUEST.pack(_REQUEST.size, NLMSG_DONE, 0, 0, 0,
                         CN_IDX_PROC, CN_VAL_PROC, 0, nonce, 4, 0, op)  # fmt: skip


@dataclass
class Loss:
    """Every sign of lost events on one socket."""

    gaps: int = 0  # messages missing from the per-CPU sequence numbers
    overflows: int = 0  # ENOBUFS from recv: the receive buffer overflowed (once per episode)
    drops: int | None = None  # /proc/net/netlink Drops of this socket (None: unreadable)
    _last: dict[int, int] = field(default_factory=dict, repr=False)

    @property
    def lost(self) -> int:
        """At least this many events were lost (gaps miss a loss at the end; drops see all)."""
        return max(self.gaps, self.drops or 0)

    def see(self, cpu: int, seq: int) -> None:
        if cpu == NO_CPU:
            return
        last = self._last.get(cpu)
        if last is not None:
            gap = (seq - last - 1) & 0xFFFFFFFF
            if gap >= 1 << 31:
                return  # older than the last one (never seen: one CPU sends in order)
            self.gaps += gap
        self._last[cpu] = seq


class Connector:
    """A subscribed proc connector socket: `receive` drains what the kernel queued."""

    def __init__(self, buffer: int = DEFAULT_BUFFER) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
        self.loss = Loss()
        self.received = 0  # datagrams, acks included
        self.max_backlog = 0  # the most events one drain found queued
        self.buffer_error: OSError | None = None
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, buffer)
        except OSError as exc:  # EPERM without CAP_NET_ADMIN: the caller decides
            self.buffer_error = exc
        self.buffer = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.sock.bind((0, CN_IDX_PROC))
        self.sock.setblocking(False)
        self._poll = select.poll()
        self._poll.register(self.sock.fileno(), select.POLLIN)
        self._buf = bytearray(4096)
        self._inode = os.fstat(self.sock.fileno()).st_ino

    def subscribe(self, timeout: float = 2.0) -> list[Event]:
        """Ask for every event; wait for the kernel's acknowledgement of this very request.
        Returns the events that arrived meanwhile. BlindError if none comes: the kernel ignores
        requests from non-initial PID and user namespaces, without an error."""
        nonce = random.randrange(1, 1 << 30)
        try:
            self.sock.send(listen_request(PROC_CN_MCAST_LISTEN, nonce))
        except ConnectionRefusedError as exc:
            # The connector lives in the initial network namespace only: from any other (a
            # container without --network=host) the kernel refuses the request.
            raise BlindError(
                "the kernel refused the subscription to process events: dtrace-tree runs in a "
                "network namespace of its own, and the proc connector answers in the host's only",
                "run the container with --network=host (Kubernetes: hostNetwork: true)",
            ) from exc
        deadline = time.monotonic() + timeout
        early: list[Event] = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                where = namespace_blind()
                why = (
                    f": dtrace-tree runs in {where}, whose subscriptions it ignores"
                    if where
                    else " (it ignores subscriptions from non-initial PID and user namespaces)"
                )
                raise BlindError(
                    "the kernel did not acknowledge the subscription to process events" + why,
                    "run it in the host's initial namespaces: on the host, or in a container "
                    "with --pid=host and no user namespace",
                )
            for ev in self._drain(left, keep_acks=True):
                if ev.what == NONE:
                    if ev.ack == nonce + 1:
                        if ev.code:
                            raise TracerError(
                                f"the kernel refused the subscription: {os.strerror(ev.code)}"
                            )
                        return early
                    continue  # another listener's acknowledgement
                early.append(ev)

    def receive(self, timeout: float, limit: int = 4096) -> list[Event]:
        """The events queued now (waiting up to timeout seconds for the first), at most
        limit; acknowledgements are counted in the sequence and left out."""
        return self._drain(timeout, limit=limit)

    def _drain(self, timeout: float, keep_acks: bool = False, limit: int = 4096) -> list[Event]:
        out: list[Event] = []
        if not self._poll.poll(max(0, int(timeout * 1000))):
            return out
        sock, buf, loss = self.sock, self._buf, self.loss
        while len(out) < limit:
            try:
                size = sock.recv_into(buf)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    loss.overflows += 1
                    continue
                raise
            self.received += 1
            ev = parse(buf, size)
            if ev is None:
                continue
            loss.see(ev.cpu, ev.seq)
            if ev.what != NONE or keep_acks:
                out.append(ev)
        self.max_backlog = max(self.max_backlog, len(out))
        return out

    def drops(self) -> int | None:
        """This socket's Drops column in /proc/net/netlink (None if it cannot be read). Our
        own socket, in our own network namespace: /proc/self, not the host root's /proc."""
        try:
            with open("/proc/self/net/netlink", encoding="ascii") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError):
            return None
        return netlink_drops(lines, self._inode)

    def close(self) -> None:
        """Unsubscribe (the kernel stops counting this listener) and close."""
        self.loss.drops = self.drops()
        with contextlib.suppress(OSError):  # already closed by the kernel's side: fine
            self.sock.send(listen_request(PROC_CN_MCAST_IGNORE, 0))
        self.sock.close()

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.sock.fileno() >= 0:
            self.close()


def netlink_drops(lines: list[str], inode: int) -> int | None:
    """The Drops of the socket with this inode, from /proc/net/netlink's lines (total)."""
    if not lines:
        return None
    header = lines[0].split()
    try:
        drops_at, inode_at = header.index("Drops"), header.index("Inode")
    except ValueError:
        return None
    for line in lines[1:]:
        cols = line.split()
        if len(cols) > max(drops_at, inode_at) and cols[inode_at] == str(inode):
            return int(cols[drops_at]) if cols[drops_at].isdigit() else None
    return None


# The inodes of the initial namespaces are constants (include/linux/proc_ns.h).
PROC_PID_INIT_INO = 0xEFFFFFFC
PROC_USER_INIT_INO = 0xEFFFFFFD


def namespace_blind() -> str | None:
    """Why this process's subscription is ignored, when it can tell: it is in a non-initial
    PID or user namespace (its /proc/self/ns inode is not the initial one's). None when
    neither shows (then the kernel's silence is all there is to go on)."""
    for kind, initial, what in (("pid", PROC_PID_INIT_INO, "a non-initial PID namespace"),
                                ("user", PROC_USER_INIT_INO, "a user namespace")):  # fmt: skip
        try:
            if os.stat(f"/proc/self/ns/{kind}").st_ino != initial:
                return what
        except OSError:
            continue
    return None
