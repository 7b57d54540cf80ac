"""Sandboxes: the network namespaces runtimes bind-mount, and which of them nothing is behind.

Docker bind-mounts each container's network namespace at `<exec-root>/netns/<sandbox id>`
(the first 12 hex digits of the sandbox's id: what `docker inspect` gives as
NetworkSettings.SandboxKey); containerd's CRI plugin pins each pod's at `/run/netns/cni-<uuid>`
and podman (netavark) each container's at `/run/netns/netns-<uuid>`. While the sandbox lives,
its processes are in that namespace; a crash between the sandbox's processes exiting and the
runtime's clean-up leaves the mount behind: the namespace lives on, held by the mount alone.

A namespace is `leaked` only when that is proven: held by such a mount alone (no process, no
fd), and no live sandbox behind it. For Docker that is asked of the engine, with calls that do
not grow with the number of containers: the namespaces of running containers are known from
/proc, so only a container that the API lists as running, restarting or being started (state
`created`) and whose namespaces the walk did not read can be behind a mount with no process;
only those are inspected (none, on a steady host). Where the engine cannot be asked, leaked
stays false and the note says why. The command that releases a leak is printed, never run.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable

from tracer.errors import ApiError
from tracer.kernel.root import HostRoot, normalize
from tracer.model.namespaces import NsHeld, NsMount, NsScan
from tracer.model.namespaces import NsVerdict as Verdict
from tracer.model.topology import Dockerd, Engine, Topology
from tracer.runtimes.docker import DEFAULT_EXEC_ROOT, exec_root

SANDBOX_ID = re.compile(r"[0-9a-f]{12}")  # Docker: the first 12 hex digits of a sandbox id
PINNED = re.compile(r"(cni|netns)-[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}")  # CRI, netavark
NETNS_DIR = "/run/netns"  # iproute2's, where CNI and netavark pin theirs too
MAYBE_STARTING = ("running", "paused", "restarting", "created")


def held_by_mounts_only(scan: NsScan) -> list[NsHeld]:
    """Network namespaces that no task, no fd and no parent-to-be holds: mounts alone."""
    return [
        n
        for n in scan.namespaces.values()
        if n.type == "net" and n.mounts and not n.processes and not n.fds and not n.for_children
    ]


def docker_dirs(topo: Topology) -> dict[str, Engine | None]:
    """Each dockerd's sandbox directory, and Docker's default one (None: no engine there)."""
    dirs: dict[str, Engine | None] = {DEFAULT_EXEC_ROOT + "/netns": None}
    for engine in topo.engines:
        d = engine.daemon(Dockerd)
        if engine.runtime == "docker" and d is not None:
            dirs[exec_root(d) + "/netns"] = engine
    return dirs


def judge(topo: Topology, scan: NsScan, root: HostRoot, host_mnt: int | None) -> dict[int, Verdict]:
    """A verdict for each namespace held by a runtime's sandbox mount alone (by inode)."""
    dirs = docker_dirs(topo)
    out: dict[int, Verdict] = {}
    asked: dict[str, set[str] | str] = {}  # engine title -> live SandboxKeys, or why not
    for held in held_by_mounts_only(scan):
        for mount in sorted(held.mounts, key=lambda m: m.mount_ns != host_mnt):
            where, name = os.path.split(normalize(mount.path))
            release = _release(held.mounts, mount, scan, host_mnt)
            if where == NETNS_DIR and PINNED.fullmatch(name):
                who = "a CRI pod's (cni-)" if name.startswith("cni-") else "a podman container's"
                out[held.inode] = Verdict(
                    True, f"{who} pinned network namespace with no process left in it", release
                )
                break
            if where in dirs and SANDBOX_ID.fullmatch(name):
                engine = dirs[where]
                if engine is None:
                    out[held.inode] = Verdict(
                        False, f"cannot ask: a Docker sandbox, but no dockerd uses {where}"
                    )
                    break
                if engine.title not in asked:
                    asked[engine.title] = _live_keys(engine, topo, root)
                live = asked[engine.title]
                if isinstance(live, str):
                    out[held.inode] = Verdict(False, f"cannot ask {engine.title}: {live}")
                elif normalize(mount.path) in live:
                    out[held.inode] = Verdict(False, "the sandbox of a container being started")
                else:
                    out[held.inode] = Verdict(
                        True,
                        f"a sandbox of {engine.title} that no running container's SandboxKey names",
                        release,
                    )
                break
    return {inode: _still_there(v, scan.namespaces[inode], root, host_mnt)
            for inode, v in out.items()}  # fmt: skip


def _still_there(verdict: Verdict, held: NsHeld, root: HostRoot, host_mnt: int | None) -> Verdict:
    """A leak is a mount that stays: one gone by the time the engine has answered was a
    sandbox being torn down (`docker stop` unmounts it after the last process exits)."""
    if not verdict.leaked or not root.is_own:
        return verdict
    for mount in held.mounts:
        if mount.mount_ns != host_mnt:
            continue
        try:
            if os.stat(mount.path).st_ino == held.inode:
                return verdict
        except OSError:
            pass
        return Verdict(False, "released while dtrace-tree looked: a sandbox being torn down")
    return verdict


def _live_keys(engine: Engine, topo: Topology, root: HostRoot) -> set[str] | str:
    """The SandboxKeys of the engine's containers that may be behind a mount with no process:
    listed as running or starting but with no namespaces read by the walk. One list call,
    plus one inspect for each such container (none on a steady host). Why not, as text."""
    from tracer.runtimes.dockerapi import DockerApi

    d = engine.daemon(Dockerd)
    if d is None or not d.api_socket:
        return "dockerd is not running"
    api = DockerApi(root.path(d.api_socket))
    read = {c.id for c in topo.containers() if c.namespaces.get("net")}
    keys: set[str] = set()
    try:
        for c in api.containers(all=True):
            if c.state not in MAYBE_STARTING or c.id in read:
                continue
            doc = api.inspect(c.id) or {}
            key = (doc.get("NetworkSettings") or {}).get("SandboxKey")
            if isinstance(key, str) and key:
                keys.add(normalize(key))
    except ApiError as exc:
        return exc.reason
    return keys


def _release(mounts: Iterable[NsMount], mount: NsMount, scan: NsScan, host_mnt: int | None) -> str:
    """The command that drops the mount, run from the host's mount namespace; for a mount
    seen only in another mount namespace, through nsenter into one of its processes."""
    path = shlex.quote(mount.path)
    name = os.path.basename(mount.path)
    if os.path.dirname(normalize(mount.path)) == NETNS_DIR and all(
        m.mount_ns == host_mnt for m in mounts
    ):
        return f"ip netns delete {shlex.quote(name)}"
    if host_mnt is not None and mount.mount_ns != host_mnt:
        inside = scan.namespaces.get(mount.mount_ns)
        pid = min(inside.processes) if inside and inside.processes else None
        if pid is not None:
            return f"nsenter --mount=/proc/{pid}/ns/mnt umount {path}"
    return f"umount {path} && rm {path}"
