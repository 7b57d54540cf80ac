"""tracer.views.namespaces on made-up topologies: isolated / host / shared, and the flag that
shared it."""

from __future__ import annotations

from tests.support import schemas
from tests.support.topologies import dockerd, engine, running
from tracer.model.topology import Container, Process, Topology
from tracer.runtimes.moby.namespaces import USUALLY_SHARED, sharing_flags
from tracer.views import namespaces as nsview

HOST = {"mnt": 1, "uts": 2, "ipc": 3, "pid": 4, "net": 5, "user": 6, "cgroup": 7, "time": 8}


def ctr(cid: str, name: str, init: int, **ns: int) -> Container:
    namespaces = {**HOST, "mnt": 100 + init, "uts": 200 + init, "ipc": 300 + init, **ns}
    return running(cid * 64, name, init - 1, [init], namespaces)


def topo(*containers: Container) -> Topology:
    return Topology(
        engines=[engine(dockerd(), containers=list(containers))],
        host={"namespaces": HOST, "namespaces_from": "pid 1"},
    )


def told_by_docker(t: Topology, host_config: dict[str, str]) -> dict[str, str]:
    """What the engine's HostConfig says shared each namespace (other containers by label)."""
    return sharing_flags(host_config, {c.id: c.label for c in t.containers()})


WEB = ctr("a", "web", 10, pid=40, net=50)
SIDE = ctr("b", "side", 20, pid=40, net=50)
HOSTNET = ctr("c", "hostnet", 30, pid=41)


def test_cells_say_own_host_or_shared():
    t = topo(WEB, SIDE, HOSTNET)
    assert nsview.cell(t, SIDE, "net", HOST) == "shared:web"
    assert nsview.cell(t, SIDE, "mnt", HOST) == "isolated"
    assert nsview.cell(t, HOSTNET, "net", HOST) == "host"
    assert nsview.cell(t, HOSTNET, "pid", HOST) == "isolated"


def test_matrix_groups_containers_sharing_a_namespace():
    doc = schemas.validate(nsview.matrix(topo(WEB, SIDE, HOSTNET)).to_json())
    shared = [(g["type"], g["inode"], g["containers"]) for g in doc["groups"] if not g["host"]]
    assert shared == [("net", 50, ["side", "web"]), ("pid", 40, ["side", "web"])]
    host_net = next(g for g in doc["groups"] if g["type"] == "net" and g["host"])
    assert host_net["containers"] == ["hostnet"]
    assert [c["name"] for c in doc["containers"]] == ["web", "side", "hostnet"]


def test_report_names_the_flag_the_engine_told():
    t = topo(WEB, SIDE)
    hc = {"NetworkMode": "container:" + "a" * 64, "PidMode": "container:" + "a" * 64,
          "IpcMode": "private", "CgroupnsMode": "host"}  # fmt: skip
    doc = nsview.container_report(t, SIDE, told_by_docker(t, hc), USUALLY_SHARED).to_json()
    schemas.validate(doc)
    by_type = {e["type"]: e for e in doc["namespaces"]}
    assert by_type["net"] == {
        "type": "net", "inode": 50, "host_inode": 5, "isolated": True,
        "shared_with": ["web"], "why": "--network container:web",
    }  # fmt: skip
    assert by_type["pid"]["why"] == "--pid container:web"
    assert by_type["ipc"]["why"] is None and by_type["ipc"]["isolated"] is True
    assert by_type["cgroup"]["why"] == "cgroupns mode host (Docker's default on cgroup v1)"
    assert "userns-remap" in by_type["user"]["why"]


def test_without_the_engine_shared_namespaces_are_still_explained():
    report = nsview.container_report(topo(WEB, SIDE), SIDE, {}, USUALLY_SHARED)
    by_type = {e.type: e for e in report.namespaces}
    assert by_type["net"].why == "shared with web"
    assert by_type["time"].isolated is False
    assert by_type["time"].why == USUALLY_SHARED["time"]  # the runtime's default says why


def test_unknown_host_namespaces_leave_isolated_unknown():
    t = topo(WEB)
    t.host = {}
    report = nsview.container_report(t, WEB)
    assert {e.isolated for e in report.namespaces} == {None}


def test_an_exec_process_in_other_namespaces_is_flagged():
    intruder = Process(
        pid=99, ppid=9, cmdline=["sh"], role="exec", namespaces={**WEB.namespaces, "mnt": 1}
    )
    c = ctr("d", "d", 60)
    c.processes.append(intruder)
    report = nsview.container_report(topo(c), c)
    assert [p.same_as_init for p in report.processes] == [True, False]
