"""The stacks users run, in the lab: Debian sid's Docker 28 and containerd 2 (the 2026 stack),
beside the host's own packages, which stay untouched."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.support.cli import run_cli
from tests.support.waiting import wait_for
from tracer.ops import lab, labconfig
from tracer.ops.stacks import debs

PATHS_2026 = labconfig.LabPaths.of("2026")


def _installed(package: str) -> str:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package],
                         capture_output=True, text=True)  # fmt: skip
    return out.stdout


@pytest.fixture(scope="module")
def both_stacks(lab_engine):
    """The lab of each stack: the selected one ($DTRACE_LAB_STACK), and the other one, started
    here (the 2026 one downloaded into the cache the first time) and taken down at the end if
    it was not up."""
    other = labconfig.LabPaths.of("2023" if labconfig.selected_stack() == "2026" else "2026")
    was_up = lab.status(other).api
    host = {p: _installed(p) for p in ("docker.io", "containerd", "runc")}
    try:
        lab.up(paths=other)
    except Exception as exc:  # noqa: BLE001 - in CI this must fail loudly, not skip
        pytest.fail(f"the {other.stack} stack's lab did not start: {exc}")
    yield
    assert {p: _installed(p) for p in host} == host, "a stack changed the host's packages"
    if not was_up:
        lab.down(other)


def test_the_2026_stack_runs_docker_28_on_containerd_2_with_its_image_store(both_stacks):
    out = run_cli("lab", "status", "--stack", "2026", "--json", check=True)
    doc = json.loads(out.stdout)
    assert doc["stack"] == "2026" and doc["api"] is True and doc["live_restore"] is True
    versions = doc["versions"]
    assert int(versions["Engine"].split(".")[0]) >= 28
    assert versions["containerd"].startswith("2.")
    # bookworm's runc: sid's 1.3 needs a newer libc than this host has
    runc = subprocess.run(["/usr/sbin/runc", "--version"], capture_output=True, text=True)
    assert versions["runc"] in runc.stdout
    assert doc["storage"] == "overlayfs"  # the containerd image store, not overlay2
    assert json.loads(PATHS_2026.daemon_json.read_text())["features"] == {
        "containerd-snapshotter": True
    }
    text = run_cli("lab", "status", "--stack", "2026", check=True).stdout
    assert f"stack 2026: Engine {versions['Engine']}, containerd {versions['containerd']}" in text
    # Its daemons run the extracted packages, not the host's binaries.
    root = debs.cache_dir() / "stacks" / "2026" / "root"
    for pid in (doc["dockerd_pid"], doc["containerd_pid"]):
        assert psutil.Process(pid).exe().startswith(f"{root}/usr/")
    shims = [p for p in psutil.Process(doc["containerd_pid"]).children()] + [
        p for p in psutil.process_iter(["cmdline"])
        if str(PATHS_2026.containerd_sock) in (p.info["cmdline"] or [])
    ]  # fmt: skip
    assert any(p.exe() == f"{root}/usr/bin/containerd-shim-runc-v2" for p in shims)


def test_the_2026_stack_s_lab_is_separate_from_the_2023_one(both_stacks):
    old, new = labconfig.LabPaths.of("2023"), PATHS_2026
    # (other tests restart the labs' daemons: wait for each API)
    statuses = [wait_for(lambda p=p: (s := lab.status(p)).api and s, 90, f"the {p.stack} lab")
                for p in (old, new)]  # fmt: skip
    assert statuses[0].dockerd_pid != statuses[1].dockerd_pid
    assert {old.run, old.data, old.bridge} & {new.run, new.data, new.bridge} == set()
    assert statuses[0].versions["Engine"].startswith("20.10")
    assert int(statuses[1].versions["Engine"].split(".")[0]) >= 28


def test_a_stack_whose_package_cannot_be_had_exits_5_naming_it_and_leaves_nothing(
    monkeypatch, tmp_path
):
    from typer.testing import CliRunner

    from tracer.cli import app

    broken = labconfig.Stack(
        "2026", "a stack with a package Debian does not have", "sid",
        ("containerd", "dtrace-tree-no-such-package"), tmp_path / "run", tmp_path / "data",
        "dtlabx", "172.29.240.1/24",
    )  # fmt: skip
    monkeypatch.setitem(labconfig.STACKS, "2026", broken)
    monkeypatch.setenv(debs.CACHE_ENV, str(tmp_path / "cache"))
    bridges = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    result = CliRunner().invoke(app, ["lab", "up", "--stack", "2026"])
    assert result.exit_code == 5
    (line,) = [ln for ln in result.output.splitlines() if "error" in ln]
    assert "stack's package dtrace-tree-no-such-package cannot be had from Debian sid" in line
    # nothing half-installed: no lab directory, no bridge, no package in the cache
    assert not (tmp_path / "run").exists() and not (tmp_path / "data").exists()
    assert (
        subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.count("dtlabx")
        == bridges.count("dtlabx")
        == 0
    )
    home = tmp_path / "cache" / "stacks" / "2026"
    assert not (home / "root").exists() and not (home / "debs").exists()
    assert list(Path(home).glob("*.part")) == []
    assert os.path.exists(home / "apt" / "lists")  # only apt's own lists were written


def _host_as_the_lab_sees_it(paths: labconfig.LabPaths, user: str) -> dict:
    """What a lab may change on the host, restricted to what this lab would name (other
    helpers' engines come and go meanwhile)."""

    def lines(path: str) -> list[str]:
        text = Path(path).read_text() if os.path.exists(path) else ""
        return sorted(ln for ln in text.splitlines() if ln.startswith(user + ":"))

    links = subprocess.run(["ip", "-j", "link", "show", "type", "bridge"], capture_output=True,
                           text=True).stdout  # fmt: skip
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    mounts = Path("/proc/self/mountinfo").read_text()
    return {
        "users": lines("/etc/passwd") + lines("/etc/group"),
        "subids": lines("/etc/subuid") + lines("/etc/subgid"),
        "tun": oct(os.stat("/dev/net/tun").st_mode),
        "run user": os.path.isdir("/run/user") and sorted(os.listdir("/run/user")),
        "bridges": sorted(b["ifname"] for b in json.loads(links)
                          if b["ifname"].startswith(paths.bridge)),
        "iptables": [r for r in rules.splitlines() if paths.bridge in r],
        "mounts": [m for m in mounts.splitlines() if str(paths.run.parent) in m or user in m],
        "dirs": [p for p in (paths.run, paths.data) if p.exists()],
        "processes": sorted(
            p.pid for p in psutil.process_iter(["cmdline", "username"])
            if p.info["username"] == user or str(paths.run) in " ".join(p.info["cmdline"] or [])
        ),
    }  # fmt: skip


def test_lab_down_leaves_the_host_as_it_was_after_every_engine_of_a_stack(both_stacks):
    """A 2026 lab of the test's own, with a second, a socket-activated and a rootless engine:
    down removes all of it (users, subordinate ranges, /dev/net/tun's mode, mounts, bridges,
    iptables rules, processes, directories)."""
    import tempfile

    from tracer.ops.stacks import rootless

    top = Path(tempfile.mkdtemp(prefix="dtl", dir="/tmp"))
    paths = labconfig.LabPaths(top / "run", top / "data", "dtlabt", "172.29.240.1/24", "2026")
    user = rootless.RootlessEngine(paths).user
    before = _host_as_the_lab_sees_it(paths, user)
    tun = os.stat("/dev/net/tun").st_mode & 0o777
    try:
        status = lab.up(paths=paths, more=["second", "activated", "rootless"])
        assert {x["name"] for x in status.extras} == {"second", "activated", "rootless"}
        assert all(x["containers"] for x in status.extras)
        assert os.stat("/dev/net/tun").st_mode & 0o777 == 0o666
        if tun != 0o666:  # the lab wrote down what it changed, to undo it
            assert json.loads((paths.data / "rootless.json").read_text())["tun_mode"] == tun
        during = _host_as_the_lab_sees_it(paths, user)
        assert during["users"] and during["subids"] and during["processes"]
        assert len(during["bridges"]) == 3
    finally:
        done = lab.down(paths)
    assert done.left == []
    assert _host_as_the_lab_sees_it(paths, user) == before
    top.rmdir()
