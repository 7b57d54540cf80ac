"""`fs` without an engine: mountinfo parsing, the overlayfs rules on a real overlay mount, and
Docker's overlay2 layout on a recorded data root.

The recorded data root is made here, file by file, from the layout read on these machines
(docs/CONTAINERS.md §7: layerdb, overlay2/l links, layerdb/mounts); it is walked
through a HostRoot, the way a tool with the host at /host would see it. The lab tests
(tests/integration/test_fs.py) check the same code against a real engine.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from tests.support.topologies import running
from tests.support.trees import (
    BASE_ONLY,
    CACHE_BASE,
    CACHE_TOP,
    CHAIN_BASE,
    CHAIN_TOP,
    DATA,
    DIFF_BASE,
    DIFF_TOP,
    ME,
    MOUNT_ME,
    MOUNT_OTHER,
    OTHER,
    Recorded,
    container_mounts,
    record,
)
from tracer.kernel import mountinfo, overlayfs
from tracer.kernel.root import HostRoot
from tracer.model.topology import Container, Topology
from tracer.output.terminal import storage as render
from tracer.runtimes import storage
from tracer.views import storage as view

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def needs_root() -> None:
    """mknod of a whiteout, trusted.* xattrs and mounting overlayfs need root (CI runs as root:
    there this fails instead of skipping)."""
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("these tests need root in CI")
        pytest.skip("needs root")


# -- mountinfo ---------------------------------------------------------------------------------

ROW = (
    "89 72 254:0 /var/lib/docker/volumes/my\\040vol/_data /data rw,relatime shared:5 master:2 "
    "- ext4 /dev/vda rw,discard"
)


def test_a_row_is_read_whole_with_escapes_undone():
    (m,) = mountinfo.parse_mountinfo([ROW])
    assert (m.mount_id, m.parent_id, m.device) == (89, 72, "254:0")
    assert m.root == "/var/lib/docker/volumes/my vol/_data"
    assert (m.point, m.fstype, m.source) == ("/data", "ext4", "/dev/vda")
    assert m.options == ("rw", "relatime") and not m.read_only
    assert m.optional == ("shared:5", "master:2") and m.propagation == "shared+slave"
    assert m.super_options == ("rw", "discard")


@pytest.mark.parametrize(
    "optional, expected",
    [
        ("", "private"),
        ("shared:1", "shared"),
        ("master:3", "slave"),
        ("unbindable", "unbindable"),
        ("master:3 propagate_from:1", "slave"),
    ],  # fmt: skip
)
def test_propagation_is_what_the_optional_fields_say(optional, expected):
    line = f"1 0 0:1 / /x ro {optional} - tmpfs tmpfs rw".replace("  ", " ")
    (m,) = mountinfo.parse_mountinfo([line])
    assert m.propagation == expected and m.read_only


def test_overlay_lowerdir_keeps_escaped_colons_and_skips_data_only_separators():
    assert mountinfo.overlay_dirs("/a:/b\\:c::/d") == ["/a", "/b:c", "/d"]
    assert mountinfo.overlay_dirs(None) == [] and mountinfo.overlay_dirs("") == []


@given(st.lists(st.text()))
def test_the_mountinfo_parser_is_total(lines):
    for m in mountinfo.parse_mountinfo(lines):
        assert isinstance(m.point, str) and m.point and isinstance(m.major, int)


def _mount(mid: int, dev: str, root: str, point: str, fstype: str = "ext4") -> mountinfo.Mount:
    (m,) = mountinfo.parse_mountinfo([f"{mid} 1 {dev} {root} {point} rw - {fstype} src rw"])
    return m


def test_a_mount_is_found_on_the_host_by_device_and_the_deepest_root():
    host = [
        _mount(27, "254:0", "/", "/"),
        _mount(42, "254:0", "/var/lib/docker", "/var/lib/docker"),
        _mount(50, "8:1", "/exports", "/mnt/disk"),
    ]
    assert mountinfo.host_path(host, _mount(1, "254:0", "/srv/x", "/x")) == "/srv/x"
    assert (
        mountinfo.host_path(host, _mount(1, "254:0", "/var/lib/docker/volumes/v/_data", "/d"))
        == "/var/lib/docker/volumes/v/_data"
    )
    assert mountinfo.host_path(host, _mount(1, "8:1", "/exports/a\\040b", "/y")) == "/mnt/disk/a b"
    # The deepest root: /mnt/disk/site is over-mounted on the host, /srv/site is the way in.
    shadowed = [*host, _mount(60, "0:77", "/", "/mnt/disk/site", "tmpfs"),
                _mount(61, "8:1", "/exports/site", "/srv/site")]  # fmt: skip
    assert mountinfo.host_path(shadowed, _mount(1, "8:1", "/exports/site/x", "/y")) == "/srv/site/x"
    # Not shown by the host: a part of the device outside every host mount's root, or a
    # file system of the container's own.
    assert mountinfo.host_path(host, _mount(1, "8:1", "/other", "/z")) is None
    assert mountinfo.host_path(host, _mount(1, "0:99", "/", "/tmp", "tmpfs")) is None


# -- overlayfs: the kernel's own whiteouts and opaque directories --------------------------------


@pytest.fixture
def real_overlay(tmp_path):
    """A real overlay mount over two lower dirs, changed through the merged view, unmounted:
    the upper dir is what the kernel wrote."""
    needs_root()
    lower2, lower1, upper, work, merged = (tmp_path / n for n in ("l2", "l1", "up", "wk", "mg"))
    for d in (lower2, lower1, upper, work, merged):
        d.mkdir()
    (lower2 / "etc").mkdir()
    (lower2 / "etc" / "config").write_text("base\n")
    (lower2 / "etc" / "gone").write_text("x\n")
    (lower1 / "app").mkdir()
    (lower1 / "app" / "old").write_text("old\n")
    (lower1 / "keep").mkdir()
    opts = f"lowerdir={lower1}:{lower2},upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(merged)], check=True)
    try:
        (merged / "etc" / "config").write_text("changed\n")  # C, copied up
        (merged / "etc" / "gone").unlink()  # D: a whiteout
        (merged / "new").mkdir()
        (merged / "new" / "file").write_bytes(b"12345")  # A, A
        subprocess.run(["rm", "-rf", str(merged / "app")], check=True)
        (merged / "app").mkdir()  # an opaque directory replaces the lower one
        (merged / "app" / "fresh").write_bytes(b"1234567")
        os.link(merged / "new" / "file", merged / "new" / "hardlink")  # counted once
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    return upper, [str(lower1), str(lower2)]


def test_the_upper_dir_is_read_as_docker_diff_reads_it(real_overlay):
    upper, lowers = real_overlay
    assert stat.S_ISCHR((upper / "etc" / "gone").lstat().st_mode)  # the kernel's whiteout
    scan = overlayfs.scan(str(upper), lowers, list_changes=True)
    assert scan.errors == []
    got = [(c.kind, c.path) for c in scan.changes or []]
    # As docker diff (moby's tree comparison): the opaque /app hides /app/old (D) and holds a
    # change (C); a copied-up /etc is C for what it holds; parents are listed before children.
    assert got == [
        ("C", "/app"),
        ("A", "/app/fresh"),
        ("D", "/app/old"),
        ("C", "/etc"),
        ("C", "/etc/config"),
        ("D", "/etc/gone"),
        ("A", "/new"),
        ("A", "/new/file"),
        ("A", "/new/hardlink"),
    ]
    assert (scan.added, scan.changed, scan.deleted) == (4, 3, 2)
    # Sizes as moby's directory.Size: files once per inode, directories not at all.
    assert scan.size_bytes == len("changed\n") + 5 + 7


def test_an_unreadable_upper_dir_is_an_error_not_an_empty_layer(tmp_path):
    scan = overlayfs.scan(str(tmp_path / "missing"), [])
    assert scan.errors and "no such file" in scan.errors[0]
    assert overlayfs.size(str(tmp_path / "missing"))[0] is None


# -- Docker's overlay2 on a recorded data root ----------------------------------------------------


@pytest.fixture
def recorded(tmp_path) -> Recorded:
    return record(tmp_path)


def me(pid: int | None = 100, state: str = "running") -> Container:
    c = running(ME, "web", 90, [pid or 100], image="shop:2")
    if pid is None:
        c.init_pid, c.processes, c.state = None, [], state
    return c


NAMES = {ME: "web", OTHER: "worker", BASE_ONLY: BASE_ONLY[:12]}


def fs_report(rec: Recorded, container: Container, engine_root: str | None = None, **kw):
    found = storage.read(HostRoot(str(rec.top)), container, engine_root, **kw)
    return view.report(container, found, NAMES)


def test_layers_top_first_with_their_roles_ids_sizes_and_sharers(recorded):
    doc = fs_report(recorded, me(), list_changes=True)
    assert doc.driver == "overlay2" and doc.data_root == DATA
    o = f"{DATA}/overlay2"
    assert doc.root is not None
    assert doc.root.merged == f"{o}/{MOUNT_ME}/merged"
    assert doc.root.upperdir == f"{o}/{MOUNT_ME}/diff"
    assert doc.root.lowerdir == [f"{o}/l/IM0M0M", f"{o}/l/TOP", f"{o}/l/BASE"]
    rows = [(x.role, x.cache_id, x.chain_id, x.diff_id, x.size_bytes, x.shared_with, x.path)
            for x in doc.layers]  # fmt: skip
    assert rows == [
        ("rw", MOUNT_ME, None, None, 4096 + 11, [], f"{o}/{MOUNT_ME}/diff"),
        ("init", f"{MOUNT_ME}-init", None, None, 2, [], f"{o}/{MOUNT_ME}-init/diff"),
        ("image", CACHE_TOP, CHAIN_TOP, DIFF_TOP, 20, ["worker"], f"{o}/{CACHE_TOP}/diff"),
        ("image", CACHE_BASE, CHAIN_BASE, DIFF_BASE, 1984157, [BASE_ONLY[:12], "worker"],
         f"{o}/{CACHE_BASE}/diff"),
    ]  # fmt: skip
    assert [x.link for x in doc.layers] == [None, "IM0M0M", "TOP", "BASE"]
    assert doc.changes is not None
    assert [(c.kind, c.path) for c in doc.changes.files or []] == [
        ("C", "/app"),
        ("C", "/app/config"),
        ("A", "/new.bin"),
    ]
    assert doc.notes == []  # the chain ids follow from the diff ids


def test_mounts_are_classified_and_found_on_the_host(recorded):
    doc = fs_report(recorded, me())
    got = {m.destination: (m.kind, m.source, m.volume, m.read_only, m.propagation)
           for m in doc.mounts or []}  # fmt: skip
    assert got == {
        "/proc": ("system", None, None, False, "private"),
        "/dev": ("system", None, None, False, "private"),
        "/etc/hosts": ("generated", f"{DATA}/containers/{ME}/hosts", None, False, "private"),
        "/cache": ("volume", f"{DATA}/volumes/cache/_data", "cache", False, "private"),
        "/srv": ("bind", "/mnt/exports/site one", None, True, "slave"),
        "/scratch": ("tmpfs", None, None, False, "private"),
        "/proc/keys": ("system", None, None, False, "private"),
        "/sbin/docker-init": ("init", "/usr/bin/docker-init", None, True, "private"),
        # --network container:worker: Docker binds worker's own resolv.conf.
        "/etc/resolv.conf": ("generated", f"{DATA}/containers/{OTHER}/resolv.conf", None, False,
                             "private"),
    }  # fmt: skip


def test_a_stopped_container_is_read_from_the_drivers_records(recorded):
    doc = fs_report(recorded, me(pid=None, state="exited"), engine_root=DATA)
    assert doc.mounts is None  # not "no mounts": it has none to read while stopped
    assert doc.root is not None and doc.root.merged is None
    assert doc.root.source == f"{DATA}/overlay2/{MOUNT_ME}/lower"
    assert [x.role for x in doc.layers] == ["rw", "init", "image", "image"]
    assert doc.layers[0].size_bytes == 4096 + 11
    assert any("is exited: it has no mounts" in n for n in doc.notes)


def test_a_broken_chain_is_said(recorded):
    recorded.write(
        f"{DATA}/image/overlay2/layerdb/sha256/{CHAIN_TOP[7:]}/diff", "sha256:" + "00" * 32
    )
    doc = fs_report(recorded, me())
    assert any("its diff ids give chain id" in n for n in doc.notes)


def test_relative_mount_paths_are_resolved_under_the_data_root(recorded):
    """Docker mounts with paths relative to <data-root>/overlay2 when the absolute ones do not
    fit in a page (many layers): the host's merged dir then says where the data root is."""
    lowers = f"l/I{MOUNT_ME[:5].upper()}:l/TOP:l/BASE"
    recorded.write("/proc/100/mountinfo", "\n".join(container_mounts(f"{MOUNT_ME}/diff", lowers)))
    doc = fs_report(recorded, me())
    assert doc.data_root == DATA
    assert [x.role for x in doc.layers] == ["rw", "init", "image", "image"]
    assert doc.layers[0].path == f"{DATA}/overlay2/{MOUNT_ME}/diff"


def test_unreadable_driver_files_are_marked_unknown_not_empty(recorded):
    os.unlink(recorded.data / "overlay2" / "l" / "TOP")
    doc = fs_report(recorded, me())
    assert [x.role for x in doc.layers] == ["rw", "init", "lower", "image"]
    assert doc.layers[2].shared_with is None and doc.layers[2].cache_id is None
    assert any("no such file" in n for n in doc.notes)
    assert any("differ from the image's chain" in n for n in doc.notes)


def test_snapshots_without_containerd_s_metadata_are_shown_as_the_mount_says(tmp_path):
    """A containerd snapshotter whose metadata.db is missing: the layers as the mount names
    them, with their snapshot ids, and the reason the rest is unknown; nothing is guessed."""
    snap = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots"
    rec = Recorded(tmp_path)
    for n in (1, 2, 3):
        (tmp_path / snap.lstrip("/") / str(n) / "fs").mkdir(parents=True)
    (tmp_path / snap.lstrip("/") / "3" / "fs" / "hello").write_text("hi\n")
    line = (f"72 48 0:39 / / rw - overlay overlay rw,lowerdir={snap}/2/fs:{snap}/1/fs,"
            f"upperdir={snap}/3/fs,workdir={snap}/3/work")  # fmt: skip
    rec.write("/proc/100/mountinfo", line + "\n")
    rec.write("/proc/1/mountinfo", "27 1 254:0 / / rw - ext4 /dev/vda rw\n")
    doc = fs_report(rec, me())
    assert doc.driver == "overlayfs" and doc.data_root is None
    rows = [(x.role, x.path, x.snapshot_id, x.shared_with) for x in doc.layers]
    assert rows == [
        ("rw", f"{snap}/3/fs", "3", None),
        ("lower", f"{snap}/2/fs", "2", None),
        ("lower", f"{snap}/1/fs", "1", None),
    ]
    assert doc.layers[0].size_bytes is not None and doc.layers[1].size_bytes is None
    assert doc.changes is not None and doc.changes.added == 1
    assert any(
        n.startswith("/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/metadata.db: "
                     "no such file or directory") for n in doc.notes
    )  # fmt: skip


def test_the_chain_id_is_mobys():
    """Checked on these machines with sha256sum (docs/CONTAINERS.md §7)."""
    assert view.chain_id(None, DIFF_BASE) == DIFF_BASE
    expected = hashlib.sha256(f"{DIFF_BASE} {DIFF_TOP}".encode()).hexdigest()
    assert view.chain_id(DIFF_BASE, DIFF_TOP) == f"sha256:{expected}"


def test_the_terminal_view_character_for_character(recorded):
    doc = fs_report(recorded, me())
    out = io.StringIO()
    Console(color_system=None, width=200, file=out).print(render.fs(doc))
    o, m = f"{DATA}/overlay2", MOUNT_ME
    hosts = f"{DATA}/containers/{ME}/hosts"
    resolv = f"{DATA}/containers/{OTHER}/resolv.conf"

    def row(dest: str, kind: str, source: str, mode: str) -> str:
        return f"{dest:<20}{kind:<15}{source:<{len(resolv) + 3}}{mode}"

    assert [line.rstrip() for line in out.getvalue().splitlines()] == [
        f"web {ME[:12]}  image shop:2  running (init pid 100)",
        f"driver overlay2  data root {DATA}",
        f"root overlay mounted at {o}/{m}/merged  (from mountinfo of pid 100)",
        f"  upperdir  {o}/{m}/diff",
        f"  workdir   {o}/{m}/work",
        f"  lowerdir  {o}/l/IM0M0M",
        f"            {o}/l/TOP",
        f"            {o}/l/BASE",
        "layers, top first",
        "role    size      cache id            diff id        chain id       shared with",
        "─" * 108,
        "rw      4.0 KiB   m0m0m0m0m0m0        -              -              this container only",
        "init    2 B       m0m0m0m0m0m0-init   -              -              this container only",
        "image   20 B      c1c1c1c1c1c1        b2b2b2b2b2b2   d30ab3b6f9b4   1 other container: "
        "worker",
        "image   1.9 MiB   c0c0c0c0c0c0        a1a1a1a1a1a1   a1a1a1a1a1a1   2 other containers: "
        "dddddddddddd, worker",
        "writable layer: 3 changes (1 added, 2 changed, 0 deleted)  --changes lists them",
        "mounts",
        row("destination", "kind", "source on the host", "mode"),
        "─" * len(row("", "", "", "rw private")),
        row("/etc/hosts", "generated", hosts, "rw private"),
        row("/cache", "volume cache", f"{DATA}/volumes/cache/_data", "rw private"),
        row("/srv", "bind", "/mnt/exports/site one", "ro slave"),
        row("/scratch", "tmpfs", "(tmpfs of the container's own)", "rw private"),
        row("/sbin/docker-init", "init", "/usr/bin/docker-init", "ro private"),
        row("/etc/resolv.conf", "generated", resolv, "rw private"),
        "+ 3 mounts the runtime makes at and under /proc, /dev (--json lists them)",
    ]
    assert CHAIN_TOP[7:19] == "d30ab3b6f9b4"


def test_hostile_names_and_paths_are_inert_in_the_terminal(recorded):
    evil = "/srv/\x1b]0;pwned\x07\u202ex"  # the kernel escapes only space, tab, \\n, \\
    line = f"96 72 8:1 /exports{evil} /evil rw - ext4 /dev/sdb1 rw"
    path = recorded.top / "proc" / "100" / "mountinfo"
    path.write_text(path.read_text() + "\n" + line + "\n")
    c = me()
    c.name = "web\x1b[31m"
    doc = fs_report(recorded, c)
    out = io.StringIO()
    Console(color_system=None, width=200, file=out).print(render.fs(doc))
    shown = out.getvalue()
    assert "\x1b" not in shown and "\u202e" not in shown and "\x07" not in shown
    assert "web\\x1b[31m" in shown and "\\x1b]0;pwned\\x07\\u202ex" in shown


# -- export --fs: the storage diagram -------------------------------------------------------------


def test_the_diagram_draws_shared_layers_once_and_volumes_as_nodes(recorded):
    from tests.support.topologies import dot_edges
    from tracer.output.diagram import storage as diagram

    other = running(OTHER, "worker\x1b]0;pwned\x07", 91, [101])
    recorded.write(
        "/proc/101/mountinfo",
        f"72 48 0:40 / / rw - overlay overlay rw,lowerdir={DATA}/overlay2/l/IM1M1M:"
        f"{DATA}/overlay2/l/TOP:{DATA}/overlay2/l/BASE,upperdir={DATA}/overlay2/{MOUNT_OTHER}"
        f"/diff,workdir={DATA}/overlay2/{MOUNT_OTHER}/work\n"
        f"90 72 254:0 {DATA}/volumes/cache/_data /var/cache rw - ext4 /dev/vda rw\n"
        "91 72 8:1 /exports/\x1b[2J\u202e /evil rw - ext4 /dev/sdb1 rw\n",  # a hostile bind
    )
    reports = [fs_report(recorded, me()), fs_report(recorded, other)]
    topo = Topology(engines=[], host={"hostname": "box", "taken_at": "2026-11-28T17:00:00+00:00"})
    src = diagram.storage(topo, reports)
    assert src == diagram.storage(topo, list(reversed(reports)))  # deterministic
    top, base = diagram.node("layer", CHAIN_TOP), diagram.node("layer", CHAIN_BASE)
    assert src.count(f"\t{top} [") == 1 and src.count(f"\t{base} [") == 1  # drawn once
    assert "used by 2 containers" in src and "used by 3 containers" in src
    edges = {(a, b) for a, b, _ in dot_edges(src)}
    for cid in (ME, OTHER):
        rw, init = diagram.node("rw", f"{cid}/rw"), diagram.node("init", f"{cid}/init")
        assert {(rw, init), (init, top), (top, base)} <= edges
    volume = diagram.node("volume", f"{DATA}/volumes/cache/_data")
    assert src.count(f"\t{volume} [") == 1  # one volume, mounted by both
    dests = {attrs.get("label") for a, b, attrs in dot_edges(src) if b == volume}
    assert dests == {"/cache", "/var/cache"}
    assert "\x1b" not in src and "\x07" not in src and "\u202e" not in src
    assert "worker\\\\x1b]0;pwned\\\\x07" in src and "/mnt/exports/\\\\x1b[2J\\\\u202e" in src
