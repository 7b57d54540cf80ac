"""containerd and what runs on it without dockerd: `shim.py` (the shims, bundles and inits
every containerd engine is built from, Docker's too), `cri.py` (Kubernetes pods: one shim per
pod), `engine.py` (bare containerd: ctr and nerdctl containers, per namespace)."""

from __future__ import annotations

from tracer.runtimes.containerd.shim import (
    RUNC_ROOT,
    SHIM_EDGES,
    SYSTEM_SOCK,
    ShimArgs,
    adopt,
    connected,
    container,
    container_processes,
    docker_namespace,
    find_init,
    is_runtime,
    made_under,
    parse_shim,
    read_bundle,
    read_options,
    runtime_root,
    shims,
    socket_of,
    sort_containers,
)

__all__ = [
    "RUNC_ROOT",
    "SHIM_EDGES",
    "SYSTEM_SOCK",
    "ShimArgs",
    "adopt",
    "connected",
    "container",
    "container_processes",
    "docker_namespace",
    "find_init",
    "is_runtime",
    "made_under",
    "parse_shim",
    "read_bundle",
    "read_options",
    "runtime_root",
    "shims",
    "socket_of",
    "sort_containers",
]
