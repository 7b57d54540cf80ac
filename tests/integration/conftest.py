"""Fixtures for tests against the lab's real Docker engine.

Engine tests never skip in CI (CI=true): if the lab cannot start there, they fail.
Outside CI, without root, they are skipped (the lab needs root).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

import docker
import psutil
import pytest

from tests.support.cli import IN_CI
from tests.support.lab import (
    HostEngine,
    PodMade,
    Rootless,
    answers,
    ctr_task,
    owned_by,
    prune_empty,
)
from tests.support.waiting import wait_for
from tracer.ops import lab, labhost


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
            prune_empty(root)


@pytest.fixture(scope="session")
def client(lab_engine):
    c = docker.DockerClient(base_url=lab.LabPaths().docker_host, timeout=60)
    yield c
    c.close()


# -- the host engine fixture ---------------------------------------------------------------


@pytest.fixture(scope="session")
def host_engine(lab_engine):
    """An engine on the default sockets: the host's own if it runs (read only), else one
    started here."""
    started = []
    if not answers("unix:///var/run/docker.sock"):
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
            wait_for(lambda: os.path.exists("/run/containerd/containerd.sock"), 60,
                     "the host containerd's socket")  # fmt: skip
        started.append(
            subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True)
        )
        wait_for(lambda: answers("unix:///var/run/docker.sock"), 60, "the host dockerd to answer")
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


# -- the lab's extra dockerds ----------------------------------------------------------------------


@pytest.fixture(scope="module")  # gone before a later module takes the lab down
def second_dockerd(lab_engine):
    """`lab up --second-dockerd`: a second dockerd on the lab's containerd (namespace moby),
    with its demo container; its API socket. Taken down at the end unless it was up before (a
    user's, or another module's, stays)."""
    from tracer.ops.stacks import extras

    paths = lab.LabPaths()
    was_up = "second" in {x["name"] for x in lab.status(paths).extras}
    try:
        lab.up(paths=paths, more=["second"])
    except Exception as exc:  # noqa: BLE001 - in CI this must fail loudly, not skip
        pytest.fail(f"the lab's second dockerd did not start: {exc}")
    (e,) = extras.of(paths, ["second"])
    yield str(e.docker_sock)
    if not was_up:
        lab.down(paths, only=["second"])


# -- the lab's other runtimes: podman, ctr, CRI pods ----------------------------------------------


@pytest.fixture(scope="session")
def lab_runtimes(lab_engine):
    """The lab with its podman containers and its second containerd's ctr containers too."""
    try:
        return lab.up(podman=True, containerd=True)
    except Exception as exc:  # noqa: BLE001 - in CI this must fail loudly, not skip
        pytest.fail(f"the lab's podman and containerd did not start: {exc}")


@pytest.fixture(scope="module")  # gone before a later module takes the lab down
def cri_pod(lab_runtimes):
    """A real Kubernetes pod, made over CRI on the lab's second containerd: a host-network
    sandbox (the lab's pause image) and two containers; removed at the end."""
    from tests.support.cri import Cri, sandbox_config

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
        wait_for(lambda: "RUNNING" not in ctr_task(ctr, "rt-ctr-side"), 20, "rt-ctr-side to stop")
        subprocess.run([*ctr, "tasks", "rm", "-f", "rt-ctr-side"], capture_output=True)
        subprocess.run([*ctr, "containers", "rm", "rt-ctr-side"], capture_output=True)
        subprocess.run([*ctr, "images", "rm", ref], capture_output=True)
        # containerd collects the image's content in the background: the namespace is empty
        # (and can be removed) a moment later
        wait_for(lambda: subprocess.run([*ctr[:3], "namespaces", "rm", "rt-side"],
                                        capture_output=True).returncode == 0,
                 20, "the namespace rt-side to be removable")  # fmt: skip
        with contextlib.suppress(OSError):  # runc's state dir of the namespace (now empty)
            os.rmdir("/run/containerd/runc/rt-side")


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
        for p in owned_by(entry.pw_uid):
            with contextlib.suppress(psutil.Error):
                p.kill()
        wait_for(lambda: not owned_by(entry.pw_uid), 20, f"{user}'s processes to end")
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
