"""One snapshot of the host: every process once, plus the few files and sockets that prove links.

Everything else in dtrace-tree is a pure function of a `Host`. Reading is defensive: processes
vanish, turn zombie or deny access while we walk; each case is handled per process and never
stops the walk. Per-process reads after the psutil walk go through an fd on /proc/<pid>, whose
start time is checked first, so a PID reused mid-walk cannot lend its namespaces to the process
that held it before.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import psutil

from tracer import argv as args
from tracer.model import NS_TYPES

DAEMONS = ("dockerd", "containerd", "docker-proxy")
SYSTEM_CONTAINERD_SOCK = "/run/containerd/containerd.sock"
# One read of /proc/<pid>/stat (psutil's oneshot) and one of cmdline per process. The uid comes
# from the owner of /proc/<pid> (the effective uid), saving a read of /proc/<pid>/status.
_ATTRS = ["pid", "ppid", "name", "cmdline", "create_time", "status"]


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


def take(proc_root: str = "/proc") -> Host:
    """Walk every process once and read what proves the links between them."""
    clk = os.sysconf("SC_CLK_TCK")
    boot = psutil.boot_time()
    procs: dict[int, Proc] = {}
    for p in psutil.process_iter(_ATTRS, ad_value=None):
        info = p.info
        if info["ppid"] is None or info["create_time"] is None:
            continue
        read = _read_pinned(proc_root, info["pid"], info["create_time"], boot, clk)
        if read is None:
            continue  # vanished (or its PID was reused) while we walked
        ns, denied, uid = read
        procs[info["pid"]] = Proc(
            pid=info["pid"],
            ppid=info["ppid"],
            name=info["name"] or "",
            cmdline=tuple(info["cmdline"] or ()),
            create_time=info["create_time"],
            uid=uid,
            status=info["status"] or "unknown",
            ns=ns,
            denied=denied or (info["cmdline"] is None and info["status"] != psutil.STATUS_ZOMBIE),
        )

    host = Host(
        procs=procs,
        taken_at=time.time(),
        hostname=socket.gethostname(),
        euid=os.geteuid(),
    )
    host.host_ns, host.host_ns_source = _host_namespaces(procs)
    _read_extras(host, proc_root)
    return host


def _read_pinned(
    proc_root: str, pid: int, create_time: float, boot: float, clk: int
) -> tuple[dict[str, int], bool, int] | None:
    """Namespace inodes (and owner) of pid, read through an fd on /proc/<pid> after checking
    that it is still the process psutil saw; None if it is gone or its PID was reused."""
    try:
        fd = os.open(f"{proc_root}/{pid}", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        if not _same_process(fd, create_time, boot, clk):
            return None
        uid = os.fstat(fd).st_uid
        ns: dict[str, int] = {}
        denied = False
        for kind in NS_TYPES:
            try:
                ns[kind] = os.stat(f"ns/{kind}", dir_fd=fd).st_ino
            except PermissionError:
                denied = True
            except FileNotFoundError:
                pass  # an older kernel without this type; or the process just exited
            except ProcessLookupError:
                return None
        return ns, denied, uid
    finally:
        os.close(fd)


def _same_process(fd: int, create_time: float, boot: float, clk: int) -> bool:
    try:
        stat_fd = os.open("stat", os.O_RDONLY, dir_fd=fd)
        try:
            stat = os.read(stat_fd, 4096)  # one line, well under a page
        finally:
            os.close(stat_fd)
    except OSError:
        return False
    # comm may hold spaces and parentheses: fields start after the last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        start = boot + int(fields[19]) / clk
    except (IndexError, ValueError):
        return False
    return abs(start - create_time) < 0.05


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


def _read_extras(host: Host, proc_root: str) -> None:
    """Listening sockets of the daemons; bundle, init.pid (and, failing that, runc's
    state.json) of each shim; the daemons' config files. Only these processes pay for it."""
    unix_tables: dict[int, dict[int, str]] = {}
    state_roots = {"/run/docker"}
    shims: list[tuple[Proc, args.ShimArgs]] = []
    for proc in host.procs.values():
        prog = proc.program
        if prog in ("dockerd", "containerd"):
            _read_listeners(host, proc, proc_root, unix_tables)
        if prog == "dockerd":
            config = args.flag_value(proc.cmdline, "--config-file") or "/etc/docker/daemon.json"
            _read_file(host, config)
            state_roots.add(
                args.normalize_path(args.flag_value(proc.cmdline, "--exec-root") or "/run/docker")
            )
        elif prog == "containerd":
            toml = args.flag_value(proc.cmdline, "--config", "-c")
            _read_file(host, toml or "/etc/containerd/config.toml")
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
    if host.sockets:  # who is connected to whom: one sock_diag dump, kept for the daemons
        from tracer.sockdiag import unix_peers

        ours = frozenset().union(*host.sockets.values())
        host.peers = {i: peer for i, peer in unix_peers().items() if i in ours}
    host.exists = frozenset(p for p in (SYSTEM_CONTAINERD_SOCK,) if os.path.lexists(p))


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
