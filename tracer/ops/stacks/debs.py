"""A stack's Debian packages: downloaded once from their suite with an apt of its own, extracted
into dtrace-tree's cache, never installed.

apt runs with its own source list, package lists, cache and an empty status file (`-o Dir::…`),
so the host's apt state and installed packages are never read or changed; `dpkg-deb -x` unpacks
the .deb files into a directory of their own (no maintainer script runs). The cache lives
outside any checkout (/var/cache/dtrace-tree, or $DTRACE_TREE_CACHE), so a clean clone on the
same machine reuses it; from nothing, the download is made again. Either all of a stack's
packages are there or none is: each step writes beside its target and renames at the end.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tracer.errors import EngineError, MissingBinaryError
from tracer.ops import labhost
from tracer.ops.labconfig import BINARIES, STACKS, LabPaths, Stack

CACHE_ENV = "DTRACE_TREE_CACHE"
CACHE = Path("/var/cache/dtrace-tree")
MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Binaries:
    """What a lab runs: binary -> absolute path, and the PATH its daemons get (containerd finds
    its shim there, dockerd docker-proxy, docker-init and runc)."""

    paths: dict[str, str]
    search_path: str
    root: Path | None  # the extracted stack; None for the host's own packages

    def __getitem__(self, name: str) -> str:
        return self.paths[name]

    def env(self) -> dict[str, str]:
        return {**os.environ, "PATH": self.search_path}


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or CACHE)


def binaries(paths: LabPaths, progress: Progress = lambda _m: None) -> Binaries:
    """The binaries of the lab's stack: the host's, or its suite's packages (downloaded and
    extracted first if they are not in the cache yet)."""
    stack = STACKS[paths.stack]
    if stack.suite is None:
        return Binaries(labhost.check_binaries(), labhost.SEARCH_PATH, None)
    root = ensure(stack, progress)
    search = f"{root}/usr/sbin:{root}/usr/bin:{os.environ.get('PATH', '')}:{labhost.SEARCH_PATH}"
    found = {}
    for name, package in BINARIES.items():
        path = shutil.which(name, path=search)
        if path is None:
            raise MissingBinaryError(name, package)
        found[name] = path
    if not labhost.is_static_elf(found["busybox"]):
        raise MissingBinaryError("a static busybox", "busybox-static")
    return Binaries(found, search, root)


def ensure(stack: Stack, progress: Progress) -> Path:
    """The stack's packages, extracted: <cache>/stacks/<name>/root (made once)."""
    home = cache_dir() / "stacks" / stack.name
    root = home / "root"
    if _complete(root, stack):
        return root
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool, path=labhost.SEARCH_PATH) is None:
            raise MissingBinaryError(tool, "apt" if tool == "apt-get" else "dpkg")
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another `lab up` may be downloading the same
        if not _complete(root, stack):
            debs = _download(stack, home, progress)
            _extract(stack, debs, root, progress)
    return root


def versions(root: Path) -> dict[str, str]:
    """package -> version of an extracted stack."""
    try:
        return dict(json.loads((root / "versions.json").read_text())["packages"])
    except (OSError, ValueError, KeyError):
        return {}


def _complete(root: Path, stack: Stack) -> bool:
    return set(versions(root)) == set(stack.packages)


def _apt(home: Path, suite: str) -> list[str]:
    """apt-get with a state of its own: sources, lists, cache, preferences, no status."""
    apt = home / "apt"
    for d in (apt / "lists" / "partial", apt / "cache" / "archives" / "partial",
              apt / "sources.list.d", apt / "preferences.d"):  # fmt: skip
        d.mkdir(parents=True, exist_ok=True)
    (apt / "status").touch()
    (apt / "sources.list").write_text(f"deb [signed-by={KEYRING}] {MIRROR} {suite} main\n")
    options = {
        "Dir::Etc::sourcelist": apt / "sources.list",
        "Dir::Etc::sourceparts": apt / "sources.list.d",
        "Dir::Etc::preferencesparts": apt / "preferences.d",
        "Dir::Etc::preferences": apt / "preferences",
        "Dir::State::Lists": apt / "lists",
        "Dir::State::status": apt / "status",
        "Dir::Cache": apt / "cache",
        "APT::Sandbox::User": "root",  # the cache is root's: apt's _apt user cannot write it
    }
    return ["apt-get", "-q"] + [a for k, v in options.items() for a in ("-o", f"{k}={v}")]


def _download(stack: Stack, home: Path, progress: Progress) -> list[Path]:
    suite = str(stack.suite)
    names = ", ".join(stack.packages)
    apt = _apt(home, suite)
    progress(f"reading Debian {suite}'s package lists (apt of its own, in {home / 'apt'})")
    out = _run([*apt, "update"])
    if out.returncode != 0 or "Err:" in out.stdout:
        raise _not_had(
            stack,
            f"packages ({names})",
            f": apt-get update of Debian {suite} failed",
            out,
            "nothing was installed; check the network, then run `dtrace-tree lab up` again",
        )
    part = home / "debs.part"
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir()
    progress(f"downloading {names} from Debian {suite}")
    out = _run([*apt, "download", *stack.packages], cwd=part)
    got = {_package(deb): deb for deb in part.glob("*.deb")}
    missing = [p for p in stack.packages if p not in got]
    if out.returncode != 0 or missing:
        shutil.rmtree(part, ignore_errors=True)
        named = ", ".join(_named(out.stderr, stack.packages) or missing or stack.packages)
        raise _not_had(stack, f"package {named}", f" from Debian {suite}", out)
    debs = home / "debs"
    shutil.rmtree(debs, ignore_errors=True)
    part.rename(debs)
    return [debs / got[p].name for p in stack.packages]


def _not_had(
    stack: Stack,
    what: str,
    why: str,
    out: subprocess.CompletedProcess[str],
    hint: str = "nothing was installed",
) -> EngineError:
    """The error for packages apt could not get: which, why, and apt's own last line."""
    return EngineError(f"the {stack.name} stack's {what} cannot be had{why}: {_last(out)}", hint)


def _extract(stack: Stack, debs: list[Path], root: Path, progress: Progress) -> None:
    part = root.with_name("root.part")
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    progress(f"extracting {len(debs)} packages into {root} (not installed)")
    found = {}
    for deb in debs:
        out = _run(["dpkg-deb", "-x", str(deb), str(part)])
        if out.returncode != 0:
            shutil.rmtree(part, ignore_errors=True)
            raise EngineError(f"cannot extract {deb.name}: {_last(out)}", "nothing was installed")
        found[_package(deb)] = _run(["dpkg-deb", "-f", str(deb), "Version"]).stdout.strip()
    size = sum(deb.stat().st_size for deb in debs)
    doc = {"suite": stack.suite, "packages": found, "download_bytes": size}
    (part / "versions.json").write_text(json.dumps(doc, indent=2, sort_keys=True))
    shutil.rmtree(root, ignore_errors=True)
    part.rename(root)


def _run(argv: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


def _package(deb: Path) -> str:
    return deb.name.split("_", 1)[0]


def _named(stderr: str, packages: tuple[str, ...]) -> list[str]:
    """The packages apt's errors name ("Unable to locate package X", "... from package X ...")."""
    said = set(re.findall(r"package '?([a-z0-9][a-z0-9+.-]+)", stderr))
    return [p for p in packages if p in said]


def _last(out: subprocess.CompletedProcess[str]) -> str:
    lines = [ln.strip() for ln in (out.stderr + out.stdout).splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith(("E:", "Err:"))]
    return (errors or lines or [f"exit {out.returncode}"])[-1]
