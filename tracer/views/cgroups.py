"""A container's cgroups: where they are, what limits it, what it uses, who is in them.

A pure function of the container (from the topology) and its init's cgroups as read by
tracer/kernel/cgroupfs.py. The meaning of each file is the kernel's (cgroup-v1 and
cgroup-v2.rst); what Docker makes of it (its `--memory-swap` is memory plus swap, `--cpus` is
quota / period, a cgroup named `docker-<id>.scope` is the systemd driver's) is said where used.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from tracer.kernel import cgroupfs
from tracer.kernel.cgroupfs import UNIFIED, CgroupRead
from tracer.kernel.root import HostRoot
from tracer.model.cgroups import (
    LIMITS,
    NO_LIMIT,
    USAGE,
    CgroupProcess,
    CgroupReport,
    CgroupSubject,
    IoLimit,
)
from tracer.model.topology import Container, Daemon, Topology

V1_IO = ("read_bps", "write_bps", "read_iops", "write_iops")
V2_IO = {"rbps": "read_bps", "wbps": "write_bps", "riops": "read_iops", "wiops": "write_iops"}
# cgroup-v2 "Controllers": which controller each v2 file needs.
V2_CONTROLLER = {"memory": "memory", "cpu": "cpu", "cpuset": "cpuset", "pids": "pids", "io": "io"}


def driver(container_id: str, path: str | None) -> str:
    """The runtime's cgroup driver, from the cgroup's name: cgroupfs names it by the container
    id (`/docker/<id>`, containerd's `/<namespace>/<id>`, or under --cgroup-parent; podman's
    `/libpod_parent/libpod-<id>`), systemd makes a scope unit `<prefix>-<id>.scope` in a slice
    (`/system.slice/docker-<id>.scope`, `/machine.slice/libpod-<id>.scope`)."""
    name = os.path.basename(path or "")
    if name in (container_id, f"libpod-{container_id}"):
        return "cgroupfs"
    if name.endswith(f"-{container_id}.scope"):
        return "systemd"
    return "unknown"


class _Values:
    """limits/usage under construction: each value with its file, each null with why."""

    def __init__(self, found: CgroupRead) -> None:
        self.found = found
        self.values: dict[str, int | float | str | None] = {}
        self.sources: dict[str, str] = {}
        self.why: dict[str, str] = {}

    def file(self, key: str, name: str) -> tuple[str | None, str | None, str | None]:
        """(text, path, why not) of a file of one hierarchy."""
        path = self.found.file(key, name)
        if path is None:
            return None, None, f"not available: no {key} hierarchy for this process"
        if path in self.found.files:
            return self.found.files[path], path, None
        if self.found.mode == "unified" and not self._enabled(name):
            controller = name.split(".", 1)[0]
            return (
                None,
                path,
                (
                    f"not available: the {controller} controller is not enabled for this cgroup "
                    "(cgroup.subtree_control of its parent)"
                ),
            )
        why = self.found.missing.get(path, "not read")
        return None, path, f"not available: {path}: {why}"

    def _enabled(self, name: str) -> bool:
        controllers = self.found.text(UNIFIED, "cgroup.controllers")
        controller = V2_CONTROLLER.get(name.split(".", 1)[0])
        return controller is None or controllers is None or controller in controllers.split()

    def limit(self, field: str, key: str, name: str) -> int | None:
        text, path, why = self.file(key, name)
        value, unlimited = cgroupfs.limit(text)
        if unlimited:
            why = NO_LIMIT
        elif value is None and why is None:
            why = f"not available: {path}: not a number"
        self.put(field, value, path, why)
        return value

    def put(
        self, field: str, value: int | float | str | None, path: str | None, why: str | None
    ) -> int | float | str | None:
        self.values[field] = value
        if path and (value is not None or (why or "").startswith(NO_LIMIT)):
            self.sources[field] = path  # a file that says "no limit" is a source too
        if value is None:
            self.why[field] = why or "not available"
        return value


def report(
    container: Container,
    found: CgroupRead,
    host_namespaces: Mapping[str, int],
    names: Mapping[int, tuple[str, list[str]]] | None = None,
) -> CgroupReport:
    """`cgroup CONTAINER`. names: pid -> (role, cmdline) of the container's processes in the
    process tree (by default, container.processes)."""
    v1 = any(m.hierarchy != 0 for m in found.members)
    version = (1 if v1 else 2) if found.members else None
    main = next(
        (found.dirs[k] for k in ("pids", "memory", "cpu", UNIFIED) if k in found.dirs), None
    )
    values = _Values(found)
    io: list[IoLimit] = []
    if version == 1:
        io = _v1(values)
    elif version == 2:
        io = _v2(values)
    limits = {f: values.values.get(f"limits.{f}") for f in LIMITS}
    usage = {f: _int(values.values.get(f"usage.{f}")) for f in USAGE}
    for f in USAGE:
        if usage[f] is None:
            values.why.setdefault(f"usage.{f}", "not available")
    for f in LIMITS:
        if limits[f] is None:
            values.why.setdefault(f"limits.{f}", "not available")
    cg_ns = container.namespaces.get("cgroup")
    host_ns = host_namespaces.get("cgroup")
    cgroupns = (
        None if cg_ns is None or host_ns is None else ("host" if cg_ns == host_ns else "private")
    )
    member = next((m for m in found.members if m.hierarchy == 0 or "pids" in m.controllers), None)
    member = member or (found.members[0] if found.members else None)
    return CgroupReport(
        container=CgroupSubject(container.id, container.name, container.init_pid),
        version=version,
        mode=found.mode,
        driver=driver(container.id, member.path if member else main),
        cgroupns=cgroupns,
        paths=dict(sorted(found.dirs.items())),
        limits=limits,
        usage=usage,
        io_limits=io,
        processes=_processes(container, found, names),
        sources=dict(sorted(values.sources.items())),
        why_null=dict(sorted(values.why.items())),
        notes=_notes(container, found),
    )


def _int(value: int | float | str | None) -> int | None:
    return value if isinstance(value, int) else None


def _v1(v: _Values) -> list[IoLimit]:
    v.limit("limits.memory_bytes", "memory", "memory.limit_in_bytes")
    swap_text, swap_path, swap_why = v.file("memory", "memory.memsw.limit_in_bytes")
    if swap_text is None and swap_why and "no such file" in swap_why:
        swap_why += " (the kernel does not account swap: boot with swapaccount=1)"
    swap, unlimited = cgroupfs.limit(swap_text)
    v.put("limits.memory_swap_bytes", swap, swap_path, NO_LIMIT if unlimited else swap_why)
    v.limit("limits.memory_reservation_bytes", "memory", "memory.soft_limit_in_bytes")
    _cpu(v, *_v1_quota(v))
    text, path, why = v.file("cpu", "cpu.shares")
    v.put("limits.cpu_shares", cgroupfs.limit(text)[0], path, why)
    v.put("limits.cpu_weight", None, None, "not available: cgroup v1 has cpu.shares instead")
    text, path, why = v.file("cpuset", "cpuset.cpus")
    cpus = (text or "").strip() or None
    machine = v.found.files.get(_cpuset_root(v.found), "").strip()
    if cpus is not None and machine and cpus == machine:
        cpus, why = None, f"{NO_LIMIT} (every CPU of the machine: {machine})"
    v.put("limits.cpuset_cpus", cpus, path, why)
    v.limit("limits.pids_max", "pids", "pids.max")
    _usage(v, "usage.memory_bytes", "memory", "memory.usage_in_bytes")
    _usage(v, "usage.pids", "pids", "pids.current")
    _usage(v, "usage.cpu_ns", "cpuacct", "cpuacct.usage")
    _stat(v, "cpu", "cpu.stat", {"nr_throttled": "usage.cpu_throttled_periods",
                                 "throttled_time": "usage.cpu_throttled_ns"}, 1)  # fmt: skip
    rules: dict[str, dict[str, int]] = {}
    for kind in V1_IO:
        text, _, _ = v.file("blkio", f"blkio.throttle.{kind}_device")
        for device, value in cgroupfs.device_values(text).items():
            rules.setdefault(device, {})[kind] = value
    text, path, why = v.file("blkio", "blkio.throttle.io_service_bytes_recursive")
    if rules:
        done = cgroupfs.io_service_bytes(text)
        v.put("usage.io_read_bytes", done.get("Read") if text else None, path, why)
        v.put("usage.io_write_bytes", done.get("Write") if text else None, path, why)
    else:
        why = (
            "not available: v1 counts I/O in blkio.throttle.* only on devices with a throttle "
            "rule, and none is set (its 0 would mislead)"
        )
        v.put("usage.io_read_bytes", None, None, why)
        v.put("usage.io_write_bytes", None, None, why)
    return [IoLimit(d, *(r.get(k) for k in V1_IO)) for d, r in sorted(rules.items())]


def _cpuset_root(found: CgroupRead) -> str:
    """The cpuset.cpus of the cpuset hierarchy's mount (the machine's CPUs)."""
    mine = found.dirs.get("cpuset")
    for path in found.files:
        if path.endswith("/cpuset.cpus") and (mine is None or not path.startswith(mine + "/")):
            return path
    return ""


def _v1_quota(
    v: _Values,
) -> tuple[int | None, bool, str | None, int | None, str | None, str | None]:
    text, qpath, qwhy = v.file("cpu", "cpu.cfs_quota_us")
    quota, unlimited = cgroupfs.limit(text)
    ptext, ppath, pwhy = v.file("cpu", "cpu.cfs_period_us")
    v.put("limits.cpu_period_us", cgroupfs.limit(ptext)[0], ppath, pwhy)
    both = f"{qpath} / {os.path.basename(ppath)}" if qpath and ppath else None
    return quota, unlimited, qpath, _int(v.values.get("limits.cpu_period_us")), qwhy, both


def _cpu(
    v: _Values,
    quota: int | None,
    unlimited: bool,
    path: str | None,
    period: int | None,
    why: str | None,
    both: str | None,
) -> None:
    """Docker's --cpus is the CFS quota over its period."""
    v.put("limits.cpu_quota_us", quota, path, NO_LIMIT if unlimited else why)
    cpus = round(quota / period, 3) if quota is not None and period else None
    v.put("limits.cpus", cpus, both, NO_LIMIT if unlimited else why)


def _usage(v: _Values, field: str, key: str, name: str, scale: int = 1) -> None:
    text, path, why = v.file(key, name)
    value = cgroupfs.limit(text)[0]
    v.put(field, value * scale if value is not None else None, path, why)


def _stat(v: _Values, key: str, name: str, fields: Mapping[str, str], scale: int) -> None:
    text, path, why = v.file(key, name)
    stats = cgroupfs.flat_keyed(text)
    for stat_key, field in fields.items():
        value = stats.get(stat_key)
        got_why = why or (None if value is not None else f"not available: no {stat_key} in {path}")
        v.put(field, value * scale if value is not None else None, path, got_why)


def _v2(v: _Values) -> list[IoLimit]:
    memory = v.limit("limits.memory_bytes", UNIFIED, "memory.max")
    text, path, why = v.file(UNIFIED, "memory.swap.max")
    swap, swap_unlimited = cgroupfs.limit(text)
    # Docker's --memory-swap is memory plus swap (memory.swap.max is swap alone): unlimited
    # when either is.
    field = "limits.memory_swap_bytes"
    if memory is None:
        v.put(field, None, None, v.why.get("limits.memory_bytes"))
    elif text is None or (swap is None and not swap_unlimited):
        v.put(field, None, path, why or f"not available: {path}: not a number")
    elif swap_unlimited:
        v.put(field, None, path, NO_LIMIT)
    else:
        assert swap is not None
        v.put(field, memory + swap, f"{path} + memory.max", None)
    v.limit("limits.memory_reservation_bytes", UNIFIED, "memory.low")
    if v.values.get("limits.memory_reservation_bytes") == 0:  # memory.low's default
        v.put("limits.memory_reservation_bytes", None, None, NO_LIMIT)
    text, path, why = v.file(UNIFIED, "cpu.max")
    quota, period, unlimited = cgroupfs.cpu_max(text)
    v.put("limits.cpu_period_us", period, path, why)
    _cpu(v, quota, unlimited, path, period, why, path)
    v.put("limits.cpu_shares", None, None, "not available: cgroup v2 has cpu.weight instead")
    text, path, why = v.file(UNIFIED, "cpu.weight")
    v.put("limits.cpu_weight", cgroupfs.limit(text)[0], path, why)
    text, path, why = v.file(UNIFIED, "cpuset.cpus")
    cpus = (text or "").strip() or None
    if text is not None and cpus is None:
        effective = (v.found.text(UNIFIED, "cpuset.cpus.effective") or "").strip()
        why = f"{NO_LIMIT} (the parent's CPUs: {effective or '?'})"
    v.put("limits.cpuset_cpus", cpus, path, why)
    v.limit("limits.pids_max", UNIFIED, "pids.max")
    _usage(v, "usage.memory_bytes", UNIFIED, "memory.current")
    _usage(v, "usage.pids", UNIFIED, "pids.current")
    _stat(v, UNIFIED, "cpu.stat", {"usage_usec": "usage.cpu_ns"}, 1000)
    _stat(v, UNIFIED, "cpu.stat", {"nr_throttled": "usage.cpu_throttled_periods"}, 1)
    _stat(v, UNIFIED, "cpu.stat", {"throttled_usec": "usage.cpu_throttled_ns"}, 1000)
    text, path, why = v.file(UNIFIED, "io.stat")
    stats = cgroupfs.nested_keyed(text)
    for field, key in (("usage.io_read_bytes", "rbytes"), ("usage.io_write_bytes", "wbytes")):
        total = sum(_num(s.get(key)) or 0 for s in stats.values()) if text is not None else None
        v.put(field, total, path, why)
    text, _, _ = v.file(UNIFIED, "io.max")
    return [
        IoLimit(device, *(_num(rule.get(k)) for k in V2_IO))
        for device, rule in sorted(cgroupfs.nested_keyed(text).items())
    ]


def _num(text: str | None) -> int | None:
    return cgroupfs.limit(text)[0] if text is not None else None


def _processes(
    container: Container,
    found: CgroupRead,
    names: Mapping[int, tuple[str, list[str]]] | None,
) -> list[CgroupProcess]:
    known = (
        names
        if names is not None
        else {p.pid: (p.role, list(p.cmdline)) for p in container.processes}
    )
    order: Callable[[int], tuple[int, int]] = lambda pid: (  # noqa: E731
        (0, list(known).index(pid)) if pid in known else (1, pid)
    )
    return [
        CgroupProcess(pid, *known.get(pid, ("other", [])), found.procs[pid])
        for pid in sorted(found.procs, key=order)
    ]


def _notes(container: Container, found: CgroupRead) -> list[str]:
    notes = list(found.errors)
    if found.procs_from is not None:
        for p in container.processes:
            if p.pid not in found.procs:
                notes.append(
                    f"pid {p.pid} ({p.role}) is in the container's process tree but not in its "
                    f"cgroup ({found.procs_from}): it was moved out, or has just exited"
                )
        others = [pid for pid in found.procs if pid not in {p.pid for p in container.processes}]
        if others:
            notes.append(
                f"{len(others)} process(es) in the cgroup are not in the container's process "
                "tree (role 'other'): moved in by someone, or started since the walk"
            )
    return notes


def report_for(topo: Topology, me: Container, root: HostRoot) -> CgroupReport:
    """`cgroup CONTAINER` (and `serve`'s /api/containers/<id>/cgroup): its init's cgroups read
    from the host. NotRunningError for a stopped container (it is in no cgroup) or an init
    gone meanwhile; DeniedError when /proc/<pid>/cgroup is refused."""
    from tracer.errors import NotRunningError, cannot_read
    from tracer.views.namespaces import host_namespaces

    if me.init_pid is None:
        raise NotRunningError(
            f"{me.label} is {me.state}: a stopped container has no process, so it is in no "
            "cgroup (Docker makes it at start and removes it at exit)",
            f"start it with: docker start {me.label}",
        )
    found = cgroupfs.read(root, me.init_pid)
    if found.members and (held := _engine_s(topo, me, found, root)) is not None:
        engine = topo.engine_of(me)
        kit = engine is not None and any(d.role == "rootlesskit" for d in engine.daemons)
        return borrowed(me, found, held, host_namespaces(topo), rootless=kit)
    if not found.members:
        why = "; ".join(found.errors) or "no cgroup listed"
        if "permission denied" in why:
            raise cannot_read(f"/proc/{me.init_pid}/cgroup")
        raise NotRunningError(
            f"{me.label}'s init (pid {me.init_pid}) could not be read: {why}",
            "it may have just exited; run the command again",
        )
    return report(me, found, host_namespaces(topo))


def _engine_s(topo: Topology, me: Container, found: CgroupRead, root: HostRoot) -> Daemon | None:
    """The daemon of the container's engine whose cgroups, every one, its init is in, when
    none is named for the container: then it has no cgroup of its own (a rootless engine on
    cgroup v1, or a runtime with the cgroup driver `none`)."""
    if any(driver(me.id, m.path) != "unknown" for m in found.members):
        return None
    engine = topo.engine_of(me)
    mine = {(m.hierarchy, m.path) for m in found.members}
    for d in engine.daemons if engine else []:
        try:
            with open(f"{root.pid_dir(d.pid)}/cgroup", encoding="utf-8") as f:
                theirs = cgroupfs.parse_proc_cgroup(f)
        except (OSError, UnicodeDecodeError):
            continue
        if {(m.hierarchy, m.path) for m in theirs} == mine:
            return d
    return None


def borrowed(
    container: Container,
    found: CgroupRead,
    held: Daemon,
    host_namespaces: Mapping[str, int],
    rootless: bool = False,
) -> CgroupReport:
    """`cgroup` of a container that has no cgroup of its own: its init is in its engine's
    daemon's cgroups. Their limits and usage are the engine's (and of whatever else shares
    them), never reported as the container's."""
    v1 = any(m.hierarchy != 0 for m in found.members)
    why = (
        "rootless Docker on cgroup v1 makes none (docker info: Cgroup Driver none): an "
        "unprivileged user may not create cgroups in v1 hierarchies (on cgroup v2, with systemd "
        "delegating a subtree to the user, it does)"
        if v1 and rootless
        else "its runtime made none (a cgroup driver of none)"
    )
    where = ", ".join(f"{k} {v}" for k, v in sorted(found.dirs.items()))
    because = "not available: the container has no cgroup of its own (see the notes)"
    cg_ns, host_ns = container.namespaces.get("cgroup"), host_namespaces.get("cgroup")
    return CgroupReport(
        container=CgroupSubject(container.id, container.name, container.init_pid),
        version=(1 if v1 else 2),
        mode=found.mode,
        driver="none",
        cgroupns=None if None in (cg_ns, host_ns) else ("host" if cg_ns == host_ns else "private"),
        paths={},
        limits=dict.fromkeys(LIMITS),
        usage=dict.fromkeys(USAGE),
        io_limits=[],
        processes=[],
        why_null={
            f"{kind}.{f}": because
            for kind, fields in (("limits", LIMITS), ("usage", USAGE))
            for f in fields
        },  # fmt: skip
        notes=[
            f"{container.label} has no cgroup of its own: {why}",
            f"its init (pid {container.init_pid}) is in the very cgroups of its engine's "
            f"{held.role} {held.pid} ({where or '?'}): their limits and usage are not the "
            "container's, and those given to docker run (--memory, --cpus, --pids-limit) are "
            "kept in its HostConfig but enforced by nothing",
        ],
    )
