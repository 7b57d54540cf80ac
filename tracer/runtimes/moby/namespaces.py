"""The namespaces Docker shares with the host or another container, and why: its defaults,
and the `docker run` flag (read back from a container's HostConfig) that asked for it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Why Docker usually leaves these shared with the host.
USUALLY_SHARED = {
    "user": "Docker shares the host's user namespace unless the daemon runs with userns-remap",
    "time": "Docker never creates time namespaces: containers share the host clock offsets",
    "time_for_children": "Docker never creates time namespaces",
    "cgroup": "Docker's default cgroupns mode is 'host' on cgroup v1 (private on cgroup v2)",
}
# HostConfig field -> namespace types it governs, and the docker run flag.
MODES = {
    "NetworkMode": (("net",), "--network"),
    "PidMode": (("pid", "pid_for_children"), "--pid"),
    "IpcMode": (("ipc",), "--ipc"),
    "UTSMode": (("uts",), "--uts"),
    "UsernsMode": (("user",), "--userns"),
    "CgroupnsMode": (("cgroup",), "--cgroupns"),
}


def sharing_flags(
    host_config: Mapping[str, Any] | None, names: Mapping[str, str]
) -> dict[str, str]:
    """Namespace type -> the docker run flag that shared it, from the engine's HostConfig."""
    out: dict[str, str] = {}
    for key, (kinds, flag) in MODES.items():
        mode = str((host_config or {}).get(key) or "")
        if mode == "host" or mode.startswith("container:"):
            target = mode.split(":", 1)[1] if ":" in mode else ""
            shown = (
                f"{flag} container:{names.get(target, target[:12])}" if target else f"{flag} host"
            )
            if key == "CgroupnsMode":  # nobody types it: it is the daemon's default on v1
                shown = "cgroupns mode host (Docker's default on cgroup v1)"
            for kind in kinds:
                out[kind] = shown
    return out
