"""A read-only reader of bbolt files (go.etcd.io/bbolt), the format of containerd's metadata.

Written by hand: no Python library reads bbolt, and containerd's own way in (its API) is gone
while containerd is stopped. bbolt's own Open takes an flock on the file (exclusive for a
writer, shared for a reader), so opening it as bbolt does would wait on a running containerd or
stall it: this reader takes no lock. It reads the whole file into memory and parses that copy:

- two meta pages (0 and 1), the newest valid one (magic, version 2, FNV-64a checksum) names the
  root bucket's page and the transaction id;
- a page: id u64, flags u16 (branch 0x01, leaf 0x02, meta 0x04, freelist 0x10), count u16,
  overflow u32 (the page spans 1 + overflow pages), then `count` elements;
- a branch element: pos u32, ksize u32, pgid u64; a leaf element: flags u32 (0x01: the value is
  a bucket), pos u32, ksize u32, vsize u32; pos counts from the element itself;
- a bucket's value: root pgid u64, sequence u64; root 0 means the bucket is inline, its one leaf
  page follows in the value.

A copy is consistent without the lock: a commit writes its new pages into free pages first and
its meta page last, and the pages of transaction T are reused only by T+2 or later (the pages T+1
frees stay pending for one more transaction). So the copy is read, then the meta pages are read
again: if the newest transaction is still T or T+1, every page reachable from T's meta is intact
in the copy; otherwise the copy is read again (a few times, then BoltError).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator

MAGIC = 0xED0CDAED
VERSION = 2
BRANCH, LEAF, META = 0x01, 0x02, 0x04
BUCKET_LEAF = 0x01
PAGE_HEADER = 16
ELEMENT = 16
_META = struct.Struct("<IIIIQQQQQQ")  # magic version pagesize flags root seq freelist pgid txid sum
MAX_FILE = 1 << 30  # a metadata file larger than this is not read
MAX_DEPTH = 64  # a B+ tree deeper than this is a loop in a damaged file
ATTEMPTS = 4


class BoltError(Exception):
    """The file cannot be read as bbolt: truncated, damaged, or changing under every attempt."""


def read(path: str) -> Bucket:
    """The root bucket of the newest transaction in the file at path (OSError if unreadable)."""
    for _ in range(ATTEMPTS):
        data = _read_whole(path)
        meta = newest_meta(data)
        with open(path, "rb") as f:  # the meta pages again, after the copy
            again = f.read(2 * meta.page_size)
        try:
            after = newest_meta(again).txid
        except BoltError:
            after = meta.txid + 2
        if after <= meta.txid + 1:
            db = File(data, meta.page_size)
            return Bucket(db, meta.root, None)
    raise BoltError(f"changed under {ATTEMPTS} reads in a row")


def _read_whole(path: str) -> bytes:
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_FILE:
            raise BoltError(f"{size} bytes: larger than {MAX_FILE} bytes, not read")
        return f.read()


class Meta:
    def __init__(self, page_size: int, root: int, txid: int) -> None:
        self.page_size, self.root, self.txid = page_size, root, txid


def newest_meta(data: bytes) -> Meta:
    """The valid meta page with the highest transaction id."""
    found: list[Meta] = []
    why = "no meta page"
    # Page 0 is at 0; its page size says where page 1 is (bbolt checks both the same way).
    offsets = [0]
    first = _meta_at(data, 0)
    if isinstance(first, Meta):
        found.append(first)
        offsets.append(first.page_size)
    else:
        why = first
        offsets += [4096, os.sysconf("SC_PAGE_SIZE"), 16384, 65536]
    for off in dict.fromkeys(offsets[1:]):
        m = _meta_at(data, off)
        if isinstance(m, Meta):
            found.append(m)
            break
    if not found:
        raise BoltError(why)
    return max(found, key=lambda m: m.txid)


def _meta_at(data: bytes, off: int) -> Meta | str:
    end = off + PAGE_HEADER + _META.size
    if len(data) < end:
        return f"truncated: {len(data)} bytes, no whole meta page"
    flags = struct.unpack_from("<H", data, off + 8)[0]
    if not flags & META:
        return "not a bbolt file (page 0 is not a meta page)"
    fields = _META.unpack_from(data, off + PAGE_HEADER)
    magic, version, page_size, _flags, root, _seq, _free, _pgid, txid, checksum = fields
    if magic != MAGIC:
        return "not a bbolt file (bad magic)"
    if version != VERSION:
        return f"bbolt version {version}, not {VERSION}"
    if fnv64a(data[off + PAGE_HEADER : end - 8]) != checksum:
        return "meta page checksum does not match"
    if page_size < 1024 or page_size & (page_size - 1):
        return f"page size {page_size}"
    return Meta(page_size, root, txid)


def fnv64a(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


class File:
    """The copy of the file, cut into pages."""

    def __init__(self, data: bytes, page_size: int) -> None:
        self.data, self.page_size = data, page_size

    def page(self, pgid: int) -> tuple[bytes, int]:
        """(buffer, offset of the page in it)."""
        off = pgid * self.page_size
        if pgid < 2 or off + PAGE_HEADER > len(self.data):
            raise BoltError(f"page {pgid} is outside the file ({len(self.data)} bytes): truncated")
        return self.data, off


class Bucket:
    """One bucket: its keys in order, each a value (bytes) or a nested bucket."""

    def __init__(self, db: File, root: int, inline: bytes | None) -> None:
        self._db, self._root, self._inline = db, root, inline
        self._items: dict[bytes, bytes | Bucket] | None = None

    def items(self) -> dict[bytes, bytes | Bucket]:
        if self._items is None:
            if self._inline is not None:
                leaves = _elements(self._inline, 0, self._db, 0)
            else:
                leaves = self._walk(self._root, 0)
            self._items = dict(leaves)
        return self._items

    def _walk(self, pgid: int, depth: int) -> Iterator[tuple[bytes, bytes | Bucket]]:
        if depth > MAX_DEPTH:
            raise BoltError("the tree is deeper than a real one: a loop in a damaged file")
        buf, off = self._db.page(pgid)
        yield from _elements(buf, off, self._db, depth, self._walk)

    def get(self, key: str) -> bytes | None:
        v = self.items().get(key.encode())
        return v if isinstance(v, bytes) else None

    def bucket(self, key: str | bytes) -> Bucket | None:
        v = self.items().get(key.encode() if isinstance(key, str) else key)
        return v if isinstance(v, Bucket) else None

    def buckets(self) -> Iterator[tuple[bytes, Bucket]]:
        for k, v in self.items().items():
            if isinstance(v, Bucket):
                yield k, v

    def text(self, key: str) -> str | None:
        v = self.get(key)
        return v.decode("utf-8", "replace") if v is not None else None


def _elements(
    buf: bytes,
    off: int,
    db: File,
    depth: int,
    walk: Callable[[int, int], Iterator[tuple[bytes, bytes | Bucket]]] | None = None,
) -> Iterator[tuple[bytes, bytes | Bucket]]:
    """The elements of the page at off: a leaf's (key, value), a branch's children walked."""
    if off + PAGE_HEADER > len(buf):
        raise BoltError("a page header past the end of the file: truncated")
    flags, count = struct.unpack_from("<HH", buf, off + 8)
    base = off + PAGE_HEADER
    if base + count * ELEMENT > len(buf):
        raise BoltError(f"page at {off}: {count} elements past the end of the file: truncated")
    if flags & BRANCH:
        if walk is None:
            raise BoltError("an inline bucket holds a branch page")
        for i in range(count):
            e = base + i * ELEMENT
            _pos, _ksize, pgid = struct.unpack_from("<IIQ", buf, e)
            yield from walk(pgid, depth + 1)
        return
    if not flags & LEAF:
        raise BoltError(f"page at {off} is neither a branch nor a leaf (flags {flags:#x})")
    for i in range(count):
        e = base + i * ELEMENT
        eflags, pos, ksize, vsize = struct.unpack_from("<IIII", buf, e)
        k0 = e + pos
        v0, v1 = k0 + ksize, k0 + ksize + vsize
        if v1 > len(buf):
            raise BoltError(f"a value past the end of the file at {k0}: truncated")
        key = bytes(buf[k0:v0])
        if eflags & BUCKET_LEAF:
            if vsize < 16:
                raise BoltError(f"bucket {key!r}: a header of {vsize} bytes")
            root = struct.unpack_from("<Q", buf, v0)[0]
            inline = bytes(buf[v0 + 16 : v1]) if root == 0 else None
            yield key, Bucket(db, root, inline)
        else:
            yield key, bytes(buf[v0:v1])
