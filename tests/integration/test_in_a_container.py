"""dtrace-tree run as platform teams run inspection tools: in a container with the host's PID
namespace and the host's / mounted read-only at /host, with a handful of capabilities, not
--privileged. It must give the host's answer (apart from its own container), and say which
capability or option is missing when one is.

No registry is reachable here, so the image is the lab's busybox with this machine's Python,
its libraries and the installed package mounted read-only (the Dockerfile builds the same
thing from a Python base image where one can be pulled).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.cli import ROOT, run_cli
from tests.support.lab import daemon_of
from tracer.ops import lab

LAB = f"unix://{lab.LabPaths().docker_sock}"
# The Python that runs the tests (a venv), its base, and this checkout (whichever worktree).
LIBS = ["/lib", "/lib64", "/usr/lib", sys.base_prefix, sys.prefix, str(ROOT)]
SHOW_CAPS = ["SYS_PTRACE"]
PROBE = f"dtrace-probe-{os.getpid()}"  # the container the tool runs in


def in_container(
    *args: str, caps: list[str], pid_host: bool = True, network_host: bool = False
) -> subprocess.CompletedProcess[str]:
    """`python -m tracer ARGS` in a throw-away container of the lab."""
    cmd = ["docker", "-H", LAB, "run", "--rm", "--name", PROBE, "--cap-drop", "ALL"]
    cmd += ["-e", "PATH=/bin"]
    cmd += [f"--cap-add={c}" for c in caps]
    cmd += ["--pid=host"] if pid_host else []
    cmd += ["--network=host"] if network_host else []
    cmd += ["-v", "/:/host:ro"]
    for path in LIBS:
        cmd += ["-v", f"{path}:{path}:ro"]
    cmd += ["-e", f"PYTHONPATH={ROOT}"]
    cmd += [lab.IMAGE, f"{sys.prefix}/bin/python", "-m", "tracer", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def engine_of(doc: dict) -> dict:
    (engine,) = [e for e in doc["engines"] if daemon_of(e, "dockerd")]
    return engine


def test_in_a_container_the_answer_is_the_hosts(lab_engine):
    inside = in_container("show", "--json", "-H", LAB, caps=SHOW_CAPS, network_host=True)
    assert inside.returncode == 0, inside.stderr
    assert "running in a container: reading the host through /host" in inside.stderr
    own = [line for line in inside.stderr.splitlines() if "itself runs in container" in line]
    assert len(own) == 1
    here = json.loads(run_cli("show", "--json", "-H", LAB, check=True).stdout)
    there = json.loads(inside.stdout)
    assert there["host"]["namespaces"] == here["host"]["namespaces"]
    a, b = engine_of(there), engine_of(here)
    assert (daemon_of(a, "dockerd"), daemon_of(a, "containerd")) == (
        daemon_of(b, "dockerd"),
        daemon_of(b, "containerd"),
    )
    assert daemon_of(a, "containerd")["proven"] and daemon_of(a, "containerd")["connected"]
    mine = {c["id"]: c for c in a["containers"]}
    for c in b["containers"]:
        assert mine.pop(c["id"]) == c, c["name"]
    assert len(mine) == 1  # the tool's own container, and nothing else
    (me,) = mine.values()
    assert me["id"][:12] in own[0]


def test_the_network_namespace_only_costs_the_connected_proof(lab_engine):
    inside = in_container("show", "--json", "-H", LAB, caps=SHOW_CAPS)
    cd = daemon_of(engine_of(json.loads(inside.stdout)), "containerd")
    assert cd is not None
    assert cd["proven"] is True and cd["connected"] is None  # unknown, not false


def test_each_missing_piece_is_named(lab_engine):
    no_ptrace = in_container("ns", "lab-web", caps=[])
    assert no_ptrace.returncode == 3
    assert "(run as root with CAP_SYS_PTRACE (in a container: --cap-add SYS_PTRACE))" in (
        no_ptrace.stderr
    )
    no_pid_host = in_container("show", caps=SHOW_CAPS, pid_host=False)
    assert no_pid_host.returncode == 3
    assert "the host's processes are not visible from here" in no_pid_host.stderr
    assert "--pid=host (Kubernetes: hostPID: true)" in no_pid_host.stderr


def test_trace_needs_the_hosts_network_namespace_and_net_admin(lab_engine):
    caps = ["SYS_PTRACE", "NET_ADMIN"]
    own_net = in_container("trace", "--duration", "0.5", caps=caps)
    assert own_net.returncode == 3
    assert "--network=host (Kubernetes: hostNetwork: true)" in own_net.stderr
    no_admin = in_container("trace", "--duration", "0.5", caps=["SYS_PTRACE"], network_host=True)
    assert no_admin.returncode == 3 and "CAP_NET_ADMIN" in no_admin.stderr
    ok = in_container("trace", "--duration", "0.5", "--json", caps=caps, network_host=True)
    assert ok.returncode == 0, ok.stderr
    summary = json.loads(ok.stdout.splitlines()[-1])
    assert summary["lost"] == 0


def test_fs_and_cgroup_in_a_container_are_the_hosts(lab_engine):
    caps = ["SYS_PTRACE", "DAC_READ_SEARCH"]
    for command in (["fs", "lab-web", "--json"], ["cgroup", "lab-web", "--json"]):
        inside = in_container(*command, "-H", LAB, caps=caps)
        assert inside.returncode == 0, inside.stderr
        here = json.loads(run_cli(*command, "-H", LAB, check=True).stdout)
        there = json.loads(inside.stdout)
        for layer in there.get("layers", []):  # the probe runs the lab's image too
            layer["shared_with"] = [n for n in layer["shared_with"] if n != PROBE]
        assert there == here, command
