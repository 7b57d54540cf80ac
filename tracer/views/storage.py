"""A container's storage as a report: union root, layers top first, changes, other mounts.

A pure function of what tracer/runtimes/storage.py read. Layers are listed top first: the
writable layer (rw), the init layer, then the image's layers from top to base; each lower
layer's role comes from the driver's records (layerdb), never from its place in the stack.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tracer.kernel import mountinfo
from tracer.kernel.mountinfo import Mount
from tracer.kernel.root import HostRoot
from tracer.model.storage import (
    Changes,
    FileChange,
    FsReport,
    FsSubject,
    Layer,
    MountPoint,
    UnionRoot,
)
from tracer.model.topology import Container, Topology
from tracer.runtimes.containerd.imagestore import SNAPSHOTTER as SNAPSHOTTER_DIR
from tracer.runtimes.containerd.imagestore import chain_id
from tracer.runtimes.storage import HEX, OVERLAY2, VFS, LayerRecord, StorageRead, merged_dir

# Mounts every OCI runtime makes for a container (runc's default spec and Docker's masked and
# read-only paths): shown as "system", not as the user's.
SYSTEM_FS = frozenset({"proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2", "securityfs"})
DOCKER_INIT = "/sbin/docker-init"  # where `docker run --init` binds docker-init
# The devices runc makes in every container (its default devices); in a user namespace (rootless)
# it may not mknod them, and binds the host's instead: mounts no configuration asked for.
RUNC_DEVICES = frozenset(f"/dev/{d}" for d in ("null", "zero", "full", "tty", "random", "urandom"))


def report(container: Container, found: StorageRead, names: Mapping[str, str]) -> FsReport:
    """`fs CONTAINER`. names: container id -> label, for the containers sharing a layer."""
    notes = _errors(found)
    root = _root(found)
    if found.store is not None:
        layers = snapshot_layers(container, found, names, notes)
    else:
        layers = _layers(container, found, names, notes)
    if found.chain:
        notes += verify_chain(found.chain)
    changes = None
    if found.scan is not None and not (found.scan.errors and found.scan.entries == 0):
        s = found.scan
        files = [FileChange(c.kind, c.path) for c in s.changes] if s.changes is not None else None
        changes = Changes(s.added, s.changed, s.deleted, files, s.truncated)
        if s.truncated:
            notes.append(f"the writable layer holds more than {s.entries} entries: cut there")
    if found.view_pid is not None:
        notes.append(
            f"the engine mounts its containers' storage in a mount namespace of its own (pid "
            f"{found.view_pid}'s; rootless Docker's is RootlessKit's): paths are as the engine "
            f"and docker inspect name them; the host reaches them under /proc/{found.view_pid}"
            "/root"
        )
    if container.init_pid is None:
        notes.append(
            f"{container.name or container.short_id} is {container.state}: it has no mounts "
            "(they exist while it runs); its layers are read from the storage driver's records"
        )
    if found.data_root is None and (found.union is not None or container.init_pid is None):
        notes.append(
            "where the engine keeps its storage is unknown (not an overlay2 mount, and no "
            "dockerd to ask): layers are shown as the mount says"
        )
    return FsReport(
        container=FsSubject(
            container.id, container.name, container.image, container.state, container.init_pid
        ),
        driver=found.driver or (found.union.fstype if found.union else None),
        data_root=found.data_root,
        root=root,
        layers=layers,
        changes=changes,
        mounts=_mounts(container, found),
        notes=notes,
        seen_from=f"/proc/{found.view_pid}/root" if found.view_pid is not None else None,
    )


def _errors(found: StorageRead) -> list[str]:
    """What could not be read; permission errors under the data root said once."""
    root = found.data_root
    denied = [e for e in found.errors if root and e.startswith(root) and "permission denied" in e]
    notes = [e for e in found.errors if e not in denied]
    if denied:
        notes.insert(
            0,
            f"{root}: permission denied ({len(denied)} files and directories): the layers' "
            "ids, sizes, sharing and the writable layer's changes are unknown (run as root)",
        )
    return notes


def _root(found: StorageRead) -> UnionRoot | None:
    u = found.union
    if u is not None:
        return UnionRoot(
            fstype=u.fstype,
            lowerdir=mountinfo.overlay_dirs(u.option("lowerdir")),
            upperdir=u.option("upperdir"),
            workdir=u.option("workdir"),
            merged=_merged(found),
            source=found.union_from or "mountinfo",
        )
    if found.store is not None and found.snapshots:  # not mounted: the snapshotter's records
        dirs = [f"{found.store.directory(s.id)}" for s in found.snapshots]
        return UnionRoot(
            fstype=None,
            lowerdir=[f"{d}/fs" for d in dirs[1:]],
            upperdir=f"{dirs[0]}/fs",
            workdir=f"{dirs[0]}/work",
            merged=None,
            source=f"{found.store.root}/{SNAPSHOTTER_DIR}/metadata.db",
        )
    if found.driver == OVERLAY2 and found.mount_id and found.data_root:
        base = f"{found.data_root}/{OVERLAY2}/{found.mount_id}"
        return UnionRoot(
            fstype=None,
            lowerdir=[f"{found.data_root}/{OVERLAY2}/{p}" for p in found.links],
            upperdir=f"{base}/diff",
            workdir=f"{base}/work",
            merged=None,
            source=f"{base}/lower",
        )
    return None


def _merged(found: StorageRead) -> str | None:
    return merged_dir(found.union, found.host)


def _layers(
    container: Container, found: StorageRead, names: Mapping[str, str], notes: list[str]
) -> list[Layer]:
    def sharers(chain_id: str | None) -> list[str] | None:
        if found.sharing is None or chain_id is None:
            return None
        users = {cid for cid in found.sharing.get(chain_id, []) if cid != container.id}
        return sorted(names.get(cid, cid[:12]) for cid in users)

    data = found.data_root
    store_dir = (lambda cache: f"{data}/{OVERLAY2}/{cache}/diff") if data else None
    known = found.sharing is not None and found.mount_id is not None
    out: list[Layer] = []
    upper = found.union.option("upperdir") if found.union else None
    if found.driver == OVERLAY2 or (upper and found.driver is None):
        path = (
            _absolute(upper, data)
            if upper
            else (store_dir(found.mount_id) if store_dir and found.mount_id else None)
        )
        cache = found.mount_id if found.driver == OVERLAY2 else None
        if cache is None and found.driver == OVERLAY2 and path:  # <data>/overlay2/<id>/diff
            cache = path.split("/")[-2]
        size = found.sizes.get(path) if path else None
        if size is None and found.scan is not None and not found.scan.errors:
            size = found.scan.size_bytes
        out.append(Layer("rw", path, cache_id=cache, size_bytes=size,
                         shared_with=[] if known else None))  # fmt: skip
    elif found.driver is not None:  # another graph driver: what layerdb says
        return _other_driver(found, sharers, notes, known)
    by_cache = {r.cache_id: r for r in found.chain if r.cache_id}
    used: list[str] = []
    for entry, cache in found.links.items() if found.links else _raw(found):
        link = entry.rsplit("/", 1)[-1] if "/l/" in f"/{entry}" else None
        path = store_dir(cache) if (store_dir and cache) else _absolute(entry, data)
        if cache is not None and cache == found.init_id:
            out.append(Layer("init", path, cache_id=cache, link=link,
                             size_bytes=found.sizes.get(path or ""), shared_with=[]))  # fmt: skip
        elif cache is not None and cache in by_cache:
            used.append(cache)
            out.append(_image(by_cache[cache], path, sharers(by_cache[cache].chain_id), link))
        else:
            out.append(Layer("lower", path, cache_id=cache, link=link))
    chain_caches = [r.cache_id for r in found.chain if r.cache_id]
    if found.chain and used != chain_caches:
        notes.append(
            "the mount's lower layers differ from the image's chain in layerdb "
            f"({len(used)} of {len(chain_caches)} matched, in order: {used == chain_caches})"
        )
    if found.union is not None and found.union.fstype != "overlay":
        notes.append(
            f"the root is a {found.union.fstype} mount of {found.union.source}: "
            "not a union of layers that can be read from its mount"
        )
    elif found.driver is None and out:
        notes.append(
            "not Docker's overlay2: layers are listed as the mount names them; their roles, "
            "ids, sizes and sharing are unknown"
        )
    return out


def _other_driver(
    found: StorageRead,
    sharers: Callable[[str | None], list[str] | None],
    notes: list[str],
    known: bool,
) -> list[Layer]:
    """A graph driver other than overlay2, from layerdb: vfs's directories (`vfs/dir/<id>`),
    each a whole copy of the layer below with its own changes, so the writable layer's
    changes are not in a directory of their own; another driver's ids alone."""
    data, driver = found.data_root, found.driver
    where = (lambda d: f"{data}/{VFS}/dir/{d}" if d else None) if data and driver == VFS else None
    out = [Layer("rw", where(found.mount_id) if where else None, cache_id=found.mount_id,
                 shared_with=[] if known else None)]  # fmt: skip
    if found.init_id:
        path = where(found.init_id) if where else None
        out.append(Layer("init", path, cache_id=found.init_id, shared_with=[]))
    out += [_image(r, where(r.cache_id) if where else None, sharers(r.chain_id))
            for r in found.chain]  # fmt: skip
    if driver == VFS:
        notes.append(
            "storage driver vfs: no union: each layer's directory is a whole copy of the one "
            "below it plus its own changes (sizes are layerdb's, of the changes); the writable "
            "layer's changes are docker diff's comparison of two whole trees, not read here"
        )
    else:
        notes.append(
            f"storage driver {driver}: its layers are listed from layerdb; their directories "
            "are only resolved for overlay2 and vfs"
        )
    return out


def snapshot_layers(
    container: Container, found: StorageRead, names: Mapping[str, str], notes: list[str]
) -> list[Layer]:
    """The layers in containerd's overlayfs snapshotter, top first, as its metadata chains
    them: the container's writable snapshot (keyed by its id), its init snapshot (Docker's
    `<id>-init`), the image's layers (keyed by chain id, diff ids from the image's config),
    and any other committed snapshot in the chain (the classic builder's `<id>-init`)."""
    store = found.store
    assert store is not None
    sharing = found.sharing

    def sharers(key: str) -> list[str] | None:
        if sharing is None:
            return None
        users = {cid for cid in sharing.get(key, []) if cid != container.id}
        return sorted(names.get(cid, cid[:12]) for cid in users)

    if store.snapshots is None:  # metadata.db unreadable: the mount's layers, marked unknown
        return _mounted_snapshots(found)
    diff_ids = store.diff_ids
    out: list[Layer] = []
    others: list[str] = []
    for snap in found.snapshots:
        path = f"{store.directory(snap.id)}/fs"
        size = snap.size if snap.kind == "committed" else found.sizes.get(path)
        layer = Layer("lower", path, size_bytes=size, shared_with=sharers(snap.key),
                      snapshot_key=snap.key, snapshot_id=snap.id)  # fmt: skip
        if snap.key == container.id:
            layer.role = "rw"
        elif snap.key == f"{container.id}-init":
            layer.role = "init"
        elif diff_ids is not None and snap.key in diff_ids:
            layer.role, layer.chain_id, layer.diff_id = "image", snap.key, diff_ids[snap.key]
        elif snap.kind == "committed" and diff_ids is not None:
            others.append(snap.key)
        out.append(layer)
    if found.snapshots and not any(layer.role == "image" for layer in out) and diff_ids:
        notes.append(
            f"no snapshot under {found.snapshots[0].key} is a layer of an image in namespace "
            f"{store.namespace} (removed, or not unpacked by an image)"
        )
    if others:
        notes.append(
            f"{len(others)} committed snapshot{'s' if len(others) > 1 else ''} in the chain "
            "belong to no image's layers (" + ", ".join(others[:3]) + "): Docker's classic "
            "builder commits each step on its build container's init snapshot"
        )
    notes += verify_snapshots(out)
    notes += _mount_agrees(found, out)
    return out


def _mounted_snapshots(found: StorageRead) -> list[Layer]:
    """The layers as the mount names them, each with its snapshot id from its path; roles
    (but the writable one), ids, sizes and sharing unknown."""
    from tracer.runtimes.containerd.imagestore import snapshot_dir

    out: list[Layer] = []
    upper = found.union.option("upperdir") if found.union else None
    for i, path in enumerate([upper, *_entries(found)] if upper else []):
        where = snapshot_dir(path)
        size = found.sizes.get(path) if i == 0 else None
        out.append(Layer("rw" if i == 0 else "lower", path, size_bytes=size,
                         snapshot_id=where[1] if where else None))  # fmt: skip
    return out


def verify_snapshots(layers: list[Layer]) -> list[str]:
    """Notes for image layers whose key does not follow from the diff ids below them."""
    notes: list[str] = []
    below: str | None = None
    for layer in reversed(layers):
        if layer.role == "image" and layer.diff_id and layer.chain_id:
            expected = chain_id(below, layer.diff_id)
            if expected != layer.chain_id:
                notes.append(f"layer {layer.chain_id}: its diff ids give chain id {expected}")
            below = layer.chain_id
    return notes


def _mount_agrees(found: StorageRead, layers: list[Layer]) -> list[str]:
    """The mount's upperdir and lowerdirs against the snapshotter's chain."""
    if found.union is None or not layers:
        return []
    mounted = [found.union.option("upperdir") or "", *_entries(found)]
    chained = [layer.path or "" for layer in layers]
    if mounted == chained:
        return []
    return [
        f"the mount's layers ({len(mounted)}) differ from the snapshotter's chain "
        f"({len(chained)}): the chain is shown, the mount is under root"
    ]


def _entries(found: StorageRead) -> list[str]:
    return mountinfo.overlay_dirs(found.union.option("lowerdir")) if found.union else []


def _raw(found: StorageRead) -> list[tuple[str, str | None]]:
    lowers = mountinfo.overlay_dirs(found.union.option("lowerdir")) if found.union else []
    return [(entry, None) for entry in lowers]


def _absolute(path: str | None, data_root: str | None) -> str | None:
    if path is None or path.startswith("/") or data_root is None:
        return path
    return f"{data_root}/{OVERLAY2}/{path}"


def _image(
    rec: LayerRecord, path: str | None, shared: list[str] | None, link: str | None = None
) -> Layer:
    return Layer("image", path, cache_id=rec.cache_id, diff_id=rec.diff_id,
                 chain_id=rec.chain_id, link=link, size_bytes=rec.size,
                 shared_with=shared)  # fmt: skip


def verify_chain(chain: list[LayerRecord]) -> list[str]:
    """Notes for layers whose chain id does not follow from the diff ids below them."""
    notes: list[str] = []
    below: str | None = None
    for rec in reversed(chain):  # from the base up
        if rec.diff_id is None:
            return notes + [f"layer {rec.chain_id}: no diff id: the chain cannot be checked"]
        expected = chain_id(below, rec.diff_id)
        if expected != rec.chain_id:
            notes.append(f"layer {rec.chain_id}: its diff ids give chain id {expected}")
        below = rec.chain_id
    return notes


def classify(
    m: Mount,
    host_path: str | None,
    data_root: str | None,
    cid: str,
    configured: str | None = None,
) -> tuple[str, str | None]:
    """(kind, volume name) of a mount of the container other than its root. configured: its
    type in the runtime's configuration (the OCI spec), which says what the mount is; the
    file system type only says what backs it (a bind of a directory on a tmpfs is a bind)."""
    if m.fstype in SYSTEM_FS:
        return "system", None
    if m.fstype == "tmpfs" and m.point in ("/dev", "/sys/fs/cgroup"):
        return "system", None
    if m.point.startswith(("/proc/", "/sys/")):  # masked and read-only paths
        return "system", None
    if m.point == "/dev/shm" and (m.source == "shm" or _under(host_path, data_root, cid)):
        return "system", None  # Docker's /dev/shm (its own, or containers/<id>/mounts/shm)
    if host_path and data_root:
        volumes = f"{data_root.rstrip('/')}/volumes/"
        if host_path.startswith(volumes):
            name, _, rest = host_path[len(volumes) :].partition("/")
            if name and (rest == "_data" or rest.startswith("_data/")):
                return "volume", name
        if _under(host_path, data_root, cid):
            return "generated", None
    if m.point == DOCKER_INIT:
        return "init", None
    if configured == "none" and m.point in RUNC_DEVICES:
        return "system", None  # runc's own bind of a device, in a user namespace
    if configured == "bind":
        return "bind", None
    if configured == "tmpfs" or (configured is None and m.fstype == "tmpfs" and not host_path):
        return "tmpfs", None  # (a tmpfs of its own: no mount of the host shows it)
    return ("bind", None) if host_path else (m.fstype, None)


def _under(host_path: str | None, data_root: str | None, cid: str) -> bool:
    """Is this a file Docker made for a container: its own, or, with `--network container:X`,
    X's hosts, hostname and resolv.conf (<data-root>/containers/<id>/)?"""
    if not host_path or not data_root:
        return False
    rest = host_path.removeprefix(f"{data_root.rstrip('/')}/containers/")
    owner, sep, _ = rest.partition("/")
    return rest != host_path and bool(sep) and len(owner) == 64 and set(owner) <= HEX


def _mounts(container: Container, found: StorageRead) -> list[MountPoint] | None:
    if found.mounts is None:
        return None
    out = []
    for m in found.mounts:
        if m is found.union:
            continue
        source = mountinfo.host_path(found.host, m) if found.host else None
        configured = found.configured.get(m.point, "none") if found.configured else None
        kind, volume = classify(m, source, found.data_root, container.id, configured)
        out.append(
            MountPoint(
                destination=m.point,
                kind=kind,
                source=source,
                volume=volume,
                read_only=m.read_only,
                propagation=m.propagation,
                fstype=m.fstype,
            )
        )
    return out


def report_for(
    topo: Topology, me: Container, root: HostRoot, list_changes: bool = False
) -> FsReport:
    """`fs CONTAINER` (and `serve`'s /api/containers/<id>/fs): read from the host, then made a
    report. DeniedError when nothing at all could be read for lack of privilege."""
    from tracer.errors import cannot_read
    from tracer.runtimes.storage import read_in

    found = read_in(topo, me, root, list_changes=list_changes)
    doc = report(me, found, {c.id: c.label for c in topo.containers()})
    if doc.root is None and doc.mounts is None and not doc.layers:
        denied = [e for e in doc.notes if "permission denied" in e]
        if denied:
            path = denied[0].split(":")[0]
            raise cannot_read(path, "SYS_PTRACE" if path.startswith("/proc") else "DAC_READ_SEARCH")
    return doc
