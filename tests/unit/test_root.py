"""HostRoot: host paths found under another root, resolved as the host resolves them."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import psutil
import pytest

from tracer.kernel.root import HostRoot, normalize


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """A made-up host's /: /var/run -> /run (absolute, as on Debian), a config file, a socket,
    and symlinks that try to leave the root."""
    root = tmp_path / "host"
    (root / "run" / "containerd").mkdir(parents=True)
    (root / "var").mkdir()
    (root / "var" / "run").symlink_to("/run")
    (root / "etc" / "docker").mkdir(parents=True)
    (root / "etc" / "docker" / "daemon.json").write_text('{"live-restore": true}')
    (root / "etc" / "hostname").write_text("node-7\n")
    (root / "etc" / "escape").symlink_to("../../../../../../etc/passwd")
    (root / "etc" / "loop").symlink_to("/etc/loop")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(root / "run" / "containerd" / "containerd.sock"))
    return root


def test_the_own_root_leaves_paths_alone():
    root = HostRoot()
    assert root.is_own and root.proc == "/proc"
    assert root.path("/var/run/docker.sock") == "/var/run/docker.sock"


def test_an_absolute_symlink_is_resolved_inside_the_root(host: Path):
    root = HostRoot(str(host))
    assert root.proc == f"{host}/proc"
    assert (
        root.path("/var/run/containerd/containerd.sock") == f"{host}/run/containerd/containerd.sock"
    )
    assert root.lexists("/var/run/containerd/containerd.sock")  # a socket counts
    assert root.read_text("/etc/docker/daemon.json") == '{"live-restore": true}'


def test_no_path_leaves_the_root(host: Path):
    root = HostRoot(str(host))
    assert root.path("/../../etc/docker/daemon.json") == f"{host}/etc/docker/daemon.json"
    assert root.path("/etc/escape") == f"{host}/etc/passwd"  # `..` stops at the root
    assert root.read_text("/etc/escape") is None  # the host's, not this machine's
    assert root.read_text("/etc/loop") is None  # a loop fails like ELOOP, without hanging


def test_missing_files_are_none_not_errors(host: Path):
    root = HostRoot(str(host))
    assert root.read_text("/etc/containerd/config.toml") is None
    assert not root.lexists("/run/docker.sock")


def test_the_hostname_of_another_root_is_its_own(host: Path):
    assert HostRoot(str(host)).hostname() == "node-7"
    assert HostRoot().hostname() == os.uname().nodename


def test_boot_time_is_psutils():
    assert HostRoot().boot_time() == psutil.boot_time()


def test_boot_time_of_a_root_without_proc_is_zero(host: Path):
    assert HostRoot(str(host)).boot_time() == 0.0


def test_normalize_writes_var_run_as_run():
    assert normalize("/var/run/docker.sock") == "/run/docker.sock"
    assert normalize("/var/run") == "/run"
    assert normalize("/var/running/x") == "/var/running/x"
    assert normalize("/run/./x//y/../z") == "/run/x/z"


def test_pids_are_this_hosts():
    pids = HostRoot().pids()
    assert os.getpid() in pids and pids == sorted(pids)
