"""A rootless Docker engine of the lab (`lab up --rootless`), set up as a user would.

A user the lab creates (dtlab-rootless; dtlab26-rootless for the 2026 stack) with subordinate
uid and gid ranges, its XDG_RUNTIME_DIR /run/user/<uid>, and /dev/net/tun usable by it (slirp4netns
needs it; it is 0600 on this machine until changed) runs the stack's `dockerd-rootless.sh` (in
the docker.io package), which runs rootlesskit (--net=slirp4netns), rootlesskit's child, and
dockerd with its managed containerd inside rootlesskit's user, mount and network namespaces.
API /run/user/<uid>/docker.sock; data root ~/.local/share/docker.

What the lab changed on the host is written down first (the lab's data directory,
rootless.json) and undone by `lab down`: the user and its home, its lines in /etc/subuid and
/etc/subgid, its runtime directory, /dev/net/tun's mode, /run/user if the lab made it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from tracer.errors import EngineError, MissingBinaryError, WaitTimeoutError
from tracer.ops import daemon, labhost
from tracer.ops.labconfig import STACKS, LabPaths
from tracer.ops.stacks.extras import ensure_demo, remove_containers
from tracer.runtimes.dockerapi import DockerApi

Progress = Callable[[str], None]
COMMENT = "dtrace-tree lab rootless Docker"
SUBID_FILES = ("/etc/subuid", "/etc/subgid")
SUBID_COUNT = 65536
TUN = "/dev/net/tun"
NEEDS = {"rootlesskit": "rootlesskit", "slirp4netns": "slirp4netns", "newuidmap": "uidmap",
         "setpriv": "util-linux", "useradd": "passwd"}  # fmt: skip
SCRIPT = "usr/share/docker.io/contrib/dockerd-rootless.sh"


@dataclass(frozen=True)
class RootlessEngine:
    lab: LabPaths

    @property
    def user(self) -> str:
        stack = self.lab.stack
        if not self.lab.is_default:  # a lab built elsewhere (a test's): a user of its own
            return f"dtlab-rl-{hashlib.sha256(str(self.lab.run).encode()).hexdigest()[:8]}"
        return "dtlab-rootless" if stack == "2023" else f"dtlab{stack[2:]}-rootless"

    @property
    def title(self) -> str:
        return f"rootless Docker of {self.user}"

    @property
    def record(self) -> Path:
        return self.lab.data / "rootless.json"

    @property
    def log(self) -> Path:
        return self.lab.logs / "dockerd-rootless.log"

    @property
    def container(self) -> str:
        return "lab-rootless-plain"

    def account(self) -> pwd.struct_passwd | None:
        try:
            return pwd.getpwnam(self.user)
        except KeyError:
            return None

    def xdg(self, uid: int) -> Path:
        return Path(f"/run/user/{uid}")

    def docker_sock(self, uid: int) -> Path:
        return self.xdg(uid) / "docker.sock"


def _read(r: RootlessEngine) -> dict[str, Any]:
    return labhost.read_state(r.record)


def up(paths: LabPaths, bins: Any, progress: Progress) -> None:
    """The lab's rootless engine and its demo container (idempotent)."""
    r = RootlessEngine(paths)
    for binary, package in NEEDS.items():
        if shutil.which(binary, path=labhost.SEARCH_PATH) is None:
            raise MissingBinaryError(binary, package)
    script = Path(bins.root or "/") / SCRIPT
    if not script.is_file():
        raise MissingBinaryError("dockerd-rootless.sh", "docker.io")
    record = _read(r)
    entry = r.account()
    if entry is None:
        progress(f"creating user {r.user} (rootless Docker)")
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", "--comment", COMMENT,
                        r.user], check=True, capture_output=True)  # fmt: skip
        record["user_made"] = True
        entry = pwd.getpwnam(r.user)
    _subids(r, record)
    if not os.path.isdir("/run/user"):
        os.makedirs("/run/user", mode=0o755)
        record["run_user_made"] = True
    xdg = r.xdg(entry.pw_uid)
    if not xdg.is_dir():
        xdg.mkdir(mode=0o700)
        os.chown(xdg, entry.pw_uid, entry.pw_gid)
        record["xdg_made"] = True
    mode = stat.S_IMODE(os.stat(TUN).st_mode)
    if mode & 0o006 != 0o006:  # slirp4netns opens it as the user
        record.setdefault("tun_mode", mode)
        labhost.write_state(r.record, record)  # before the change it records
        os.chmod(TUN, 0o666)
    labhost.write_state(r.record, record)
    _config(entry, paths)
    if pid(r) is None:
        progress(f"starting {r.title} (dockerd-rootless.sh: rootlesskit, slirp4netns, dockerd)")
        env = [f"HOME={entry.pw_dir}", f"XDG_RUNTIME_DIR={xdg}", f"PATH={bins.search_path}",
               f"USER={r.user}", f"LOGNAME={r.user}"]  # fmt: skip
        argv = ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups",
                "env", "-i", *env, "sh", str(script)]  # fmt: skip
        started = daemon.start_detached(argv, str(r.log), cwd=entry.pw_dir)
        (paths.run / "rootlesskit.pid").write_text(f"{started}\n")
    sock = r.docker_sock(entry.pw_uid)
    api = DockerApi(str(sock))
    if not daemon.wait_until(lambda: labhost.connectable(sock) and api.ping(), 60, interval=0.2):
        raise WaitTimeoutError(f"{r.title} did not answer within 60s", f"see {r.log}")
    ensure_demo(f"unix://{sock}", r.container, r.title, bins["busybox"], progress)


def _subids(r: RootlessEngine, record: dict[str, Any]) -> None:
    """A subordinate uid and gid range of its own, after every range already given."""
    texts = {f: (Path(f).read_text() if Path(f).exists() else "") for f in SUBID_FILES}
    if all(any(ln.split(":")[0] == r.user for ln in t.splitlines()) for t in texts.values()):
        return
    end = 400000
    for text in texts.values():
        for line in text.splitlines():
            parts = line.split(":")
            if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                end = max(end, int(parts[1]) + int(parts[2]))
    line = f"{r.user}:{end}:{SUBID_COUNT}"
    record["subid"] = line
    labhost.write_state(r.record, record)
    for f, text in texts.items():
        if not any(ln.split(":")[0] == r.user for ln in text.splitlines()):
            with open(f, "a") as out:
                out.write(("" if text.endswith("\n") or not text else "\n") + line + "\n")


def _config(entry: pwd.struct_passwd, paths: LabPaths) -> None:
    """~/.config/docker/daemon.json: the stack's features (the 2026 one's image store)."""
    features = STACKS[paths.stack].features
    where = Path(entry.pw_dir) / ".config" / "docker"
    for d in (where.parent, where):
        d.mkdir(exist_ok=True)
        os.chown(d, entry.pw_uid, entry.pw_gid)
    conf = where / "daemon.json"
    conf.write_text(json.dumps({"features": dict(features)} if features else {}, indent=2))
    os.chown(conf, entry.pw_uid, entry.pw_gid)


def pid(r: RootlessEngine) -> int | None:
    """Its rootlesskit (the parent of all of it): the user's, with the network the lab's
    engine has. (Docker 20.10's dockerd-rootless.sh passes rootlesskit no --state-dir: the
    user, which is the lab's own, is what tells it.)"""
    entry = r.account()
    if entry is None:
        return None
    pidfile = r.lab.run / "rootlesskit.pid"
    return labhost.pid_from(pidfile, "rootlesskit", "--net=slirp4netns", uid=entry.pw_uid)


def status(paths: LabPaths) -> list[dict[str, Any]]:
    r = RootlessEngine(paths)
    found, entry = pid(r), r.account()
    if found is None or entry is None:
        return []
    sock = r.docker_sock(entry.pw_uid)
    names: list[str] = []
    with contextlib.suppress(EngineError):
        names = sorted(c.name or c.id for c in DockerApi(str(sock)).containers())
    title = f"{r.title} (uid {entry.pw_uid})"
    return [{"name": "rootless", "title": title, "dockerd_pid": found,
             "docker_host": f"unix://{sock}", "containers": names}]  # fmt: skip


def down(paths: LabPaths, removed: list[str], left: list[str], progress: Progress) -> None:
    """Undo all of it: containers, daemons, user and home, subordinate ranges, runtime
    directory, /dev/net/tun's mode, as rootless.json recorded."""
    r = RootlessEngine(paths)
    record, entry = _read(r), r.account()
    if entry is not None and (record or entry.pw_gecos == COMMENT):
        sock = r.docker_sock(entry.pw_uid)
        if labhost.connectable(sock):
            remove_containers(f"unix://{sock}", r.title, removed, left, progress)
        ident = daemon.identify(pid(r))
        if ident is not None:
            progress(f"stopping {r.title} (rootlesskit {ident.pid})")
            daemon.stop(ident, timeout=30)
            removed.append(f"{r.title} {ident.pid}")
        _kill_all(entry.pw_uid, _subuid_range(r.user))
        if record.get("user_made") or entry.pw_gecos == COMMENT:
            progress(f"removing user {r.user} and its home {entry.pw_dir}")
            out = subprocess.run(["userdel", "--remove", r.user], capture_output=True, text=True)
            if os.path.lexists(entry.pw_dir):  # files of its subordinate uids are left
                labhost.rmtree(Path(entry.pw_dir))
            if r.account() is None and not os.path.lexists(entry.pw_dir):
                removed.append(f"user {r.user}")
            else:
                left.append(f"user {r.user} ({out.stderr.strip() or 'userdel failed'})")
        xdg = r.xdg(entry.pw_uid)
        if record.get("xdg_made", True) and xdg.exists():
            for m in labhost.mounts_under((xdg,)):
                labhost.umount(m)
            labhost.rmtree(xdg)
            (left if xdg.exists() else removed).append(f"directory {xdg}")
    _undo_host(r, record, removed, left)


def _undo_host(r: RootlessEngine, record: dict[str, Any], removed: list[str],
               left: list[str]) -> None:  # fmt: skip
    for f in SUBID_FILES:
        if not os.path.exists(f):
            continue
        text = Path(f).read_text()
        kept = [ln for ln in text.splitlines() if ln.split(":")[0] != r.user]
        if len(kept) != len(text.splitlines()):
            Path(f).write_text("".join(f"{ln}\n" for ln in kept))
            removed.append(f"{r.user}'s range in {f}")
    if "tun_mode" in record:
        os.chmod(TUN, int(record["tun_mode"]))
        removed.append(f"{TUN} mode 0666 (back to {int(record['tun_mode']):04o})")
    if record.get("run_user_made"):
        with contextlib.suppress(OSError):
            os.rmdir("/run/user")
    r.record.unlink(missing_ok=True)
    (r.lab.run / "rootlesskit.pid").unlink(missing_ok=True)


def _subuid_range(user: str) -> range:
    for line in (
        Path("/etc/subuid").read_text() if os.path.exists("/etc/subuid") else ""
    ).splitlines():
        parts = line.split(":")
        if len(parts) == 3 and parts[0] == user and parts[1].isdigit() and parts[2].isdigit():
            return range(int(parts[1]), int(parts[1]) + int(parts[2]))
    return range(0)


def _kill_all(uid: int, subordinate: range) -> None:
    """Whatever of the user still runs: its shims and containers are its processes too, or
    run as one of its subordinate uids."""
    mine = [
        p
        for p in psutil.process_iter(["uids"])
        if p.info["uids"] and (p.info["uids"].real == uid or p.info["uids"].real in subordinate)
    ]
    for p in mine:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(mine, timeout=10)
