"""Fixtures for tests against the lab's real Docker engine.

Engine tests never skip in CI (CI=true): if the lab cannot start there, they fail.
Outside CI, without root, they are skipped (the lab needs root).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import docker
import psutil
import pytest

from tests.builders import ROOT, run_cli
from tracer.ops import lab, labhost

__all__ = ["ROOT", "run_cli"]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session")
def lab_engine():
    """The lab, up for the whole session; brought down at the end if this session started it."""
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("engine tests need root in CI; they are never skipped there")
        pytest.skip("engine tests need root")
    was_running = lab.status().api
    absent = [d for d in ("/run/containerd", "/run/docker") if not os.path.exists(d)]
    try:
        status = lab.up()
    except Exception as exc:  # noqa: BLE001 - in CI this must fail loudly, not skip
        pytest.fail(f"the lab engine did not start: {exc}")
    yield status
    if not was_running:
        lab.down()
        # Engines started by the tests (a second lab, a default engine) leave empty directory
        # trees there; the session leaves the machine as it found it.
        for root in absent:
            _prune_empty(root)


def _prune_empty(root: str) -> None:
    """Remove the empty directories under root, and root if it ends up empty; no file."""
    for path, _dirs, _files in sorted(os.walk(root), key=lambda w: -w[0].count("/")):
        with contextlib.suppress(OSError):  # not empty: what it holds is not ours to remove
            os.rmdir(path)


@pytest.fixture(scope="session")
def client(lab_engine):
    c = docker.DockerClient(base_url=lab.LabPaths().docker_host, timeout=60)
    yield c
    c.close()


def show_json(*args: str) -> dict:
    proc = run_cli("show", "--json", *args, check=True)
    return json.loads(proc.stdout)


def lab_engine_json(doc: dict) -> dict:
    sock = str(lab.LabPaths().docker_sock)
    (engine,) = [e for e in doc["engines"] if e["dockerd"] and e["dockerd"]["api_socket"] == sock]
    return engine


def ns_inodes(pid: int) -> dict[str, int]:
    out = {}
    for kind in os.listdir(f"/proc/{pid}/ns"):
        out[kind] = os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    return out


def live(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# -- the host engine fixture ---------------------------------------------------------------


@dataclass
class HostEngine:
    """The engine on the default sockets, and whether the tests started it.

    The host's own engine (a developer's machine) is only read: no container is created in it,
    no image imported, nothing restarted. An engine the tests started themselves (CI, a fresh
    machine) gets a container of the tests', so that there is something to find in it.
    """

    client: docker.DockerClient
    ours: bool
    container: str | None  # the tests' container in it, when ours


@pytest.fixture(scope="session")
def host_engine(lab_engine):
    """An engine on the default sockets: the host's own if it runs (read only), else one
    started here."""
    started = []
    if not _answers("unix:///var/run/docker.sock"):
        made = [
            p
            for p in (
                "/var/lib/docker",
                "/var/lib/containerd",
                "/run/containerd",
                "/run/docker",
                "/etc/docker/key.json",
            )
            if not os.path.exists(p)
        ]
        # The lab may have made /run/containerd (for its shims' sockets) already: remember what
        # was in it, so that only what this engine adds is removed afterwards.
        in_run_containerd = (
            set(os.listdir("/run/containerd")) if os.path.isdir("/run/containerd") else set()
        )
        had_docker0 = (
            subprocess.run(["ip", "link", "show", "docker0"], capture_output=True).returncode == 0
        )
        log = open("/tmp/dtrace-test-host-engine.log", "ab")  # noqa: SIM115
        # A stale socket file is not a daemon: connect to know.
        if not labhost.connectable(Path("/run/containerd/containerd.sock")):
            started.append(
                subprocess.Popen(["containerd"], stdout=log, stderr=log, start_new_session=True)
            )
            _wait(lambda: os.path.exists("/run/containerd/containerd.sock"))
        started.append(
            subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True)
        )
        _wait(lambda: _answers("unix:///var/run/docker.sock"))
    c = docker.DockerClient(base_url="unix:///var/run/docker.sock", timeout=60)
    name = "dtrace-test-host-engine" if started else None
    if name:  # ours: something to find in it
        from tracer.runtimes.dockersdk import tar_image

        tar = tar_image(
            {"bin/busybox": Path(shutil.which("busybox")).read_bytes(), "bin/sleep": "busybox"}
        )
        c.api.import_image_from_data(tar, repository="dtrace-test/busybox", tag="1")
        c.containers.run("dtrace-test/busybox:1", ["sleep", "2147483647"], name=name, detach=True)
    yield HostEngine(c, bool(started), name)
    if started:
        for proc in reversed(started):
            proc.terminate()
            proc.wait(timeout=30)
        if not had_docker0:
            subprocess.run(["ip", "link", "delete", "docker0"], capture_output=True)
        for path in made:
            # dockerd bind-mounts its data root onto itself; unmount before removing.
            subprocess.run(["umount", "-l", path], capture_output=True)
            subprocess.run(["rm", "-rf", path])
        if os.path.isdir("/run/containerd") and "/run/containerd" not in made:
            for entry in set(os.listdir("/run/containerd")) - in_run_containerd - {"s"}:
                subprocess.run(["rm", "-rf", f"/run/containerd/{entry}"])
    c.close()


def _answers(url):
    try:
        c = docker.DockerClient(base_url=url, timeout=3)
        ok = c.ping()
        c.close()
        return ok
    except Exception:  # noqa: BLE001
        return False


def _wait(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("the host engine did not start")
        time.sleep(0.2)


@contextlib.contextmanager
def temporary(client, name: str, command: list[str], **options):
    """A throw-away container in the lab for the duration of a with block (a leftover of the
    same name is removed first; the container is removed after, whatever happens)."""
    with contextlib.suppress(docker.errors.NotFound):
        client.api.remove_container(name, force=True)
    ctr = client.containers.run(
        "dtrace-lab/busybox:latest",
        command,
        name=name,
        detach=True,
        environment={"PATH": "/bin"},
        **options,
    )
    try:
        yield ctr
    finally:
        ctr.remove(force=True)
