"""What the lab needs from the host and leaves on it: root, the binaries (a static busybox),
a free port, the `ip` tool, sockets to connect to, mounts and directories to remove.

Used by tracer/ops/lab.py; none of it knows about Docker.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from tracer.errors import EngineError, MissingBinaryError, NotRootError
from tracer.ops.labconfig import BINARIES

SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def require_root(what: str = "the lab") -> None:
    if os.geteuid() != 0:
        raise NotRootError(what)


def which(binary: str) -> str:
    """Absolute path of binary, or MissingBinaryError naming the Debian package."""
    path = shutil.which(binary, path=os.environ.get("PATH", "") + ":" + SEARCH_PATH)
    if path is None:
        raise MissingBinaryError(binary, BINARIES.get(binary, binary))
    return path


def check_binaries() -> dict[str, str]:
    found = {name: which(name) for name in BINARIES}
    if not is_static_elf(found["busybox"]):
        raise MissingBinaryError("a static busybox", "busybox-static")
    return found


def is_static_elf(path: str) -> bool:
    """True if the ELF at path has no PT_INTERP segment (no dynamic loader needed)."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only, which is all Debian ships
            return False
        (phoff,) = struct.unpack_from("<Q", head, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(
        struct.unpack_from("<I", table, i * phentsize)[0] != 3  # PT_INTERP
        for i in range(phnum)
    )


# -- state ---------------------------------------------------------------------------------


def read_state(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def write_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
    tmp.replace(path)


def pid_from(pidfile: Path, program: str, marker: str, uid: int | None = None) -> int | None:
    """The running `program` whose command line holds marker (and, given uid, whose real uid
    it is): the PID in pidfile, or else found in the process table (the daemon may have been
    restarted by someone else, e.g. `survive`), in which case the pidfile is brought up to
    date."""

    def mine(cmd: list[str], status: str, uids: Any) -> bool:
        return (
            status != psutil.STATUS_ZOMBIE
            and marker in cmd
            and (uid is None or (uids is not None and uids.real == uid))
        )

    try:
        pid = int(pidfile.read_text().strip())
        proc = psutil.Process(pid)
        if mine(proc.cmdline(), proc.status(), proc.uids()):
            return pid
    except (OSError, ValueError, psutil.Error):
        pass
    for proc in psutil.process_iter(["pid", "cmdline", "status", "uids"]):
        cmd = proc.info["cmdline"] or []
        if (
            cmd
            and os.path.basename(cmd[0]) == program
            and mine(cmd, proc.info["status"], proc.info["uids"])
        ):
            if pidfile.parent.is_dir():
                pidfile.write_text(f"{proc.info['pid']}\n")
            return int(proc.info["pid"])
    return None


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for the published-port demo (18080 when it is free)."""
    for port in (18080, 0):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "in use"
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise EngineError("no free TCP port on 127.0.0.1 for the lab's published-port demo")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([which("ip"), *args], capture_output=True, text=True, check=check)


def ensure_bridge(bridge: str, addr: str, progress: Callable[[str], None]) -> None:
    """A bridge of the lab's own (a dockerd given --bridge uses it; never --bridge=none, with
    which a second dockerd deletes the host's docker0)."""
    if ip("link", "show", bridge, check=False).returncode == 0:
        return
    progress(f"creating bridge {bridge} ({addr})")
    try:
        ip("link", "add", bridge, "type", "bridge")
        ip("addr", "add", addr, "dev", bridge)
        ip("link", "set", bridge, "up")
    except subprocess.CalledProcessError as exc:
        raise EngineError(f"cannot create bridge {bridge}: {exc.stderr.strip()}") from exc


def delete_bridge(
    bridge: str, removed: list[str], left: list[str], progress: Callable[[str], None]
) -> None:
    if ip("link", "show", bridge, check=False).returncode != 0:
        return
    progress(f"deleting bridge {bridge}")
    out = ip("link", "delete", bridge, check=False)
    if out.returncode == 0:
        removed.append(f"bridge {bridge}")
    else:
        left.append(f"bridge {bridge} ({out.stderr.strip() or 'ip failed'})")


def connectable(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


def rmtree(root: Path) -> str | None:
    """Remove root and all it holds; the first error met, if any."""
    errors: list[str] = []

    def failed(_fn: Any, path: str, exc: Any) -> None:
        errors.append(f"{path}: {exc[1]}")

    shutil.rmtree(root, onerror=failed)
    return errors[0] if errors else None


def kill_tree(pid: int) -> None:
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.Error:
        return
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(procs, timeout=5)


def umount(mount: str) -> bool:
    return subprocess.run(["umount", "-l", mount], capture_output=True).returncode == 0


def mounts_under(roots: tuple[Path, ...]) -> list[str]:
    """Mount points under roots, deepest first (from /proc/self/mountinfo)."""
    from tracer.kernel.mountinfo import parse_mount_points

    try:
        text = Path("/proc/self/mountinfo").read_text(errors="surrogateescape")
    except OSError:
        return []
    found = {
        point
        for point in parse_mount_points(text.splitlines())
        if any(point == str(r) or point.startswith(f"{r}/") for r in roots)
    }
    return sorted(found, key=lambda p: p.count("/"), reverse=True)


def busybox_rootfs(busybox: str) -> dict[str, bytes | str]:
    """A busybox root file system: the static binary, a symlink per applet, a web page."""
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True)
    files: dict[str, bytes | str] = {"bin/busybox": Path(busybox).read_bytes()}
    for applet in applets.stdout.split():
        if applet != "busybox":
            files[f"bin/{applet}"] = "busybox"
    files["www/index.html"] = b"<h1>dtrace-tree lab</h1>\n"
    files["tmp/.keep"] = b""
    return files
