"""`fs` on containerd's image store, from containerd's own files as a real containerd wrote them.

tests/unit/data/imagestore/ was recorded from a throw-away dockerd 28.5.2 on containerd 2.1.9
(Debian sid's packages, `"features": {"containerd-snapshotter": true}`): the snapshotter's
metadata.db and the metadata plugin's meta.db (gzipped: mostly unused pages), and the JSON blobs
of its content store (manifests and image configs; the layer tarballs are left out). On it:
dtrace-lab/busybox (one layer), is/multi (two more layers, built by the classic builder:
`RUN mkdir -p /app && echo one > /app/one`, `RUN echo two > /app/two && rm -f /etc/motd`) and
five containers: is-a, is-b, is-mounts, is-stopped (created, never started) of is/multi, is-c of
busybox. The expected values below are what the engine's own tools printed for them
(`docker image inspect`, `ctr -n moby snapshots ls` and `usage`, `docker inspect`); the lab
tests (tests/integration/test_imagestore.py) compare the same code with a live engine.
"""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.topologies import running
from tracer.kernel.root import HostRoot
from tracer.runtimes import storage
from tracer.runtimes.containerd import bolt, imagestore
from tracer.views import storage as view

DATA = Path(__file__).parent / "data" / "imagestore"
ROOT = "/var/lib/dtis/containerd"  # the recording's containerd root
SNAPS = f"{ROOT}/io.containerd.snapshotter.v1.overlayfs"
A = "9ef117a9a2d189ea316b173d5f3dfa71c6615369fe0db7f75fa6a9adf9384803"
B = "22ad1bb19c9bd255007bab3278477bdbbbbc27c88916ee262303379b3c72c2cf"
C = "39737c240c6ca79979495d08d820aaef9cc683e4aed94c04f59b22fe91a4cc90"
STOPPED = "05ce47edbfbc25ae477554300aeef741a63ef6a7b9492aec87351ee30f2abbb7"
MOUNTS = "485f17bf842e6b4801299e2c6549a621e59fc59e5dd8dd9aa1f143185adca520"
NAMES = {A: "is-a", B: "is-b", C: "is-c", STOPPED: "is-stopped", MOUNTS: "is-mounts"}
# docker image inspect is/multi: RootFS.Layers
DIFF_IDS = [
    "sha256:dcfd96d787664a9f4dac2b3c7c48301dce3d2d78aff83bde3afd2504bd87af4c",
    "sha256:61b8aa3a03fdd6f4846bd884bfd5bdfa54395bba72a10060d1d5fe752ffb7a6c",
    "sha256:45ce1eae98c56388a1558d2266d8de91ad893378dd02ef760dec3001b583c92a",
]
CHAIN_2 = "sha256:83a334c7551dc56a92a355fdad96c7065fcefd2b5ff6a7b6a9a6b7b20c73c726"
CHAIN_3 = "sha256:3b2d2f2eebb46159bf114a25959839119697c4dda28714d48cce60c9357753f3"
BUILD_1 = "3ea2b33fbf2796c722ea295cb47ab547f814003f788338db9daad8df99c9e0a7-init"
BUILD_2 = "55f97f437b91ce7245131c62391f265dbe5593f07d244f59e3d796c2aa67dab7-init"
# ctr -n moby snapshots ls (KEY, PARENT, KIND) and snapshots usage (SIZE of the committed ones)
CTR_LS = {
    STOPPED: (f"{STOPPED}-init", "active"),
    f"{STOPPED}-init": (CHAIN_3, "committed"),
    B: (f"{B}-init", "active"),
    f"{B}-init": (CHAIN_3, "committed"),
    C: (f"{C}-init", "active"),
    f"{C}-init": (DIFF_IDS[0], "committed"),
    BUILD_1: (DIFF_IDS[0], "committed"),
    MOUNTS: (f"{MOUNTS}-init", "active"),
    f"{MOUNTS}-init": (CHAIN_3, "committed"),
    BUILD_2: (CHAIN_2, "committed"),
    A: (f"{A}-init", "active"),
    f"{A}-init": (CHAIN_3, "committed"),
    CHAIN_3: (BUILD_2, "committed"),
    CHAIN_2: (BUILD_1, "committed"),
    DIFF_IDS[0]: (None, "committed"),
}
KIB = 1024
CTR_USAGE = {f"{B}-init": 12 * KIB, f"{C}-init": 28 * KIB, BUILD_1: 28 * KIB, CHAIN_3: 12 * KIB,
             CHAIN_2: 12 * KIB}  # fmt: skip
# the mount of is-b (its /proc/<pid>/mountinfo): upper snapshot 13, lowers top first
B_LOWERS = [12, 9, 6, 5, 2, 1]


def install(top: Path) -> Path:
    """The recording under top as the host had it: containerd's root with its two bolt files,
    its blobs, and an empty directory per snapshot."""
    root = top / ROOT.lstrip("/")
    (root / "io.containerd.snapshotter.v1.overlayfs" / "snapshots").mkdir(parents=True)
    (root / "io.containerd.metadata.v1.bolt").mkdir(parents=True)
    for name, where in (("metadata.db", "io.containerd.snapshotter.v1.overlayfs"),
                        ("meta.db", "io.containerd.metadata.v1.bolt")):  # fmt: skip
        (root / where / name).write_bytes(gzip.decompress((DATA / f"{name}.gz").read_bytes()))
    shutil.copytree(DATA / "blobs", root / "io.containerd.content.v1.content" / "blobs")
    for n in range(1, 20):
        for d in ("fs", "work"):
            (root / "io.containerd.snapshotter.v1.overlayfs" / "snapshots" / str(n) / d).mkdir(
                parents=True
            )
    return root


@pytest.fixture
def host(tmp_path) -> Path:
    install(tmp_path)
    return tmp_path


def test_the_bolt_reader_lists_the_snapshots_as_ctr_does(host):
    store = imagestore.load(HostRoot(str(host)), ROOT, "moby")
    assert store.errors == [] and store.snapshots is not None
    listed = {k: (s.parent, s.kind) for k, s in store.snapshots.items()}
    assert listed == CTR_LS
    for key, size in CTR_USAGE.items():
        assert store.snapshots[key].size == size
    assert store.snapshots[DIFF_IDS[0]].size == 2002944  # ctr: 1.9 MiB, 275 inodes
    assert store.snapshots[DIFF_IDS[0]].inodes == 275
    assert store.snapshots[B].size is None  # active: measured, not recorded


def test_image_layers_get_the_diff_ids_docker_image_inspect_gives(host):
    store = imagestore.load(HostRoot(str(host)), ROOT, "moby")
    assert store.diff_ids is not None
    chain = None
    for diff in DIFF_IDS:
        chain = imagestore.chain_id(chain, diff)
        assert store.diff_ids[chain] == diff
        assert "docker.io/is/multi:latest" in store.images[chain]
    assert chain == CHAIN_3
    assert store.images[DIFF_IDS[0]][0] == "docker.io/dtrace-lab/busybox:latest"


def b_mount(host: Path) -> None:
    lowers = ":".join(f"{SNAPS}/snapshots/{n}/fs" for n in B_LOWERS)
    line = (f"386 327 0:140 / / rw,relatime master:8 - overlay overlay rw,lowerdir={lowers},"
            f"upperdir={SNAPS}/snapshots/13/fs,workdir={SNAPS}/snapshots/13/work")  # fmt: skip
    (host / "proc" / "100").mkdir(parents=True)
    (host / "proc" / "100" / "mountinfo").write_text(line + "\n")
    merged = f"/var/lib/dtis/docker/rootfs/overlayfs/{B}"
    (host / "proc" / "1").mkdir(parents=True)
    (host / "proc" / "1" / "mountinfo").write_text(
        "27 1 254:0 / / rw - ext4 /dev/vda rw\n"
        f"353 286 0:140 / {merged} rw,relatime shared:9 - overlay overlay rw,lowerdir={lowers}\n"
    )
    upper = host / SNAPS.lstrip("/") / "snapshots" / "13" / "fs"
    (upper / "app").mkdir()
    (upper / "app" / "new").write_text("hi\n")


def report(host: Path, cid: str, pid: int | None, hint=None, **kw):
    c = running(cid, NAMES[cid], 90, [pid or 100], image="is/multi")
    if pid is None:
        c.init_pid, c.processes, c.state = None, [], "created"
    found = storage.read(HostRoot(str(host)), c, "/var/lib/dtis/docker", snapshots=hint, **kw)
    return view.report(c, found, NAMES)


def test_a_running_container_s_layers_are_named_as_on_overlay2(host):
    b_mount(host)
    doc = report(host, B, 100, list_changes=True)
    assert doc.driver == "overlayfs" and doc.data_root == "/var/lib/dtis/docker"
    rows = [(x.role, x.snapshot_id, x.snapshot_key, x.chain_id, x.diff_id) for x in doc.layers]
    assert rows == [
        ("rw", "13", B, None, None),
        ("init", "12", f"{B}-init", None, None),
        ("image", "9", CHAIN_3, CHAIN_3, DIFF_IDS[2]),
        ("lower", "6", BUILD_2, None, None),
        ("image", "5", CHAIN_2, CHAIN_2, DIFF_IDS[1]),
        ("lower", "2", BUILD_1, None, None),
        ("image", "1", DIFF_IDS[0], DIFF_IDS[0], DIFF_IDS[0]),
    ]
    assert [x.path for x in doc.layers] == [f"{SNAPS}/snapshots/{n}/fs" for n in [13, *B_LOWERS]]
    sizes = {x.snapshot_key: x.size_bytes for x in doc.layers}
    assert sizes[f"{B}-init"] == CTR_USAGE[f"{B}-init"] and sizes[CHAIN_2] == 12 * KIB
    assert sizes[B] is not None and sizes[B] > 0  # measured as du does
    assert doc.layers[0].shared_with == [] and doc.layers[1].shared_with == []
    assert doc.layers[2].shared_with == ["is-a", "is-mounts", "is-stopped"]
    assert doc.layers[-1].shared_with == ["is-a", "is-c", "is-mounts", "is-stopped"]
    assert doc.changes is not None and doc.changes.files is not None
    assert [(f.kind, f.path) for f in doc.changes.files] == [("A", "/app"), ("A", "/app/new")]
    assert any("classic builder" in n for n in doc.notes)
    assert not any("differ" in n or "no such file" in n for n in doc.notes)


def test_a_stopped_container_is_read_from_the_metadata_alone(host):
    """Not mounted, containerd not asked: the chain, the directories, the changes."""
    upper = host / SNAPS.lstrip("/") / "snapshots" / "17" / "fs"
    (upper / "etc").mkdir()
    (upper / "etc" / "motd").write_text("back\n")
    doc = report(host, STOPPED, None, hint=(ROOT, "moby"), list_changes=True)
    assert doc.driver == "overlayfs" and doc.mounts is None
    assert [x.snapshot_id for x in doc.layers] == ["17", "16", "9", "6", "5", "2", "1"]
    assert doc.layers[0].role == "rw" and doc.layers[2].diff_id == DIFF_IDS[2]
    assert doc.root is not None and doc.root.upperdir == f"{SNAPS}/snapshots/17/fs"
    assert doc.root.lowerdir[0] == f"{SNAPS}/snapshots/16/fs"
    assert doc.changes is not None and doc.changes.added == 2  # /etc and /etc/motd (no lowers)


def test_a_container_on_overlay2_is_not_taken_for_the_image_store(host):
    """The hint names a containerd that holds no snapshot of this container: layerdb's."""
    c = running("f" * 64, "elsewhere", 90, [100])
    c.init_pid, c.processes, c.state = None, [], "exited"
    found = storage.read(HostRoot(str(host)), c, None, snapshots=(ROOT, "moby"))
    assert found.store is None and found.driver is None


def truncate(host: Path, name: str, size: int) -> None:
    path = host / ROOT.lstrip("/") / name
    path.write_bytes(path.read_bytes()[:size])


@pytest.mark.parametrize("size", [0, 100, 4096 * 2 + 10, 20000])
def test_a_truncated_snapshotter_metadata_marks_the_layers_unknown(host, size):
    b_mount(host)
    truncate(host, "io.containerd.snapshotter.v1.overlayfs/metadata.db", size)
    doc = report(host, B, 100)
    assert [(x.role, x.snapshot_id) for x in doc.layers] == [
        ("rw", "13"), *[("lower", str(n)) for n in B_LOWERS]
    ]  # fmt: skip
    assert all(x.diff_id is None and x.shared_with is None for x in doc.layers)
    (why,) = [n for n in doc.notes if n.startswith(f"{SNAPS}/metadata.db: ")]
    assert "truncated" in why and "unknown" in why


def test_a_truncated_image_metadata_leaves_the_snapshots_and_says_what_is_unknown(host):
    b_mount(host)
    truncate(host, "io.containerd.metadata.v1.bolt/meta.db", 9000)
    doc = report(host, B, 100)
    assert [x.snapshot_id for x in doc.layers] == ["13", *map(str, B_LOWERS)]
    assert [x.role for x in doc.layers][:2] == ["rw", "init"]
    assert all(x.diff_id is None for x in doc.layers)
    assert any("meta.db: " in n and "diff ids and images are unknown" in n for n in doc.notes)


def test_an_unreadable_metadata_file_is_said_not_raised(host):
    b_mount(host)
    path = host / SNAPS.lstrip("/") / "metadata.db"
    path.unlink()
    path.mkdir()  # reading it fails with EISDIR, as a permission error would fail
    doc = report(host, B, 100)
    assert any(n.startswith(f"{SNAPS}/metadata.db: is a directory") for n in doc.notes)


def test_the_newest_valid_meta_page_wins(host):
    """A torn write of the newer meta page (its checksum wrong): the older transaction is read,
    as bbolt itself does."""
    path = host / SNAPS.lstrip("/") / "metadata.db"
    data = bytearray(path.read_bytes())
    page = struct.unpack_from("<I", data, 16 + 8)[0]
    txids = [struct.unpack_from("<Q", data, off + 16 + 48)[0] for off in (0, page)]
    newer = 0 if txids[0] > txids[1] else page
    data[newer + 16 + 56] ^= 0xFF  # its checksum
    path.write_bytes(bytes(data))
    assert bolt.newest_meta(bytes(data)).txid == min(txids)
    bolt.read(str(path)).items()  # the older tree is whole


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(st.data())
def test_damaged_files_raise_only_bolt_errors(tmp_path, data):
    """Whatever bytes are flipped or cut, the reader says BoltError, never another exception."""
    raw = bytearray(gzip.decompress((DATA / "metadata.db.gz").read_bytes()))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    raw = raw[: data.draw(st.integers(0, len(raw)))]
    path = tmp_path / "metadata.db"
    path.write_bytes(bytes(raw))
    try:
        db = bolt.read(str(path))
        _walk(db)
    except bolt.BoltError:
        pass


def _walk(b: bolt.Bucket, depth: int = 0) -> None:
    for _key, value in b.items().items():
        if isinstance(value, bolt.Bucket) and depth < 8:
            _walk(value, depth + 1)


def test_the_mount_s_upperdir_names_the_containerd_root_and_the_snapshot():
    assert imagestore.snapshot_dir(f"{SNAPS}/snapshots/13/fs") == (ROOT, "13")
    assert imagestore.snapshot_dir("/var/lib/docker/overlay2/abc/diff") is None
    assert imagestore.snapshot_dir(f"{SNAPS}/snapshots/x/fs") is None


def test_varints_are_go_s():
    assert imagestore.uvarint(b"\x80\xc0\x01") == 24576
    assert imagestore.zigzag(b"\x80\xc0\x01") == 12288  # 12.0 KiB
    assert imagestore.zigzag(b"\x01") == -1 and imagestore.uvarint(b"\x80") == 0
