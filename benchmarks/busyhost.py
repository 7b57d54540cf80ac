"""A busy host, here: engines and containers that the tests and the lab did not start.

    ./run.sh busy up [--containers 300] [--second 10] [--ctr 5] [--podman 5]
    ./run.sh busy status
    ./run.sh busy down

`up` starts, beside whatever runs already:
- a containerd of its own (its own socket, root and state: /run/dtrace-busy, /var/lib/dtrace-busy);
- a dockerd on it (its own -H socket, --data-root, --exec-root, pidfile and bridge dtbusy0;
  never `--bridge=none`, which deletes docker0), running N busybox containers: most `sleep`,
  some a shell with children, some publishing a port through docker-proxy, some stopped;
- a second dockerd on the same containerd (containerd namespace busy2, bridge dtbusy1);
- ctr containers on that containerd (namespace busy-ctr);
- rootful podman containers with a storage and run root of their own.

Every name starts with `busy-`: nothing is called like the lab's. `down` removes all of it
(containers, images, daemons, bridges, mounts, directories) and nothing else. The image is the
static busybox as a root file system (`docker import`, as the lab builds its own): no registry.
The test suite is then run as usual (`./run.sh test`): it must pass with all of this around.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tracer.ops import labengines, labhost  # noqa: E402
from tracer.runtimes.dockersdk import tar_image  # noqa: E402

RUN = Path("/run/dtrace-busy")
DATA = Path("/var/lib/dtrace-busy")
CONTAINERD_SOCK = RUN / "containerd" / "containerd.sock"
IMAGE = "busy/busybox:1"
CTR_REF = "docker.io/busy/busybox:1"
CTR_NS = "busy-ctr"
SLEEP = ["sleep", "2147483647"]


class Dockerd:
    """One of the busy host's dockerds: its socket, roots, pidfile, bridge and namespace."""

    def __init__(self, name: str, bridge: str, addr: str, namespace: str) -> None:
        self.name, self.bridge, self.addr, self.namespace = name, bridge, addr, namespace
        self.sock = RUN / f"{name}.sock"
        self.pidfile = RUN / f"{name}.pid"

    @property
    def host(self) -> str:
        return f"unix://{self.sock}"

    def argv(self) -> list[str]:
        config = RUN / f"{self.name}.json"
        config.write_text(json.dumps({"deprecated-key-path": str(DATA / self.name / "key.json")}))
        return [
            labhost.which("dockerd"), "--config-file", str(config), "--host", self.host,
            "--data-root", str(DATA / self.name), "--exec-root", str(RUN / self.name),
            "--pidfile", str(self.pidfile),
            # dockerd 20.10 would use /run/containerd/containerd.sock without --containerd
            "--containerd", str(CONTAINERD_SOCK), "--containerd-namespace", self.namespace,
            "--containerd-plugins-namespace", f"{self.namespace}-plugins",
            "--bridge", self.bridge, "--iptables=false", "--ip-masq=false", "--ip-forward=false",
        ]  # fmt: skip

    def answers(self) -> bool:
        ping = ["docker", "-H", self.host, "version", "--format", "{{.Server.Version}}"]
        return subprocess.run(ping, capture_output=True).returncode == 0

    def docker(self, *args: str, stdin: bytes | None = None, check: bool = True) -> str:
        out = subprocess.run(
            ["docker", "-H", self.host, *args], input=stdin, capture_output=True, check=False
        )
        if check and out.returncode != 0:
            raise SystemExit(f"busyhost: docker {' '.join(args)}: {out.stderr.decode().strip()}")
        return out.stdout.decode()


FIRST = Dockerd("docker", "dtbusy0", "10.77.0.1/20", "moby")
SECOND = Dockerd("docker2", "dtbusy1", "10.77.16.1/24", "busy2")


def say(text: str) -> None:
    print(f"busyhost: {text}", file=sys.stderr, flush=True)


def wait(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"busyhost: timed out waiting for {what}")
        time.sleep(0.2)


def start(argv: list[str], log: str) -> int:
    with open(RUN / log, "ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True)
    return proc.pid


def pid_of(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().split()[0])
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError, IndexError):
        return None


# -- up -------------------------------------------------------------------------------------------


def up(containers: int, second: int, ctr: int, podman: int) -> None:
    for d in (RUN, DATA):
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
    for dockerd in (FIRST, SECOND):
        if labhost.ip("link", "show", dockerd.bridge, check=False).returncode != 0:
            labhost.ip("link", "add", dockerd.bridge, "type", "bridge")
            labhost.ip("addr", "add", dockerd.addr, "dev", dockerd.bridge)
            labhost.ip("link", "set", dockerd.bridge, "up")
    if not pid_of(RUN / "containerd.pid"):
        toml = RUN / "containerd.toml"
        toml.write_text(
            f'version = 2\nroot = "{DATA / "containerd"}"\nstate = "{RUN / "containerd"}"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{CONTAINERD_SOCK}"\n'
            f'[ttrpc]\n  address = "{CONTAINERD_SOCK}.ttrpc"\n'
            # not /opt/containerd on the host
            f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{DATA / "opt"}"\n'
        )
        pid = start([labhost.which("containerd"), "--config", str(toml)], "containerd.log")
        (RUN / "containerd.pid").write_text(f"{pid}\n")
        wait(lambda: labhost.connectable(CONTAINERD_SOCK), 60, "the busy containerd")
    rootfs = labhost.busybox_rootfs(labhost.which("busybox"))
    for dockerd, n in ((FIRST, containers), (SECOND, second)):
        if n <= 0:
            continue
        if not pid_of(dockerd.pidfile):
            start(dockerd.argv(), f"{dockerd.name}.log")
            wait(dockerd.answers, 120, f"{dockerd.name} to answer")
        if not dockerd.docker("images", "-q", IMAGE).strip():
            dockerd.docker("import", "-", IMAGE, stdin=tar_image(rootfs))
        _containers(dockerd, n)
    if ctr > 0:
        _ctr(rootfs, ctr)
    if podman > 0:
        _podman(rootfs, podman)
    status()


def _containers(dockerd: Dockerd, n: int) -> None:
    """n containers busy-<engine>-<i>: most sleep; every 10th is a shell with two children,
    every 25th publishes a port (docker-proxy), every 20th is created and never started."""
    have = set(dockerd.docker("ps", "-a", "--format", "{{.Names}}").split())

    def make(i: int) -> None:
        name = f"busy-{dockerd.name}-{i:03d}"
        if name in have:
            return
        options = ["--name", name, "--label", "dtrace-busy=1", "-e", "PATH=/bin"]
        command = SLEEP
        if i % 10 == 3:
            command = ["sh", "-c", "sleep 2147483647 & sleep 2147483647 & wait"]
        if i % 25 == 7:
            options += ["-p", "127.0.0.1::80"]
        if i % 20 == 11:
            dockerd.docker("create", *options, IMAGE, *command)
            return
        for _ in range(5):
            try:
                dockerd.docker("run", "-d", *options, IMAGE, *command)
                return
            except SystemExit as exc:
                # Every dockerd hands out host ports from the same range, unaware of the
                # others: the port it chose may be another engine's.
                if "address already in use" not in str(exc):
                    raise
                dockerd.docker("rm", "-f", name, check=False)
        dockerd.docker("run", "-d", *options, IMAGE, *command)

    say(f"{dockerd.name}: {n} containers ({len(have)} there already)")
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(make, range(n)))


def _ctr_argv() -> list[str]:
    return ["ctr", "-a", str(CONTAINERD_SOCK), "-n", CTR_NS]


def _ctr(rootfs: dict[str, bytes | str], n: int) -> None:
    ctr = _ctr_argv()
    layout = labengines.oci_layout(rootfs, CTR_REF, None)
    subprocess.run([*ctr, "images", "import", "-"], input=layout, check=True, capture_output=True)
    have = subprocess.run([*ctr, "tasks", "ls", "-q"], capture_output=True, text=True).stdout
    for i in range(n):
        name = f"busy-ctr-{i:02d}"
        if name not in have.split():
            subprocess.run([*ctr, "containers", "rm", name], capture_output=True)
            subprocess.run([*ctr, "run", "-d", CTR_REF, name, *SLEEP], check=True,
                           capture_output=True)  # fmt: skip
    say(f"ctr: {n} containers in namespace {CTR_NS}")


def _task_removed(ctr: list[str], name: str) -> bool:
    """`ctr tasks rm -f` took the task away (its process has been reaped), or there is none."""
    subprocess.run([*ctr, "tasks", "rm", "-f", name], capture_output=True)
    tasks = subprocess.run([*ctr, "tasks", "ls", "-q"], capture_output=True, text=True).stdout
    return name not in tasks.split()


def _podman_argv() -> list[str]:
    """podman with everything of its own: none of the host's podman state is touched."""
    return [
        labhost.which("podman"), "--root", str(DATA / "podman"),
        "--runroot", str(RUN / "pm"), "--tmpdir", str(RUN / "pm-tmp"),
        "--volumepath", str(DATA / "podman-volumes"),
        "--network-config-dir", str(DATA / "podman-net"),
        "--events-backend", "file", "--cgroup-manager", "cgroupfs", "--runtime", "runc",
    ]  # fmt: skip


def _podman(rootfs: dict[str, bytes | str], n: int) -> None:
    pm = _podman_argv()
    hold = RUN / "pm-hold"
    hold.mkdir(exist_ok=True)
    # `podman import` writes a blob-info cache to /var/lib/containers whatever --root says: a
    # private /var/lib with only ours bound back in, as the lab does (tracer/ops/labengines.py).
    script = (
        'mount --make-rprivate / && mount --rbind "$1" "$2" && mount -t tmpfs tmpfs /var/lib '
        '&& mkdir -p "$1" && mount --rbind "$2" "$1" && shift 2 && exec "$@"'
    )
    if not subprocess.run([*pm, "images", "-q", IMAGE], capture_output=True, text=True).stdout:
        subprocess.run(["unshare", "--mount", "sh", "-c", script, "sh", str(DATA), str(hold),
                        *pm, "import", "-", IMAGE], input=tar_image(rootfs), check=True,
                       capture_output=True)  # fmt: skip
    have = subprocess.run([*pm, "ps", "-a", "--format", "{{.Names}}"], capture_output=True,
                          text=True).stdout.split()  # fmt: skip
    for i in range(n):
        name = f"busy-pm-{i:02d}"
        if name not in have:
            # root here lacks CAP_SYS_RESOURCE: explicit ulimits, as the lab's podman has
            subprocess.run([*pm, "run", "-d", "--name", name, "--network", "none",
                            *labengines.ULIMITS, "--env", "PATH=/bin", IMAGE, *SLEEP], check=True,
                           capture_output=True)  # fmt: skip
    say(f"podman: {n} containers")


# -- status and down ------------------------------------------------------------------------------


def status() -> None:
    for dockerd in (FIRST, SECOND):
        if pid_of(dockerd.pidfile):
            running = dockerd.docker("ps", "-q", check=False).split()
            every = dockerd.docker("ps", "-aq", check=False).split()
            print(f"{dockerd.name}: {dockerd.host}, {len(running)} running of {len(every)}")
    if pid_of(RUN / "containerd.pid"):
        tasks = subprocess.run([*_ctr_argv(), "tasks", "ls", "-q"], capture_output=True, text=True)
        print(f"containerd: {CONTAINERD_SOCK}, {len(tasks.stdout.split())} ctr tasks in {CTR_NS}")
    if (DATA / "podman").exists():
        names = subprocess.run([*_podman_argv(), "ps", "-q"], capture_output=True, text=True)
        print(f"podman: {len(names.stdout.split())} running")


def _stop(pidfile: Path, what: str) -> None:
    pid = pid_of(pidfile)
    if pid is None:
        return
    say(f"stopping {what} ({pid})")
    os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(SystemExit):
        wait(lambda: not Path(f"/proc/{pid}").exists(), 60, what)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)


def down() -> None:
    if (DATA / "podman").exists():
        say("removing the podman containers")
        subprocess.run([*_podman_argv(), "rm", "-f", "-a", "-t", "0"], capture_output=True)
        subprocess.run([*_podman_argv(), "system", "reset", "--force"], capture_output=True)
    if pid_of(RUN / "containerd.pid"):
        ctr = _ctr_argv()
        say("removing the ctr containers")
        names = subprocess.run([*ctr, "containers", "ls", "-q"], capture_output=True, text=True)
        for name in names.stdout.split():
            subprocess.run([*ctr, "tasks", "kill", "-s", "9", name], capture_output=True)
            with contextlib.suppress(SystemExit):
                wait(lambda n=name: _task_removed(ctr, n), 30, f"the task of {name} to end")
            subprocess.run([*ctr, "containers", "rm", name], capture_output=True)
        subprocess.run([*ctr, "images", "rm", CTR_REF], capture_output=True)
        with contextlib.suppress(SystemExit):  # content is collected in the background
            rm = [*ctr[:3], "namespaces", "rm", CTR_NS]
            wait(lambda: subprocess.run(rm, capture_output=True).returncode == 0, 30, "ns rm")
    for dockerd in (SECOND, FIRST):
        if pid_of(dockerd.pidfile):
            ids = dockerd.docker("ps", "-aq", check=False).split()
            say(f"{dockerd.name}: removing {len(ids)} containers")
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda c, d=dockerd: d.docker("rm", "-f", c, check=False), ids))
        _stop(dockerd.pidfile, dockerd.name)
    _stop(RUN / "containerd.pid", "containerd")
    for dockerd in (FIRST, SECOND):
        labhost.ip("link", "delete", dockerd.bridge, check=False)
    for m in labhost.mounts_under((RUN, DATA)):
        subprocess.run(["umount", "-l", m], capture_output=True)
    for root in (RUN, DATA):
        subprocess.run(["rm", "-rf", str(root)], check=False)
    with contextlib.suppress(OSError):  # runc's state directory of the ctr namespace (empty)
        Path("/run/containerd/runc", CTR_NS).rmdir()
    left = [str(p) for p in (RUN, DATA) if p.exists()]
    say("down" + (f"; left: {left}" if left else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("up")
    p.add_argument("--containers", type=int, default=300, help="on the first dockerd")
    p.add_argument("--second", type=int, default=10, help="on the second dockerd")
    p.add_argument("--ctr", type=int, default=5)
    p.add_argument("--podman", type=int, default=5)
    sub.add_parser("status")
    sub.add_parser("down")
    args = parser.parse_args()
    labhost.require_root("the busy host")
    if args.command == "up":
        up(args.containers, args.second, args.ctr, args.podman)
    elif args.command == "status":
        status()
    else:
        down()


if __name__ == "__main__":
    main()
