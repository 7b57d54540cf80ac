"""Reading processes through a pinned /proc/<pid> fd: the parsers, a process's identity, and the
walk against psutil.

The walk (tracer/snapshot/walk.py) reads /proc itself (tracer/kernel/procfs.py) instead of
through psutil's Process objects, and without importing psutil, so it must give exactly what
psutil gives: these tests compare the two on this machine's live processes, and on children
staged with awkward names, arguments and states.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psutil import _common, _pslinux

from tests.support.waiting import wait_for
from tracer.kernel import procfs
from tracer.kernel.procfs import ProcessId, identify
from tracer.kernel.root import HostRoot
from tracer.runtimes import RUNTIMES
from tracer.snapshot.walk import Walk, take

ROOT = HostRoot()

# A real line (a shim), cut after starttime's neighbours; fields per proc_pid_stat(5).
SHIM_STAT = (
    b"25301 (containerd-shim) S 1 25301 25246 0 -1 1077936384 1163 0 0 0 2 1 0 0 20 0 11 0 "
    b"582034 1498812416 3361 18446744073709551615 1 1 0 0 0 0 1002055680 0 2143420159 0 0 0 "
    b"17 1 0 0 0 0 0\n"
)


def stat_line(pid: int, comm: bytes, state: bytes, ppid: int, ticks: int) -> bytes:
    """A stat line: state, ppid, 17 fields (pgrp .. itrealvalue), starttime, two more."""
    middle = b"0 " * 17
    return b"%d (%s) %s %d %s%d 0 0\n" % (pid, comm, state, ppid, middle, ticks)


def test_stat_fields_of_a_real_line():
    stat = procfs.parse_stat(SHIM_STAT)
    assert stat == procfs.Stat(comm="containerd-shim", state="S", ppid=1, start_ticks=582034)
    assert stat.status == psutil.STATUS_SLEEPING


def test_states_are_psutils_statuses():
    """procfs writes psutil's status strings out instead of importing psutil: they must stay
    the values of psutil's STATUS_* constants, letter for letter (PROC_STATUSES)."""
    # psutil._common holds every STATUS_* (psutil itself does not export STATUS_WAKE_KILL)
    constants = {v for k, v in vars(_common).items() if k.startswith("STATUS_")}
    assert procfs.STATES.keys() == _pslinux.PROC_STATUSES.keys()
    for letter, status in _pslinux.PROC_STATUSES.items():
        assert procfs.STATES[letter] == status, letter
        assert procfs.STATES[letter] in constants, letter
    assert procfs.ZOMBIE == psutil.STATUS_ZOMBIE
    assert procfs.parse_stat(stat_line(1, b"x", b"?", 0, 0)).status == "unknown"


def test_a_name_with_spaces_and_parentheses_does_not_shift_the_fields():
    stat = procfs.parse_stat(stat_line(7, b"a) (b) Z 99", b"R", 3, 12345))
    assert stat == procfs.Stat(comm="a) (b) Z 99", state="R", ppid=3, start_ticks=12345)


@given(
    st.binary(max_size=15).filter(lambda b: b"\0" not in b),
    st.sampled_from(sorted(procfs.STATES)),
    st.integers(0, 2**22),
    st.integers(0, 2**63),
)
def test_stat_round_trip(comm, state, ppid, ticks):
    stat = procfs.parse_stat(stat_line(1, comm, state.encode(), ppid, ticks))
    assert stat is not None
    assert (os.fsencode(stat.comm), stat.state, stat.ppid, stat.start_ticks) == (
        comm,
        state,
        ppid,
        ticks,
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"garbage",
        b"1 (x",
        b"1 (x) S",
        b"1 (x) S -1 " + b"0 " * 30,
        stat_line(1, b"x", b"S", 2, 3)[:-20],
    ],
)
def test_what_is_not_a_stat_line_is_none(raw):
    assert procfs.parse_stat(raw) is None


@given(st.binary(max_size=300))
def test_stat_parser_is_total(raw):
    stat = procfs.parse_stat(raw)
    assert stat is None or (stat.ppid >= 0 and stat.start_ticks >= 0)


@pytest.mark.parametrize(
    ("raw", "argv"),
    [
        (b"sleep\x00100\x00", ("sleep", "100")),
        (b"a b\x00c\x00", ("a b", "c")),  # spaces inside one argument
        (b"nginx: worker process\x00", ("nginx:", "worker", "process")),  # setproctitle
        (b"postgres: writer   ", ("postgres:", "writer", "", "")),  # psutil's rule, as is
        (b"", ()),  # zombies and kernel threads
        (b"caf\xe9\x00\xff\x00", ("caf\udce9", "\udcff")),  # undecodable bytes kept
    ],
)
def test_cmdline_is_split_as_psutil_splits_it(raw, argv):
    assert procfs.split_cmdline(raw) == argv


def test_a_truncated_name_is_completed_from_argv0_like_psutil():
    assert procfs.full_name("containerd-shim", ("/usr/bin/containerd-shim-runc-v2", "-id")) == (
        "containerd-shim-runc-v2"
    )
    assert procfs.full_name("containerd-shim", ("/bin/other",)) == "containerd-shim"
    assert procfs.full_name("sleep", ("/bin/sleeper",)) == "sleep"  # short names are whole


def test_namespace_link_inode():
    assert procfs.ns_inode("net:[4026531840]") == 4026531840
    with pytest.raises(ValueError):
        procfs.ns_inode("net:4026531840")


# -- the walk, on live processes --------------------------------------------------------------


@pytest.fixture
def odd_children(tmp_path):
    """A child whose argv has spaces, undecodable bytes and escapes; one whose name is
    longer than the kernel's 15 bytes (a symlink to sleep)."""
    code = "import sys, time; sys.stdout.write('ok\\n'); sys.stdout.flush(); time.sleep(60)"
    odd = subprocess.Popen(
        [sys.executable, "-c", code, b"two words", b"caf\xe9", b"\x1b]0;title\x07"],
        stdout=subprocess.PIPE,
    )
    assert odd.stdout is not None and odd.stdout.readline() == b"ok\n"
    long_name = tmp_path / "a-very-long-program-name"
    long_name.symlink_to(shutil.which("sleep") or "/bin/sleep")
    sleeper = subprocess.Popen([str(long_name), "60"])
    argv = [str(long_name), "60"]  # until it execs, the child has this process's
    wait_for(lambda: psutil.Process(sleeper.pid).cmdline() == argv, 10, "the sleeper to exec")
    yield odd, sleeper
    for child in (odd, sleeper):
        child.kill()
        child.wait()


def psutil_view() -> dict[int, dict]:
    fields = ["ppid", "name", "cmdline", "create_time"]
    return {p.pid: p.info for p in psutil.process_iter(fields)}


def test_the_walk_reads_what_psutil_reads(odd_children):
    odd, sleeper = odd_children
    # psutil reads before and after the walk: what changed in between (a process born, gone,
    # its PID reused, or an exec, such as `runc init` becoming the container's program) is
    # left out, and every process that held still must be read exactly as psutil reads it.
    before = psutil_view()
    snap = take(ROOT, RUNTIMES)
    after = psutil_view()
    compared = 0
    for pid, info in after.items():
        if before.get(pid) != info:
            continue
        mine = snap.procs.get(pid)
        assert mine is not None and mine.create_time == info["create_time"], pid
        assert (mine.ppid, list(mine.cmdline)) == (info["ppid"], info["cmdline"] or []), pid
        if mine.ppid != 2:  # kernel workers rename themselves after their current work
            assert mine.name == info["name"], pid
        compared += 1
    assert compared > 10
    child = snap.procs[odd.pid]
    assert child.cmdline[-3:] == ("two words", "caf\udce9", "\x1b]0;title\x07")
    assert child.ppid == os.getpid() and child.uid == os.geteuid()
    assert snap.procs[sleeper.pid].name == "a-very-long-program-name"


def wait_for_zombie(pid: int) -> None:
    def zombie() -> bool:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE

    wait_for(zombie, 10, f"{pid} to be a zombie", every=0.01)


def test_a_zombie_is_read_as_a_zombie_with_no_argv():
    child = subprocess.Popen(["true"])
    try:
        wait_for_zombie(child.pid)
        proc = take(ROOT, RUNTIMES).procs[child.pid]
        assert proc.zombie and proc.cmdline == () and proc.name == "true"
    finally:
        child.wait()


def test_a_reused_pid_lends_no_namespaces():
    """The namespace pass re-reads the start ticks through its own fd: a different process
    under the same PID (here: the same PID with another start) gets nothing."""
    walk = Walk(ROOT, RUNTIMES)
    me = walk.processes().procs[os.getpid()]
    read = walk._namespaces(me)
    assert read is not None and read[0]["net"] == os.stat("/proc/self/ns/net").st_ino
    for other in (me.start - 1, me.start + 1):
        assert walk._namespaces(replace(me, start=other)) is None, other


def test_a_vanished_pid_is_skipped():
    child = subprocess.Popen(["true"])
    child.wait()
    assert Walk(ROOT, RUNTIMES)._proc(child.pid) is None


def test_namespaces_are_read_for_drawn_processes_only():
    snap = take(ROOT, RUNTIMES)
    assert snap.procs[os.getpid()].namespaces == {}  # pytest is neither a daemon nor in a container
    assert snap.host_ns  # PID 1 or kthreadd always is


# -- one process for the whole boot: ProcessId ---------------------------------------------------


def test_a_live_child_is_identified_by_its_pid_and_start():
    child = subprocess.Popen(["sleep", "60"])
    try:
        ident = identify(ROOT, child.pid)
        assert ident is not None and ident.pid == child.pid
        # the start ticks are the kernel's: psutil's create time is computed from them
        clk = os.sysconf("SC_CLK_TCK")
        assert ident.start / clk + ROOT.boot_time() == psutil.Process(child.pid).create_time()
        assert ident == identify(ROOT, child.pid)  # the same process, read again
        assert ident.alive(ROOT)
        assert ProcessId(child.pid, ident.start).alive(ROOT)
    finally:
        child.kill()
        child.wait()


def test_a_process_that_exited_and_was_reaped_is_not_alive():
    child = subprocess.Popen(["sleep", "60"])
    ident = identify(ROOT, child.pid)
    assert ident is not None and ident.alive(ROOT)
    child.kill()
    child.wait()
    assert not ident.alive(ROOT)
    assert identify(ROOT, child.pid) is None or identify(ROOT, child.pid) != ident


def test_a_zombie_is_not_alive():
    child = subprocess.Popen(["sleep", "60"])
    ident = identify(ROOT, child.pid)
    assert ident is not None
    child.kill()
    try:
        wait_for_zombie(child.pid)
        assert identify(ROOT, child.pid) is None  # the PID is still held, by a zombie
        assert not ident.alive(ROOT)
    finally:
        child.wait()


def test_the_same_pid_with_another_start_is_another_process():
    ident = identify(ROOT, os.getpid())
    assert ident is not None and ident.alive(ROOT)
    assert not ProcessId(ident.pid, ident.start - 1).alive(ROOT)  # what held the PID before
    assert not ProcessId(ident.pid, ident.start + 1).alive(ROOT)  # what will hold it after


def test_a_pid_that_cannot_be_read_is_no_process(tmp_path):
    assert identify(ROOT, 2**22 + 1) is None  # above pid_max: never a process
    assert identify(HostRoot(proc=str(tmp_path)), os.getpid()) is None  # not a /proc
