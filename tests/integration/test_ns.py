"""`ns` against the lab's real engine, checked with readlink of /proc/<pid>/ns and `lsns -J`."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.support.cli import run_cli
from tests.support.lab import LAB_HOST as LAB
from tests.support.lab import ns_inodes, temporary
from tracer.ops import daemon, lab

PATHS = lab.LabPaths()
LSNS_TYPES = ("mnt", "net", "pid", "uts", "ipc", "user", "cgroup", "time")


def ns_json(*args: str) -> dict:
    """`ns --json` of the lab (other engines of the host may have containers of the same
    names: another lab, say)."""
    return json.loads(run_cli("ns", "-H", LAB, "--json", *args, check=True).stdout)


def readlink_ns(pid: int) -> dict[str, int]:
    """Ground truth the long way: the inode inside 'net:[4026532334]'."""
    out = {}
    for kind in os.listdir(f"/proc/{pid}/ns"):
        link = os.readlink(f"/proc/{pid}/ns/{kind}")
        out[kind] = int(link[link.index("[") + 1 : -1])
    return out


@pytest.fixture(scope="module")
def lsns(lab_engine):
    out = subprocess.run(["lsns", "-J"], capture_output=True, text=True, check=True).stdout
    return {(n["type"], int(n["ns"])) for n in json.loads(out)["namespaces"]}


def test_every_container_matches_proc_and_lsns(client, lsns):
    host = readlink_ns(2)  # kthreadd lives in the initial namespaces
    for ctr in client.containers.list():
        pid = client.api.inspect_container(ctr.id)["State"]["Pid"]
        truth = readlink_ns(pid)
        doc = ns_json(ctr.name)
        assert doc["container"] == {"id": ctr.id, "name": ctr.name, "init_pid": pid}
        assert doc["host"] == host
        got = {e["type"]: e for e in doc["namespaces"]}
        assert {t: e["inode"] for t, e in got.items()} == truth
        for kind, entry in got.items():
            assert entry["host_inode"] == host[kind]
            assert entry["isolated"] is (truth[kind] != host[kind])
        for kind in LSNS_TYPES:
            assert (kind, truth[kind]) in lsns, f"lsns does not list {kind}:{truth[kind]}"


def test_shared_namespaces_are_named_with_their_flag(client):
    side = {e["type"]: e for e in ns_json("lab-sidecar")["namespaces"]}
    assert side["net"]["shared_with"] == ["lab-web"]
    assert side["pid"]["shared_with"] == ["lab-web"]
    assert side["net"]["isolated"] is True
    assert side["net"]["why"] == "--network container:lab-web"
    assert side["pid"]["why"] == "--pid container:lab-web"
    assert side["mnt"]["shared_with"] == [] and side["uts"]["shared_with"] == []
    hc = client.api.inspect_container("lab-sidecar")["HostConfig"]
    web_id = client.api.inspect_container("lab-web")["Id"]
    assert hc["NetworkMode"] == hc["PidMode"] == f"container:{web_id}"
    # The usual host-shared types carry a one-line explanation.
    assert "userns-remap" in side["user"]["why"]
    assert side["user"]["isolated"] is False


def test_exec_process_is_in_the_same_namespaces_as_init(client):
    doc = ns_json("lab-exec")
    roles = {p["role"]: p for p in doc["processes"]}
    init, ex = roles["init"], roles["exec"]
    assert ex["same_as_init"] is True
    assert ex["namespaces"] == readlink_ns(ex["pid"]) == readlink_ns(init["pid"])
    text = run_cli("ns", "-H", LAB, "lab-exec", check=True).stdout
    assert f"{ex['pid']} exec" in text and "same namespaces as init" in text


def test_host_pid_and_network(client):
    with temporary(
        client,
        "lab-hostns",
        ["sleep", "2147483647"],
        pid_mode="host",
        network_mode="host",
    ):
        got = {e["type"]: e for e in ns_json("lab-hostns")["namespaces"]}
        for kind, flag in (("net", "--network host"), ("pid", "--pid host")):
            assert got[kind]["isolated"] is False
            assert got[kind]["inode"] == readlink_ns(2)[kind]
            assert got[kind]["why"] == flag
        assert got["mnt"]["isolated"] is True
        matrix = ns_json()
        row = next(c for c in matrix["containers"] if c["name"] == "lab-hostns")
        assert row["cells"]["net"] == row["cells"]["pid"] == "host"


def test_matrix_lists_every_running_container_and_groups(client):
    doc = ns_json()
    running = {c.name for c in client.containers.list()}
    assert {c["name"] for c in doc["containers"] if c["name"]} >= running
    assert doc["host"] == readlink_ns(2)
    for c in doc["containers"]:
        if c["name"] in running:
            assert c["namespaces"] == ns_inodes(c["init_pid"])
    groups = {(g["type"], tuple(g["containers"])) for g in doc["groups"]}
    assert ("net", ("lab-sidecar", "lab-web")) in groups
    assert ("pid", ("lab-sidecar", "lab-web")) in groups
    text = run_cli("ns", "-H", LAB, check=True, env={"COLUMNS": "80"}).stdout
    (web,) = [line for line in text.splitlines() if line.startswith("lab-web ")]
    (side,) = [line for line in text.splitlines() if line.startswith("lab-sidecar ")]
    letters = {line.split()[0] for line in text.splitlines() if " 40265" in line}
    assert web.split()[5:7] == side.split()[5:7] and set(web.split()[5:7]) <= letters
    assert any(line.endswith("lab-sidecar, lab-web") for line in text.splitlines())


def test_addressable_by_id_prefix_and_host_pid(client):
    web = client.api.inspect_container("lab-web")
    for query in (web["Id"], web["Id"][:8], str(web["State"]["Pid"])):
        assert ns_json(query)["container"]["id"] == web["Id"]


def test_errors_are_one_line_with_their_exit_codes(client):
    out = run_cli("ns", "-H", LAB, "lab-wbe")
    assert (out.returncode, out.stderr.strip()) == (
        2,
        "dtrace-tree: error: no such container: 'lab-wbe' (did you mean lab-web?)",
    )
    out = run_cli("ns", str(os.getpid()))
    assert out.returncode == 2
    assert out.stderr.strip() == (
        f"dtrace-tree: error: PID {os.getpid()} is not a process of any container or engine on "
        "this host"
    )
    out = run_cli("ns", "-H", LAB, "lab-stopped")
    assert out.returncode == 9
    assert out.stderr.strip() == (
        "dtrace-tree: error: lab-stopped is exited: a stopped container has no process, "
        "so it has no namespaces (start it with: docker start lab-stopped)"
    )


def test_ambiguous_prefix_lists_the_candidates(client):
    made = []
    try:
        while True:
            ids = [c.id for c in client.containers.list(all=True)]
            prefix = next(
                (h for h in "0123456789abcdef" if sum(i.startswith(h) for i in ids) > 1), None
            )
            if prefix:
                break
            made.append(client.containers.create("dtrace-lab/busybox:latest", ["true"]))
        out = run_cli("ns", "-H", LAB, prefix)
        assert out.returncode == 2
        (line,) = out.stderr.strip().splitlines()
        assert line.startswith(f"dtrace-tree: error: '{prefix}' is ambiguous: it matches ")
        for cid in ids:
            if cid.startswith(prefix):
                assert cid[:12] in line
    finally:
        for c in made:
            c.remove(force=True)


def test_ns_while_the_api_is_down(client):
    """dockerd down: containers are still addressable by full id and host PID."""
    web = client.api.inspect_container("lab-web")
    try:
        assert daemon.stop(daemon.identify(lab.dockerd_pid(PATHS)), timeout=30)
        for query in (web["Id"], str(web["State"]["Pid"])):  # unique on the host: no -H
            doc = json.loads(run_cli("ns", "--json", query, check=True).stdout)
            assert doc["container"]["id"] == web["Id"]
            assert doc["container"]["name"] is None
            assert {e["type"]: e["inode"] for e in doc["namespaces"]} == readlink_ns(
                web["State"]["Pid"]
            )
    finally:
        run_cli("lab", "up", check=True)
