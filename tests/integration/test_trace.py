"""`trace` against the lab's real engine: each lifecycle traced by the real CLI and compared
with ground truth read here, independently (the Docker API's State.Pid, /proc/<pid>/stat and
/proc/<pid>/ns of the running container, the shim's command line)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import psutil
import pytest

from tests.support.cli import CLI, ROOT, one_error_line, run_cli
from tests.support.lab import live, ns_inodes, temporary
from tests.support.waiting import read_line
from tracer.model.trace import ROLES
from tracer.ops import lab

PATHS = lab.LabPaths()
DOCKER = ["docker", "-H", PATHS.docker_host]
IMAGE = "dtrace-lab/busybox:latest"
CONTAINER_NS = {"ipc", "mnt", "net", "pid", "uts"}  # what Docker makes new for a container


def name(what: str) -> str:
    return f"trace-{what}-{uuid.uuid4().hex[:8]}"


def trace_json(*command: str, extra: tuple[str, ...] = ()) -> tuple[list[dict], dict, str]:
    """The events and the summary of `trace --json -- command`, and its stderr."""
    out = run_cli("trace", "--json", *extra, "--", *command)
    assert out.returncode == 0, out.stderr
    docs = [json.loads(line) for line in out.stdout.splitlines()]  # nothing but JSON lines
    *events, summary = docs
    assert all("summary" not in e for e in events) and "summary" in summary
    assert summary["events"] == len(events)
    return events, summary, out.stderr


def story(summary: dict, cid: str) -> dict:
    (found,) = [c for c in summary["summary"]["containers"] if c["id"] == cid]
    return found


def mine(events: list[dict], cid: str) -> list[dict]:
    return [e for e in events if e["container"] == cid]


def shim_of(pid: int) -> int:
    return psutil.Process(pid).ppid()


# -- docker run ---------------------------------------------------------------------------------


def test_docker_run_matches_ground_truth(client):
    ctr = name("run")
    try:
        events, summary, stderr = trace_json(*DOCKER, "run", "-d", "--name", ctr, IMAGE,
                                             "sleep", "1000")  # fmt: skip
        cid = client.api.inspect_container(ctr)["Id"]
        pid = client.api.inspect_container(ctr)["State"]["Pid"]
        assert cid in stderr  # docker run -d prints the id: on stderr, never in the JSON
        s = story(summary, cid)
        assert s["name"] == ctr
        assert s["init_pid"] == pid
        assert s["shim_pid"] == shim_of(pid)
        assert s["init"]["namespaces"] == ns_inodes(pid)
        assert s["init"]["parent_at_exec"] == shim_of(pid)
        assert {k for k, v in s["init"]["ns_change"].items() if v == "new"} >= CONTAINER_NS
        # containerd 2.1 (the 2026 stack) was seen running two `shim start`s, the first of which
        # exits before `create`: the steps, in order, each once
        steps = [w for w in s["what"] if w != "shim exit"]
        steps = [w for i, w in enumerate(steps) if i == 0 or w != steps[i - 1]]
        assert steps[:4] == ["shim start", "create", "start", "init exec"]
        assert 0 < s["started_in_ns"] < 10e9
        roles = {e["role"] for e in mine(events, cid)}
        assert {"shim-start", "shim", "runc-create", "runc-init", "runc-start",
                "container-init"} <= roles  # fmt: skip
        # dockerd 20.10's libnetwork-setkey prestart hook; dockerd 28 (the 2026 stack) runs none
        assert ("hook" in roles) == (lab.LabPaths().stack == "2023")
        (init_exec,) = [e for e in mine(events, cid) if e["role"] == "container-init"]
        assert (init_exec["pid"], init_exec["event"]) == (pid, "exec")
        assert init_exec["cmdline"] == ["sleep", "1000"]
        assert init_exec["ppid"] == shim_of(pid)
        shim = [e for e in mine(events, cid) if e["role"] == "shim" and e["event"] == "exec"]
        assert shim[0]["pid"] == shim_of(pid) and "-id" in shim[0]["cmdline"]
        assert shim[0]["cmdline"][shim[0]["cmdline"].index("-id") + 1] == cid
        start, *again = [
            e for e in mine(events, cid) if e["role"] == "shim-start" and e["event"] == "fork"
        ]
        assert start["ppid"] == lab.containerd_pid(PATHS) and start["parent_role"] == "containerd"
        assert len(again) <= 1  # containerd 2.1's second `shim start`
        stages = [e for e in mine(events, cid) if e["event"] == "fork" and e["role"] == "runc-init"]
        creates = {e["pid"] for e in mine(events, cid) if e["role"] == "runc-create"}
        assert len(stages) == 3 and {e["ppid"] for e in stages} <= creates  # CLONE_PARENT
        cli = [e for e in events if e["role"] == "cli" and e["event"] == "exec"]
        assert (
            cli[0]["cmdline"][:3] == DOCKER and cli[0]["pid"] == summary["summary"]["command_pid"]
        )
        assert summary["summary"]["command_exit_code"] == 0
        assert summary["lost"] == 0 and summary["summary"]["loss"]["drops"] == 0
        times = [e["t_ns"] for e in events]
        assert times == sorted(times)
        assert {e["role"] for e in events} <= set(ROLES)
    finally:
        client.api.remove_container(ctr, force=True)


def test_docker_run_init_makes_docker_init_the_init(client):
    ctr = name("init")
    try:
        events, summary, _ = trace_json(*DOCKER, "run", "-d", "--init", "--name", ctr, IMAGE,
                                        "sleep", "1000")  # fmt: skip
        info = client.api.inspect_container(ctr)
        pid, cid = info["State"]["Pid"], info["Id"]
        s = story(summary, cid)
        assert s["init_pid"] == pid and s["init"]["cmdline"][0].endswith("docker-init")
        (child,) = [e for e in mine(events, cid) if e["role"] == "container-process"
                    and e["event"] == "exec"]  # fmt: skip
        assert child["cmdline"] == ["sleep", "1000"]
        assert psutil.Process(child["pid"]).ppid() == pid
    finally:
        client.api.remove_container(ctr, force=True)


def test_hostile_command_line_is_traced_inert(client):
    ctr = name("hostile")
    # `& wait`: busybox sh would exec a last simple command, and its argv with it.
    hostile = "sleep 1000 & wait # \x1b]0;pwned\x07\x1b[31m\u202e [bold]x[/bold]"
    try:
        out = run_cli(
            "trace", "--", *DOCKER, "run", "-d", "--name", ctr, IMAGE, "sh", "-c", hostile
        )
        assert out.returncode == 0, out.stderr
        pid = client.api.inspect_container(ctr)["State"]["Pid"]
        assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[2] == hostile.encode()
        assert "\x1b" not in out.stdout and "\u202e" not in out.stdout
        init = [line for line in out.stdout.splitlines() if line.strip().startswith("init ")]
        assert init and f"{pid} `sh -c sleep 1000 & wait # \\x1b]0;pwned\\x07" in init[0]
    finally:
        client.api.remove_container(ctr, force=True)


def test_the_story_diagram_of_a_real_run(client, tmp_path):
    ctr = name("svg")
    try:
        out = run_cli("trace", "--svg", "-o", str(tmp_path / "run.svg"), "--", *DOCKER, "run",
                      "-d", "--name", ctr, IMAGE, "sleep", "1000")  # fmt: skip
        assert out.returncode == 0, out.stderr
        pid = client.api.inspect_container(ctr)["State"]["Pid"]
        svg = ET.parse(tmp_path / "run.svg").getroot()
        texts = " ".join(t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text"))
        assert f"init {pid} execs at" in texts and ctr in texts
    finally:
        client.api.remove_container(ctr, force=True)


# -- docker exec, stop, rm -f -------------------------------------------------------------------


def test_docker_exec_joins_the_container_s_namespaces(client):
    with temporary(client, name("exec"), ["sleep", "1000"]) as ctr:
        info = client.api.inspect_container(ctr.id)
        pid = info["State"]["Pid"]
        events, summary, _ = trace_json(*DOCKER, "exec", ctr.name, "sleep", "0.3")
        s = story(summary, ctr.id)
        assert s["what"] == ["exec"] and s["init"] is None
        (entry,) = s["execs"]
        assert entry["cmdline"] == ["sleep", "0.3"]
        # Its parent when it execs: runc exec while it still runs, else the shim (subreaper).
        runc = {e["pid"] for e in mine(events, ctr.id) if e["role"] == "runc-exec"}
        assert entry["parent_at_exec"] in runc | {shim_of(pid)}
        assert {k: v for k, v in entry["namespaces"].items()} == ns_inodes(pid)
        joined = {k for k, v in entry["ns_change"].items() if v == f"joined:{ctr.id}"}
        assert joined >= CONTAINER_NS
        ends = [
            e for e in mine(events, ctr.id) if e["pid"] == entry["pid"] and e["event"] == "exit"
        ]
        assert ends[0]["exit_code"] == 0 and ends[0]["role"] == "exec-process"
        assert 0.25e9 < ends[0]["lifetime_ns"] < 5e9
        assert {"runc-exec", "runc-init", "exec-process"} <= {
            e["role"] for e in mine(events, ctr.id)
        }


def test_a_short_docker_exec_still_gets_its_namespaces(client):
    """`docker exec c true` exits ~1 ms after its exec, often before /proc/<pid>/ns can be read:
    the namespaces read at runc:[2:INIT]'s rename (already the container's) stand in (§9a)."""
    with temporary(client, name("short"), ["sleep", "1000"]) as ctr:
        pid = client.api.inspect_container(ctr.id)["State"]["Pid"]
        events, summary, _ = trace_json(*DOCKER, "exec", ctr.name, "true")
        (entry,) = story(summary, ctr.id)["execs"]
        truth = ns_inodes(pid)
        assert {k: entry["namespaces"][k] for k in CONTAINER_NS} == {
            k: truth[k] for k in CONTAINER_NS
        }


def test_docker_stop_sends_15_then_9_and_deletes(client):
    with temporary(client, name("stop"), ["sleep", "1000"]) as ctr:
        pid = client.api.inspect_container(ctr.id)["State"]["Pid"]
        shim = shim_of(pid)
        events, summary, _ = trace_json(*DOCKER, "stop", "-t", "1", ctr.name)
        s = story(summary, ctr.id)
        # PID 1 of a PID namespace ignores SIGTERM it has no handler for: the second kill.
        assert s["what"][:4] == ["kill 15", "kill 9", "init signal 9", "delete"]
        assert s["init_exit"]["pid"] == pid and s["init_exit"]["signal"] == 9
        assert not live(pid) and not live(shim)
        shim_end = [e for e in events if e["pid"] == shim and e["event"] == "exit"]
        assert shim_end[0]["role"] == "shim" and shim_end[0]["container"] == ctr.id
        kills = [
            e for e in mine(events, ctr.id) if e["role"] == "runc-kill" and e["event"] == "fork"
        ]
        assert len(kills) == 2 and 0.9e9 < kills[1]["t_ns"] - kills[0]["t_ns"] < 5e9
        assert "shim delete" in s["what"]


def test_docker_rm_f_kills_deletes_and_the_shim_goes(client):
    ctr = name("rmf")
    client.containers.run(IMAGE, ["sleep", "1000"], name=ctr, detach=True)
    info = client.api.inspect_container(ctr)
    pid, cid = info["State"]["Pid"], info["Id"]
    shim = shim_of(pid)
    events, summary, _ = trace_json(*DOCKER, "rm", "-f", ctr)
    s = story(summary, cid)
    assert s["what"][:3] == ["kill 9", "init signal 9", "delete"]
    assert "shim exit" in s["what"] and "shim delete" in s["what"]
    assert s["shim_pid"] == shim
    assert [e["event"] for e in events if e["pid"] == pid] == ["exit"]  # born before the trace
    assert not live(pid) and not live(shim)


# -- a dockerd restart under live-restore --------------------------------------------------------

PRIVATE = lab.LabPaths(
    run=Path("/run/dtrace-trace"),
    data=Path("/var/lib/dtrace-trace"),
    bridge="dttrace0",
    bridge_addr="172.29.248.1/24",
)


def test_dockerd_restart_under_live_restore_ends_only_the_daemon(lab_engine):
    """A lab of this test's own (the shared one keeps running), restarted by `survive` while
    traced: dockerd and docker-proxy end and start again; no shim and no container process
    ends, and every container keeps its init PID."""
    import docker

    lab.up(paths=PRIVATE)
    try:
        c = docker.DockerClient(base_url=PRIVATE.docker_host, timeout=60)
        before = {x.id: c.api.inspect_container(x.id)["State"]["Pid"] for x in c.containers.list()}
        inside = {p.pid for pid in before.values() for p in [psutil.Process(pid)]
                  + psutil.Process(pid).children(recursive=True)}  # fmt: skip
        shims = {shim_of(pid) for pid in before.values()}
        old = lab.dockerd_pid(PRIVATE)
        events, summary, _ = trace_json(*CLI, "survive", "-H", PRIVATE.docker_host, "--yes")
        after = {x.id: c.api.inspect_container(x.id)["State"]["Pid"] for x in c.containers.list()}
        new = lab.dockerd_pid(PRIVATE)
        assert after == before and new != old
        ended = {e["pid"] for e in events if e["event"] == "exit"}
        assert old in ended and not (inside | shims) & ended
        (gone,) = [e for e in events if e["pid"] == old]
        assert (gone["role"], gone["born_ns"]) == ("dockerd", None)
        started = [e for e in events if e["event"] == "exec" and e["pid"] == new]
        assert started[0]["role"] == "dockerd" and str(PRIVATE.docker_sock) in " ".join(
            started[0]["cmdline"]
        )
        proxies = [
            e for e in events if e["role"] == "docker-proxy" and e["event"] in ("fork", "exit")
        ]
        assert {e["event"] for e in proxies} == {"fork", "exit"}
        c.close()
    finally:
        lab.down(paths=PRIVATE)


# -- loss, privileges, namespaces, exit status ---------------------------------------------------

BURST = 1500
STOPPED_BURST = (
    "kill -STOP $PPID; i=0; while [ $i -lt {n} ]; do /bin/true; i=$((i+1)); done; kill -CONT $PPID"
)


def test_a_stalled_reader_with_a_small_buffer_reports_its_loss_and_a_large_one_loses_nothing():
    """The command stops the tracer (SIGSTOP, its parent) while it runs 1,500 processes, then
    lets it go on: a reader that cannot keep up. With a 4 KiB buffer the kernel drops events and
    the trace says how many; with the default one it loses none and sees every process."""
    script = STOPPED_BURST.format(n=BURST)
    out = run_cli("trace", "--json", "--buffer", "4096", "--", "sh", "-c", script)
    assert out.returncode == 0, out.stderr
    *events, summary = [json.loads(line) for line in out.stdout.splitlines()]
    shell = summary["summary"]["command_pid"]
    seen = sum(1 for e in events if e["event"] == "fork" and e["ppid"] == shell)
    loss = summary["summary"]["loss"]
    assert summary["lost"] > 0 and loss["overflows"] > 0 and loss["drops"] > 0
    assert seen < BURST and seen + summary["lost"] >= BURST  # every missing one is counted
    assert "events were lost" in out.stderr
    text = run_cli("trace", "--buffer", "4096", "--", "sh", "-c", script)
    assert "LOST at least" in text.stdout
    out = run_cli("trace", "--json", "--", "sh", "-c", script)
    *events, summary = [json.loads(line) for line in out.stdout.splitlines()]
    assert summary["lost"] == 0
    # Read late (the tracer was stopped), their argv is gone: counted by their forks.
    shell = summary["summary"]["command_pid"]
    assert sum(1 for e in events if e["event"] == "fork" and e["ppid"] == shell) == BURST


def test_not_root_or_without_cap_net_admin_is_one_line_exit_3():
    from tests.support.cli import run_as_nobody

    out = run_as_nobody("trace", "--duration", "1")
    assert out.returncode == 3
    one_error_line(out.stderr, "trace", "needs root", "CAP_NET_ADMIN", "sudo")
    no_cap = subprocess.run(["setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin",
                             *CLI, "trace", "--duration", "1"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert no_cap.returncode == 3
    one_error_line(no_cap.stderr, "needs root", "CAP_NET_ADMIN")


@pytest.mark.parametrize(
    ("unshare", "says"),
    [
        (
            ["--pid", "--fork"],
            ("did not acknowledge the subscription", "a non-initial PID namespace"),
        ),
        (
            ["--user", "--map-root-user"],
            ("did not acknowledge the subscription", "a user namespace"),
        ),
        # With its own /proc, the tool sees it is not in the host's PID namespace before asking.
        (
            ["--pid", "--fork", "--mount-proc"],
            ("the host's processes are not visible", "--pid=host"),
        ),
    ],  # fmt: skip
)
def test_in_a_namespace_the_kernel_ignores_the_trace_says_so(unshare, says):
    """The kernel drops subscriptions from non-initial PID and user namespaces without an
    error; events may even arrive (another listener's): never an empty trace, exit 3."""
    out = subprocess.run(["unshare", *unshare, *CLI, "trace", "--duration", "1"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert out.returncode == 3, out.stderr
    one_error_line(out.stderr, *says)
    assert out.stdout == ""


def test_the_command_s_failure_is_reported_and_becomes_the_exit_status():
    out = run_cli("trace", "--json", "--", "sh", "-c", "exit 7")
    assert out.returncode == 7
    assert "the traced command exited 7" in out.stderr
    assert json.loads(out.stdout.splitlines()[-1])["summary"]["command_exit_code"] == 7
    killed = run_cli("trace", "--", "sh", "-c", "kill -TERM $$")
    assert killed.returncode == 128 + 15 and "killed by signal 15" in killed.stderr
    bad = Path("/tmp/dtrace-trace-not-a-program")
    bad.write_text("no interpreter line\0\0")
    bad.chmod(0o755)
    try:
        out = run_cli("trace", "--", str(bad))
        assert out.returncode == 126
        one_error_line(out.stderr, "Exec format error")
    finally:
        bad.unlink()


def test_ctrl_c_ends_a_trace_without_a_command_and_prints_it():
    proc = subprocess.Popen([*CLI, "trace", "--all"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"})  # fmt: skip
    line = read_line(proc.stderr, 60, "trace to say it traces")
    assert line.startswith("dtrace-tree: tracing until Ctrl-C"), line
    subprocess.run(["true"])
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.startswith("trace (stopped by Ctrl-C)")
    assert " true" in out or "/true" in out


def test_trace_json_imports_neither_graphviz_nor_the_terminal_views():
    from tests.support.cli import HEAVY, modules_after

    mods = modules_after("trace", "--json", "--duration", "0.3")
    assert "tracer.kernel.connector" in mods  # it did trace
    assert not {"graphviz", "rich.table", "rich.tree", "tracer.output.terminal.trace"} & mods
    assert not HEAVY & mods
