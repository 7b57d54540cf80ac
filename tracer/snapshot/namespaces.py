"""Walking the host for every namespace: the three routes of `ns --all`, one process at a time.

Each process is read through one fd pinned on its /proc/<pid> (tracer/kernel/procfs.py), so
that everything learned from it belongs to that process (PID and start ticks) even if the PID
is reused while the walk goes on. `ns --all` reads each process once: the walk of `show`
(tracer/snapshot/walk.py) hands its pinned fd to `NsWalk.process`, which reads there
1. its tasks: `task/<tid>/ns/<type>` of every thread (a thread may setns on its own: Go
   daemons do, to work inside a container's network namespace), for the types a thread can
   have of its own (tracer/kernel/nsfs.py PER_THREAD);
2. its mount table, for the first process met in each mount namespace: the nsfs bind mounts
   there (`ip netns add`, Docker's sandboxes, `unshare --net=FILE`);
3. its open fds that hold a namespace;
and gives the walk back the process's own namespace links, which `show` would read again.

The first time a namespace is met, it is opened through the same pinned fd to ask its owner
and parent (tracer/kernel/nsfs.py), which also proves it still there; a namespace that no open
could confirm (gone between the two reads) is left out and counted, never invented. The
owners and parents met on the way up are namespaces too, held by those below them.
"""

from __future__ import annotations

import os

from tracer.kernel import nsfs, procfs
from tracer.kernel.root import HostRoot
from tracer.kernel.unix import SOCKET
from tracer.model.namespaces import NsFd, NsHeld, NsMount, NsProc, NsScan
from tracer.snapshot.walk import Also

# A process's own links, in /proc/<pid>/ns's order (the order of Proc.namespaces): each
# type before its *_for_children, so a process in a namespace is not also counted as one
# whose children enter it. (path, file, type)
_OWN = tuple((f"ns/{f}", f, nsfs.FOR_CHILDREN.get(f, f)) for f in procfs.NS_TYPES)
_PREFIXES = tuple(f"{kind}:[" for kind in nsfs.TYPES)  # a namespace's fd link starts so

Links = tuple[dict[str, int], bool]  # a process's ns links (file -> inode), and some denied
_NOTHING = Also(None, None)


class NsWalk:
    """The namespaces of the processes given to `process`, then `finish()`: the NsScan."""

    def __init__(self, root: HostRoot) -> None:
        self.root = root
        self.dev = nsfs.nsfs_device()
        self.scan = NsScan(namespaces={}, procs={})
        self.tables_read: set[int] = set()  # mount namespaces whose table was read
        self.mount_ns: set[int] = set()  # every mount namespace met
        # Link text -> inode: a host has a few thousand namespaces and tens of thousands of
        # links to them ("net:[4026531840]" once per process), parsed once each.
        self._inodes: dict[str, int | None] = {}

    def process(self, p: procfs.Pinned, uid: int | None = None) -> Also:
        """Every namespace p holds (tasks, mounts, fds); for show's walk, its own links (as
        Pinned.namespaces gives them) and its sockets' fd links, where all were read. Never
        raises OSError: a process gone while it is read keeps what was read of it here, and
        show's walk, told nothing, reads it again (and leaves it out, gone)."""
        stat = p.stat
        if stat.state == "Z":
            return _NOTHING  # a zombie has left its namespaces
        pid, fd = p.pid, p.fd
        try:
            if uid is None:
                uid = os.fstat(fd).st_uid
            self.scan.procs[pid] = NsProc(pid, stat.start_ticks, stat.comm, uid)
            own, mnt = self._tasks(fd, pid, stat)
            if mnt is not None and mnt not in self.tables_read:
                self._mounts(p, mnt)
            sockets = self._fds(fd, pid)
        except OSError:
            return _NOTHING  # gone (ESRCH through the pinned fd)
        return Also(own, sockets)

    def finish(self) -> NsScan:
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

    def _tasks(self, fd: int, pid: int, stat: procfs.Stat) -> tuple[Links | None, int | None]:
        """Every task's namespaces (the process's own first); its own links, and its mount
        namespace. ProcessLookupError if it is gone."""
        start, mnt = stat.start_ticks, None
        known = self.scan.namespaces
        own: dict[str, int] = {}
        same: dict[str, tuple[str, NsHeld]] = {}  # per-thread type -> its own link, record
        denied = False
        whole = True  # every own link read, or refused (not a link gone: the process may be)
        seen: set[int] = set()
        # stat's count of threads spares a single-threaded process the listing of task/ (a
        # thread started after stat was read is missed as it would be after the listing)
        threads = [] if stat.threads == 1 else self._threads(fd, pid)
        tasks = 1 + len(threads)
        for path, file, kind in _OWN:
            try:
                link = os.readlink(path, dir_fd=fd)
            except PermissionError:
                self._denied(pid, "namespaces")
                denied = True
                continue
            except ProcessLookupError:
                raise
            except OSError:  # an older kernel without this type; the process ending
                whole = False
                continue
            inode = self._inode(link)
            if inode is None:
                whole = False
                continue
            own[file] = inode
            held = known.get(inode)
            if held is None or not held.confirmed:
                held = self._meet(kind, inode, path, fd)
            if file != kind:  # *_for_children
                if pid not in held.processes and pid not in held.for_children:
                    held.for_children.append(pid)
                continue
            held.processes[pid] = start
            if kind in nsfs.PER_THREAD:
                held.tasks += 1
                same[kind] = (link, held)
            else:
                held.tasks += tasks
            seen.add(inode)
            if kind == "mnt":
                mnt = inode
        if threads:
            self._thread_links(fd, pid, start, threads, same, seen)
        if mnt is not None:
            self.mount_ns.add(mnt)
        # show's walk reads the links again where one was missing (an older kernel without
        # a type, or the process ending): as before, it then drops a process that is gone
        return ((own, denied) if whole else None), mnt

    def _thread_links(
        self,
        fd: int,
        pid: int,
        start: int,
        threads: list[int],
        same: dict[str, tuple[str, NsHeld]],
        seen: set[int],
    ) -> None:
        """The per-thread types of the other tasks. Nearly every link reads as the process's
        own (a Go shim has ten threads, 300 shims 13,000 links): that only counts the task."""
        known = self.scan.namespaces
        for tid in threads:
            for kind in nsfs.PER_THREAD:
                path = f"task/{tid}/ns/{kind}"
                try:
                    link = os.readlink(path, dir_fd=fd)
                except PermissionError:
                    self._denied(pid, "namespaces")
                    continue
                except ProcessLookupError:
                    raise
                except OSError:  # a thread that just ended
                    continue
                mine = same.get(kind)
                if mine is not None and link == mine[0]:
                    mine[1].tasks += 1
                    continue
                inode = self._inode(link)
                if inode is None:
                    continue
                held = known.get(inode)
                if held is None or not held.confirmed:
                    held = self._meet(kind, inode, path, fd)
                held.tasks += 1
                if inode not in seen:  # a thread that joined another namespace
                    held.processes[pid] = start
                    seen.add(inode)

    def _inode(self, link: str) -> int | None:
        """The inode a namespace link names ("net:[4026531840]"), parsed once per text."""
        try:
            return self._inodes[link]
        except KeyError:
            found = nsfs.parse_link(link)
            inode = self._inodes[link] = None if found is None else found[1]
            return inode

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

    def _fds(self, fd: int, pid: int) -> list[str] | None:
        """The namespaces pid's fds hold; the links of its sockets (None if unreadable)."""
        try:
            fds = os.open("fd", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        except PermissionError:
            self._denied(pid, "fds")
            return None
        except OSError:
            return None
        links, sockets = [], []
        try:
            # links read through the fd/ directory's own fd: a shorter lookup than fd/<n>
            for name in os.listdir(fds):
                try:
                    link = os.readlink(name, dir_fd=fds)
                except ProcessLookupError:
                    raise
                except OSError:
                    continue  # closed meanwhile
                if link.startswith(_PREFIXES):
                    links.append((name, link))
                elif link.startswith(SOCKET):
                    sockets.append(link)
        except PermissionError:
            self._denied(pid, "fds")
            return None
        finally:
            os.close(fds)
        for name, link in links:
            found = nsfs.parse_link(link)
            if found is not None:
                held = self._meet(found[0], found[1], f"fd/{name}", fd)
                held.fds.append(NsFd(pid, int(name)))
        return sockets


def scan(root: HostRoot | None = None) -> NsScan:
    """Every namespace on the host, by the three routes, walking /proc on its own (`ns --all`
    gives `NsWalk.process` to show's walk instead)."""
    root = root or HostRoot()
    walk = NsWalk(root)
    for pid in root.pids():
        try:
            with procfs.Pinned(root, pid) as p:
                walk.process(p)
        except OSError:
            continue  # gone before its stat could be read
    return walk.finish()
