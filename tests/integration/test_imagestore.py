"""`fs` on the 2026 stack's containerd image store (dockerd 28 on containerd 2, the lab's own),
every field against what the engine's own tools say, gathered here: `docker image inspect`
(RootFS.Layers), `docker diff`, `ctr -n moby snapshots ls` and `usage` (containerd's API), and
the container's /proc/<pid>/mountinfo.

An image of two layers is made here by committing a change on the lab's base image; is-a and
is-b run it (is-a changes its files), is-stopped is created and never started. Everything made
is named is-*-<uniq> and removed afterwards. The last test stops the 2026 lab's containerd and
brings it back.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from typing import Any

import docker
import pytest

from tests.support.cli import run_cli
from tests.support.lab import LAB_IMAGE, chain_ids, live, remove_made
from tracer.ops import daemon, lab, labconfig
from tracer.ops.stacks import debs

PATHS = labconfig.LabPaths.of("2026")
CONTAINERD_ROOT = str(PATHS.data / "containerd")
SNAPSHOTS = f"{CONTAINERD_ROOT}/io.containerd.snapshotter.v1.overlayfs/snapshots"
UNIQ = f"{os.getpid():x}{int(time.time()) % 1_000_000:x}"
IMAGE = f"is-two-layer-{UNIQ}:1"


def fs_json(*args: str) -> dict[str, Any]:
    return json.loads(run_cli("fs", "--json", *args, check=True).stdout)


def ctr(*args: str) -> str:
    binary = str(debs.cache_dir() / "stacks" / "2026" / "root" / "usr" / "bin" / "ctr")
    argv = [binary, "-a", str(PATHS.containerd_sock), "-n", "moby", *args]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def ctr_table(*args: str) -> dict[str, list[str]]:
    """First column -> the other columns (`ctr snapshots ls`: KEY PARENT KIND)."""
    rows = [line.split() for line in ctr(*args).splitlines()[1:] if line.strip()]
    return {r[0]: r[1:] for r in rows}


def human(n: int) -> str:
    """A size as ctr prints it (`12.0 KiB`): binary units, one decimal."""
    value, units = float(n), ["B", "KiB", "MiB", "GiB", "TiB"]
    i = 0
    while value >= 1024 and i < len(units) - 1:
        value, i = value / 1024, i + 1
    return f"{value:.1f} {units[i]}"


@dataclass
class Made:
    client: docker.DockerClient
    a: Any
    b: Any
    stopped: Any
    builder: str  # its id: `docker commit` commits on the builder's init snapshot


@pytest.fixture(scope="module")
def made():
    """On the 2026 stack's lab alone (the 2023 one is not needed)."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("engine tests need root in CI; they are never skipped there")
        pytest.skip("engine tests need root")
    if not lab.status(PATHS).api:
        try:
            lab.up(paths=PATHS)
        except Exception as exc:  # noqa: BLE001 - in CI this must fail loudly, not skip
            pytest.fail(f"the 2026 stack's lab did not start: {exc}")
    client = docker.DockerClient(base_url=PATHS.docker_host, timeout=60)
    containers: list[Any] = []
    env = {"PATH": "/bin"}
    try:
        builder = client.containers.run(
            LAB_IMAGE, ["sh", "-c", "mkdir -p /opt/app && echo v1 > /opt/app/config"],
            name=f"is-build-{UNIQ}", detach=True, environment=env,
        )  # fmt: skip
        containers.append(builder)
        assert builder.wait(timeout=60)["StatusCode"] == 0
        builder.commit(repository=IMAGE.split(":")[0], tag="1")
        sleep = ["sleep", "2147483647"]
        a = client.containers.run(IMAGE, sleep, name=f"is-a-{UNIQ}", detach=True, environment=env)
        containers.append(a)
        b = client.containers.run(IMAGE, sleep, name=f"is-b-{UNIQ}", detach=True, environment=env)
        containers.append(b)
        stopped = client.containers.create(IMAGE, ["true"], name=f"is-stopped-{UNIQ}")
        containers.append(stopped)
        script = "echo v2 >> /opt/app/config && rm /bin/arch && mkdir /d && echo hi > /d/f"
        assert a.exec_run(["sh", "-c", script]).exit_code == 0
        yield Made(client, a, b, stopped, builder.id)
    finally:
        remove_made(client, containers, IMAGE)
        client.close()


def test_layers_are_the_snapshotter_s_with_the_image_s_diff_ids(made):
    doc = fs_json(made.a.id)
    assert doc["driver"] == "overlayfs" and doc["data_root"] == str(PATHS.data_root)
    layers = doc["layers"]
    # docker commit commits on the builder's init snapshot: it stays in the chain, no layer
    # of any image (a note says so)
    assert [x["role"] for x in layers] == ["rw", "init", "image", "lower", "image"]
    # the image's layers, top first, as docker image inspect gives them base first
    diff_ids = made.client.api.inspect_image(IMAGE)["RootFS"]["Layers"]
    images = [x for x in layers if x["role"] == "image"]
    assert [x["diff_id"] for x in images] == diff_ids[::-1]
    assert [x["chain_id"] for x in images] == chain_ids(diff_ids)[::-1]
    # each key, its parent and its kind as containerd's API lists them
    listed = ctr_table("snapshots", "ls")
    keys = [x["snapshot_key"] for x in layers]
    top, base = chain_ids(diff_ids)[::-1]
    assert keys == [made.a.id, f"{made.a.id}-init", top, f"{made.builder}-init", base]
    for key, below in zip(keys, [*keys[1:], None], strict=True):
        parent, kind = (listed[key] + [""])[:2] if len(listed[key]) == 2 else ("", listed[key][0])
        assert (parent or None, kind) == (below, "Active" if key == made.a.id else "Committed")
    # each directory as the kernel has it mounted
    pid = made.client.api.inspect_container(made.a.id)["State"]["Pid"]
    with open(f"/proc/{pid}/mountinfo") as f:
        (root,) = [line.split(" - ")[1] for line in f if line.split()[4] == "/"]
    options = dict(o.partition("=")[::2] for o in root.split()[2].split(","))
    assert options["upperdir"] == layers[0]["path"] == f"{SNAPSHOTS}/{layers[0]['snapshot_id']}/fs"
    assert options["lowerdir"].split(":") == [x["path"] for x in layers[1:]]
    assert doc["root"]["merged"] == f"{PATHS.data_root}/rootfs/overlayfs/{made.a.id}"


def test_sizes_are_containerd_s_usage(made):
    doc = fs_json(made.a.id)
    usage = ctr_table("snapshots", "usage")
    for layer in doc["layers"][1:]:  # committed: the usage containerd recorded
        assert human(layer["size_bytes"]) == " ".join(usage[layer["snapshot_key"]][:2])
    rw = doc["layers"][0]  # active: measured as containerd measures it (du)
    assert human(rw["size_bytes"]) == " ".join(usage[made.a.id][:2])


def test_sharing_and_changes(made):
    doc = fs_json(made.a.id, "--changes")
    a, b = made.a.name, made.b.name
    assert doc["layers"][0]["shared_with"] == [] and doc["layers"][1]["shared_with"] == []
    for image_layer in doc["layers"][2:]:  # (and the builder's init snapshot between them)
        assert {b, made.stopped.name} <= set(image_layer["shared_with"])
        assert a not in image_layer["shared_with"]
    kinds = {0: "C", 1: "A", 2: "D"}
    truth = sorted((kinds[c["Kind"]], c["Path"]) for c in made.client.api.diff(made.a.id))
    assert sorted((c["kind"], c["path"]) for c in doc["changes"]["files"]) == truth


def test_a_stopped_container_is_read_from_the_snapshotter_s_metadata(made):
    doc = fs_json(made.stopped.id)
    assert doc["mounts"] is None and doc["root"]["merged"] is None
    assert [x["role"] for x in doc["layers"]] == ["rw", "init", "image", "lower", "image"]
    assert doc["layers"][0]["snapshot_key"] == made.stopped.id
    assert doc["root"]["upperdir"] == doc["layers"][0]["path"]
    assert doc["changes"] == {"added": 0, "changed": 0, "deleted": 0, "files": None,
                              "truncated": False}  # fmt: skip


def test_zz_the_same_layers_while_containerd_is_stopped(made):
    """containerd's files read without containerd (and without its lock): the same answer."""
    before = fs_json(made.a.id, "--changes")
    pid = lab.containerd_pid(PATHS)
    try:
        assert daemon.stop(daemon.identify(pid), timeout=30)
        assert not live(pid)
        down = fs_json(made.a.id, "--changes")
    finally:
        run_cli("lab", "up", "--stack", "2026", check=True)
    for key in ("driver", "data_root", "root", "changes", "mounts"):
        assert down[key] == before[key], key
    strip = [{k: v for k, v in x.items() if k != "shared_with"} for x in before["layers"]]
    assert [{k: v for k, v in x.items() if k != "shared_with"} for x in down["layers"]] == strip
    assert len(down["layers"][2]["shared_with"]) == len(before["layers"][2]["shared_with"])
