"""How to add a runtime: one module, and its registration. The example is "toy", a runtime
made up for this test, whose real processes the test starts:

    toyd --root DIR --socket SOCK          its daemon
    └── toy-monitor --id ID --name NAME    one per container, holding it (a child of toyd)
        └── sleep 600                      the container's init

The first half of this file is all that toy writes: a class that extends `RuntimeBase` (whose
defaults read nothing, ask nothing and build nothing), says how its engines are drawn (`Look`,
`describe`) and builds them from the host's snapshot, taking only the processes it can prove
are its own. `registered(TOY)` adds it for a test (a real runtime is added to RUNTIMES in
tracer/runtimes/__init__.py). The second half shows it with every command that draws engines:
`show` (terminal and --json, and a saved snapshot read back), `export` (DOT and SVG) and
`serve` (the page's documents), none of which was told about toy.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from tests.support.cli import invoke
from tests.support.waiting import wait_for
from tracer.model.topology import ApiView, Container, Edge, Engine, Monitor, Process, Service
from tracer.runtimes import observe, registered, runtime_of
from tracer.runtimes.base import Found, Look, RuntimeBase
from tracer.runtimes.flags import flag_value
from tracer.snapshot.host import Host, Proc

# -- the runtime: all that a new one writes ------------------------------------------------------


class ToyRuntime(RuntimeBase):
    name = "toy"
    daemons = frozenset({"toyd"})  # the walk reads their namespaces and sockets
    usually_shared: Mapping[str, str] = {"net": "toy never makes a network namespace"}
    look = Look(
        chain=("toyd",),
        missing={"toyd": "toyd not running"},
        monitor="toy-monitor",
        monitor_parent="toyd",
        edges={"parent": "toyd -> its monitors -> each container's init (ppid)"},
        cli=frozenset({"toyctl"}),
    )

    def drawn(self, host: Host) -> list[int]:
        """What the monitors run: the containers' processes, whose namespaces are shown."""
        return [p.pid for m in _monitors(host) for p in host.descendants(m.pid)]

    def build(self, host: Host, answers: Mapping[int, ApiView], found: Found) -> None:
        """An engine per toyd; a container per toy-monitor that is toyd's child and names its
        container (a toy-monitor anywhere else is not provably toy's, and is left alone)."""
        for daemon in host.running("toyd"):
            if daemon.pid in found.claimed:
                continue
            root = flag_value(daemon.cmdline, "--root")
            engine = Engine(
                runtime=self.name,
                daemons=[Service(pid=daemon.pid, cmdline=list(daemon.cmdline), kind="toyd",
                                 socket=flag_value(daemon.cmdline, "--socket"))],
                facts={"toy_root": root},
            )  # fmt: skip
            for m in _monitors(host):
                if m.ppid == daemon.pid and m.pid not in found.claimed:
                    engine.containers.append(_container(host, m))
                    engine.edges.append(Edge(daemon.pid, m.pid, "parent", "ppid"))
                    engine.edges += [Edge(p.ppid, p.pid, "parent", "ppid")
                                     for p in engine.containers[-1].processes]  # fmt: skip
                    found.claimed.add(m.pid)
            found.claimed.add(daemon.pid)
            found.engines.append(engine)

    def describe(self, engine: Engine) -> list[str]:
        return [f"root {engine.facts.get('toy_root')}"]


def _monitors(host: Host) -> list[Proc]:
    return [p for p in host.running("toy-monitor") if flag_value(p.cmdline, "--id")]


def _container(host: Host, m: Proc) -> Container:
    init = next(iter(host.children(m.pid)), None)
    procs = [init, *host.descendants(init.pid)] if init else []
    return Container(
        id=flag_value(m.cmdline, "--id") or "?",
        name=flag_value(m.cmdline, "--name"),
        image="toy/busybox:1",
        state="running" if init else "created",
        init_pid=init.pid if init else None,
        monitor=Monitor(pid=m.pid, ppid=m.ppid, cmdline=list(m.cmdline), namespace=None,
                        address=None, reparented=False, kind="toy-monitor"),
        processes=[Process(pid=p.pid, ppid=p.ppid, cmdline=list(p.cmdline),
                           role="init" if p is init else "child", name=p.name,
                           namespaces=dict(p.namespaces), start=p.start) for p in procs if p],
        namespaces=dict(init.namespaces) if init else {},
    )  # fmt: skip


TOY = ToyRuntime()

# -- toy's processes, for real -------------------------------------------------------------------

ID = "70e" + "a" * 61
# toyd starts one monitor, which starts the container's init; each is Python (or sleep) run
# under toy's own program names (argv[0]), which is how /proc tells a program.
TOYD = """import subprocess, sys
monitor = subprocess.Popen(["toy-monitor", "-c", sys.argv[1], "--id", sys.argv[2],
                            "--name", "toy-web"], executable=sys.argv[3])
monitor.wait()"""
MONITOR = """import subprocess
subprocess.Popen(["sleep", "600"]).wait()"""


@dataclass
class Toy:
    url: str  # toyd's socket, as -H takes it
    root: str
    daemon: int
    monitor: int
    init: int


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Toy]:
    """toyd, its monitor and a container's init, running, with toy registered."""
    where = tmp_path_factory.mktemp("toy")
    sock, root = where / "toy.sock", where / "root"
    argv = ["toyd", "-c", TOYD, MONITOR, ID, sys.executable, "--root", str(root),
            "--socket", str(sock)]  # fmt: skip
    daemon = subprocess.Popen(argv, executable=sys.executable)
    try:
        wait_for(lambda: _child(daemon.pid) and _child(_child(daemon.pid)), 10, "toy's init")
        monitor = _child(daemon.pid)
        with registered(TOY):
            yield Toy(f"unix://{sock}", str(root), daemon.pid, monitor, _child(monitor))
    finally:
        monitor = _child(daemon.pid)
        for pid in (_child(monitor) if monitor else 0, monitor):  # the init, then its monitor
            if pid:
                os.kill(pid, signal.SIGKILL)
        daemon.kill()
        daemon.wait()


def _child(pid: int) -> int:
    """The first child of pid (0 when it has none yet)."""
    tasks = Path(f"/proc/{pid}/task/{pid}/children")
    kids = tasks.read_text().split() if tasks.exists() else []
    return int(kids[0]) if kids else 0


# -- toy, drawn by every command that draws engines ----------------------------------------------


def test_show_draws_toy_in_its_own_words(toy: Toy) -> None:
    r = invoke("show", "-H", toy.url)
    assert r.exit_code == 0, r.output
    assert r.output == (
        f"toyd {toy.daemon}  {toy.url.removeprefix('unix://')}  root {toy.root}\n"
        f"├── toy-monitor {toy.monitor} [child of toyd]  toy-web {ID[:12]}  toy/busybox:1\n"
        f"│   └── {toy.init} init  sleep 600\n"
        "└── containers: 1 running, 1 processes\n"
    )


def test_show_json_keeps_toy_s_facts_and_reads_them_back(toy: Toy, tmp_path: Path) -> None:
    r = invoke("show", "-H", toy.url, "--json")
    assert r.exit_code == 0, r.output
    saved = tmp_path / "toy.json"
    saved.write_text(r.output)
    (engine,) = json.loads(r.output)["engines"]
    assert (engine["runtime"], engine["name"]) == ("toy", toy.url.removeprefix("unix://"))
    assert engine["toy_root"] == toy.root  # its own fact, a key of its own
    assert engine["store"] is None and engine["owner"] is None  # schema 2's keys, as ever
    (daemon,) = engine["daemons"]
    assert (daemon["role"], daemon["pid"]) == ("toyd", toy.daemon)
    (c,) = engine["containers"]
    assert (c["monitor"]["kind"], c["monitor"]["pid"], c["init_pid"]) == (
        "toy-monitor", toy.monitor, toy.init,
    )  # fmt: skip
    live = invoke("show", "-H", toy.url).output
    assert invoke("show", "--from", str(saved)).output == live  # the same tree, read back


def test_export_draws_toy_as_it_says(toy: Toy, tmp_path: Path) -> None:
    r = invoke("export", "-H", toy.url, "--dot", "-o", "-")
    assert r.exit_code == 0, r.output
    dot = r.output
    assert f"toyd\\npid {toy.daemon}" in dot and f"toy-monitor\\npid {toy.monitor}" in dot
    assert f"root {toy.root}" in dot  # describe(), in the engine's heading
    assert "parent: toyd -> its monitors -> each container's init (ppid)" in dot  # the legend
    assert "dockerd" not in dot and "not running" not in dot
    svg = tmp_path / "toy.svg"
    assert invoke("export", "-H", toy.url, "-o", str(svg)).exit_code == 0
    drawn = svg.read_text()
    assert drawn.startswith("<?xml") and "toyd</text>" in drawn and f"pid {toy.init}" in drawn


def test_serve_s_documents_show_toy(toy: Toy) -> None:
    from tracer.output.web import state as pages
    from tracer.output.web.documents import diagram_key, document

    topo = observe(only=toy.url).topology
    page = pages.state(topo, 1, 0.1, {}, {})
    (mine,) = [e for e in page["engines"] if e["runtime"] == "toy"]
    assert [(d["role"], d["pid"], d["program"]) for d in mine["daemons"]] == [
        ("toyd", toy.daemon, "toyd")
    ]
    (web,) = [c for c in page["containers"] if c["id"] == ID]
    assert web["engine"] == page["engines"].index(mine) and web["holder_pid"] == toy.monitor
    shown = json.loads(document(topo, "show"))
    assert any(e["runtime"] == "toy" for e in shown["engines"])
    svg = document(topo, diagram_key("architecture", [toy.url.removeprefix("unix://")]))
    assert b"toy&#45;monitor" in svg and b"dockerd" not in svg


def test_a_trace_calls_toy_s_cli_a_cli(toy: Toy) -> None:
    from tracer.views.lives import Image
    from tracer.views.roles import _by_argv

    toyctl = Image(ts=0, cmdline=("/usr/bin/toyctl", "run", "web"), comm="toyctl")
    assert _by_argv(toyctl) == ("cli", None)


def test_a_runtime_is_registered_for_as_long_as_the_with_block() -> None:
    from tracer.views.lives import Image
    from tracer.views.roles import _by_argv

    class Other(ToyRuntime):
        name = "other-toy"
        look = replace(ToyRuntime.look, cli=frozenset({"otherctl"}))

    otherctl = Image(ts=0, cmdline=("otherctl", "ps"), comm="otherctl")
    with registered(Other()) as other:
        assert runtime_of("other-toy") is other and _by_argv(otherctl) == ("cli", None)
    assert runtime_of("other-toy").name == "unknown" and _by_argv(otherctl) is None
