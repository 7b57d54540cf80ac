"""Walking the host for every namespace: the three routes of `ns --all`, one process at a time.

Each process is read through one fd pinned on its /proc/<pid> (tracer/kernel/procfs.py), so
that everything learned from it belongs to that process (PID and start ticks) even if the PID
is reused while the walk goes on:
1. its tasks: `task/<tid>/ns/<type>` of every thread (a thread may setns on its own: Go
   daemons do, to work inside a container's network namespace), for the types a thread can
   have of its own (tracer/kernel/nsfs.py PER_THREAD);
2. its mount table, for the first process met in each mount namespace: the nsfs bind mounts
   there (`ip netns add`, Docker's sandboxes, `unshare --net=FILE`);
3. its open fds that hold a namespace.

The first time a namespace is met, it is opened through the same pinned fd to ask its owner
and parent (tracer/kernel/nsfs.py), which also proves it still there; a namespace that no open
could confirm (gone between the two reads) is left out and counted, never invented. The
owners and parents met on the way up are namespaces too, held by those below them.
"""

from __future__ import annotations

import os

from tracer.kernel import nsfs, procfs
from tracer.kernel.root import HostRoot
from tracer.model.namespaces import NsFd, NsHeld, NsMount, NsProc, NsScan

_NS_FILES = tuple((t, t) for t in nsfs.TYPES) + tuple(nsfs.FOR_CHILDREN.items())


class _Walk:
    def __init__(self, root: HostRoot) -> None:
        self.root = root
        self.dev = nsfs.nsfs_device()
        self.scan = NsScan(namespaces={}, procs={})
        self.tables_read: set[int] = set()  # mount namespaces whose table was read
        self.mount_ns: set[int] = set()  # every mount namespace met

    def run(self) -> NsScan:
        for pid in self.root.pids():
            self._process(pid)
        scan = self.scan
        held = scan.namespaces
        scan.vanished = sum(1 for n in held.values() if not n.confirmed)
        scan.namespaces = {i: n for i, n in held.items() if n.confirmed}
        for n in scan.namespaces.values():  # mount namespaces held by a mount or fd alone
            if n.type == "mnt":
                self.mount_ns.add(n.inode)
        scan.unread_mount_ns = sorted(
            i for i in self.mount_ns - self.tables_read if i in scan.namespaces
        )
        return scan

    def _process(self, pid: int) -> None:
        try:
            with procfs.Pinned(self.root, pid) as p:
                stat, fd = p.stat, p.fd
                if stat.state == "Z":
                    return  # a zombie has left its namespaces
                uid = os.fstat(fd).st_uid
                self.scan.procs[pid] = NsProc(pid, stat.start_ticks, stat.comm, uid)
                mnt = self._tasks(fd, pid, stat.start_ticks)
                if mnt is not None and mnt not in self.tables_read:
                    self._mounts(p, mnt)
                self._fds(fd, pid)
        except OSError:
            return  # gone (ESRCH through the pinned fd): what was read of it stays true

    def _denied(self, pid: int, what: str) -> None:
        self.scan.unreadable.setdefault(pid, [])
        if what not in self.scan.unreadable[pid]:
            self.scan.unreadable[pid].append(what)

    def _meet(self, kind: str, inode: int, path: str, fd: int) -> NsHeld:
        """The namespace record, opened (and its relatives asked) the first time it is met
        through a path that still names it."""
        held = self.scan.namespaces.get(inode)
        if held is None:
            held = self.scan.namespaces[inode] = NsHeld(inode, kind)
        if not held.confirmed:
            self._confirm(held, path, fd)
        return held

    def _confirm(self, held: NsHeld, path: str, fd: int) -> None:
        got = nsfs.relatives(
            path, held.type, held.inode, self.dev, fd, known=self.scan.namespaces.keys()
        )
        if got is None:
            return
        mine, above = got
        held.owner, held.parent, held.confirmed = mine.owner, mine.parent, True
        for inode, (kind, rel) in above.items():
            if inode not in self.scan.namespaces or not self.scan.namespaces[inode].confirmed:
                old = self.scan.namespaces.get(inode)
                new = NsHeld(inode, kind, owner=rel.owner, parent=rel.parent, confirmed=True)
                if old is None:
                    new.above = True
                else:  # met before but not confirmed then: keep what holds it
                    new.processes, new.mounts, new.fds = old.processes, old.mounts, old.fds
                    new.for_children, new.tasks = old.for_children, old.tasks
                self.scan.namespaces[inode] = new

    # -- the three routes ----------------------------------------------------------------------

    def _tasks(self, fd: int, pid: int, start: int) -> int | None:
        """Every task's namespaces (the process's own first); its mount namespace."""
        mnt = None
        seen: set[int] = set()
        threads = self._threads(fd, pid)
        for file, kind in _NS_FILES:
            inode = self._link(fd, pid, f"ns/{file}")
            if inode is None:
                continue
            held = self._meet(kind, inode, f"ns/{file}", fd)
            if file != kind:
                if pid not in held.processes and pid not in held.for_children:
                    held.for_children.append(pid)
                continue
            held.processes[pid] = start
            held.tasks += 1 if kind in nsfs.PER_THREAD else 1 + len(threads)
            seen.add(inode)
            if kind == "mnt":
                mnt = inode
        for tid in threads:
            for kind in nsfs.PER_THREAD:
                inode = self._link(fd, pid, f"task/{tid}/ns/{kind}")
                if inode is None:
                    continue
                held = self._meet(kind, inode, f"task/{tid}/ns/{kind}", fd)
                held.tasks += 1
                if inode not in seen:  # a thread that joined another namespace
                    held.processes[pid] = start
                    seen.add(inode)
        if mnt is not None:
            self.mount_ns.add(mnt)
        return mnt

    def _link(self, fd: int, pid: int, path: str) -> int | None:
        try:
            found = nsfs.parse_link(os.readlink(path, dir_fd=fd))
        except PermissionError:
            self._denied(pid, "namespaces")
            return None
        except ProcessLookupError:
            raise
        except OSError:  # an older kernel without this type; a thread that just ended
            return None
        return None if found is None else found[1]

    def _threads(self, fd: int, pid: int) -> list[int]:
        try:
            tasks = os.open("task", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        except OSError:
            return []
        try:
            return [int(t) for t in os.listdir(tasks) if t.isdigit() and int(t) != pid]
        except OSError:
            return []
        finally:
            os.close(tasks)

    def _mounts(self, p: procfs.Pinned, mnt: int) -> None:
        """The nsfs bind mounts of p's mount namespace (read once per mount namespace)."""
        fd = p.fd
        try:
            data = p.read("mountinfo")
        except PermissionError:
            self._denied(p.pid, "mounts")
            return
        self.tables_read.add(mnt)
        for row in nsfs.nsfs_mounts(data):
            held = self._meet(row.kind, row.inode, "root" + row.point, fd)
            mount = NsMount(row.point, mnt)
            if mount not in held.mounts:
                held.mounts.append(mount)

    def _fds(self, fd: int, pid: int) -> None:
        try:
            fds = os.open("fd", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        except PermissionError:
            self._denied(pid, "fds")
            return
        except OSError:
            return
        try:
            names = os.listdir(fds)
        except PermissionError:
            self._denied(pid, "fds")
            return
        finally:
            os.close(fds)
        for name in names:
            try:
                found = nsfs.parse_link(os.readlink(f"fd/{name}", dir_fd=fd))
            except ProcessLookupError:
                raise
            except OSError:
                continue  # closed meanwhile
            if found is None:
                continue
            held = self._meet(found[0], found[1], f"fd/{name}", fd)
            held.fds.append(NsFd(pid, int(name)))


def scan(root: HostRoot | None = None) -> NsScan:
    """Every namespace on the host, by the three routes."""
    return _Walk(root or HostRoot()).run()
