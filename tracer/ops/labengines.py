"""The lab's other runtimes: rootful podman (`lab up --podman`) and a containerd of its own with
the CRI plugin on, holding `ctr` containers (`lab up --containerd`), beside the Docker lab.

Nothing of the host's own podman or containerd state is touched: podman runs with its own
--root, --runroot, --tmpdir, --volumepath and --network-config-dir under the lab's
directories; the second containerd has its own socket, root and state (tracer/ops/labconfig.py
cri_config), and ctr works in the lab's namespace there. Images come from the same static
busybox, with no registry: `podman import` of the root file system, and for containerd an OCI
image layout written here and given to `ctr images import`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Callable, Sequence
from typing import Any

import psutil

from tracer.errors import EngineError
from tracer.ops import daemon, labhost
from tracer.ops.labconfig import (
    CTR_BINARIES,
    IMAGE,
    LABEL,
    PAUSE_IMAGE,
    PODMAN_BINARIES,
    RUNC_ROOT,
    SLEEP,
    LabPaths,
    cri_config,
    ctr_demos,
    podman_demos,
)

Progress = Callable[[str], None]
ULIMITS = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]


def _run(argv: Sequence[str], what: str, stdin: bytes | None = None) -> str:
    out = subprocess.run(list(argv), input=stdin, capture_output=True, timeout=120)
    if out.returncode != 0:
        why = out.stderr.decode(errors="replace").strip().splitlines()
        raise EngineError(f"{what} failed: {why[-1] if why else f'exit {out.returncode}'}")
    return out.stdout.decode(errors="replace")


# -- podman ----------------------------------------------------------------------------------


def podman(paths: LabPaths) -> list[str]:
    return paths.podman_argv(labhost.which("podman"))


def podman_up(paths: LabPaths, busybox: str, progress: Progress) -> None:
    """The podman image and demo containers (idempotent)."""
    for binary, package in PODMAN_BINARIES.items():
        _need(binary, package)
    base = podman(paths)
    if len(str(paths.podman_run / "storage")) > 50:  # podman: "runroot is longer than 50"
        raise EngineError(f"podman refuses a run root over 50 characters: {paths.podman_run}")
    for d in (paths.podman_root, paths.podman_run):
        d.mkdir(parents=True, exist_ok=True)
    if _run([*base, "images", "-q", IMAGE], "podman images").strip() == "":
        progress(f"importing image {IMAGE} into the lab's podman (from {busybox})")
        from tracer.runtimes.dockersdk import tar_image

        rootfs = tar_image(labhost.busybox_rootfs(busybox), {"www/index.html": 0o644})
        _run(_private_var_lib(paths, [*base, "import", "-", IMAGE]), "podman import", rootfs)
    listed = _podman_ps(paths)
    for demo in podman_demos():
        state = listed.get(demo.name)
        if state == "running" or (state and not demo.running):
            continue
        if state:
            progress(f"starting {demo.name}")
            _run([*base, "start", demo.name], f"podman start {demo.name}")
            continue
        progress(f"creating {demo.name}: {demo.shape}")
        flags = ["--init"] if demo.options.get("init") else []
        _run(
            [*base, "run", "-d", "--name", demo.name, "--network", "none", *ULIMITS, *flags,
             "--env", "PATH=/bin", "--label", f"{LABEL}.shape={demo.shape}", IMAGE,
             *demo.command],
            f"podman run {demo.name}",
        )  # fmt: skip
        if not demo.running:
            _run([*base, "wait", demo.name], f"podman wait {demo.name}")


def _private_var_lib(paths: LabPaths, argv: list[str]) -> list[str]:
    """argv in a mount namespace of its own whose /var/lib is an empty tmpfs with only the
    lab's data bound back in: `podman import` writes containers/image's blob-info cache to
    /var/lib/containers/cache whatever --root says (c/image blobinfocache, for root), and the
    host's podman state must stay untouched."""
    hold = paths.podman_run / "hold"
    hold.mkdir(parents=True, exist_ok=True)
    script = (
        'mount --make-rprivate / && mount --rbind "$1" "$2" && mount -t tmpfs tmpfs /var/lib '
        '&& mkdir -p "$1" && mount --rbind "$2" "$1" && shift 2 && exec "$@"'
    )
    data = str(paths.data)
    return [labhost.which("unshare"), "--mount", "sh", "-c", script, "sh", data, str(hold), *argv]


def _need(binary: str, package: str) -> str:
    from tracer.errors import MissingBinaryError

    try:
        return labhost.which(binary)
    except MissingBinaryError:
        raise MissingBinaryError(binary, package) from None


def _podman_ps(paths: LabPaths) -> dict[str, str]:
    """The lab podman's containers: name -> state."""
    text = _run([*podman(paths), "ps", "-a", "--format", "json"], "podman ps")
    rows = json.loads(text or "[]") or []
    return {(r.get("Names") or ["?"])[0]: str(r.get("State", "")).lower() for r in rows}


def podman_status(paths: LabPaths) -> list[dict[str, Any]] | None:
    """The lab podman's containers (None when it was never set up)."""
    if not paths.podman_root.exists():
        return None
    shapes = {d.name: d.shape for d in podman_demos()}
    try:
        listed = _podman_ps(paths)
    except (EngineError, OSError, ValueError):
        return []
    return [{"name": n, "state": s, "shape": shapes.get(n, "")} for n, s in sorted(listed.items())]


def podman_down(paths: LabPaths, removed: list[str], left: list[str], progress: Progress) -> None:
    if not paths.podman_root.exists():
        return
    base = podman(paths)
    try:
        names = sorted(_podman_ps(paths))
    except (EngineError, OSError, ValueError) as exc:
        names = []
        progress(f"podman could not list its containers ({exc}); killing its conmons instead")
    for name in names:
        progress(f"removing podman container {name}")
        try:
            _run([*base, "rm", "-f", "-t", "0", name], f"podman rm {name}")
            removed.append(f"podman container {name}")
        except EngineError as exc:
            left.append(f"podman container {name} ({exc.message})")
    for pid in _processes("conmon", str(paths.podman_root)):
        progress(f"killing leftover conmon {pid} and its container")
        labhost.kill_tree(pid)
        removed.append(f"conmon {pid}")


# -- a containerd of the lab's own, with CRI, and ctr ------------------------------------------


def containerd_pid(paths: LabPaths) -> int | None:
    return labhost.pid_from(paths.cri_pid, "containerd", str(paths.cri_toml))


def ctr(paths: LabPaths, namespace: str | None = None) -> list[str]:
    ns = namespace or paths.ctr_namespace
    return [_need("ctr", CTR_BINARIES["ctr"]), "-a", str(paths.cri_sock), "-n", ns]


def containerd_up(paths: LabPaths, busybox: str, progress: Progress) -> None:
    """The second containerd, its images (busybox, and the pause image CRI sandboxes run) in
    the lab's namespace and in k8s.io, and the ctr demo containers (idempotent)."""
    if containerd_pid(paths) is None:
        progress("starting the lab's second containerd (CRI on, for ctr and pods)")
        paths.cri_dir.mkdir(parents=True, exist_ok=True)
        paths.pod_logs.mkdir(parents=True, exist_ok=True)
        paths.cri_toml.write_text(cri_config(paths))
        pid = daemon.start_detached(
            [labhost.which("containerd"), "--config", str(paths.cri_toml)],
            str(paths.logs / "cri-containerd.log"),
        )
        paths.cri_pid.write_text(f"{pid}\n")
        if not daemon.wait_until(lambda: labhost.connectable(paths.cri_sock), 30):
            raise EngineError(
                "the lab's second containerd did not start",
                f"see {paths.logs / 'cri-containerd.log'}",
            )
    wanted: dict[str, list[tuple[str, list[str] | None]]] = {
        paths.ctr_namespace: [(IMAGE, None)],
        "k8s.io": [(IMAGE, None), (PAUSE_IMAGE, SLEEP)],
    }
    for namespace, images in wanted.items():
        have = _run([*ctr(paths, namespace), "images", "ls", "-q"], "ctr images ls").split()
        for image, cmd in images:
            ref = f"docker.io/{image}"
            if ref not in have:
                progress(f"importing image {ref} into namespace {namespace} (from {busybox})")
                layout = oci_layout(labhost.busybox_rootfs(busybox), ref, cmd)
                _run([*ctr(paths, namespace), "images", "import", "-"], "ctr import", layout)
    tasks = ctr_tasks(paths)
    for demo in ctr_demos():
        if tasks.get(demo.name) == "RUNNING":
            continue
        if demo.name in tasks:  # stopped (the lab's containerd restarted): start it afresh
            _run([*ctr(paths), "tasks", "rm", "-f", demo.name], f"ctr tasks rm {demo.name}")
        if demo.name in _ctr_containers(paths):
            _run([*ctr(paths), "containers", "rm", demo.name], f"ctr containers rm {demo.name}")
        progress(f"creating {demo.name}: {demo.shape}")
        _run(
            [*ctr(paths), "run", "-d", "--env", "PATH=/bin", "--label",
             f"{LABEL}.shape={demo.shape}", f"docker.io/{IMAGE}", demo.name, *demo.command],
            f"ctr run {demo.name}",
        )  # fmt: skip
    if not _has_exec(paths, "lab-ctr-exec"):
        progress("starting `ctr task exec lab-ctr-exec sleep ...`")
        _run([*ctr(paths), "tasks", "exec", "-d", "--exec-id", "lab-exec", "lab-ctr-exec",
              *SLEEP], "ctr tasks exec")  # fmt: skip


def ctr_tasks(paths: LabPaths) -> dict[str, str]:
    """ctr's tasks in the lab's namespace: id -> status (RUNNING, STOPPED, ...)."""
    rows = _run([*ctr(paths), "tasks", "ls"], "ctr tasks ls").splitlines()[1:]
    return {r.split()[0]: r.split()[-1] for r in rows if len(r.split()) >= 3}


def _ctr_containers(paths: LabPaths) -> set[str]:
    rows = _run([*ctr(paths), "containers", "ls", "-q"], "ctr containers ls").split()
    return set(rows)


def _has_exec(paths: LabPaths, name: str) -> bool:
    out = subprocess.run([*ctr(paths), "tasks", "ps", name], capture_output=True, text=True)
    return out.returncode == 0 and len(out.stdout.strip().splitlines()) > 2


def ctr_status(paths: LabPaths) -> list[dict[str, Any]] | None:
    if containerd_pid(paths) is None or not labhost.connectable(paths.cri_sock):
        return None
    shapes = {d.name: d.shape for d in ctr_demos()}
    try:
        tasks = ctr_tasks(paths)
    except EngineError:
        return []
    return [{"name": n, "state": s.lower(), "shape": shapes.get(n, "")} for n, s in
            sorted(tasks.items())]  # fmt: skip


def containerd_down(
    paths: LabPaths, removed: list[str], left: list[str], progress: Progress
) -> int | None:
    """Remove the ctr containers (and any pod left in k8s.io); the containerd's PID, for
    lab.py to stop it after the shims are gone."""
    pid = containerd_pid(paths)
    if pid is None or not labhost.connectable(paths.cri_sock):
        return pid
    for name in sorted(_ctr_containers(paths)):
        progress(f"removing ctr container {name}")
        subprocess.run([*ctr(paths), "tasks", "kill", "-s", "9", name], capture_output=True)
        daemon.wait_until(functools.partial(_stopped, paths, name), 10)
        subprocess.run([*ctr(paths), "tasks", "rm", "-f", name], capture_output=True)
        out = subprocess.run([*ctr(paths), "containers", "rm", name], capture_output=True)
        (removed if out.returncode == 0 else left).append(f"ctr container {name}")
    with contextlib.suppress(OSError):  # runc's state dir of the lab's namespace, now empty
        os.rmdir(f"{RUNC_ROOT}/{paths.ctr_namespace}")
    return pid


def _stopped(paths: LabPaths, name: str) -> bool:
    return ctr_tasks(paths).get(name) != "RUNNING"


def _processes(program: str, marker: str) -> list[int]:
    pids = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        if cmd and os.path.basename(cmd[0]) == program and any(marker in a for a in cmd):
            pids.append(proc.info["pid"])
    return pids


# -- an OCI image layout, for `ctr images import` ---------------------------------------------


def oci_layout(files: dict[str, bytes | str], ref: str, cmd: list[str] | None) -> bytes:
    """An OCI image layout (one layer) as a tar, named ref (containerd's image-name
    annotation)."""
    from tracer.runtimes.dockersdk import tar_image

    layer = tar_image(files, {"www/index.html": 0o644})
    layer_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/bin"], **({"Cmd": cmd} if cmd else {})},
        "rootfs": {"type": "layers", "diff_ids": [layer_id]},
    }
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   **blob(json.dumps(config).encode())},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **blob(layer)}],
    }  # fmt: skip
    index = {
        "schemaVersion": 2,
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             **blob(json.dumps(manifest).encode()),
             "annotations": {"io.containerd.image.name": ref,
                             "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[-1]}}
        ],
    }  # fmt: skip
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        entries = {"oci-layout": json.dumps({"imageLayoutVersion": "1.0.0"}).encode(),
                   "index.json": json.dumps(index).encode()}  # fmt: skip
        entries |= {f"blobs/sha256/{d.split(':', 1)[1]}": data for d, data in blobs.items()}
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()
