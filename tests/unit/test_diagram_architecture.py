"""The architecture diagram, tested on the DOT source: what is drawn, one snapshot one DOT, and
hostile text rendered by the real `dot` and parsed back."""

from __future__ import annotations

import copy
import json
import re
import shutil
import xml.etree.ElementTree as ET

import pytest

from tests.support.topologies import (
    HOST_NS,
    containerd,
    declared,
    diagram_host,
    dockerd,
    dot_edges,
    engine,
    engine_edges,
    lab_topology,
    numbered,
    seen_under_two_engines,
)
from tracer.errors import ExitCode, MissingBinaryError
from tracer.model.show_json import from_json
from tracer.model.topology import Containerd, Dockerd, Topology
from tracer.output import diagram
from tracer.output.diagram.architecture import EDGE_MEANING, EDGE_STYLE, legend
from tracer.output.diagram.dot import cid, default_name, dot_text, render

HOSTILE = [
    "sh",
    "-c",
    '"q" ] } { [ \\N \\G \\l \\n <script>alert(1)</script> &amp; \x1b[31mred\x1b]0;t\x07',
]
SHOWN = ['"q"', "] } { [", "\\N", "\\G", "\\l", "\\n", "<script>alert(1)</script>", "&amp;"]
SHOWN += ["\\x1b[31mred\\x1b]0;t\\x07"]
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs graphviz's dot")


def svg_text(svg: bytes) -> tuple[ET.Element, str]:
    root = ET.fromstring(svg)
    text = " ".join(el.text or "" for el in root.iter() if el.tag.endswith("}text"))
    return root, text.replace("\xa0", " ")  # dot writes a second space as &#160;


# -- determinism ---------------------------------------------------------------------------------


@pytest.mark.parametrize("view", [(False, False), (True, False), (False, True), (True, True)])
def test_same_snapshot_same_dot(view: tuple[bool, bool]) -> None:
    ns_view, compact = view
    for topo in (lab_topology(), diagram_host()):
        first = diagram.source(topo, ns=ns_view, compact=compact)
        assert diagram.source(topo, ns=ns_view, compact=compact) == first
        again = from_json(json.loads(json.dumps(topo.to_json())))
        assert diagram.source(again, ns=ns_view, compact=compact) == first
        shuffled = copy.deepcopy(topo)  # the snapshot's own order does not matter
        for e in shuffled.engines:
            e.containers.reverse()
            e.edges.reverse()
            for c in e.containers:
                c.processes.reverse()
        assert diagram.source(shuffled, ns=ns_view, compact=compact) == first


def test_the_only_time_in_the_dot_is_the_snapshots() -> None:
    dot = diagram.source(lab_topology())
    assert "2026-11-28T18:14:44+00:00" in dot
    stamps = re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", dot)
    assert set(stamps) == {"2026-11-28T18:14:44"}


# -- the architecture view -----------------------------------------------------------------------


def test_every_daemon_shim_process_and_proxy_is_a_node_with_pid_and_program() -> None:
    topo = lab_topology()
    dot = diagram.source(topo)
    (docker,) = topo.engines
    d, cd = docker.daemon(Dockerd), docker.daemon(Containerd)
    assert d and cd
    assert re.search(rf'\bp{d.pid} \[label="dockerd\\npid {d.pid}', dot)
    assert re.search(rf'\bp{cd.pid} \[label="containerd\\npid', dot)
    for c in docker.containers:
        if c.shim:
            assert f'p{c.shim.pid} [label="containerd-shim-runc-v2\\npid {c.shim.pid}' in dot
        for p in c.processes:
            assert f'p{p.pid} [label="{p.role}  pid {p.pid}\\n{p.cmdline[0]}' in dot
        for x in c.proxies:
            assert f'p{x.pid} [label="docker-proxy\\npid {x.pid}' in dot


def test_containers_are_clusters_labelled_name_short_id_image() -> None:
    dot = diagram.source(lab_topology())
    for c in lab_topology().containers():
        assert f'label="{c.name}\\n{c.id[:12]}\\ndtrace-lab/busybox:latest"' in dot
    assert dot.count("subgraph cluster_c_") == 6
    assert dot.count("subgraph cluster_engine_") == 1
    assert "exited: no process" in dot


def test_each_edge_kind_has_its_own_style_and_a_legend_entry() -> None:
    topo = diagram_host()
    dot = diagram.source(topo)
    meaning = legend(topo)
    found = dot_edges(dot)
    styles = {}
    for kind, style in EDGE_STYLE.items():
        drawn = [a for t, _, a in found if a.get("class") == kind and not t.startswith("legend")]
        told = [a for t, _, a in found if a.get("class") == kind and t.startswith("legend")]
        assert drawn, kind
        assert len(told) == 1, kind
        for attrs in [*drawn, told[0]]:
            assert {k: attrs.get(k) for k in style} == style, kind
        assert meaning[kind].startswith(f"{kind}: ")
        assert dot_text(meaning[kind]) in told[0]["label"]
        styles[kind] = (style["color"], style["style"])
    assert len(set(styles.values())) == len(styles)  # no two kinds look alike
    # in the words of the Docker engine drawn, not in general words
    assert (
        meaning["socket"] == "socket: dockerd -> containerd (gRPC; a listener held by containerd)"
    )
    assert meaning["forwards"] == "forwards: docker-proxy -> container (-container-ip)"
    assert meaning["parent"] == f"parent: {EDGE_MEANING['parent']}"  # Docker has no words for it


def test_edges_follow_the_model() -> None:
    topo = diagram_host()
    found = {(t, h, a["class"]) for t, h, a in dot_edges(diagram.source(topo)) if "class" in a}
    (docker,) = topo.engines
    for e in docker.edges:
        if e.kind == "shim-address":  # drawn from containerd's side, arrow turned (dir=back)
            assert (f"p{e.dst}", f"p{e.src}", e.kind) in found
        else:
            assert (f"p{e.src}", f"p{e.dst}", e.kind) in found
    assert ("p650", "p1001", "forwards") in found  # docker-proxy -> web-0's init
    assert 'p1 [label="pid 1\\ninit: adopts orphaned shims and conmons"' in diagram.source(topo)


def test_no_engine_and_orphans() -> None:
    assert "no container engine on this host" in diagram.source(Topology(engines=[]))
    orphan = numbered(7, "lost")
    dot = diagram.source(Topology(engines=[], orphans=[orphan]))
    assert "shims whose containerd is not running" in dot
    found = {(t, h, a.get("class")) for t, h, a in dot_edges(dot)}
    assert ("p1", "p1070", "reparented") in found and ("p1070", "p1071", "parent") in found


# -- untrusted text ------------------------------------------------------------------------------


def hostile_topology() -> Topology:
    topo = diagram_host(1)
    c = topo.engines[0].containers[0]
    c.name = "<b>x</b>"  # with the image below, a label of the exact shape `<...>`
    c.image = "<i>evil</i>"
    c.processes[0].cmdline = list(HOSTILE)
    c.processes[1].cmdline = ["a" * 30 + '"', "\\", '"] ; evil [label=<<b>x</b>>]; "']
    topo.host["hostname"] = 'h"o<s>t\\'
    return topo


@pytest.mark.parametrize("ns_view", [False, True])
def test_labels_escape_dot_syntax(ns_view: bool) -> None:
    dot = diagram.source(hostile_topology(), ns=ns_view)
    assert "<script>alert(1)</script>" in dot
    assert " &amp;amp;" in dot  # & made literal: Graphviz decodes entities in plain labels too
    for escape in ("N", "G", "l", "n"):  # a backslash doubled: no DOT escape
        assert f" \\\\{escape}" in dot
    assert '\\"q\\" ] } { [' in dot and '\\"] ;' in dot and 'evil [label=<<b>x</b>>]; \\"' in dot
    assert "\x1b" not in dot and "\x07" not in dot and "\\\\x1b[31mred" in dot
    assert not re.search(r"label=<", dot.replace("evil [label=<", ""))  # no HTML label
    assert 'label="<b>x</b>\\n' in dot  # `<...>`-shaped, yet a plain string


@needs_dot
@pytest.mark.parametrize("ns_view", [False, True])
def test_hostile_text_stays_text_in_svg(ns_view: bool) -> None:
    svg = render(diagram.source(hostile_topology(), ns=ns_view), "svg")
    root, text = svg_text(svg)
    tags = {el.tag.split("}")[-1] for el in root.iter()}
    assert "script" not in tags and "b" not in tags and "i" not in tags
    assert tags <= {"svg", "g", "title", "text", "path", "polygon", "polyline", "ellipse"}
    for shown in SHOWN:
        assert shown in text, shown
    assert "<b>x</b>" in text and "<i>evil</i>" in text and 'h"o<s>t\\' in text
    assert '"] ; evil [label=<<b>x</b>>]; "' in text  # lines joined with a space
    assert b"<script" not in svg and b"\x1b" not in svg
    # as many nodes as with harmless text: nothing was injected into the graph
    plain = render(diagram.source(diagram_host(1), ns=ns_view), "svg")
    assert svg.count(b'class="node"') == plain.count(b'class="node"')
    assert svg.count(b'class="cluster"') == plain.count(b'class="cluster"')


# -- output --------------------------------------------------------------------------------------


def test_default_name_is_host_and_time_and_stays_one_file_name() -> None:
    host = {"hostname": "vm", "taken_at": "2026-11-28T18:14:44+00:00"}
    assert default_name(host, "svg") == "vm-20261128-181444.svg"
    assert default_name(host, "png", ns=True) == "vm-20261128-181444-ns.png"
    evil = default_name({"hostname": "../../etc/x y", "taken_at": "nope"}, "svg")
    assert "/" not in evil and not evil.startswith(".") and evil.endswith(".svg")


def test_missing_dot_binary_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingBinaryError) as err:
        render(diagram.source(diagram_host()), "svg")
    assert err.value.exit_code == ExitCode.MISSING_DEPENDENCY
    assert "apt-get install -y graphviz" in err.value.line()
    assert render("digraph {}", "dot") == b"digraph {}"  # DOT needs no binary


def test_compact_300_containers_is_one_node_each_and_small() -> None:
    """Small enough for dot to lay out at once (how fast: benchmarks/ and the README's
    whole-host export measurements, not a timed test)."""
    ctrs = [numbered(i, f"svc-{i:03d}", procs=3) for i in range(300)]
    docker = engine(dockerd(), containerd(), containers=ctrs, edges=engine_edges(ctrs))
    topo = Topology(engines=[docker], host={"hostname": "big", "namespaces": HOST_NS})
    dot = diagram.source(topo, compact=True)
    nsdot = diagram.source(topo, ns=True, compact=True)
    assert len(dot) < 150_000 and len(nsdot) < 150_000
    assert len(re.findall(r"^\s*c_\w+ \[label=", dot, re.M)) == 300
    assert len(re.findall(r"^\s*nsc_\w+ \[label=", nsdot, re.M)) == 300
    assert not re.search(r"^\s*p1001 \[", dot, re.M)  # processes are counted, not drawn
    assert all(f"svc-{i:03d}" in dot for i in range(300))
    kinds = [a.get("class") for t, _, a in dot_edges(dot) if not t.startswith("legend")]
    assert kinds.count("shim-address") == 1 and kinds.count("reparented") == 1
    assert "300 shims" in dot and "3 processes" in dot


@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("ns_view", [False, True])
def test_a_container_seen_under_two_engines_has_a_name_under_each(ns_view, compact) -> None:
    """No node or cluster is declared twice: one name under two engines' clusters is one node
    in two clusters, which dot drew in the wrong place or crashed on (a segfault)."""
    topo = seen_under_two_engines()
    first, second = topo.engines
    dot = diagram.source(topo, ns=ns_view, compact=compact)
    nodes, clusters = declared(dot)
    assert len(nodes) == len(set(nodes)), sorted(n for n in nodes if nodes.count(n) > 1)
    assert len(clusters) == len(set(clusters))
    for c in first.containers:  # under each engine: the id as it is, then with its engine
        drawn = {n for n in [*nodes, *clusters] if cid(c) in n}
        if not ns_view:
            unit = "c_" if compact else "cluster_c_"
            assert {n for n in drawn if n.startswith(unit)} == {
                f"{unit}{cid(c)}",
                f"{unit}{cid(c)}_e1_2",
            }
        elif c.processes:
            assert len({n for n in drawn if n.startswith("nsc_" if compact else "nsn_")}) == 2
    if not ns_view and not compact:  # one process, one node: the proxy, a PID of both
        assert nodes.count("p650") == 1 and nodes.count("p500") == 1


@needs_dot
@pytest.mark.parametrize("ns_view", [False, True])
def test_dot_draws_a_container_seen_under_two_engines(ns_view) -> None:
    svg = render(diagram.source(seen_under_two_engines(), ns=ns_view), "svg")
    root, _ = svg_text(svg)
    titles = [el.text for el in root.iter() if el.tag.endswith("}title")]
    assert f"cluster_{'ns' if ns_view else 'c'}_{'00' * 32}_e1_2" in titles
