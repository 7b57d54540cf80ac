"""`fs` and `cgroup` on the lab's rootless Docker engine (dockerd-rootless.sh: rootlesskit,
slirp4netns; Docker 20.10 keeps overlay2 there, mounted with userxattr in RootlessKit's mount
namespace; cgroup v1, so its containers have no cgroups). Each answer is checked against what
the engine's own tools say, run as the engine's user against its socket: `docker info`,
`docker inspect` (GraphDriver, Mounts, HostConfig) and `docker diff`."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
from typing import Any

import psutil
import pytest

from tests.support.cli import run_cli
from tests.support.waiting import wait_for
from tracer.ops import lab
from tracer.ops.stacks import debs, rootless

PATHS = lab.LabPaths()
ENGINE = rootless.RootlessEngine(PATHS)
IMAGE = "dtrace-lab/busybox:latest"
NAME = "rlfs-changes"
# Its changes, as a user makes them: a file added, one deleted (a whiteout), a directory of the
# image replaced (an opaque directory: user.overlay.opaque with userxattr).
SCRIPT = "echo hi > /added; rm /bin/ls; rm -rf /www; mkdir /www; echo n > /www/new; exec sleep 2147483647"  # noqa: E501


class Rootless:
    def __init__(self, entry: pwd.struct_passwd) -> None:
        self.entry = entry
        self.host = f"unix://{ENGINE.docker_sock(entry.pw_uid)}"

    def docker(self, *args: str, check: bool = True) -> str:
        """The docker CLI as the engine's user, against its socket."""
        docker = shutil.which("docker")
        assert docker, "the docker CLI is needed"
        argv = ["setpriv", f"--reuid={self.entry.pw_uid}", f"--regid={self.entry.pw_gid}",
                "--init-groups", "env", "-i", f"HOME={self.entry.pw_dir}", "PATH=/usr/bin:/bin",
                docker, "-H", self.host, *args]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, check=check, timeout=120)
        return done.stdout

    def inspect(self, name: str) -> dict[str, Any]:
        return json.loads(self.docker("inspect", name))[0]


@pytest.fixture(scope="module")
def engine(lab_engine):
    """The lab's rootless engine, with a container of the test's own (a volume, a read-only
    bind, a tmpfs, limits docker run takes, and changes); the engine removed at the end unless
    it was up before. It keeps its pidfile and record in the lab's directories: the lab is up."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("engine tests need root in CI; they are never skipped there")
        pytest.skip("engine tests need root")
    was_up = rootless.pid(ENGINE) is not None
    try:
        rootless.up(PATHS, debs.binaries(PATHS, lambda _: None), lambda _: None)
    except Exception as exc:  # noqa: BLE001 - in CI this must fail loudly, not skip
        pytest.fail(f"the lab's rootless engine did not start: {exc}")
    r = Rootless(pwd.getpwnam(ENGINE.user))
    r.docker("rm", "-f", NAME)
    r.docker("run", "-d", "--name", NAME, "-v", "rlfs-vol:/data", "-v", "/tmp:/hosttmp:ro",
             "--tmpfs", "/scratch", "--memory", "64m", "--pids-limit", "50", IMAGE,
             "sh", "-c", SCRIPT)  # fmt: skip
    wait_for(lambda: "/www/new" in r.docker("diff", NAME), 30, "the container's changes")
    try:
        yield r
    finally:
        r.docker("rm", "-f", "-v", NAME, check=False)
        r.docker("volume", "rm", "-f", "rlfs-vol", check=False)
        if not was_up:
            lab.down(PATHS, only=["rootless"])


def fs_json(r: Rootless, *args: str) -> dict[str, Any]:
    return json.loads(run_cli("fs", "--json", "-H", r.host, *args, check=True).stdout)


def union(engine: Rootless, name: str) -> dict[str, str]:
    """The container's root mount as its init sees it: the options of `/` in its mountinfo."""
    pid = engine.inspect(name)["State"]["Pid"]
    with open(f"/proc/{pid}/mountinfo") as f:
        rows = [line.split(" - ")[1].split() for line in f if line.split()[4] == "/"]
    return dict(o.split("=", 1) for o in rows[-1][2].split(",") if "=" in o)


def test_the_storage_driver_and_data_root_are_the_engine_s(engine):
    info = json.loads(engine.docker("info", "--format", "{{json .}}"))
    doc = fs_json(engine, NAME)
    # Docker 20.10's native rootless overlay2; Docker 28's containerd image store (overlayfs)
    assert doc["driver"] == info["Driver"] == ("overlay2" if PATHS.stack == "2023" else "overlayfs")
    assert doc["data_root"] == info["DockerRootDir"] == f"{engine.entry.pw_dir}/.local/share/docker"
    assert not any("userns-remap" in n or "not mounted" in n for n in doc["notes"])


def test_the_overlay_is_the_one_mounted_in_rootlesskit_s_mount_namespace(engine):
    doc = fs_json(engine, NAME)
    root, mounted = doc["root"], union(engine, NAME)
    assert (root["upperdir"], root["workdir"]) == (mounted["upperdir"], mounted["workdir"])
    graph = engine.inspect(NAME)["GraphDriver"]["Data"] or {}  # the image store's is null
    cid = engine.inspect(NAME)["Id"]
    assert root["merged"] == graph.get("MergedDir", f"{doc['data_root']}/rootfs/overlayfs/{cid}")
    child = [p for p in psutil.process_iter(["name", "uids", "ppid"])
             if p.info["name"] == "exe" and p.info["uids"].real == engine.entry.pw_uid]  # fmt: skip
    assert doc["seen_from"] in {f"/proc/{p.pid}/root" for p in child}
    with open(f"{doc['seen_from'].removesuffix('/root')}/mountinfo") as f:
        assert any(f" {root['merged']} " in line for line in f)  # mounted there
    with open("/proc/2/mountinfo") as f:  # and not in the host's namespace
        assert not any(f" {root['merged']} " in line for line in f)


def test_layers_sizes_and_sharing_are_the_engine_s(engine):
    doc = fs_json(engine, NAME)
    roles = [x["role"] for x in doc["layers"]]
    assert roles[:2] == ["rw", "init"] and set(roles[2:]) == {"image"}
    rw = doc["layers"][0]
    if doc["driver"] != "overlay2":  # the snapshotter's directories, as the mount names them
        mounted = union(engine, NAME)
        layers = [mounted["upperdir"], *mounted["lowerdir"].split(":")]
        assert [x["path"] for x in doc["layers"]] == layers
    else:  # overlay2's mount names l/ links: its layers are GraphDriver's directories
        graph = engine.inspect(NAME)["GraphDriver"]["Data"]
        assert rw["path"] == graph["UpperDir"]
        assert [x["path"] for x in doc["layers"][1:]] == graph["LowerDir"].split(":")
        sized = json.loads(engine.docker("ps", "-a", "-s", "--filter", f"name=^{NAME}$",
                                         "--format", "{{json .}}"))  # fmt: skip
        assert sized["Size"].startswith(f"{rw['size_bytes']}B")  # "5B (virtual 1.98MB)"
    diff_ids = json.loads(engine.docker("image", "inspect", IMAGE))[0]["RootFS"]["Layers"]
    assert [x["diff_id"] for x in doc["layers"][2:]] == diff_ids[::-1]
    others = engine.docker("ps", "-a", "--filter", f"ancestor={IMAGE}", "--format", "{{.Names}}")
    sharers = sorted(n for n in others.split() if n != NAME)
    assert doc["layers"][-1]["shared_with"] == sharers
    assert ENGINE.container in sharers


def test_changes_are_docker_diff_s(engine):
    doc = fs_json(engine, "--changes", NAME)
    truth = sorted(tuple(line.split(" ", 1)) for line in engine.docker("diff", NAME).splitlines())
    got = sorted((c["kind"], c["path"]) for c in doc["changes"]["files"])
    assert got == truth
    assert ("D", "/www/index.html") in got and ("D", "/bin/ls") in got  # opaque, whiteout


def test_mounts_are_docker_inspect_s(engine):
    doc = fs_json(engine, NAME)
    mine = {m["destination"]: m for m in doc["mounts"]}
    for m in engine.inspect(NAME)["Mounts"]:
        got = mine[m["Destination"]]
        assert (got["kind"], got["source"], got["read_only"]) == (
            m["Type"], m["Source"], not m["RW"]), m  # fmt: skip
        if m["Type"] == "volume":
            assert got["volume"] == m["Name"]
    assert mine["/scratch"]["kind"] == "tmpfs"
    cid = engine.inspect(NAME)["Id"]
    generated = {d: m["source"] for d, m in mine.items() if m["kind"] == "generated"}
    assert generated == {
        d: f"{doc['data_root']}/containers/{cid}/{d.rsplit('/', 1)[1]}"
        for d in ("/etc/resolv.conf", "/etc/hostname", "/etc/hosts")
    }
    # runc binds the host's devices into a user namespace: the runtime's, not the user's
    assert {m["kind"] for d, m in mine.items() if d.startswith("/dev/")} <= {"system"}


def test_a_stopped_container_is_read_from_the_records(engine):
    name = "rlfs-stopped"
    engine.docker("rm", "-f", name)
    engine.docker("run", "--name", name, IMAGE, "sh", "-c", "rm -rf /www; mkdir /www; echo > /a")
    try:
        doc = fs_json(engine, "--changes", name)
        truth = sorted(tuple(x.split(" ", 1)) for x in engine.docker("diff", name).splitlines())
        assert sorted((c["kind"], c["path"]) for c in doc["changes"]["files"]) == truth
        assert doc["mounts"] is None and doc["data_root"].startswith(engine.entry.pw_dir)
    finally:
        engine.docker("rm", "-f", name)


def test_cgroup_says_it_has_none_of_its_own(engine):
    info = json.loads(engine.docker("info", "--format", "{{json .}}"))
    assert (info["CgroupDriver"], info["CgroupVersion"]) == ("none", "1")
    host_config = engine.inspect(NAME)["HostConfig"]
    assert (host_config["Memory"], host_config["PidsLimit"]) == (64 << 20, 50)  # asked for
    doc = json.loads(run_cli("cgroup", "--json", "-H", engine.host, NAME, check=True).stdout)
    assert (doc["driver"], doc["paths"], doc["processes"]) == ("none", {}, [])
    assert doc["limits"]["memory_bytes"] is None and doc["limits"]["pids_max"] is None
    assert "rootless Docker on cgroup v1" in doc["notes"][0]
    pid = engine.inspect(NAME)["State"]["Pid"]
    with open(f"/proc/{pid}/cgroup") as f:
        memory = next(line.split(":", 2)[2].strip() for line in f if ":memory:" in line)
    assert memory in doc["notes"][1]  # where it is: the engine's, said as such
    text = run_cli("cgroup", "-H", engine.host, NAME, check=True)
    shown = text.stdout.replace(engine.inspect(NAME)["Id"][:12], "")  # its id may hold a 64
    assert "no cgroup of its own" in shown and "64" not in shown
