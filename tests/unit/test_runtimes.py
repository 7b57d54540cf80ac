"""tracer.runtimes.build on made-up hosts (docker + containerd runtimes): every edge proven,
every role right, no invented links."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest

from tests.support import schemas
from tests.support.hosts import PROXY_CMD, bundle, make_host, managed_containerd, proc, shim_cmd
from tests.support.topologies import by_id, roles, triples
from tracer.errors import SnapshotFormatError
from tracer.model.show_json import SCHEMA, SCHEMA_1, from_json
from tracer.model.topology import (
    ApiContainer,
    ApiView,
    Containerd,
    Dockerd,
    Edge,
    Engine,
    Proxy,
    Topology,
)
from tracer.runtimes import build
from tracer.snapshot.host import Host, Proc, is_parent

ID_A = "a" * 12 + "1" * 52
ID_B = "b" * 12 + "2" * 52
ID_C = "c" * 12 + "3" * 52
SOCK = "/run/x/containerd.sock"  # not containerd's default: found from its listener or config
DOCKER_SOCK = "/run/x/docker.sock"
NS_A = {"pid": 4026532001, "net": 4026532002, "mnt": 4026532003}
NS_B = {"pid": 4026532101, "net": 4026532102, "mnt": 4026532103}


def standard_procs(with_dockerd: bool = True) -> list[Proc]:
    """systemd; containerd (ppid 1); dockerd (--containerd); two reparented runc-v2 shims."""
    procs = [
        proc(1, 0, "systemd", ["/sbin/init"], 100.0),
        proc(500, 1, "containerd", ["/usr/bin/containerd", "--config", "/run/x/c.toml"], 1000.0),
        # shim A: init 710 -> 711 -> 712, exec 720 -> 721
        proc(700, 1, "containerd-shim", shim_cmd(ID_A, SOCK), 1010.0),
        proc(710, 700, "nginx", ["nginx: master process nginx -g daemon off;"], 1011.0, NS_A),
        proc(711, 710, "nginx", ["nginx: worker process"], 1012.0, NS_A),
        proc(712, 711, "sh", ["/bin/sh", "-c", "sleep 1000"], 1013.0, NS_A),
        proc(720, 700, "sh", ["sh"], 1030.0, NS_A),
        proc(721, 720, "top", ["top", "-b"], 1031.0, NS_A),
        # shim B: just an init
        proc(800, 1, "containerd-shim", shim_cmd(ID_B, SOCK), 1020.0),
        proc(810, 800, "sleep", ["sleep", "infinity"], 1021.0, NS_B),
    ]
    if with_dockerd:
        dockerd_cmd = ["/usr/sbin/dockerd", "-H", f"unix://{DOCKER_SOCK}", "--containerd", SOCK]
        procs += [
            proc(600, 1, "dockerd", dockerd_cmd, 1001.0),
            proc(650, 600, "docker-proxy", PROXY_CMD, 1015.0),
        ]
    return procs


def standard_host(with_dockerd: bool = True) -> Host:
    host = make_host(*standard_procs(with_dockerd))
    host.listeners = {500: {11: SOCK, 12: SOCK + ".ttrpc"}, 600: {21: DOCKER_SOCK}}
    host.cwd = {700: bundle(ID_A), 800: bundle(ID_B)}
    host.files = {f"{bundle(ID_A)}/init.pid": "710\n", f"{bundle(ID_B)}/init.pid": "810"}
    return host


def api_rows() -> list[ApiContainer]:
    return [
        ApiContainer(ID_A, "web", "nginx:alpine", "running", {}, ("172.29.213.4",)),
        ApiContainer(ID_B, "sleeper", "busybox", "running", {"x": "y"}, ("172.29.213.5",)),
        ApiContainer(ID_C, "stopped", "busybox", "exited", {}, ()),
    ]


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail instead of hanging forever."""

    def boom(*_: object) -> None:
        raise TimeoutError(f"did not finish within {seconds}s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# -- the standard engine ---------------------------------------------------------------------


@pytest.fixture
def topo() -> Topology:
    return build(standard_host(), {600: ApiView(containers=api_rows(), live_restore=True)})


def test_engine_has_dockerd_and_its_containerd(topo: Topology) -> None:
    assert len(topo.engines) == 1 and topo.orphans == [] and topo.notes == []
    engine = topo.engines[0]
    dockerd, containerd = engine.daemon(Dockerd), engine.daemon(Containerd)
    assert engine.runtime == "docker" and engine.daemons == [dockerd, containerd]
    assert dockerd is not None and containerd is not None
    assert dockerd.pid == 600
    assert dockerd.api_socket == DOCKER_SOCK
    assert dockerd.reachable is True and dockerd.api_error is None
    assert dockerd.live_restore is True
    assert dockerd.containerd_namespace == "moby"
    assert (containerd.pid, containerd.socket) == (500, SOCK)
    assert containerd.managed is False and containerd.proven is True
    assert engine.notes == []
    assert engine.title == DOCKER_SOCK


def test_edges_are_proven_and_typed(topo: Topology) -> None:
    engine = topo.engines[0]
    assert triples(engine) == [
        (600, 500, "socket"),
        (700, 500, "shim-address"),
        (1, 700, "reparented"),
        (700, 710, "parent"),
        (710, 711, "parent"),
        (711, 712, "parent"),
        (700, 720, "parent"),
        (720, 721, "parent"),
        (800, 500, "shim-address"),
        (1, 800, "reparented"),
        (800, 810, "parent"),
        (600, 650, "parent"),
    ]
    vias = {(e.src, e.dst, e.kind): e.via for e in engine.edges}
    assert vias[(600, 500, "socket")] == f"{SOCK} (--containerd, listener)"
    assert vias[(700, 500, "shim-address")] == SOCK
    assert vias[(1, 700, "reparented")] == "pid 1"
    # containerd is not dockerd's child here: no parent edge between them
    assert (600, 500, "parent") not in triples(engine)


def test_roles_init_child_exec(topo: Topology) -> None:
    web = by_id(topo)[ID_A]
    assert (web.init_pid, web.shim_pid) == (710, 700)
    assert roles(web) == [
        (710, 700, "init"),
        (711, 710, "child"),
        (712, 711, "child"),
        (720, 700, "exec"),
        (721, 720, "exec"),
    ]
    assert web.namespaces == NS_A
    assert web.shim is not None
    assert web.shim.reparented is True and web.shim.ppid == 1
    assert web.shim.namespace == "moby" and web.shim.address == SOCK
    sleeper = by_id(topo)[ID_B]
    assert roles(sleeper) == [(810, 800, "init")]
    assert sleeper.namespaces == NS_B


def test_api_names_images_states_and_order(topo: Topology) -> None:
    engine = topo.engines[0]
    got = [(c.id, c.name, c.image, c.state, c.running) for c in engine.containers]
    assert got == [
        (ID_B, "sleeper", "busybox", "running", True),
        (ID_A, "web", "nginx:alpine", "running", True),
        (ID_C, "stopped", "busybox", "exited", False),
    ]


def test_stopped_api_container_has_no_process(topo: Topology) -> None:
    stopped = by_id(topo)[ID_C]
    assert stopped.init_pid is None and stopped.shim_pid is None and stopped.shim is None
    assert stopped.processes == [] and stopped.namespaces == {}


def test_proxy_attached_to_the_container_owning_its_ip(topo: Topology) -> None:
    engine = topo.engines[0]
    containers = by_id(topo)
    assert containers[ID_A].proxies == [Proxy(650, "tcp", "127.0.0.1", 18080, "172.29.213.4", 80)]
    assert containers[ID_B].proxies == [] and containers[ID_C].proxies == []
    assert engine.unmatched_proxies == []


def test_api_unreachable_keeps_processes_but_loses_names() -> None:
    topo = build(standard_host(), {600: ApiView(error="connection refused")})
    engine = topo.engines[0]
    dockerd = engine.daemon(Dockerd)
    assert dockerd is not None
    assert dockerd.reachable is False
    assert dockerd.api_error == "connection refused"
    assert dockerd.live_restore is None  # not configured anywhere we can read
    assert sorted(c.id for c in engine.containers) == [ID_A, ID_B]  # no stopped one
    assert all(c.name is None and c.image is None for c in engine.containers)
    assert {c.state for c in engine.containers} == {"running"}
    assert any("API" in n and "connection refused" in n for n in engine.notes), engine.notes
    # the proxy cannot be tied to a container without the API's IPs
    assert [p.pid for p in engine.unmatched_proxies] == [650]
    assert all(c.proxies == [] for c in engine.containers)


def test_api_not_queried_is_reported() -> None:
    topo = build(standard_host())
    engine = topo.engines[0]
    dockerd = engine.daemon(Dockerd)
    assert dockerd is not None and dockerd.api_error == "API not queried"
    assert any("API unreachable (API not queried)" in n for n in engine.notes)


def test_live_restore_from_the_command_line_when_api_does_not_say() -> None:
    host = standard_host()
    d = host.procs[600]
    host.procs[600] = proc(600, 1, "dockerd", [*d.cmdline, "--live-restore"], d.create_time)
    topo = build(host, {600: ApiView(error="timeout")})
    dockerd = topo.engines[0].daemon(Dockerd)
    assert dockerd is not None and dockerd.live_restore is True


def test_live_restore_from_daemon_json() -> None:
    host = standard_host()
    host.files["/etc/docker/daemon.json"] = '{"live-restore": false}'
    topo = build(host, {600: ApiView(error="timeout")})
    dockerd = topo.engines[0].daemon(Dockerd)
    assert dockerd is not None and dockerd.live_restore is False


def test_containerd_without_dockerd_is_still_an_engine() -> None:
    topo = build(standard_host(with_dockerd=False))
    assert len(topo.engines) == 1 and topo.orphans == []
    engine = topo.engines[0]
    assert engine.runtime == "containerd" and engine.daemon(Dockerd) is None
    containerd = engine.daemon(Containerd)
    assert containerd is not None and containerd.pid == 500
    assert engine.title == f"{SOCK} [moby]" and engine.namespace == "moby"
    assert sorted(c.id for c in engine.containers) == [ID_A, ID_B]
    assert all(c.name is None for c in engine.containers)
    assert by_id(topo)[ID_A].init_pid == 710
    assert (700, 500, "shim-address") in triples(engine)
    assert (1, 800, "reparented") in triples(engine)
    assert not any(kind == "socket" for _, _, kind in triples(engine))
    assert any("no running dockerd uses this containerd" in n for n in engine.notes)


def test_shim_of_a_missing_containerd_is_an_orphan() -> None:
    host = standard_host()
    gone = "/run/gone/containerd.sock"
    host.procs[900] = proc(900, 1, "containerd-shim", shim_cmd(ID_C, address=gone), 1040.0)
    host.procs[910] = proc(910, 900, "redis-server", ["redis-server", "*:6379"], 1041.0)
    topo = build(host, {600: ApiView(containers=api_rows(), live_restore=True)})
    assert [c.id for c in topo.orphans] == [ID_C]
    orphan = topo.orphans[0]
    assert orphan.shim is not None and orphan.shim.address == gone
    assert orphan.init_pid == 910 and roles(orphan) == [(910, 900, "init")]
    engine = topo.engines[0]
    # the engine only knows ID_C from its API (stopped, no shim) - the orphan is not merged in
    assert by_id(Topology(engines=[engine]))[ID_C].shim is None
    assert not any(900 in (e.src, e.dst) for e in engine.edges)


def test_containerd_down_each_container_once_named_with_its_processes() -> None:
    """dockerd still answers while its containerd is down: the shims on the socket it uses are
    its containers (named by the API), not orphans beside the same containers unnamed."""
    host = standard_host()
    del host.procs[500]  # containerd is gone; its shims and containers stay
    host.reset()
    topo = build(host, {600: ApiView(containers=api_rows(), live_restore=True)})
    assert topo.orphans == []
    (engine,) = topo.engines
    assert engine.daemon(Containerd) is None
    assert sorted(c.id for c in engine.containers) == sorted([ID_A, ID_B, ID_C])
    web = by_id(topo)[ID_A]
    assert (web.name, web.init_pid, web.shim_pid) == ("web", 710, 700)
    assert (1, 700, "reparented") in triples(engine)
    assert not any(e.kind == "shim-address" for e in engine.edges)  # no containerd to point at
    assert any("containerd for this dockerd not found" in n for n in engine.notes)


def test_only_orphans_and_nothing_else() -> None:
    host = make_host(
        proc(1, 0, "systemd", ["/sbin/init"], 1.0),
        proc(900, 1, "containerd-shim", shim_cmd(ID_C, SOCK), 10.0),
        proc(910, 900, "sleep", ["sleep", "1d"], 11.0),
    )
    topo = build(host)
    assert topo.engines == [] and [c.id for c in topo.orphans] == [ID_C]
    assert topo.notes == []


def test_empty_host_says_no_engine() -> None:
    topo = build(make_host(proc(1, 0, "systemd", ["/sbin/init"], 1.0)))
    assert topo.engines == [] and topo.orphans == []
    assert topo.notes == [
        "no container engine found on this host (no dockerd, containerd, shim or conmon)"
    ]


def test_managed_containerd_is_dockerd_child() -> None:
    managed_sock = "/var/run/docker/containerd/containerd.sock"
    host = make_host(
        proc(1, 0, "systemd", ["/sbin/init"], 1.0),
        proc(600, 1, "dockerd", ["/usr/sbin/dockerd"], 100.0),
        managed_containerd(601, 600, "/var/run/docker", 101.0),
        # one shim still under containerd, one re-parented to PID 1
        proc(700, 601, "containerd-shim", shim_cmd(ID_A, address=managed_sock), 110.0),
        proc(710, 700, "nginx", ["nginx"], 111.0, NS_A),
        proc(800, 1, "containerd-shim", shim_cmd(ID_B, address=managed_sock), 120.0),
        proc(810, 800, "sleep", ["sleep", "1d"], 121.0, NS_B),
    )
    host.listeners = {
        600: {1: "/var/run/docker.sock", 2: "/var/run/docker/metrics.sock"},
        601: {
            3: "/var/run/docker/containerd/containerd-debug.sock",
            4: managed_sock,
            5: managed_sock + ".ttrpc",
        },
    }
    topo = build(host, {600: ApiView(containers=[], live_restore=False)})
    assert len(topo.engines) == 1 and topo.orphans == []
    engine = topo.engines[0]
    dockerd, containerd = engine.daemon(Dockerd), engine.daemon(Containerd)
    assert dockerd is not None and containerd is not None
    assert dockerd.api_socket == "/run/docker.sock"
    assert containerd.pid == 601
    assert containerd.managed is True and containerd.proven is True
    assert containerd.socket == "/run/docker/containerd/containerd.sock"
    edges = triples(engine)
    assert edges[:2] == [(600, 601, "parent"), (600, 601, "socket")]
    assert engine.edges[1].via == (
        "/run/docker/containerd/containerd.sock (managed (child of dockerd), listener)"
    )
    assert (601, 700, "parent") in edges and (700, 601, "shim-address") in edges
    assert (1, 800, "reparented") in edges and (601, 800, "parent") not in edges
    shims = {c.id: c.shim for c in engine.containers}
    under_containerd, reparented = shims[ID_A], shims[ID_B]
    assert under_containerd is not None and under_containerd.reparented is False
    assert reparented is not None and reparented.reparented is True


def test_containerd_socket_from_its_toml() -> None:
    host = standard_host()
    host.listeners[500] = {}  # the listener could not be read (not root)
    host.files["/run/x/c.toml"] = f'version = 2\n[grpc]\n  address = "{SOCK}"\n'
    topo = build(host, {600: ApiView(containers=[])})
    engine = topo.engines[0]
    containerd = engine.daemon(Containerd)
    assert containerd is not None
    assert containerd.socket == SOCK and containerd.proven is False
    assert not any(kind == "socket" for _, _, kind in triples(engine))
    assert sorted(c.id for c in engine.containers) == [ID_A, ID_B]


def test_two_dockerds_on_one_containerd_split_by_namespace() -> None:
    host = standard_host()
    other_cmd = ["dockerd", "-H", "unix:///run/y.sock", "--containerd", SOCK]
    host.procs[601] = proc(601, 1, "dockerd", [*other_cmd, "--containerd-namespace", "y"], 1002.0)
    host.procs[950] = proc(950, 1, "containerd-shim", shim_cmd(ID_C, SOCK, namespace="y"), 1050.0)
    host.procs[951] = proc(951, 950, "sleep", ["sleep", "1"], 1051.0)
    host.listeners[601] = {31: "/run/y.sock"}
    topo = build(host)
    assert [d.pid for e in topo.engines if (d := e.daemon(Dockerd))] == [600, 601]
    first, second = topo.engines
    assert sorted(c.id for c in first.containers) == [ID_A, ID_B]
    assert [c.id for c in second.containers] == [ID_C]
    shared = second.daemon(Containerd)
    assert shared is not None and shared.pid == 500


def test_engines_are_ordered_by_socket_not_by_pid() -> None:
    """A daemon that restarts gets a new PID; its engine must not move in the output."""
    host = standard_host()
    host.procs[599] = proc(599, 1, "dockerd", ["dockerd", "-H", "unix:///run/z.sock"], 1003.0)
    host.listeners[599] = {41: "/run/z.sock"}
    topo = build(host)
    assert [e.title for e in topo.engines] == [DOCKER_SOCK, "/run/z.sock"]


def test_names_sort_as_people_count() -> None:
    host = standard_host()
    rows = [
        ApiContainer(ID_A, "s-10", "busybox", "running", {}, ()),
        ApiContainer(ID_B, "s-2", "busybox", "running", {}, ()),
        ApiContainer(ID_C, "s-1", "busybox", "exited", {}, ()),
    ]
    topo = build(host, {600: ApiView(containers=rows, live_restore=True)})
    assert [c.name for c in topo.engines[0].containers] == ["s-2", "s-10", "s-1"]  # running first


def test_denied_processes_are_counted_when_not_root() -> None:
    host = standard_host()
    host.euid = 1000
    host.procs[810] = proc(810, 800, "sleep", [], 1021.0, denied=True)
    topo = build(host)
    assert topo.notes == [
        "1 processes could not be fully read: run as root (or with CAP_SYS_PTRACE) for the "
        "full view"
    ]


# -- no invented links -----------------------------------------------------------------------


def test_pid_reuse_is_never_a_parent_link() -> None:
    host = standard_host()
    # 812 claims init 810 as its parent but is older than it: 810 is a reused PID
    host.procs[812] = proc(812, 810, "ghost", ["ghost"], 1000.5)
    assert is_parent(host.procs[810], host.procs[812]) is False
    assert host.children(810) == []
    topo = build(host, {600: ApiView(containers=api_rows())})
    sleeper = by_id(topo)[ID_B]
    assert roles(sleeper) == [(810, 800, "init")]
    assert not any(e.dst == 812 for e in topo.engines[0].edges)


def test_is_parent_compares_start_ticks_exactly() -> None:
    parent = proc(10, 1, "p", ["p"], 100.0)  # started at tick 10000
    assert is_parent(parent, proc(11, 10, "c", ["c"], 100.0)) is True  # forked in the same tick
    assert is_parent(parent, proc(11, 10, "c", ["c"], 100.01)) is True  # a tick later
    assert is_parent(parent, proc(11, 10, "c", ["c"], 99.99)) is False  # one tick before: reused
    # the start ticks decide, not the wall-clock create_time (which is for people)
    assert is_parent(replace(parent, create_time=0.0), proc(11, 10, "c", ["c"], 99.99)) is False
    assert is_parent(replace(parent, create_time=999.0), proc(11, 10, "c", ["c"], 100.0)) is True
    assert is_parent(parent, proc(11, 12, "c", ["c"], 200.0)) is False  # another ppid
    assert is_parent(None, proc(11, 10, "c", ["c"], 200.0)) is False
    assert is_parent(proc(10, 10, "p", ["p"], 1.0), proc(10, 10, "p", ["p"], 1.0)) is False


def test_ppid_cycle_does_not_hang() -> None:
    host = make_host(
        proc(50, 51, "a", ["a"], 10.0),
        proc(51, 50, "b", ["b"], 10.0),
        proc(52, 51, "c", ["c"], 11.0),
        proc(53, 53, "self", ["self"], 10.0),
    )
    with deadline(2):
        assert [p.pid for p in host.descendants(50)] == [51, 52]
        assert [p.pid for p in host.descendants(51)] == [50, 52]
        assert host.descendants(53) == []
        build(host)


def test_ppid_cycle_under_a_shim_does_not_hang() -> None:
    host = make_host(
        proc(1, 0, "systemd", ["/sbin/init"], 1.0),
        proc(900, 1, "containerd-shim", shim_cmd(ID_C, SOCK), 10.0),
        proc(910, 900, "sh", ["sh"], 11.0),
        proc(911, 912, "x", ["x"], 12.0),
        proc(912, 911, "y", ["y"], 12.0),
    )
    with deadline(2):
        topo = build(host)
    assert roles(topo.orphans[0]) == [(910, 900, "init")]


# -- finding init ----------------------------------------------------------------------------


def _exec_first_host() -> Host:
    """A shim whose exec child is older than (and listed before) its init."""
    return make_host(
        proc(1, 0, "systemd", ["/sbin/init"], 1.0),
        proc(500, 1, "containerd", ["containerd"], 5.0),
        proc(
            900, 1, "containerd-shim", shim_cmd(ID_C, address="/run/containerd/containerd.sock"), 9
        ),
        proc(905, 900, "sh", ["sh", "-c", "exec sleep 5"], 10.0),
        proc(910, 900, "postgres", ["postgres", "-D", "/data"], 11.0),
        proc(911, 910, "postgres", ["postgres: checkpointer"], 12.0),
    )


def test_init_comes_from_init_pid_not_from_child_order() -> None:
    host = _exec_first_host()
    host.listeners = {500: {1: "/run/containerd/containerd.sock"}}
    host.cwd = {900: bundle(ID_C)}
    host.files = {f"{bundle(ID_C)}/init.pid": "910"}
    topo = build(host)
    c = by_id(topo)[ID_C]
    assert c.init_pid == 910
    assert roles(c) == [(910, 900, "init"), (911, 910, "child"), (905, 900, "exec")]


def test_init_from_runc_state_json() -> None:
    host = _exec_first_host()
    host.listeners = {500: {1: "/run/containerd/containerd.sock"}}
    host.files = {f"/run/docker/runtime-runc/moby/{ID_C}/state.json": '{"init_process_pid": 910}'}
    assert by_id(build(host))[ID_C].init_pid == 910


@pytest.mark.parametrize("text", ["9" * 5000, "-910", "9_10", "\u0669\u0661\u0660"])
def test_garbage_init_pid_is_ignored(text: str) -> None:
    host = _exec_first_host()
    host.listeners = {500: {1: "/run/containerd/containerd.sock"}}
    host.cwd = {900: bundle(ID_C)}
    host.files = {f"{bundle(ID_C)}/init.pid": text}
    assert by_id(build(host))[ID_C].init_pid == 905  # the oldest child, as without a file


def test_init_pid_naming_a_stranger_is_ignored() -> None:
    host = _exec_first_host()
    host.listeners = {500: {1: "/run/containerd/containerd.sock"}}
    host.cwd = {900: bundle(ID_C)}
    host.files = {f"{bundle(ID_C)}/init.pid": "1"}  # not a child of this shim
    c = by_id(build(host))[ID_C]
    assert c.init_pid == 905  # falls back to the oldest child
    assert roles(c) == [(905, 900, "init"), (910, 900, "exec"), (911, 910, "exec")]


def test_transient_runc_is_not_a_container_process() -> None:
    host = make_host(
        proc(1, 0, "systemd", ["/sbin/init"], 1.0),
        proc(900, 1, "containerd-shim", shim_cmd(ID_C, SOCK), 10.0),
        proc(901, 900, "runc", ["runc", "--root", "/run/docker/runtime-runc/moby", "exec"], 11.0),
        proc(902, 900, "runc:[2:INIT]", ["runc", "init"], 11.5),
        proc(910, 900, "nginx", ["nginx"], 12.0),
        proc(920, 900, "sh", ["sh"], 13.0),
    )
    c = build(host).orphans[0]
    assert c.init_pid == 910
    assert roles(c) == [(910, 900, "init"), (920, 900, "exec")]


def test_a_fork_of_the_shim_before_it_execs_runc_is_not_a_container_process() -> None:
    """To run runc the shim forks; until the exec the child is a copy of the shim, in the
    shim's cgroup (the churn test caught a walk that called it a `docker exec`)."""
    host = make_host(
        proc(1, 0, "systemd", ["/sbin/init"], 1.0),
        proc(900, 1, "containerd-shim", shim_cmd(ID_C, SOCK), 10.0),
        proc(905, 900, "containerd-shim", shim_cmd(ID_C, SOCK), 10.5),
        proc(910, 900, "nginx", ["nginx"], 12.0),
        proc(915, 900, "containerd-shim", shim_cmd(ID_C, SOCK), 12.5),
    )
    c = build(host).orphans[0]
    assert c.init_pid == 910
    assert roles(c) == [(910, 900, "init")]


def test_transient_and_zombie_shims_are_not_containers() -> None:
    host = standard_host()
    start = [*shim_cmd(ID_C, SOCK), "start"]
    host.procs[960] = proc(960, 500, "containerd-shim", start, 1060.0)
    host.procs[961] = proc(
        961, 1, "containerd-shim", shim_cmd("d" * 64, SOCK), 1061.0, status="zombie"
    )
    host.procs[962] = proc(962, 1, "containerd-shim", [], 1062.0, status="zombie")
    topo = build(host)
    assert sorted(c.id for c in topo.containers()) == [ID_A, ID_B]


def test_program_whose_name_starts_with_runc_is_a_container_process() -> None:
    host = make_host(
        proc(1, 0, "systemd", ["/sbin/init"], 1.0),
        proc(900, 1, "containerd-shim", shim_cmd(ID_C, SOCK), 10.0),
        proc(910, 900, "runcache", ["/app/runcache", "--port", "80"], 12.0),
    )
    c = build(host).orphans[0]
    assert c.init_pid == 910
    assert roles(c) == [(910, 900, "init")]


# -- JSON ------------------------------------------------------------------------------------


def test_json_round_trip(topo: Topology) -> None:
    doc = schemas.validate(topo.to_json())
    assert doc["schema"] == SCHEMA
    wire = json.loads(json.dumps(doc))
    again = from_json(wire).to_json()
    assert again == doc
    assert json.dumps(again, sort_keys=True) == json.dumps(doc, sort_keys=True)
    engine = wire["engines"][0]
    assert engine["edges"][0] == {
        "from": 600,
        "to": 500,
        "kind": "socket",
        "via": f"{SOCK} (--containerd, listener)",
    }
    assert {e["kind"] for e in engine["edges"]} == {
        "socket",
        "shim-address",
        "reparented",
        "parent",
    }
    assert doc["host"]["taken_at"] == "2023-11-14T22:13:20+00:00"


def test_json_round_trip_with_orphans_and_notes() -> None:
    host = standard_host(with_dockerd=False)
    host.procs[900] = proc(900, 1, "containerd-shim", shim_cmd(ID_C, address="/gone"), 1040.0)
    host.procs[910] = proc(910, 900, "sleep", ["sleep"], 1041.0, NS_B)
    topo = build(host)
    assert topo.orphans and topo.engines[0].notes
    doc = schemas.validate(topo.to_json())
    assert from_json(json.loads(json.dumps(doc))).to_json() == doc


@pytest.mark.parametrize(
    "doc",
    [
        {"foo": 1},
        [],
        None,
        "dtrace-tree/show/1",
        {"schema": "dtrace-tree/show/3", "engines": []},
        {"schema": SCHEMA},  # no engines
        {"schema": SCHEMA, "engines": None},
        {"schema": SCHEMA, "engines": ["x"]},
        {"schema": SCHEMA_1, "engines": [{"dockerd": {"pid": 1}}]},
        {"schema": SCHEMA, "engines": [{"runtime": "docker", "daemons": [{"pid": 1}]}]},
        {"schema": SCHEMA, "engines": [{"runtime": "docker", "daemons": [{"role": "x"}]}]},
        {"schema": SCHEMA, "engines": [{"daemons": []}]},  # no runtime
        {"schema": SCHEMA, "engines": [{"runtime": "podman", "owner": -1}]},
        {"schema": SCHEMA, "engines": [{"runtime": "docker", "edges": [{"from": 1}]}]},
        {"schema": SCHEMA, "engines": [], "orphans": [{"id": "x"}]},
        {"schema": SCHEMA, "engines": [], "orphans": [{"id": "x", "state": "s", "pod": "p"}]},
        {
            "schema": SCHEMA,
            "engines": [],
            "orphans": [{"id": "x", "state": "running", "monitor": {"pid": "1"}}],
        },
        {
            "schema": SCHEMA,
            "engines": [],
            "orphans": [{"id": "x", "state": "running", "namespaces": {"pid": "n"}}],
        },
    ],
)
def test_from_json_rejects_what_is_not_a_snapshot(doc: object) -> None:
    with pytest.raises(SnapshotFormatError):
        from_json(doc)


def test_from_json_minimal() -> None:
    topo = from_json({"schema": SCHEMA_1, "engines": [{"dockerd": None}]})
    assert topo.engines == [Engine(runtime="containerd", daemons=[])]  # no dockerd, no daemon
    assert topo.orphans == [] and topo.notes == [] and topo.host == {}
    topo = from_json({"schema": SCHEMA, "engines": [{"runtime": "podman"}]})
    assert topo.engines == [Engine(runtime="podman", daemons=[])]
    # an edge is written with its via, empty when not given
    bare = Topology(engines=[Engine(runtime="containerd", edges=[Edge(1, 2, "parent")])])
    edges = bare.to_json()["engines"][0]["edges"]
    assert edges == [{"from": 1, "to": 2, "kind": "parent", "via": ""}]


def test_garbage_init_pid_file_falls_back_to_the_oldest_child() -> None:
    host = _exec_first_host()
    host.listeners = {500: {1: "/run/containerd/containerd.sock"}}
    host.cwd = {900: bundle(ID_C)}
    host.files = {f"{bundle(ID_C)}/init.pid": "\u00b2"}
    assert by_id(build(host))[ID_C].init_pid == 905


def test_a_connected_peer_is_evidence_of_the_socket_link() -> None:
    host = standard_host()
    host.sockets = {600: frozenset({21, 31}), 500: frozenset({11, 12, 41})}
    host.peers = {31: 41, 41: 31}
    (engine,) = build(host).engines
    containerd = engine.daemon(Containerd)
    assert containerd is not None and containerd.connected is True
    (edge,) = [e for e in engine.edges if e.kind == "socket"]
    assert edge.via == f"{SOCK} (--containerd, listener, connected)"


def test_no_peer_table_leaves_connected_unknown_and_a_stranger_is_no_peer() -> None:
    host = standard_host()
    (engine,) = build(host).engines
    containerd = engine.daemon(Containerd)
    assert containerd is not None and containerd.connected is None
    host.sockets = {600: frozenset({31}), 500: frozenset({11})}
    host.peers = {31: 99}  # connected, but to a process that is not this containerd
    host.reset()
    (engine,) = build(host).engines
    containerd = engine.daemon(Containerd)
    assert containerd is not None and containerd.connected is False
