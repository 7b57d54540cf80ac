"""`fs` and `cgroup` against the lab's real engine, every field against ground truth gathered
here independently: `docker inspect` (GraphDriver.Data, Mounts, HostConfig, SizeRw), `docker
diff`, `docker volume inspect`, the image's RootFS, and the layerdb and cgroup files read by
this test itself.

A two-layer image is built here by committing a change on the lab's base image; two containers
run it, one with a named volume, a bind mount, a tmpfs and `--memory 64m --cpus 0.5
--pids-limit 50`. Everything made is named fs-*/cg-* and removed afterwards. The test that
stops the lab's dockerd is the last one, and brings it back.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.support.cli import ROOT, one_error_line, run_as_nobody, run_cli
from tests.support.lab import chain_ids, live, remove_made
from tests.support.waiting import wait_for
from tracer.ops import daemon, lab

PATHS = lab.LabPaths()
DATA = str(PATHS.data_root)
LAYERDB = f"{DATA}/image/overlay2/layerdb"
UNIQ = f"{os.getpid():x}{int(time.time()) % 1_000_000:x}"
IMAGE = f"fs-two-layer-{UNIQ}:1"
DIFF_KIND = {0: "C", 1: "A", 2: "D"}  # the Engine API's change kinds
# overlay2's own records (layerdb, overlay2/<cache-id>): the 2023 stack's lab. The 2026 one's
# containerd image store is checked against ctr, the API and mountinfo in test_imagestore.py.
overlay2 = pytest.mark.skipif(
    PATHS.stack != "2023", reason="overlay2's layerdb; the 2026 stack's store: test_imagestore.py"
)


def fs_json(*args: str) -> dict[str, Any]:
    return json.loads(run_cli("fs", "--json", *args, check=True).stdout)


def cgroup_json(*args: str) -> dict[str, Any]:
    return json.loads(run_cli("cgroup", "--json", *args, check=True).stdout)


def inspect_sized(client, cid: str) -> dict[str, Any]:
    """`docker inspect --size`: the SDK's inspect_container has no size parameter."""
    api = client.api
    return api._result(api._get(api._url("/containers/{0}/json", cid), params={"size": 1}), True)


def layerdb(rel: str) -> str:
    return Path(f"{LAYERDB}/{rel}").read_text().strip()


@dataclass
class Stack:
    a: Any  # fs-a: volume, bind, tmpfs, limits, an exec process, changes
    b: Any  # fs-b: the same image, an opaque directory
    volume: Any
    bind: Path
    shm_bind: Path  # a directory on a tmpfs (/dev/shm), bound read-only: a bind, not a tmpfs
    exec_pid: int


@pytest.fixture(scope="module")
def stack(client, tmp_path_factory):
    containers: list[Any] = []
    volumes: list[Any] = []
    bind = tmp_path_factory.mktemp("fs-bind")
    (bind / "hello.txt").write_text("from the host\n")
    shm_bind = Path(f"/dev/shm/fs-bind-{UNIQ}")
    shm_bind.mkdir()
    env = {"PATH": "/bin"}
    try:
        builder = client.containers.run(
            "dtrace-lab/busybox:latest",
            ["sh", "-c", "mkdir -p /opt/app && echo v1 > /opt/app/config && rm /bin/arp"],
            name=f"fs-build-{UNIQ}", detach=True, environment=env,
        )  # fmt: skip
        containers.append(builder)
        assert builder.wait(timeout=60)["StatusCode"] == 0
        builder.commit(repository=IMAGE.split(":")[0], tag="1")
        volume = client.volumes.create(f"fs-vol-{UNIQ}")
        volumes.append(volume)
        a = client.containers.run(
            IMAGE, ["sleep", "2147483647"], name=f"fs-a-{UNIQ}", detach=True, environment=env,
            volumes={volume.name: {"bind": "/data", "mode": "rw"},
                     str(bind): {"bind": "/srv/bind", "mode": "ro"},
                     str(shm_bind): {"bind": "/bind", "mode": "ro"}},
            tmpfs={"/scratch": "size=1m"}, mem_limit="64m", nano_cpus=500_000_000, pids_limit=50,
        )  # fmt: skip
        containers.append(a)
        b = client.containers.run(
            IMAGE, ["sleep", "2147483647"], name=f"fs-b-{UNIQ}", detach=True, environment=env
        )
        containers.append(b)
        script = (
            "head -c 5000 /dev/zero > /opt/app/blob && echo v2 >> /opt/app/config && "
            "rm /bin/arch && mkdir /newdir && echo hi > /newdir/f && echo vol > /data/v.txt"
        )
        assert a.exec_run(["sh", "-c", script]).exit_code == 0
        opaque = "rm -rf /opt/app && mkdir /opt/app && echo new > /opt/app/other"
        assert b.exec_run(["sh", "-c", opaque]).exit_code == 0
        exec_id = client.api.exec_create(a.id, ["sleep", "2147483647"])["Id"]
        client.api.exec_start(exec_id, detach=True)
        exec_pid = wait_for(lambda: client.api.exec_inspect(exec_id)["Pid"], 20, "the exec's pid")
        yield Stack(a, b, volume, bind, shm_bind, exec_pid)
    finally:
        remove_made(client, containers, IMAGE)
        for v in volumes:
            with contextlib.suppress(docker.errors.NotFound):
                v.remove(force=True)
        shm_bind.rmdir()


# -- fs ------------------------------------------------------------------------------------------


@overlay2
def test_fs_layers_match_graphdriver_layerdb_and_the_image(stack, client):
    a = stack.a
    doc = fs_json(a.name)
    truth = inspect_sized(client, a.id)
    assert doc["schema"] == "dtrace-tree/fs/1"
    assert doc["container"] == {"id": a.id, "name": a.name, "image": IMAGE, "state": "running",
                                "init_pid": truth["State"]["Pid"]}  # fmt: skip
    graph = truth["GraphDriver"]
    assert doc["driver"] == graph["Name"] == "overlay2" and doc["data_root"] == DATA
    root = doc["root"]
    assert root["upperdir"] == graph["Data"]["UpperDir"]
    assert root["workdir"] == graph["Data"]["WorkDir"]
    assert root["merged"] == graph["Data"]["MergedDir"]
    lowers = graph["Data"]["LowerDir"].split(":")
    # The mount names the short links; each resolves to the directory inspect names.
    assert [os.path.realpath(p) for p in root["lowerdir"]] == lowers
    layers = doc["layers"]
    assert [x["role"] for x in layers] == ["rw", "init", "image", "image"]
    assert [x["path"] for x in layers[1:]] == lowers
    assert layers[0]["path"] == graph["Data"]["UpperDir"]
    # layerdb, read here: the container's own record, then each layer of the image's chain.
    assert layers[0]["cache_id"] == layerdb(f"mounts/{a.id}/mount-id")
    assert layers[1]["cache_id"] == layerdb(f"mounts/{a.id}/init-id")
    assert layers[2]["chain_id"] == layerdb(f"mounts/{a.id}/parent")
    diffs = client.api.inspect_image(IMAGE)["RootFS"]["Layers"]  # base first
    assert len(diffs) == 2
    chains = chain_ids(diffs)
    images = layers[2:]
    assert [x["diff_id"] for x in images] == diffs[::-1]
    assert [x["chain_id"] for x in images] == chains[::-1]
    for x in images:
        hexa = x["chain_id"].removeprefix("sha256:")
        assert x["cache_id"] == layerdb(f"sha256/{hexa}/cache-id")
        assert x["size_bytes"] == int(layerdb(f"sha256/{hexa}/size"))
        link = Path(f"{DATA}/overlay2/{x['cache_id']}/link").read_text().strip()
        assert x["link"] == link
    # The writable layer's size is what `docker ps -s` says.
    assert layers[0]["size_bytes"] == truth["SizeRw"] > 5000
    assert layers[0]["shared_with"] == [] and layers[1]["shared_with"] == []


@overlay2
def test_changes_are_docker_diff_and_a_new_file_shows_in_size_and_changes(stack, client):
    for ctr in (stack.a, stack.b):  # b holds an opaque directory (rm -rf then mkdir)
        doc = fs_json("--changes", ctr.name)
        truth = [(DIFF_KIND[c["Kind"]], c["Path"]) for c in client.api.diff(ctr.id)]
        got = [(c["kind"], c["path"]) for c in doc["changes"]["files"]]
        # The same changes; docker lists them in directory order, dtrace-tree by path.
        assert got == sorted(got, key=lambda c: c[1].split("/")) and sorted(got) == sorted(truth)
        counts = doc["changes"]
        assert [counts["added"], counts["changed"], counts["deleted"]] == [
            sum(k == kind for k, _ in truth) for kind in "ACD"
        ]
    # b's opaque directory: what it hides is deleted, the directory itself changed.
    assert ("D", "/opt/app/config") in got and ("C", "/opt/app") in got
    before = fs_json(stack.a.name)["layers"][0]["size_bytes"]
    assert stack.a.exec_run(["sh", "-c", "head -c 3000 /dev/zero > /tmp/written"]).exit_code == 0
    doc = fs_json("--changes", stack.a.name)
    assert ("A", "/tmp/written") in [(c["kind"], c["path"]) for c in doc["changes"]["files"]]
    assert doc["layers"][0]["size_bytes"] == before + 3000
    assert doc["layers"][0]["size_bytes"] == inspect_sized(client, stack.a.id)["SizeRw"]
    text = run_cli("fs", "--changes", stack.a.name, check=True).stdout
    assert "  A /tmp/written" in text and "  D /bin/arch" in text


def _users_of_each_layer(client) -> dict[str, set[str]]:
    """chain id -> names of the containers whose image holds it, from the Engine API."""
    users: dict[str, set[str]] = {}
    for c in client.api.containers(all=True):
        image = client.api.inspect_image(c["ImageID"])
        for chain in chain_ids(image["RootFS"]["Layers"]):
            users.setdefault(chain, set()).add(c["Names"][0].lstrip("/"))
    return users


@overlay2
def test_shared_layers_are_listed_both_ways(stack, client):
    for _ in range(5):  # other tests may add containers meanwhile: take a quiet moment
        before = _users_of_each_layer(client)
        docs = {c.name: fs_json(c.name) for c in (stack.a, stack.b)}
        if _users_of_each_layer(client) == before:
            break
    else:
        pytest.fail("the lab's containers kept changing")
    for me, other in ((stack.a, stack.b), (stack.b, stack.a)):
        top, base = docs[me.name]["layers"][2:]
        assert top["shared_with"] == [other.name]  # only these two run the new image
        assert set(base["shared_with"]) == before[base["chain_id"]] - {me.name}
        assert {"lab-web", other.name} <= set(base["shared_with"])
    text = run_cli("fs", stack.a.name, check=True, env={"COLUMNS": "200"}).stdout
    assert f"1 other container: {stack.b.name}" in text


def test_mounts_match_inspect_and_volume_inspect(stack, client):
    doc = fs_json(stack.a.name)
    truth = client.api.inspect_container(stack.a.id)
    mine = {m["destination"]: m for m in doc["mounts"] if m["kind"] != "system"}
    for m in truth["Mounts"]:
        got = mine.pop(m["Destination"])
        assert got["kind"] == m["Type"]
        assert got["source"] == m["Source"]
        assert got["read_only"] is (not m["RW"])
        if m["Type"] == "volume":
            assert got["volume"] == m["Name"] == stack.volume.name
            assert got["source"] == client.api.inspect_volume(m["Name"])["Mountpoint"]
        else:
            assert m["Propagation"] == "rprivate" and got["propagation"] == "private"
            assert got["source"] == m["Source"] in (str(stack.bind), str(stack.shm_bind))
    tmpfs = mine.pop("/scratch")
    assert "/scratch" in truth["HostConfig"]["Tmpfs"] and tmpfs["kind"] == "tmpfs"
    assert tmpfs["source"] is None
    generated = {k: mine.pop(k)["source"] for k in ("/etc/resolv.conf", "/etc/hostname",
                                                    "/etc/hosts")}  # fmt: skip
    assert generated == {
        "/etc/resolv.conf": truth["ResolvConfPath"],
        "/etc/hostname": truth["HostnamePath"],
        "/etc/hosts": truth["HostsPath"],
    }
    assert mine == {}  # nothing else is the user's
    system = [m for m in doc["mounts"] if m["kind"] == "system"]
    assert {"/proc", "/dev", "/sys", "/dev/shm", "/dev/mqueue"} <= {
        m["destination"] for m in system
    }


def test_a_bind_of_a_directory_on_a_tmpfs_is_a_bind(stack, client):
    """`-v /dev/shm/x:/bind:ro`: the file system under it is a tmpfs, the mount is a bind, as
    `docker inspect` says; a --tmpfs is a tmpfs."""
    doc = fs_json(stack.a.name)
    mine = {m["destination"]: m for m in doc["mounts"]}
    truth = {m["Destination"]: m for m in client.api.inspect_container(stack.a.id)["Mounts"]}
    assert truth["/bind"]["Type"] == "bind"
    assert (mine["/bind"]["kind"], mine["/bind"]["fstype"]) == ("bind", "tmpfs")
    assert mine["/bind"]["source"] == str(stack.shm_bind) and mine["/bind"]["read_only"]
    assert (mine["/scratch"]["kind"], mine["/scratch"]["fstype"]) == ("tmpfs", "tmpfs")


@overlay2
def test_a_stopped_container_is_read_from_the_drivers_records(stack, client):
    made = client.containers.create(IMAGE, ["true"], name=f"fs-stopped-{UNIQ}")
    try:
        doc = fs_json(made.name)
        graph = client.api.inspect_container(made.id)["GraphDriver"]["Data"]
        assert doc["mounts"] is None and doc["root"]["merged"] is None
        assert doc["root"]["upperdir"] == graph["UpperDir"]
        assert [x["path"] for x in doc["layers"][1:]] == graph["LowerDir"].split(":")
        assert [x["role"] for x in doc["layers"]] == ["rw", "init", "image", "image"]
        out = run_cli("cgroup", made.name)
        assert out.returncode == 9
        one_error_line(out.stderr, f"{made.name} is created", "no process", "no cgroup")
    finally:
        made.remove(force=True)


def test_unknown_containers_exit_2_in_one_line(stack):
    for command in ("fs", "cgroup"):
        out = run_cli(command, f"fs-no-such-{UNIQ}")
        assert out.returncode == 2
        one_error_line(out.stderr, "no such container")


# -- cgroup --------------------------------------------------------------------------------------


def _cgroup_dirs(pid: int) -> dict[str, str]:
    """Ground truth the long way: /proc/<pid>/cgroup, under /sys/fs/cgroup/<controller>."""
    dirs = {}
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else ["unified"]:
            mount = c.removeprefix("name=")
            dirs[c] = f"/sys/fs/cgroup/{mount}{path}"
    return dirs


def test_cgroup_matches_hostconfig_and_the_cgroup_files(stack, client):
    truth = client.api.inspect_container(stack.a.id)
    pid, host_config = truth["State"]["Pid"], truth["HostConfig"]
    doc = cgroup_json(stack.a.name)
    dirs = _cgroup_dirs(pid)
    assert doc["container"] == {"id": stack.a.id, "name": stack.a.name, "init_pid": pid}
    assert (doc["version"], doc["mode"], doc["driver"]) == (1, "hybrid", "cgroupfs")
    assert doc["cgroupns"] == "host"  # Docker's default on v1
    assert doc["paths"] == dirs and dirs["memory"].endswith(f"/docker/{stack.a.id}")

    def read(key: str, name: str) -> str:
        return Path(f"{dirs[key]}/{name}").read_text().strip()

    limits = doc["limits"]
    assert limits["memory_bytes"] == host_config["Memory"] == 64 << 20
    assert limits["memory_bytes"] == int(read("memory", "memory.limit_in_bytes"))
    assert limits["memory_swap_bytes"] == host_config["MemorySwap"] == 128 << 20
    assert limits["memory_swap_bytes"] == int(read("memory", "memory.memsw.limit_in_bytes"))
    assert limits["cpus"] == host_config["NanoCpus"] / 1e9 == 0.5
    assert limits["cpu_quota_us"] == int(read("cpu", "cpu.cfs_quota_us")) == 50000
    assert limits["cpu_period_us"] == int(read("cpu", "cpu.cfs_period_us"))
    assert limits["cpu_shares"] == int(read("cpu", "cpu.shares"))
    assert limits["pids_max"] == host_config["PidsLimit"] == int(read("pids", "pids.max"))
    assert limits["cpuset_cpus"] is None and host_config["CpusetCpus"] == ""
    assert limits["memory_reservation_bytes"] is None and host_config["MemoryReservation"] == 0
    assert doc["sources"]["limits.memory_bytes"] == f"{dirs['memory']}/memory.limit_in_bytes"
    assert doc["sources"]["limits.pids_max"] == f"{dirs['pids']}/pids.max"
    # v1 blkio counters stay 0 without a throttle rule: not shown as usage.
    assert read("blkio", "blkio.throttle.io_service_bytes_recursive") == "Total 0"
    assert doc["usage"]["io_read_bytes"] is None
    assert "throttle rule" in doc["why_null"]["usage.io_read_bytes"]
    usage = doc["usage"]
    assert 0 < usage["memory_bytes"] <= 64 << 20
    assert 0 < usage["cpu_ns"] <= int(read("cpuacct", "cpuacct.usage"))
    assert usage["pids"] == int(read("pids", "pids.current"))
    procs = {int(p) for p in read("pids", "cgroup.procs").split()}
    roles = {p["pid"]: p["role"] for p in doc["processes"]}
    assert set(roles) == procs
    assert roles[pid] == "init" and roles[stack.exec_pid] == "exec"


def test_cgroup_on_the_terminal(stack):
    text = run_cli("cgroup", stack.a.name, check=True).stdout
    for part in ("cgroup v1 (hybrid)  driver cgroupfs  cgroupns host",
                 "64.0 MiB (67108864)", "128.0 MiB (134217728)  Docker's default: twice",
                 "0.5 (50000 / 100000 us)", "memory.limit_in_bytes", "pids.max",
                 f"{stack.exec_pid}    exec"):  # fmt: skip
        assert part in text, part


def test_a_container_without_limits(stack):
    doc = cgroup_json(stack.b.name)
    for field in ("memory_bytes", "memory_swap_bytes", "cpu_quota_us", "cpus", "pids_max"):
        assert doc["limits"][field] is None
        assert doc["why_null"][f"limits.{field}"] == "no limit", field


# -- not root; another root ----------------------------------------------------------------------


def test_not_root_what_can_be_read_is_shown_and_the_rest_marked(stack):
    pid = str(stack.a.attrs["State"]["Pid"] or stack.a.reload() or stack.a.attrs["State"]["Pid"])
    root_view = cgroup_json(pid)
    out = run_as_nobody("cgroup", "--json", pid)
    assert out.returncode == 0, out.stderr  # /proc/<pid>/cgroup and cgroupfs are world-readable
    doc = json.loads(out.stdout)
    assert doc["limits"] == root_view["limits"] and doc["paths"] == root_view["paths"]
    out = run_as_nobody("fs", "--json", pid)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["root"]["upperdir"] == fs_json(pid)["root"]["upperdir"]  # the mount is readable
    assert doc["changes"] is None  # the layers are not: not "0 changes"
    assert all(x["shared_with"] is None and x["size_bytes"] is None for x in doc["layers"])
    assert any("permission denied" in n for n in doc["notes"])
    assert "permission denied" in out.stderr


PROBE = """
import json, sys
from tracer.kernel import cgroupfs
from tracer.kernel.root import HostRoot
from tracer.model.topology import Container
from tracer.runtimes import storage
from tracer.views import storage as view
root = HostRoot(sys.argv[1])
cid, pid = sys.argv[2], int(sys.argv[3])
me = Container(id=cid, name=None, image=None, state="running", init_pid=pid)
fs = view.report(me, storage.read(root, me, None, list_changes=True), {}).to_json()
cg = cgroupfs.read(root, pid)
print(json.dumps({"fs": fs, "cgroup": [cg.dirs, cg.files, sorted(cg.procs)]}))
"""


@overlay2
def test_the_same_storage_and_cgroups_through_another_root(stack, tmp_path):
    """As tests/integration/test_host_root.py: the host's / under a directory, and this
    namespace's own /proc, /var/lib, /run and /sys/fs/cgroup hidden: every read must go
    through the HostRoot to find the same layers, mounts and cgroup files."""
    host = tmp_path / "host"
    host.mkdir()
    pid = client_pid(stack)
    script = (
        "set -e; mount --make-rprivate /; "
        f"mount --rbind / {host}; "
        "for d in /run /var/lib /proc /sys/fs/cgroup; do mount -t tmpfs hidden $d; done; "
        f'exec {sys.executable} -c "$0" {host} {stack.a.id} {pid}'
    )
    run = [sys.executable, "-c", PROBE, "/", stack.a.id, str(pid)]
    here = json.loads(subprocess.run(run, capture_output=True, text=True, check=True,
                                     cwd=ROOT).stdout)  # fmt: skip
    out = subprocess.run(["unshare", "--mount", "sh", "-c", script, PROBE],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    there = json.loads(out.stdout)
    assert there == here
    assert [x["role"] for x in there["fs"]["layers"]] == ["rw", "init", "image", "image"]
    assert there["cgroup"][0]["memory"].endswith(stack.a.id)


def client_pid(stack: Stack) -> int:
    stack.a.reload()
    return int(stack.a.attrs["State"]["Pid"])


# -- last: dockerd stopped ----------------------------------------------------------------------


def test_zz_fs_and_cgroup_while_the_labs_dockerd_is_stopped(stack, client):
    """From the host's own files alone: the same layers and limits, only the names missing."""
    fs_before, cg_before = fs_json(stack.a.id), cgroup_json(stack.a.id)
    d_pid = lab.dockerd_pid(PATHS)
    try:
        assert daemon.stop(daemon.identify(d_pid), timeout=30)
        assert not live(d_pid)
        fs_down, cg_down = fs_json(stack.a.id), cgroup_json(stack.a.id)
    finally:
        run_cli("lab", "up", check=True)
    assert fs_down["container"]["name"] is None and cg_down["container"]["name"] is None
    for key in ("driver", "data_root", "root", "mounts"):
        assert fs_down[key] == fs_before[key], key
    strip = [{k: v for k, v in x.items() if k != "shared_with"} for x in fs_before["layers"]]
    assert [{k: v for k, v in x.items() if k != "shared_with"} for x in fs_down["layers"]] == strip
    # Sharers are still counted (from layerdb), named by short id without the API.
    assert fs_down["layers"][2]["shared_with"] == [stack.b.id[:12]]
    assert cg_down["limits"] == cg_before["limits"] and cg_down["paths"] == cg_before["paths"]
