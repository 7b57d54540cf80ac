"""Snapshots of made-up hosts: processes as /proc would show them, and the command lines the
engines write."""

from __future__ import annotations

from typing import Any

from tracer.snapshot.host import Host, Proc

TICKS = 100  # clock ticks per second in the made-up hosts (SC_CLK_TCK on Linux)

SOCK = "/run/containerd/containerd.sock"
DOCKER_SOCK = "/run/docker.sock"

# A docker-proxy command line as dockerd 20.10 writes it.
PROXY_CMD = (
    "/usr/sbin/docker-proxy",
    "-proto",
    "tcp",
    "-host-ip",
    "127.0.0.1",
    "-host-port",
    "18080",
    "-container-ip",
    "172.29.213.4",
    "-container-port",
    "80",
)


def proc(
    pid: int,
    ppid: int,
    name: str,
    cmdline: tuple[str, ...] | list[str],
    create_time: float,
    ns: dict[str, int] | None = None,
    **kw: Any,
) -> Proc:
    """A process started create_time seconds after boot (its start ticks follow from it)."""
    start = round(create_time * TICKS)
    return Proc(
        pid, ppid, name, tuple(cmdline), create_time, start=start, namespaces=ns or {}, **kw
    )


def managed_containerd(
    pid: int, dockerd: int, exec_root: str, create_time: float, **kw: Any
) -> Proc:
    """The containerd a dockerd starts and owns: its child, its config in the exec root."""
    config = f"{exec_root}/containerd/containerd.toml"
    return proc(pid, dockerd, "containerd", ["containerd", "--config", config], create_time, **kw)


def shim_cmd(cid: str, address: str = SOCK, namespace: str = "moby") -> tuple[str, ...]:
    """The long-lived containerd-shim-runc-v2's command line."""
    return ("/usr/bin/containerd-shim-runc-v2", "-namespace", namespace, "-id", cid,
            "-address", address)  # fmt: skip


def bundle(cid: str, namespace: str = "moby") -> str:
    return f"/run/containerd/io.containerd.runtime.v2.task/{namespace}/{cid}"


def make_host(*procs: Proc, **kw: Any) -> Host:
    return Host(procs={p.pid: p for p in procs}, taken_at=1_700_000_000.0, hostname="h", **kw)
