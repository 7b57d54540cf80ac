"""More dockerds on the lab's containerd: a second one (`lab up --second-dockerd`) and one
started as systemd starts it, by socket activation (`lab up --socket-activated`).

Both use the lab's containerd with the default namespace, moby, as a second engine on a host's
system containerd does: their containers differ only by the dockerd that made them (its
exec-root, where runc keeps their state). Each has its own socket, exec root, data root,
daemon.json, pidfile and bridge (never --bridge=none: that deletes the host's docker0), and
the lab's isolation flags. The socket-activated one is run by `systemd-socket-activate -l SOCK
dockerd -H fd:// …`, which listens, and execs dockerd on the first connection with the socket
as fd 3 (LISTEN_FDS=1, LISTEN_PID): no systemd needs to be PID 1. Each can be taken down on its
own; `lab down` takes them down with the lab.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracer.errors import EngineError, MissingBinaryError, WaitTimeoutError
from tracer.kernel.root import HostRoot
from tracer.ops import daemon, labhost
from tracer.ops.labconfig import IMAGE, IMAGE_REPO, IMAGE_TAG, LABEL, STACKS, DockerdFiles, LabPaths
from tracer.ops.labconfig import daemon_config as lab_daemon_config
from tracer.runtimes.dockerapi import DockerApi

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Extra:
    name: str  # also its directory under the lab's, and its demo container's infix
    title: str
    index: int  # its bridge's subnet, among the extras of a lab
    activated: bool = False


EXTRAS = {
    "second": Extra("second", "a second dockerd on the lab's containerd", 1),
    "activated": Extra("activated", "a socket-activated dockerd on the lab's containerd", 2,
                       activated=True),
}  # fmt: skip


@dataclass(frozen=True)
class ExtraDockerd(DockerdFiles):
    """Where an extra dockerd of a lab lives."""

    lab: LabPaths
    extra: Extra

    @property
    def run(self) -> Path:
        return self.lab.run / self.extra.name

    @property
    def data(self) -> Path:
        return self.lab.data / self.extra.name

    @property
    def log(self) -> Path:
        return self.lab.logs / f"dockerd-{self.extra.name}.log"

    @property
    def bridge(self) -> str:
        return f"{self.lab.bridge}{self.extra.name[0]}"  # dtlab0s, dtlab26a: <= 15 characters

    @property
    def bridge_addr(self) -> str:
        """10.213.<n>.1/24: n by stack for the lab of a stack, by its directory for another."""
        if self.lab.is_default:
            return f"10.213.{8 * list(STACKS).index(self.lab.stack) + self.extra.index}.1/24"
        n = int(hashlib.sha256(str(self.lab.run).encode()).hexdigest(), 16) % 60
        return f"10.214.{4 * n + self.extra.index}.1/24"

    @property
    def container(self) -> str:
        return f"lab-{self.extra.name}-plain"


def of(paths: LabPaths, names: list[str] | None = None) -> list[ExtraDockerd]:
    """These extras of the lab (None: every one; [] none)."""
    return [ExtraDockerd(paths, EXTRAS[n]) for n in (list(EXTRAS) if names is None else names)]


def dockerd_argv(e: ExtraDockerd, dockerd: str, activate: str | None) -> list[str]:
    common = e.dockerd_options(e.lab.containerd_sock, e.bridge)  # the lab's, namespace moby
    if activate:  # as a systemd unit runs it: the socket comes in as fd 3
        return [activate, "-l", str(e.docker_sock), dockerd, "-H", "fd://", *common]
    return [dockerd, "--host", e.docker_host, "--group", "root", *common]


def pid(e: ExtraDockerd) -> int | None:
    """Its dockerd (or, before the first connection, its systemd-socket-activate)."""
    marker = str(e.exec_root)
    return labhost.pid_from(e.docker_pid, "dockerd", marker) or (
        labhost.pid_from(e.run / "activate.pid", "systemd-socket-activate", marker)
        if e.extra.activated
        else None
    )


def up(paths: LabPaths, names: list[str], bins: Any, progress: Progress) -> None:
    """Start these extra dockerds and their demo container (idempotent)."""
    activate = None
    if any(EXTRAS[n].activated for n in names):
        activate = shutil.which("systemd-socket-activate", path=labhost.SEARCH_PATH)
        if activate is None:
            raise MissingBinaryError("systemd-socket-activate", "systemd")
    for e in of(paths, names):
        e.run.mkdir(mode=0o700, parents=True, exist_ok=True)
        e.data.mkdir(mode=0o700, parents=True, exist_ok=True)
        labhost.ensure_bridge(e.bridge, e.bridge_addr, progress)
        config = lab_daemon_config(True, paths)
        if "deprecated-key-path" in config:
            config["deprecated-key-path"] = str(e.data / "key.json")
        e.daemon_json.write_text(json.dumps(config, indent=2))
        if pid(e) is None:
            progress(f"starting {e.extra.title}")
            argv = dockerd_argv(e, bins["dockerd"], activate if e.extra.activated else None)
            started = daemon.start_detached(argv, str(e.log), env=bins.env())
            if e.extra.activated:
                (e.run / "activate.pid").write_text(f"{started}\n")
        _wait_api(e)  # the first connection is what makes systemd-socket-activate exec dockerd
        ensure_demo(e.docker_host, e.container, e.extra.title, bins["busybox"], progress)


def _wait_api(e: ExtraDockerd, timeout: float = 60) -> None:
    api = DockerApi(str(e.docker_sock))
    if not daemon.wait_until(lambda: labhost.connectable(e.docker_sock) and api.ping(), timeout,
                             interval=0.2):  # fmt: skip
        raise WaitTimeoutError(
            f"{e.extra.title} did not answer within {timeout:.0f}s", f"see {e.log}"
        )
    if not daemon.wait_until(api.reaches_containerd, timeout, interval=0.2):
        raise WaitTimeoutError(f"{e.extra.title} did not reach the lab's containerd")


def ensure_demo(host: str, name: str, title: str, busybox: str, progress: Progress) -> None:
    """The lab's image and a plain demo container `name` in the engine at host (idempotent)."""
    from tracer.runtimes.dockersdk import Api, tar_image

    with Api(host, timeout=60) as api:
        if not api.has_image(IMAGE):
            progress(f"building image {IMAGE} in {title}")
            files = labhost.busybox_rootfs(busybox)
            api.import_image(tar_image(files, {"www/index.html": 0o644}), IMAGE_REPO, IMAGE_TAG)
        found = api.inspect(name)
        if found and found["State"]["Running"]:
            return
        if found:
            api.start(name)
            return
        progress(f"creating {name} in {title}")
        api.run(IMAGE, ["sh", "-c", "sleep 2147483647 & wait"], name,
                labels={LABEL: "1", f"{LABEL}.shape": f"plain, in {title}"},
                environment={"PATH": "/bin"})  # fmt: skip


def remove_containers(host: str, title: str, removed: list[str], left: list[str],
                      progress: Progress) -> None:  # fmt: skip
    """Remove every container of the engine at host (it may have live-restore on)."""
    from tracer.runtimes.dockersdk import Api

    try:
        listed = DockerApi(host.removeprefix("unix://"), timeout=60).containers(all=True)
        with Api(host, timeout=60) as api:
            for c in listed:
                progress(f"removing container {c.name} of {title}")
                api.remove(c.id)
                removed.append(f"container {c.name}")
    except EngineError as exc:
        left.append(f"the containers of {title} ({exc.message})")


def status(paths: LabPaths) -> list[dict[str, Any]]:
    """The extra dockerds that run: name, pid, socket, their containers' names."""
    out = []
    for e in of(paths):
        found = pid(e)
        if found is None:
            continue
        names: list[str] = []
        with contextlib.suppress(EngineError):
            names = sorted(c.name or c.id for c in DockerApi(str(e.docker_sock)).containers())
        out.append({"name": e.extra.name, "title": e.extra.title, "dockerd_pid": found,
                    "docker_host": e.docker_host, "containers": names})  # fmt: skip
    return out


def down(
    paths: LabPaths,
    removed: list[str],
    left: list[str],
    progress: Progress,
    names: list[str] | None = None,
) -> None:
    """Remove these extra dockerds (all by default): containers, daemon, mounts, bridge, dirs.
    Before the lab's containerd stops: their containers are removed through it."""
    for e in of(paths, names):
        found = pid(e)
        if found and labhost.connectable(e.docker_sock):
            remove_containers(e.docker_host, e.extra.title, removed, left, progress)
        ident = daemon.identify(found)
        if ident is not None:
            progress(f"stopping {e.extra.title} (pid {ident.pid})")
            daemon.stop(ident, timeout=30)
            if ident.alive(HostRoot()):
                left.append(f"{e.extra.title} {ident.pid} (still running after SIGKILL)")
            else:
                removed.append(f"{e.extra.title} {ident.pid}")
        for mount in labhost.mounts_under((e.run, e.data)):
            if labhost.umount(mount):
                removed.append(f"mount {mount}")
            else:
                left.append(f"mount {mount} (umount failed)")
        labhost.delete_bridge(e.bridge, removed, left, progress)
        for d in (e.run, e.data):
            if d.exists():
                why = labhost.rmtree(d)
                (left if d.exists() else removed).append(
                    f"directory {d}" + (f" ({why})" if d.exists() else "")
                )
