"""Two dockerds on one containerd, both in namespace moby: each container is the dockerd's that
made it, by evidence (the runtime root under that dockerd's exec root), never by (socket,
namespace), and stays so while either dockerd is down."""

from __future__ import annotations

import json

from tests.support.hosts import bundle, make_host, managed_containerd, proc, shim_cmd
from tracer.model.topology import Dockerd, Edge, Engine
from tracer.runtimes import build
from tracer.snapshot.host import Host

SOCK = "/run/containerd/containerd.sock"
ID_A, ID_B, ID_C = "a" * 64, "b" * 64, "c" * 64
ROOTS = {600: "/run/docker", 601: "/run/docker-2"}  # each dockerd's exec root


def host(*dockerds: int, options: bool = True, states: bool = False) -> Host:
    """dockerd 600 made A and B, dockerd 601 made C; all on containerd 500, namespace moby."""
    procs = [proc(1, 0, "systemd", ["/sbin/init"], 1.0),
             proc(500, 1, "containerd", ["/usr/bin/containerd"], 10.0)]  # fmt: skip
    for pid in dockerds:
        argv = ["/usr/sbin/dockerd", "-H", f"unix://{ROOTS[pid]}.sock", "--exec-root",
                ROOTS[pid], "--containerd", SOCK]  # fmt: skip
        procs.append(proc(pid, 1, "dockerd", argv, 11.0 + pid % 2))
    made = {ID_A: 600, ID_B: 600, ID_C: 601}
    for n, cid in enumerate(made):
        procs += [proc(700 + n, 1, "containerd-shim", shim_cmd(cid, SOCK), 20.0 + n),
                  proc(710 + n, 700 + n, "sleep", ["sleep", "1"], 21.0 + n)]  # fmt: skip
    h = make_host(*procs)
    h.listeners = {500: {11: SOCK}} | {
        pid: {20 + pid % 2: f"{ROOTS[pid]}.sock"} for pid in dockerds
    }
    h.cwd = {700 + n: bundle(cid) for n, cid in enumerate(made)}
    h.files = {f"{bundle(cid)}/init.pid": f"{710 + n}\n" for n, cid in enumerate(made)}
    if options:  # what the runc v2 shim keeps of the options dockerd gave
        h.files |= {
            f"{bundle(cid)}/options.json": json.dumps(
                {"binary_name": "runc", "root": f"{ROOTS[owner]}/runtime-runc"}
            )
            for cid, owner in made.items()
        }
    if states:  # runc's state of each container, under the runtime root of its dockerd
        for pid in dockerds:
            mine = tuple(cid for cid, owner in made.items() if owner == pid)
            h.dirs |= {ROOTS[pid]: ("containerd", "runtime-runc"),
                       f"{ROOTS[pid]}/runtime-runc/moby": mine}  # fmt: skip
    return h


def dockerd_engine(engines: list[Engine], pid: int) -> Engine:
    (engine,) = [e for e in engines if (d := e.daemon(Dockerd)) and d.pid == pid]
    return engine


def ids(engine: Engine) -> list[str]:
    return sorted(c.id for c in engine.containers)


def test_each_container_once_under_the_dockerd_whose_runtime_root_its_shim_runs_with() -> None:
    topo = build(host(600, 601))
    first, second = dockerd_engine(topo.engines, 600), dockerd_engine(topo.engines, 601)
    assert ids(first) == [ID_A, ID_B] and ids(second) == [ID_C]
    every = [c.id for e in topo.engines for c in e.containers]
    assert sorted(every) == [ID_A, ID_B, ID_C]
    # the evidence, as an edge from the dockerd to the shim
    assert Edge(
        601, 702, "runtime-root", "/run/docker-2/runtime-runc (the shim's options.json)"
    ) in (second.edges)
    assert [(x.src, x.dst) for x in first.edges if x.kind == "runtime-root"] == [
        (600, 700),
        (600, 701),
    ]


def test_runc_s_state_under_the_exec_root_is_evidence_too() -> None:
    topo = build(host(600, 601, options=False, states=True))
    second = dockerd_engine(topo.engines, 601)
    assert ids(dockerd_engine(topo.engines, 600)) == [ID_A, ID_B] and ids(second) == [ID_C]
    (edge,) = [x for x in second.edges if x.kind == "runtime-root"]
    assert edge.via == f"/run/docker-2/runtime-runc/moby/{ID_C} (runc's state)"


def test_while_a_dockerd_is_down_its_containers_are_not_the_other_one_s() -> None:
    for up, down, theirs, mine in (
        (600, 601, [ID_C], [ID_A, ID_B]),
        (601, 600, [ID_A, ID_B], [ID_C]),
    ):
        for evidence in ({"options": True}, {"options": False, "states": True}):
            topo = build(host(up, **evidence))
            assert ids(dockerd_engine(topo.engines, up)) == mine, (down, evidence)
            (rest,) = [e for e in topo.engines if e.daemon(Dockerd) is None and e.containers]
            assert rest.runtime == "containerd" and rest.namespace == "moby"
            assert ids(rest) == theirs
            assert any("the dockerd that made them is down" in n for n in rest.notes)
            assert not any("not Docker's" in n for n in rest.notes)


def test_without_evidence_a_lone_dockerd_still_takes_its_namespace_s_shims() -> None:
    """Nothing could be read (not root): (socket, namespace) is all there is, as before."""
    topo = build(host(600, options=False))
    assert ids(dockerd_engine(topo.engines, 600)) == [ID_A, ID_B, ID_C]
    assert not [x for e in topo.engines for x in e.edges if x.kind == "runtime-root"]


def test_a_rootless_dockerd_s_exec_root_is_where_its_managed_containerd_s_config_is() -> None:
    """Rootless dockerd runs with no --exec-root ($XDG_RUNTIME_DIR/docker); its shim's bundle is
    in rootlesskit's mount namespace (unreadable from the host); runc's state is readable."""
    xdg = "/run/user/1001/docker"
    sock = f"{xdg}/containerd/containerd.sock"
    h = make_host(
        proc(1, 0, "systemd", ["/sbin/init"], 1.0),
        proc(600, 1, "dockerd", ["dockerd"], 10.0),
        managed_containerd(500, 600, xdg, 11.0),
        proc(700, 1, "containerd-shim", shim_cmd(ID_A, sock), 20.0),
        proc(710, 700, "sleep", ["sleep", "1"], 21.0),
    )
    h.listeners = {500: {11: sock}, 600: {12: "/run/user/1001/docker.sock"}}
    h.cwd = {700: f"/run/.ro123/user/1001/docker/containerd/daemon/x/moby/{ID_A}"}
    h.dirs = {xdg: ("containerd", "runtime-runc"), f"{xdg}/runtime-runc/moby": (ID_A,),
              "/run/docker": ("runtime-runc",)}  # fmt: skip
    (engine,) = [e for e in build(h).engines if e.containers]
    assert ids(engine) == [ID_A] and engine.daemon(Dockerd)
    (edge,) = [x for x in engine.edges if x.kind == "runtime-root"]
    assert edge.via == f"{xdg}/runtime-runc/moby/{ID_A} (runc's state)"
