"""The lab's real engines as the tests see them: what `show --json` says of them, throw-away
containers, and the namespaces and liveness of real processes. The fixtures that start and
stop things are in tests/integration/conftest.py; what they hand out is described here."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from typing import Any

import docker
import psutil

from tests.support.cli import run_cli
from tracer.ops import lab

LAB_IMAGE = "dtrace-lab/busybox:latest"
# The lab's engine, as -H takes it: tests name it whenever they address their own containers
# (the host may run other engines, with containers of the same names).
LAB_HOST = f"unix://{lab.LabPaths().docker_sock}"


def daemon_of(engine: dict[str, Any], role: str) -> dict[str, Any] | None:
    """The daemon of that role in an engine of `show --json` (schema 2: a list of daemons)."""
    return next((d for d in engine.get("daemons", []) if d.get("role") == role), None)


def show_json(*args: str) -> dict[str, Any]:
    """`show --json ARGS` of the real CLI, parsed (it must succeed)."""
    proc = run_cli("show", "--json", *args, check=True)
    doc: dict[str, Any] = json.loads(proc.stdout)
    return doc


def lab_engine_json(doc: dict[str, Any]) -> dict[str, Any]:
    """The lab's Docker engine in a `show --json` document: the one whose dockerd serves the
    lab's socket (whatever else runs on the host)."""
    sock = str(lab.LabPaths().docker_sock)
    (engine,) = [
        e for e in doc["engines"] if (daemon_of(e, "dockerd") or {}).get("api_socket") == sock
    ]
    return engine


def ns_inodes(pid: int) -> dict[str, int]:
    """The inode of each namespace of a real process."""
    out = {}
    for kind in os.listdir(f"/proc/{pid}/ns"):
        out[kind] = os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    return out


def live(pid: int) -> bool:
    """The process runs (a zombie does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def owned_by(uid: int) -> list[psutil.Process]:
    """The processes whose real user is uid."""
    return [
        p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == uid
    ]


def answers(url: str) -> bool:
    """A Docker engine answers a ping at url."""
    try:
        c = docker.DockerClient(base_url=url, timeout=3)
        ok = bool(c.ping())
        c.close()
        return ok
    except Exception:  # noqa: BLE001 - whatever stops it, it does not answer
        return False


def prune_empty(root: str) -> None:
    """Remove the empty directories under root, and root if it ends up empty; no file."""
    for path, _dirs, _files in sorted(os.walk(root), key=lambda w: -w[0].count("/")):
        with contextlib.suppress(OSError):  # not empty: what it holds is not ours to remove
            os.rmdir(path)


def ctr_task(ctr: list[str], name: str) -> str:
    """The line of `ctr tasks ls` for that container ("" when it has no task)."""
    out = subprocess.run([*ctr, "tasks", "ls"], capture_output=True, text=True)
    return next((line for line in out.stdout.splitlines() if line.split()[:1] == [name]), "")


@contextlib.contextmanager
def temporary(client: docker.DockerClient, name: str, command: list[str], **options: Any) -> Any:
    """A throw-away container in the lab for the duration of a with block (a leftover of the
    same name is removed first; the container is removed after, whatever happens, unless the
    block removed it already)."""
    with contextlib.suppress(docker.errors.NotFound):
        client.api.remove_container(name, force=True)
    ctr = client.containers.run(
        LAB_IMAGE, command, name=name, detach=True, environment={"PATH": "/bin"}, **options
    )
    try:
        yield ctr
    finally:
        with contextlib.suppress(docker.errors.NotFound):  # the test may have removed it itself
            ctr.remove(force=True)


# -- what the fixtures hand out -------------------------------------------------------------------


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


@dataclass
class PodMade:
    """A pod made over CRI: its sandbox, its containers (name -> id), name and namespace."""

    sandbox: str
    containers: dict[str, str]
    name: str
    namespace: str


@dataclass
class Rootless:
    """A rootless podman container of a user of the tests' own."""

    user: str
    uid: int
    name: str
    store: str
    run: list[str]  # podman as that user


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The chain ids of an image's layers, base first, as moby's layer.CreateChainID
    computes them (written here, not taken from tracer: the truth the tests compare with)."""
    out: list[str] = []
    for diff in diff_ids:
        out.append(diff if not out else "sha256:" + hashlib.sha256(
            f"{out[-1]} {diff}".encode()).hexdigest())  # fmt: skip
    return out


def remove_made(client: docker.DockerClient, containers: list[Any], image: str) -> None:
    """Take down what a module made: its containers (last made first), then its image;
    whatever is gone already (the test removed it) is no error."""
    for c in reversed(containers):
        with contextlib.suppress(docker.errors.NotFound):
            c.remove(force=True)
    with contextlib.suppress(docker.errors.NotFound):
        client.images.remove(image, force=True)
