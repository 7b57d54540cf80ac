"""`cgroup` without an engine: the parsers, and every layout on recorded directory trees.

These machines run cgroup v1 with Docker's cgroupfs driver (a hybrid host: v1 controllers plus
an empty v2 hierarchy); tests/integration/test_cgroup.py checks that against the lab's engine.
cgroup v2 and the systemd driver are not here: the trees marked RECORDED below are made in the
test from the documented file names and formats (the kernel's
Documentation/admin-guide/cgroup-v2.rst "Interface Files"; Docker's engine/containers/runmetrics:
v2 cgroupfs /sys/fs/cgroup/docker/<id>, v2 systemd /sys/fs/cgroup/system.slice/docker-<id>.scope
(Docker 28/29's default on v2), v1 systemd /sys/fs/cgroup/<controller>/system.slice/
docker-<id>.scope; kubelet's systemd driver: kubepods.slice/kubepods-<qos>.slice/
kubepods-<qos>-pod<uid>.slice/cri-containerd-<id>.scope), not copied from a host.
"""

from __future__ import annotations

import io
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from tests.support.topologies import HOST_NS, running
from tests.support.trees import (
    CID,
    EXEC,
    PID,
    V1_CONTROLLERS,
    V2_LIMITED,
    V2_MOUNTS,
    Tree,
    v1_mounts,
    v2_tree,
)
from tracer.kernel import cgroupfs
from tracer.model.topology import Container, Process
from tracer.output.terminal import cgroups as render
from tracer.views import cgroups as view


def container(exec_pid: bool = True) -> Container:
    c = running(CID, "api", 4200, [PID], namespaces={**HOST_NS, "cgroup": 99})
    if exec_pid:
        c.processes.append(Process(EXEC, 4200, ["sh"], "exec", "sh"))
    return c


def report(tree: Tree, c: Container | None = None):
    return view.report(c or container(), tree.read(), HOST_NS)


# -- parsers -------------------------------------------------------------------------------------


def test_proc_cgroup_lines():
    got = cgroupfs.parse_proc_cgroup(
        ["12:cpu,cpuacct:/docker/x", "1:name=systemd:/a", "0::/b", "bad", "3::/c", "0:cpu:/d"]
    )
    assert [(m.hierarchy, m.controllers, m.path) for m in got] == [
        (12, ("cpu", "cpuacct"), "/docker/x"),
        (1, ("name=systemd",), "/a"),
        (0, (), "/b"),
    ]


@given(st.lists(st.text()))
def test_the_proc_cgroup_parser_is_total(lines):
    for m in cgroupfs.parse_proc_cgroup(lines):
        assert m.path.startswith("/")


@given(st.text())
def test_the_file_readers_are_total(text):
    cgroupfs.limit(text)
    cgroupfs.flat_keyed(text)
    cgroupfs.nested_keyed(text)
    cgroupfs.device_values(text)
    cgroupfs.io_service_bytes(text)
    cgroupfs.cpu_max(text)


def test_limits_and_their_no_limit_spellings():
    assert cgroupfs.limit("67108864\n") == (67108864, False)
    assert cgroupfs.limit("max\n") == (None, True)  # v2, and pids.max on v1
    assert cgroupfs.limit("-1\n") == (None, True)  # v1 cpu.cfs_quota_us
    assert cgroupfs.limit("9223372036854771712\n") == (None, True)  # v1 PAGE_COUNTER_MAX
    assert cgroupfs.limit("") == (None, False) and cgroupfs.limit(None) == (None, False)
    assert cgroupfs.cpu_max("50000 100000\n") == (50000, 100000, False)
    assert cgroupfs.cpu_max("max 100000\n") == (None, 100000, True)


def test_a_hierarchy_mounted_from_a_cgroup_below_its_root():
    """Inside a container (or a cgroup namespace) the mount's root is not "/"."""
    m = cgroupfs.Membership(4, ("memory",), "/docker/abc/inner")
    h = cgroupfs.Hierarchy(1, frozenset({"memory"}), "/sys/fs/cgroup/memory", "/docker/abc")
    assert cgroupfs.directory(m, [h]) == "/sys/fs/cgroup/memory/inner"
    assert cgroupfs.directory(cgroupfs.Membership(4, ("memory",), "/elsewhere"), [h]) is None


# -- v1, cgroupfs: the layout of these machines ---------------------------------------------------


def v1_tree(tmp_path: Path, parent: str = "/docker", swap: bool = True) -> Tree:
    name = f"docker-{CID}.scope" if parent.endswith(".slice") else CID
    path = f"{parent}/{name}"
    lines = [f"{n + 1}:{c}:{path}" for n, c in enumerate(V1_CONTROLLERS)]
    tree = Tree(tmp_path, v1_mounts(), [*lines, f"9:name=systemd:{path}"])
    base = "/sys/fs/cgroup"
    memory = {"memory__limit_in_bytes": "67108864\n", "memory__usage_in_bytes": "495616\n",
              "memory__soft_limit_in_bytes": "9223372036854771712\n"}  # fmt: skip
    if swap:
        memory["memory__memsw__limit_in_bytes"] = "134217728\n"
    tree.files(f"{base}/memory{path}", **memory)
    tree.files(f"{base}/cpu,cpuacct{path}", cpu__cfs_quota_us="50000\n",
               cpu__cfs_period_us="100000\n", cpu__shares="1024\n", cpuacct__usage="47123456\n",
               cpu__stat="nr_periods 7\nnr_throttled 2\nthrottled_time 3000000\n")  # fmt: skip
    tree.files(f"{base}/cpuset{path}", cpuset__cpus="0-1\n")
    tree.files(f"{base}/cpuset", cpuset__cpus="0-1\n")
    tree.files(f"{base}/pids{path}", pids__max="50\n", pids__current="2\n",
               cgroup__procs=f"{PID}\n{EXEC}\n")  # fmt: skip
    tree.files(f"{base}/blkio{path}", blkio__throttle__read_bps_device="",
               blkio__throttle__write_bps_device="", blkio__throttle__read_iops_device="",
               blkio__throttle__write_iops_device="",
               blkio__throttle__io_service_bytes_recursive="Total 0\n")  # fmt: skip
    return tree


def test_v1_cgroupfs_limits_usage_and_their_files(tmp_path):
    doc = report(v1_tree(tmp_path))
    assert (doc.version, doc.mode, doc.driver, doc.cgroupns) == (1, "legacy", "cgroupfs", "private")
    mem = f"/sys/fs/cgroup/memory/docker/{CID}"
    cpu = f"/sys/fs/cgroup/cpu,cpuacct/docker/{CID}"
    assert doc.paths["memory"] == mem and doc.paths["cpu"] == doc.paths["cpuacct"] == cpu
    assert doc.limits == {
        "memory_bytes": 67108864, "memory_swap_bytes": 134217728,
        "memory_reservation_bytes": None, "cpu_quota_us": 50000, "cpu_period_us": 100000,
        "cpus": 0.5, "cpu_shares": 1024, "cpu_weight": None, "cpuset_cpus": None, "pids_max": 50,
    }  # fmt: skip
    assert doc.usage == {
        "memory_bytes": 495616, "pids": 2, "cpu_ns": 47123456, "cpu_throttled_periods": 2,
        "cpu_throttled_ns": 3000000, "io_read_bytes": None, "io_write_bytes": None,
    }  # fmt: skip
    assert doc.sources["limits.memory_bytes"] == f"{mem}/memory.limit_in_bytes"
    assert doc.sources["limits.memory_reservation_bytes"] == f"{mem}/memory.soft_limit_in_bytes"
    assert doc.why_null["limits.memory_reservation_bytes"] == "no limit"
    assert doc.why_null["limits.cpuset_cpus"] == "no limit (every CPU of the machine: 0-1)"
    assert "only on devices with a throttle rule" in doc.why_null["usage.io_read_bytes"]
    assert [(p.pid, p.role) for p in doc.processes] == [(PID, "init"), (EXEC, "exec")]
    assert doc.notes == []


def test_v1_without_swap_accounting_says_so(tmp_path):
    doc = report(v1_tree(tmp_path, swap=False))
    assert doc.limits["memory_swap_bytes"] is None
    assert "swapaccount=1" in doc.why_null["limits.memory_swap_bytes"]


def test_v1_io_is_counted_once_a_throttle_rule_is_set(tmp_path):
    tree = v1_tree(tmp_path)
    tree.files(f"/sys/fs/cgroup/blkio/docker/{CID}",
               blkio__throttle__write_bps_device="8:0 1048576\n",
               blkio__throttle__io_service_bytes_recursive="8:0 Read 4096\n8:0 Write 8192\n"
               "8:0 Sync 0\n8:0 Async 12288\n8:0 Total 12288\nTotal 12288\n")  # fmt: skip
    doc = report(tree)
    assert (doc.usage["io_read_bytes"], doc.usage["io_write_bytes"]) == (4096, 8192)
    assert [(r.device, r.read_bps, r.write_bps) for r in doc.io_limits] == [("8:0", None, 1048576)]


def test_v1_systemd_driver_recorded(tmp_path):
    """RECORDED: v1 with the systemd driver (runmetrics: .../system.slice/docker-<id>.scope)."""
    doc = report(v1_tree(tmp_path, parent="/system.slice"))
    assert doc.driver == "systemd"
    assert doc.paths["pids"] == f"/sys/fs/cgroup/pids/system.slice/docker-{CID}.scope"
    assert doc.limits["pids_max"] == 50


def test_processes_out_of_the_tree_or_out_of_the_cgroup_are_said(tmp_path):
    tree = v1_tree(tmp_path)
    tree.files(f"/sys/fs/cgroup/pids/docker/{CID}", cgroup__procs=f"{PID}\n777\n")
    tree.files(f"/sys/fs/cgroup/pids/docker/{CID}/inner", cgroup__procs="778\n")
    doc = report(tree)
    assert [(p.pid, p.role, p.cgroup) for p in doc.processes] == [
        (PID, "init", ""), (777, "other", ""), (778, "other", "inner"),
    ]  # fmt: skip
    assert any(f"pid {EXEC} (exec) is in the container's process tree but not" in n
               for n in doc.notes)  # fmt: skip
    assert any("2 process(es) in the cgroup are not in the container's process tree" in n
               for n in doc.notes)  # fmt: skip


# -- v2: RECORDED trees --------------------------------------------------------------------------


def test_v2_systemd_driver_recorded(tmp_path):
    """RECORDED: cgroup v2 (unified) with the systemd driver, Docker's default on v2:
    `docker run --memory 64m --cpus 0.5 --pids-limit 50` written as runc writes it on v2
    (memory.swap.max = --memory-swap minus --memory, cpu.max "quota period")."""
    scope = f"/system.slice/docker-{CID}.scope"
    doc = report(v2_tree(tmp_path, scope, **V2_LIMITED))
    assert (doc.version, doc.mode, doc.driver) == (2, "unified", "systemd")
    assert doc.paths == {"unified": f"/sys/fs/cgroup{scope}"}
    assert doc.limits == {
        "memory_bytes": 67108864, "memory_swap_bytes": 134217728,
        "memory_reservation_bytes": None, "cpu_quota_us": 50000, "cpu_period_us": 100000,
        "cpus": 0.5, "cpu_shares": None, "cpu_weight": 100, "cpuset_cpus": None, "pids_max": 50,
    }  # fmt: skip
    assert doc.usage == {
        "memory_bytes": 1236992, "pids": 2, "cpu_ns": 1_500_000, "cpu_throttled_periods": 2,
        "cpu_throttled_ns": 300_000, "io_read_bytes": 4097, "io_write_bytes": 8194,
    }  # fmt: skip
    assert doc.why_null["limits.cpuset_cpus"] == "no limit (the parent's CPUs: 0-3)"
    assert doc.why_null["limits.cpu_shares"].startswith("not available: cgroup v2 has cpu.weight")
    assert [(r.device, r.read_bps, r.write_bps) for r in doc.io_limits] == [("8:0", 1048576, None)]
    assert doc.sources["limits.cpus"] == f"/sys/fs/cgroup{scope}/cpu.max"
    assert [(p.pid, p.role) for p in doc.processes] == [(PID, "init"), (EXEC, "exec")]


def test_v2_kubelet_systemd_pod_recorded(tmp_path):
    """RECORDED: a Kubernetes container on cgroup v2 with kubelet's systemd driver and
    containerd's CRI (kubelet's cgroup names: kubepods.slice, the QoS class's slice, the pod's
    slice with the pod UID's dashes as underscores, then containerd's cri-containerd-<id>.scope;
    containerd's SystemdCgroup = true). The container's own limits are in its scope; the
    pod's slice above it holds the pod's."""
    pod = "kubepods-burstable-pod0f3c2a5e_8c1d_4d6e_9b7a_2f1e3d4c5b6a.slice"
    scope = f"/kubepods.slice/kubepods-burstable.slice/{pod}/cri-containerd-{CID}.scope"
    tree = v2_tree(tmp_path, scope, **V2_LIMITED)
    tree.files(f"/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/{pod}",
               memory__max="134217728\n", cpu__max="100000 100000\n")  # fmt: skip
    doc = report(tree)
    assert (doc.version, doc.mode, doc.driver) == (2, "unified", "systemd")
    assert doc.paths == {"unified": f"/sys/fs/cgroup{scope}"}
    assert doc.limits["memory_bytes"] == 67108864 and doc.limits["cpus"] == 0.5
    assert doc.sources["limits.memory_bytes"] == f"/sys/fs/cgroup{scope}/memory.max"
    assert [(p.pid, p.role) for p in doc.processes] == [(PID, "init"), (EXEC, "exec")]


def test_v2_cgroupfs_unlimited_recorded(tmp_path):
    """RECORDED: cgroup v2 with the cgroupfs driver and no limit set: "max" everywhere."""
    files = {**V2_LIMITED, "memory__max": "max\n", "memory__swap__max": "max\n",
             "cpu__max": "max 100000\n", "pids__max": "max\n", "io__max": ""}  # fmt: skip
    doc = report(v2_tree(tmp_path, f"/docker/{CID}", **files))
    assert doc.driver == "cgroupfs"
    for field in ("memory_bytes", "memory_swap_bytes", "cpu_quota_us", "cpus", "pids_max"):
        assert doc.limits[field] is None and doc.why_null[f"limits.{field}"] == "no limit", field
    assert doc.io_limits == []


def test_v2_controller_not_enabled_is_not_called_unlimited(tmp_path):
    """RECORDED: memory not in cgroup.controllers (the parent's subtree_control lacks it)."""
    files = {k: v for k, v in V2_LIMITED.items() if not k.startswith("memory")}
    files["cgroup__controllers"] = "cpu pids\n"
    doc = report(v2_tree(tmp_path, f"/docker/{CID}", **files))
    assert doc.limits["memory_bytes"] is None
    assert "memory controller is not enabled" in doc.why_null["limits.memory_bytes"]
    assert doc.why_null["limits.memory_bytes"] != "no limit"


def test_a_process_whose_cgroup_cannot_be_read(tmp_path):
    tree = Tree(tmp_path, V2_MOUNTS, [])
    (tmp_path / "proc" / str(PID) / "cgroup").unlink()
    found = tree.read()
    assert found.members == [] and "no such file" in found.errors[0]


def test_the_terminal_view_character_for_character(tmp_path):
    scope = f"/system.slice/docker-{CID}.scope"
    doc = report(v2_tree(tmp_path, scope, **V2_LIMITED))
    out = io.StringIO()
    Console(color_system=None, width=120, file=out).print(render.cgroup(doc))
    lines = [line.rstrip() for line in out.getvalue().splitlines()]
    assert lines == EXPECTED_V2


EXPECTED_V2 = [
    f"api {CID[:12]}  init pid {PID}",
    "cgroup v2 (unified)  driver systemd  cgroupns private",
    f"unified  /sys/fs/cgroup/system.slice/docker-{CID}.scope",
    "limits                   value                                                     from",
    "─" * 111,
    "memory                   64.0 MiB (67108864)                                       memory.max",
    "memory + swap            128.0 MiB (134217728)  Docker's default: twice --memory   "
    "memory.swap.max + memory.max",
    "memory reservation       no limit                                                  memory.low",
    "cpus (quota / period)    0.5 (50000 / 100000 us)                                   cpu.max",
    "cpu weight               100                                                       cpu.weight",
    "cpuset                   no limit (the parent's CPUs: 0-3)                         "
    "cpuset.cpus",
    "pids                     50                                                        pids.max",
    "io limits: device   read bps   write bps   read iops   write iops",
    "─" * 65,
    "8:0                 1048576    -           -           -",
    "usage                    value               from",
    "─" * 59,
    "memory                   1.2 MiB (1236992)   memory.current",
    "pids                     2                   pids.current",
    "cpu time                 1.5 ms              cpu.stat",
    "cpu throttled periods    2                   cpu.stat",
    "cpu throttled time       0.3 ms              cpu.stat",
    "io read                  4.0 KiB (4097)      io.stat",
    "io written               8.0 KiB (8194)      io.stat",
    "processes in the cgroup  (docker exec joins the container's cgroup as well as its namespaces)",
    f"{PID}    init    init",
    f"{EXEC}    exec    sh",
]
