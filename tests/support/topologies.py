"""Model objects of made-up hosts (daemons, shims, containers, engines), a host to draw with
something of every kind, the recorded lab, and the edges of DOT a diagram is made of."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.support.hosts import DOCKER_SOCK, SOCK
from tracer.model.show_json import from_json
from tracer.model.topology import (
    Container,
    Containerd,
    Daemon,
    Dockerd,
    Edge,
    Engine,
    Process,
    Proxy,
    Shim,
    Topology,
)

DATA = Path(__file__).resolve().parents[1] / "unit" / "data"
LAB_SNAPSHOT = DATA / "lab-snapshot.json"
HOST_NS = {"cgroup": 10, "ipc": 11, "mnt": 12, "net": 13, "pid": 14, "time": 15, "user": 16}


# -- reading what was built: edges, process roles and containers as plain values ----------


def triples(engine: Engine) -> list[tuple[int, int, str]]:
    """Each edge of the engine as (from, to, kind), in its order."""
    return [(e.src, e.dst, e.kind) for e in engine.edges]


def roles(container: Container) -> list[tuple[int, int, str]]:
    """Each process of the container as (pid, ppid, role), in its order."""
    return [(p.pid, p.ppid, p.role) for p in container.processes]


def by_id(topo: Topology) -> dict[str, Container]:
    return {c.id: c for c in topo.containers()}


def dockerd(pid: int = 600, socket: str | None = DOCKER_SOCK, **kw: Any) -> Dockerd:
    kw.setdefault("reachable", True)
    kw.setdefault("live_restore", True)
    return Dockerd(pid=pid, cmdline=kw.pop("cmdline", ["dockerd"]), api_socket=socket, **kw)


def containerd(pid: int = 500, socket: str = SOCK, **kw: Any) -> Containerd:
    kw.setdefault("proven", True)
    return Containerd(pid=pid, cmdline=kw.pop("cmdline", ["containerd"]), socket=socket, **kw)


def engine(*daemons: Daemon, **kw: Any) -> Engine:
    """An engine of these daemons: Docker's when a dockerd is among them."""
    runtime = "docker" if any(isinstance(d, Dockerd) for d in daemons) else "containerd"
    return Engine(runtime=runtime, daemons=list(daemons), **kw)


def shim(pid: int, ppid: int = 1, address: str = SOCK, reparented: bool | None = None) -> Shim:
    cmd = ["/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-address", address]
    return Shim(pid, ppid, cmd, "moby", address, ppid == 1 if reparented is None else reparented)


def running(
    cid: str,
    name: str | None,
    shim_pid: int,
    pids: list[int],
    namespaces: dict[str, int] | None = None,
    **kw: Any,
) -> Container:
    """A running container: its shim, an init (the first pid) and the init's children."""
    init, *rest = pids
    ns = dict(namespaces or {})
    procs = [Process(init, shim_pid, ["init"], "init", "init", namespaces=dict(ns))]
    procs += [Process(p, init, [f"p{p}"], "child", f"p{p}", namespaces=dict(ns)) for p in rest]
    kw.setdefault("image", "img")
    return Container(
        id=cid,
        name=name,
        state="running",
        init_pid=init,
        shim_pid=shim_pid,
        monitor=kw.pop("monitor", shim(shim_pid)),
        processes=procs,
        namespaces=ns,
        **kw,
    )


def lab_topology() -> Topology:
    """The lab as `show --json` recorded it (tests/unit/data/lab-snapshot.json)."""
    return from_json(json.loads(LAB_SNAPSHOT.read_text()))


def numbered(
    i: int, name: str | None, procs: int = 2, reparented: bool = True, **kw: Any
) -> Container:
    """Container number i: shim 1000+10i (re-parented to pid 1, or else a child of containerd
    500), `procs` processes from pid 1000+10i+1 on (the init, then its children), in its own
    mnt, net and pid namespaces (inodes 100+i, 200+i, 300+i) and the host's others."""
    shim_pid = 1000 + 10 * i
    spaces = {**HOST_NS, "mnt": 100 + i, "net": 200 + i, "pid": 300 + i}
    pids = [shim_pid + 1 + k for k in range(procs)]
    kw.setdefault("image", "busybox")
    kw.setdefault("monitor", shim(shim_pid, 1 if reparented else 500))
    return running(f"{i:02d}" * 32, name, shim_pid, pids, spaces, **kw)


def engine_edges(containers: list[Container]) -> list[Edge]:
    """The edges `show` proves for these containers of dockerd 600 and containerd 500."""
    out = [Edge(600, 500, "socket", f"{SOCK} (--containerd)")]
    for c in containers:
        assert c.shim
        out.append(Edge(c.shim.pid, 500, "shim-address", SOCK))
        kind = "reparented" if c.shim.reparented else "parent"
        out.append(Edge(c.shim.ppid, c.shim.pid, kind, "pid 1"))
        out += [Edge(p.ppid, p.pid, "parent", "ppid") for p in c.processes]
        out += [Edge(600, p.pid, "parent", "ppid") for p in c.proxies]
    return out


def diagram_host(n: int = 3) -> Topology:
    """A host to draw, with something of every kind: dockerd 600 and containerd 500; web-0 ..
    web-<n-1> (web-0 publishes a port through docker-proxy 650); one of unknown name, a child
    of containerd; `side`, in web-0's network namespace; and `old`, stopped."""
    ctrs = [numbered(i, f"web-{i}") for i in range(n)]
    ctrs[0].proxies.append(Proxy(650, "tcp", "127.0.0.1", 18080, "172.29.213.4", 80))
    ctrs.append(numbered(n, None, procs=1, reparented=False))
    side = numbered(n + 1, "side")
    for spaces in [side.namespaces, *(p.namespaces for p in side.processes)]:
        spaces["net"] = ctrs[0].namespaces["net"]
    ctrs.append(side)
    stopped = Container(id="ff" * 32, name="old", image="busybox", state="exited")
    docker = engine(
        dockerd(cmdline=["/usr/sbin/dockerd"]),
        containerd(cmdline=["/usr/bin/containerd"]),
        containers=[*ctrs, stopped],
        edges=engine_edges(ctrs),
    )
    host = {"hostname": "box", "taken_at": "2026-11-28T17:00:00+00:00", "namespaces": HOST_NS}
    return Topology(engines=[docker], host={**host, "namespaces_from": "pid 1"})


def dot_edges(dot: str) -> list[tuple[str, str, dict[str, str]]]:
    """(tail, head, attributes) of every edge statement in DOT made by the graphviz package."""
    out = []
    for line in dot.splitlines():
        m = re.match(r"\s*(\S+) -> (\S+)(?: \[(.*)\])?$", line)
        if m:
            attrs = re.findall(r'([\w-]+)=("(?:[^"\\]|\\.)*"|[^\s"]+)', m.group(3) or "")
            out.append((m.group(1), m.group(2), {k: v.strip('"') for k, v in attrs}))
    return out


def declared(dot: str) -> tuple[list[str], list[str]]:
    """(nodes, clusters): the name of every node statement and of every subgraph of DOT made
    by the graphviz package, in order, repeats kept."""
    nodes = [n for n in re.findall(r"^\s*(\w+)(?: \[.*)?$", dot, re.M)
             if n not in ("graph", "node", "edge")]  # fmt: skip
    return nodes, re.findall(r"^\s*subgraph (\w+) \{", dot, re.M)


def seen_under_two_engines() -> Topology:
    """diagram_host's containers seen again under a second dockerd (601) on the same
    containerd, as two dockerds on one containerd were misread: the same ids, shims, processes
    and proxy under both engines, nameless under the second."""
    import copy

    topo = diagram_host()
    (first,) = topo.engines
    again = copy.deepcopy(first.containers)
    for c in again:
        c.name = None
    running = [c for c in again if c.processes]
    second = engine(dockerd(601, "/run/two/docker.sock"), containerd(), containers=again,
                    edges=engine_edges(running))  # fmt: skip
    topo.engines.append(second)
    return topo


def many_engines(engines: int = 8, per: int = 75) -> Topology:
    """A big host: `engines` Docker engines (dockerd 600+e, containerd 500+e, each on its own
    socket), `per` running containers each, two processes a container (numbered as above)."""
    made = []
    for e in range(engines):
        sock = f"/run/e{e}/containerd.sock"
        edges = [Edge(600 + e, 500 + e, "socket", sock)]
        ctrs = []
        for k in range(per):
            i = e * per + k
            c = numbered(i, f"e{e}-c{k}", monitor=shim(100_000 + 10 * i, 1, sock))
            c.id = f"{i:064x}"
            ctrs.append(c)
            edges.append(Edge(100_000 + 10 * i, 500 + e, "shim-address", sock))
        made.append(engine(dockerd(600 + e, f"/run/e{e}/docker.sock"),
                           containerd(500 + e, sock), containers=ctrs, edges=edges))  # fmt: skip
    host = {"hostname": "big", "taken_at": "2026-12-02T00:00:00+00:00", "namespaces": HOST_NS}
    return Topology(engines=made, host={**host, "namespaces_from": "pid 1"})
