"""Reading one process through an fd pinned on its /proc/<pid> directory.

An fd on /proc/<pid> stays bound to the process it was opened on: once that process is gone,
reads through it fail with ESRCH instead of reaching a newer process that reuses the PID. So
every field read through one fd belongs to one process, and one read of `stat` both identifies
it (start time) and gives its parent, state and name. No library reads this way: psutil reads
each file by path and, in its Process API, re-reads `stat` to re-check the PID at each call
(three reads of it per process in `process_iter`), which was most of the walk's time on a busy
host. The decoding rules below are psutil's, so the fields are the ones psutil would give
(tests/unit/test_procfs.py compares the two on every live process).

The words are psutil's, everywhere in dtrace-tree (snapshot, trace, serve, and their JSON):
`pid`, `ppid`, `name` (the kernel's comm, or argv[0]'s basename when comm is cut at 15 bytes),
`cmdline` (the argv), `create_time`, `status`, plus `namespaces` (type -> inode) and `start`.
`comm` means only the kernel's own 15-byte field (stat, the connector's comm events).

"The same process" has one definition here, as in psutil (`_get_ident`): a `ProcessId`, the
PID and the start time in clock ticks after boot (field 22 of stat). The kernel's own integer
is compared exactly: no tolerance, and no wall-clock arithmetic that an NTP step could shift.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from tracer.kernel.root import HostRoot
from tracer.untrusted import number

# psutil's Linux state letters (psutil/_pslinux.py PROC_STATUSES) and the values of its
# STATUS_* constants, written out so that the walk need not import psutil (~50 ms);
# tests/unit/test_procfs.py checks them against psutil.
ZOMBIE = "zombie"
STATES = {
    "R": "running",
    "S": "sleeping",
    "D": "disk-sleep",
    "T": "stopped",
    "t": "tracing-stop",
    "Z": ZOMBIE,
    "X": "dead",
    "x": "dead",
    "K": "wake-kill",
    "W": "waking",
    "I": "idle",
    "P": "parked",
}
COMM_LEN = 15  # the kernel keeps the first 15 bytes of the program name (TASK_COMM_LEN - 1)
# The types under /proc/<pid>/ns, in the order they are listed there.
NS_TYPES = (
    "cgroup",
    "ipc",
    "mnt",
    "net",
    "pid",
    "pid_for_children",
    "time",
    "time_for_children",
    "user",
    "uts",
)


@dataclass(frozen=True, order=True)
class ProcessId:
    """One process for the whole boot: its PID and its start time in clock ticks."""

    pid: int
    start: int

    def alive(self, root: HostRoot) -> bool:
        """Is this very process still running (not a zombie, and its PID not reused)?"""
        now = identify(root, self.pid)
        return now == self


@dataclass(frozen=True)
class Proc:
    """One process as /proc showed it, read through one pinned fd: the record of the host's
    snapshot (tracer/snapshot/walk.py) and of the processes a trace begins with."""

    pid: int
    ppid: int
    name: str
    cmdline: tuple[str, ...]
    create_time: float  # seconds since the epoch, as psutil gives it (for people and JSON)
    start: int = 0  # clock ticks after boot: with the pid, the process's identity
    uid: int | None = None
    status: str = "running"
    namespaces: Mapping[str, int] = field(default_factory=dict)
    denied: bool = False  # some of it could not be read for lack of privilege

    @property
    def ident(self) -> ProcessId:
        return ProcessId(self.pid, self.start)

    @cached_property
    def program(self) -> str:
        """What runs: basename of argv[0], or the kernel's (truncated) comm. Kept once made:
        the runtimes ask it of every process several times."""
        return program(self.cmdline) or self.name

    @property
    def zombie(self) -> bool:
        return self.status == ZOMBIE


@dataclass(frozen=True)
class Stat:
    """The fields of /proc/<pid>/stat that dtrace-tree uses."""

    comm: str
    state: str
    ppid: int
    start_ticks: int  # clock ticks after boot
    # num_threads when it was read (0: not told); not part of what the process is
    threads: int = field(default=0, compare=False)

    @property
    def status(self) -> str:
        return STATES.get(self.state, "unknown")

    def create_time(self, boot: float, clk: int) -> float:
        """Seconds since the epoch, computed as psutil does (so the two always agree)."""
        return float(self.start_ticks) / clk + boot


def parse_stat(raw: bytes) -> Stat | None:
    """Parse one /proc/<pid>/stat line; None if it is not one.

    The name (comm) sits in parentheses and may itself hold spaces and parentheses, so the
    fields are counted from the last ')'.
    """
    start, end = raw.find(b"("), raw.rfind(b")")
    if start < 0 or end < start:
        return None
    fields = raw[end + 2 :].split()
    try:
        state = fields[0].decode("ascii")
        # u64 at most: 20 digits
        ppid = number(fields[1].decode("ascii"), digits=20)
        threads = int(fields[17]) if fields[17].isdigit() else 0  # the kernel's own count
        ticks = number(fields[19].decode("ascii"), digits=20)
    except (IndexError, UnicodeDecodeError):
        return None
    if ppid is None or ticks is None:
        return None
    comm = os.fsdecode(raw[start + 1 : end])
    return Stat(comm=comm, state=state, ppid=ppid, start_ticks=ticks, threads=threads)


def split_cmdline(raw: bytes) -> tuple[str, ...]:
    """argv from /proc/<pid>/cmdline, split as psutil splits it.

    Arguments end in NUL; programs that rewrite their title (setproctitle) often separate
    them with spaces instead (giampaolo/psutil#1179). Undecodable bytes are kept as
    surrogate escapes, like every file name Python reads.
    """
    data = os.fsdecode(raw)
    if not data:
        return ()  # a zombie or a kernel thread
    sep = "\x00" if data.endswith("\x00") else " "
    if data.endswith(sep):
        data = data[:-1]
    argv = data.split(sep)
    if sep == "\x00" and len(argv) == 1 and " " in data:
        argv = data.split(" ")
    return tuple(argv)


def full_name(comm: str, argv: tuple[str, ...]) -> str:
    """The kernel truncates comm to 15 bytes; like psutil, take argv[0]'s basename when it
    starts with the truncated name ("containerd-shim" -> "containerd-shim-runc-v2")."""
    if len(comm) >= COMM_LEN and argv:
        extended = os.path.basename(argv[0])
        if extended.startswith(comm):
            return extended
    return comm


def wait_status(status: int) -> tuple[int | None, int | None]:
    """(exit status, killing signal) of a wait status (waitpid's, or an exit event's code);
    one of them is None, both when the status is not an end (a stopped process's)."""
    try:
        code = os.waitstatus_to_exitcode(status)
    except ValueError:
        return None, None
    return (None, -code) if code < 0 else (code, None)


def environ(raw: bytes) -> dict[str, str]:
    """The variables of a /proc/<pid>/environ (NUL-separated NAME=value; an item with no `=`
    is not a variable)."""
    env = {}
    for item in os.fsdecode(raw).split("\x00"):
        key, eq, value = item.partition("=")
        if eq and key:
            env[key] = value
    return env


def program(argv: Sequence[str]) -> str:
    """Basename of argv[0] ('' when there is none): what the process says it runs."""
    return os.path.basename(argv[0]) if argv else ""


def ns_inode(link: str) -> int:
    """The inode in a /proc/<pid>/ns link ("net:[4026531840]"): readlink costs half a stat."""
    return int(link[link.index("[") + 1 : -1])


class Pinned:
    """One process through an fd on its /proc/<pid> directory, and its stat as read through
    that fd first: `with Pinned(root, pid) as p: p.stat, p.cmdline(), ...`. OSError (ESRCH,
    ENOENT) if the process is gone when it is opened or while it is read; so every field read
    here belongs to the process whose start ticks are `p.stat.start_ticks`."""

    __slots__ = ("fd", "pid", "stat")

    def __init__(self, root: HostRoot, pid: int) -> None:
        self.pid = pid
        self.fd = os.open(root.pid_dir(pid), os.O_RDONLY | os.O_DIRECTORY)
        try:
            stat = _read_stat(self.fd)
        except BaseException:
            os.close(self.fd)
            raise
        if stat is None:  # not a stat line: nothing read here could be vouched for
            os.close(self.fd)
            raise ProcessLookupError(errno.ESRCH, f"no readable stat for pid {pid}")
        self.stat = stat

    def __enter__(self) -> Pinned:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    @property
    def ident(self) -> ProcessId:
        return ProcessId(self.pid, self.stat.start_ticks)

    def read(self, name: str) -> bytes:
        """The whole of one file under /proc/<pid> (cmdline may be megabytes)."""
        file_fd = os.open(name, os.O_RDONLY, dir_fd=self.fd)
        try:
            chunks = []
            while chunk := os.read(file_fd, 1 << 16):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(file_fd)

    def cmdline(self) -> tuple[str, ...]:
        """Its command line (`split_cmdline`); () for a zombie or a kernel thread."""
        return split_cmdline(self.read("cmdline"))

    def proc(self, boot: float, clk: int) -> Proc:
        """The process as one record: its stat, owner and command line (boot: the host's boot
        time, clk: clock ticks per second, for create_time)."""
        stat = self.stat
        denied = False
        try:
            cmdline = self.cmdline()
        except PermissionError:  # hidepid, or a foreign user namespace
            cmdline, denied = (), True
        return Proc(
            pid=self.pid,
            ppid=stat.ppid,
            name=full_name(stat.comm, cmdline),
            cmdline=cmdline,
            create_time=stat.create_time(boot, clk),
            start=stat.start_ticks,
            uid=os.fstat(self.fd).st_uid,  # the effective uid: /proc/<pid> is owned by it
            status=stat.status,
            denied=denied,
        )

    def readlink(self, name: str) -> str:
        return os.readlink(name, dir_fd=self.fd)

    def namespaces(self) -> tuple[dict[str, int], bool] | None:
        """Its namespace inodes, and whether some were denied; None if it is gone."""
        ns: dict[str, int] = {}
        denied = False
        for kind in NS_TYPES:
            try:
                ns[kind] = ns_inode(os.readlink(f"ns/{kind}", dir_fd=self.fd))
            except PermissionError:
                denied = True
            except (FileNotFoundError, ValueError):
                pass  # an older kernel without this type; or the process just exited
            except ProcessLookupError:
                return None
        return ns, denied


def _read_stat(fd: int) -> Stat | None:
    """The process's stat line (one read: it is far shorter than a page); OSError if gone."""
    stat_fd = os.open("stat", os.O_RDONLY, dir_fd=fd)
    try:
        return parse_stat(os.read(stat_fd, 4096))
    finally:
        os.close(stat_fd)


def identify(root: HostRoot, pid: int) -> ProcessId | None:
    """The process that holds pid now, or None if there is none (or only a zombie)."""
    try:
        with Pinned(root, pid) as p:
            return None if p.stat.state == "Z" else p.ident
    except OSError:
        return None
