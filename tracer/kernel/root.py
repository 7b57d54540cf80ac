"""The host as this process reaches it: where the host's `/` and `/proc` are.

Every read of the host goes through one `HostRoot`: the /proc walk, the daemons' sockets and
configuration files, the shims' bundles, the boot time, sock_diag's view of the sockets. On the
host itself it is `HostRoot()`: `/` and `/proc`. A tool running in a container with the host's
PID namespace (`--pid=host`) and the host's `/` mounted at `/host` uses `HostRoot("/host")`:
the paths that the host's processes name (`--config-file`, their bundle directories,
`/run/containerd/containerd.sock`) are then looked up under `/host`, and a symlink met on the
way (`/var/run -> /run`) is resolved inside `/host`, as the host resolves it, never against the
container's own `/`. psutil has the same idea for /proc alone (`psutil.PROCFS_PATH`), and
util-linux's `lsns` has `--prefix`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MAX_LINKS = 40  # what Linux allows in one path lookup (ELOOP)


def normalize(path: str) -> str:
    """A host path in one spelling: normalised, and /var/run (a symlink to /run on every
    current distribution) written as /run, so that two spellings compare equal."""
    path = os.path.normpath(path)
    if path == "/var/run" or path.startswith("/var/run/"):
        return path[len("/var") :]
    return path


@dataclass(frozen=True)
class HostRoot:
    """Where the host's file system (`fs`) and process table (`proc`) are, seen from here."""

    fs: str = "/"
    proc: str = ""  # default: <fs>/proc

    def __post_init__(self) -> None:
        fs = os.path.normpath(self.fs) if self.fs else "/"
        object.__setattr__(self, "fs", fs)
        if not self.proc:
            object.__setattr__(self, "proc", os.path.join(fs, "proc"))

    @property
    def is_own(self) -> bool:
        """Is the host's / this process's own /? (Then paths need no translation.)"""
        return self.fs == "/"

    # -- the file system -------------------------------------------------------------------

    def path(self, host_path: str) -> str:
        """Where a host path is, seen from here: under `fs`, its symlinks resolved inside it."""
        if self.is_own:
            return host_path
        return self._inside(host_path)

    def read_text(self, host_path: str, limit: int = 1 << 20) -> str | None:
        """A host file's text (at most limit characters), or None if it cannot be read."""
        try:
            with open(self.path(host_path), encoding="utf-8") as f:
                return f.read(limit)
        except (OSError, UnicodeDecodeError):
            return None

    def lexists(self, host_path: str) -> bool:
        """Does the host path exist (a dangling symlink or a stale socket file counts)?"""
        return os.path.lexists(self.path(host_path))

    def _inside(self, host_path: str) -> str:
        """host_path under fs, resolving each symlink on the way as the host would: an absolute
        target starts again at fs, and `..` never climbs above it."""
        todo = [p for p in reversed(host_path.split("/")) if p]
        done: list[str] = []
        links = 0
        while todo:
            part = todo.pop()
            if part == ".":
                continue
            if part == "..":
                if done:
                    done.pop()
                continue
            here = os.path.join(self.fs, *done, part)
            try:
                target = os.readlink(here)
            except OSError:  # not a symlink, or missing: taken as it is
                done.append(part)
                continue
            links += 1
            if links > MAX_LINKS:
                return here  # a loop: let the caller's open() fail on it
            if target.startswith("/"):
                done = []
            todo.extend(p for p in reversed(target.split("/")) if p)
        return os.path.join(self.fs, *done)

    # -- the process table -----------------------------------------------------------------

    def pid_dir(self, pid: int) -> str:
        return f"{self.proc}/{pid}"

    def pids(self) -> list[int]:
        """Every PID in the host's /proc, in order."""
        return sorted(int(n) for n in os.listdir(self.proc) if n.isascii() and n.isdigit())

    def boot_time(self) -> float:
        """When the host booted (seconds since the epoch): `btime` of <proc>/stat, as psutil
        reads it. 0.0 if it cannot be read (start times are then relative to boot)."""
        try:
            with open(f"{self.proc}/stat", "rb") as f:
                for line in f:
                    if line.startswith(b"btime "):
                        return float(line.split()[1])
        except (OSError, ValueError, IndexError):
            pass
        return 0.0

    def hostname(self) -> str:
        """The host's name: this process's own when the root is its own, else the host's
        /etc/hostname (a container's UTS namespace has a name of its own)."""
        if not self.is_own:
            text = (self.read_text("/etc/hostname", 256) or "").strip()
            if text:
                return text
        return os.uname().nodename


def seen_by(root: HostRoot, pid: int) -> HostRoot | None:
    """The file system as process pid sees it, when its mount namespace is not the host's
    (a rootless engine's is RootlessKit's: /etc and /run copied up, its containers' mounts made
    there): its paths are then opened through <proc>/<pid>/root, symlinks resolved inside it.
    None when it is the host's namespace, or that cannot be told (then the host's view it is)."""
    try:
        mine = os.readlink(f"{root.pid_dir(pid)}/ns/mnt")
    except OSError:
        return None
    host = host_namespace(root, "mnt")
    if host is None or mine == host:
        return None
    return HostRoot(f"{root.pid_dir(pid)}/root", root.proc)


def host_namespace(root: HostRoot, kind: str) -> str | None:
    """The host's namespace of that kind (`mnt:[4026531841]`): PID 1's, or kthreadd's (PID 2,
    which never leaves the initial namespaces) where PID 1's link cannot be read; None if
    neither can."""
    for pid in (1, 2):
        try:
            return os.readlink(f"{root.pid_dir(pid)}/ns/{kind}")
        except OSError:
            continue
    return None


CONTAINER_MARKS = ("/.dockerenv", "/run/.containerenv")  # Docker's, podman's
HOST_MOUNT = "/host"  # where the DaemonSet and the README's `docker run` mount the host's /


def in_container() -> bool:
    """Does this process run in a container? A mount namespace other than PID 1's (when that
    can be read), else the files Docker and podman put in every container."""
    try:
        return os.readlink("/proc/1/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    except OSError:
        return any(os.path.exists(mark) for mark in CONTAINER_MARKS)


def for_container(fs: str) -> HostRoot:
    """The host's / mounted at fs: its /proc there when the whole / was mounted (a recursive
    bind, as `-v /:/host` makes), else this container's own /proc (with --pid=host it shows
    the host's processes)."""
    proc = os.path.join(fs, "proc")
    return HostRoot(fs, proc if os.path.exists(os.path.join(proc, "1")) else "/proc")


def sees_host_processes(root: HostRoot) -> bool:
    """Is root.proc the host's PID namespace? Only the initial one holds the kernel's threads:
    PID 2 is kthreadd, with parent 0. In a container without --pid=host it is not there."""
    try:
        with open(f"{root.proc}/2/stat", "rb") as f:
            raw = f.read(512)
    except OSError:
        return False
    start, end = raw.find(b"("), raw.rfind(b")")
    fields = raw[end + 2 :].split()
    return raw[start + 1 : end] == b"kthreadd" and len(fields) > 1 and fields[1] == b"0"
