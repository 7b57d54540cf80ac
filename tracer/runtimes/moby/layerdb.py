"""Docker's graph drivers' records under its data root (moby's layer/ and
daemon/graphdriver/): which directories a container's layers are, read from files alone.

- `image/<driver>/layerdb/sha256/<chain-id>/{cache-id,diff,size,parent}`: each image layer by
  its chain id (layer 1's is its diff id; layer n's is sha256("<chain n-1> <diff n>")), the
  driver's directory for it (cache id), its diff id and size, the chain id below it;
- `image/<driver>/layerdb/mounts/<container-id>/{mount-id,init-id,parent}`: the container's
  writable layer, its init layer (`<mount-id>-init`) and the top of its image;
- overlay2: `overlay2/<cache-id>/{diff,link,lower,work,merged}`, and `overlay2/l/<link>`, a
  short symlink to `../<cache-id>/diff`; vfs: `vfs/dir/<cache-id>`, each layer a whole copy
  of the one below it with its own changes (no union).

Read through a HostRoot (the engine's own view of the files, for a rootless one), each file
once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from tracer.kernel.mountinfo import Mount
from tracer.kernel.root import HostRoot

OVERLAY2 = "overlay2"
VFS = "vfs"
HEX = frozenset("0123456789abcdef")


def overlay2_root(path: str | None) -> str | None:
    """Docker's data root from a path `<root>/overlay2/<id>/<diff|merged>` (None if not one)."""
    parts = (path or "").split("/")
    if (path or "").startswith("/") and len(parts) >= 4 and parts[-3] == OVERLAY2:
        return "/".join(parts[:-3]) or "/"
    return None


@dataclass(frozen=True)
class LayerRecord:
    """One image layer in layerdb."""

    chain_id: str
    diff_id: str | None
    cache_id: str | None
    size: int | None
    parent: str | None


class Store:
    """One Docker data root, read through the host root; each file once."""

    def __init__(self, root: HostRoot, data_root: str) -> None:
        self.root = root
        self.data_root = os.path.normpath(data_root)
        self.errors: list[str] = []
        self._records: dict[tuple[str, str], LayerRecord | None] = {}

    def text(self, rel: str) -> str | None:
        """A small file under the data root (None if it cannot be read; why in errors)."""
        path = f"{self.data_root}/{rel}"
        try:
            with open(self.root.path(path), "rb") as f:
                return os.fsdecode(f.read(1 << 16)).strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._error(f"{path}: {_why(exc)}")
            return None

    def _error(self, line: str) -> None:
        if line not in self.errors:
            self.errors.append(line)

    def absolute(self, path: str) -> str:
        """A path from a mount's options: Docker mounts with paths relative to
        <data-root>/overlay2 when the absolute ones would not fit in a page."""
        return path if path.startswith("/") else f"{self.data_root}/{OVERLAY2}/{path}"

    def layer_dir(self, cache_id: str) -> str:
        return f"{self.data_root}/{OVERLAY2}/{cache_id}/diff"

    def driver_of(self, cid: str, union: Mount | None) -> str | None:
        """The graph driver whose layerdb records this container (overlay2 when its mount is
        under <data-root>/overlay2); None if none does."""
        if union is not None and overlay2_root(union.option("upperdir")) == self.data_root:
            return OVERLAY2
        try:
            drivers = sorted(os.listdir(self.root.path(f"{self.data_root}/image")))
        except OSError as exc:
            self._error(f"{self.data_root}/image: {_why(exc)}")
            return None
        for name in drivers:
            if self.root.lexists(f"{self.data_root}/image/{name}/layerdb/mounts/{cid}"):
                return name
        return None

    def mount_record(self, driver: str, cid: str) -> tuple[str | None, str | None, str | None]:
        base = f"image/{driver}/layerdb/mounts/{cid}"
        return (
            self.text(f"{base}/mount-id"),
            self.text(f"{base}/init-id"),
            self.text(f"{base}/parent"),
        )

    def record(self, driver: str, chain_id: str) -> LayerRecord | None:
        key = (driver, chain_id)
        if key not in self._records:
            hexa = chain_id.removeprefix("sha256:")
            if not (len(hexa) == 64 and set(hexa) <= HEX):  # a file's text: never a path
                self._records[key] = None
                return None
            base = f"image/{driver}/layerdb/sha256/{hexa}"
            size = self.text(f"{base}/size")
            self._records[key] = LayerRecord(
                chain_id=f"sha256:{hexa}",
                diff_id=self.text(f"{base}/diff"),
                cache_id=self.text(f"{base}/cache-id"),
                size=int(size) if size and size.isascii() and size.isdigit() else None,
                parent=self.text(f"{base}/parent") or None,
            )
        return self._records[key]

    def chain(self, driver: str, top: str) -> list[LayerRecord]:
        """The image's layers from top to base (a loop in the records stops it)."""
        out: list[LayerRecord] = []
        seen: set[str] = set()
        here: str | None = top
        while here and here not in seen:
            seen.add(here)
            rec = self.record(driver, here)
            if rec is None:
                self._error(f"layerdb has no layer {here}")
                break
            out.append(rec)
            here = rec.parent
        return out

    def link_target(self, entry: str) -> str | None:
        """The cache id behind one lowerdir entry: `<data-root>/overlay2/l/<link>` (absolute
        or relative) is a symlink to `../<cache-id>/diff`; an entry naming a layer's diff
        directly is taken as it is."""
        path = self.absolute(entry)
        parent, name = os.path.split(path)
        if parent == f"{self.data_root}/{OVERLAY2}/l":
            try:
                target = os.readlink(os.path.join(self.root.path(parent), name))
            except OSError as exc:
                self._error(f"{path}: {_why(exc)}")
                return None
            parts = target.split("/")
            if len(parts) == 3 and parts[0] == ".." and parts[2] == "diff" and parts[1]:
                return parts[1]
            self._error(f"{path} points to {target}, not ../<cache-id>/diff")
            return None
        parts = path.split("/")
        if parent.startswith(f"{self.data_root}/{OVERLAY2}/") and parts[-1] == "diff":
            return parts[-2]
        return None

    def sharing(self, driver: str) -> dict[str, list[str]] | None:
        """chain id -> every container (by id) whose image holds that layer, from each
        container's layerdb record: running or not, dockerd up or down."""
        base = f"{self.data_root}/image/{driver}/layerdb/mounts"
        try:
            ids = sorted(os.listdir(self.root.path(base)))
        except OSError as exc:
            self._error(f"{base}: {_why(exc)}")
            return None
        tops: dict[str, list[str]] = {}
        for cid in ids:
            top = self.text(f"image/{driver}/layerdb/mounts/{cid}/parent")
            if top:
                tops.setdefault(top, []).append(cid)
        out: dict[str, list[str]] = {}
        for top, users in tops.items():  # each image's chain walked once
            for rec in self.chain(driver, top):
                out.setdefault(rec.chain_id, []).extend(users)
        return out


def _why(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()
