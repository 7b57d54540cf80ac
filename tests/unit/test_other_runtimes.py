"""podman, bare containerd and CRI pods on made-up hosts (tracer.runtimes.build), with the
bundles a real containerd wrote for a real pod (tests/unit/data/cri-bundles, recorded from the
lab with tests/support/cri.py); schema 2 out and in; the trees each runtime draws; trace's roles."""

from __future__ import annotations

import io
import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from tests.support.hosts import SOCK, bundle, make_host, proc, shim_cmd
from tests.support.topologies import DATA, triples
from tracer.model.show_json import SCHEMA, from_json
from tracer.model.topology import CONMON, Topology
from tracer.output.diagram.architecture import architecture
from tracer.output.terminal import tree
from tracer.runtimes import build
from tracer.runtimes.podman import parse_conmon, store_of
from tracer.snapshot.host import Host
from tracer.views.lives import Image, runc_args
from tracer.views.roles import _by_argv, engine_program

STORE = "/var/lib/containers/storage"
ID_P = "16e175de7922" + "a" * 52
ID_Q = "32f2638358c2" + "b" * 52


def conmon_cmd(cid: str, name: str, store: str = STORE, exec_: bool = False) -> list[str]:
    """conmon's argv as podman 4.3 writes it (observed on the lab; docs/CONTAINERS.md §5)."""
    userdata = f"{store}/overlay-containers/{cid}/userdata"
    run = f"/run/containers/storage/overlay-containers/{cid}/userdata"
    argv = ["/usr/bin/conmon", "--api-version", "1", "-c", cid, "-u", cid, "-r", "/usr/bin/runc",
            "-b", userdata, "-p", f"{run}/pidfile", "-n", name, "--exit-dir", "/run/libpod/exits",
            "--full-attach", "-l", f"k8s-file:{userdata}/ctr.log", "--log-level", "warning",
            "--runtime-arg", "--log-format=json", "--conmon-pidfile", f"{run}/conmon.pid",
            "--exit-command", "/usr/bin/podman", "--exit-command-arg", "--root",
            "--exit-command-arg", store, "--exit-command-arg", "--runtime",
            "--exit-command-arg", "runc", "--exit-command-arg", "container",
            "--exit-command-arg", "cleanup", "--exit-command-arg", cid]  # fmt: skip
    return [*argv, "-e", "--exec-process-spec", "/tmp/spec"] if exec_ else argv


def podman_host(uid: int = 0, store: str = STORE) -> Host:
    run = f"/run/containers/storage/overlay-containers/{ID_P}/userdata"
    procs = [
        proc(1, 0, "init", ["/sbin/init"], 1.0),
        proc(300, 1, "conmon", conmon_cmd(ID_P, "web", store), 100.0, uid=uid),
        proc(310, 300, "sh", ["sh", "-c", "sleep 1 & wait"], 100.5, ns={"mnt": 9, "pid": 8}),
        proc(311, 310, "sleep", ["sleep", "1"], 100.6, ns={"mnt": 9, "pid": 8}),
        proc(305, 300, "runc", ["/usr/bin/runc", "start", ID_P], 100.4),  # transient
        proc(400, 1, "conmon", conmon_cmd(ID_P, "web", store, exec_=True), 200.0, uid=uid),
        proc(410, 400, "top", ["top"], 200.5, ns={"mnt": 9, "pid": 8}),
    ]
    listing = [
        {"id": ID_P, "names": ["web"], "metadata": json.dumps({"image-name": "localhost/bb:1"})},
        {"id": ID_Q, "names": ["old"], "metadata": json.dumps({"image-name": "localhost/bb:1"})},
    ]
    host = make_host(*procs)
    host.files = {
        f"{run}/pidfile": "310",
        f"{store}/overlay-containers/containers.json": json.dumps(listing),
    }
    return host


def test_conmon_s_argv_names_the_container_and_its_store() -> None:
    args = parse_conmon(conmon_cmd(ID_P, "web"))
    assert args is not None
    assert (args.id, args.name, args.store, args.driver) == (ID_P, "web", STORE, "overlay")
    assert args.runtime == "/usr/bin/runc" and not args.exec  # not the exit command's --runtime
    assert parse_conmon(conmon_cmd(ID_P, "web", exec_=True)).exec  # type: ignore[union-attr]
    assert parse_conmon(["/usr/bin/conmon", "--version"]) is None
    assert parse_conmon(["/usr/bin/containerd-shim-runc-v2", "-c", "x"]) is None
    assert parse_conmon(["conmon", "--cid=abc", "-n"]).id == "abc"  # type: ignore[union-attr]


@given(st.lists(st.text(max_size=12), max_size=12))
def test_any_conmon_argv_parses_or_is_none_never_raises(rest: list[str]) -> None:
    parsed = parse_conmon(["conmon", *rest])
    assert parsed is None or isinstance(parsed.id, str)


def test_podman_is_an_engine_without_a_daemon() -> None:
    topo = build(podman_host())
    (engine,) = topo.engines
    assert engine.runtime == "podman" and engine.daemons == [] and store_of(engine) == STORE
    assert engine.title == f"podman {STORE}"
    web, old = engine.containers
    assert (web.name, web.image, web.init_pid, web.shim_pid) == ("web", "localhost/bb:1", 310, None)
    assert web.monitor is not None and web.monitor.kind == CONMON and web.monitor.pid == 300
    assert web.monitor.reparented and web.shim is None
    # init and its child; the runc start is not the container's; podman exec's own conmon's
    # child is an exec process of the same container
    assert [(p.pid, p.role) for p in web.processes] == [(310, "init"), (311, "child"),
                                                        (410, "exec")]  # fmt: skip
    assert (old.name, old.state, old.monitor, old.init_pid) == ("old", "not running", None, None)
    edges = set(triples(engine))
    assert {(1, 300, "reparented"), (300, 310, "parent"), (1, 400, "reparented")} <= edges


def test_podman_s_store_unread_says_so_and_keeps_the_containers() -> None:
    host = podman_host()
    del host.files[f"{STORE}/overlay-containers/containers.json"]
    (engine,) = build(host).engines
    assert [c.name for c in engine.containers] == ["web"] and engine.containers[0].image is None
    assert any("could not be read: images and stopped containers unknown" in n
               for n in engine.notes)  # fmt: skip


def test_rootless_podman_names_its_user_namespace_and_pause_process() -> None:
    home = "/home/u/.local/share/containers/storage"
    host = podman_host(uid=1000, store=home)
    host.procs[250] = proc(250, 1, "catatonit", ["catatonit", "-P"], 50.0, uid=1000,
                           ns={"user": 4026532999})  # fmt: skip
    (engine,) = build(host).engines
    assert engine.owner == 1000 and engine.title == f"podman {home} (uid 1000)"
    assert [c.name for c in engine.containers] == ["web", "old"]
    (note,) = [n for n in engine.notes if n.startswith("rootless")]
    assert "user namespace 4026532999, held by its pause process 250" in note


def crio_conmon_cmd(cid: str) -> list[str]:
    """conmon's argv as CRI-O writes it (internal/oci/runtime_oci.go; docs/CONTAINERS.md §5):
    the same containers/storage layout as podman's, and no exit command."""
    userdata = f"/run/containers/storage/overlay-containers/{cid}/userdata"
    return ["/usr/bin/conmon", "-b", userdata, "-c", cid, "--exit-dir", "/var/run/crio/exits",
            "-l", f"/var/log/pods/x/{cid}.log", "--log-level", "info", "-n", f"k8s_{cid[:6]}",
            "-P", f"{userdata}/conmon-pidfile", "-p", f"{userdata}/pidfile", "--persist-dir",
            f"/var/lib/containers/storage/overlay-containers/{cid}/userdata", "-r",
            "/usr/bin/runc", "--runtime-arg", "--root=/run/runc", "--socket-dir-path",
            "/var/run/crio", "--syslog", "-u", cid, "-s"]  # fmt: skip


def test_podman_takes_only_the_conmons_it_started_not_cri_o_s() -> None:
    host = podman_host()
    crio = "c0" * 32
    host.procs[900] = proc(900, 1, "conmon", crio_conmon_cmd(crio), 300.0)
    host.procs[910] = proc(910, 900, "pause", ["/pause"], 300.5)
    exec_ = [*crio_conmon_cmd(crio), "-e", "--exec-process-spec", "/tmp/spec"]  # crictl exec
    host.procs[950] = proc(950, 1, "conmon", exec_, 301.0)
    topo = build(host)
    (engine,) = topo.engines
    assert [c.name for c in engine.containers] == ["web", "old"]
    pids = {m.pid for c in topo.containers() if (m := c.monitor)}
    assert 900 not in pids and {p.pid for c in topo.containers() for p in c.processes} >= {410}
    (note,) = [n for n in topo.notes if "conmon" in n]
    assert "2 conmon processes that podman did not start" in note and "pids 900, 950" in note


# -- containerd namespaces --------------------------------------------------------------------


ID_D = "d0" * 32


def test_ctr_in_another_namespace_of_docker_s_containerd_is_an_engine_of_its_own() -> None:
    procs = [
        proc(1, 0, "init", ["/sbin/init"], 1.0),
        proc(500, 1, "containerd", ["containerd"], 10.0),
        proc(600, 1, "dockerd", ["dockerd", "--containerd", SOCK], 11.0),
        proc(700, 1, "containerd-shim", shim_cmd(ID_D), 20.0),
        proc(710, 700, "sleep", ["sleep", "1"], 20.5),
        proc(800, 1, "containerd-shim", shim_cmd("web-1", namespace="default"), 30.0),
        proc(810, 800, "sleep", ["sleep", "2"], 30.5),
    ]
    host = make_host(*procs)
    host.listeners = {500: {11: SOCK}}
    host.cwd = {700: bundle(ID_D), 800: bundle("web-1", "default")}
    host.files = {
        f"{bundle(ID_D)}/init.pid": "710",
        f"{bundle('web-1', 'default')}/init.pid": "810",
    }
    topo = build(host)
    docker, ctr = sorted(topo.engines, key=lambda e: e.runtime)[::-1]
    assert docker.runtime == "docker" and [c.id for c in docker.containers] == [ID_D]
    assert ctr.runtime == "containerd" and ctr.namespace == "default"
    assert ctr.title == f"{SOCK} [default]" and ctr.daemons[0].pid == 500
    (web,) = ctr.containers
    assert (web.id, web.name, web.init_pid) == ("web-1", "web-1", 810)  # ctr: the id is the name
    assert any("also a Docker engine's" in n for n in ctr.notes)


# -- CRI: the bundles a real containerd wrote for a real pod ------------------------------------


BUNDLES = DATA / "cri-bundles"
TASKS = "/run/k8s/io.containerd.runtime.v2.task/k8s.io"


def cri_host() -> tuple[Host, str, dict[str, int], dict[str, dict[str, str]]]:
    """A containerd, one pod shim and the pod's three inits (their PIDs as the recorded
    init.pid files say), with the recorded bundles laid out as containerd lays them out."""
    ids = sorted(p.name for p in BUNDLES.iterdir())
    annotations = {i: json.loads((BUNDLES / i / "config.json").read_text())["annotations"]
                   for i in ids}  # fmt: skip
    (sandbox,) = [i for i in ids if annotations[i]["io.kubernetes.cri.container-type"] == "sandbox"]
    procs = [
        proc(1, 0, "init", ["/sbin/init"], 1.0),
        proc(500, 1, "containerd", ["containerd", "--address", SOCK], 10.0),
        proc(900, 1, "containerd-shim", shim_cmd(sandbox, namespace="k8s.io"), 20.0),
    ]
    pid_of = {i: int((BUNDLES / i / "init.pid").read_text()) for i in ids}
    for k, i in enumerate(sorted(ids, key=pid_of.__getitem__)):
        ns = {"mnt": 100 + k, "ipc": 7, "pid": 8}
        procs.append(proc(pid_of[i], 900, "sleep", ["/bin/sleep", "1"], 21.0 + k, ns=ns))
    host = make_host(*procs)
    host.listeners = {500: {11: SOCK}}
    host.cwd = {900: f"{TASKS}/{sandbox}"}
    host.dirs = {TASKS: tuple(ids)}
    host.files = {f"{TASKS}/{i}/{f}": (BUNDLES / i / f).read_text()
                  for i in ids for f in ("config.json", "init.pid")}  # fmt: skip
    return host, sandbox, pid_of, annotations


def test_a_pod_s_shim_holds_its_sandbox_and_containers() -> None:
    host, sandbox, pid_of, annotations = cri_host()
    (engine,) = build(host).engines
    assert engine.runtime == "cri" and engine.namespace == "k8s.io"
    first, *rest = engine.containers
    assert first.id == sandbox and first.pod is not None and first.pod.sandbox
    assert first.name == annotations[sandbox]["io.kubernetes.cri.sandbox-name"] == "rt-pod"
    assert [c.name for c in rest] == ["rt-app", "rt-side"]
    for c in engine.containers:
        assert c.init_pid == pid_of[c.id] and c.shim_pid == 900 and c.monitor is not None
        assert c.pod is not None and (c.pod.id, c.pod.name, c.pod.namespace) == (
            sandbox, "rt-pod", "rt-ns")  # fmt: skip
        assert [p.role for p in c.processes] == ["init"]
    assert {c.image for c in rest} == {"docker.io/dtrace-lab/busybox:latest"}
    edges = set(triples(engine))
    assert (900, 500, "shim-address") in edges and (1, 900, "reparented") in edges
    assert any("no kubelet runs" in n for n in engine.notes)


def test_a_pod_with_kubelet_has_it_above_containerd() -> None:
    host, *_ = cri_host()
    host.procs[450] = proc(450, 1, "kubelet", ["kubelet", "--container-runtime-endpoint",
                                                f"unix://{SOCK}"], 5.0)  # fmt: skip
    host.sockets = {450: frozenset({61}), 500: frozenset({11, 62})}
    host.peers = {61: 62, 62: 61}
    (engine,) = build(host).engines
    assert [d.ROLE for d in engine.daemons] == ["kubelet", "containerd"]
    assert (450, 500, "socket") in triples(engine)
    assert tree_text(Topology(engines=[engine])).startswith(
        "kubelet 450  [connected]\n├── containerd 500"
    )


def test_pod_bundles_unread_leave_one_container_per_shim_never_none() -> None:
    host, sandbox, *_ = cri_host()
    host.files = {}  # not root: the bundles could not be read
    (engine,) = build(host).engines
    assert engine.runtime == "containerd" and [c.id for c in engine.containers] == [sandbox]
    assert len(engine.containers[0].processes) == 3  # all there, as init and exec processes


# -- schema 2, and the trees ---------------------------------------------------------------


ALL = json.loads((DATA / "all-runtimes-snapshot.json").read_text())


def tree_text(topo: Topology) -> str:
    out = io.StringIO()
    Console(color_system=None, width=160, file=out).print(tree.topology(topo))
    return out.getvalue()


def test_the_recorded_host_of_every_runtime_round_trips() -> None:
    assert ALL["schema"] == SCHEMA
    topo = from_json(ALL)
    assert {e.runtime for e in topo.engines} == {"docker", "podman", "containerd", "cri"}
    assert topo.to_json() == ALL


def test_each_runtime_draws_its_own_chain() -> None:
    text = tree_text(from_json(ALL))
    lines = text.splitlines()
    assert "dockerd not running" not in text
    assert any(
        line.startswith("podman  no daemon  storage /var/lib/dtrace-lab/podman") for line in lines
    )
    assert any(line.startswith("├── conmon ") and "lab-pm-plain" in line for line in lines)
    assert "○ lab-pm-stopped 32f2638358c2  localhost/dtrace-lab/busybox:latest  not running" in text
    assert any(line.endswith("namespace k8s.io  CRI") for line in lines)
    assert "pod rt-ns/rt-pod  one shim for its 3 containers" in text
    assert "│   ├── sandbox rt-pod " in text
    assert any(line.endswith("namespace dtrace-lab") for line in lines)
    assert "containerd-shim 23319 [re-parented: ppid 1]  lab-ctr-exec\n" in text  # no id twice
    assert any(line.startswith("dockerd ") for line in lines)


def test_the_diagram_draws_conmon_pods_and_no_missing_dockerd() -> None:
    dot = architecture(from_json(ALL))
    assert "dockerd not running" not in dot
    assert "podman: no daemon" in dot and "[k8s.io]" in dot and "pod rt-pod" in dot
    assert "conmon" in dot and "runtime cri" in dot


def test_a_schema_1_file_is_still_read() -> None:
    doc = json.loads((DATA / "lab-snapshot.json").read_text())
    assert doc["schema"] == "dtrace-tree/show/1"
    topo = from_json(doc)
    (engine,) = topo.engines
    assert engine.runtime == "docker" and [d.ROLE for d in engine.daemons] == [
        "dockerd",
        "containerd",
    ]
    assert all(c.monitor is None or c.monitor.kind == "containerd-shim" for c in engine.containers)
    assert topo.to_json()["schema"] == SCHEMA


# -- trace's roles --------------------------------------------------------------------------


def image(argv: list[str]) -> Image:
    return Image(ts=0, cmdline=tuple(argv), comm=Path(argv[0]).name[:15])


def test_trace_roles_of_the_other_runtimes() -> None:
    assert _by_argv(image(conmon_cmd(ID_P, "web"))) == ("conmon", ID_P)
    crun = ["/usr/bin/crun", "--root", "/run/crun", "create", "--bundle", "/b", ID_P]
    assert runc_args(crun) == ("create", [ID_P])
    assert _by_argv(image(crun)) == ("runc-create", ID_P)
    for cli in ("podman", "ctr", "nerdctl", "crictl"):
        assert _by_argv(image([f"/usr/bin/{cli}", "run"])) == ("cli", None)
    assert engine_program("conmon") and engine_program("crun")
