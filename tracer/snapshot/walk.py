"""Walking the host once: every process, then what each runtime needs to prove its links.

Two stages. `processes()` reads every process; a daemon (a program some runtime names) is read
whole as soon as the walk meets it (namespaces, sockets, configuration) and announced, so that
its API can be asked while the walk goes on (tracer/runtimes/__init__.py). `details()` then
reads the namespaces of the processes that are drawn, who is connected to whom, and each
runtime's state (bundles, pidfiles). What to read beyond /proc is each runtime's business: the
walk asks them through `Source`, and every read goes through the `HostRoot`.

Reading is defensive: processes vanish, turn zombie or deny access while we walk; each case is
handled per process and never stops the walk. Each process is read through one fd on
/proc/<pid> (tracer/kernel/procfs.py), so its fields all belong to one process; namespaces are
read later through a new fd whose start time must be the one the walk saw, so a PID reused in
between cannot lend its namespaces to the process that held it before.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple, Protocol

from tracer.kernel import procfs, unix
from tracer.kernel.root import HostRoot
from tracer.snapshot.host import Host, Proc


class Reader:
    """What a runtime may read during the walk: host files, existence and working
    directories, through the host root, recorded in the snapshot so that building the
    topology afterwards stays a pure function of it."""

    def __init__(self, root: HostRoot, host: Host) -> None:
        self._root, self._host = root, host

    def file(self, path: str, limit: int = 1 << 20) -> str | None:
        """A host file's text (None if it cannot be read); kept in host.files."""
        if path in self._host.files:
            return self._host.files[path]
        text = self._root.read_text(path, limit)
        if text is not None:
            self._host.files[path] = text
        return text

    def exists(self, path: str) -> bool:
        """Does the host path exist? Kept in host.exists."""
        if self._root.lexists(path):
            self._host.exists = self._host.exists | {path}
            return True
        return False

    def listdir(self, path: str) -> list[str] | None:
        """The names in a host directory, sorted (None if it cannot be read); kept in
        host.dirs."""
        if path in self._host.dirs:
            return list(self._host.dirs[path])
        try:
            names = sorted(os.listdir(self._root.path(path)))
        except OSError:
            return None
        self._host.dirs[path] = tuple(names)
        return names

    def cwd(self, pid: int) -> str | None:
        """pid's working directory (a host path), kept in host.cwd; None if unreadable."""
        if pid in self._host.cwd:
            return self._host.cwd[pid]
        try:
            cwd = os.readlink(f"{self._root.pid_dir(pid)}/cwd")
        except OSError:
            return None
        self._host.cwd[pid] = cwd
        return cwd


class Source(Protocol):
    """What the walk asks of each runtime (tracer/runtimes/base.py extends it)."""

    # Programs whose namespaces, held sockets and listening sockets the walk reads.
    daemons: frozenset[str]

    def read_daemon(self, host: Host, daemon: Proc, read: Reader) -> None:
        """One of its daemons, as soon as the walk meets it: its configuration files."""

    def drawn(self, host: Host) -> Iterable[int]:
        """The processes whose namespaces are shown or used (ten readlinks each)."""

    def read_state(self, host: Host, read: Reader) -> None:
        """Last: the runtime's own records (bundles, pidfiles, state files)."""


OnDaemon = Callable[[Host, Proc], None]


class Also(NamedTuple):
    """What a reader given each process (`also`) read there that the walk would read again:
    its namespace links as Pinned.namespaces() gives them, the fd links of its sockets; None
    for what it could not read whole (the walk then reads it itself, where it needs it)."""

    namespaces: tuple[dict[str, int], bool] | None
    sockets: list[str] | None


# Called with each live process's pinned fd and uid while the walk holds it (`ns --all` reads
# every namespace there, tracer/snapshot/namespaces.py). It must not raise OSError.
AlsoEach = Callable[[procfs.Pinned, int | None], Also]


class Walk:
    """`processes()`, then `details()`: one snapshot of the host. on_daemon(host, proc) is
    called for each daemon as soon as it has been read whole; also(pinned, uid) for each
    process while its fd is open (one read of /proc/<pid> for two walks)."""

    def __init__(
        self,
        root: HostRoot,
        sources: Sequence[Source],
        on_daemon: OnDaemon | None = None,
        also: AlsoEach | None = None,
    ) -> None:
        self.root = root
        self.sources = sources
        self.on_daemon = on_daemon
        self.also = also
        # pid -> (start ticks, what `also` read through the same fd as the Proc)
        self._also: dict[int, tuple[int, Also]] = {}
        self._clk = os.sysconf("SC_CLK_TCK")
        self._boot = root.boot_time()
        self.host = Host(procs={})
        self._read = Reader(root, self.host)
        self._tables: dict[int, dict[int, str]] = {}  # listening sockets per network namespace

    def processes(self) -> Host:
        """Every process; each daemon whole, as soon as it is met."""
        host = self.host
        host.hostname, host.euid = self.root.hostname(), os.geteuid()
        by_program: dict[str, list[Source]] = {}
        for source in self.sources:
            for name in source.daemons:
                by_program.setdefault(name, []).append(source)
        for pid in self.root.pids():
            proc = self._proc(pid)
            if proc is None:
                continue
            host.procs[pid] = proc
            if proc.program in by_program and not proc.zombie:
                self._daemon(proc, by_program[proc.program])
        return host

    def _daemon(self, proc: Proc, sources: list[Source]) -> None:
        """A daemon: its namespaces, the sockets it holds and listens on, its configuration."""
        self._add_namespaces([proc.pid])
        whole = self.host.procs.get(proc.pid)
        if whole is None:
            return  # gone while we read it
        self._listeners(whole)
        for source in sources:
            source.read_daemon(self.host, whole, self._read)
        if self.on_daemon is not None:
            self.on_daemon(self.host, whole)

    def details(self) -> Host:
        """The namespaces of what is drawn, socket peers, the host's namespaces, and the
        runtimes' state."""
        host = self.host
        wanted: set[int] = {pid for pid in (1, 2) if pid in host.procs}
        for source in self.sources:
            wanted.update(source.drawn(host))
        self._add_namespaces(
            pid for pid in wanted if pid in host.procs and not host.procs[pid].namespaces
        )
        host.reset()  # procs now hold their namespaces: forget the parent map built from the old
        self._peers()
        host.host_ns, host.host_ns_source = _host_namespaces(host.procs)
        for source in self.sources:
            source.read_state(host, self._read)
        host.taken_at = time.time()
        return host

    # -- one process -------------------------------------------------------------------------

    def _proc(self, pid: int) -> Proc | None:
        """pid's parent, name, argv, state, start time and owner, all read through one fd on
        /proc/<pid> (see tracer/kernel/procfs.py); None if it is gone."""
        try:
            with procfs.Pinned(self.root, pid) as p:
                proc = p.proc(self._boot, self._clk)
                if self.also is not None:
                    self._also[pid] = (proc.start, self.also(p, proc.uid))
                return proc
        except OSError:
            return None  # gone, or exited while we read it (ESRCH through the pinned fd)

    def _add_namespaces(self, pids: Iterable[int]) -> None:
        procs = self.host.procs
        for pid in list(pids):
            read = self._namespaces(procs[pid])
            if read is None:
                del procs[pid]  # gone since the walk: do not draw a half-read process
            else:
                ns, denied = read
                # dataclasses.replace costs ten times this at a few hundred processes
                p = procs[pid]
                procs[pid] = Proc(p.pid, p.ppid, p.name, p.cmdline, p.create_time, p.start,
                                  p.uid, p.status, ns, p.denied or denied)  # fmt: skip

    def _namespaces(self, proc: Proc) -> tuple[dict[str, int], bool] | None:
        """Namespace inodes of proc, read through an fd on /proc/<pid> after checking that it
        is still the process the walk saw; None if it is gone or its PID was reused. Read
        already if `also` read them through the walk's own fd on it."""
        read = self._read_by_also(proc)
        if read is not None and read.namespaces is not None:
            return read.namespaces
        try:
            with procfs.Pinned(self.root, proc.pid) as p:
                if p.stat.start_ticks != proc.start:
                    return None  # another process holds the PID now
                return p.namespaces()
        except OSError:
            return None

    def _read_by_also(self, proc: Proc) -> Also | None:
        """What `also` read of this very process (the same fd as its Proc), if anything."""
        read = self._also.get(proc.pid)
        return read[1] if read is not None and read[0] == proc.start else None

    # -- sockets ---------------------------------------------------------------------------

    def _listeners(self, proc: Proc) -> None:
        """The unix sockets proc holds, and which of them listen where (its netns' table)."""
        host, tables = self.host, self._tables
        read = self._read_by_also(proc)
        if read is not None and read.sockets is not None:
            inodes = unix.inodes_of(read.sockets)
        else:
            inodes = unix.socket_inodes(self.root, proc.pid)
        if not inodes:
            return
        host.sockets[proc.pid] = frozenset(inodes)
        netns = proc.namespaces.get("net", 0)
        if netns not in tables:
            tables[netns] = unix.listening(self.root, proc.pid)
        held = {i: tables[netns][i] for i in inodes if i in tables[netns]}
        if held:
            host.listeners[proc.pid] = held

    def _peers(self) -> None:
        """Who is connected to whom: one sock_diag dump per network namespace that holds a
        daemon, kept for the daemons' sockets."""
        host = self.host
        if not host.sockets:
            return
        from tracer.kernel.sockdiag import unix_peers

        ours = frozenset().union(*host.sockets.values())
        netns: dict[int, str | None] = {}
        for pid in host.sockets:
            proc = host.procs.get(pid)
            inode = proc.namespaces.get("net", 0) if proc else 0
            # Unknown (not root): this process's own namespace, as good a guess as any.
            netns.setdefault(inode, f"{self.root.pid_dir(pid)}/ns/net" if inode else None)
        peers: dict[int, int] = {}
        for path in netns.values():
            peers.update(unix_peers(path))
        host.peers = {i: peer for i, peer in peers.items() if i in ours}


def _host_namespaces(procs: Mapping[int, Proc]) -> tuple[dict[str, int], str]:
    """The initial namespaces: PID 1's, or else kthreadd's (kernel threads never leave them).

    Never our own /proc/self/ns: the tool may itself run in a container with --pid=host.
    """
    init = procs.get(1)
    if init and len(init.namespaces) >= 6:
        return dict(init.namespaces), "pid 1"
    kthreadd = procs.get(2)
    if kthreadd and kthreadd.name == "kthreadd" and kthreadd.ppid == 0 and kthreadd.namespaces:
        return dict(kthreadd.namespaces), "pid 2 (kthreadd)"
    return {}, "unknown"


def take(
    root: HostRoot,
    sources: Sequence[Source],
    on_daemon: OnDaemon | None = None,
    also: AlsoEach | None = None,
) -> Host:
    """One whole snapshot, both stages at once."""
    walk = Walk(root, sources, on_daemon, also)
    walk.processes()
    return walk.details()
