"""Guarantees: never crash, never lie, never write, never leak; hostile containers stay inert.

Each test states one guarantee of docs/GUARANTEES.md.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support.cli import NOBODY, ROOT, run_as_nobody, run_cli
from tests.support.lab import daemon_of, lab_engine_json, show_json, temporary
from tracer import runtimes
from tracer.kernel.procfs import ProcessId
from tracer.kernel.root import HostRoot
from tracer.ops import daemon, lab
from tracer.snapshot import walk
from tracer.snapshot.host import is_parent

PATHS = lab.LabPaths()


# -- not root ------------------------------------------------------------------------------------


def test_unprivileged_user_gets_what_can_be_seen_and_a_hint(client):
    out = run_as_nobody("show", "--json")
    assert out.returncode == 0, out.stderr
    assert "run as root (or with CAP_SYS_PTRACE)" in out.stderr
    doc = json.loads(out.stdout)
    assert doc["host"]["root"] is False
    (engine,) = [
        e
        for e in doc["engines"]
        if daemon_of(e, "dockerd") and daemon_of(e, "dockerd")["pid"] == lab.dockerd_pid(PATHS)
    ]
    assert daemon_of(engine, "dockerd")["reachable"] is False
    assert "permission denied" in daemon_of(engine, "dockerd")["api_error"]
    # The chain itself is still drawn from /proc: every running container, by its shim.
    truth = {
        c.id: client.api.inspect_container(c.id)["State"]["Pid"] for c in client.containers.list()
    }
    got = {c["id"]: c["init_pid"] for c in engine["containers"]}
    assert got == truth
    assert all(c["namespaces"] == {} for c in engine["containers"])  # not readable: not invented

    out = run_as_nobody("ns", "lab-web")
    # Names need the API, which refused: never "no such container".
    assert out.returncode == 3, out.stderr
    assert "no container is named 'lab-web' among those whose names could be read" in out.stderr
    assert "(permission denied)" in out.stderr and "run as root" in out.stderr
    out = run_as_nobody("ns", "--json")  # the matrix: never "no running containers"
    assert out.returncode == 3
    unreadable = json.loads(out.stdout)["unreadable"]
    assert len(unreadable) >= len(truth)  # the lab's, and any other engine's
    assert f"the namespaces of {len(unreadable)} running containers could not be read" in out.stderr
    web_pid = truth[client.api.inspect_container("lab-web")["Id"]]
    out = run_as_nobody("ns", str(web_pid))
    assert out.returncode == 3
    assert out.stderr.strip() == (
        f"dtrace-tree: error: reading /proc/{web_pid}/ns: permission denied (run as root with "
        "CAP_SYS_PTRACE (in a container: --cap-add SYS_PTRACE))"
    )
    out = run_as_nobody("lab", "up")
    assert (out.returncode, out.stderr.strip()) == (
        3,
        "dtrace-tree: error: the lab needs root (run it with sudo, or as root)",
    )
    out = run_as_nobody("lab", "status")
    assert (out.returncode, out.stderr.strip()) == (
        3,
        "dtrace-tree: error: lab status needs root (run it with sudo, or as root)",
    )


# -- daemons down ------------------------------------------------------------------------------


def test_containerd_down_leaves_shims_and_containers_visible(client):
    truth = {
        c.id: client.api.inspect_container(c.id)["State"]["Pid"] for c in client.containers.list()
    }
    try:
        assert daemon.stop(daemon.identify(lab.containerd_pid(PATHS)), timeout=30)
        doc = show_json()
        engine = lab_engine_json(doc)
        assert daemon_of(engine, "containerd") is None
        assert any("containerd for this dockerd not found" in n for n in engine["notes"])
        # each container once, with its process, under dockerd
        got = {c["id"]: c["init_pid"] for c in engine["containers"] if c["init_pid"]}
        assert got == truth
        assert not {c["id"] for c in doc["orphans"]} & set(truth)
        names = [c["name"] for c in engine["containers"]]
        text = run_cli("show", "-H", PATHS.docker_host, check=True).stdout
        assert "containerd not found" in text
        if PATHS.stack == "2023":  # dockerd 20.10 lists its containers from its own records
            assert len(names) == len(set(names)) and None not in names
            assert "lab-web" in text
        else:  # dockerd 28 on the containerd image store: its list waits for containerd
            assert any(n.startswith("API unreachable") for n in engine["notes"])
            assert "container names are missing" in text
    finally:
        run_cli("lab", "up", check=True)
    assert {
        c.id: client.api.inspect_container(c.id)["State"]["Pid"] for c in client.containers.list()
    } == truth


def test_docker_socket_missing_or_refusing(lab_engine, tmp_path):
    """The API view of a socket that is not there, or that nobody serves."""
    from tracer.runtimes.docker import RUNTIME

    assert RUNTIME.ask(str(tmp_path / "missing.sock")).error == "no such file or directory"
    import socket

    dead = tmp_path / "dead.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(dead))
    s.close()  # bound, never listening: connect() is refused
    assert RUNTIME.ask(str(dead)).error == "connection refused"


# -- hostile containers ---------------------------------------------------------------------------

INVALID = "exec sh -c 'sleep 2147483647; :' \"$(printf '\\377\\033]0;owned\\007\\033[2J')\""


def test_invalid_utf8_and_escapes_in_a_command_line(client):
    with temporary(
        client,
        "lab-invalid",
        ["sh", "-c", INVALID],
        labels={"evil": "\x1b]0;title\x07<script>x</script>"},
    ):
        raw = subprocess.run(
            [sys.executable, "-m", "tracer", "show", "lab-invalid"],
            capture_output=True, cwd=ROOT, env={**os.environ, "NO_COLOR": "1"},
        ).stdout  # fmt: skip
        text = raw.decode("utf-8")  # strictly valid UTF-8
        assert "\x1b" not in text and "\x07" not in text
        assert "\\xff\\x1b]0;owned\\x07\\x1b[2J" in text
        raw_json = subprocess.run(
            [sys.executable, "-m", "tracer", "show", "--json", "lab-invalid"],
            capture_output=True, cwd=ROOT,
        ).stdout  # fmt: skip
        doc = json.loads(raw_json.decode("utf-8"))
        (got,) = lab_engine_json(doc)["containers"]
        assert got["processes"][0]["cmdline"][-1] == "\\xff\x1b]0;owned\x07\x1b[2J"
        ns_raw = subprocess.run(
            [sys.executable, "-m", "tracer", "ns", "--json", "lab-invalid"],
            capture_output=True, cwd=ROOT,
        ).stdout  # fmt: skip
        json.loads(ns_raw.decode("utf-8"))


def test_a_very_long_command_line_is_cut_in_the_tree_and_whole_in_json(client):
    long_arg = "A" * 100_000
    with temporary(
        client,
        "lab-long",
        ["sh", "-c", f"sleep 2147483647; : {long_arg}"],
    ):
        text = run_cli("show", "lab-long", check=True).stdout
        assert max(len(line) for line in text.splitlines()) < 250
        assert "…" in text
        (got,) = lab_engine_json(show_json("lab-long"))["containers"]
        assert got["processes"][0]["cmdline"][2].endswith(long_arg)


# -- read-only, no secrets -------------------------------------------------------------------------

WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC")
MUTATING = re.compile(r'"(POST|PUT|DELETE|PATCH) /')


def straced(tmp_path: Path, *args: str) -> str:
    log = tmp_path / "strace.log"
    subprocess.run(
        ["strace", "-f", "-qq", "-s", "200", "-o", str(log),
         "-e", "trace=open,openat,creat,unlink,unlinkat,rename,renameat,renameat2,mkdir,mkdirat,"
               "rmdir,truncate,sendto,sendmsg,write",
         sys.executable, "-m", "tracer", *args],
        capture_output=True, cwd=ROOT, check=True, timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "NO_COLOR": "1"},
    )  # fmt: skip
    return log.read_text(errors="replace")


@pytest.mark.parametrize(
    "args", [["show", "--json"], ["show", "-a"], ["ns", "--json"], ["ns", "lab-sidecar"]]
)
def test_read_commands_write_nothing_and_only_get_from_the_api(lab_engine, tmp_path, args):
    trace = straced(tmp_path, *args)
    assert_only_reads(trace)
    assert re.search(r'"GET /v[\d.]+/containers/json', trace), "the API was not asked at all"


def assert_only_reads(trace: str, output: str | None = None) -> None:
    """No file changed or opened for writing (but output), no mutating API request, no
    process environment read."""
    may_write = "/dev/null|/dev/tty" + (f"|{re.escape(output)}" if output else "")
    for line in trace.splitlines():
        call = re.match(r"\d+\s+(\w+)\(", line)
        if not call:
            continue
        name = call.group(1)
        assert name not in ("unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir",
                            "mkdirat", "rmdir", "truncate", "creat"), line  # fmt: skip
        if name in ("open", "openat") and WRITE_FLAGS.search(line):
            assert re.search(rf'"({may_write})"', line), f"write-open: {line}"
        assert not MUTATING.search(line), f"mutating API request: {line}"
        assert not re.search(r'"/proc/[^"]*/environ"', line), f"read an environment: {line}"


# -- races -----------------------------------------------------------------------------------------


def test_walks_under_process_and_container_churn(client):
    """Processes and containers come and go while we walk: no crash, no phantom edge
    anywhere on the host, no process of the lab's engine (where the churn is) attributed to
    the wrong container (checked against its cgroup: other engines of the host may run with no
    cgroup of their own per container, as rootless Docker on cgroup v1 does)."""
    stop = threading.Event()

    def processes():
        while not stop.is_set():
            subprocess.run(["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do (sleep 0.02 &); done"])

    def containers():
        while not stop.is_set():
            c = client.containers.run("dtrace-lab/busybox:latest", ["sh", "-c", "sleep 0.3"],
                                      detach=True, labels={"churn": "1"})  # fmt: skip
            c.wait()
            c.remove(force=True)

    workers = [threading.Thread(target=f, daemon=True) for f in (processes, containers)]
    for w in workers:
        w.start()
    walks = int(os.environ.get("DTRACE_CHURN_WALKS", "150"))
    checked = 0
    try:
        for _ in range(walks):
            snap = walk.take(HostRoot(), runtimes.RUNTIMES)
            topo = runtimes.build(snap)
            for engine in topo.engines:
                for edge in engine.edges:
                    if edge.kind == "parent":
                        parent, child = snap.procs.get(edge.src), snap.procs.get(edge.dst)
                        assert child is not None and is_parent(parent, child), edge
                if not _is_the_labs(engine):
                    continue
                for c in engine.containers:
                    for p in c.processes:
                        checked += _in_cgroup_of(snap.procs[p.pid].ident, c.id)
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert checked > walks  # the cgroup check really ran


def _is_the_labs(engine: object) -> bool:
    """The engine whose dockerd serves the lab's socket."""
    sock = str(PATHS.docker_sock)
    return any(getattr(d, "api_socket", None) == sock for d in getattr(engine, "daemons", []))


def _in_cgroup_of(ident: ProcessId, cid: str) -> int:
    """1 if that very process is in container cid's cgroup; 0 if it is gone (or its PID now
    belongs to another process: nothing to check)."""
    try:
        cgroup = Path(f"/proc/{ident.pid}/cgroup").read_text()
    except OSError:
        return 0
    if not ident.alive(HostRoot()):  # read after the cgroup: still the same process then
        return 0
    assert cid in cgroup, (
        f"process {ident.pid} attributed to {cid[:12]} but its cgroup is {cgroup!r}"
    )
    return 1


def test_a_host_with_thousands_of_processes(lab_engine):
    procs = [subprocess.Popen(["sleep", "600"]) for _ in range(2000)]
    try:
        doc = show_json()
        assert doc["host"]["processes"] >= 2000
        assert lab_engine_json(doc)["containers"]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def test_export_writes_only_its_output_file(lab_engine, tmp_path):
    out = tmp_path / "lab.svg"
    trace = straced(tmp_path, "export", "--svg", "-o", str(out))
    assert out.stat().st_size > 0
    assert_only_reads(trace, output=str(out))


def test_run_sh_as_non_root_names_the_whole_command():
    out = subprocess.run(
        [*NOBODY, "sh", str(ROOT / "run.sh"), "demo"], capture_output=True, text=True, cwd="/"
    )
    assert out.returncode == 3
    assert out.stderr.strip().endswith(f"sudo {ROOT / 'run.sh'} demo")
