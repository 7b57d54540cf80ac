"""`serve`, its pure parts: who may ask (guard), when to look at the host (Bursts), what the page
is sent (state, timeline) and what changed between two looks (daemons)."""

from __future__ import annotations

import json

import pytest

from tests.support import schemas
from tests.support.cli import invoke, one_error_line
from tests.support.hosts import SOCK
from tests.support.recordings import CID, Rec, docker_run
from tests.support.topologies import containerd, diagram_host, dockerd, engine, numbered
from tracer.model.topology import Topology
from tracer.model.trace import Raw, Sample
from tracer.output.web import state as pages
from tracer.output.web.guard import Guard, split_host
from tracer.output.web.hub import encode
from tracer.snapshot.recorder import CLI, CONTAINER, ENGINE
from tracer.views import lifecycle
from tracer.views.compare import compare, daemons, missing_daemons
from tracer.views.lifecycle import FAST, NOISE, SLOW, Bursts

TOKEN = "s3cret-token_of-43-characters-aaaaaaaaaaaaa"

# -- the guard ------------------------------------------------------------------------------------


def loopback() -> Guard:
    return Guard.at(TOKEN, "127.0.0.1", 8780, ["vm", "vm.example.org"])


def test_the_token_is_needed_whole_and_only_the_first_counts():
    g = loopback()
    assert g.token_ok(f"/?token={TOKEN}")
    assert g.token_ok(f"/api/show?all=1&token={TOKEN}")
    assert g.token_ok("/?token=" + TOKEN.replace("-", "%2D"))  # percent-encoded, the same
    for target in ("/", "/?token=", f"/?token={TOKEN[:-1]}", f"/?token={TOKEN}x",
                   f"/?token=wrong&token={TOKEN}", f"/?Token={TOKEN}", f"/{TOKEN}",
                   "/?token=%FF%FE"):  # fmt: skip
        assert not g.token_ok(target), target


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1:8780", True),
        ("localhost:8780", True),
        ("LocalHost.:8780", True),
        ("[::1]:8780", True),
        ("127.0.0.2:8780", True),  # loopback too
        ("127.0.0.1", False),  # no port: port 80
        ("127.0.0.1:8781", False),
        ("127.0.0.1:08780x", False),
        ("evil.example:8780", False),  # DNS rebinding: a name that resolves to 127.0.0.1
        ("localhost.evil.example:8780", False),
        ("vm:8780", False),  # the machine's own name: only when listening beyond loopback
        ("192.168.1.5:8780", False),
        ("", False),
        ("[::1:8780", False),
    ],
)
def test_host_on_loopback(host, ok):
    assert loopback().host_ok(host) is ok


def test_host_beyond_loopback():
    wild = Guard.at(TOKEN, "0.0.0.0", 8780, ["vm", "vm.example.org"])
    assert wild.host_ok("10.0.0.7:8780") and wild.host_ok("vm:8780")
    assert wild.host_ok("VM.example.org:8780") and wild.host_ok("localhost:8780")
    assert not wild.host_ok("evil.example:8780")
    one = Guard.at(TOKEN, "10.0.0.7", 8780, ["vm"])
    assert one.host_ok("10.0.0.7:8780") and one.host_ok("vm:8780")
    assert not one.host_ok("10.0.0.8:8780") and not one.host_ok("127.0.0.1:8780")


def test_split_host():
    assert split_host("[::1]:8780") == ("::1", 8780)
    assert split_host("Example.ORG.:1") == ("example.org", 1)
    assert split_host("h:999999") == ("h", None)
    assert split_host("h") == ("h", None)


def h(**kw: str) -> list[tuple[str, str]]:
    return [("Host", "127.0.0.1:8780"), *((k.replace("_", "-"), v) for k, v in kw.items())]


def test_origin_and_fetch_site():
    g = loopback()
    assert g.origin_ok(h())  # curl: neither
    assert g.origin_ok(h(Origin="http://127.0.0.1:8780", Sec_Fetch_Site="same-origin"))
    assert g.origin_ok(h(Sec_Fetch_Site="none", Sec_Fetch_Mode="navigate"))  # the URL typed
    # someone opening the URL from a link elsewhere: a top-level navigation, token still needed
    assert g.origin_ok(h(Sec_Fetch_Site="cross-site", Sec_Fetch_Mode="navigate",
                         Sec_Fetch_Dest="document"))  # fmt: skip
    assert not g.origin_ok(h(Origin="http://evil.example"))
    assert not g.origin_ok(h(Origin="null"))
    assert not g.origin_ok(
        h(Origin="http://127.0.0.1:8780", **{"Origin2": ""}) + [("Origin", "http://evil.example")]
    )
    assert not g.origin_ok(h(Sec_Fetch_Site="cross-site", Sec_Fetch_Mode="cors"))
    assert not g.origin_ok(h(Sec_Fetch_Site="same-site", Sec_Fetch_Mode="no-cors"))
    assert not g.origin_ok(h(Sec_Fetch_Site="cross-site", Sec_Fetch_Mode="navigate",
                             Sec_Fetch_Dest="iframe"))  # fmt: skip


def test_allows_needs_everything_and_one_host():
    g = loopback()
    target = f"/api/show?token={TOKEN}"
    assert g.allows(target, h())
    assert not g.allows("/api/show", h())
    assert not g.allows(target, [("Host", "evil.example:8780")])
    assert not g.allows(target, [])
    assert not g.allows(target, h() + [("Host", "evil.example:8780")])


# -- when to look ---------------------------------------------------------------------------------


def raw(kind: str, pid: int, argv: tuple[str, ...] | None = None, parent: int = 0) -> Raw:
    sample = Sample(argv, None) if kind == "exec" else None
    return Raw(kind, 0, pid, parent=parent, sample=sample)


RUNC_CREATE = ("runc", "--root", "/run/docker/runtime-runc/moby", "create", "--bundle", "/b", CID)


def test_what_calls_for_a_look():
    b = Bursts(quiet_parents={600})
    assert b.significance(raw("exec", 10, RUNC_CREATE), ENGINE) == FAST
    assert b.significance(raw("exit", 10), ENGINE) == FAST
    assert b.significance(raw("fork", 11, parent=500), ENGINE) == NOISE
    assert b.significance(raw("comm", 11), ENGINE) == NOISE
    assert b.significance(raw("exec", 12, ("docker", "ps")), CLI) == NOISE
    assert b.significance(raw("exit", 12), CLI) == FAST  # a docker command done
    assert b.significance(raw("exec", 13, ("sleep", "1")), CONTAINER) == SLOW
    assert b.significance(raw("exec", 14, ("runc", "--version")), ENGINE) == NOISE
    # dockerd's children (its version probes, whose argv is often gone): nothing, to the end
    assert b.significance(raw("fork", 20, parent=600), ENGINE) == NOISE
    assert b.significance(raw("exec", 20, None), ENGINE) == NOISE
    assert b.significance(raw("exit", 20), ENGINE) == NOISE
    assert b.significance(raw("exit", 20), ENGINE) == FAST  # that PID, once more: another process


def test_a_burst_is_over_when_quiet_and_no_step_runs_or_when_it_lasted_long_enough():
    b = Bursts(quiet=0.1, longest=0.6)
    assert b.due(0.0) is None  # nothing pending: never
    b.see(raw("exec", 10, ("containerd-shim-runc-v2", "-id", CID, "start")), ENGINE, 1.0)
    assert b.due(1.0) == pytest.approx(0.6)  # the shim start runs: not before longest
    b.see(raw("exit", 10), ENGINE, 1.05)
    assert b.due(1.05) == pytest.approx(0.1)  # nothing runs: quiet after the last event
    b.see(raw("exec", 11, RUNC_CREATE), ENGINE, 1.1)
    assert b.due(1.3) == pytest.approx(0.3)  # runc create waits on its hook: still open
    b.see(raw("exit", 11), ENGINE, 1.35)
    assert b.due(1.35) == pytest.approx(0.1)
    b.taken(1.45, 1.5, degraded=False)
    assert b.due(1.5) is None
    for i in range(20):  # a steady stream: a look at least every `longest`
        b.see(raw("exit", 100 + i), ENGINE, 2.0 + i * 0.05)
    assert b.due(2.5) == pytest.approx(0.1)


def test_events_during_a_look_stay_pending_and_looks_are_spaced_by_their_cost():
    b = Bursts(quiet=0.1, longest=0.6)
    b.see(raw("exit", 1), ENGINE, 0.0)
    b.see(raw("exit", 2), ENGINE, 0.25)  # during the look below
    b.taken(0.2, 0.6, degraded=False)  # a look that took 0.4 s
    assert b.due(0.6) == pytest.approx(0.6 + 2 * 0.4 - 0.6)  # BUSY: not before 1.4
    b.taken(1.4, 1.45, degraded=False)
    assert b.due(1.45) is None


def test_churn_inside_containers_is_looked_at_seldom():
    b = Bursts(quiet=0.1, churn=2.0)
    b.taken(0.0, 0.0, degraded=False)
    b.see(raw("exit", 5), CONTAINER, 0.5)
    assert b.due(0.5) == pytest.approx(1.5)


def test_an_api_that_does_not_answer_is_looked_at_again_less_and_less_often():
    b = Bursts()
    waits = []
    for i in range(9):
        b.taken(i * 100.0, i * 100.0, degraded=True)
        waits.append(b.due(i * 100.0))
    assert waits == list(lifecycle.RECHECK) + [lifecycle.RECHECK[-1]] * 2
    b.taken(1000.0, 1000.0, degraded=False)
    assert b.due(1000.0) is None


def test_looks_that_change_nothing_and_call_the_next_are_spaced():
    b = Bursts(quiet=0.1)
    t = 0.0
    b.see(raw("exit", 1), ENGINE, t)
    for _ in range(4):  # a feedback: each look makes the events that call for the next
        t += b.due(t) or 0
        b.see(raw("exit", 1), ENGINE, t + 0.005)  # while the look is taken
        b.taken(t, t + 0.01, degraded=False, changed=False)
        t += 0.01
    assert b.idle == 3
    assert b.due(t) == pytest.approx(lifecycle.IDLE[0], abs=0.02)
    b.taken(t + 1, t + 1.01, degraded=False, changed=True)  # something changed: no more
    b.see(raw("exit", 1), ENGINE, t + 1.5)
    assert b.due(t + 1.5) == pytest.approx(0.1)
    # someone's `docker ps` now and then: events that did not come during a look
    for i in range(6):
        b.see(raw("exit", 1), ENGINE, 10.0 + i)
        b.taken(10.2 + i, 10.21 + i, degraded=False, changed=False)
    assert b.idle == 0


# -- what the page is sent ------------------------------------------------------------------------


def test_the_state_of_a_look():
    topo = diagram_host()
    doc = pages.state(topo, 3, 0.0421, {}, {"events": 12, "lost": 0, "live": True})
    assert (doc["version"], doc["took_ms"], doc["hostname"]) == (3, 42, "box")
    names = [c["label"] for c in doc["containers"]]
    assert names == ["03" * 6, "side", "web-0", "web-1", "web-2"]  # running ones, as show
    web0 = next(c for c in doc["containers"] if c["label"] == "web-0")
    assert 650 in web0["pids"] and 1000 in web0["pids"] and 1001 in web0["pids"]  # proxy, shim
    assert web0["ports"] == ["tcp 127.0.0.1:18080 -> 80"] and web0["engine"] == 0
    (e,) = doc["engines"]
    assert [(d["role"], d["pid"], d["api"]) for d in e["daemons"]] == [
        ("dockerd", 600, "answers"),
        ("containerd", 500, None),
    ]
    assert e["counts"]["running"] == 5 and e["down"] == []
    schemas.validate(json.loads(encode(doc)), pages.SCHEMA)


def test_hostile_text_is_made_visible_and_cannot_be_markup():
    evil = "\x1b[31m<img src=x onerror=alert(1)>\u202e</script>"
    c = numbered(1, evil, image=evil)
    c.processes[0].cmdline = [evil]
    topo = Topology(engines=[engine(dockerd(), containerd(), containers=[c])])
    doc = pages.state(topo, 1, 0, {}, {})
    text = encode(doc).decode()
    assert "\x1b" not in text and "\u202e" not in text and "<" not in text
    assert json.loads(text)["containers"][0]["name"] == (
        "\\x1b[31m<img src=x onerror=alert(1)>\\u202e</script>"
    )


def recorded_run() -> tuple[Rec, Topology]:
    from tracer.model.trace import KnownContainer

    known = KnownContainer(CID, "web", 1005, 1001, {}, ())
    rec = docker_run(Rec(containers=[known]), at=10.0)
    # dockerd's version probes, the second with its argv gone before it could be read
    rec.fork(400, 600, 2000).exec(400.1, 2000, ("runc", "--version")).exit(401, 2000, 600)
    rec.fork(402, 600, 2001).exec(402.1, 2001, None, missing="gone").exit(402.5, 2001, 600)
    return rec, Topology(engines=[])


def test_a_burst_s_timeline_entry_tells_the_story_and_leaves_the_probes_out():
    rec, _ = recorded_run()
    trace = lifecycle.trace(rec.recording())
    before, after = diagram_host(), diagram_host()
    after.engines[0].containers.append(numbered(9, "web-9"))
    entry = pages.timeline(trace, compare(before, after), daemons(before, after), 1000.0)
    assert entry is not None
    schemas.validate_part(entry, pages.SCHEMA, "timeline")
    (story,) = entry["stories"]
    assert story["label"] == "web"
    assert story["what"] == ["shim start", "create", "start", "init exec"]
    assert story["init"] == "sleep 1000" and story["started_ms"] == pytest.approx(245.7)
    assert [c["verdict"] for c in entry["changes"]] == ["new"]
    pids = {e["pid"] for e in entry["events"]}
    assert 1000 in pids and not pids & {2000, 2001}
    assert entry["at"] == 1000 * 1000 + 10  # the first event, wall clock, ms
    assert pages.timeline(None, compare(before, before), [], 0.0) is None


def test_a_daemon_gone_and_back_and_what_is_missing_meanwhile():
    cd = containerd(socket=SOCK)
    full = Topology(engines=[engine(dockerd(600), cd)])
    down = Topology(engines=[engine(containerd(socket=SOCK))])
    back = Topology(engines=[engine(dockerd(700), containerd(socket=SOCK))])
    seen: dict[str, set[str]] = {}
    assert missing_daemons(full, seen) == {}
    assert [(d.role, d.pid, d.verdict) for d in daemons(full, down)] == [("dockerd", 600, "gone")]
    assert missing_daemons(down, seen) == {SOCK: ["dockerd"]}
    assert [(d.role, d.pid, d.verdict) for d in daemons(down, back)] == [("dockerd", 700, "new")]
    assert missing_daemons(back, seen) == {}


# -- the command ----------------------------------------------------------------------------------


def test_serve_s_help_imports_none_of_the_server():
    from tests.support.cli import modules_after

    mods = modules_after("serve", "--help")
    assert not {m for m in mods if m.startswith("tracer.output.web")}
    assert not {"http.server", "tracer.snapshot.recorder", "graphviz"} & mods
    assert not {m for m in modules_after("--help") if m.startswith("tracer.output.web")}


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["serve", "--bind", "example.org"], ["--bind example.org: give an IP address"]),
        (["serve", "--port", "70000"], ["--port 70000: give a port from 0 to 65535"]),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args, words):
    result = invoke(*args)
    assert result.exit_code == 2
    one_error_line(result.stderr, *words)


def test_not_root_is_one_line_and_exit_3(monkeypatch):
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    result = invoke("serve")
    assert result.exit_code == 3
    one_error_line(result.stderr, "serve (the kernel's process events", "needs root")
