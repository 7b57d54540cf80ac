"""Finding containers the way docker does, and cutting a topology down to them."""

from __future__ import annotations

import pytest

from tests.support.hosts import SOCK
from tests.support.topologies import containerd, dockerd, engine, running, triples
from tracer.errors import DeniedError, ExitCode, UsageError
from tracer.model.topology import Container, Dockerd, Edge, Engine, Proxy, Topology
from tracer.views.selection import lookup, resolve, select

ID_WEB = "abc1230000" + "0" * 54
ID_DB = "abd4560000" + "1" * 54
ID_OLD = "ffe7890000" + "2" * 54
ID_ORPHAN = "0123450000" + "3" * 54


def containers() -> list[Container]:
    web = running(ID_WEB, "web", 700, [710, 711])
    web.proxies.append(Proxy(650, "tcp", "127.0.0.1", 8080, "172.17.0.2", 80))
    return [
        web,
        running(ID_DB, "db", 800, [810]),
        Container(id=ID_OLD, name="old-job", image="busybox", state="exited"),
    ]


def topology() -> Topology:
    cs = containers()
    edges = [Edge(600, 500, "socket", SOCK), Edge(600, 650, "parent")]
    for c in cs:
        if c.shim:
            edges.append(Edge(c.shim.pid, 500, "shim-address", SOCK))
            edges.append(Edge(1, c.shim.pid, "reparented", "pid 1"))
            edges += [Edge(p.ppid, p.pid, "parent") for p in c.processes]
    docker = engine(
        dockerd(600),
        containerd(500),
        containers=cs,
        edges=edges,
        notes=["engine note"],
        unmatched_proxies=[Proxy(651, "udp", "0.0.0.0", 53, "10.0.0.9", 53)],
    )
    orphan = running(ID_ORPHAN, None, 900, [910])
    return Topology(engines=[docker], orphans=[orphan], host={"hostname": "h"}, notes=["n"])


# -- resolve ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("web", ID_WEB),
        ("db", ID_DB),
        ("old-job", ID_OLD),
        (ID_WEB, ID_WEB),
        (ID_DB, ID_DB),
        ("abc", ID_WEB),
        ("abc1230000", ID_WEB),
        ("ABD4", ID_DB),  # ids are hex: the prefix is case-insensitive
        ("f", ID_OLD),
        (ID_WEB[:12], ID_WEB),
        ("710", ID_WEB),  # host PID of init
        ("711", ID_WEB),  # host PID of a child
        ("810", ID_DB),
    ],
)
def test_resolve(query: str, expected: str) -> None:
    assert resolve(containers(), query).id == expected


def test_resolve_prefers_a_name_to_an_id_prefix() -> None:
    cs = containers()
    cs[1].name = "abc"  # db is named like web's id prefix
    assert resolve(cs, "abc").id == ID_DB


def test_a_number_that_is_a_pid_and_another_ids_prefix_is_ambiguous() -> None:
    cs = containers()
    cs[0].id = "810" + cs[0].id[3:]  # web's id starts like db's init PID
    with pytest.raises(UsageError) as err:
        resolve(cs, "810")
    assert err.value.exit_code == ExitCode.USAGE
    assert err.value.message == (
        "'810' is ambiguous: PID 810 (of db), and the id prefix of web (810123000000)"
    )
    assert resolve(cs, "81").id == cs[0].id  # no such PID: the prefix


def test_a_pid_whose_container_has_that_id_prefix_is_that_container() -> None:
    cs = containers()
    cs[1].id = "810" + cs[1].id[3:]  # db's own id starts like its init PID
    assert resolve(cs, "810").id == cs[1].id


@pytest.mark.parametrize(("pid", "expected"), [("700", ID_WEB), ("650", ID_WEB), ("800", ID_DB)])
def test_a_shim_or_proxy_pid_finds_its_container(pid: str, expected: str) -> None:
    assert resolve(topology(), pid).id == expected


@pytest.mark.parametrize("pid", ["600", "500", "651"])
def test_a_daemon_pid_selects_its_engine(pid: str) -> None:
    found = lookup(topology(), pid)
    assert isinstance(found, Engine) and found.title == "/run/docker.sock"
    shown = select(topology(), [pid], include_stopped=False)
    (engine,) = shown.engines
    assert [c.id for c in engine.containers] == [ID_WEB, ID_DB]  # the engine, running only
    assert shown.orphans == []
    assert [p.pid for p in engine.unmatched_proxies] == [651]


def test_a_daemon_pid_is_not_a_container() -> None:
    with pytest.raises(UsageError) as err:
        resolve(topology(), "600")
    assert err.value.line() == (
        "PID 600 is a daemon (dockerd, containerd) of the engine at /run/docker.sock, not a "
        "process of a container (`dtrace-tree show 600` shows that engine)"
    )


def test_names_the_api_refused_are_not_reported_as_no_such_container() -> None:
    topo = topology()
    d = topo.engines[0].daemon(Dockerd)
    assert d is not None
    d.reachable, d.api_error = False, "permission denied"
    for c in topo.containers():
        c.name = None
    with pytest.raises(DeniedError) as err:
        resolve(topo, "web")
    assert err.value.exit_code == ExitCode.PERMISSION
    assert "did not give them (permission denied)" in err.value.message
    d.api_error = "connection refused"
    with pytest.raises(UsageError) as refused:
        resolve(topo, "web")
    assert refused.value.exit_code == ExitCode.USAGE


def test_ambiguous_prefix_lists_both() -> None:
    with pytest.raises(UsageError) as err:
        resolve(containers(), "ab")
    assert (
        err.value.message == "'ab' is ambiguous: it matches db (abd456000011), web (abc123000000)"
    )
    assert err.value.exit_code == ExitCode.USAGE


def test_ambiguous_prefix_of_unnamed_containers_uses_short_ids() -> None:
    cs = containers()
    cs[0].name = cs[1].name = None
    with pytest.raises(UsageError, match=r"abc123000000 \(abc123000000\)"):
        resolve(cs, "ab")


@pytest.mark.parametrize(
    ("query", "hint"),
    [("webb", "web"), ("old_job", "old-job"), ("olld-job", "old-job")],
)
def test_unknown_name_suggests_close_names(query: str, hint: str) -> None:
    with pytest.raises(UsageError) as err:
        resolve(containers(), query)
    assert err.value.message == f"no such container: '{query}' (did you mean {hint}?)"


def test_unknown_name_without_anything_close() -> None:
    with pytest.raises(UsageError) as err:
        resolve(containers(), "zzzzzzzz")
    assert err.value.message == "no such container: 'zzzzzzzz'"


def test_unknown_pid() -> None:
    with pytest.raises(UsageError) as err:
        resolve(containers(), "99999")
    assert err.value.message == (
        "PID 99999 is not a process of any container or engine on this host"
    )


def test_empty_query_matches_nothing() -> None:
    with pytest.raises(UsageError, match="no such container: ''"):
        resolve(containers(), "")


def test_resolve_in_no_containers() -> None:
    with pytest.raises(UsageError, match="no such container: 'web'"):
        resolve([], "web")


@pytest.mark.parametrize("query", ["\u00b2", "1\u00b9", "9" * 5000])
def test_odd_digits_are_a_usage_error(query: str) -> None:
    with pytest.raises(UsageError):
        resolve(containers(), query)


# -- select ----------------------------------------------------------------------------------


def test_select_running_only_drops_exited_containers() -> None:
    topo = topology()
    out = select(topo, [], include_stopped=False)
    engine = out.engines[0]
    assert [c.name for c in engine.containers] == ["web", "db"]
    assert [c.id for c in out.orphans] == [ID_ORPHAN]
    assert engine.unmatched_proxies == topo.engines[0].unmatched_proxies
    assert engine.edges == topo.engines[0].edges  # the exited container had no edges
    assert out.notes == ["n"] and engine.notes == ["engine note"]
    assert out.host == {"hostname": "h"}
    assert engine.runtime == "docker" and engine.daemons == topo.engines[0].daemons
    # the input is left alone
    assert len(topo.engines[0].containers) == 3


def test_select_all_keeps_exited_containers() -> None:
    out = select(topology(), [], include_stopped=True)
    assert [c.name for c in out.engines[0].containers] == ["web", "db", "old-job"]


def test_select_paused_or_restarting_counts_as_running() -> None:
    topo = topology()
    old = topo.engines[0].containers[2]
    old.state = "paused"
    assert [c.id for c in select(topo, [], include_stopped=False).engines[0].containers] == [
        ID_WEB,
        ID_DB,
        ID_OLD,
    ]


def test_select_by_query_keeps_only_those_and_their_edges() -> None:
    topo = topology()
    out = select(topo, ["db"], include_stopped=False)
    assert len(out.engines) == 1 and out.orphans == []
    engine = out.engines[0]
    assert [c.id for c in engine.containers] == [ID_DB]
    assert engine.unmatched_proxies == []
    edges = set(triples(engine))
    assert edges == {
        (600, 500, "socket"),
        (800, 500, "shim-address"),
        (1, 800, "reparented"),
        (800, 810, "parent"),
    }


def test_select_by_query_includes_an_exited_container_asked_for() -> None:
    out = select(topology(), ["old-job", "web"], include_stopped=False)
    assert [c.id for c in out.engines[0].containers] == [ID_WEB, ID_OLD]
    kinds = {(e.src, e.dst) for e in out.engines[0].edges}
    assert (600, 650) in kinds  # web's proxy stays
    assert (1, 800) not in kinds and (800, 810) not in kinds


def test_select_an_orphan_drops_every_engine() -> None:
    out = select(topology(), ["910"], include_stopped=False)
    assert out.engines == [] and [c.id for c in out.orphans] == [ID_ORPHAN]


def test_select_unknown_raises() -> None:
    with pytest.raises(UsageError):
        select(topology(), ["web", "nope"], include_stopped=True)
