"""Where the lab lives and how its engine is configured: paths, daemon configuration files,
command lines and the demo containers. Plain data and text; tracer/ops/lab.py runs it."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tracer.errors import UsageError

RUN_DIR = Path("/run/dtrace-lab")
DATA_DIR = Path("/var/lib/dtrace-lab")
BRIDGE = "dtlab0"
BRIDGE_ADDR = "172.29.208.1/20"  # room for the 300-container benchmark
IMAGE_REPO = "dtrace-lab/busybox"
IMAGE_TAG = "latest"
IMAGE = f"{IMAGE_REPO}:{IMAGE_TAG}"
LABEL = "dtrace-tree.lab"
SLEEP = ["sleep", "2147483647"]

# binary -> Debian package that provides it
BINARIES = {
    "dockerd": "docker.io",
    "docker-proxy": "docker.io",
    "docker-init": "docker.io",
    "containerd": "containerd",
    "containerd-shim-runc-v2": "containerd",
    "runc": "runc",
    "busybox": "busybox-static",
    "ip": "iproute2",
}
# `lab up --podman` / `--containerd`: binary -> Debian package
PODMAN_BINARIES = {"podman": "podman", "conmon": "conmon", "catatonit": "catatonit",
                   "unshare": "util-linux"}  # fmt: skip
CTR_BINARIES = {"ctr": "containerd"}
PAUSE_IMAGE = "dtrace-lab/pause:latest"  # the CRI sandbox image: busybox sleeping
CTR_NAMESPACE = "dtrace-lab"  # the lab's ctr containers, on the lab's own second containerd
# Directories outside the lab roots that the engine creates as a side effect; the lab
# removes them on `down` only if they did not exist before `up` and are empty by then.
# (ctr's fifo dir and runc's state root of plain containerd: `lab up --containerd`)
SIDE_EFFECT_DIRS = ("/run/containerd/s", "/run/containerd/fifo", "/run/containerd/runc",
                    "/run/containerd", "/run/docker/plugins", "/run/docker")  # fmt: skip
RUNC_ROOT = "/run/containerd/runc"  # the runc v2 shim's, for every containerd on the host


@dataclass(frozen=True)
class Demo:
    """One demo container: a shape that the tracer must be able to show."""

    name: str
    shape: str
    command: list[str]
    options: dict[str, Any] = field(default_factory=dict)
    running: bool = True


def demos(web_port: int) -> list[Demo]:
    return [
        Demo(
            "lab-plain", "plain: init shell with one child", ["sh", "-c", "sleep 2147483647 & wait"]
        ),
        Demo("lab-init", "--init: docker-init is PID 1", SLEEP, {"init": True}),
        Demo(
            "lab-web",
            f"published port 127.0.0.1:{web_port} -> 80 (docker-proxy)",
            ["httpd", "-f", "-p", "80", "-h", "/www"],
            {"ports": {"80/tcp": ("127.0.0.1", web_port)}},
        ),
        Demo(
            "lab-sidecar",
            "--network container:lab-web --pid container:lab-web",
            SLEEP,
            {"network_mode": "container:lab-web", "pid_mode": "container:lab-web"},
        ),
        Demo("lab-exec", "a long-running `docker exec` process", SLEEP),
        Demo("lab-stopped", "stopped (exited, no process)", ["true"], running=False),
    ]


def podman_demos() -> list[Demo]:
    """`lab up --podman`: rootful podman containers (runc, explicit ulimits: root here lacks
    CAP_SYS_RESOURCE, and crun refuses the hybrid cgroup layout)."""
    return [
        Demo("lab-pm-plain", "podman: init shell with one child, under conmon",
             ["sh", "-c", "sleep 2147483647 & wait"]),
        Demo("lab-pm-init", "podman --init: catatonit is PID 1", SLEEP, {"init": True}),
        Demo("lab-pm-stopped", "podman: stopped (exited, no conmon)", ["true"], running=False),
    ]  # fmt: skip


def ctr_demos() -> list[Demo]:
    """`lab up --containerd`: ctr containers in the lab's namespace of its second containerd."""
    return [
        Demo("lab-ctr-plain", "ctr: init shell with one child, under its shim",
             ["sh", "-c", "sleep 2147483647 & wait"]),
        Demo("lab-ctr-exec", "ctr: a long-running `ctr task exec` process", SLEEP),
    ]  # fmt: skip


# -- stacks: which dockerd, containerd and runc the lab runs ----------------------------------

STACK_ENV = "DTRACE_LAB_STACK"  # the stack `lab` and the tests use when none is named
DEFAULT_STACK = "2023"


@dataclass(frozen=True)
class Stack:
    """An engine stack the lab can run, and where its lab lives (each stack's lab is separate:
    its own directories and bridge, so that two stacks can run side by side)."""

    name: str
    summary: str
    suite: str | None  # the Debian suite its packages come from; None: the host's own
    packages: tuple[str, ...]  # downloaded from that suite (runc is always the host's)
    run: Path
    data: Path
    bridge: str
    bridge_addr: str
    features: dict[str, bool] = field(default_factory=dict)  # daemon.json "features"


STACKS = {
    "2023": Stack("2023", "Debian 12's packages on this host: Docker 20.10, containerd 1.6",
                  None, (), RUN_DIR, DATA_DIR, BRIDGE, BRIDGE_ADDR),
    # runc 1.3 of sid needs glibc 2.38; bookworm has 2.36, and dockerd 28 and containerd 2.1
    # need only 2.34: the host's runc 1.1 serves (docker-init is a link to tini-static).
    "2026": Stack("2026", "Debian sid's Docker 28 and containerd 2 with the containerd image "
                  "store; the host's runc", "sid", ("docker.io", "containerd", "tini-static"),
                  Path("/run/dtrace-lab-2026"), Path("/var/lib/dtrace-lab-2026"), "dtlab26",
                  "172.29.224.1/20", {"containerd-snapshotter": True}),
}  # fmt: skip


def selected_stack() -> str:
    """The stack named by $DTRACE_LAB_STACK, else the 2023 one."""
    name = os.environ.get(STACK_ENV, "") or DEFAULT_STACK
    if name not in STACKS:
        raise UsageError(f"{STACK_ENV}={name}: no such stack", f"one of {', '.join(STACKS)}")
    return name


def _of_selected(attr: str) -> Any:
    return lambda: getattr(STACKS[selected_stack()], attr)


class DockerdFiles:
    """Where a dockerd of the lab keeps its files: its socket, pidfile, daemon.json and exec
    root in its run directory, its data root in its data directory."""

    if TYPE_CHECKING:  # given by the class (a field, or a property)

        @property
        def run(self) -> Path: ...

        @property
        def data(self) -> Path: ...

    @property
    def docker_sock(self) -> Path:
        return self.run / "docker.sock"

    @property
    def docker_pid(self) -> Path:
        return self.run / "docker.pid"

    @property
    def daemon_json(self) -> Path:
        return self.run / "daemon.json"

    @property
    def exec_root(self) -> Path:
        return self.run / "docker"

    @property
    def data_root(self) -> Path:
        return self.data / "docker"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.docker_sock}"

    def dockerd_options(self, containerd_sock: Path, bridge: str) -> list[str]:
        """Its files, the containerd and the bridge it uses, as dockerd's options (where it
        listens is the caller's: a socket-activated dockerd is given fd://)."""
        return [
            "--config-file", str(self.daemon_json),
            "--data-root", str(self.data_root),
            "--exec-root", str(self.exec_root),
            "--pidfile", str(self.docker_pid),
            "--containerd", str(containerd_sock),
            "--bridge", bridge,
            "--iptables=false", "--ip-masq=false", "--ip-forward=false",
        ]  # fmt: skip


@dataclass(frozen=True)
class LabPaths(DockerdFiles):
    """Where a lab lives. The default is *the* lab of the selected stack ($DTRACE_LAB_STACK,
    else 2023); tests build a second one elsewhere."""

    run: Path = field(default_factory=_of_selected("run"))
    data: Path = field(default_factory=_of_selected("data"))
    bridge: str = field(default_factory=_of_selected("bridge"))
    bridge_addr: str = field(default_factory=_of_selected("bridge_addr"))
    stack: str = field(default_factory=selected_stack)

    @classmethod
    def of(cls, stack: str) -> LabPaths:
        """The lab of that stack."""
        s = STACKS[stack]
        return cls(s.run, s.data, s.bridge, s.bridge_addr, s.name)

    @property
    def is_default(self) -> bool:
        """Is this the lab of its stack (not one a test built elsewhere)?"""
        return self.run == STACKS[self.stack].run

    @property
    def containerd_dir(self) -> Path:
        return self.run / "containerd"

    @property
    def containerd_sock(self) -> Path:
        return self.containerd_dir / "containerd.sock"

    @property
    def containerd_toml(self) -> Path:
        return self.run / "containerd.toml"

    @property
    def containerd_pid(self) -> Path:
        return self.run / "containerd.pid"

    @property
    def state_json(self) -> Path:
        return self.run / "lab.json"

    @property
    def logs(self) -> Path:
        return self.data / "logs"

    # -- podman: its own storage, run root, temporary and network directories ---------------

    @property
    def podman_root(self) -> Path:
        return self.data / "podman" / "storage"

    @property
    def podman_run(self) -> Path:
        return self.run / "podman"

    def podman_argv(self, podman: str) -> list[str]:
        """podman with everything of its own: none of the host's podman state is touched."""
        run = self.podman_run
        return [
            podman,
            "--root", str(self.podman_root),
            "--runroot", str(run / "storage"),
            "--tmpdir", str(run / "tmp"),
            "--volumepath", str(self.data / "podman" / "volumes"),
            "--network-config-dir", str(run / "networks"),
            "--events-backend", "file",
            "--cgroup-manager", "cgroupfs",
            "--runtime", "runc",
            "--storage-driver", "overlay",
        ]  # fmt: skip

    # -- a second containerd, of the lab's own: CRI enabled, for ctr and pods --------------

    @property
    def cri_dir(self) -> Path:
        return self.run / "cri"

    @property
    def cri_sock(self) -> Path:
        return self.cri_dir / "containerd.sock"

    @property
    def cri_toml(self) -> Path:
        return self.run / "cri.toml"

    @property
    def cri_pid(self) -> Path:
        return self.run / "cri.pid"

    @property
    def pod_logs(self) -> Path:
        return self.data / "pods"

    @property
    def ctr_namespace(self) -> str:
        """The lab's namespace for its ctr containers. A second lab gets one of its own: runc's
        state of every containerd on the host is under one root, /run/containerd/runc/<ns>/<id>,
        so two containerds with a container of the same namespace and id collide (the second's
        clean-up deletes the first's container)."""
        if self.run == RUN_DIR:  # the 2023 lab's
            return CTR_NAMESPACE
        if self.is_default:  # another stack's lab
            return f"{CTR_NAMESPACE}-{self.stack}"
        return f"{CTR_NAMESPACE}-{hashlib.sha256(str(self.run).encode()).hexdigest()[:8]}"


def containerd_config(paths: LabPaths) -> str:
    root = paths.data / "containerd"
    top = 'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
    return _containerd_toml("", root, paths.containerd_dir, paths.containerd_sock, top)


def _containerd_toml(
    what: str, root: Path, state: Path | str, sock: Path, top: str = "", plugins: str = ""
) -> str:
    """A lab containerd's config.toml: its own socket, root and state (what: its kind)."""
    return f"""# dtrace-tree lab containerd{what}: its own socket, root and state
version = 2
root = "{root}"
state = "{state}"
{top}
[grpc]
  address = "{sock}"
  uid = 0
  gid = 0

[ttrpc]
  address = "{sock}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{root}/opt"
{plugins}"""


def daemon_config(live_restore: bool, paths: LabPaths) -> dict[str, Any]:
    config: dict[str, Any] = {"live-restore": live_restore, "labels": [f"{LABEL}=1"]}
    if paths.stack == "2023":
        # dockerd 20.10 writes a trust key to /etc/docker/key.json unless told otherwise;
        # dockerd 25+ writes none and refuses the option.
        config["deprecated-key-path"] = str(paths.data / "key.json")
    features = STACKS[paths.stack].features
    return config | ({"features": dict(features)} if features else {})


def dockerd_argv(paths: LabPaths, dockerd: str) -> list[str]:
    options = paths.dockerd_options(paths.containerd_sock, paths.bridge)
    return [dockerd, "--host", paths.docker_host, "--group", "root", *options]


def cri_config(paths: LabPaths) -> str:
    """The lab's second containerd: its own socket, root and state, the CRI plugin on (no CNI
    is configured: pods use the host's network), the sandbox image the lab builds."""
    root = paths.data / "cri"
    plugins = f"""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/{PAUSE_IMAGE}"
  # root here lacks CAP_SYS_RESOURCE: a sandbox's oom_score_adj of -998 would fail in runc
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{root}/cni/bin"
    conf_dir = "{root}/cni/conf"
"""
    state = f"{paths.cri_dir}/state"
    return _containerd_toml(" with CRI", root, state, paths.cri_sock, plugins=plugins)
