"""The rich tree, character for character; and what a hostile container cannot do to it."""

from __future__ import annotations

import io
import re

from rich.console import Console

from tests.support.topologies import containerd, dockerd, engine, shim
from tracer.model.topology import Container, Process, Proxy, Topology
from tracer.output.terminal import style, tree
from tracer.views.selection import counts, select

ID_WEB = "3f2a9c1b7d4e" + "0" * 52
ID_DB = "9b8c7d6e5f4a" + "1" * 52
ID_OLD = "77aa00bb11cc" + "2" * 52


def show(topo: Topology, width: int = 100) -> str:
    out = io.StringIO()
    Console(color_system=None, width=width, file=out).print(tree.topology(topo))
    return out.getvalue()


def show_with_totals(topo: Topology, full: Topology, width: int = 100) -> str:
    out = io.StringIO()
    totals = {e.title: counts(e) for e in full.engines}
    Console(color_system=None, width=width, file=out).print(tree.topology(topo, totals))
    return out.getvalue()


def fixture() -> Topology:
    web = Container(
        id=ID_WEB,
        name="web",
        image="nginx:alpine",
        state="running",
        init_pid=710,
        shim_pid=700,
        monitor=shim(700, ppid=1),
        processes=[
            Process(710, 700, ["nginx: master process nginx -g daemon off;"], "init", "nginx"),
            Process(711, 710, ["nginx: worker process"], "child", "nginx"),
            Process(720, 700, ["sh"], "exec", "sh"),
            Process(721, 720, [], "exec", "top"),  # no cmdline: its name is shown
        ],
        proxies=[Proxy(650, "tcp", "127.0.0.1", 18080, "172.29.213.4", 80)],
    )
    db = Container(
        id=ID_DB,
        name=None,
        image=None,
        state="running",
        init_pid=810,
        shim_pid=800,
        monitor=shim(800, ppid=500),
        processes=[Process(810, 800, ["sleep", "infinity"], "init", "sleep")],
    )
    old = Container(id=ID_OLD, name="old", image="busybox", state="exited")
    docker = engine(
        dockerd(600, cmdline=["dockerd"]),
        containerd(500, cmdline=["containerd"]),
        containers=[web, db, old],
        unmatched_proxies=[Proxy(651, "udp", "0.0.0.0", 5353, "172.29.213.9", 53)],
        notes=["a note"],
    )
    return Topology(engines=[docker])


def test_render_full_engine_exactly() -> None:
    assert show(fixture()) == (
        "dockerd 600  api /run/docker.sock  live-restore on\n"
        "├── containerd 500  /run/containerd/containerd.sock  [socket]\n"
        "│   ├── containerd-shim 700 [re-parented: ppid 1]  web 3f2a9c1b7d4e  nginx:alpine\n"
        "│   │   ├── 710 init  nginx: master process nginx -g daemon off;\n"
        "│   │   │   └── 711 child nginx: worker process\n"
        "│   │   └── 720 exec  sh\n"
        "│   │       └── 721 exec  top\n"
        "│   ├── containerd-shim 800 [child of containerd]  (name unknown) 9b8c7d6e5f4a\n"
        "│   │   └── 810 init  sleep infinity\n"
        "│   └── ○ old 77aa00bb11cc  busybox  exited, no process\n"
        "├── docker-proxy 650  tcp 127.0.0.1:18080 -> 172.29.213.4:80  web\n"
        "├── docker-proxy 651  udp 0.0.0.0:5353 -> 172.29.213.9:53  (container unknown)\n"
        "├── containers: 2 running, 1 stopped, 5 processes\n"
        "└── note: a note\n"
    )


def test_states_docker_ps_would_mark_are_marked() -> None:
    topo = fixture()
    web, db, old = topo.engines[0].containers
    web.state, db.state, old.state = "paused", "restarting", "created"
    text = show(topo, width=120)
    assert "web 3f2a9c1b7d4e  (Paused)  nginx:alpine" in text
    assert "(name unknown) 9b8c7d6e5f4a  (Restarting)" in text
    assert "○ old 77aa00bb11cc  busybox  created, no process" in text
    assert "containers: 0 running, 1 paused, 1 restarting, 1 stopped, 5 processes" in text


def test_the_summary_counts_what_the_selection_left_out() -> None:
    full = fixture()
    running_only = select(full, [], include_stopped=False)
    text = show_with_totals(running_only, full)
    assert "○ old" not in text
    assert "containers: 2 running, 1 stopped (not shown; -a shows them), 5 processes" in text


def test_ipv6_addresses_are_bracketed_as_docker_ps_writes_them() -> None:
    topo = fixture()
    topo.engines[0].containers[0].proxies[0] = Proxy(650, "tcp", "::", 18180, "fd00::2", 80)
    assert "docker-proxy 650  tcp [::]:18180 -> [fd00::2]:80  web" in show(topo)


def test_render_degraded_engines_and_orphans_exactly() -> None:
    orphan = Container(
        id="ab" * 32,
        name="cache",
        image=None,
        state="running",
        init_pid=910,
        shim_pid=900,
        monitor=shim(900, ppid=1, address="/run/gone.sock"),
        processes=[Process(910, 900, [], "init", "redis-server")],
    )
    topo = Topology(
        engines=[
            engine(
                dockerd(
                    600,
                    socket=None,
                    cmdline=[],
                    reachable=False,
                    live_restore=None,
                    api_error="connection refused",
                ),
                containerd(601, "/run/docker/containerd/containerd.sock", cmdline=[], managed=True),
            ),
            engine(
                containerd(502, cmdline=[], proven=False),
                notes=["no dockerd uses this containerd"],
            ),
            engine(dockerd(700, "/run/y.sock", cmdline=[], live_restore=False)),
        ],
        orphans=[orphan],
    )
    assert show(topo) == (
        "dockerd 600  api ?  live-restore ?  API unreachable: connection refused\n"
        "├── containerd 601  /run/docker/containerd/containerd.sock  [child of dockerd, socket]\n"
        "└── containers: 0 running, 0 processes\n"
        "containerd 502  /run/containerd/containerd.sock\n"
        "├── containers: 0 running, 0 processes\n"
        "└── note: no dockerd uses this containerd\n"
        "dockerd 700  api /run/y.sock  live-restore off\n"
        "├── containerd not found\n"
        "└── containers: 0 running, 0 processes\n"
        "shims whose containerd is not running\n"
        "└── containerd-shim 900 [containerd /run/gone.sock gone, re-parented: ppid 1]  cache "
        "abababababab\n"
        "    └── 910 init  redis-server\n"
    )


def test_render_empty_host() -> None:
    assert show(Topology(engines=[])) == "no container engine on this host\n"


def test_cmdline_is_cut_at_the_limit() -> None:
    assert style.cmdline(["a", "b"]) == "a b"
    assert style.cmdline(["x" * 120]) == "x" * 120
    long = style.cmdline(["x" * 200])
    assert len(long) == 120 and long == "x" * 119 + "…"
    assert style.cmdline(["abcdef"], limit=4) == "abc…"


HOSTILE = ["sh", "-c", "\x1b]0;pwned\x07", "\x1b[31m", "[bold]x[/bold]", "<script>", "\x9b2J"]


def hostile_topology() -> Topology:
    topo = fixture()
    web = topo.engines[0].containers[0]
    web.name = "[red]evil[/red]\x1b[2J"
    web.image = "img\u202egnp.exe"
    web.processes.append(Process(730, 700, list(HOSTILE), "exec", "sh"))
    web.processes.append(Process(731, 700, [], "exec", "\x1b[5mblink"))
    topo.engines[0].notes.append("\x07bell [link=http://x]y[/link]")
    return topo


def test_hostile_text_is_inert_and_markup_is_not_interpreted() -> None:
    out = show(hostile_topology(), width=200)
    for bad in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert bad not in out, repr(bad)
    assert "[bold]x[/bold]" in out  # not turned into bold "x"
    assert "<script>" in out
    assert "730 exec  sh -c \\x1b]0;pwned\\x07 \\x1b[31m [bold]x[/bold] <script> \\x9b2J\n" in out
    assert "731 exec  \\x1b[5mblink\n" in out
    assert "[red]evil[/red]\\x1b[2J 3f2a9c1b7d4e  img\\u202egnp.exe\n" in out
    assert "note: \\x07bell [link=http://x]y[/link]\n" in out
    # the proxy still names its container by the (escaped) name
    assert "-> 172.29.213.4:80  [red]evil[/red]\\x1b[2J\n" in out


def test_hostile_text_with_colours_only_carries_rich_sgr_codes() -> None:
    out = io.StringIO()
    Console(color_system="truecolor", width=200, file=out, force_terminal=True).print(
        tree.topology(hostile_topology())
    )
    text = out.getvalue()
    assert "\x07" not in text and "\x9b" not in text and "\x1b]" not in text
    # every ESC left is a colour/style (SGR) sequence rich wrote, never the container's
    assert "\x1b[" in text
    assert "\x1b" not in re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert "\x1b[2J" not in text and "\x1b[5mblink" not in text
    assert "[bold]x[/bold]" in text
