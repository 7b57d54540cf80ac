"""Several hosts' snapshots, and what the fleet as a whole says. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from tracer.model.fleet import Exposed, Fleet, HostLine
from tracer.model.topology import Dockerd, Topology

# Namespaces a container should not share with its host, in the order docker run names them.
ISOLATING = ("net", "pid", "ipc", "uts", "mnt")


def fleet(snapshots: Sequence[tuple[str, Topology]]) -> Fleet:
    """(source, topology) of each host, in the order given."""
    out = Fleet(topologies=[t for _, t in snapshots], hosts=[])
    for source, topo in snapshots:
        name = topo.host.get("hostname")
        running = [c for c in topo.containers() if c.init_pid is not None]
        out.hosts.append(
            HostLine(
                hostname=name,
                taken_at=topo.host.get("taken_at"),
                source=source,
                engines=len(topo.engines),
                containers=len(running),
                processes=sum(len(c.processes) for c in running),
            )
        )
        for engine in topo.engines:
            dockerd = engine.daemon(Dockerd)
            if dockerd is None or not any(c.init_pid for c in engine.containers):
                continue
            if dockerd.live_restore is False:
                out.no_live_restore.append(Exposed(name, engine.title, "live-restore off"))
            elif dockerd.live_restore is None:
                out.unknown_live_restore.append(Exposed(name, engine.title, "not known"))
        host_ns = topo.host.get("namespaces") or {}
        for c in running:
            shared = [k for k in ISOLATING if k in host_ns and c.namespaces.get(k) == host_ns[k]]
            if shared:
                out.host_namespaces.append(Exposed(name, c.label, " ".join(shared)))
    return out
