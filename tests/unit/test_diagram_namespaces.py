"""The namespace diagram, tested on the DOT source: processes grouped by the namespaces they are
in, and which of those are shared by several containers or are the host's."""

from __future__ import annotations

from tests.support.topologies import diagram_host, dot_edges, lab_topology
from tracer.output import diagram


def test_namespace_view_groups_by_namespace_and_shows_sharing() -> None:
    topo = lab_topology()
    dot = diagram.source(topo, ns=True)
    web, side = (
        next(c for c in topo.containers() if c.name == n) for n in ("lab-web", "lab-sidecar")
    )
    found = dot_edges(dot)
    for kind in ("net", "pid"):
        inode = web.namespaces[kind]
        assert side.namespaces[kind] == inode
        assert f'ns_{kind}_{inode} [label="{kind} {inode}\\nshared: lab-sidecar, lab-web"' in dot
        tails = {a.get("ltail") for _, h, a in found if h == f"ns_{kind}_{inode}"}
        assert tails == {"cluster_ns_" + web.id, "cluster_ns_" + side.id}
    user = topo.host["namespaces"]["user"]
    joined = {a.get("ltail") for _, h, a in found if h == f"ns_user_{user}"}
    assert joined == {"cluster_ns_" + c.id for c in topo.containers() if c.processes}
    assert all(a.get("class") == "ns-host" for _, h, a in found if h == f"ns_user_{user}")
    assert f"private\\nmnt {web.namespaces['mnt']}" in dot
    assert "lab-stopped" not in dot  # no process, no namespaces


def test_a_process_in_other_namespaces_gets_its_own_group() -> None:
    topo = diagram_host(1)
    c = topo.engines[0].containers[0]
    c.processes[1].namespaces = {**c.processes[1].namespaces, "net": 999}
    dot = diagram.source(topo, ns=True)
    assert "differs from the init in: net" in dot
    assert "private\\nmnt 100\\npid 300\\nnet 999" in dot  # its own net; mnt, pid as the init
    assert f"subgraph cluster_ns_{c.id}_1 " in dot
