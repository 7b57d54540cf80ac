"""`fs` and `cgroup` as commands, on made-up hosts: exit codes, one-line errors, JSON on stdout
and notes on stderr, and what they import (tests/integration/test_fs_cgroup.py runs them on
the lab)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.cli import HEAVY, invoke, modules_after
from tests.support.topologies import HOST_NS, dockerd, engine, running
from tests.support.trees import CID as CG_ID
from tests.support.trees import ME, V2_LIMITED, record, v2_tree
from tests.support.trees import PID as CG_PID
from tracer.app.service import Service
from tracer.kernel import cgroupfs, mountinfo
from tracer.kernel import root as root_module
from tracer.model.topology import Container, Topology


def _host(monkeypatch: pytest.MonkeyPatch, top: Path, *containers: Container) -> None:
    """The commands see these containers, and a host whose / is top."""
    topo = Topology(engines=[engine(dockerd(), containers=list(containers))],
                    host={"namespaces": HOST_NS})  # fmt: skip
    monkeypatch.setattr(Service, "live", lambda self: topo)
    monkeypatch.setattr(Service, "root", lambda self: root_module.HostRoot(str(top)))


def test_fs_json_on_stdout_notes_on_stderr(monkeypatch, tmp_path):
    record(tmp_path)
    _host(monkeypatch, tmp_path, running(ME, "web", 90, [100]))
    out = invoke("fs", "--json", "web")
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["schema"] == "dtrace-tree/fs/1" and doc["container"]["name"] == "web"
    assert [x["role"] for x in doc["layers"]] == ["rw", "init", "image", "image"]
    assert doc["changes"]["files"] is None  # listed with --changes only
    listed = json.loads(invoke("fs", "--json", "--changes", "web").stdout)
    assert len(listed["changes"]["files"]) == 3


def test_fs_exits_3_when_nothing_could_be_read(monkeypatch, tmp_path):
    _host(monkeypatch, tmp_path, running(ME, "web", 90, [100]))

    def denied(root, pid):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(mountinfo, "read", denied)
    out = invoke("fs", "web")
    assert out.exit_code == 3
    assert out.stderr.strip() == (
        "dtrace-tree: error: reading /proc/100/mountinfo: permission denied (run as root with "
        "CAP_SYS_PTRACE (in a container: --cap-add SYS_PTRACE))"
    )


def test_fs_of_an_unknown_container_exits_2(monkeypatch, tmp_path):
    _host(monkeypatch, tmp_path, running(ME, "web", 90, [100]))
    out = invoke("fs", "webb")
    assert out.exit_code == 2
    assert out.stderr.strip() == "dtrace-tree: error: no such container: 'webb' (did you mean web?)"


def test_cgroup_json_and_text(monkeypatch, tmp_path):
    v2_tree(tmp_path, f"/system.slice/docker-{CG_ID}.scope", **V2_LIMITED)
    _host(monkeypatch, tmp_path, running(CG_ID, "api", 4200, [CG_PID]))
    doc = json.loads(invoke("cgroup", "--json", "api").stdout)
    assert doc["schema"] == "dtrace-tree/cgroup/1"
    assert (doc["version"], doc["driver"], doc["limits"]["cpus"]) == (2, "systemd", 0.5)
    text = invoke("cgroup", "api").stdout
    assert "cgroup v2 (unified)  driver systemd" in text and "0.5 (50000 / 100000 us)" in text


def test_cgroup_of_a_stopped_container_exits_9(monkeypatch, tmp_path):
    stopped = Container(id=CG_ID, name="old", image="busybox", state="exited")
    _host(monkeypatch, tmp_path, stopped)
    out = invoke("cgroup", "old")
    assert out.exit_code == 9
    assert out.stderr.strip() == (
        "dtrace-tree: error: old is exited: a stopped container has no process, so it is in no "
        "cgroup (Docker makes it at start and removes it at exit) "
        "(start it with: docker start old)"
    )


def test_cgroup_exits_3_when_its_proc_file_is_denied_and_9_when_it_is_gone(monkeypatch, tmp_path):
    _host(monkeypatch, tmp_path, running(CG_ID, "api", 4200, [CG_PID]))  # no /proc/4242
    out = invoke("cgroup", "api")  # the init exited since the walk
    assert out.exit_code == 9
    assert out.stderr.strip() == (
        "dtrace-tree: error: api's init (pid 4242) could not be read: /proc/4242/cgroup: no "
        "such file or directory (it may have just exited; run the command again)"
    )
    monkeypatch.setattr(
        cgroupfs, "_read", lambda root, path, raw=False: (None, "permission denied")
    )
    out = invoke("cgroup", "api")
    assert out.exit_code == 3
    assert out.stderr.strip() == (
        "dtrace-tree: error: reading /proc/4242/cgroup: permission denied (run as root with "
        "CAP_SYS_PTRACE (in a container: --cap-add SYS_PTRACE))"
    )


def test_json_imports_neither_rich_nor_the_sdk():
    for command in ("fs", "cgroup"):
        mods = modules_after(command, "--json", "-H", "unix:///nonexistent.sock", "x")
        assert not {"rich", "rich.table", "graphviz", "tracer.output.terminal.storage",
                    "tracer.output.terminal.cgroups"} & mods  # fmt: skip
        assert not HEAVY & mods
