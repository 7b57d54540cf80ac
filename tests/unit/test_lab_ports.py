"""`lab up` on a busy host: another engine took the port the lab published while its container
was stopped. The race cannot be staged on a shared lab without breaking it for everyone else,
so the engine's answers are played back here, as Docker 20.10 gives them."""

from __future__ import annotations

from typing import Any

import pytest

from tracer.errors import EngineError
from tracer.ops import lab, labconfig

TAKEN = (
    '500 Server Error: Internal Server Error ("driver failed programming external connectivity '
    "on endpoint lab-web (8d13): Error starting userland proxy: listen tcp4 127.0.0.1:18080: "
    'bind: address already in use")'
)


class Engine:
    """Every demo exists and runs but lab-web, stopped, whose port is taken."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.gone: set[str] = set()

    def inspect(self, name: str) -> dict[str, Any] | None:
        if name in self.gone:
            return None
        return {"State": {"Running": name != "lab-web", "Pid": 0}}

    def start(self, name: str) -> None:
        self.calls.append(("start", name))
        try:
            raise RuntimeError(TAKEN)
        except RuntimeError as cause:  # the API error, cut short in the message as the SDK's is
            raise EngineError(f"Docker API: {TAKEN[:120]}") from cause

    def remove(self, name: str) -> None:
        self.calls.append(("remove", name))
        self.gone.add(name)

    def run(self, image: str, command: list[str], name: str, **options: Any) -> str:
        self.calls.append(("run", name, str(options.get("ports", ""))))
        self.gone.discard(name)
        return name

    def exec_detached(self, name: str, command: list[str]) -> str:
        return "exec"


def test_a_demo_whose_port_was_taken_is_made_again_on_a_free_port_with_its_sharers(
    monkeypatch,
) -> None:
    monkeypatch.setattr(lab.labhost, "free_port", lambda: 43825)
    monkeypatch.setattr(lab, "_exec_alive", lambda api, name: True)
    state: dict[str, Any] = {"web_port": 18080}
    engine = Engine()
    lab._ensure_demos(engine, labconfig.LabPaths(), state, lambda text: None)
    assert state["web_port"] == 43825
    assert engine.calls == [
        ("start", "lab-web"),
        ("remove", "lab-web"),
        ("remove", "lab-sidecar"),  # in lab-web's network and PID namespaces: made again after
        ("run", "lab-web", "{'80/tcp': ('127.0.0.1', 43825)}"),
        ("run", "lab-sidecar", ""),
    ]


def test_any_other_failure_to_start_is_told() -> None:
    class Broken(Engine):
        def start(self, name: str) -> None:
            raise EngineError("Docker API: 500 Server Error: no such image")

    with pytest.raises(EngineError, match="no such image"):
        lab._ensure_demos(Broken(), labconfig.LabPaths(), {"web_port": 18080}, lambda t: None)
