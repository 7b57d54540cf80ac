"""One snapshot of the host: every process once, plus the few files and sockets that prove links.

Everything else in dtrace-tree is a pure function of a `Host`. Reading is defensive: processes
vanish, turn zombie or deny access while we walk; each case is handled per process and never
stops the walk. Each process is read through one fd on /proc/<pid> (tracer.procfs), so its
fields all belong to one process; the namespaces, read in a second pass for the processes that
are drawn, go through a new fd whose start time is checked first, so a PID reused in between
cannot lend its namespaces to the process that held it before.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

import psutil

from tracer import argv as args
from tracer import procfs
from tracer.model import NS_TYPES

DAEMONS = ("dockerd", "containerd", "docker-proxy")
SYSTEM_CONTAINERD_SOCK = "/run/containerd/containerd.sock"


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    name: str
    cmdline: tuple[str, ...]
    create_time: float
    uid: int | None = None
    status: str = "running"
    ns: Mapping[str, int] = field(default_factory=dict)
    denied: bool = False  # some of it could not be read for lack of privilege

    @property
    def program(self) -> str:
        """What runs: basename of argv[0], or the kernel's (truncated) comm."""
        return args.program(self.cmdline) or self.name

    @property
    def zombie(self) -> bool:
        return self.status == psutil.STATUS_ZOMBIE


@dataclass
class Host:
    procs: dict[int, Proc]
    taken_at: float = 0.0
    hostname: str = ""
    euid: int = 0
    host_ns: dict[str, int] = field(default_factory=dict)
    host_ns_source: str = "unknown"
    listeners: dict[int, dict[int, str]] = field(default_factory=dict)  # pid -> {inode: path}
    sockets: dict[int, frozenset[int]] = field(default_factory=dict)  # daemon pid -> inodes
    peers: dict[int, int] = field(default_factory=dict)  # daemon socket inode -> peer inode
    cwd: dict[int, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # path -> text, for the files read
    exists: frozenset[str] = frozenset()
    _kids: dict[int, list[Proc]] | None = field(default=None, init=False, repr=False)

    def reset(self) -> None:
        """Forget what was derived from procs (after procs changed)."""
        self._kids = None

    def children(self, pid: int) -> list[Proc]:
        """Children of pid, as long as the parent is older than the child (no PID reuse)."""
        return self._children().get(pid, [])

    def _children(self) -> dict[int, list[Proc]]:
        cached = self._kids
        if cached is None:
            cached = {}
            for proc in sorted(self.procs.values(), key=lambda p: (p.create_time, p.pid)):
                if is_parent(self.procs.get(proc.ppid), proc):
                    cached.setdefault(proc.ppid, []).append(proc)
            self._kids = cached
        return cached

    def descendants(self, pid: int) -> list[Proc]:
        """The whole subtree under pid (not pid itself), depth first; safe against cycles."""
        out: list[Proc] = []
        seen = {pid}
        stack = list(reversed(self.children(pid)))
        while stack:
            proc = stack.pop()
            if proc.pid in seen:
                continue
            seen.add(proc.pid)
            out.append(proc)
            stack.extend(reversed(self.children(proc.pid)))
        return out


def is_parent(parent: Proc | None, child: Proc) -> bool:
    """Is parent really child's parent? ppid matches and the parent is not younger.

    A parent that started after its child is a reused PID: never invent that link.
    Create times have clock-tick resolution, hence the small tolerance.
    """
    return (
        parent is not None
        and parent.pid == child.ppid
        and parent.pid != child.pid
        and parent.create_time <= child.create_time + 0.011
    )


# -- taking the snapshot -------------------------------------------------------------------


def take(proc_root: str = "/proc", on_daemons: Callable[[Host], None] | None = None) -> Host:
    """Walk every process once and read what proves the links between them.

    on_daemons(host) is called as soon as each dockerd's API socket can be known (every
    process, and each dockerd's namespaces, listening sockets and daemon.json), before the
    rest is read (containerd's sockets, the containers' namespaces, the shims' bundles):
    `trace` asks the API from there, so that it answers while the walk goes on.
    """
    clk = os.sysconf("SC_CLK_TCK")
    boot = psutil.boot_time()
    procs: dict[int, Proc] = {}
    for pid in _pids(proc_root):
        proc = _read_proc(proc_root, pid, boot, clk)
        if proc is not None:
            procs[pid] = proc
    host = Host(procs=procs, hostname=os.uname().nodename, euid=os.geteuid())
    unix_tables: dict[int, dict[int, str]] = {}  # per network namespace, read once
    dockerds = {p.pid for p in procs.values() if p.program == "dockerd"}
    _add_namespaces(procs, dockerds, proc_root, boot, clk)
    _read_daemons(host, "dockerd", proc_root, unix_tables)
    if on_daemons is not None:
        on_daemons(host)
    # Namespaces cost ten readlinks per process: read them only for the processes drawn.
    _add_namespaces(procs, _drawn(host) - dockerds, proc_root, boot, clk)
    host.reset()  # procs now hold their namespaces: forget the parent map built from the old
    _read_daemons(host, "containerd", proc_root, unix_tables)
    _read_peers(host)
    host.host_ns, host.host_ns_source = _host_namespaces(procs)
    _read_shims(host, proc_root)
    host.taken_at = time.time()
    return host


def _add_namespaces(
    procs: dict[int, Proc], pids: Iterable[int], proc_root: str, boot: float, clk: int
) -> None:
    for pid in pids:
        read = _read_namespaces(proc_root, procs[pid], boot, clk)
        if read is None:
            del procs[pid]  # gone since the walk: do not draw a half-read process
        else:
            ns, denied = read
            procs[pid] = replace(procs[pid], ns=ns, denied=procs[pid].denied or denied)


def _pids(proc_root: str) -> list[int]:
    return sorted(int(name) for name in os.listdir(proc_root) if name.isdigit() and name.isascii())


def _read_proc(proc_root: str, pid: int, boot: float, clk: int) -> Proc | None:
    """pid's parent, name, argv, state, start time and owner, all read through one fd on
    /proc/<pid> (see tracer.procfs); None if it is gone."""
    try:
        fd = procfs.open_pinned(proc_root, pid)
    except OSError:
        return None
    try:
        stat = procfs.read_stat(fd)
        if stat is None:
            return None
        uid = os.fstat(fd).st_uid  # the effective uid: /proc/<pid> is owned by it
        denied = False
        try:
            cmdline = procfs.split_cmdline(procfs.read(fd, "cmdline"))
        except PermissionError:  # hidepid, or a foreign user namespace
            cmdline, denied = (), True
    except OSError:
        return None  # exited while we read it (ESRCH through the pinned fd)
    finally:
        os.close(fd)
    return Proc(
        pid=pid,
        ppid=stat.ppid,
        name=procfs.full_name(stat.comm, cmdline),
        cmdline=cmdline,
        create_time=stat.create_time(boot, clk),
        uid=uid,
        status=stat.status,
        denied=denied,
    )


def _drawn(host: Host) -> set[int]:
    """The processes whose namespaces dtrace-tree shows or uses: PIDs 1 and 2 (the host's),
    the daemons (their network namespace names their sockets), and all that every shim runs
    (not the shim itself: it stays in the host's namespaces and nothing shows them)."""
    wanted: set[int] = {pid for pid in (1, 2) if pid in host.procs}
    for proc in host.procs.values():
        prog = proc.program
        if prog in DAEMONS:
            wanted.add(proc.pid)
        elif prog.startswith("containerd-shim"):
            wanted.update(p.pid for p in host.descendants(proc.pid))
    return wanted


def _read_namespaces(
    proc_root: str, proc: Proc, boot: float, clk: int
) -> tuple[dict[str, int], bool] | None:
    """Namespace inodes of proc, read through an fd on /proc/<pid> after checking that it is
    still the process the walk saw; None if it is gone or its PID was reused."""
    try:
        fd = procfs.open_pinned(proc_root, proc.pid)
    except OSError:
        return None
    try:
        try:
            stat = procfs.read_stat(fd)
        except OSError:
            return None
        if stat is None or stat.create_time(boot, clk) != proc.create_time:
            return None  # same formula, same ticks: equal unless the PID was reused
        ns: dict[str, int] = {}
        denied = False
        for kind in NS_TYPES:
            try:
                ns[kind] = procfs.ns_inode(os.readlink(f"ns/{kind}", dir_fd=fd))
            except PermissionError:
                denied = True
            except (FileNotFoundError, ValueError):
                pass  # an older kernel without this type; or the process just exited
            except ProcessLookupError:
                return None
        return ns, denied
    finally:
        os.close(fd)


def _host_namespaces(procs: Mapping[int, Proc]) -> tuple[dict[str, int], str]:
    """The initial namespaces: PID 1's, or else kthreadd's (kernel threads never leave them).

    Never our own /proc/self/ns: the tool may itself run in a container with --pid=host.
    """
    init = procs.get(1)
    if init and len(init.ns) >= 6:
        return dict(init.ns), "pid 1"
    kthreadd = procs.get(2)
    if kthreadd and kthreadd.name == "kthreadd" and kthreadd.ppid == 0 and kthreadd.ns:
        return dict(kthreadd.ns), "pid 2 (kthreadd)"
    return {}, "unknown"


def _read_daemons(
    host: Host, program: str, proc_root: str, unix_tables: dict[int, dict[int, str]]
) -> None:
    """The listening sockets and the config file of every dockerd (or containerd)."""
    for proc in host.procs.values():
        if proc.program != program:
            continue
        _read_listeners(host, proc, proc_root, unix_tables)
        if program == "dockerd":
            config = args.flag_value(proc.cmdline, "--config-file") or "/etc/docker/daemon.json"
            _read_file(host, config)
        else:
            toml = args.flag_value(proc.cmdline, "--config", "-c")
            _read_file(host, toml or "/etc/containerd/config.toml")


def _read_peers(host: Host) -> None:
    """Who is connected to whom: one sock_diag dump, kept for the daemons' sockets."""
    if host.sockets:
        from tracer.sockdiag import unix_peers

        ours = frozenset().union(*host.sockets.values())
        host.peers = {i: peer for i, peer in unix_peers().items() if i in ours}
    host.exists = frozenset(p for p in (SYSTEM_CONTAINERD_SOCK,) if os.path.lexists(p))


def _read_shims(host: Host, proc_root: str) -> None:
    """Bundle and init.pid (and, failing that, runc's state.json) of each shim."""
    state_roots = {"/run/docker"}
    shims: list[tuple[Proc, args.ShimArgs]] = []
    for proc in host.procs.values():
        prog = proc.program
        if prog == "dockerd":
            root = args.flag_value(proc.cmdline, "--exec-root") or "/run/docker"
            state_roots.add(args.normalize_path(root))
        elif prog.startswith("containerd-shim"):
            shim = args.parse_shim(proc.cmdline)
            if shim is not None and not shim.transient:
                shims.append((proc, shim))
    for proc, shim in shims:
        with contextlib.suppress(OSError):
            cwd = os.readlink(f"{proc_root}/{proc.pid}/cwd")
            host.cwd[proc.pid] = cwd
            _read_file(host, f"{cwd}/init.pid")
            if f"{cwd}/init.pid" in host.files:
                continue
        if shim.namespace:  # no bundle to read: runc's own record of the init
            for root in state_roots:
                _read_file(host, f"{root}/runtime-runc/{shim.namespace}/{shim.id}/state.json")


def _read_listeners(
    host: Host, proc: Proc, proc_root: str, unix_tables: dict[int, dict[int, str]]
) -> None:
    """The listening unix sockets proc holds: its fds' inodes, named by its netns' table."""
    inodes = _socket_inodes(proc_root, proc.pid)
    if not inodes:
        return
    host.sockets[proc.pid] = frozenset(inodes)
    netns = proc.ns.get("net", 0)
    if netns not in unix_tables:
        unix_tables[netns] = _listening_unix(f"{proc_root}/{proc.pid}/net/unix")
    held = {i: unix_tables[netns][i] for i in inodes if i in unix_tables[netns]}
    if held:
        host.listeners[proc.pid] = held


def _read_file(host: Host, path: str, limit: int = 1 << 20) -> None:
    if path in host.files:
        return
    with contextlib.suppress(OSError, UnicodeDecodeError), open(path, encoding="utf-8") as f:
        host.files[path] = f.read(limit)


def _socket_inodes(proc_root: str, pid: int) -> set[int]:
    inodes: set[int] = set()
    fd_dir = f"{proc_root}/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return inodes
    for name in names:
        with contextlib.suppress(OSError, ValueError):
            target = os.readlink(f"{fd_dir}/{name}")
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    return inodes


def _listening_unix(path: str) -> dict[int, str]:
    """Listening unix sockets of one network namespace: {inode: path} (from net/unix)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return {}
    return parse_unix_table(lines)


ACCEPTCON = 0x10000


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


_OCTAL = re.compile(r"\\([0-7]{3})")


def parse_mount_points(lines: Iterable[str]) -> list[str]:
    """Mount points (field 5) of /proc/<pid>/mountinfo rows, with the kernel's octal escapes
    (space, tab, newline, backslash) undone."""
    points = []
    for line in lines:
        fields = line.split(" ")
        if len(fields) > 4 and fields[4]:
            points.append(_OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[4]))
    return points
