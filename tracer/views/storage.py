"""A container's storage as a report: union root, layers top first, changes, other mounts.

A pure function of what tracer/runtimes/storage.py read. Layers are listed top first: the
writable layer (rw), the init layer, then the image's layers from top to base; each lower
layer's role comes from the driver's records (layerdb), never from its place in the stack.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from tracer.kernel import mountinfo
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
from tracer.runtimes.storage import OVERLAY2, LayerRecord, StorageRead, classify, merged_dir


def report(container: Container, found: StorageRead, names: Mapping[str, str]) -> FsReport:
    """`fs CONTAINER`. names: container id -> label, for the containers sharing a layer."""
    notes = _errors(found)
    root = _root(found)
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
        out.append(Layer("rw", None, cache_id=found.mount_id, shared_with=[] if known else None))
        if found.init_id:
            out.append(Layer("init", None, cache_id=found.init_id, shared_with=[]))
        out += [_image(r, None, sharers(r.chain_id)) for r in found.chain]
        notes.append(
            f"storage driver {found.driver}: its layers are listed from layerdb; their "
            "directories are only resolved for overlay2"
        )
        return out
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


def chain_id(parent: str | None, diff_id: str) -> str:
    """moby's layer.CreateChainID step: the base layer's chain id is its diff id; above it,
    sha256 of "<chain id below> <diff id>"."""
    if parent is None:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


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


def _mounts(container: Container, found: StorageRead) -> list[MountPoint] | None:
    if found.mounts is None:
        return None
    out = []
    for m in found.mounts:
        if m is found.union:
            continue
        source = mountinfo.host_path(found.host, m) if found.host else None
        kind, volume = classify(m, source, found.data_root, container.id)
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
