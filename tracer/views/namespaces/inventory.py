"""`ns --all`: every namespace of the host, each with what holds it and who uses it.

Pure functions of three snapshots: the namespaces the kernel showed (tracer/snapshot/
namespaces.py), the topology of `show` (containers, engines, pods) with the process table it
was built from, and the runtimes' verdicts on sandbox mounts (tracer/runtimes/netns.py). A
container, an engine or a pod uses a namespace when one of its processes is in it, compared by
the one identity of a process (PID and start ticks): a PID reused between the two walks never
lends its namespaces to the container that held it before. The trees (`lsns -T`, with names)
are built here too, for the terminal, the diagram and the page alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tracer.kernel.nsfs import TYPES
from tracer.kernel.root import HostRoot
from tracer.model.namespaces import (
    Namespace,
    NsContainerRef,
    NsEngineRef,
    NsHeld,
    NsInventory,
    NsScan,
    NsVerdict,
)
from tracer.model.topology import Engine, Topology
from tracer.snapshot.host import Host


@dataclass
class _Users:
    """Who is in which namespace, by process identity (pid, start ticks)."""

    containers: dict[tuple[int, int], list[NsContainerRef]] = field(default_factory=dict)
    engines: dict[tuple[int, int], list[tuple[Engine, NsEngineRef]]] = field(default_factory=dict)
    pods: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    rootless: dict[int, Engine] = field(default_factory=dict)  # pid of a rootless engine's
    # Every identity above: most processes in a namespace (the host's hold hundreds) are
    # nobody's to name, and one set lookup passes over each.
    anyone: set[tuple[int, int]] = field(default_factory=set)


def users(topo: Topology, host: Host | None) -> _Users:
    """Each container's processes, each engine's daemons, each pod's containers."""
    out = _Users()
    for engine in topo.engines:
        rootless = bool(engine.owner)
        for c in engine.containers:
            ref = NsContainerRef(c.name, c.id, engine.title)
            pod = None
            if c.pod is not None:
                pod = f"{c.pod.namespace}/{c.pod.name}" if c.pod.namespace else c.pod.name
            for p in c.processes:
                if p.start is None:
                    continue
                key = (p.pid, p.start)
                out.containers.setdefault(key, []).append(ref)
                if pod:
                    out.pods.setdefault(key, []).append(pod)
                if rootless:
                    out.rootless[p.pid] = engine
        for d in engine.daemons:
            proc = host.procs.get(d.pid) if host else None
            if proc is None:
                continue
            daemon_rootless = rootless or (proc.uid or 0) != 0
            ref_e = NsEngineRef(engine.title, engine.runtime, rootless=daemon_rootless)
            out.engines.setdefault((proc.pid, proc.start), []).append((engine, ref_e))
    for c in topo.orphans:
        ref = NsContainerRef(c.name, c.id, "(no engine)")
        for p in c.processes:
            if p.start is not None:
                out.containers.setdefault((p.pid, p.start), []).append(ref)
    out.anyone = set(out.containers) | set(out.engines) | set(out.pods)
    return out


def inventory(
    scan: NsScan,
    topo: Topology,
    host: Host | None = None,
    verdicts: Mapping[int, NsVerdict] | None = None,
    kinds: tuple[str, ...] = TYPES,
    leaked_only: bool = False,
) -> NsInventory:
    """Every namespace of the kinds asked (only the leaked ones with leaked_only), ordered by
    type (lsns's order) and inode."""
    who = users(topo, host)
    host_ns = {str(k): int(v) for k, v in (topo.host.get("namespaces") or {}).items()}
    verdicts = verdicts or {}
    order = {k: i for i, k in enumerate(TYPES)}
    out = []
    for held in sorted(scan.namespaces.values(), key=lambda n: (order.get(n.type, 99), n.inode)):
        if held.type not in kinds:
            continue
        verdict = verdicts.get(held.inode)
        if leaked_only and not (verdict and verdict.leaked):
            continue
        out.append(_entry(held, scan, who, host_ns, verdict))
    notes = _notes(scan)
    return NsInventory(out, host_ns, dict(scan.unreadable), notes)


def _entry(
    held: NsHeld,
    scan: NsScan,
    who: _Users,
    host_ns: Mapping[str, int],
    verdict: NsVerdict | None,
) -> Namespace:
    containers: dict[str, NsContainerRef] = {}
    engines: dict[str, NsEngineRef] = {}
    pods: set[str] = set()
    for key in sorted(held.processes.items()):
        if key not in who.anyone:
            continue
        pid = key[0]
        for c in who.containers.get(key, []):
            containers.setdefault(c.id, c)
        for engine, ref in who.engines.get(key, []):
            known = engines.setdefault(engine.title, NsEngineRef(ref.name, ref.runtime, [], False))
            known.pids.append(pid)
            known.rootless = known.rootless or ref.rootless
        pods.update(who.pods.get(key, []))
        rootless = who.rootless.get(pid)
        if rootless is not None and held.type == "user" and held.inode != host_ns.get("user"):
            engines.setdefault(
                rootless.title, NsEngineRef(rootless.title, rootless.runtime, [], True)
            )
    first = min(held.processes) if held.processes else None
    proc = scan.procs.get(first) if first is not None else None
    return Namespace(
        inode=held.inode,
        type=held.type,
        processes=sorted(held.processes),
        mounts=sorted(held.mounts, key=lambda m: (m.path, m.mount_ns)),
        fds=sorted(held.fds, key=lambda f: (f.pid, f.fd)),
        owner=held.owner,
        parent=held.parent,
        containers=sorted(containers.values(), key=lambda c: (c.name or "", c.id)),
        host=host_ns.get(held.type) == held.inode,
        leaked=bool(verdict and verdict.leaked),
        engines=sorted(engines.values(), key=lambda e: e.name),
        pods=sorted(pods),
        tasks=held.tasks,
        for_children=sorted(held.for_children),
        command=proc.name if proc else None,
        release=verdict.release if verdict and verdict.leaked else None,
        why=verdict.why if verdict else None,
    )


def _notes(scan: NsScan) -> list[str]:
    notes = []
    if scan.vanished:
        notes.append(f"{scan.vanished} namespaces were gone by the time they were opened: left out")
    if scan.unread_mount_ns:
        notes.append(
            f"{len(scan.unread_mount_ns)} mount namespaces have no process whose mount table "
            "could be read: the nsfs mounts inside them are not listed"
        )
    return notes


def look(
    root: HostRoot,
    topo: Topology,
    host: Host | None,
    kinds: tuple[str, ...] = TYPES,
    leaked_only: bool = False,
    found: NsScan | None = None,
) -> NsInventory:
    """`ns --all` on this host (the one part here that reads): every namespace by the three
    routes (found: walked already, while the engines' APIs answered), after `show`'s look at
    the engines (topo, from host); then the engines asked about the sandbox mounts that
    nothing else holds (runtimes/netns.py)."""
    from tracer.runtimes.netns import judge
    from tracer.snapshot.namespaces import scan

    found = found or scan(root)
    host_mnt = (topo.host.get("namespaces") or {}).get("mnt")
    verdicts = judge(topo, found, root, host_mnt)
    inv = inventory(found, topo, host, verdicts, kinds, leaked_only)
    inv.notes.extend(v.why for v in verdicts.values() if v.why.startswith("cannot ask"))
    return inv


# -- trees, as `lsns -T` draws them ----------------------------------------------------------


@dataclass
class Node:
    ns: Namespace
    children: list[Node] = field(default_factory=list)


def tree(inv: NsInventory, kind: str) -> list[Node]:
    """The namespaces of kind (user or pid) as a forest by parent: the roots are the ones
    whose parent is unknown (the top of what this process may see) or not listed."""
    mine = {n.inode: Node(n) for n in inv.namespaces if n.type == kind}
    roots = []
    for node in mine.values():
        parent = mine.get(node.ns.parent) if node.ns.parent is not None else None
        if parent is None or parent is node:
            roots.append(node)
        else:
            parent.children.append(node)
    return roots


def owned(inv: NsInventory) -> dict[int, list[Namespace]]:
    """User namespace inode -> the namespaces of other types it owns."""
    out: dict[int, list[Namespace]] = {}
    for n in inv.namespaces:
        if n.type != "user" and n.owner is not None:
            out.setdefault(n.owner, []).append(n)
    return out


def hidden(inv: NsInventory) -> list[Namespace]:
    """The namespaces no process is in: held by a mount, an fd, or a namespace below."""
    return [n for n in inv.namespaces if not n.processes]


def label(n: Namespace) -> str:
    """Who uses it, in a few words: its containers, engines and pods, the host, or the
    program of its lowest process; `nobody` when no process is in it."""
    if n.host:  # everything may be in the host's: count, do not list
        extra = [_count(len(n.containers), "container")] if n.containers else []
        extra += [_count(len(n.engines), "engine")] if n.engines else []
        return "host" + (f" ({', '.join(extra)})" if extra else "")
    parts = []
    if n.containers:
        parts.append(", ".join(c.name or c.id[:12] for c in n.containers))
    for e in n.engines:
        parts.append(("rootless " if e.rootless else "") + e.name)
    if n.pods:
        parts.append("pod " + ", ".join(n.pods))
    if not parts:
        if n.processes:
            parts.append(f"{n.processes[0]} {n.command or '?'}")
        else:
            parts.append("nobody")
    return "; ".join(parts)


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"
