"""Which engine the user means, the way the docker CLI decides it.

The docker CLI talks to one engine: `-H`, else `DOCKER_HOST`, else the context named by
`DOCKER_CONTEXT`, else the current context of its config file (`$DOCKER_CONFIG/config.json`,
default `~/.docker/config.json`), else the default socket (docker/cli
`cli/command/cli.go` resolveContextName; contexts are stored in
`<config dir>/contexts/meta/<sha256 of the name>/meta.json`, `Endpoints.docker.Host`).
dtrace-tree follows the same order, except that with nothing chosen it shows every engine on
the host (that is what it is for); `-H all` asks for every engine whatever the environment says.

These are the user's own files (the docker CLI's configuration of whoever runs the tool), not
the host's: they are read from this process's own file system, not through the HostRoot.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from tracer.errors import UsageError

EVERY = "all"


@dataclass(frozen=True)
class Choice:
    """The engine asked for (a unix:// URL), or None for every engine; and why."""

    url: str | None
    why: str  # "-H", "DOCKER_HOST", "DOCKER_CONTEXT=ctx", "docker context ctx", "" (nothing)

    @property
    def from_environment(self) -> bool:
        return self.url is not None and self.why != "-H"


def choose(flag: str | None, env: Mapping[str, str] | None = None) -> Choice:
    """The engine to show: -H (flag), then the docker CLI's environment and configuration."""
    env = os.environ if env is None else env
    if flag is not None:
        if not flag.strip():
            raise UsageError(
                "-H is empty", "give a socket, e.g. -H unix:///var/run/docker.sock, or -H all"
            )
        return Choice(None, "-H all") if flag == EVERY else Choice(flag, "-H")
    host = env.get("DOCKER_HOST", "")
    if host:
        return Choice(host, "DOCKER_HOST")
    name, why = env.get("DOCKER_CONTEXT", ""), "DOCKER_CONTEXT"
    config_dir = env.get("DOCKER_CONFIG") or os.path.join(env.get("HOME", "~"), ".docker")
    if not name:
        name, why = _current_context(config_dir), "docker context"
    if not name or name == "default":
        return Choice(None, "")
    return Choice(_context_host(config_dir, name), f"{why} {name}")


def _current_context(config_dir: str) -> str:
    try:
        with open(os.path.join(os.path.expanduser(config_dir), "config.json")) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return ""
    name = doc.get("currentContext") if isinstance(doc, dict) else None
    return name if isinstance(name, str) else ""


def _context_host(config_dir: str, name: str) -> str:
    digest = hashlib.sha256(name.encode()).hexdigest()
    path = os.path.join(os.path.expanduser(config_dir), "contexts", "meta", digest, "meta.json")
    try:
        with open(path) as f:
            doc = json.load(f)
        host = doc["Endpoints"]["docker"]["Host"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(
            f"docker context {name!r} cannot be read ({path})",
            "list them with: docker context ls; or give -H",
        ) from exc
    if not isinstance(host, str) or not host:
        raise UsageError(f"docker context {name!r} names no docker host ({path})")
    return host
