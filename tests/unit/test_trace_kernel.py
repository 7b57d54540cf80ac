"""The proc connector's wire format and loss accounting, and the recorder's reads of /proc at
each event, on a made-up /proc (a directory laid out like one, reached through HostRoot)."""

from __future__ import annotations

import os
import struct
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tracer.kernel import connector, procfs
from tracer.kernel.connector import COMM, EXEC, EXIT, FORK, NONE, Event, Loss, parse
from tracer.kernel.root import HostRoot
from tracer.snapshot.recorder import CLI, ENGINE, Recorder, _Tracked
from tracer.snapshot.recorder import NONE as UNINTERESTING
from tracer.views.roles import engine_program

HEAD = struct.Struct("=IHHIIIIIIHHIIQ")


def datagram(what, cpu, seq, ts, data: bytes, idx=1, ack=0) -> bytes:
    body = data.ljust(24, b"\0")
    return HEAD.pack(76, 3, 0, 0, 0, idx, 1, seq, ack, 40, 0, what, cpu, ts) + body


def test_events_are_parsed_as_the_kernel_lays_them_out():
    fork = parse(datagram(FORK, 1, 7, 123, struct.pack("=IIII", 10, 11, 12, 12)))
    assert fork == Event(FORK, 1, 7, 123, pid=12, tgid=12, ppid=10, ptgid=11)
    ex = parse(datagram(EXEC, 0, 8, 124, struct.pack("=II", 12, 12)))
    assert (ex.what, ex.pid, ex.tgid) == (EXEC, 12, 12)
    comm = parse(datagram(COMM, 0, 9, 125, struct.pack("=II", 12, 12) + b"runc:[2:INIT]\0"))
    assert comm.comm == "runc:[2:INIT]"
    end = parse(datagram(EXIT, 0, 10, 126, struct.pack("=IIIIII", 12, 12, 9, 17, 1, 1)))
    assert (end.pid, end.code, end.ppid, end.ptgid) == (12, 9, 1, 1)
    assert procfs.wait_status(end.code) == (None, 9)
    assert procfs.wait_status(3 << 8) == (3, None)
    ack = parse(datagram(NONE, 0, 11, 127, struct.pack("=I", 0), ack=43))
    assert (ack.what, ack.ack, ack.code) == (NONE, 43, 0)


def test_what_is_not_a_process_event_is_none():
    assert parse(b"") is None
    assert parse(datagram(FORK, 0, 0, 0, b"")[:75]) is None
    assert parse(datagram(FORK, 0, 0, 0, b"", idx=2)) is None


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_the_parser_is_total(data):
    parse(data)


def test_the_subscription_request():
    req = connector.listen_request(connector.PROC_CN_MCAST_LISTEN, 41)
    assert len(req) == 40
    length, kind = struct.unpack_from("=IH", req)
    idx, val, _seq, ack, size = struct.unpack_from("=IIIIH", req, 16)
    assert (length, kind, idx, val, ack, size) == (40, 3, 1, 1, 41, 4)
    assert struct.unpack_from("=I", req, 36)[0] == connector.PROC_CN_MCAST_LISTEN


def test_gaps_in_each_cpu_s_sequence_count_lost_events():
    loss = Loss()
    for cpu, seq in [(0, 5), (1, 100), (0, 6), (0, 9), (1, 101), (1, 104), (0, 8)]:
        loss.see(cpu, seq)
    assert loss.gaps == 2 + 2  # 7, 8 on cpu 0 (8 comes late: not counted twice); 102, 103
    loss.see(connector.NO_CPU, 1)  # an old kernel's acknowledgement: not in a sequence
    wrap = Loss()
    wrap.see(0, 0xFFFFFFFE)
    wrap.see(0, 1)  # 0xFFFFFFFF and 0 were lost across the wrap
    assert wrap.gaps == 2
    drops = Loss(gaps=3, drops=10)
    assert drops.lost == 10  # the socket's drops see a loss at the end, which gaps cannot


def test_the_drops_of_one_socket_in_proc_net_netlink():
    lines = [
        "sk               Eth Pid        Groups   Rmem     Wmem     Dump  Locks    Drops    Inode",
        "0000000037621bc4 11  4242       00000001 0        0        0     2        3036     99",
        "0000000008279728 11  4243       00000001 0        0        0     2        0        100",
    ]
    assert connector.netlink_drops(lines, 99) == 3036
    assert connector.netlink_drops(lines, 100) == 0
    assert connector.netlink_drops(lines, 7) is None
    assert connector.netlink_drops(["garbage"], 99) is None


# -- the recorder on a made-up /proc --------------------------------------------------------------


def fake_proc(root: Path, pid: int, comm: str, argv: list[str], start: int, ppid: int = 1,
              ns: dict[str, int] | None = None, state: str = "S") -> None:  # fmt: skip
    d = root / str(pid)
    (d / "ns").mkdir(parents=True, exist_ok=True)
    fields = [state, str(ppid)] + ["0"] * 17 + [str(start)] + ["0"] * 5
    (d / "stat").write_text(f"{pid} ({comm}) {' '.join(fields)}\n")
    (d / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))
    for kind, inode in (ns or {}).items():
        link = d / "ns" / kind
        if link.is_symlink():
            link.unlink()
        os.symlink(f"{kind}:[{inode}]", link)


def recorder(tmp_path: Path, everything: bool = False) -> Recorder:
    rec = Recorder(HostRoot(fs=str(tmp_path), proc=str(tmp_path)), engine_program,
                   everything=everything)  # fmt: skip
    rec.t0 = 0
    rec._boot_offset = 0
    return rec


def ev(what, ts, pid, tgid=None, ppid=0, ptgid=0, code=0, comm=""):
    return Event(what, 0, 0, ts, pid, pid if tgid is None else tgid, ppid, ptgid, code, comm)


def test_an_exec_is_read_at_once_and_a_container_process_gets_its_namespaces(tmp_path):
    rec = recorder(tmp_path)
    rec._procs = {500: _Tracked(None, 100, ENGINE, "containerd")}  # containerd, already there
    tick = 10_000_000  # 100 Hz
    fake_proc(tmp_path, 900, "runc", ["runc", "init"], start=5, ppid=500, ns={"mnt": 7})
    rec._handle(ev(FORK, 5 * tick, 900, ppid=500, ptgid=500))
    rec._handle(ev(EXEC, 5 * tick + 1000, 900))
    raw = rec.events[-1]
    assert raw.kind == "exec" and raw.sample.cmdline == ("runc", "init")
    assert raw.sample.namespaces == {"mnt": 7}  # runc init: its namespaces are shown
    rec._handle(ev(COMM, 5 * tick + 2000, 900, comm="runc:[2:INIT]"))
    fake_proc(tmp_path, 900, "sleep", ["sleep", "9"], start=5, ppid=500, ns={"mnt": 8})
    rec._handle(ev(EXEC, 5 * tick + 900_000_000, 900))
    sample = rec.events[-1].sample
    assert sample.cmdline == ("sleep", "9") and sample.namespaces == {"mnt": 8}


def test_a_reused_pid_lends_neither_argv_nor_namespaces(tmp_path):
    rec = recorder(tmp_path, everything=True)
    # Forked at tick 5 during the trace; /proc now holds a process started at tick 40.
    fake_proc(tmp_path, 901, "sh", ["sh"], start=40, ns={"mnt": 9})
    rec._handle(ev(FORK, 50_000_000, 901, ppid=1, ptgid=1))
    rec._handle(ev(EXEC, 50_100_000, 901))
    sample = rec.events[-1].sample
    assert (sample.cmdline, sample.namespaces, sample.missing) == (None, None, "reused")


def test_a_process_gone_before_its_read_has_no_argv_and_says_why(tmp_path):
    rec = recorder(tmp_path, everything=True)
    rec._handle(ev(FORK, 1, 902, ppid=1, ptgid=1))
    rec._handle(ev(EXEC, 2, 902))
    assert rec.events[-1].sample.missing == "gone"
    fake_proc(tmp_path, 903, "runc", [], start=0, state="Z")
    rec._handle(ev(FORK, 3, 903, ppid=1, ptgid=1))
    rec._handle(ev(EXEC, 4, 903))
    sample = rec.events[-1].sample
    assert (sample.cmdline, sample.comm, sample.missing) == (None, "runc", "zombie")


def test_an_exec_read_after_a_later_exec_is_dropped(tmp_path):
    """A lagging reader can attach a later program's argv to an earlier exec (§9a): when the
    next exec of the process happened before the read ended, that read is not kept."""
    rec = recorder(tmp_path, everything=True)
    fake_proc(tmp_path, 904, "b", ["b"], start=0)
    rec._handle(ev(FORK, 0, 904, ppid=1, ptgid=1))
    rec._handle(ev(EXEC, 1, 904))  # the program "a", already replaced by "b" when read
    rec._handle(ev(EXEC, 2, 904))  # its event came before the read above ended
    first, second = rec.events[-2], rec.events[-1]
    assert (first.sample.cmdline, first.sample.missing) == (None, "re-exec")
    assert second.sample.cmdline == ("b",)


def test_threads_are_folded_and_what_does_not_concern_containers_is_skipped(tmp_path):
    rec = recorder(tmp_path)
    fake_proc(tmp_path, 905, "bash", ["bash"], start=0)
    rec._handle(ev(FORK, 1, 905, ppid=1, ptgid=1))
    rec._handle(ev(FORK, 2, 906, tgid=905, ppid=905, ptgid=905))  # a thread of 905
    rec._handle(ev(EXIT, 3, 906, tgid=905, code=0))
    rec._handle(ev(EXEC, 4, 905))
    assert rec.threads == 2 and rec.events == [] and rec.skipped == 2
    assert rec._procs[905].kind == UNINTERESTING


def test_the_tracer_s_own_children_are_the_command(tmp_path):
    rec = recorder(tmp_path)
    fake_proc(tmp_path, 907, "docker", ["docker", "ps"], start=0, ppid=os.getpid())
    rec._handle(ev(FORK, 1, 907, ppid=os.getpid(), ptgid=os.getpid()))
    rec._handle(ev(EXEC, 2, 907))
    assert [r.kind for r in rec.events] == ["fork", "exec"]
    assert rec._procs[907].kind == CLI and rec.events[-1].sample.cmdline == ("docker", "ps")


class _FailingConnector:
    """A socket that delivers one event, then fails as a broken kernel interface would."""

    def __init__(self) -> None:
        self.loss, self.received, self.buffer, self.max_backlog = Loss(), 1, 0, 0
        self.calls = 0

    def receive(self, timeout: float) -> list[Event]:
        self.calls += 1
        if self.calls == 1:
            return [ev(FORK, 1, 910, ppid=1, ptgid=1)]
        raise OSError(5, "Input/output error")

    def close(self) -> None:
        pass


def test_a_reader_that_fails_is_an_error_never_a_quiet_gap(tmp_path):
    import pytest

    from tracer.errors import TracerError

    rec = recorder(tmp_path, everything=True)
    rec.conn = _FailingConnector()  # type: ignore[assignment]
    rec.start({})
    rec._thread.join(timeout=10)
    with pytest.raises(TracerError, match="reading the kernel's process events failed: OSError"):
        rec.stop()
