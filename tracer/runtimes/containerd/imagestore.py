"""containerd's image store as its files say, read-only and without containerd: the layers of
Docker's containers when dockerd runs with the containerd snapshotter (Docker 29's default).

Under containerd's root (`--root`, config `root`, /var/lib/containerd):

- `io.containerd.snapshotter.v1.overlayfs/metadata.db` (bbolt, tracer/runtimes/containerd/
  bolt.py): bucket v1/snapshots holds one bucket per snapshot, named `<namespace>/<n>/<key>`
  (containerd's metadata store prefixes the key a client gave), with `id` (uvarint: the
  snapshot's directory `snapshots/<id>/{fs,work}`), `kind` (1 view, 2 active, 3 committed),
  `parent` (the parent's full name) and, once committed, `size` and `inodes` (zig-zag varints:
  the usage `ctr snapshots usage` prints, disk blocks as du counts them);
- `io.containerd.metadata.v1.bolt/meta.db`: v1/<namespace>/images/<name>/target/digest names a
  manifest (or an index of manifests) in the content store, `io.containerd.content.v1.content/
  blobs/sha256/<hex>`; the manifest names the image config, whose rootfs.diff_ids are the
  layers' diff ids, base first.

Docker names the snapshots: an image layer's key is its chain id (the base's is its diff id, the
next sha256("<chain below> <diff id>"), as with layerdb), a container's writable layer is keyed
by the container id, its init layer by `<id>-init`, a child of the image's top layer. Docker's
classic builder commits each step on the build container's init layer, so an image it built has
`<build id>-init` snapshots between its layers (found on dockerd 28.5: read as they are).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from tracer.kernel.root import HostRoot
from tracer.runtimes.containerd import bolt

SNAPSHOTTER = "io.containerd.snapshotter.v1.overlayfs"
METADATA = "io.containerd.metadata.v1.bolt/meta.db"
BLOBS = "io.containerd.content.v1.content/blobs"
DEFAULT_ROOT = "/var/lib/containerd"
KINDS = {1: "view", 2: "active", 3: "committed"}
INDEX_TYPES = ("index", "manifest.list")  # an OCI index, a Docker manifest list
MAX_BLOB = 4 << 20  # a manifest or a config larger than this is not one
MAX_CHAIN = 256  # more layers than overlayfs can stack: a loop


@dataclass(frozen=True)
class Snapshot:
    key: str  # as the namespace names it (`ctr -n moby snapshots ls`)
    id: str  # its directory: <root>/io.containerd.snapshotter.v1.overlayfs/snapshots/<id>
    kind: str  # active | committed | view | unknown
    parent: str | None  # the parent's key
    size: int | None  # committed: the recorded usage in bytes (`ctr snapshots usage`)
    inodes: int | None


@dataclass
class ImageStore:
    """One containerd root, one namespace: its snapshots and its images' layers."""

    root: str
    namespace: str
    snapshots: dict[str, Snapshot] | None = None  # key -> snapshot (None: metadata.db unread)
    diff_ids: dict[str, str] | None = None  # chain id -> diff id (None: meta.db unread)
    images: dict[str, list[str]] = field(default_factory=dict)  # chain id -> image names
    errors: list[str] = field(default_factory=list)

    def directory(self, snapshot_id: str) -> str:
        return f"{self.root}/{SNAPSHOTTER}/snapshots/{snapshot_id}"

    def by_id(self) -> dict[str, Snapshot]:
        return {s.id: s for s in (self.snapshots or {}).values()}

    def chain(self, key: str) -> list[Snapshot]:
        """The snapshot and its parents, top first (a missing parent ends it, with a note)."""
        out: list[Snapshot] = []
        here: str | None = key
        while here and len(out) < MAX_CHAIN:
            snap = (self.snapshots or {}).get(here)
            if snap is None:
                if self.snapshots is not None:
                    self.errors.append(f"snapshot {here} is not in {self._metadata()}")
                break
            out.append(snap)
            here = snap.parent
        return out

    def users(self) -> dict[str, list[str]]:
        """snapshot key -> the containers (Docker's: an active snapshot keyed by a 64-hex id)
        whose root holds it; running or not, containerd up or down."""
        out: dict[str, list[str]] = {}
        for snap in (self.snapshots or {}).values():
            if snap.kind == "active" and _is_container_id(snap.key):
                for below in self.chain(snap.key):
                    out.setdefault(below.key, []).append(snap.key)
        return out

    def _metadata(self) -> str:
        return f"{self.root}/{SNAPSHOTTER}/metadata.db"


def load(
    root: HostRoot, containerd_root: str, namespace: str | None, snapshot_id: str | None = None
) -> ImageStore:
    """Both files read, each as one consistent copy; what cannot be read is said in errors.
    namespace None: the one that holds snapshot_id (a mount names a snapshot, not its
    namespace)."""
    store = ImageStore(os.path.normpath(containerd_root), namespace or "?")
    path = store._metadata()
    try:
        every = _snapshots(bolt.read(root.path(path)))
    except (OSError, bolt.BoltError) as exc:
        what = "the snapshots' keys, parents and sizes are unknown"
        store.errors.append(f"{path}: {_why(exc)}: {what}")
    else:
        if namespace is None:
            holding = [ns for ns, snaps in every.items()
                       if any(s.id == snapshot_id for s in snaps.values())]  # fmt: skip
            namespace = holding[0] if holding else None
        if namespace is None:
            store.errors.append(f"{path}: no namespace holds snapshot {snapshot_id}")
        else:
            store.namespace = namespace
            store.snapshots = every.get(namespace, {})
    if namespace is None:
        return store
    path = f"{store.root}/{METADATA}"
    try:  # (the reader is lazy: a damaged page is met while walking)
        store.diff_ids = {}
        _images(root, store, bolt.read(root.path(path)))
    except (OSError, bolt.BoltError) as exc:
        store.diff_ids, store.images = None, {}
        store.errors.append(f"{path}: {_why(exc)}: the layers' diff ids and images are unknown")
    return store


def _snapshots(db: bolt.Bucket) -> dict[str, dict[str, Snapshot]]:
    """namespace -> key -> snapshot."""
    v1 = db.bucket("v1")
    every = v1.bucket("snapshots") if v1 else None
    if every is None:
        raise bolt.BoltError("no v1/snapshots bucket")
    out: dict[str, dict[str, Snapshot]] = {}
    for raw, b in every.buckets():
        named = _split(raw.decode("utf-8", "replace"))
        if named is None:
            continue  # not made through containerd's metadata store
        namespace, key = named
        parent = _split(b.text("parent") or "")
        kind = b.get("kind") or b""
        size, inodes = b.get("size"), b.get("inodes")
        out.setdefault(namespace, {})[key] = Snapshot(
            key=key,
            id=str(uvarint(b.get("id") or b"")),
            kind=KINDS.get(kind[0], "unknown") if len(kind) == 1 else "unknown",
            parent=parent[1] if parent else None,
            size=zigzag(size) if size else None,
            inodes=zigzag(inodes) if inodes else None,
        )
    return out


def _split(name: str) -> tuple[str, str] | None:
    """`moby/17/<key>` -> (`moby`, `<key>`): containerd's metadata store names each snapshot
    namespace/sequence/key in the snapshotter."""
    namespace, sep, rest = name.partition("/")
    seq, sep2, key = rest.partition("/")
    return (namespace, key) if sep and sep2 and seq.isdigit() and key else None


def _images(root: HostRoot, store: ImageStore, db: bolt.Bucket) -> None:
    v1 = db.bucket("v1")
    ns = v1.bucket(store.namespace) if v1 else None
    images = ns.bucket("images") if ns else None
    if images is None:
        return
    assert store.diff_ids is not None
    for raw, image in images.buckets():
        target = image.bucket("target")
        digest = target.text("digest") if target else None
        if not digest:
            continue
        name = raw.decode("utf-8", "replace")
        for diff_ids in _configs(root, store, digest, 0):
            chain: str | None = None
            for diff in diff_ids:
                chain = chain_id(chain, diff)
                store.diff_ids[chain] = diff
                names = store.images.setdefault(chain, [])
                if name not in names:
                    names.append(name)


def _configs(root: HostRoot, store: ImageStore, digest: str, depth: int) -> list[list[str]]:
    """The diff ids of each image config below a manifest or an index (the platforms whose
    blobs are here; an index of another platform's manifest is usually not pulled)."""
    doc = _blob(root, store, digest)
    if not isinstance(doc, dict) or depth > 2:
        return []
    if isinstance(doc.get("manifests"), list):
        out: list[list[str]] = []
        for m in doc["manifests"]:
            if isinstance(m, dict) and isinstance(m.get("digest"), str):
                out += _configs(root, store, m["digest"], depth + 1)
        return out
    config = doc.get("config")
    if isinstance(config, dict) and isinstance(config.get("digest"), str):
        conf = _blob(root, store, config["digest"])
        rootfs = conf.get("rootfs") if isinstance(conf, dict) else None
        diffs = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if isinstance(diffs, list) and all(isinstance(d, str) for d in diffs):
            return [diffs]
    return []


def _blob(root: HostRoot, store: ImageStore, digest: str) -> object:
    algo, _, hexa = digest.partition(":")
    if not (algo.isalnum() and hexa.isalnum()):  # text from a file: never a path
        return None
    path = f"{store.root}/{BLOBS}/{algo}/{hexa}"
    try:
        with open(root.path(path), "rb") as f:
            return json.loads(f.read(MAX_BLOB))
    except FileNotFoundError:
        return None  # another platform's, not pulled
    except OSError as exc:
        line = f"{path}: {_why(exc)}"
        if line not in store.errors:
            store.errors.append(line)
        return None
    except ValueError:
        return None


def chain_id(parent: str | None, diff_id: str) -> str:
    """The OCI chain id: the base layer's is its diff id; above it, sha256 of "<chain id
    below> <diff id>" (moby's layer.CreateChainID, containerd's identity.ChainID)."""
    import hashlib

    if parent is None:
        return diff_id
    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


def uvarint(data: bytes) -> int:
    """Go's binary.Uvarint (0 when the bytes end early)."""
    value = shift = 0
    for byte in data[:10]:
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value
        shift += 7
    return 0


def zigzag(data: bytes) -> int:
    """Go's binary.Varint: a zig-zag encoded signed number."""
    u = uvarint(data)
    return (u >> 1) ^ -(u & 1)


def _is_container_id(key: str) -> bool:
    return len(key) == 64 and all(c in "0123456789abcdef" for c in key)


def _why(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return (exc.strerror or type(exc).__name__).lower()
    return str(exc)


def snapshot_dir(path: str | None) -> tuple[str, str] | None:
    """(containerd root, snapshot id) of a layer directory named in an overlay mount's options:
    `<root>/io.containerd.snapshotter.v1.overlayfs/snapshots/<id>/fs`."""
    if not path or not path.startswith("/"):
        return None
    parts = path.split("/")
    if len(parts) >= 5 and parts[-1] == "fs" and parts[-3:-5:-1] == ["snapshots", SNAPSHOTTER]:
        return ("/".join(parts[:-4]) or "/", parts[-2]) if parts[-2].isdigit() else None
    return None


def root_of(root: HostRoot, cmdline: list[str]) -> str:
    """A containerd's root: --root, else its config file's `root`, else /var/lib/containerd."""
    from tracer.runtimes.flags import flag_value

    config = flag_value(cmdline, "--config", "-c") or "/etc/containerd/config.toml"
    flag = flag_value(cmdline, "--root")
    if flag and flag.startswith("/"):
        return flag
    import tomllib  # only when a stopped container's snapshots are looked for

    try:
        found = tomllib.loads(root.read_text(config) or "").get("root")
    except tomllib.TOMLDecodeError:
        found = None
    return found if isinstance(found, str) and found.startswith("/") else DEFAULT_ROOT
