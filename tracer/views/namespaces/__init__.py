"""Namespaces of containers: what each isolates, what it shares with the host or another container.

Pure functions over a `Topology` (whose processes carry their /proc/<pid>/ns inodes) and the
host's initial namespaces. This is a container-aware `lsns`. Why a namespace is shared comes
from the container's runtime (tracer/runtimes: the options the engine was given, and what it
shares with the host by default), passed in.
"""

from __future__ import annotations

from collections.abc import Mapping

from tracer.errors import NotRunningError, cannot_read
from tracer.kernel.procfs import NS_TYPES
from tracer.kernel.root import HostRoot
from tracer.model.namespaces import (
    NsEntry,
    NsGroup,
    NsMatrix,
    NsProcess,
    NsReport,
    NsRow,
    NsSubject,
)
from tracer.model.topology import Container, Topology

MATRIX_TYPES = ("mnt", "uts", "ipc", "pid", "net", "user", "cgroup", "time")


def running(topo: Topology) -> list[Container]:
    """The containers with a process (whether or not their namespaces could be read)."""
    return [c for c in topo.containers() if c.init_pid is not None]


def unreadable(topo: Topology) -> list[str]:
    """Running containers whose namespaces could not be read (not root): never "none"."""
    return sorted(c.label for c in running(topo) if not c.namespaces)


Members = dict[tuple[str, int], list[tuple[str, str]]]  # (type, inode) -> [(id, label)]


def members(topo: Topology) -> Members:
    """Every namespace of a running container, with the containers in it: built once, so
    that sharing costs O(containers), not O(containers²)."""
    index: Members = {}
    for c in running(topo):
        for kind, inode in c.namespaces.items():
            index.setdefault((kind, inode), []).append((c.id, c.label))
    return index


def sharers(topo: Topology, me: Container, kind: str, index: Members | None = None) -> list[str]:
    """Other running containers whose init is in the same namespace of this kind."""
    inode = me.namespaces.get(kind)
    if inode is None:
        return []
    index = members(topo) if index is None else index
    return sorted(label for cid, label in index.get((kind, inode), []) if cid != me.id)


def sharers_of(topo: Topology, me: Container, kind: str) -> list[Container]:
    """The other running containers in me's namespace of this kind."""
    inode = me.namespaces.get(kind)
    if inode is None:
        return []
    return [c for c in running(topo) if c.id != me.id and c.namespaces.get(kind) == inode]


def host_namespaces(topo: Topology) -> dict[str, int]:
    return {str(k): int(v) for k, v in (topo.host.get("namespaces") or {}).items()}


def joined(
    topo: Topology, me: Container, told_of: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """Type -> who joined me's namespace of that type and how, from the other side's options
    (told_of: container id -> its options): `lab-sidecar joined it (--network
    container:lab-web)`, so that the container that owns a shared namespace says so too."""
    index = members(topo)
    out: dict[str, str] = {}
    for kind, inode in me.namespaces.items():
        notes = []
        for cid, label in index.get((kind, inode), []):
            option = told_of.get(cid, {}).get(kind, "")
            if cid != me.id and option.endswith(f"container:{me.label}"):
                notes.append(f"{label} joined it ({option})")
        if notes:
            out[kind] = "; ".join(sorted(notes))
    return out


def container_entries(
    topo: Topology,
    me: Container,
    told: Mapping[str, str],
    usual: Mapping[str, str],
    told_of: Mapping[str, Mapping[str, str]] | None = None,
) -> list[NsEntry]:
    """One entry per namespace of the container's init. told: type -> the option that shared
    it; usual: type -> why the runtime shares it with the host by default; told_of: the
    options of the other containers (for who joined this one's namespaces)."""
    others = joined(topo, me, told_of or {})
    host_ns = host_namespaces(topo)
    index = members(topo)
    entries = []
    for kind in NS_TYPES:
        if kind not in me.namespaces:
            continue
        inode = me.namespaces[kind]
        host_inode = host_ns.get(kind)
        isolated = None if host_inode is None else inode != host_inode
        shared = sharers(topo, me, kind, index)
        why = told.get(kind) or others.get(kind)
        if why is None and isolated is False:
            why = usual.get(kind, "shared with the host")
        if why is None and shared:
            why = "shared with " + ", ".join(shared)
        entries.append(NsEntry(kind, inode, host_inode, isolated, shared, why))
    return entries


def container_report(
    topo: Topology,
    me: Container,
    told: Mapping[str, str] | None = None,
    usual: Mapping[str, str] | None = None,
    told_of: Mapping[str, Mapping[str, str]] | None = None,
) -> NsReport:
    """`ns CONTAINER`."""
    init_ns = me.namespaces
    return NsReport(
        container=NsSubject(me.id, me.name, me.init_pid),
        host=host_namespaces(topo),
        host_from=topo.host.get("namespaces_from"),
        namespaces=container_entries(topo, me, told or {}, usual or {}, told_of),
        processes=[
            NsProcess(
                pid=p.pid,
                role=p.role,
                cmdline=list(p.cmdline),
                namespaces=dict(p.namespaces),
                same_as_init={k: v for k, v in p.namespaces.items() if k in init_ns}
                == {k: init_ns[k] for k in p.namespaces if k in init_ns},
            )
            for p in me.processes
        ],
    )


def matrix(topo: Topology) -> NsMatrix:
    """`ns`: containers x namespace types, and groups of containers sharing one."""
    host_ns = host_namespaces(topo)
    index = members(topo)
    groups = [
        NsGroup(
            type=kind,
            inode=inode,
            containers=sorted(label for _, label in inside),
            host=host_ns.get(kind) == inode,
        )
        for (kind, inode), inside in sorted(index.items())
        if len(inside) > 1 or host_ns.get(kind) == inode
    ]
    rows = [
        NsRow(
            id=c.id,
            name=c.name,
            init_pid=c.init_pid,
            namespaces=dict(c.namespaces),
            cells={k: cell(topo, c, k, host_ns, index) for k in c.namespaces},
        )
        for c in running(topo)
    ]
    return NsMatrix(
        host=host_ns,
        host_from=topo.host.get("namespaces_from"),
        containers=rows,
        groups=groups,
        unreadable=unreadable(topo),
    )


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


def report_for(
    topo: Topology, me: Container, asked: bool = True, root: HostRoot | None = None
) -> NsReport:
    """`ns CONTAINER` (and `serve`'s /api/containers/<id>/ns): its namespaces, and why each is
    shared, from its engine's options (asked of the engine unless asked is False: a saved
    snapshot) and those of every container that shares one. NotRunningError for a stopped
    container; DeniedError when its namespaces could not be read."""
    from tracer.runtimes import explain

    if me.init_pid is None:
        raise NotRunningError(
            f"{me.label} is {me.state}: a stopped container has no process, so it has no "
            "namespaces",
            f"start it with: docker start {me.label}",
        )
    if not me.namespaces:
        raise cannot_read(f"/proc/{me.init_pid}/ns")
    told, usual = explain(topo, me, root, asked=asked)
    # Who joined this container's namespaces says so in its own options: ask each of them.
    others = {c.id: c for k in me.namespaces for c in sharers_of(topo, me, k)}
    told_of = {cid: explain(topo, c, root, asked=asked)[0] for cid, c in others.items()}
    return container_report(topo, me, told, usual, told_of)
