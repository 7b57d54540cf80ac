"""Bare containerd: an engine per containerd and namespace that no dockerd or CRI took.

`ctr` and nerdctl use containerd directly, in a namespace of their choice (`default`, or any
`-n`); such containers are an engine of their own even on the containerd a dockerd uses (its
namespace is `moby`), named by the containerd's socket and the namespace. A containerd that
no engine took, with no shim, is an engine with no container. Shims whose containerd is not
running are orphans.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from tracer.model.topology import ApiView, Engine
from tracer.runtimes.base import Found, Look, RuntimeBase, shared_by_default
from tracer.runtimes.containerd import shim as sh
from tracer.snapshot.host import Host, Proc
from tracer.snapshot.walk import Reader

_HEX64 = re.compile(r"[0-9a-f]{64}")
NERDCTL_NAME = "nerdctl/name"  # nerdctl's annotation (its ids are 64 hex digits)


class ContainerdRuntime(RuntimeBase):
    """Explains no shared namespace (containerd keeps no options that would) and names no
    storage root: snapshots are shown as the container's mount says (runtimes/storage.py)."""

    name = "containerd"
    daemons = frozenset({"containerd"})
    look = Look(
        chain=("containerd",),
        missing={"containerd": "containerd not found"},
        monitor_parent="containerd",
        edges=sh.SHIM_EDGES,
        cli=frozenset({"ctr", "nerdctl"}),
    )
    usually_shared = shared_by_default(
        "containerd",
        user="containerd's default spec has no user namespace",
        cgroup="containerd's default spec has no cgroup namespace on cgroup v1",
    )

    def read_daemon(self, host: Host, daemon: Proc, read: Reader) -> None:
        read.cwd(daemon.pid)  # for a relative --config
        read.file(sh.config_path(daemon, host))

    def drawn(self, host: Host) -> Iterable[int]:
        """All that every shim runs (not the shim itself: it stays in the host's namespaces
        and nothing shows them)."""
        for proc, _ in sh.shims(host):
            yield from (p.pid for p in host.descendants(proc.pid))

    def read_state(self, host: Host, read: Reader) -> None:
        """Each shim's bundle and the init.pid in it; failing that, runc's own record of the
        init under plain containerd's runc root."""
        for proc, shim in sh.shims(host):
            if not sh.read_bundle(read, proc) and shim.namespace:
                read.file(f"{sh.RUNC_ROOT}/{shim.namespace}/{shim.id}/state.json")

    def endpoint(self, host: Host, daemon: Proc) -> str | None:
        return None  # containerd speaks gRPC; /proc and its files say what dtrace-tree needs

    def ask(self, endpoint: str) -> ApiView:
        return ApiView(error="not asked")

    def build(self, host: Host, answers: Mapping[int, ApiView], found: Found) -> None:
        """The shims left go to an engine per containerd (by their -address) and namespace,
        or are orphans (their containerd is not running); then every containerd that no
        engine holds gets one of its own."""
        mine: dict[tuple[int, str | None], Engine] = {}
        unread = sorted(pid for pid, (sock, _) in sh.sockets(host).items() if sock is None)
        for proc, shim in sh.shims(host):
            if proc.pid in found.claimed:
                continue
            found.claimed.add(proc.pid)
            made = sh.container(host, proc, shim)
            ann = sh.oci_annotations(host, host.cwd.get(proc.pid))
            made.name = ann.get(NERDCTL_NAME) or (None if _HEX64.fullmatch(shim.id) else shim.id)
            cd = sh.serving(host, shim.address)
            if cd is None and unread:  # not root: its containerd may well run, unrecognised
                key = (-1, f"{shim.address} {shim.namespace}")
                if key not in mine:
                    mine[key] = Engine(runtime=self.name, namespace=shim.namespace)
                    mine[key].notes.append(
                        f"the containerd serving {shim.address} is one of pids "
                        f"{', '.join(map(str, unread))}, whose sockets could not be read (run "
                        "as root)"
                    )
                sh.adopt(mine[key], proc, made)
                continue
            if cd is None:
                found.orphans.append(made)
                continue
            engine = mine.get((cd.pid, shim.namespace))
            if engine is None:
                claimed = cd.pid in found.claimed
                engine = mine[(cd.pid, shim.namespace)] = self._engine(
                    host, cd, shim.namespace, claimed
                )
            sh.adopt(engine, proc, made)
        held = {d.pid for e in found.engines for d in e.daemons} | {pid for pid, _ in mine}
        for cd in host.running("containerd"):
            if cd.pid not in held and cd.pid not in found.claimed:
                engine = Engine(runtime=self.name, daemons=[sh.daemon(host, cd)])
                engine.notes.append(
                    "no dockerd uses this containerd, and it runs no container"
                    if cd.pid not in unread
                    else "its socket could not be read (run as root): which shims are its is "
                    "unknown"
                )
                mine[(cd.pid, None)] = engine
        for engine in mine.values():
            sh.sort_containers(engine)
            found.engines.append(engine)

    def _engine(self, host: Host, cd: Proc, namespace: str | None, claimed: bool) -> Engine:
        engine = Engine(runtime=self.name, daemons=[sh.daemon(host, cd)], namespace=namespace)
        if claimed and sh.docker_namespace(namespace):
            engine.notes.append(
                f"namespace {namespace} is Docker's, but no running dockerd on this containerd "
                "made these containers (their runtime root is under none's exec root): the "
                "dockerd that made them is down?"
            )
        elif claimed:
            engine.notes.append(
                "this containerd is also a Docker engine's (namespace moby): these "
                "containers are not Docker's"
            )
        elif sh.docker_namespace(namespace):
            engine.notes.append(
                f"namespace {namespace} is Docker's, but no running dockerd uses this containerd "
                "(dockerd down?)"
            )
        else:
            engine.notes.append(
                f"images are in containerd's metadata, not in /proc or the bundles: "
                f"ctr -n {namespace} containers ls"
            )
        return engine


RUNTIME = ContainerdRuntime()
