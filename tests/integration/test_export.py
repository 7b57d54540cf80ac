"""`export` against the lab's real engine: the diagram holds what `show --json` sees."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.support.cli import run_cli
from tests.support.lab import daemon_of, lab_engine_json, ns_inodes, show_json, temporary
from tracer.model.show_json import from_json
from tracer.ops import lab, labconfig
from tracer.output import diagram

PATHS = lab.LabPaths()
LAB_HOST = f"unix://{PATHS.docker_sock}"
DEMOS = [d.name for d in labconfig.demos(0) if d.running]  # the lab's running demo containers


def svg_text(path: Path) -> str:
    """Every text of an SVG (which must parse as XML), joined by spaces."""
    root = ET.parse(path).getroot()
    texts = [el.text or "" for el in root.iter() if el.tag.endswith("}text")]
    return " ".join(texts).replace("\xa0", " ")  # dot writes a second space as &#160;


def pids(doc: dict) -> set[int]:
    engine = lab_engine_json(doc)
    out = {daemon_of(engine, "dockerd")["pid"], daemon_of(engine, "containerd")["pid"]}
    for c in engine["containers"]:
        out |= {p["pid"] for p in c["processes"]} | {p["pid"] for p in c["proxies"]}
        out |= {c["shim_pid"]} if c["shim_pid"] else set()
    return out


def test_live_svg_has_every_lab_container_and_pid(lab_engine, tmp_path):
    out = tmp_path / "live.svg"
    before = show_json("-H", LAB_HOST, *DEMOS)
    proc = run_cli("export", "-H", LAB_HOST, *DEMOS, "--svg", "-o", str(out), check=True)
    after = show_json("-H", LAB_HOST, *DEMOS)
    assert proc.stdout == f"{out}\n"
    text = svg_text(out)
    names = {c["name"] for c in lab_engine_json(before)["containers"]}
    assert names == set(DEMOS)
    for name in names:
        assert name in text
    # PIDs seen before and after the export were alive all along (the lab is shared with churn)
    stable = pids(before) & pids(after)
    assert stable and len(stable) >= len(pids(before)) - 2
    words = set(text.split())
    for pid in stable:
        assert str(pid) in words, pid


def test_live_namespace_view_shows_what_the_sidecar_shares(lab_engine, tmp_path):
    out = tmp_path / "ns.dot"
    run_cli("export", "-H", LAB_HOST, *DEMOS, "--ns", "--dot", "-o", str(out), check=True)
    dot = out.read_text()
    engine = lab_engine_json(show_json("-H", LAB_HOST, "lab-web"))
    (web,) = engine["containers"]
    truth = ns_inodes(web["init_pid"])  # read from /proc here, not from the tool
    for kind in ("net", "pid"):
        node = (
            f'ns_{kind}_{truth[kind]} [label="{kind} {truth[kind]}\\nshared: lab-sidecar, lab-web"'
        )
        assert node in dot
    host = ns_inodes(2)  # kthreadd: pid 1's links may be unreadable, even to root
    assert f'ns_user_{host["user"]} [label="user\\n{host["user"]}"' in dot


def test_saved_snapshot_renders_the_same_twice_and_round_trips(lab_engine, tmp_path):
    snap = tmp_path / "snap.json"
    snap.write_text(run_cli("show", "--json", "-H", LAB_HOST, check=True).stdout)
    dots = []
    for i in range(2):
        out = tmp_path / f"{i}.dot"
        # --full: the mode chosen here, not by how many containers the lab holds meanwhile
        run_cli("export", "--from", str(snap), "--full", "--dot", "-o", str(out), check=True)
        dots.append(out.read_text())
    assert dots[0] == dots[1]
    doc = json.loads(snap.read_text())
    topo = from_json(doc)
    assert topo.to_json() == doc  # the file is read back whole
    assert dots[0] == diagram.source(topo, compact=False)
    svg = tmp_path / "snap.svg"
    env = {"DOCKER_HOST": "unix:///nonexistent.sock"}  # as on a machine without the engine
    proc = run_cli("export", "--from", str(snap), *DEMOS, "-o", str(svg), env=env, check=True)
    assert proc.stdout == f"{svg}\n"
    text = svg_text(svg)
    for name in DEMOS:
        assert name in text


def test_hostile_container_text_is_inert_in_the_live_svg(client, tmp_path):
    payload = '<script>alert(1)</script> "q" ] } { \\N \\l &amp; \x1b[31mRED'
    with temporary(client, "lab-hostile-svg", ["sh", "-c", f"sleep 2147483647; : '{payload}'"]):
        out = tmp_path / "h.svg"
        run_cli("export", "-H", LAB_HOST, "lab-hostile-svg", "-o", str(out), check=True)
        raw = out.read_bytes()
        root = ET.fromstring(raw)
        assert not [el for el in root.iter() if el.tag.split("}")[-1] == "script"]
        assert b"<script" not in raw and b"\x1b" not in raw
        text = svg_text(out)
        for piece in ("<script>alert(1)</script>", '"q" ] } {', "\\N \\l &amp;", "\\x1b[31mRED"):
            assert piece in text, piece
