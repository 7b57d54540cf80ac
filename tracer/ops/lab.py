"""The lab: a private, real Docker engine that dtrace-tree starts, owns and removes.

Each stack (tracer/ops/labconfig.py STACKS) has a lab of its own: the 2023 one runs the host's
Debian 12 packages, the 2026 one Debian sid's dockerd and containerd (tracer/ops/stacks/debs.py)
with the containerd image store. The two can run side by side.

Its own containerd (own socket, root and state) and its own dockerd (own socket, data root,
exec root, pidfile, config file, bridge), isolated from any engine already on the host:
- `--containerd` is always given, or dockerd 20.10 would attach to /run/containerd/containerd.sock;
- its own bridge is created first and passed with `--bridge`; the lab never uses `--bridge=none`,
  which makes a second dockerd delete the host's docker0;
- `--iptables=false --ip-masq=false --ip-forward=false`, so no host iptables chain or sysctl
  is touched (docker-proxy still serves the published port on 127.0.0.1);
- its own daemon.json (`--config-file`), so the host's /etc/docker/daemon.json is never read,
  with `deprecated-key-path` set so that /etc/docker/key.json is not created (dockerd 20.10);
- sockets are 0660 root:root inside a 0700 directory, and nothing listens on TCP but the
  demo's docker-proxy, on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

from tracer.errors import EngineError, WaitTimeoutError
from tracer.kernel.procfs import ProcessId
from tracer.kernel.root import HostRoot
from tracer.ops import daemon, labengines, labhost
from tracer.ops.labconfig import (
    IMAGE,
    IMAGE_REPO,
    IMAGE_TAG,
    LABEL,
    SIDE_EFFECT_DIRS,
    SLEEP,
    LabPaths,
    containerd_config,
    daemon_config,
    demos,
    dockerd_argv,
)
from tracer.ops.labhost import require_root
from tracer.ops.stacks import debs, extras, rootless
from tracer.runtimes.dockerapi import DockerApi

STATUS_SCHEMA = "dtrace-tree/lab-status/1"  # `lab status --json`, `lab up --json`

__all__ = ["IMAGE", "LABEL", "LabPaths", "Teardown", "down", "require_root", "status", "up"]

Progress = Callable[[str], None]
labhost.SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class LabStatus:
    docker_host: str
    running: bool
    containerd_pid: int | None
    dockerd_pid: int | None
    api: bool
    live_restore: bool | None
    containers: list[dict[str, Any]]
    podman: list[dict[str, Any]] | None = None  # `lab up --podman`: its containers
    cri_containerd_pid: int | None = None  # `lab up --containerd`: the second containerd
    ctr: list[dict[str, Any]] | None = None  # and its ctr containers
    stack: str = "2023"  # which dockerd, containerd and runc (tracer/ops/labconfig.py STACKS)
    versions: dict[str, str] | None = None  # component -> version, as the engine reports them
    extras: list[dict[str, Any]] = field(default_factory=list)  # more dockerds on its containerd
    storage: str | None = None  # the engine's storage driver (overlayfs: containerd's store)

    def to_json(self) -> dict[str, Any]:
        return {"schema": STATUS_SCHEMA, **asdict(self)}


# -- preconditions -----------------------------------------------------------------------


def containerd_pid(paths: LabPaths) -> int | None:
    return labhost.pid_from(paths.containerd_pid, "containerd", str(paths.containerd_toml))


def dockerd_pid(paths: LabPaths) -> int | None:
    return labhost.pid_from(paths.docker_pid, "dockerd", paths.docker_host)


# -- up ------------------------------------------------------------------------------------


def up(
    live_restore: bool = True,
    paths: LabPaths | None = None,
    progress: Progress = lambda _msg: None,
    podman: bool = False,
    containerd: bool = False,
    more: Sequence[str] = (),
) -> LabStatus:
    """Start the lab (idempotent): containerd, dockerd, image, demo containers; with podman,
    rootful podman containers of the lab's own storage; with containerd, a second containerd
    (CRI on) and ctr containers in the lab's namespace there; more: extra dockerds on the
    lab's containerd (tracer/ops/stacks/extras.py EXTRAS)."""
    paths = paths or LabPaths()
    require_root()
    bins = debs.binaries(paths, progress)  # first: a stack that cannot be had leaves nothing

    state = labhost.read_state(paths.state_json) if paths.state_json.exists() else {}
    if "preexisting" not in state:
        state["preexisting"] = [d for d in SIDE_EFFECT_DIRS if os.path.lexists(d)]
    _make_dirs(paths)
    state.setdefault("web_port", labhost.free_port())
    labhost.write_state(paths.state_json, state)

    labhost.ensure_bridge(paths.bridge, paths.bridge_addr, progress)
    _ensure_containerd(paths, bins, progress)
    _ensure_dockerd(paths, bins, live_restore, progress)

    from tracer.runtimes.dockersdk import Api

    # After a containerd (re)start, dockerd reconnects with a back-off: wait for it.
    reads = DockerApi(str(paths.docker_sock), timeout=60)
    with Api(paths.docker_host, timeout=60) as api:
        if not daemon.wait_until(reads.reaches_containerd, 60, interval=0.2):
            raise WaitTimeoutError("the lab's dockerd did not reconnect to its containerd in 60s")
        _ensure_image(api, bins["busybox"], progress)
        _ensure_demos(api, paths, state, progress)
    if podman:
        labengines.podman_up(paths, bins["busybox"], progress)
    if containerd:
        labengines.containerd_up(paths, bins["busybox"], progress)
    extras.up(paths, [n for n in more if n in extras.EXTRAS], bins, progress)
    if "rootless" in more:
        rootless.up(paths, bins, progress)
    labhost.write_state(paths.state_json, state)
    return status(paths)


def _make_dirs(paths: LabPaths) -> None:
    for d in (paths.run, paths.containerd_dir, paths.data, paths.logs):
        d.mkdir(parents=True, exist_ok=True)
    # A docker or containerd socket is root access for whoever can open it.
    os.chmod(paths.run, 0o700)
    os.chmod(paths.data, 0o700)


def _ensure_containerd(paths: LabPaths, bins: debs.Binaries, progress: Progress) -> None:
    if containerd_pid(paths):
        return
    progress("starting the lab's containerd")
    paths.containerd_toml.write_text(containerd_config(paths))
    pid = daemon.start_detached(
        [bins["containerd"], "--config", str(paths.containerd_toml)],
        str(paths.logs / "containerd.log"),
        env=bins.env(),
    )
    paths.containerd_pid.write_text(f"{pid}\n")
    if not daemon.wait_until(lambda: labhost.connectable(paths.containerd_sock), 30):
        raise EngineError(
            "the lab's containerd did not start", f"see {paths.logs / 'containerd.log'}"
        )


def _ensure_dockerd(
    paths: LabPaths, bins: debs.Binaries, live_restore: bool, progress: Progress
) -> None:
    wanted = daemon_config(live_restore, paths)
    pid = dockerd_pid(paths)
    if pid:
        try:
            current = json.loads(paths.daemon_json.read_text())
        except (OSError, ValueError):
            current = {}
        if current != wanted:
            # live-restore is reloadable: SIGHUP, no restart, containers untouched.
            progress(f"reloading dockerd with live-restore={'on' if live_restore else 'off'}")
            paths.daemon_json.write_text(json.dumps(wanted, indent=2))
            os.kill(pid, signal.SIGHUP)
        _wait_api(paths, pid)
        return
    progress(f"starting the lab's dockerd (live-restore {'on' if live_restore else 'off'})")
    paths.daemon_json.write_text(json.dumps(wanted, indent=2))
    log = str(paths.logs / "dockerd.log")
    pid = daemon.start_detached(dockerd_argv(paths, bins["dockerd"]), log, env=bins.env())
    _wait_api(paths, pid)


def _wait_api(paths: LabPaths, pid: int, timeout: float = 60) -> None:
    ident = daemon.identify(pid)
    api = DockerApi(str(paths.docker_sock))

    def ready() -> bool:
        if ident is None or not ident.alive(HostRoot()):
            raise EngineError(
                "the lab's dockerd exited during start-up", f"see {paths.logs / 'dockerd.log'}"
            )
        return labhost.connectable(paths.docker_sock) and api.ping()

    if not daemon.wait_until(ready, timeout, interval=0.2):
        raise WaitTimeoutError(
            f"the lab's dockerd did not answer within {timeout:.0f}s",
            f"see {paths.logs / 'dockerd.log'}",
        )


def _ensure_image(api: Any, busybox: str, progress: Progress) -> None:
    if api.has_image(IMAGE):
        return
    progress(f"building image {IMAGE} from {busybox} (no registry needed)")
    from tracer.runtimes.dockersdk import tar_image

    files = labhost.busybox_rootfs(busybox)
    api.import_image(tar_image(files, {"www/index.html": 0o644}), IMAGE_REPO, IMAGE_TAG)


def _ensure_demos(api: Any, paths: LabPaths, state: dict[str, Any], progress: Progress) -> None:
    env = {"PATH": "/bin"}
    for demo in demos(int(state["web_port"])):
        found = api.inspect(demo.name)
        running = bool(found and found["State"]["Running"])
        if found and (running or not demo.running):
            continue
        if found:
            progress(f"starting {demo.name}")
            try:
                api.start(demo.name)
                continue
            except EngineError as exc:
                # On a busy host, another engine may take the published port while the
                # container is stopped (dockerd's port allocator knows only its own): a new port,
                # a new container.
                why = f"{exc} {exc.__cause__}"  # the message is cut short; its cause is whole
                if "ports" not in demo.options or "address already in use" not in why:
                    raise
            state["web_port"] = labhost.free_port()
            progress(f"port taken: re-creating {demo.name} on 127.0.0.1:{state['web_port']}")
            api.remove(demo.name)
            again = demos(int(state["web_port"]))
            (demo,) = [d for d in again if d.name == demo.name]
            for other in again:  # those in its namespaces join the new one (made after it)
                if f"container:{demo.name}" in other.options.values():
                    api.remove(other.name)
        progress(f"creating {demo.name}: {demo.shape}")
        api.run(
            IMAGE,
            demo.command,
            demo.name,
            labels={LABEL: "1", f"{LABEL}.shape": demo.shape},
            environment=env,
            **demo.options,
        )
        if not demo.running:
            api.wait(demo.name)
    if not _exec_alive(api, "lab-exec"):
        progress("starting `docker exec lab-exec sleep ...`")
        state["exec_id"] = api.exec_detached("lab-exec", SLEEP)


def _exec_alive(api: Any, name: str) -> bool:
    """Does the container run a process besides its init (an exec, a child of its shim)?

    Asked of /proc, not of the API: dockerd forgets exec sessions when it restarts
    (live-restore keeps the process, not the record), so the API would say "none".
    """
    found = api.inspect(name)
    init_pid = found["State"]["Pid"] if found else 0
    try:
        shim = psutil.Process(init_pid).parent() if init_pid else None
        kids = shim.children() if shim else []
        return any(
            k.pid != init_pid and k.status() != psutil.STATUS_ZOMBIE and k.name() != "runc"
            for k in kids
        )
    except psutil.Error:
        return False


# -- status --------------------------------------------------------------------------------


def status(paths: LabPaths | None = None) -> LabStatus:
    require_root("lab status")  # its pidfiles and sockets are in a 0700 directory
    paths = paths or LabPaths()
    c_pid, d_pid = containerd_pid(paths), dockerd_pid(paths)
    api_up, live_restore, containers = False, None, []
    versions, storage = None, None
    if d_pid and labhost.connectable(paths.docker_sock):
        try:
            api = DockerApi(str(paths.docker_sock))
            info = api.info()
            live_restore, storage = bool(info.get("LiveRestoreEnabled")), info.get("Driver")
            components = api.get("/version").get("Components") or []
            versions = {str(c.get("Name")): str(c.get("Version")) for c in components}
            for c in api.containers(all=True):
                containers.append(
                    {
                        "name": c.name,
                        "id": c.id,
                        "state": c.state,
                        "shape": c.labels.get(f"{LABEL}.shape", ""),
                    }
                )
            api_up = True
        except EngineError:
            api_up = False
    containers.sort(key=lambda c: c["name"] or "")
    return LabStatus(
        docker_host=paths.docker_host,
        running=bool(c_pid or d_pid),
        containerd_pid=c_pid,
        dockerd_pid=d_pid,
        api=api_up,
        live_restore=live_restore,
        containers=containers,
        podman=labengines.podman_status(paths),
        cri_containerd_pid=labengines.containerd_pid(paths),
        ctr=labengines.ctr_status(paths),
        stack=paths.stack,
        versions=versions,
        extras=extras.status(paths) + rootless.status(paths),
        storage=storage,
    )


# -- down ----------------------------------------------------------------------------------


@dataclass
class Teardown:
    """What `lab down` removed, and what it could not (each with why)."""

    removed: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)


def down(
    paths: LabPaths | None = None,
    progress: Progress = lambda _msg: None,
    only: Sequence[str] = (),
) -> Teardown:
    """Remove everything the lab made (only: just these extras); say what was removed and
    what is left."""
    paths = paths or LabPaths()
    require_root()
    done = Teardown()
    if only:
        named = [n for n in only if n in extras.EXTRAS]
        if named:
            extras.down(paths, done.removed, done.left, progress, names=named)
        if "rootless" in only:
            rootless.down(paths, done.removed, done.left, progress)
        return done
    state = labhost.read_state(paths.state_json)

    d_pid = dockerd_pid(paths)
    if d_pid and labhost.connectable(paths.docker_sock):
        # With live-restore on, stopping dockerd would leave containers running: remove first.
        from tracer.runtimes.dockersdk import Api

        try:
            listed = DockerApi(str(paths.docker_sock), timeout=60).containers(all=True)
            with Api(paths.docker_host, timeout=60) as api:
                for c in listed:
                    progress(f"removing container {c.name}")
                    api.remove(c.id)
                    done.removed.append(f"container {c.name}")
        except EngineError as exc:
            progress(f"API unavailable ({exc.message}); killing the lab's shims instead")
    extras.down(paths, done.removed, done.left, progress)
    rootless.down(paths, done.removed, done.left, progress)
    labengines.podman_down(paths, done.removed, done.left, progress)
    cri_pid = labengines.containerd_down(paths, done.removed, done.left, progress)
    _stop(done, "dockerd", daemon.identify(d_pid), 30, progress)
    for pid in _lab_shims(paths):
        progress(f"killing leftover shim {pid} and its container")
        labhost.kill_tree(pid)
        done.removed.append(f"shim {pid}")
    _stop(done, "containerd", daemon.identify(containerd_pid(paths)), 20, progress)
    _stop(done, "the second containerd", daemon.identify(cri_pid), 20, progress)

    for mount in labhost.mounts_under((paths.run, paths.data)):
        if labhost.umount(mount):
            done.removed.append(f"mount {mount}")
        else:
            done.left.append(f"mount {mount} (umount failed)")
    labhost.delete_bridge(paths.bridge, done.removed, done.left, progress)
    for root in (paths.run, paths.data):
        if root.exists():
            why = labhost.rmtree(root)
            if root.exists():
                done.left.append(f"directory {root} ({why or 'not empty'})")
            else:
                done.removed.append(f"directory {root}")
    preexisting = set(state.get("preexisting", SIDE_EFFECT_DIRS))
    for d in SIDE_EFFECT_DIRS:  # deepest first
        if d not in preexisting:
            try:
                os.rmdir(d)
                done.removed.append(f"directory {d}")
            except OSError:
                pass  # gone already, or now used by another engine: not the lab's to remove
    return done


def _stop(
    done: Teardown, name: str, ident: ProcessId | None, timeout: float, progress: Progress
) -> None:
    if ident is None:
        return
    progress(f"stopping {name} (pid {ident.pid})")
    daemon.stop(ident, timeout=timeout)
    if ident.alive(HostRoot()):
        done.left.append(f"{name} {ident.pid} (still running after SIGKILL)")
    else:
        done.removed.append(f"{name} {ident.pid}")


def _lab_shims(paths: LabPaths) -> list[int]:
    """The shims of the lab's containerds (ctr containers, pods: the second one's too)."""
    addresses = {str(paths.containerd_sock), str(paths.cri_sock)}
    pids = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if cmd and "containerd-shim" in os.path.basename(cmd[0]) and addresses & set(cmd):
            pids.append(proc.info["pid"])
    return pids
