"""Made-up recordings of the proc connector's process events, for trace: a Rec written event
by event, and `docker run -d` as these machines showed it."""

from __future__ import annotations

from typing import Any

CID = "c0" * 32  # a container id (64 hex)
CID2 = "d1" * 32
NS_HOST = {"cgroup": 10, "ipc": 11, "mnt": 12, "net": 13, "pid": 14, "pid_for_children": 14,
           "time": 15, "time_for_children": 15, "user": 16, "uts": 17}  # fmt: skip
RUNC_ROOT = ("runc", "--root", "/run/docker/runtime-runc/moby", "--log", "/b/log.json",
             "--log-format", "json")  # fmt: skip


def ns_of(base: int, shared: tuple[str, ...] = ("cgroup", "time", "time_for_children", "user"),
          **inodes: int) -> dict[str, int]:  # fmt: skip
    """A container's namespaces: base + n for each type it does not share with the host."""
    out = {k: (v if k in shared else base + i) for i, (k, v) in enumerate(NS_HOST.items())}
    out["pid_for_children"] = out["pid"]
    out.update(inodes)
    return out


def existing(pid: int, ppid: int, start: int, name: str, cmdline: Any,
          namespaces: dict[str, int] | None = None) -> Any:  # fmt: skip
    """A process alive when the trace began, as the start snapshot read it (its start ticks)."""
    from tracer.kernel.procfs import Proc

    return Proc(pid, ppid, name, tuple(cmdline), 0.0, start=start,
                namespaces=dict(namespaces or {}))  # fmt: skip


class Rec:
    """A recording written event by event, times in milliseconds since the trace began, with
    the daemons of an engine already running: containerd 500 and dockerd 600 (children of 1),
    both in the host's namespaces."""

    def __init__(self, *known: Any, containers: Any = (), everything: bool = False) -> None:
        base = [
            existing(1, 0, 1, "systemd", ("/sbin/init",), NS_HOST),
            existing(500, 1, 100, "containerd", ("/usr/bin/containerd",), NS_HOST),
            existing(600, 1, 110, "dockerd", ("/usr/sbin/dockerd", "-H", "fd://"), NS_HOST),
        ]
        self.known = {k.pid: k for k in [*base, *known]}
        self.containers = {c.id: c for c in containers}
        self.events: list[Any] = []
        self.everything = everything

    def fork(self, ms: float, parent: int, child: int) -> Rec:
        from tracer.model.trace import Raw

        self.events.append(Raw("fork", int(ms * 1e6), child, parent=parent))
        return self

    def exec(self, ms: float, pid: int, argv: Any, ns: Any = None, ppid: int | None = None,
             missing: str | None = None, comm: str | None = None) -> Rec:  # fmt: skip
        from tracer.kernel.procfs import program
        from tracer.model.trace import Raw, Sample

        args = tuple(argv) if argv is not None else None
        name = comm if comm is not None else (program(args or ()) if args else "")
        sample = Sample(args, name[:15], ppid, ns, missing if args is None else None)
        self.events.append(Raw("exec", int(ms * 1e6), pid, sample=sample))
        return self

    def comm(self, ms: float, pid: int, name: str, ns: Any = None) -> Rec:
        from tracer.model.trace import Raw, Sample

        sample = Sample(None, name, None, ns) if ns else None
        self.events.append(Raw("comm", int(ms * 1e6), pid, comm=name, sample=sample))
        return self

    def exit(self, ms: float, pid: int, parent: int, code: int = 0, signal: int = 0) -> Rec:
        from tracer.model.trace import Raw

        status = signal if signal else code << 8
        self.events.append(Raw("exit", int(ms * 1e6), pid, parent=parent, code=status))
        return self

    def recording(self, **kw: Any) -> Any:
        from tracer.model.trace import Recording

        last = self.events[-1].ts if self.events else 0
        return Recording(known=dict(self.known), events=list(self.events),
                         duration_ns=last + 500_000_000, all=self.everything,
                         host_ns=NS_HOST, containers=dict(self.containers), **kw)  # fmt: skip


def docker_run(rec: Rec, cid: str = CID, at: float = 0.0, pid: int = 1000,
               init_argv: tuple[str, ...] = ("sleep", "1000"),
               ns: dict[str, int] | None = None) -> Rec:  # fmt: skip
    """`docker run -d` as the proc connector showed it on these machines (docs/CONTAINERS.md §3):
    containerd forks the shim start (pid), which forks the shim (pid+1) and exits; the shim
    forks runc create (pid+2), which forks runc init (pid+3); runc init's stages [1:CHILD]
    (pid+4) and [2:INIT] (pid+5) are forked with CLONE_PARENT, so their fork names runc create;
    runc create forks the libnetwork-setkey hook (pid+6); the shim forks runc start (pid+7);
    [2:INIT] execs the container's command, by then a child of the shim."""
    b = f"/run/containerd/io.containerd.runtime.v2.task/moby/{cid}"
    shim_start = ("/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-address",
                  "/run/containerd/containerd.sock", "-publish-binary", "/usr/bin/containerd",
                  "-id", cid, "start")  # fmt: skip
    shim = ("/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-id", cid, "-address",
            "/run/containerd/containerd.sock")  # fmt: skip
    create = (*RUNC_ROOT, "create", "--bundle", b, "--pid-file", f"{b}/init.pid", cid)
    new = ns or ns_of(4026532000 + pid)
    s, t = pid, at
    (rec.fork(t, 500, s).exec(t + 0.1, s, shim_start)
        .fork(t + 8.4, s, s + 1).exec(t + 8.5, s + 1, shim)
        .exit(t + 9.0, s, 500)
        .fork(t + 13.7, s + 1, s + 2).exec(t + 13.8, s + 2, create, ns=NS_HOST)
        .fork(t + 26.0, s + 2, s + 3).exec(t + 26.1, s + 3, None, missing="empty", comm="exe")
        .exec(t + 26.9, s + 3, ("runc", "init"), ns=NS_HOST)
        .comm(t + 27.0, s + 3, "runc:[0:PARENT]", ns=NS_HOST)
        .fork(t + 27.1, s + 2, s + 4).comm(t + 27.2, s + 4, "runc:[1:CHILD]")
        .fork(t + 28.0, s + 2, s + 5).comm(t + 28.1, s + 5, "runc:[2:INIT]", ns=new)
        .exit(t + 29.0, s + 4, s + 2).exit(t + 31.0, s + 3, s + 2)
        .fork(t + 55.5, s + 2, s + 6)
        .exec(t + 55.6, s + 6, ("libnetwork-setkey", "-exec-root=/run/docker", cid, "d4dde141"))
        .exit(t + 200.0, s + 6, s + 2)
        .exit(t + 230.8, s + 2, s + 1)
        .fork(t + 236.0, s + 1, s + 7).exec(t + 236.1, s + 7, (*RUNC_ROOT, "start", cid))
        .exec(t + 245.7, s + 5, init_argv, ns=new, ppid=s + 1)
        .exit(t + 246.0, s + 7, s + 1))  # fmt: skip
    return rec
