"""Reading the command lines of Go daemons (dockerd, containerd, shims, docker-proxy).

Command lines are untrusted text (anything in a container can name itself anything), so every
parser here is total: it never raises, and returns None or empty values for what it cannot read.
Go's flag package accepts `-flag value`, `--flag value`, `-flag=value` and `--flag=value`.
"""

from __future__ import annotations

from collections.abc import Container, Iterator, Sequence
from dataclasses import dataclass

from tracer.kernel.procfs import program
from tracer.kernel.root import normalize
from tracer.untrusted import number

__all__ = [
    "ProxyArgs",
    "parse_proxy",
    "flag_bool",
    "flag_dict",
    "flag_value",
    "flag_values",
    "program",
    "same_socket",
    "unix_path",
]


def _given(argv: Sequence[str], wanted: Container[str]) -> Iterator[tuple[str, str]]:
    """(name without dashes, value) of each wanted flag given a value, in order, up to `--`."""
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            break
        if arg.startswith("-") and len(arg) > 1:
            key, eq, value = arg.lstrip("-").partition("=")
            if key in wanted:
                if eq:
                    yield key, value
                elif i + 1 < len(argv):
                    yield key, argv[i + 1]
                    i += 1
        i += 1


def flag_values(argv: Sequence[str], *names: str) -> list[str]:
    """Every value given to any of names (e.g. "-H", "--host"), in order."""
    return [value for _, value in _given(argv, {n.lstrip("-") for n in names})]


def flag_dict(argv: Sequence[str], *names: str) -> dict[str, str]:
    """The last value of each of names that is given, in one pass: {"-id": "abc", ...}."""
    wanted = {n.lstrip("-"): n for n in names}
    return {wanted[key]: value for key, value in _given(argv, wanted)}


def flag_value(argv: Sequence[str], *names: str) -> str | None:
    """The last value given to any of names (the one Go's flag package keeps)."""
    values = flag_values(argv, *names)
    return values[-1] if values else None


def flag_bool(argv: Sequence[str], *names: str) -> bool | None:
    """A boolean flag: True/False when given (`--x`, `--x=false`), None when absent."""
    wanted = {n.lstrip("-") for n in names}
    result = None
    for arg in argv[1:]:
        if arg == "--":
            break
        key, eq, value = arg.lstrip("-").partition("=")
        if arg.startswith("-") and key in wanted:
            result = (value.lower() not in ("false", "0", "f")) if eq else True
    return result


def unix_path(url: str) -> str | None:
    """The socket path of a `unix://` address (or a bare absolute path), as -H, --containerd
    and DOCKER_HOST give it; None for tcp://, fd:// and the like."""
    if url.startswith("unix://"):
        return url[len("unix://") :] or None
    if url.startswith("/"):
        return url
    return None


def same_socket(url: str, path: str | None) -> bool:
    """Does the unix:// URL name the socket at path?"""
    wanted = unix_path(url)
    return bool(wanted and path and normalize(wanted) == normalize(path))


# -- docker-proxy (its argv is its port mapping) -----------------------------------------------


@dataclass(frozen=True)
class ProxyArgs:
    proto: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int


def parse_proxy(argv: list[str] | tuple[str, ...]) -> ProxyArgs | None:
    """docker-proxy's port mapping, or None if argv is not a complete docker-proxy line."""
    if program(argv) != "docker-proxy":
        return None
    host_port = _port(flag_value(argv, "-host-port"))
    container_port = _port(flag_value(argv, "-container-port"))
    container_ip = flag_value(argv, "-container-ip")
    if host_port is None or container_port is None or not container_ip:
        return None
    return ProxyArgs(
        proto=flag_value(argv, "-proto") or "tcp",
        host_ip=flag_value(argv, "-host-ip") or "",
        host_port=host_port,
        container_ip=container_ip,
        container_port=container_port,
    )


def _port(text: str | None) -> int | None:
    """A TCP/UDP port: 0..65535."""
    port = number(text or "", digits=5)
    return port if port is not None and port <= 65535 else None
