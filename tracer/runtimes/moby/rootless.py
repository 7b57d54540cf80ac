"""A rootless dockerd: its owner, rootlesskit, rootlesskit's network helper, and the user
namespace its containers run in.

`dockerd-rootless.sh` (the docker.io package's contrib/) runs `rootlesskit [--net=slirp4netns|
pasta|vpnkit] … dockerd-rootless.sh`; rootlesskit starts its child (argv[0] /proc/self/exe, comm
`exe`) in new user, mount and network namespaces, and that child runs dockerd; the network
helper (slirp4netns, pasta or vpnkit) is rootlesskit's own child, joined to the child's network
namespace. So a dockerd whose parent's parent is rootlesskit is rootless: its user (the uid it
runs as, which owns the engine), the user namespace is the child's, and its uid_map says what
uid 0 inside is on the host.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracer.model.topology import Container, Edge, Engine, Service
from tracer.snapshot.host import Host, Proc, is_parent
from tracer.snapshot.walk import Reader

KITS = frozenset({"rootlesskit", "docker-rootlesskit"})
HELPERS = frozenset({"slirp4netns", "pasta", "passt", "vpnkit", "lxc-user-nic"})


@dataclass(frozen=True)
class Kit:
    parent: Proc  # rootlesskit
    child: Proc  # its child, which holds the namespaces and runs dockerd
    helpers: tuple[Proc, ...]  # its network helper(s)


def find(host: Host, dockerd: Proc) -> Kit | None:
    """rootlesskit above dockerd, proven by the parent links (each parent older)."""
    child = host.procs.get(dockerd.ppid)
    parent = host.procs.get(child.ppid) if child else None
    if not (child and parent and is_parent(child, dockerd) and is_parent(parent, child)):
        return None
    if parent.program not in KITS:
        return None
    helpers = tuple(p for p in host.children(parent.pid) if p.program in HELPERS)
    return Kit(parent, child, helpers)


def kits(host: Host) -> list[Kit]:
    """The rootlesskit of each rootless dockerd. Only once every process has been read (the
    parent map of a half-read process table would be kept)."""
    return [k for d in host.running("dockerd") if (k := find(host, d)) is not None]


def drawn(host: Host) -> list[int]:
    """rootlesskit's children: the user namespace of the engine is theirs."""
    return [k.child.pid for k in kits(host)]


def read(host: Host, read: Reader) -> None:
    """The uid map of each rootless engine's user namespace, and the owners' names."""
    for kit in kits(host):
        read.file(f"/proc/{kit.child.pid}/uid_map")
        read.file("/etc/passwd")


def decorate(host: Host, engine: Engine, dockerd: Proc, claimed: set[int]) -> None:
    """Its owner, rootlesskit and the network helper as its daemons (with their roles and
    parent edges), and the facts that `ns` and the outputs read (user, userns, uid map)."""
    kit = find(host, dockerd)
    if kit is None:
        return
    uid = dockerd.uid
    engine.owner = uid
    user = _user(host.files.get("/etc/passwd", ""), uid)
    mapped = uid_map(host.files.get(f"/proc/{kit.child.pid}/uid_map"))
    userns = kit.child.namespaces.get("user")
    engine.daemons += [
        Service(kit.parent.pid, list(kit.parent.cmdline), kind="rootlesskit"),
        Service(kit.child.pid, list(kit.child.cmdline), kind="rootlesskit child"),
        *(Service(h.pid, list(h.cmdline), kind="network helper") for h in kit.helpers),
    ]  # fmt: skip
    claimed |= {kit.parent.pid, kit.child.pid, *(h.pid for h in kit.helpers)}
    engine.edges += [
        Edge(kit.parent.pid, kit.child.pid, "parent", "ppid"),
        Edge(kit.child.pid, dockerd.pid, "parent", "ppid"),
        *(Edge(kit.parent.pid, h.pid, "parent", "ppid") for h in kit.helpers),
    ]
    engine.facts |= {"rootless_user": user, "rootless_userns": userns,
                     "rootless_uid_map": mapped or None}  # fmt: skip
    engine.notes.append(
        f"rootless: {user} (uid {uid})'s engine; its containers run in user namespace "
        f"{userns if userns is not None else '?'}, held by rootlesskit's child {kit.child.pid}; "
        f"uid 0 inside is uid {uid} on the host" + (f"; uid map {mapped}" if mapped else "")
    )


def describe(engine: Engine) -> list[str]:
    """`uid 1001 (dtlab-rootless, rootless)` beside the engine's head."""
    user = engine.facts.get("rootless_user")
    return [f"uid {engine.owner} ({user}, rootless)"] if user is not None else []


def explain(engine: Engine, container: Container) -> dict[str, str]:
    """The container's user namespace, when it is the rootless engine's own."""
    userns = engine.facts.get("rootless_userns")
    if userns is None or container.namespaces.get("user") != userns:
        return {}
    return {"user": f"the rootless engine's user namespace (uid 0 is uid {engine.owner} on "
                    f"the host)"}  # fmt: skip


def uid_map(text: str | None) -> str:
    """`0->1001 (1), 1->400000 (65536)` from a /proc/<pid>/uid_map ('' if unread)."""
    rows = [line.split() for line in (text or "").splitlines()]
    return ", ".join(f"{a}->{b} ({n})" for a, b, n in (r for r in rows if len(r) == 3))


def _user(passwd: str, uid: int | None) -> str:
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) > 2 and fields[2] == str(uid):
            return fields[0]
    return f"uid {uid}"
