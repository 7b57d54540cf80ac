"""Parsers for the command lines of dockerd, containerd, shims and docker-proxy.

Command lines are untrusted text (anything in a container can name itself anything), so every
parser here is total: it never raises, and returns None or empty values for what it cannot read.
Go's flag package accepts `-flag value`, `--flag value`, `-flag=value` and `--flag=value`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass


def flag_values(argv: Sequence[str], *names: str) -> list[str]:
    """Every value given to any of names (e.g. "-H", "--host"), in order."""
    wanted = {n.lstrip("-") for n in names}
    values = []
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            break
        if arg.startswith("-") and len(arg) > 1:
            key, eq, value = arg.lstrip("-").partition("=")
            if key in wanted:
                if eq:
                    values.append(value)
                elif i + 1 < len(argv):
                    values.append(argv[i + 1])
                    i += 1
        i += 1
    return values


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


def program(argv: Sequence[str]) -> str:
    """Basename of argv[0] ('' when there is none)."""
    return os.path.basename(argv[0]) if argv else ""


@dataclass(frozen=True)
class ShimArgs:
    namespace: str | None
    id: str
    address: str | None
    version: int  # 2 for containerd-shim-runc-v2 (and other v2 shims), 1 for containerd-shim
    transient: bool  # the short-lived `... start` / `... delete` invocations


def parse_shim(argv: Sequence[str]) -> ShimArgs | None:
    """A containerd shim's identity, or None if argv is not a shim."""
    prog = program(argv)
    if not prog.startswith("containerd-shim"):
        return None
    workdir = flag_value(argv, "-workdir")
    ident = flag_value(argv, "-id") or (os.path.basename(workdir.rstrip("/")) if workdir else None)
    if not ident:
        return None
    version = 1 if prog == "containerd-shim" else 2
    transient = bool(argv) and argv[-1] in ("start", "delete")
    return ShimArgs(
        namespace=flag_value(argv, "-namespace"),
        id=ident,
        address=flag_value(argv, "-address"),
        version=version,
        transient=transient,
    )


@dataclass(frozen=True)
class ProxyArgs:
    proto: str
    host_ip: str
    host_port: int
    container_ip: str
    container_port: int


def parse_proxy(argv: Sequence[str]) -> ProxyArgs | None:
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


def number(text: str, digits: int = 10) -> int | None:
    """text as a non-negative int if it is ASCII digits only, at most `digits` of them (after
    leading zeros); else None. int() alone would take '-1', '٨٠', '8_0' and ' 8', and raises
    on more than 4,300 digits: every one of these can be planted in an argv or a file."""
    if not (text.isascii() and text.isdigit()) or len(text.lstrip("0")) > digits:
        return None
    return int(text)


def unix_path(url: str) -> str | None:
    """The socket path of a `unix://` URL (or a bare absolute path); None for tcp://, fd://."""
    if url.startswith("unix://"):
        return url[len("unix://") :] or None
    if url.startswith("/"):
        return url
    return None


def normalize_path(path: str) -> str:
    """/var/run is a symlink to /run on every current distribution; compare on /run."""
    path = os.path.normpath(path)
    if path == "/var/run" or path.startswith("/var/run/"):
        return path[len("/var") :]
    return path
