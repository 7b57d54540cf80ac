"""Every runtime on one host at once, against real engines the tests start: the Docker lab,
the lab's rootful podman (its own storage), ctr containers on the lab's second containerd and
on the containerd the lab's dockerd uses (another namespace), and a real Kubernetes pod made
over CRI. Ground truth is read here, independently: `podman inspect` (State.Pid,
State.ConmonPid), `ctr task ls` and `ctr task ps`, the bundles containerd wrote, and /proc."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.support.cli import run_cli
from tests.support.lab import daemon_of, live, ns_inodes, show_json
from tests.support.waiting import wait_for
from tracer.model.show_json import from_json
from tracer.ops import lab, labengines

PATHS = lab.LabPaths()


def engines(doc: dict, runtime: str, **match: object) -> list[dict]:
    return [
        e
        for e in doc["engines"]
        if e["runtime"] == runtime and all(e.get(k) == v for k, v in match.items())
    ]


def podman_inspect(name: str) -> dict:
    out = subprocess.run(
        [*labengines.podman(PATHS), "inspect", name], capture_output=True, text=True, check=True
    )
    (found,) = json.loads(out.stdout)
    return found


def ctr_tasks(address: str, namespace: str) -> dict[str, int]:
    """`ctr task ls`: container id -> the PID of its init."""
    out = subprocess.run(
        ["ctr", "-a", address, "-n", namespace, "tasks", "ls"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line.split() for line in out.stdout.splitlines()[1:]]
    return {r[0]: int(r[1]) for r in rows if len(r) >= 3 and r[-1] == "RUNNING"}


def tree_pids(pid: int) -> set[int]:
    root = psutil.Process(pid)
    return {pid} | {p.pid for p in root.children(recursive=True) if p.name() != "runc"}


# -- podman --------------------------------------------------------------------------------------


def test_podman_matches_podman_inspect(lab_runtimes):
    doc = show_json("-H", "all", "-a")
    (engine,) = engines(doc, "podman", store=str(PATHS.podman_root))
    assert engine["daemons"] == [] and engine["owner"] == 0
    by_name = {c["name"]: c for c in engine["containers"]}
    for name in ("lab-pm-plain", "lab-pm-init"):
        truth = podman_inspect(name)
        got = by_name[name]
        assert got["id"] == truth["Id"]
        assert got["init_pid"] == truth["State"]["Pid"]
        assert got["image"] == truth["ImageName"]
        monitor = got["monitor"]
        assert monitor["kind"] == "conmon" and monitor["pid"] == truth["State"]["ConmonPid"]
        assert psutil.Process(monitor["pid"]).name() == "conmon"
        assert monitor["ppid"] == psutil.Process(monitor["pid"]).ppid()
        assert monitor["reparented"] is True  # conmon double-forks: podman is not its parent
        assert got["shim_pid"] is None and got["pod"] is None
        assert psutil.Process(got["init_pid"]).ppid() == monitor["pid"]  # a child of conmon
        inits = {p["pid"] for p in got["processes"] if p["role"] in ("init", "child")}
        assert inits == tree_pids(got["init_pid"])
        assert got["namespaces"] == ns_inodes(got["init_pid"])
        edges = {(x["from"], x["to"], x["kind"]) for x in engine["edges"]}
        assert (monitor["ppid"], monitor["pid"], "reparented") in edges
        assert (monitor["pid"], got["init_pid"], "parent") in edges
    # --init: catatonit (bound at /run/podman-init) is PID 1, the command its child
    init = by_name["lab-pm-init"]["processes"]
    assert init[0]["role"] == "init" and init[0]["cmdline"][0] == "/run/podman-init"
    assert init[1]["role"] == "child" and init[1]["cmdline"][0] == "sleep"
    stopped = by_name["lab-pm-stopped"]
    assert podman_inspect("lab-pm-stopped")["State"]["Running"] is False
    assert stopped["init_pid"] is None and stopped["monitor"] is None
    assert stopped["state"] == "not running"  # created or exited: not known without libpod's db


def test_podman_exec_is_a_second_conmon_s_child_shown_as_exec(lab_runtimes):
    base = labengines.podman(PATHS)
    argv = ["sleep", f"{2147483000 + os.getpid() % 600}"]  # this test's own
    client = subprocess.Popen([*base, "exec", "lab-pm-plain", *argv])
    execs: list[dict] = []

    def shown() -> dict | None:
        """lab-pm-plain as show gives it, once this exec is among its processes."""
        doc = show_json("-H", "all", "lab-pm-plain")
        (engine,) = engines(doc, "podman")
        (got,) = engine["containers"]
        execs[:] = [p for p in got["processes"] if p["role"] == "exec" and p["cmdline"] == argv]
        return got if execs else None

    try:
        got = wait_for(shown, 20, f"show to list {argv} as an exec of lab-pm-plain")
        (ex,) = execs
        exec_conmon = psutil.Process(ex["ppid"])  # `podman exec`: a conmon of its own
        assert exec_conmon.name() == "conmon" and ex["ppid"] != got["monitor"]["pid"]
        assert "-e" in exec_conmon.cmdline() or "--exec" in exec_conmon.cmdline()
        assert ex["namespaces"]["mnt"] == got["namespaces"]["mnt"]
        assert ex["namespaces"] == ns_inodes(ex["pid"])
    finally:
        client.terminate()
        client.wait(timeout=20)
        for p in execs:  # the exec'd process outlives podman exec's client
            if live(p["pid"]) and psutil.Process(p["pid"]).cmdline() == argv:
                os.kill(p["pid"], 9)


def test_rootless_podman_is_its_user_s_engine_in_its_user_namespace(rootless_podman):
    r = rootless_podman
    out = subprocess.run([*r.run, "inspect", r.name], capture_output=True, text=True, check=True)
    (truth,) = json.loads(out.stdout)
    doc = show_json("-H", "all", r.name)
    (engine,) = doc["engines"]
    assert engine["runtime"] == "podman" and engine["owner"] == r.uid
    assert engine["store"] == r.store and engine["name"] == f"podman {r.store} (uid {r.uid})"
    (c,) = engine["containers"]
    assert c["init_pid"] == truth["State"]["Pid"]
    assert c["monitor"]["pid"] == truth["State"]["ConmonPid"]
    assert psutil.Process(c["monitor"]["pid"]).uids().real == r.uid
    # "host" for these containers is the pause process's user namespace, not the host's
    (p,) = [
        p
        for p in psutil.process_iter(["pid", "cmdline", "uids"])
        if p.info["uids"].real == r.uid and p.info["cmdline"][:2] == ["catatonit", "-P"]
    ]
    userns = os.stat(f"/proc/{p.pid}/ns/user").st_ino
    assert c["namespaces"]["user"] == userns != doc["host"]["namespaces"]["user"]
    (note,) = [n for n in engine["notes"] if n.startswith("rootless")]
    assert f"user namespace {userns}, held by its pause process {p.pid}" in note
    assert f"0->{r.uid} (1)" in note  # uid 0 inside is the user outside


# -- bare containerd: ctr ------------------------------------------------------------------------


def test_ctr_containers_are_an_engine_of_their_own(lab_runtimes):
    doc = show_json("-H", "all")
    (engine,) = engines(doc, "containerd", namespace=PATHS.ctr_namespace)
    (cd,) = engine["daemons"]
    assert cd["role"] == "containerd" and cd["pid"] == labengines.containerd_pid(PATHS)
    assert cd["socket"] == str(PATHS.cri_sock) and cd["proven"] is True
    assert engine["name"] == f"{PATHS.cri_sock} [{PATHS.ctr_namespace}]"
    truth = ctr_tasks(str(PATHS.cri_sock), PATHS.ctr_namespace)
    got = {c["id"]: c for c in engine["containers"]}
    assert {cid: c["init_pid"] for cid, c in got.items()} == truth
    for cid, c in got.items():
        assert c["name"] == cid  # ctr's ids are the names people give
        shim = c["monitor"]
        assert shim["kind"] == "containerd-shim" and shim["namespace"] == PATHS.ctr_namespace
        assert shim["address"] == str(PATHS.cri_sock) and c["shim_pid"] == shim["pid"]
        assert psutil.Process(c["init_pid"]).ppid() == shim["pid"]
    # `ctr task exec`: a further child of the same shim, in the container's namespaces
    ps = subprocess.run(
        [
            "ctr",
            "-a",
            str(PATHS.cri_sock),
            "-n",
            PATHS.ctr_namespace,
            "tasks",
            "ps",
            "lab-ctr-exec",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    pids = {int(line.split()[0]) for line in ps.stdout.splitlines()[1:] if line.split()}
    execs = [p for p in got["lab-ctr-exec"]["processes"] if p["role"] == "exec"]
    assert execs and {p["pid"] for p in execs} <= pids
    assert {p["pid"] for p in got["lab-ctr-exec"]["processes"]} == pids


def test_ctr_in_another_namespace_of_docker_s_containerd_is_not_docker_s(
    lab_runtimes, ctr_beside_docker
):
    doc = show_json("-H", "all")
    (docker,) = [
        e
        for e in engines(doc, "docker")
        if daemon_of(e, "dockerd")["api_socket"] == str(PATHS.docker_sock)
    ]
    assert ctr_beside_docker not in {c["id"] for c in docker["containers"]}
    assert all(c["monitor"] is None or c["monitor"]["namespace"] == "moby"
               for c in docker["containers"])  # fmt: skip
    (side,) = engines(doc, "containerd", namespace="rt-side")
    assert daemon_of(side, "containerd")["pid"] == daemon_of(docker, "containerd")["pid"]
    truth = ctr_tasks(str(PATHS.containerd_sock), "rt-side")
    assert {c["id"]: c["init_pid"] for c in side["containers"]} == truth
    assert any("also a Docker engine's" in n for n in side["notes"])
    text = run_cli("show", "-H", "all", check=True).stdout
    assert f"{PATHS.containerd_sock}  namespace rt-side" in text


# -- Kubernetes pods over CRI --------------------------------------------------------------------


def test_a_cri_pod_is_one_shim_holding_its_sandbox_and_containers(cri_pod):
    doc = show_json("-H", "all")
    (engine,) = engines(doc, "cri", namespace="k8s.io")
    assert daemon_of(engine, "containerd")["socket"] == str(PATHS.cri_sock)
    pod = [c for c in engine["containers"] if c["pod"] and c["pod"]["id"] == cri_pod.sandbox]
    # the sandbox first, then the pod's containers by name
    by_name = [cri_pod.containers["rt-app"], cri_pod.containers["rt-side"]]
    assert [c["id"] for c in pod] == [cri_pod.sandbox, *by_name]
    truth = ctr_tasks(str(PATHS.cri_sock), "k8s.io")  # one task per container, its init PID
    sandbox, *members = pod
    assert sandbox["pod"]["sandbox"] is True and sandbox["name"] == "rt-pod"
    shim = sandbox["monitor"]["pid"]
    proc = psutil.Process(shim)
    assert "-id" in proc.cmdline() and proc.cmdline()[proc.cmdline().index("-id") + 1] == (
        cri_pod.sandbox
    )  # the runc v2 shim groups by io.kubernetes.cri.sandbox-id: -id is the sandbox's
    for c in pod:
        assert c["init_pid"] == truth[c["id"]]
        assert c["monitor"]["pid"] == shim and c["shim_pid"] == shim
        assert psutil.Process(c["init_pid"]).ppid() == shim
        assert c["pod"]["name"] == "rt-pod" and c["pod"]["namespace"] == "rt-ns"
        assert c["pod"]["uid"] == "rt-uid-1"
        bundle = f"{PATHS.cri_dir}/state/io.containerd.runtime.v2.task/k8s.io/{c['id']}"
        with open(f"{bundle}/init.pid") as f:
            assert int(f.read()) == c["init_pid"]
        assert {p["pid"] for p in c["processes"]} == tree_pids(c["init_pid"])
    assert {c["name"]: c["image"] for c in members} == {
        "rt-app": "docker.io/dtrace-lab/busybox:latest",
        "rt-side": "docker.io/dtrace-lab/busybox:latest",
    }
    # the pod shares its sandbox's namespaces: ipc and pid (and the host's net: hostNetwork)
    for c in members:
        for kind in ("ipc", "pid"):
            assert c["namespaces"][kind] == sandbox["namespaces"][kind]
            assert ns_inodes(c["init_pid"])[kind] == ns_inodes(sandbox["init_pid"])[kind]
        assert c["namespaces"]["net"] == doc["host"]["namespaces"]["net"]
        assert c["namespaces"]["mnt"] != sandbox["namespaces"]["mnt"]
    edges = {(x["from"], x["to"], x["kind"]) for x in engine["edges"]}
    assert (shim, daemon_of(engine, "containerd")["pid"], "shim-address") in edges


def test_ns_explains_what_a_pod_shares(cri_pod):
    out = run_cli("ns", "rt-app", check=True).stdout
    assert "shared with rt-pod, rt-side" in out
    assert "pod rt-pod: joins its sandbox rt-pod" in out


# -- all at once ---------------------------------------------------------------------------------


def test_show_draws_each_runtime_s_chain_at_once(cri_pod, ctr_beside_docker):
    text = run_cli("show", "-H", "all", check=True).stdout
    assert f"dockerd {lab.dockerd_pid(PATHS)}  api {PATHS.docker_sock}" in text
    assert f"podman  no daemon  storage {PATHS.podman_root}" in text
    c_pid = labengines.containerd_pid(PATHS)
    assert f"containerd {c_pid}  {PATHS.cri_sock}  namespace {PATHS.ctr_namespace}" in text
    assert f"containerd {c_pid}  {PATHS.cri_sock}  namespace k8s.io  CRI" in text
    assert "pod rt-ns/rt-pod  one shim for its 3 containers" in text
    podman = podman_inspect("lab-pm-plain")
    assert f"conmon {podman['State']['ConmonPid']} [re-parented: ppid" in text
    assert "dockerd not running" not in text  # no runtime is drawn in Docker's shape
    # the whole host through JSON and back: show --from draws the same trees
    doc = show_json("-H", "all")
    topo = from_json(doc)
    assert {e.runtime for e in topo.engines} >= {"docker", "podman", "containerd", "cri"}
    assert topo.to_json()["engines"] == doc["engines"]


def test_show_json_is_fast_with_every_runtime(cri_pod, ctr_beside_docker):
    """The measure for the README: show --json over all engines at once (best of 3)."""
    times = []
    for _ in range(3):
        t0 = time.monotonic()
        show_json("-H", "all")
        times.append(time.monotonic() - t0)
    print(f"show --json -H all, every runtime: best {min(times):.3f} s of {times}")
    assert min(times) < 5.0


@pytest.mark.parametrize("fmt", ["--svg"])
def test_export_draws_every_runtime(cri_pod, tmp_path, fmt):
    # What the tests made, by id: whatever else the host runs, few enough to draw in full.
    docker_web = subprocess.run(["docker", "-H", f"unix://{PATHS.docker_sock}", "inspect",
                                 "--format", "{{.Id}}", "lab-web"], capture_output=True,
                                text=True, check=True).stdout.strip()  # fmt: skip
    ours = [docker_web, podman_inspect("lab-pm-plain")["Id"], *cri_pod.containers.values()]
    out = tmp_path / "all.svg"
    run_cli("export", "-H", "all", *ours, fmt, "-o", str(out), check=True)
    svg = out.read_text()
    for text in ("podman: no daemon", "conmon", "[k8s.io]", "pod rt&#45;pod", "dockerd"):
        assert text in svg, text


def test_trace_roles_for_podman_run(lab_runtimes):
    name = f"rt-trace-{os.getpid()}"
    base = labengines.podman(PATHS)
    try:
        out = run_cli(
            "trace", "--json", "--", *base, "run", "-d", "--name", name, "--network", "none",
            *labengines.ULIMITS, "dtrace-lab/busybox:latest", "sleep", "1000",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        *events, summary = [json.loads(line) for line in out.stdout.splitlines()]
        truth = podman_inspect(name)
        cid, pid, conmon = truth["Id"], truth["State"]["Pid"], truth["State"]["ConmonPid"]
        mine = [e for e in events if e["container"] == cid]
        roles = {e["role"] for e in mine}
        assert {"conmon", "runc-create", "runc-init", "runc-start", "container-init"} <= roles
        (init,) = [e for e in mine if e["role"] == "container-init" and e["event"] == "exec"]
        assert init["pid"] == pid and init["cmdline"] == ["sleep", "1000"]
        assert any(e["role"] == "conmon" and e["pid"] == conmon for e in mine)
        assert any(e["role"] == "cli" and e["event"] == "exec" for e in events)
        assert summary["summary"]["command_exit_code"] == 0
    finally:
        subprocess.run([*base, "rm", "-f", "-t", "0", name], capture_output=True)
    assert not live(pid)


# -- the lab's own: up and down, touching nothing of the host's podman or containerd ----------


HOST_STATE = ("/var/lib/containers", "/run/containers", "/etc/containers", "/var/lib/containerd",
              "/run/containerd/containerd.sock", "/etc/cni/net.d")  # fmt: skip


def _snapshot(paths: tuple[str, ...]) -> dict[str, object]:
    """What each path is: absent, or a file's bytes / a directory's listing with mtimes."""
    out: dict[str, object] = {}
    for p in paths:
        if not os.path.lexists(p):
            out[p] = None
        elif os.path.isdir(p) and not os.path.islink(p):
            out[p] = sorted((f, os.lstat(os.path.join(p, f)).st_mtime_ns) for f in os.listdir(p))
        else:
            out[p] = os.lstat(p).st_mtime_ns
    return out


def test_a_second_lab_with_podman_and_containerd_goes_down_without_a_trace(lab_runtimes):
    """A lab of its own (its own dirs and bridge) with --podman and --containerd: up, seen by
    show, down; nothing of it left, the host's podman and containerd state as it was, and the
    shared lab's podman and ctr containers untouched."""
    base = Path(f"/tmp/rt-lab2-{os.getpid()}")  # podman wants a run root of <= 50 characters
    other = lab.LabPaths(run=base / "run", data=base / "data", bridge="dtlabr",
                         bridge_addr="172.29.240.1/24")  # fmt: skip
    before = _snapshot(HOST_STATE)
    shared = {c["name"]: c["state"] for c in (lab.status().podman or [])}
    try:
        status = lab.up(paths=other, podman=True, containerd=True)
        assert {c["name"] for c in status.podman or []} == {
            "lab-pm-plain", "lab-pm-init", "lab-pm-stopped"}  # fmt: skip
        assert {c["name"] for c in status.ctr or []} == {"lab-ctr-plain", "lab-ctr-exec"}
        doc = show_json("-H", "all")
        assert engines(doc, "podman", store=str(other.podman_root))
        assert [e for e in engines(doc, "containerd", namespace=other.ctr_namespace)
                if daemon_of(e, "containerd")["socket"] == str(other.cri_sock)]  # fmt: skip
    finally:
        done = lab.down(paths=other)
        if str(base) not in Path("/proc/self/mountinfo").read_text():
            shutil.rmtree(base, ignore_errors=True)
    assert not done.left, done.left
    assert any(r.startswith("podman container lab-pm-plain") for r in done.removed)
    assert any(r.startswith("ctr container lab-ctr-plain") for r in done.removed)
    for p in psutil.process_iter(["cmdline"]):
        assert str(base) not in " ".join(p.info["cmdline"] or []), p
    assert str(base) not in Path("/proc/self/mountinfo").read_text()
    assert not other.run.exists() and not other.data.exists()
    assert _snapshot(HOST_STATE) == before
    assert {c["name"]: c["state"] for c in (lab.status().podman or [])} == shared
