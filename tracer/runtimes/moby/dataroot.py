"""Where a dockerd keeps its data and which daemon.json it reads, as that dockerd decides it.

dockerd (cmd/dockerd) takes --data-root (the older -g, --graph), else daemon.json's "data-root"
(the older "graph"), else its default. Its defaults depend on whether it runs under RootlessKit
(ROOTLESSKIT_STATE_DIR in its environment): such a dockerd honours the XDG directories, since
it may not write /var/lib or /etc: data root $XDG_DATA_HOME/docker, else
$HOME/.local/share/docker; daemon.json $XDG_CONFIG_HOME/docker/daemon.json, else
$HOME/.config/docker/daemon.json. Any other dockerd (even one started with --rootless outside
RootlessKit) keeps /var/lib/docker and /etc/docker/daemon.json.

Those four variables are read from /proc/<pid>/environ when asked, kept for the answer alone,
never printed whole nor written into a snapshot. daemon.json is read through the dockerd's own
mount namespace (tracer/kernel/root.py seen_by): RootlessKit copies up /etc, so the host's
/etc/docker/daemon.json need not be the one a rootless dockerd reads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tracer.kernel import procfs
from tracer.kernel.root import HostRoot, seen_by
from tracer.runtimes.flags import flag_value

DEFAULT_DATA_ROOT = "/var/lib/docker"
DEFAULT_CONFIG = "/etc/docker/daemon.json"
KIT_MARK = "ROOTLESSKIT_STATE_DIR"  # moby's rootless.RunningWithRootlessKit
KEPT = (KIT_MARK, "HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME")


class HasArgv(Protocol):
    @property
    def pid(self) -> int: ...

    @property
    def cmdline(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class DataRoot:
    path: str
    how: str  # how dockerd came to it, in words
    config: str  # the daemon.json it reads (as it names it)
    rootless: bool  # it runs under RootlessKit (and honours the XDG directories)
    note: str | None = None  # what could not be read on the way


def find(dockerd: HasArgv, root: HostRoot) -> DataRoot:
    """dockerd's data root and daemon.json, as it decides them (see the module's doc)."""
    given, why = environ(root, dockerd.pid)
    kit = bool(given.get(KIT_MARK))
    home = given.get("HOME") or ""
    flag = flag_value(dockerd.cmdline, "--config-file")
    config = flag or DEFAULT_CONFIG
    if not flag and kit:
        config = f"{_xdg(given, 'XDG_CONFIG_HOME', home, '.config')}/docker/daemon.json"
    note = None
    if why is not None:
        note = (
            f"/proc/{dockerd.pid}/environ: {why}: whether dockerd runs under RootlessKit (and "
            "keeps its data under its user's home) is unknown; the system-wide defaults are used"
        )
    data = flag_value(dockerd.cmdline, "--data-root", "-g", "--graph")
    if data:
        return DataRoot(data, "--data-root", config, kit, note)
    view = seen_by(root, dockerd.pid) or root
    doc = json_object(view.read_text(config))
    for key in ("data-root", "graph"):
        value = doc.get(key)
        if isinstance(value, str) and value.startswith("/"):
            return DataRoot(value, f'"{key}" in {config}', config, kit, note)
    if kit and (home.startswith("/") or given.get("XDG_DATA_HOME", "").startswith("/")):
        where = f"{_xdg(given, 'XDG_DATA_HOME', home, '.local/share')}/docker"
        how = "rootless default: " + (
            "$XDG_DATA_HOME/docker" if given.get("XDG_DATA_HOME") else "$HOME/.local/share/docker"
        )
        return DataRoot(os.path.normpath(where), how, config, kit, note)
    return DataRoot(DEFAULT_DATA_ROOT, "the default", config, kit, note)


def environ(root: HostRoot, pid: int) -> tuple[dict[str, str], str | None]:
    """The variables of KEPT in pid's environment, and why not if it cannot be read."""
    try:
        with open(f"{root.pid_dir(pid)}/environ", "rb") as f:
            raw = f.read(1 << 20)
    except OSError as exc:
        return {}, (exc.strerror or type(exc).__name__).lower()
    return {k: v for k, v in procfs.environ(raw).items() if k in KEPT}, None


def _xdg(given: dict[str, str], var: str, home: str, under: str) -> str:
    """An XDG base directory as Go's homedir package finds it: $var if set (and absolute),
    else $HOME/<under>."""
    value = given.get(var, "")
    return value if value.startswith("/") else f"{home.rstrip('/')}/{under}"


def json_object(text: str | None) -> dict[str, Any]:
    """daemon.json's text as an object ({} if none, or not a JSON object)."""
    try:
        doc = json.loads(text or "{}")
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}
