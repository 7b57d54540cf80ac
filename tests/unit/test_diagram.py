"""Diagrams, tested on the DOT source; hostile text rendered by the real `dot` and parsed back."""

from __future__ import annotations

import copy
import json
import re
import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tracer import diagram
from tracer.cli import app
from tracer.errors import ExitCode, MissingBinaryError
from tracer.model import (
    Container,
    Containerd,
    Dockerd,
    Edge,
    Engine,
    Process,
    Proxy,
    Shim,
    SnapshotFormatError,
    Topology,
    from_json,
)
from tracer.select import select

DATA = Path(__file__).parent / "data"
LAB = DATA / "lab-snapshot.json"
SOCK = "/run/containerd/containerd.sock"
HOST_NS = {"cgroup": 10, "ipc": 11, "mnt": 12, "net": 13, "pid": 14, "time": 15, "user": 16}
HOSTILE = [
    "sh",
    "-c",
    '"q" ] } { [ \\N \\G \\l \\n <script>alert(1)</script> &amp; \x1b[31mred\x1b]0;t\x07',
]
SHOWN = ['"q"', "] } { [", "\\N", "\\G", "\\l", "\\n", "<script>alert(1)</script>", "&amp;"]
SHOWN += ["\\x1b[31mred\\x1b]0;t\\x07"]
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs graphviz's dot")


def lab(include_stopped: bool = True) -> Topology:
    """The recorded lab (with lab-stopped); as `export` draws it by default without."""
    return select(from_json(json.loads(LAB.read_text())), [], include_stopped=include_stopped)


def ns(**own: int) -> dict[str, int]:
    return {**HOST_NS, **own}


def container(i: int, name: str | None, procs: int = 2, reparented: bool = True, **kw) -> Container:
    shim = 1000 + 10 * i
    spaces = ns(mnt=100 + i, net=200 + i, pid=300 + i)
    processes = [Process(shim + 1, shim, ["sleep", "1"], "init", "sleep", namespaces=spaces)]
    processes += [
        Process(shim + 1 + k, shim + 1, ["sleep", str(k)], "child", "sleep", namespaces=spaces)
        for k in range(1, procs)
    ]
    return Container(
        id=f"{i:02d}" * 32,
        name=name,
        image="busybox",
        state="running",
        init_pid=shim + 1,
        shim_pid=shim,
        shim=Shim(
            shim, 1 if reparented else 500, ["containerd-shim-runc-v2"], "moby", SOCK, reparented
        ),
        processes=processes,
        namespaces=spaces,
        **kw,
    )


def edges_of(containers: list[Container]) -> list[Edge]:
    out = [Edge(600, 500, "socket", f"{SOCK} (--containerd)")]
    for c in containers:
        assert c.shim
        out.append(Edge(c.shim.pid, 500, "shim-address", SOCK))
        kind = "reparented" if c.shim.reparented else "parent"
        out.append(Edge(c.shim.ppid, c.shim.pid, kind, "pid 1"))
        out += [Edge(p.ppid, p.pid, "parent", "ppid") for p in c.processes]
        out += [Edge(600, p.pid, "parent", "ppid") for p in c.proxies]
    return out


def synthetic(n: int = 3) -> Topology:
    ctrs = [container(i, f"web-{i}") for i in range(n)]
    ctrs[0].proxies.append(Proxy(650, "tcp", "127.0.0.1", 18080, "172.29.213.4", 80))
    ctrs.append(container(n, None, procs=1, reparented=False))  # name unknown, child of containerd
    # a sidecar in the network namespace of web-0
    side = container(n + 1, "side")
    for p in side.processes:
        p.namespaces["net"] = ctrs[0].namespaces["net"]
    ctrs.append(side)
    stopped = Container(id="ff" * 32, name="old", image="busybox", state="exited")
    engine = Engine(
        dockerd=Dockerd(600, ["/usr/sbin/dockerd"], "/run/docker.sock", True, True),
        containerd=Containerd(500, SOCK, False, ["/usr/bin/containerd"], True),
        containers=[*ctrs, stopped],
        edges=edges_of(ctrs),
    )
    host = {"hostname": "box", "taken_at": "2026-11-28T17:00:00+00:00", "namespaces": HOST_NS}
    return Topology(engines=[engine], host={**host, "namespaces_from": "pid 1"})


def edges(dot: str) -> list[tuple[str, str, dict[str, str]]]:
    """(tail, head, attributes) of every edge statement in DOT made by the graphviz package."""
    out = []
    for line in dot.splitlines():
        m = re.match(r"\s*(\S+) -> (\S+)(?: \[(.*)\])?$", line)
        if m:
            attrs = re.findall(r'([\w-]+)=("(?:[^"\\]|\\.)*"|[^\s"]+)', m.group(3) or "")
            out.append((m.group(1), m.group(2), {k: v.strip('"') for k, v in attrs}))
    return out


def svg_text(svg: bytes) -> tuple[ET.Element, str]:
    root = ET.fromstring(svg)
    text = " ".join(el.text or "" for el in root.iter() if el.tag.endswith("}text"))
    return root, text.replace("\xa0", " ")  # dot writes a second space as &#160;


# -- determinism ---------------------------------------------------------------------------------


@pytest.mark.parametrize("view", [(False, False), (True, False), (False, True), (True, True)])
def test_same_snapshot_same_dot(view: tuple[bool, bool]) -> None:
    ns_view, compact = view
    for topo in (lab(), synthetic()):
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
    dot = diagram.source(lab())
    assert "2026-11-28T18:14:44+00:00" in dot
    stamps = re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", dot)
    assert set(stamps) == {"2026-11-28T18:14:44"}


# -- the architecture view -----------------------------------------------------------------------


def test_every_daemon_shim_process_and_proxy_is_a_node_with_pid_and_program() -> None:
    topo = lab()
    dot = diagram.source(topo)
    (engine,) = topo.engines
    assert engine.dockerd and engine.containerd
    assert re.search(rf'\bp{engine.dockerd.pid} \[label="dockerd\\npid {engine.dockerd.pid}', dot)
    assert re.search(rf'\bp{engine.containerd.pid} \[label="containerd\\npid', dot)
    for c in engine.containers:
        if c.shim:
            assert f'p{c.shim.pid} [label="containerd-shim-runc-v2\\npid {c.shim.pid}' in dot
        for p in c.processes:
            assert f'p{p.pid} [label="{p.role}  pid {p.pid}\\n{p.cmdline[0]}' in dot
        for x in c.proxies:
            assert f'p{x.pid} [label="docker-proxy\\npid {x.pid}' in dot


def test_containers_are_clusters_labelled_name_short_id_image() -> None:
    dot = diagram.source(lab())
    for c in lab().containers():
        assert f'label="{c.name}\\n{c.id[:12]}\\ndtrace-lab/busybox:latest"' in dot
    assert dot.count("subgraph cluster_c_") == 6
    assert dot.count("subgraph cluster_engine_") == 1
    assert "exited: no process" in dot


def test_each_edge_kind_has_its_own_style_and_a_legend_entry() -> None:
    dot = diagram.source(synthetic())
    found = edges(dot)
    styles = {}
    for kind, style in diagram.EDGE_STYLE.items():
        drawn = [a for t, _, a in found if a.get("class") == kind and not t.startswith("legend")]
        legend = [a for t, _, a in found if a.get("class") == kind and t.startswith("legend")]
        assert drawn, kind
        assert len(legend) == 1, kind
        for attrs in [*drawn, legend[0]]:
            assert {k: attrs.get(k) for k in style} == style, kind
        assert diagram.EDGE_MEANING[kind].split(":")[0] == kind
        assert diagram.dot_text(diagram.EDGE_MEANING[kind]) in legend[0]["label"]
        styles[kind] = (style["color"], style["style"])
    assert len(set(styles.values())) == len(styles)  # no two kinds look alike


def test_edges_follow_the_model() -> None:
    topo = synthetic()
    found = {(t, h, a["class"]) for t, h, a in edges(diagram.source(topo)) if "class" in a}
    (engine,) = topo.engines
    for e in engine.edges:
        if e.kind == "shim-address":  # drawn from containerd's side, arrow turned (dir=back)
            assert (f"p{e.dst}", f"p{e.src}", e.kind) in found
        else:
            assert (f"p{e.src}", f"p{e.dst}", e.kind) in found
    assert ("p650", "p1001", "forwards") in found  # docker-proxy -> lab-web's init
    assert 'p1 [label="pid 1\\ninit: adopts orphaned shims"' in diagram.source(topo)


def test_no_engine_and_orphans() -> None:
    assert "no Docker engine on this host" in diagram.source(Topology(engines=[]))
    orphan = container(7, "lost")
    dot = diagram.source(Topology(engines=[], orphans=[orphan]))
    assert "shims whose containerd is not running" in dot
    found = {(t, h, a.get("class")) for t, h, a in edges(dot)}
    assert ("p1", "p1070", "reparented") in found and ("p1070", "p1071", "parent") in found


# -- the namespace view --------------------------------------------------------------------------


def test_namespace_view_groups_by_namespace_and_shows_sharing() -> None:
    topo = lab()
    dot = diagram.source(topo, ns=True)
    web, side = (
        next(c for c in topo.containers() if c.name == n) for n in ("lab-web", "lab-sidecar")
    )
    found = edges(dot)
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
    topo = synthetic(1)
    c = topo.engines[0].containers[0]
    c.processes[1].namespaces = {**c.processes[1].namespaces, "net": 999}
    dot = diagram.source(topo, ns=True)
    assert "differs from the init in: net" in dot
    assert "private\\nmnt 100\\npid 300\\nnet 999" in dot  # its own net; mnt, pid as the init
    assert f"subgraph cluster_ns_{c.id}_1 " in dot


# -- untrusted text ------------------------------------------------------------------------------


def hostile_topology() -> Topology:
    topo = synthetic(1)
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
    svg = diagram.render(diagram.source(hostile_topology(), ns=ns_view), "svg")
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
    plain = diagram.render(diagram.source(synthetic(1), ns=ns_view), "svg")
    assert svg.count(b'class="node"') == plain.count(b'class="node"')
    assert svg.count(b'class="cluster"') == plain.count(b'class="cluster"')


# -- output --------------------------------------------------------------------------------------


def test_default_name_is_host_and_time_and_stays_one_file_name() -> None:
    host = {"hostname": "vm", "taken_at": "2026-11-28T18:14:44+00:00"}
    assert diagram.default_name(host, "svg") == "vm-20261128-181444.svg"
    assert diagram.default_name(host, "png", ns=True) == "vm-20261128-181444-ns.png"
    evil = diagram.default_name({"hostname": "../../etc/x y", "taken_at": "nope"}, "svg")
    assert "/" not in evil and not evil.startswith(".") and evil.endswith(".svg")


def test_missing_dot_binary_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingBinaryError) as err:
        diagram.render(diagram.source(synthetic()), "svg")
    assert err.value.exit_code == ExitCode.MISSING_DEPENDENCY
    assert "apt-get install -y graphviz" in err.value.line()
    assert diagram.render("digraph {}", "dot") == b"digraph {}"  # DOT needs no binary


def test_compact_300_containers_is_one_node_each_and_fast() -> None:
    ctrs = [container(i, f"svc-{i:03d}", procs=3) for i in range(300)]
    engine = Engine(
        dockerd=Dockerd(600, ["dockerd"], "/run/docker.sock", True, True),
        containerd=Containerd(500, SOCK, False, ["containerd"], True),
        containers=ctrs,
        edges=edges_of(ctrs),
    )
    topo = Topology(engines=[engine], host={"hostname": "big", "namespaces": HOST_NS})
    started = time.perf_counter()
    dot = diagram.source(topo, compact=True)
    nsdot = diagram.source(topo, ns=True, compact=True)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0
    assert len(dot) < 150_000 and len(nsdot) < 150_000
    assert len(re.findall(r"^\s*c_\w+ \[label=", dot, re.M)) == 300
    assert len(re.findall(r"^\s*nsc_\w+ \[label=", nsdot, re.M)) == 300
    assert not re.search(r"^\s*p1001 \[", dot, re.M)  # processes are counted, not drawn
    assert all(f"svc-{i:03d}" in dot for i in range(300))
    kinds = [a.get("class") for t, _, a in edges(dot) if not t.startswith("legend")]
    assert kinds.count("shim-address") == 1 and kinds.count("reparented") == 1
    assert "300 shims" in dot and "3 processes" in dot


# -- the command ---------------------------------------------------------------------------------


def run(*args: str, **env: str):
    return CliRunner().invoke(app, list(args), env={"NO_COLOR": "1", **env})


@needs_dot
@pytest.mark.parametrize(
    ("fmt", "magic"),
    [("svg", b"<?xml"), ("png", b"\x89PNG"), ("pdf", b"%PDF"), ("dot", b"digraph")],
)
def test_each_format_is_written(tmp_path: Path, fmt: str, magic: bytes) -> None:
    out = tmp_path / f"lab.{fmt}"
    result = run("export", "--from", str(LAB), f"--{fmt}", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{out}\n"
    assert out.read_bytes().startswith(magic)
    assert out.stat().st_size > 1000


@needs_dot
def test_default_is_svg_under_diagrams_named_by_host_and_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run("export", "--from", str(LAB), "--ns")
    assert result.exit_code == 0, result.output
    assert result.stdout == "diagrams/vm-20261128-181444-ns.svg\n"
    ET.fromstring((tmp_path / "diagrams/vm-20261128-181444-ns.svg").read_bytes())


def test_format_from_the_output_suffix(tmp_path: Path) -> None:
    result = run("export", "--from", str(LAB), "-o", str(tmp_path / "x.dot"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "x.dot").read_text() == diagram.source(lab(include_stopped=False))


@pytest.mark.parametrize(
    ("args", "ns_view", "compact", "stopped"),
    [
        ((), False, False, False),
        (("--ns", "--compact"), True, True, False),
        (("-a",), False, False, True),
    ],
)
def test_from_file_equals_the_same_snapshot_in_memory(
    tmp_path: Path, args: tuple[str, ...], ns_view: bool, compact: bool, stopped: bool
) -> None:
    out = tmp_path / "x.dot"
    result = run("export", "--from", str(LAB), "--dot", "-o", str(out), *args)
    assert result.exit_code == 0, result.output
    want = diagram.source(lab(include_stopped=stopped), ns=ns_view, compact=compact)
    assert out.read_text() == want
    assert ("lab-stopped" in want) == stopped


def test_from_file_reads_nothing_of_this_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No engine and no root needed: neither /proc nor any Docker API is read."""
    import tracer.host
    import tracer.trace

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("export --from read the live host")

    monkeypatch.setattr(tracer.trace, "trace", forbidden)
    monkeypatch.setattr(tracer.trace, "query_api", forbidden)
    monkeypatch.setattr(tracer.host, "take", forbidden)
    out = tmp_path / "x.dot"
    result = run("export", "--from", str(LAB), "--dot", "-o", str(out), DOCKER_HOST="unix:///no")
    assert result.exit_code == 0, result.output
    assert out.read_text() == diagram.source(lab(include_stopped=False))


def test_filters_apply_to_a_saved_snapshot(tmp_path: Path) -> None:
    out = tmp_path / "x.dot"
    result = run("export", "--from", str(LAB), "--dot", "-o", str(out), "lab-web")
    assert result.exit_code == 0, result.output
    dot = out.read_text()
    assert "lab-web" in dot and "lab-exec" not in dot
    bad = run("export", "--from", str(LAB), "--dot", "-o", str(out), "-H", "unix:///nope.sock")
    assert bad.exit_code == ExitCode.USAGE


def one_error_line(result, code: int, *words: str) -> None:
    assert result.exit_code == code, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("dtrace-tree: error: ")
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("root:x:0:0:root:/root:/bin/bash\n", ["not JSON", "show --json"]),
        ('{"schema": "something/else"}', ["not a dtrace-tree snapshot"]),
        ("[1, 2]", ["not a dtrace-tree snapshot"]),
        ('{"schema": "dtrace-tree/show/1"}', ["malformed"]),
        (
            '{"schema": "dtrace-tree/show/1", "engines": [{"containers": [{"id": "x", '
            '"state": "running", "processes": [{"pid": "1 -> 2", "ppid": 1, "cmdline": [], '
            '"role": "init"}]}]}]}',
            ["malformed", "pid is not a number"],
        ),
        ("\udcff\udcfe[]", ["not JSON"]),
        ("[" * 100_000, ["not JSON"]),
    ],
)
def test_bad_from_file_is_one_line_usage_error(
    tmp_path: Path, content: str, words: list[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(content.encode("utf-8", "surrogateescape"))
    out = tmp_path / "x.svg"
    one_error_line(run("export", "--from", str(bad), "-o", str(out)), ExitCode.USAGE, *words)
    assert not out.exists()


def test_missing_or_unreadable_from_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    one_error_line(run("export", "--from", str(missing)), ExitCode.USAGE, "No such file")
    one_error_line(run("export", "--from", str(tmp_path)), ExitCode.USAGE, "Is a directory")


def test_unwritable_output_is_one_line(tmp_path: Path) -> None:
    one_error_line(
        run("export", "--from", str(LAB), "--dot", "-o", "/proc/nope/x.dot"),
        ExitCode.OUTPUT,
        "cannot write /proc/nope/x.dot",
    )
    one_error_line(
        run("export", "--from", str(LAB), "--dot", "-o", str(tmp_path)),
        ExitCode.OUTPUT,
        "Is a directory",
    )


@needs_dot
def test_unwritable_svg_is_one_line() -> None:
    one_error_line(
        run("export", "--from", str(LAB), "-o", "/proc/nope/x.svg"), ExitCode.OUTPUT, "x.svg"
    )


def test_one_format_only(tmp_path: Path) -> None:
    one_error_line(
        run("export", "--from", str(LAB), "--svg", "--png"), ExitCode.USAGE, "--svg and --png"
    )
    one_error_line(
        run("export", "--from", str(LAB), "--svg", "-o", str(tmp_path / "x.png")),
        ExitCode.USAGE,
        "x.png",
    )


def test_missing_dot_binary_exits_4(tmp_path: Path) -> None:
    result = run("export", "--from", str(LAB), "-o", str(tmp_path / "x.svg"), PATH="/nonexistent")
    one_error_line(result, ExitCode.MISSING_DEPENDENCY, "'dot'", "apt-get install -y graphviz")


def test_check_accepts_the_lab_and_rejects_wrong_types() -> None:
    diagram.check(lab())
    topo = lab()
    topo.engines[0].containers[0].processes[0].pid = True  # type: ignore[assignment]
    with pytest.raises(SnapshotFormatError):
        diagram.check(topo)
    topo = lab()
    topo.engines[0].containers[0].processes[0].cmdline = "sleep"  # type: ignore[assignment]
    with pytest.raises(SnapshotFormatError):
        diagram.check(topo)


def test_survival_diagram_marks_each_container_kept_or_lost() -> None:
    from tracer import diagram

    report = {
        "daemon": "dockerd", "engine": "/run/x.sock", "verdict": "lost", "downtime_ms": 12,
        "before": {"dockerd_pid": 10, "containerd_pid": 11},
        "after": {"dockerd_pid": 20, "containerd_pid": 11},
        "containers": [
            {"id": "a" * 64, "name": "kept", "init_pid_before": 100, "init_pid_after": 100,
             "shim_pid_before": 99, "shim_pid_after": 99, "survived": True},
            {"id": "b" * 64, "name": "<gone>\\N", "init_pid_before": 200, "init_pid_after": None,
             "shim_pid_before": 199, "shim_pid_after": None, "survived": False},
        ],
    }  # fmt: skip
    src = diagram.survival(report)
    assert src == diagram.survival(report)  # deterministic
    assert src.count('label="same process"') == 1 and src.count("label=lost") == 1
    assert "pid 10" in src and "pid 20" in src and "no process" in src
    svg = diagram.render(src, "svg").decode()
    assert "&lt;gone&gt;" in svg and "<gone>" not in svg
