"""Namespaces of containers: what each isolates, what it shares with the host or another container.

Pure functions over a `Topology` (whose processes carry their /proc/<pid>/ns inodes) and the
host's initial namespaces. This is a container-aware `lsns`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from tracer.model import NS_TYPES, Container, Topology

TYPES = NS_TYPES
MATRIX_TYPES = ("mnt", "uts", "ipc", "pid", "net", "user", "cgroup", "time")

# Why Docker usually leaves these shared with the host.
USUALLY_SHARED = {
    "user": "Docker shares the host's user namespace unless the daemon runs with userns-remap",
    "time": "Docker never creates time namespaces: containers share the host clock offsets",
    "time_for_children": "Docker never creates time namespaces",
    "cgroup": "Docker's default cgroupns mode is 'host' on cgroup v1 (private on cgroup v2)",
}
# HostConfig field -> namespace types it governs, and the docker run flag.
MODES = {
    "NetworkMode": (("net",), "--network"),
    "PidMode": (("pid", "pid_for_children"), "--pid"),
    "IpcMode": (("ipc",), "--ipc"),
    "UTSMode": (("uts",), "--uts"),
    "UsernsMode": (("user",), "--userns"),
    "CgroupnsMode": (("cgroup",), "--cgroupns"),
}


@dataclass
class NsEntry:
    type: str
    inode: int
    host_inode: int | None
    isolated: bool | None  # None when the host's namespaces could not be read
    shared_with: list[str] = field(default_factory=list)
    why: str | None = None


def _label(c: Container) -> str:
    return c.name or c.short_id


def running(topo: Topology) -> list[Container]:
    return [c for c in topo.containers() if c.init_pid is not None and c.namespaces]


Members = dict[tuple[str, int], list[tuple[str, str]]]  # (type, inode) -> [(id, label)]


def members(topo: Topology) -> Members:
    """Every namespace of a running container, with the containers in it: built once, so
    that sharing costs O(containers), not O(containers²)."""
    index: Members = {}
    for c in running(topo):
        for kind, inode in c.namespaces.items():
            index.setdefault((kind, inode), []).append((c.id, _label(c)))
    return index


def sharers(topo: Topology, me: Container, kind: str, index: Members | None = None) -> list[str]:
    """Other running containers whose init is in the same namespace of this kind."""
    inode = me.namespaces.get(kind)
    if inode is None:
        return []
    index = members(topo) if index is None else index
    return sorted(label for cid, label in index.get((kind, inode), []) if cid != me.id)


def flags(host_config: Mapping[str, Any] | None, names: Mapping[str, str]) -> dict[str, str]:
    """Namespace type -> the docker run flag that shared it, from the engine's HostConfig."""
    out: dict[str, str] = {}
    for key, (kinds, flag) in MODES.items():
        mode = str((host_config or {}).get(key) or "")
        if mode == "host" or mode.startswith("container:"):
            target = mode.split(":", 1)[1] if ":" in mode else ""
            shown = (
                f"{flag} container:{names.get(target, target[:12])}" if target else f"{flag} host"
            )
            if key == "CgroupnsMode":  # nobody types it: it is the daemon's default on v1
                shown = "cgroupns mode host (Docker's default on cgroup v1)"
            for kind in kinds:
                out[kind] = shown
    return out


def container_entries(
    topo: Topology, me: Container, host_ns: Mapping[str, int], told: Mapping[str, str]
) -> list[NsEntry]:
    entries = []
    index = members(topo)
    for kind in TYPES:
        if kind not in me.namespaces:
            continue
        inode = me.namespaces[kind]
        host_inode = host_ns.get(kind)
        isolated = None if host_inode is None else inode != host_inode
        shared = sharers(topo, me, kind, index)
        why = told.get(kind)
        if why is None and isolated is False:
            why = USUALLY_SHARED.get(kind, "shared with the host")
        if why is None and shared:
            why = "shared with " + ", ".join(shared)
        entries.append(NsEntry(kind, inode, host_inode, isolated, shared, why))
    return entries


def container_report(
    topo: Topology,
    me: Container,
    host_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """`ns CONTAINER --json`."""
    host_ns = topo.host.get("namespaces") or {}
    names = {c.id: _label(c) for c in topo.containers()}
    entries = container_entries(topo, me, host_ns, flags(host_config, names))
    init_ns = me.namespaces
    return {
        "container": {"id": me.id, "name": me.name, "init_pid": me.init_pid},
        "host": dict(host_ns),
        "host_from": topo.host.get("namespaces_from"),
        "namespaces": [asdict(e) for e in entries],
        "processes": [
            {
                "pid": p.pid,
                "role": p.role,
                "cmdline": p.cmdline,
                "namespaces": p.namespaces,
                "same_as_init": {k: v for k, v in p.namespaces.items() if k in init_ns}
                == {k: init_ns[k] for k in p.namespaces if k in init_ns},
            }
            for p in me.processes
        ],
    }


def matrix(topo: Topology) -> dict[str, Any]:
    """`ns --json`: containers x namespace types, and groups of containers sharing one."""
    host_ns = topo.host.get("namespaces") or {}
    ctrs = running(topo)
    index = members(topo)
    shared_groups = [
        {
            "type": kind,
            "inode": inode,
            "containers": sorted(label for _, label in inside),
            "host": host_ns.get(kind) == inode,
        }
        for (kind, inode), inside in sorted(index.items())
        if len(inside) > 1 or host_ns.get(kind) == inode
    ]
    return {
        "host": dict(host_ns),
        "host_from": topo.host.get("namespaces_from"),
        "containers": [
            {
                "id": c.id,
                "name": c.name,
                "init_pid": c.init_pid,
                "namespaces": dict(c.namespaces),
                "cells": {k: cell(topo, c, k, host_ns, index) for k in c.namespaces},
            }
            for c in ctrs
        ],
        "groups": shared_groups,
    }


def cell(
    topo: Topology,
    c: Container,
    kind: str,
    host_ns: Mapping[str, int],
    index: Members | None = None,
) -> str:
    """isolated | host | shared:<names>"""
    inode = c.namespaces.get(kind)
    if inode is not None and host_ns.get(kind) == inode:
        return "host"
    shared = sharers(topo, c, kind, index)
    return "shared:" + ",".join(shared) if shared else "isolated"
