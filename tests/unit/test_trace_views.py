"""trace's views on made-up recordings: roles, containers, namespaces and stories, as the
proc connector shows a container's life (docs/CONTAINERS.md §3)."""

from __future__ import annotations

from hypothesis import given, settings

from tests.support import schemas
from tests.support.argv import ARGV
from tests.support.recordings import (
    CID,
    CID2,
    NS_HOST,
    RUNC_ROOT,
    Rec,
    docker_run,
    existing,
    ns_of,
)
from tracer.model.trace import KINDS, ROLES, KnownContainer
from tracer.views.lifecycle import trace
from tracer.views.lives import runc_args


def by_pid(t, kind=None):
    out = {}
    for ev in t.events:
        if kind is None or ev.event == kind:
            out.setdefault(ev.pid, []).append(ev)
    return out


def roles_of(t, pid):
    return [(ev.event, ev.role) for ev in t.events if ev.pid == pid]


def test_docker_run_gives_every_process_its_role_and_the_container():
    t = trace(docker_run(Rec()).recording())
    assert roles_of(t, 1000) == [
        ("fork", "shim-start"),
        ("exec", "shim-start"),
        ("exit", "shim-start"),
    ]
    assert roles_of(t, 1001)[:2] == [("fork", "shim"), ("exec", "shim")]
    assert {r for _, r in roles_of(t, 1002)} == {"runc-create"}
    # runc init, and its stages forked by runc create (CLONE_PARENT), are runc-init until the
    # last one execs the container's program.
    assert {r for _, r in roles_of(t, 1003)} == {"runc-init"}
    assert {r for _, r in roles_of(t, 1004)} == {"runc-init"}
    assert roles_of(t, 1005) == [
        ("fork", "runc-init"),
        ("comm", "runc-init"),
        ("exec", "container-init"),
    ]
    assert {r for _, r in roles_of(t, 1006)} == {"hook"}
    assert {r for _, r in roles_of(t, 1007)} == {"runc-start"}
    assert {ev.container for ev in t.events} == {CID}


def test_the_fork_of_the_init_names_runc_create_and_its_exec_the_shim():
    t = trace(docker_run(Rec()).recording())
    fork, _comm, exec_ = by_pid(t)[1005]
    assert fork.ppid == 1002  # runc create: CLONE_PARENT
    assert exec_.ppid == 1001  # re-parented to the shim by the time it execs
    assert exec_.cmdline == ["sleep", "1000"]


def test_the_init_gets_new_namespaces_and_the_host_ones_stay_shared():
    t = trace(docker_run(Rec()).recording())
    exec_ = by_pid(t, "exec")[1005][0]
    assert exec_.namespaces == ns_of(4026532000 + 1000)
    changed = {k for k, v in exec_.ns_change.items() if v == "new"}
    assert changed == {"ipc", "mnt", "net", "pid", "pid_for_children", "uts"}
    assert not {"user", "cgroup", "time"} & set(exec_.ns_change)


def test_namespaces_are_given_only_for_container_processes_and_runc_init():
    t = trace(docker_run(Rec()).recording())
    shown = {(ev.pid, ev.role) for ev in t.events if ev.namespaces is not None}
    assert shown == {(1003, "runc-init"), (1005, "container-init")}


def test_the_story_says_what_ran_how_long_and_which_pid_is_the_init():
    t = trace(docker_run(Rec()).recording())
    (story,) = t.stories
    assert story.id == CID
    assert story.what == ["shim start", "create", "start", "init exec"]
    assert story.init is not None and story.init.pid == 1005
    assert story.init.parent_at_exec == story.shim_pid == 1001
    assert story.started_in_ns == 245_700_000  # shim start forked at 0, init exec at 245.7 ms
    steps = {(s.role, s.pid): s for s in story.steps}
    assert steps[("shim-start", 1000)].lifetime_ns == 9_000_000
    assert steps[("runc-create", 1002)].lifetime_ns == 217_100_000
    assert steps[("runc-init", 1004)].cmdline == ["runc:[1:CHILD]"]
    assert steps[("runc-init", 1004)].parent == 1002
    assert steps[("hook", 1006)].detail == "libnetwork-setkey"
    assert steps[("runc-start", 1007)].detail == "runc start"


def test_exit_codes_signals_and_lifetimes():
    rec = docker_run(Rec()).exit(900, 1005, 1001, signal=9)
    t = trace(rec.recording())
    end = by_pid(t, "exit")[1005][0]
    assert (end.exit_code, end.signal, end.lifetime_ns) == (None, 9, 872_000_000)
    assert t.stories[0].init_exit is not None and t.stories[0].init_exit.signal == 9
    assert t.stories[0].what[-1] == "init signal 9"


def test_docker_exec_joins_the_namespaces_of_the_container():
    ns = ns_of(4026533000)
    known = [
        existing(700, 1, 200, "containerd-shim", ("/usr/bin/containerd-shim-runc-v2", "-namespace",
              "moby", "-id", CID, "-address", "/run/containerd/containerd.sock"), {}),
        existing(710, 700, 210, "sleep", ("sleep", "1000"), ns),
    ]  # fmt: skip
    c = KnownContainer(CID, "web", 710, 700, ns)
    rec = Rec(*known, containers=[c])
    exec_ = (*RUNC_ROOT, "exec", "--process", "/tmp/runc-process1", "--detach", "--pid-file",
             "/b/e.pid", CID)  # fmt: skip
    (rec.fork(1, 700, 800).exec(1.1, 800, exec_, ns=NS_HOST)
        .fork(5, 800, 801).exec(5.1, 801, ("runc", "init"), ns=NS_HOST)
        .comm(5.2, 801, "runc:[0:PARENT]")
        .fork(5.3, 800, 802).comm(5.4, 802, "runc:[1:CHILD]")
        .fork(5.5, 800, 803).comm(5.6, 803, "runc:[2:INIT]", ns=ns)
        .exit(6, 802, 800).exit(6.1, 801, 800)
        .exit(40, 800, 700)
        .exec(41, 803, ("sh", "-c", "echo hi"), ns=ns, ppid=700)
        .fork(42, 803, 804).exec(42.1, 804, ("echo", "hi"), ns=ns)
        .exit(43, 804, 803).exit(44, 803, 700))  # fmt: skip
    t = trace(rec.recording())
    assert {r for _, r in roles_of(t, 800)} == {"runc-exec"}
    assert roles_of(t, 803)[-2:] == [("exec", "exec-process"), ("exit", "exec-process")]
    assert {r for _, r in roles_of(t, 804)} == {"exec-process"}
    exec_ev = by_pid(t, "exec")[803][0]
    kinds = ("ipc", "mnt", "net", "pid", "pid_for_children", "uts")
    assert exec_ev.ns_change == {k: f"joined:{CID}" for k in kinds}
    (story,) = t.stories
    assert story.name == "web" and story.what == ["exec"]
    assert [e.pid for e in story.execs] == [803]
    assert story.init is None


def test_network_container_x_joins_only_the_network_of_x():
    web = ns_of(4026534000)
    c = KnownContainer(CID2, "web", 710, 700, web)
    own = ns_of(4026535000, net=web["net"])
    t = trace(docker_run(Rec(containers=[c]), ns=own).recording())
    exec_ = by_pid(t, "exec")[1005][0]
    assert exec_.ns_change["net"] == f"joined:{CID2}"
    assert exec_.ns_change["mnt"] == "new"


def test_docker_run_init_makes_docker_init_the_init_and_the_command_its_child():
    rec = docker_run(Rec(), init_argv=("/sbin/docker-init", "--", "sleep", "1000"))
    rec.fork(246, 1005, 1010).exec(246.1, 1010, ("sleep", "1000"))
    t = trace(rec.recording())
    assert by_pid(t, "exec")[1005][0].role == "docker-init"
    assert {r for _, r in roles_of(t, 1010)} == {"container-process"}
    assert t.stories[0].init is not None and t.stories[0].init.pid == 1005


def test_docker_stop_kills_then_deletes_a_container_that_was_already_there():
    ns = ns_of(4026533000)
    shim = ("/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-id", CID, "-address",
            "/run/containerd/containerd.sock")  # fmt: skip
    known = [existing(700, 1, 200, "containerd-shim", shim, {}),
             existing(710, 700, 210, "sleep", ("sleep", "1000"), ns)]  # fmt: skip
    rec = Rec(*known, containers=[KnownContainer(CID, "old", 710, 700, ns)])
    delete = ("/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-address", "/x",
              "-id", CID, "-bundle", "/b", "delete")  # fmt: skip
    (rec.fork(1, 700, 801).exec(1.1, 801, (*RUNC_ROOT, "kill", CID, "15")).exit(9, 801, 700)
        .fork(10001, 700, 802).exec(10001.1, 802, (*RUNC_ROOT, "kill", CID, "9"))
        .exit(10009, 802, 700).exit(10010, 710, 700, signal=9)
        .fork(10012, 700, 803).exec(10012.1, 803, (*RUNC_ROOT, "delete", CID))
        .exit(10020, 803, 700).exit(10021, 700, 1)
        .fork(10022, 500, 804).exec(10022.1, 804, delete)
        .fork(10023, 804, 805).exec(10023.1, 805, (*RUNC_ROOT, "delete", "--force", CID))
        .exit(10030, 805, 804).exit(10034, 804, 500))  # fmt: skip
    t = trace(rec.recording())
    (story,) = t.stories
    assert story.what == ["kill 15", "kill 9", "init signal 9", "delete", "shim exit",
                          "shim delete"]  # fmt: skip
    assert story.init_exit is not None and story.init_exit.pid == 710
    assert by_pid(t, "exit")[710][0].role == "container-init"
    assert by_pid(t, "exit")[700][0].role == "shim"
    assert by_pid(t, "exit")[710][0].lifetime_ns is None  # it was there before the trace


def test_argv_gone_falls_back_to_comm_marked_and_the_tree_gives_the_role():
    """Under load runc's argv is gone before it is read (docs/CONTAINERS.md §3): runc create is
    the one that forked the stages, runc start the one alive when the init exec'd."""
    rec = Rec()
    docker_run(rec)
    for ev in list(rec.events):
        if ev.kind == "exec" and ev.pid in (1002, 1007):
            i = rec.events.index(ev)
            from dataclasses import replace

            gone = replace(ev.sample, cmdline=None, comm="runc", missing="zombie")
            rec.events[i] = replace(ev, sample=gone)
    t = trace(rec.recording())
    create = by_pid(t, "exec")[1002][0]
    assert (create.role, create.cmdline, create.comm) == ("runc-create", None, "runc")
    assert create.cmdline_from == "comm" and create.missing == "zombie" and create.role_inferred
    assert by_pid(t, "exec")[1007][0].role == "runc-start"
    assert by_pid(t, "exec")[1005][0].role == "container-init"
    assert t.argv_missing >= 2


def test_a_reused_pid_is_another_process():
    """The same PID forked twice during the trace: two processes, keyed by (pid, fork time)."""
    rec = Rec()
    rec.fork(1, 600, 900).exec(1.1, 900, ("/usr/sbin/docker-proxy", "-proto", "tcp"))
    rec.exit(2, 900, 600)
    rec.fork(3, 500, 900).exec(3.1, 900, ("/usr/bin/containerd-shim-runc-v2", "-namespace",
                                          "moby", "-id", CID, "start"))  # fmt: skip
    rec.exit(10, 900, 500)
    t = trace(rec.recording())
    first, second = [(1_000_000, "docker-proxy")] * 3, [(3_000_000, "shim-start")] * 3
    assert [(ev.born_ns, ev.role) for ev in t.events] == first + second
    assert t.processes == 2


def test_the_traced_command_and_its_children_are_cli_and_dockerd_helpers_are_named():
    rec = Rec(existing(50, 1, 5, "python3", ("python3", "-m", "tracer"), {}))
    rec.fork(0, 50, 51).exec(0.1, 51, ("sh", "-c", "docker run x; true"))
    rec.fork(1, 51, 52).exec(1.1, 52, ("docker", "run", "x"))
    rec.fork(2, 600, 53).exec(2.1, 53, ("set-ipv6", "/run/docker/netns/1", "all", "false"))
    t = trace(rec.recording(command=["sh", "-c", "docker run x; true"], command_pid=51))
    assert {r for _, r in roles_of(t, 51)} == {"cli"}
    assert {r for _, r in roles_of(t, 52)} == {"cli"}
    assert {r for _, r in roles_of(t, 53)} == {"dockerd-helper"}
    assert by_pid(t, "fork")[53][0].parent_role == "dockerd"


def test_an_empty_recording_gives_an_empty_trace_that_says_so():
    t = trace(Rec().recording(received=12, threads=3, skipped=9))
    assert t.events == [] and t.stories == []
    assert t.summary()["events"] == 0 and t.summary()["summary"]["skipped"] == 9


def test_json_lines_hold_the_documented_fields():
    t = trace(docker_run(Rec()).recording())
    lines = [schemas.validate(line) for line in t.json_lines()]
    for line in lines[:-1]:
        assert line["schema"] == "dtrace-tree/trace/1"
        assert line["event"] in KINDS and line["role"] in ROLES
        for key, kinds in {"t_ns": int, "pid": int, "ppid": int, "comm": str, "role": str}.items():
            assert isinstance(line[key], kinds), key
        assert line["cmdline"] is None or all(isinstance(a, str) for a in line["cmdline"])
        assert line["container"] is None or len(line["container"]) == 64
        for key in ("exit_code", "signal", "lifetime_ns"):
            assert line[key] is None or isinstance(line[key], int)
        assert line["namespaces"] is None or all(
            isinstance(v, int) for v in line["namespaces"].values()
        )
    last = lines[-1]
    assert last["schema"] == "dtrace-tree/trace/1"
    assert last["events"] == len(lines) - 1 and last["lost"] == 0
    assert last["summary"]["containers"][0]["init_pid"] == 1005


def test_runc_arguments_are_read_after_the_global_flags():
    assert runc_args((*RUNC_ROOT, "kill", CID, "9")) == ("kill", [CID, "9"])
    argv = ("runc", "--root=/r", "--debug", "create", "--bundle", "/b", "--pid-file", "/p",
            "--console-socket", "/s", "--no-pivot", CID)  # fmt: skip
    assert runc_args(argv) == ("create", [CID])
    assert runc_args(("runc", "init")) == ("init", [])
    assert runc_args(("runc",)) == (None, [])
    assert runc_args(("sleep", "1")) == (None, [])


@settings(max_examples=300)
@given(ARGV, ARGV)
def test_any_argv_in_any_place_never_breaks_the_views(a, b):
    """argv is untrusted text: whatever a process calls itself, the views never raise."""
    rec = Rec()
    rec.fork(1, 500, 900).exec(1.1, 900, a or None, ns=NS_HOST)
    rec.fork(2, 900, 901).exec(2.1, 901, b or None)
    rec.comm(2.2, 901, "runc:[2:INIT]").exec(3, 901, a or None, ns=ns_of(4026539000))
    rec.exit(4, 901, 900).exit(5, 900, 500)
    t = trace(rec.recording())
    assert len(t.events) == 8
    list(t.json_lines())


def test_a_docker_exec_that_execs_again_is_one_entry():
    """`docker exec c sh -c 'echo; sleep 1'`: busybox sh execs its last command in place."""
    ns = ns_of(4026533000)
    rec = Rec(containers=[KnownContainer(CID, "web", 710, 700, ns)])
    exec_ = (*RUNC_ROOT, "exec", "--process", "/tmp/p", "--detach", CID)
    (rec.fork(1, 700, 800).exec(1.1, 800, exec_, ns=NS_HOST)
        .fork(5.5, 800, 803).comm(5.6, 803, "runc:[2:INIT]", ns=ns)
        .exec(41, 803, ("sh", "-c", "echo; sleep 1"), ns=ns)
        .exec(42, 803, ("sleep", "1"), ns=ns))  # fmt: skip
    (story,) = trace(rec.recording()).stories
    assert [(e.pid, e.cmdline) for e in story.execs] == [(803, ["sh", "-c", "echo; sleep 1"])]
