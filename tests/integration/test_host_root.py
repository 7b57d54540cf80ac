"""One host root: the same host walked through another root gives the same topology.

In a private mount namespace, the host's / is bind-mounted (recursively) under a temporary
directory, and then this namespace's own /run, /var/lib and /proc are covered by empty tmpfs
mounts: a read that does not go through the HostRoot finds nothing there (no /proc/<pid>, no
daemon.json, no bundle, no API socket), so the topology would differ.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.cli import CLI, ROOT, run_cli
from tests.support.lab import daemon_of
from tracer.ops.labconfig import LabPaths
from tracer.runtimes import observe

PROBE = """
import json, sys
from tracer.kernel.root import HostRoot
from tracer.runtimes import observe
root = HostRoot(sys.argv[1])
print(json.dumps(observe(root).topology.to_json()))
"""


def _elsewhere(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """argv run in a mount namespace of its own where the host's / is also at <tmp>/host and
    the host's /run, /var/lib and /proc are hidden (empty) at their usual places: only
    through <tmp>/host can it see them. `{host}` in argv stands for that path."""
    host = tmp_path / "host"
    host.mkdir()
    script = (
        "set -e; mount --make-rprivate /; "
        f"mount --rbind / {host}; "
        "for d in /run /var/lib /proc; do mount -t tmpfs hidden $d; done; "
        'exec "$@"'
    )
    argv = tuple(a.replace("{host}", str(host)) for a in argv)
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c", script, "sh", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def _through(tmp_path: Path) -> dict:
    out = _elsewhere(tmp_path, sys.executable, "-c", PROBE, "{host}")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _shape(doc: dict) -> list:
    """What must be the same: every engine's daemons, containers, processes and edges."""
    engines = []
    for e in doc["engines"]:
        containers = sorted(
            (
                c["id"],
                c["name"],
                c["state"],
                c["init_pid"],
                c["shim_pid"],
                json.dumps(c["namespaces"], sort_keys=True),
                sorted((p["pid"], p["ppid"], p["role"], p["create_time"]) for p in c["processes"]),
                sorted((p["pid"], p["host_port"]) for p in c["proxies"]),
            )
            for c in e["containers"]
        )
        edges = sorted((x["from"], x["to"], x["kind"], x["via"]) for x in e["edges"])
        engines.append(
            (daemon_of(e, "dockerd"), daemon_of(e, "containerd"), containers, edges, e["notes"])
        )
    return sorted(engines, key=json.dumps)


def _daemons(doc: dict) -> set[int]:
    return {d["pid"] for e in doc["engines"] for d in e.get("daemons", [])}


def test_the_same_host_through_another_root(lab_engine, tmp_path):
    # The whole host, walked twice: on a busy host an engine may start between the walks (a
    # socket-activated dockerd execs on its first connection): walk again until it held still.
    for _ in range(3):
        here = observe().topology.to_json()
        there = _through(tmp_path)
        if _daemons(here) == _daemons(there):
            break
    assert there["host"]["namespaces"] == here["host"]["namespaces"]
    assert there["host"]["hostname"] == here["host"]["hostname"]
    assert _shape(there) == _shape(here)
    lab = [
        e
        for e in there["engines"]
        if daemon_of(e, "dockerd")
        and daemon_of(e, "dockerd")["api_socket"] == str(LabPaths().docker_sock)
    ]
    (engine,) = lab
    # Proven through the root: the listener, the connected socket pair, the API's names.
    assert (
        daemon_of(engine, "containerd")["proven"] and daemon_of(engine, "containerd")["connected"]
    )
    assert (
        daemon_of(engine, "dockerd")["reachable"]
        and daemon_of(engine, "dockerd")["live_restore"] is True
    )
    assert {c["name"] for c in engine["containers"]} >= {"lab-web", "lab-sidecar", "lab-stopped"}


def test_ns_of_a_container_is_explained_the_same_through_another_root(lab_engine, tmp_path):
    """`ns CONTAINER` asks the engine why each namespace is shared: through --host-root too
    (the engine's socket, its daemon.json, under that root), as on the host."""
    sock = f"unix://{LabPaths().docker_sock}"
    args = ["ns", "--json", "-H", sock, "lab-web"]
    here = run_cli(*args, check=True)
    there = _elsewhere(tmp_path, *CLI, "--host-root", "{host}", *args)
    assert there.returncode == 0, there.stderr
    why = {n["type"]: n["why"] for n in json.loads(here.stdout)["namespaces"]}
    assert why["net"] and why["pid"]  # lab-sidecar joins lab-web's network and PID namespaces
    assert {n["type"]: n["why"] for n in json.loads(there.stdout)["namespaces"]} == why
