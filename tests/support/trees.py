"""Recorded host trees on disk, made file by file from documented layouts: a cgroup
hierarchy (tests/unit/test_cgroups.py says where each layout comes from) and Docker's overlay2
data root (as overlay2 lays it out on these machines: layerdb, overlay2/l links,
layerdb/mounts), each walked through a HostRoot as a tool with the host at /host sees it."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from tracer.kernel import cgroupfs
from tracer.kernel.root import HostRoot

# -- cgroups --------------------------------------------------------------------------------------

CID = "c0ffee" + "0" * 58
PID = 4242
EXEC = 4250
V2_MOUNTS = "25 1 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"  # noqa: E501
V1_CONTROLLERS = ("memory", "cpu,cpuacct", "cpuset", "pids", "blkio", "devices", "freezer")


def v1_mounts() -> str:
    rows = ["31 1 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755"]
    for n, controllers in enumerate(V1_CONTROLLERS):
        rows.append(f"{40 + n} 31 0:{40 + n} / /sys/fs/cgroup/{controllers} rw,nosuid shared:9 "
                    f"- cgroup cgroup rw,{controllers}")  # fmt: skip
    rows.append("50 31 0:50 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd")
    return "\n".join(rows) + "\n"


class Tree:
    """A host tree under tmp_path: /proc/<pid>/cgroup, /proc/1/mountinfo, /sys/fs/cgroup/..."""

    def __init__(self, top: Path, mounts: str, cgroup_lines: list[str]) -> None:
        self.top = top
        self.write("/proc/1/mountinfo", mounts)
        self.write(f"/proc/{PID}/cgroup", "\n".join(cgroup_lines) + "\n")

    def write(self, path: str, text: str) -> None:
        where = self.top / path.lstrip("/")
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_text(text)

    def files(self, directory: str, **files: str) -> None:
        for name, text in files.items():
            self.write(f"{directory}/{name.replace('__', '.')}", text)

    def read(self) -> cgroupfs.CgroupRead:
        return cgroupfs.read(HostRoot(str(self.top)), PID)


def v2_tree(tmp_path: Path, path: str, **files: str) -> Tree:
    tree = Tree(tmp_path, V2_MOUNTS, [f"0::{path}"])
    tree.files(f"/sys/fs/cgroup{path}", **files)
    return tree


V2_LIMITED = {
    "cgroup__controllers": "cpuset cpu io memory pids\n",
    "memory__max": "67108864\n", "memory__swap__max": "67108864\n", "memory__low": "0\n",
    "memory__current": "1236992\n", "cpu__max": "50000 100000\n", "cpu__weight": "100\n",
    "cpu__stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\n"
                 "nr_throttled 2\nthrottled_usec 300\n",
    "cpuset__cpus": "\n", "cpuset__cpus__effective": "0-3\n",
    "pids__max": "50\n", "pids__current": "2\n",
    "io__max": "8:0 rbps=1048576 wbps=max riops=max wiops=max\n",
    "io__stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n"
                "8:16 rbytes=1 wbytes=2 rios=1 wios=1 dbytes=0 dios=0\n",
    "cgroup__procs": f"{PID}\n{EXEC}\n",
}  # fmt: skip


# -- Docker's overlay2 data root ---------------------------------------------------------------

DATA = "/var/lib/docker"


def chain(parent: str | None, diff: str) -> str:
    if parent is None:
        return diff
    return "sha256:" + hashlib.sha256(f"{parent} {diff}".encode()).hexdigest()


DIFF_BASE = "sha256:" + "a1" * 32
DIFF_TOP = "sha256:" + "b2" * 32
CHAIN_BASE = chain(None, DIFF_BASE)
CHAIN_TOP = chain(CHAIN_BASE, DIFF_TOP)
CACHE_BASE, CACHE_TOP = "c0" * 32, "c1" * 32
ME, OTHER, BASE_ONLY = "e" * 64, "f" * 64, "d" * 64  # container ids
MOUNT_ME, MOUNT_OTHER, MOUNT_BASE = "m0" * 32, "m1" * 32, "m2" * 32


class Recorded:
    """A host tree: <tmp>/var/lib/docker as overlay2 left it, <tmp>/proc/<pid>/mountinfo."""

    def __init__(self, top: Path) -> None:
        self.top = top
        self.data = top / DATA.lstrip("/")

    def write(self, rel: str, text: str) -> None:
        path = self.top / rel.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def layer(self, cache: str, link: str, lower: str | None = None) -> Path:
        base = self.data / "overlay2" / cache
        (base / "diff").mkdir(parents=True)
        (base / "link").write_text(link)
        if lower:
            (base / "lower").write_text(lower)
        links = self.data / "overlay2" / "l"
        links.mkdir(exist_ok=True)
        os.symlink(f"../{cache}/diff", links / link)
        return base / "diff"

    def layerdb(self, chain_id: str, diff: str, cache: str, size: int, parent: str | None):
        base = f"{DATA}/image/overlay2/layerdb/sha256/{chain_id.removeprefix('sha256:')}"
        self.write(f"{base}/diff", diff)
        self.write(f"{base}/cache-id", cache)
        self.write(f"{base}/size", str(size))
        if parent:
            self.write(f"{base}/parent", parent)

    def container(self, cid: str, mount: str, top: str, lower: str) -> Path:
        base = f"{DATA}/image/overlay2/layerdb/mounts/{cid}"
        self.write(f"{base}/mount-id", mount)
        self.write(f"{base}/init-id", f"{mount}-init")
        self.write(f"{base}/parent", top)
        self.layer(f"{mount}-init", f"I{mount[:5].upper()}", lower)
        return self.layer(mount, f"R{mount[:5].upper()}", f"l/I{mount[:5].upper()}:{lower}")


def container_mounts(upper: str, lowers: str) -> list[str]:
    return [
        f"72 48 0:39 / / rw,relatime master:2 - overlay overlay rw,lowerdir={lowers},"
        f"upperdir={upper},workdir={upper[:-4]}work",
        "73 72 0:42 / /proc rw,nosuid - proc proc rw",
        "74 72 0:43 / /dev rw,nosuid - tmpfs tmpfs rw,mode=755",
        f"89 72 254:0 {DATA}/containers/{ME}/hosts /etc/hosts rw,relatime - ext4 /dev/vda rw",
        f"90 72 254:0 {DATA}/volumes/cache/_data /cache rw,relatime - ext4 /dev/vda rw",
        "91 72 8:1 /exports/site\\040one /srv ro,relatime master:7 - ext4 /dev/sdb1 rw",
        "92 72 0:60 / /scratch rw,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,size=1024k",
        "93 73 0:43 /null /proc/keys rw,nosuid - tmpfs tmpfs rw,mode=755",
        "94 72 254:0 /usr/bin/docker-init /sbin/docker-init ro,relatime - ext4 /dev/vda rw",
        f"95 72 254:0 {DATA}/containers/{OTHER}/resolv.conf /etc/resolv.conf rw - ext4 /dev/vda rw",
    ]


def record(tmp_path: Path) -> Recorded:
    """Containers web (ME: image shop:2, two layers, changed), worker (OTHER, the same image)
    and one on the base layer alone (BASE_ONLY), as overlay2 records them."""
    rec = Recorded(tmp_path)
    rec.layer(CACHE_BASE, "BASE")
    rec.layer(CACHE_TOP, "TOP", "l/BASE")
    (rec.data / "overlay2" / CACHE_TOP / "diff" / "app").mkdir()
    (rec.data / "overlay2" / CACHE_TOP / "diff" / "app" / "config").write_text("v1\n")
    rec.layerdb(CHAIN_BASE, DIFF_BASE, CACHE_BASE, 1984157, None)
    rec.layerdb(CHAIN_TOP, DIFF_TOP, CACHE_TOP, 20, CHAIN_BASE)
    upper = rec.container(ME, MOUNT_ME, CHAIN_TOP, "l/TOP:l/BASE")
    (upper / "app").mkdir()
    (upper / "app" / "config").write_text("v2, longer\n")  # C /app/config (and C /app)
    (upper / "new.bin").write_bytes(b"x" * 4096)  # A
    (rec.data / "overlay2" / f"{MOUNT_ME}-init" / "diff" / ".dockerenv").write_text("")
    (rec.data / "overlay2" / f"{MOUNT_ME}-init" / "diff" / "etc").mkdir()
    (rec.data / "overlay2" / f"{MOUNT_ME}-init" / "diff" / "etc" / "hostname").write_text("h\n")
    rec.container(OTHER, MOUNT_OTHER, CHAIN_TOP, "l/TOP:l/BASE")
    rec.container(BASE_ONLY, MOUNT_BASE, CHAIN_BASE, "l/BASE")
    o = f"{DATA}/overlay2"
    lowers = f"{o}/l/I{MOUNT_ME[:5].upper()}:{o}/l/TOP:{o}/l/BASE"
    rec.write("/proc/100/mountinfo", "\n".join(container_mounts(f"{o}/{MOUNT_ME}/diff", lowers)))
    rec.write("/proc/1/mountinfo", "\n".join([
        "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw",
        f"42 27 254:0 {DATA} {DATA} rw,relatime shared:1 - ext4 /dev/vda rw",
        f"46 42 0:39 / {o}/{MOUNT_ME}/merged rw,relatime shared:2 - overlay overlay rw,"
        f"lowerdir={lowers}",
        "50 27 8:1 /exports /mnt/exports rw,relatime shared:7 - ext4 /dev/sdb1 rw",
    ]) + "\n")  # fmt: skip
    return rec
