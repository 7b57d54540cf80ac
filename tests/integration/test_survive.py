"""`survive` against the lab's real engine: real restarts, checked independently."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import psutil

from tests.support.cli import run_cli
from tests.support.lab import live, ns_inodes, temporary
from tracer.ops import lab

PATHS = lab.LabPaths()
FOREIGN = lab.LabPaths(
    run=Path("/run/dtrace-foreign"),
    data=Path("/var/lib/dtrace-foreign"),
    bridge="dtfor0",
    bridge_addr="172.29.224.1/24",
)


def truth(client) -> dict[str, tuple[int, float, dict[str, int]]]:
    """id -> (init pid, its start time, its namespace inodes), read without dtrace-tree."""
    out = {}
    for c in client.containers.list():
        pid = client.api.inspect_container(c.id)["State"]["Pid"]
        out[c.id] = (pid, psutil.Process(pid).create_time(), ns_inodes(pid))
    return out


def survive_json(*args: str) -> tuple[int, dict]:
    proc = run_cli("survive", "--json", *args)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def test_dockerd_restart_keeps_every_container(client):
    before = truth(client)
    old_dockerd = lab.dockerd_pid(PATHS)
    code, report = survive_json()
    assert code == 0, report
    assert report["verdict"] == "survived"
    assert report["daemon"] == "dockerd"
    assert report["before"]["dockerd_pid"] == old_dockerd
    assert report["after"]["dockerd_pid"] == lab.dockerd_pid(PATHS) != old_dockerd
    assert report["before"]["containerd_pid"] == report["after"]["containerd_pid"]
    assert truth(client) == before  # same PIDs, start times and namespaces, checked by us
    assert {c["id"] for c in report["containers"]} == set(before)
    assert all(c["survived"] for c in report["containers"])
    assert isinstance(report["downtime_ms"], int) and report["downtime_ms"] >= 0
    assert report["api_back_ms"] >= report["downtime_ms"]
    # The daemon-down view: dockerd missing, every container still running under its shim.
    assert report["during"]["dockerd_pid"] is None
    assert report["during"]["containers_running"] == len(before)
    # docker-proxy came back with a new PID and the port was measured.
    (port,) = report["ports"]
    assert port["port"].startswith("tcp 127.0.0.1:")
    assert port["refused_ms"] >= 0


def test_containerd_restart_keeps_every_container(client):
    before = truth(client)
    old = lab.containerd_pid(PATHS)
    code, report = survive_json("--daemon", "containerd")
    assert code == 0, report
    assert report["verdict"] == "survived"
    new = lab.containerd_pid(PATHS)
    assert new and new != old and report["after"]["containerd_pid"] == new
    assert report["during"]["containerd_pid"] is None
    assert truth(client) == before
    # The restarted containerd is the same program with the same arguments.
    assert psutil.Process(new).cmdline() == report["restart"]["cmdline"]


def test_live_restore_off_is_refused_then_allow_downtime_reports_the_loss(client):
    run_cli("lab", "up", "--no-live-restore", check=True)
    try:
        before = truth(client)
        dockerd = lab.dockerd_pid(PATHS)
        code, report = survive_json()
        assert code == 6
        assert report["verdict"] == "refused"
        assert "live-restore" in report["notes"][0] and "SIGHUP" in report["notes"][0]
        assert {c["name"] for c in report["containers"]} == {
            c.name for c in client.containers.list()
        }
        assert lab.dockerd_pid(PATHS) == dockerd  # nothing was restarted
        assert truth(client) == before

        code, report = survive_json("--allow-downtime")
        assert code == 7
        assert report["verdict"] == "lost"
        lost = {c["name"] for c in report["containers"] if not c["survived"]}
        assert lost == {c["name"] for c in report["containers"]}
        assert all(not live(pid) for pid, _, _ in before.values())
    finally:
        run_cli("lab", "up", check=True)  # live-restore back on, demo containers started again
    assert len(client.containers.list()) == 5


def test_engine_not_owned_needs_yes_and_is_restarted_with_its_exact_command_line(lab_engine):
    url = FOREIGN.docker_host
    lab.up(paths=FOREIGN)
    try:
        old = lab.dockerd_pid(FOREIGN)
        argv, cwd = psutil.Process(old).cmdline(), psutil.Process(old).cwd()
        out = run_cli("survive", "-H", url)
        assert out.returncode == 6
        assert out.stderr.strip().splitlines() == [
            f"dtrace-tree: error: {FOREIGN.docker_sock} is not the lab: dtrace-tree restarts an "
            "engine it does not own only when told to (confirm with: dtrace-tree survive "
            f"-H {url} --daemon dockerd --yes)"
        ]
        assert lab.dockerd_pid(FOREIGN) == old

        code, report = survive_json("-H", url, "--yes")
        assert code == 0, report
        assert report["owned"] is False and report["verdict"] == "survived"
        new = lab.dockerd_pid(FOREIGN)
        assert new != old
        assert psutil.Process(new).cmdline() == argv
        assert psutil.Process(new).cwd() == cwd
        # The lab itself was not touched.
        assert report["engine"] == str(FOREIGN.docker_sock)
    finally:
        lab.down(paths=FOREIGN)


def test_errors_before_anything_changes(lab_engine, monkeypatch):
    out = run_cli("survive", "-H", "unix:///nonexistent.sock", "--yes")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "no engine listens on" in out.stderr
    out = run_cli("survive", "--daemon", "runc")
    assert (out.returncode, out.stderr.strip()) == (
        2,
        "dtrace-tree: error: --daemon runc: choose dockerd or containerd",
    )
    from typer.testing import CliRunner

    from tracer.cli import app

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = CliRunner().invoke(app, ["survive"])
    assert result.exit_code == 3
    assert (
        result.output.strip()
        == "dtrace-tree: error: survive needs root (run it with sudo, or as root)"
    )


def test_text_report_and_before_after_diagram(client, tmp_path):
    svg = tmp_path / "survive.svg"
    out = run_cli("survive", "--svg", str(svg), check=True).stdout
    assert "verdict: survived" in out
    assert "while it was down: dockerd missing" in out
    text = ET.tostring(ET.parse(svg).getroot(), encoding="unicode", method="text")
    for c in client.containers.list():
        pid = client.api.inspect_container(c.id)["State"]["Pid"]
        assert c.name in text and f"init pid {pid}" in text
    assert text.count("same process") == 5
    out = run_cli("survive", "--svg", "/proc/nope/x.svg")
    assert out.returncode == 10 and out.stderr.count("\n") == 1


def test_diff_of_snapshots_saved_around_a_restart_and_a_removal(client, tmp_path):
    """`diff` gives survive's verdict for changes someone else made, from two saved files."""

    def save(name: str) -> str:
        path = tmp_path / name
        path.write_text(run_cli("show", "--json", check=True).stdout)
        return str(path)

    def diff(a: str, b: str) -> tuple[int, dict[str, str]]:
        out = run_cli("diff", "--json", a, b)
        assert out.stdout, out.stderr
        doc = json.loads(out.stdout)
        return out.returncode, {c["name"]: c["verdict"] for c in doc["containers"]}

    demo = {c.name for c in client.containers.list()}
    with (
        temporary(client, "dtrace-diff-restarted", ["sleep", "600"]) as restarted,
        temporary(client, "dtrace-diff-removed", ["sleep", "600"]) as removed,
    ):
        before = save("before.json")
        code, report = survive_json()
        assert (code, report["verdict"]) == (0, "survived")
        survived = save("survived.json")
        code, verdicts = diff(before, survived)
        assert code == 0
        assert {n for n, v in verdicts.items() if v == "kept"} >= demo | {
            "dtrace-diff-removed",
            "dtrace-diff-restarted",
        }

        pid = client.api.inspect_container(restarted.id)["State"]["Pid"]
        removed_pid = client.api.inspect_container(removed.id)["State"]["Pid"]
        removed.remove(force=True)
        restarted.restart(timeout=0)
        new_pid = client.api.inspect_container(restarted.id)["State"]["Pid"]
        assert new_pid != pid
        after = save("after.json")
    code, verdicts = diff(survived, after)
    assert code == 1
    assert verdicts["dtrace-diff-removed"] == "removed"
    assert verdicts["dtrace-diff-restarted"] == "restarted"
    assert all(verdicts[name] == "kept" for name in demo)
    text = run_cli("diff", survived, after).stdout
    assert "dtrace-diff-removed" in text and "removed" in text

    # The same two snapshots side by side: one cluster per snapshot, each with its own PIDs.
    svg = tmp_path / "fleet.svg"
    run_cli("export", "--from", survived, "--from", after, "-o", str(svg), check=True)
    hosts: dict[str, str] = {}  # the host's place in the picture -> its containers' text
    for g in ET.parse(svg).getroot().iter("{http://www.w3.org/2000/svg}g"):
        title = g.findtext("{http://www.w3.org/2000/svg}title") or ""
        if g.get("class") == "node" and "_c_" in title:
            text = ET.tostring(g, encoding="unicode", method="text")
            hosts[title.split("_")[0]] = hosts.get(title.split("_")[0], "") + text
    assert f"init {pid}" in hosts["h0"] and f"init {removed_pid}" in hosts["h0"]
    assert f"init {new_pid}" in hosts["h1"] and f"init {removed_pid}" not in hosts["h1"]
