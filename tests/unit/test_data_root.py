"""Where Docker keeps its data: one answer, whoever asks (`fs` for the layers, `survive` for
the restart policies), from --data-root, else daemon.json's "data-root", else /var/lib/docker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.topologies import containerd, dockerd, engine, running
from tracer.kernel.root import HostRoot
from tracer.ops.survive import restart_policies
from tracer.runtimes import runtime_of

CID = "c" * 64


def _host(
    tmp_path: Path,
    daemon_json: dict[str, object] | None,
    data_root: str,
    config_file: str = "/etc/docker/daemon.json",
) -> HostRoot:
    """A host whose dockerd keeps container CID (restart policy "always") under data_root."""
    if daemon_json is not None:
        config = tmp_path / config_file.lstrip("/")
        config.parent.mkdir(parents=True)
        config.write_text(json.dumps(daemon_json))
    container = tmp_path / data_root.lstrip("/") / "containers" / CID
    container.mkdir(parents=True)
    policy = {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 0}}
    (container / "hostconfig.json").write_text(json.dumps(policy))
    return HostRoot(str(tmp_path))


def _docker(*flags: str):
    return engine(
        dockerd(cmdline=["/usr/bin/dockerd", *flags]),
        containerd(),
        containers=[running(CID, "web", 700, [701])],
    )


def test_survive_reads_restart_policies_under_daemon_json_data_root(tmp_path: Path) -> None:
    root = _host(tmp_path, {"data-root": "/srv/docker"}, "/srv/docker")
    assert restart_policies(_docker(), root) == {CID: "always"}


@pytest.mark.parametrize(
    ("flags", "config", "where"),
    [
        ((), None, "/var/lib/docker"),
        ((), {"data-root": "/srv/docker"}, "/srv/docker"),
        ((), {"graph": "/srv/old"}, "/srv/old"),  # the name before Docker 17.05
        (("--data-root", "/mnt/flag"), {"data-root": "/srv/docker"}, "/mnt/flag"),
        (("--config-file", "/opt/d.json"), {"data-root": "/srv/docker"}, "/srv/docker"),
    ],
)
def test_fs_and_survive_find_the_same_data_root(
    tmp_path: Path, flags: tuple[str, ...], config: dict[str, object] | None, where: str
) -> None:
    config_file = flags[1] if flags[:1] == ("--config-file",) else "/etc/docker/daemon.json"
    root = _host(tmp_path, config, where, config_file)
    docker = _docker(*flags)
    assert runtime_of(docker).storage_root(docker, root) == where
    assert restart_policies(docker, root) == {CID: "always"}
