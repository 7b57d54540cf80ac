"""A container's storage, read from the host: its union root, its layers, its other mounts.

The kernel says what is mounted (the init's /proc/<pid>/mountinfo; the engine's, for where the
merged view and each source are). Docker's graph drivers say what the directories are, in files
under its data root (tracer/runtimes/moby/layerdb.py: layerdb, overlay2, vfs), with
`volumes/<name>/_data` (named local volumes) and `containers/<id>/` (resolv.conf, hostname,
hosts that Docker generates and binds into the container).

Everything is read through the HostRoot and works with dockerd down: the data root comes from
the mount itself (`<data-root>/overlay2/...`), or, for a stopped container, from the engine
(`Runtime.storage_root`: dockerd's --data-root, daemon.json, or a rootless one's home).
containerd's overlayfs snapshotter (Docker's containerd image store, ctr and CRI containers) is
read from containerd's own files (tracer/runtimes/containerd/imagestore.py), a mount under
`<data-root>/rootfs/overlayfs/<id>`. Another storage (fuse-overlayfs) is shown as its mount
says, the rest marked unknown. tracer/views/storage.py makes the report from what `read`
gathered.

An engine whose mount namespace is not the host's (`Runtime.storage_view`: rootless Docker's is
RootlessKit's) mounts its containers' roots and binds' sources there: the merged dir and each
source are found in that namespace's mount table, and its files are read through
/proc/<pid>/root, the engine's own view, paths as the engine (and `docker inspect`) names them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from tracer.kernel import mountinfo, overlayfs
from tracer.kernel.mountinfo import Mount
from tracer.kernel.root import HostRoot, host_namespace, seen_by
from tracer.model.topology import Container, Containerd, Dockerd, Topology
from tracer.runtimes.containerd import imagestore
from tracer.runtimes.containerd.imagestore import ImageStore, Snapshot
from tracer.runtimes.containerd.shim import configured_mounts
from tracer.runtimes.moby.layerdb import HEX, OVERLAY2, VFS, LayerRecord, Store, overlay2_root

__all__ = ["HEX", "OVERLAY2", "VFS", "LayerRecord", "StorageRead", "merged_dir", "read", "read_in"]
SNAPSHOTTER = "overlayfs"  # containerd's overlayfs snapshotter (`docker info`: Driver overlayfs)


@dataclass
class StorageRead:
    """What `read` found for one container; None wherever something could not be seen."""

    container_id: str
    union: Mount | None = None  # the container's root mount
    union_from: str | None = None
    mounts: list[Mount] | None = None  # the init's whole mount table (None: not running)
    host: list[Mount] = field(default_factory=list)  # the engine's mount table (the host's)
    host_from: str = "unknown"
    # The process whose mount namespace (not the host's) the engine's paths are in; None: the
    # host's. Its files are read through /proc/<pid>/root.
    view_pid: int | None = None
    data_root: str | None = None
    data_root_from: str | None = None
    driver: str | None = None
    mount_id: str | None = None
    init_id: str | None = None
    image_top: str | None = None  # chain id of the image's top layer
    chain: list[LayerRecord] = field(default_factory=list)  # top first
    links: dict[str, str | None] = field(default_factory=dict)  # lowerdir entry -> cache id
    lower_text: str | None = None  # overlay2/<mount-id>/lower, for a container not mounted
    sizes: dict[str, int | None] = field(default_factory=dict)  # layer dir -> size
    scan: overlayfs.Scan | None = None  # the writable layer read
    sharing: dict[str, list[str]] | None = None  # chain id -> ids of containers using it
    # destination -> the mount's type in the runtime's own configuration (the bundle's OCI
    # spec: bind, tmpfs, ...); None when it could not be read
    configured: dict[str, str] | None = None
    store: ImageStore | None = None  # containerd's snapshotter, when the layers are its
    snapshots: list[Snapshot] = field(default_factory=list)  # the container's, top first
    errors: list[str] = field(default_factory=list)


def read_in(
    topo: Topology, container: Container, root: HostRoot, list_changes: bool = False
) -> StorageRead:
    """`read`, asking the container's engine where its storage is (for a stopped container)."""
    from tracer.runtimes import runtime_of
    from tracer.runtimes.containerd.shim import docker_namespace

    engine = topo.engine_of(container)
    where = runtime_of(engine).storage_root(engine, root) if engine else None
    view = runtime_of(engine).storage_view(engine) if engine else None
    seen = seen_by(root, view) if view is not None else None
    # Docker's containers are Docker's whether dockerd runs or not: with dockerd down, its
    # containerd is an engine of its own, in Docker's namespace, and the storage is still
    # dockerd's (layerdb, overlay2), found from the container's mount.
    docker = engine is None or engine.runtime == "docker" or docker_namespace(engine.namespace)
    snapshots: tuple[str | None, str | None] | None = None
    if engine is not None:  # containerd's root, for a container whose snapshots are not mounted
        cd = engine.daemon(Containerd)
        dockerd = engine.daemon(Dockerd)
        namespace = container.shim.namespace if container.shim else None
        namespace = namespace or (dockerd.containerd_namespace if dockerd else engine.namespace)
        snapshots = (imagestore.root_of(seen or root, cd.cmdline) if cd else None, namespace)
    return read(root, container, where, list_changes, layerdb=docker, snapshots=snapshots,
                view=view if seen is not None else None)  # fmt: skip


def read(
    root: HostRoot,
    container: Container,
    storage_root: str | None,
    list_changes: bool = False,
    layerdb: bool = True,
    snapshots: tuple[str | None, str | None] | None = None,
    view: int | None = None,
) -> StorageRead:
    """What the container's mount and its engine's storage say. layerdb: the storage may be
    Docker's (layerdb, overlay2). snapshots: (containerd's root, the namespace) where a
    container not mounted may have its snapshots. view: a process in the engine's mount
    namespace, when it is not the host's. Layers in containerd's overlayfs snapshotter are
    read from its files; any other storage (podman's containers/storage) as the mount names
    them."""
    out = StorageRead(container.id)
    files = _engine_table(root, out, view)
    if container.init_pid is not None:
        try:
            out.mounts = mountinfo.read(root, container.init_pid)
        except OSError as exc:
            out.errors.append(f"/proc/{container.init_pid}/mountinfo: {_why(exc)}")
        else:
            out.configured = configured_mounts(root, container)
            roots = [m for m in out.mounts if m.point == "/"]
            out.union = roots[-1] if roots else None  # the last mounted on / is the one seen
            out.union_from = f"mountinfo of pid {container.init_pid}"
    from_mount = data_root_of(out.union, out.host)
    out.data_root = from_mount or storage_root
    out.data_root_from = "the mount" if from_mount else ("the engine" if storage_root else None)
    if from_mount and storage_root and os.path.normpath(storage_root) != from_mount:
        out.errors.append(
            f"the mount is under {from_mount}, the engine's data root is {storage_root} "
            "(userns-remap?): the mount's is used"
        )
    opaque = _opaque_xattr(root, out, view)
    if _read_snapshots(files, out, snapshots, list_changes, opaque):
        pass
    elif out.data_root is not None and layerdb:
        store = Store(files, out.data_root)
        out.driver = store.driver_of(container.id, out.union)
        if out.driver is not None:
            _read_layers(store, out, list_changes, opaque)
        out.errors += store.errors
    if out.driver is None and out.union is not None and out.union.fstype == "overlay":
        _scan_mount(files, out, list_changes, opaque)
    return out


def _engine_table(root: HostRoot, out: StorageRead, view: int | None) -> HostRoot:
    """The mount table the engine's paths are in (the engine's namespace's, else the host's),
    and the root its files are read through."""
    seen = seen_by(root, view) if view is not None else None
    if seen is not None and view is not None:
        try:
            out.host = mountinfo.read(root, view)
        except OSError as exc:
            out.errors.append(
                f"/proc/{view}/mountinfo: {_why(exc)}: the engine's mount namespace could not "
                "be read; the host's is used, where its containers' mounts are not"
            )
        else:
            out.host_from, out.view_pid = f"mountinfo of pid {view} (the engine's)", view
            return seen
    out.host, out.host_from = mountinfo.host_table(root)
    return root


def _opaque_xattr(root: HostRoot, out: StorageRead, view: int | None) -> str:
    """The xattr of an opaque directory in the writable layer: as the mount says (userxattr:
    an overlay mounted in a user namespace); not mounted, user.* when the engine runs in a
    user namespace of its own (rootless: Linux 5.11+ mounts its overlays with userxattr)."""
    if out.union is not None:
        return overlayfs.opaque_xattr(out.union.super_options)
    if view is None:
        return overlayfs.OPAQUE
    try:
        mine = os.readlink(f"{root.pid_dir(view)}/ns/user")
    except OSError:
        return overlayfs.OPAQUE
    host = host_namespace(root, "user")
    return overlayfs.USER_OPAQUE if host is not None and mine != host else overlayfs.OPAQUE


def _read_snapshots(
    root: HostRoot,
    out: StorageRead,
    hint: tuple[str | None, str | None] | None,
    list_changes: bool,
    opaque: str = overlayfs.OPAQUE,
) -> bool:
    """The container's layers in containerd's overlayfs snapshotter, if they are there: its
    mount's upperdir is a snapshot's (`<containerd root>/io.containerd.snapshotter.v1.
    overlayfs/snapshots/<id>/fs`), or, not mounted, its engine's containerd holds a snapshot
    keyed by its id. The chain comes from the snapshotter's metadata, never from the mount:
    the mount is checked against it."""
    found = imagestore.snapshot_dir(out.union.option("upperdir") if out.union else None)
    namespace = hint[1] if hint else None
    croot = found[0] if found else (hint[0] if hint and out.union is None else None)
    if croot is None and out.union is None and out.data_root:  # containerd down: a sibling's
        croot = _sibling_snapshots(out.host, out.data_root)
    if croot is None:
        return False
    store = imagestore.load(root, croot, namespace, found[1] if found else None)
    if found is None and store.snapshots is not None and out.container_id not in store.snapshots:
        return False  # not this containerd's: Docker's layerdb, say
    if found is None and store.snapshots is None:  # no snapshotter to ask: layerdb's, perhaps
        out.errors += [e for e in store.errors if "no such file" not in e]
        return False
    out.store, out.driver = store, SNAPSHOTTER
    out.errors += store.errors
    top = out.container_id
    if found is not None and store.snapshots is not None:
        by_id = store.by_id()
        mine = by_id.get(found[1])
        if mine is None:
            out.errors.append(
                f"the mount's upperdir is snapshot {found[1]}, which {croot}'s snapshotter "
                f"does not list in namespace {store.namespace}"
            )
        elif mine.key != top:
            out.errors.append(
                f"the mount's upperdir is snapshot {found[1]} ({mine.key}), not the one keyed "
                f"by the container's id"
            )
            top = mine.key
    out.snapshots = store.chain(top) if store.snapshots is not None else []
    out.sharing = store.users() if store.snapshots is not None else None
    if out.union is not None:
        _scan_mount(root, out, list_changes, opaque)
    elif out.snapshots and out.snapshots[0].kind == "active":
        upper = f"{store.directory(out.snapshots[0].id)}/fs"
        lowers = [root.path(f"{store.directory(s.id)}/fs") for s in out.snapshots[1:]]
        out.scan = overlayfs.scan(root.path(upper), lowers, list_changes, opaque=opaque)
        out.sizes[upper] = out.scan.disk_bytes if not out.scan.errors else None
        out.errors += out.scan.errors[:5]
    return True


def _sibling_snapshots(host: list[Mount], data_root: str) -> str | None:
    """containerd's root from another container of the same data root, mounted at
    `<data-root>/rootfs/overlayfs/<id>` (Docker's image store), when its containerd is down."""
    under = f"{os.path.normpath(data_root)}/rootfs/{SNAPSHOTTER}/"
    for m in host:
        if m.fstype == "overlay" and m.point.startswith(under):
            found = imagestore.snapshot_dir(m.option("upperdir"))
            if found:
                return found[0]
    return None


def _scan_mount(
    root: HostRoot, out: StorageRead, list_changes: bool, opaque: str = overlayfs.OPAQUE
) -> None:
    """Any other overlay mount (a containerd snapshotter, say): its upper dir read with the
    overlayfs rules alone, its lower dirs as the mount names them."""
    assert out.union is not None
    upper = out.union.option("upperdir")
    if not upper or not upper.startswith("/"):
        return
    lowers = [root.path(p) for p in mountinfo.overlay_dirs(out.union.option("lowerdir"))]
    out.scan = overlayfs.scan(root.path(upper), lowers, list_changes, opaque=opaque)
    if out.scan.errors:
        out.sizes[upper] = None
    else:  # as the snapshotter counts it (disk blocks), or as docker ps -s does
        out.sizes[upper] = out.scan.disk_bytes if out.store else out.scan.size_bytes
    out.errors += out.scan.errors[:5]


def _read_layers(store: Store, out: StorageRead, list_changes: bool, opaque: str) -> None:
    record = store.mount_record(out.driver or "", out.container_id)
    if record is not None:
        out.mount_id, out.init_id, out.image_top = record
    out.chain = store.chain(out.driver or "", out.image_top) if out.image_top else []
    out.sharing = store.sharing(out.driver or "")
    if out.driver != OVERLAY2:
        return
    lowers = mountinfo.overlay_dirs(out.union.option("lowerdir")) if out.union else []
    if out.union is None and out.mount_id:  # not mounted: the driver's record of the stack
        out.lower_text = store.text(f"{OVERLAY2}/{out.mount_id}/lower")
        lowers = [p for p in (out.lower_text or "").strip().split(":") if p]
    for entry in lowers:
        out.links[entry] = store.link_target(entry)
    upper = out.union.option("upperdir") if out.union else None
    if upper is None and out.mount_id:
        upper = f"{store.data_root}/{OVERLAY2}/{out.mount_id}/diff"
    lower_dirs = [store.layer_dir(c) for c in out.links.values() if c]
    if upper:
        seen = [store.root.path(d) for d in lower_dirs if d]
        upper = store.absolute(upper)
        out.scan = overlayfs.scan(store.root.path(upper), seen, list_changes, opaque=opaque)
        out.sizes[upper] = out.scan.size_bytes if not out.scan.errors else None
        out.errors += out.scan.errors[:5]
    if out.init_id:
        init = store.layer_dir(out.init_id)
        out.sizes[init], why = overlayfs.size(store.root.path(init))
        if why:
            out.errors.append(why)


def data_root_of(union: Mount | None, host: list[Mount]) -> str | None:
    """Docker's data root, from an overlay2 mount: its upperdir `<root>/overlay2/<id>/diff`
    (or, when Docker mounted with paths relative to it, the host's merged dir
    `<root>/overlay2/<id>/merged`)."""
    if union is None or union.fstype != "overlay":
        return None
    merged = merged_dir(union, host)
    for path in (union.option("upperdir"), merged):
        found = overlay2_root(path)
        if found:
            return found
    parts = (merged or "").split("/")  # the containerd image store: <root>/rootfs/overlayfs/<id>
    if len(parts) >= 5 and parts[-3:-1] == ["rootfs", SNAPSHOTTER] and parts[0] == "":
        return "/".join(parts[:-3]) or "/"
    return None


def merged_dir(union: Mount | None, host: list[Mount]) -> str | None:
    """Where the host has the container's root mounted (the same superblock)."""
    if union is None:
        return None
    for m in host:
        if m.device == union.device and m.fstype == union.fstype and m.root == union.root:
            return m.point
    return None


def _why(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()
