"""Parsers of /proc text (untrusted: socket paths and mount points can be named by anyone):
/proc/net/unix (tracer/kernel/unix.py) and /proc/<pid>/mountinfo (tracer/kernel/mountinfo.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tracer.kernel.mountinfo import parse_mount_points
from tracer.kernel.unix import ACCEPTCON, parse_unix_table

UNIX = [
    "Num       RefCount Protocol Flags    Type St Inode Path",
    "00000000f6c79124: 00000002 00000000 00010000 0001 01 11118 /run/lab/containerd.sock",
    "0000000079010779: 00000003 00000000 00000000 0001 03 11724 /run/containerd/s/7208ef2b",
    "000000007b4c0a60: 00000002 00000000 00010000 0001 01 11132 /run/with space/docker.sock",
    "0000000012345678: 00000002 00000000 00010000 0001 01 11140 @abstract",
    "garbage",
]


def test_only_listening_sockets_are_kept_with_their_paths():
    assert parse_unix_table(UNIX[1:]) == {
        11118: "/run/lab/containerd.sock",
        11132: "/run/with space/docker.sock",
        11140: "@abstract",
    }


@given(st.lists(st.text()))
def test_unix_table_parser_is_total(lines):
    for inode, path in parse_unix_table(lines).items():
        assert isinstance(inode, int) and isinstance(path, str)


@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**31),
    st.text(min_size=1).filter(lambda t: "\n" not in t and t.strip() == t and " " not in t[:1]),
)
def test_unix_table_round_trip(flags, inode, path):
    line = f"0000000000000000: 00000002 00000000 {flags:08x} 0001 01 {inode} {path}"
    got = parse_unix_table([line])
    assert got == ({inode: path} if flags & ACCEPTCON else {})


MOUNTINFO = [
    "144 27 254:0 /var/lib/docker /var/lib/docker rw,relatime shared:7 - ext4 /dev/vda rw",
    r"150 27 0:50 / /run/dtrace-lab/docker/netns/a\040b rw - nsfs nsfs rw",
    r"151 27 0:51 / /mnt/tab\011nl\012back\134slash rw - tmpfs tmpfs rw",
]


def test_mount_points_undo_the_kernel_escapes():
    assert parse_mount_points(MOUNTINFO) == [
        "/var/lib/docker",
        "/run/dtrace-lab/docker/netns/a b",
        "/mnt/tab\tnl\nback\\slash",
    ]


@given(st.lists(st.text()))
def test_mount_point_parser_is_total(lines):
    assert all(isinstance(p, str) for p in parse_mount_points(lines))


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1))
def test_mount_point_round_trip(point):
    escaped = "".join(f"\\{ord(c):03o}" if c in " \t\n\\" else c for c in point)
    assert parse_mount_points([f"1 2 3:4 / {escaped} rw - ext4 /dev/x rw"]) == [point]
