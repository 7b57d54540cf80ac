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

from tests.builders import ROOT, daemon_of, run_cli
from tracer.ops import lab, labhost

__all__ = ["ROOT", "daemon_of", "run_cli"]

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
    (engine,) = [
        e for e in doc["engines"] if (daemon_of(e, "dockerd") or {}).get("api_socket") == sock
    ]
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
    same name is removed first; the container is removed after, whatever happens, unless the
    block removed it already)."""
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
        with contextlib.suppress(docker.errors.NotFound):  # the test may have removed it itself
            ctr.remove(force=True)


# -- the lab's other runtimes: podman, ctr, CRI pods ----------------------------------------------


@pytest.fixture(scope="session")
def lab_runtimes(lab_engine):
    """The lab with its podman containers and its second containerd's ctr containers too."""
    try:
        return lab.up(podman=True, containerd=True)
    except Exception as exc:  # noqa: BLE001 - in CI this must fail loudly, not skip
        pytest.fail(f"the lab's podman and containerd did not start: {exc}")


@dataclass
class PodMade:
    sandbox: str
    containers: dict[str, str]  # name -> id
    name: str
    namespace: str


@pytest.fixture(scope="module")  # gone before a later module takes the lab down
def cri_pod(lab_runtimes):
    """A real Kubernetes pod, made over CRI on the lab's second containerd: a host-network
    sandbox (the lab's pause image) and two containers; removed at the end."""
    from tests.cri import Cri, sandbox_config

    paths = lab.LabPaths()
    cri = Cri(str(paths.cri_sock))
    config = sandbox_config("rt-pod", "rt-ns", "rt-uid-1", str(paths.pod_logs / "rt-pod"))
    sandbox = cri.run_pod(config)
    made = {}
    try:
        for name, argv in (("rt-app", ["/bin/sleep", "2147483647"]),
                           ("rt-side", ["/bin/sh", "-c", "sleep 2147483647 & wait"])):  # fmt: skip
            cid = cri.create(sandbox, config, name, "docker.io/dtrace-lab/busybox:latest", argv)
            cri.start(cid)
            made[name] = cid
        yield PodMade(sandbox, made, "rt-pod", "rt-ns")
    finally:
        cri.stop_pod(sandbox)
        cri.remove_pod(sandbox)
        cri.close()


@pytest.fixture(scope="module")  # gone before a later module takes the lab down
def ctr_beside_docker(lab_engine):
    """A ctr container in a namespace of its own (rt-side) on the containerd the lab's
    dockerd uses; removed at the end, with its image and namespace."""
    from tracer.ops import labengines

    paths = lab.LabPaths()
    ctr = ["ctr", "-a", str(paths.containerd_sock), "-n", "rt-side"]
    ref = "docker.io/dtrace-lab/busybox:latest"
    busybox = labhost.which("busybox")
    layout = labengines.oci_layout(labhost.busybox_rootfs(busybox), ref, None)
    subprocess.run([*ctr, "images", "import", "-"], input=layout, check=True, capture_output=True)
    subprocess.run([*ctr, "run", "-d", ref, "rt-ctr-side", "/bin/sleep", "2147483647"],
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield "rt-ctr-side"
    finally:
        subprocess.run([*ctr, "tasks", "kill", "-s", "9", "rt-ctr-side"], capture_output=True)
        _wait(lambda: "RUNNING" not in _ctr_task(ctr, "rt-ctr-side"), 20)
        subprocess.run([*ctr, "tasks", "rm", "-f", "rt-ctr-side"], capture_output=True)
        subprocess.run([*ctr, "containers", "rm", "rt-ctr-side"], capture_output=True)
        subprocess.run([*ctr, "images", "rm", ref], capture_output=True)
        # containerd collects the image's content in the background: the namespace is empty
        # (and can be removed) a moment later
        _wait(lambda: subprocess.run([*ctr[:3], "namespaces", "rm", "rt-side"],
                                     capture_output=True).returncode == 0, 20)  # fmt: skip
        with contextlib.suppress(OSError):  # runc's state dir of the namespace (now empty)
            os.rmdir("/run/containerd/runc/rt-side")


def _ctr_task(ctr: list[str], name: str) -> str:
    out = subprocess.run([*ctr, "tasks", "ls"], capture_output=True, text=True)
    return next((line for line in out.stdout.splitlines() if line.split()[:1] == [name]), "")


@dataclass
class Rootless:
    user: str
    uid: int
    name: str
    store: str
    run: list[str]  # podman as that user


@pytest.fixture(scope="module")  # its user and container gone with the module
def rootless_podman(lab_engine):
    """A user of the tests' own (rt-user, with a subordinate uid range) running a rootless
    podman container; the user, its files, its pause process and its ranges removed after."""
    import pwd

    user, name = "rt-user", "rt-rootless"
    try:
        pwd.getpwnam(user)
        pytest.fail(f"{user} exists already: a leftover of an earlier run (userdel -r {user})")
    except KeyError:
        pass
    saved = {f: Path(f).read_text() if Path(f).exists() else None
             for f in ("/etc/subuid", "/etc/subgid")}  # fmt: skip
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", user], check=True)
    for f in saved:  # a range of its own, whether useradd added one or not
        with open(f, "a") as out:
            out.write(f"{user}:300000:65536\n")
    entry = pwd.getpwnam(user)
    home, xdg = entry.pw_dir, f"/tmp/{user}-run"
    run = ["runuser", "-u", user, "--", "env", f"HOME={home}", f"XDG_RUNTIME_DIR={xdg}",
           "podman", "--events-backend", "file", "--cgroup-manager", "cgroupfs",
           "--runtime", "runc"]  # fmt: skip
    os.makedirs(xdg, mode=0o700, exist_ok=True)
    os.chown(xdg, entry.pw_uid, entry.pw_gid)
    from tracer.runtimes.dockersdk import tar_image

    files = {"bin/busybox": Path(labhost.which("busybox")).read_bytes(), "bin/sleep": "busybox"}
    try:
        subprocess.run([*run, "import", "-", "rt-bb:1"], input=tar_image(files), check=True,
                       capture_output=True)  # fmt: skip
        subprocess.run([*run, "run", "-d", "--name", name, "--network", "none",
                        "rt-bb:1", "/bin/sleep", "2147483647"],
                       check=True, capture_output=True)  # fmt: skip
        yield Rootless(user, entry.pw_uid, name, f"{home}/.local/share/containers/storage", run)
    finally:
        subprocess.run([*run, "rm", "-f", "-t", "0", name], capture_output=True)
        subprocess.run([*run, "system", "reset", "--force"], capture_output=True)
        for p in _owned_by(entry.pw_uid):
            with contextlib.suppress(psutil.Error):
                p.kill()
        _wait(lambda: not _owned_by(entry.pw_uid), 20)
        for m in labhost.mounts_under((Path(home), Path(xdg))):
            subprocess.run(["umount", "-l", m], capture_output=True)
        subprocess.run(["userdel", "-r", user], capture_output=True)
        shutil.rmtree(xdg, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)
        for f, text in saved.items():
            if text is None:
                Path(f).unlink(missing_ok=True)
            else:
                Path(f).write_text(text)


def _owned_by(uid: int) -> list[psutil.Process]:
    return [
        p for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == uid
    ]
