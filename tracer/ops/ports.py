"""Probing published ports while a daemon restarts: how long each refused connections."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

from tracer.model.topology import Proxy
from tracer.ops import daemon

INTERVAL = 0.02  # seconds between two rounds of connects
_WILDCARD = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}  # reached on loopback


@dataclass
class PortProbe:
    """Connects to each published TCP port every 20 ms from start() to stop()."""

    proxies: list[Proxy]
    refused_ms: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        # Each published TCP port: its name in the report -> where to connect (a wildcard
        # host IP is reached on loopback).
        self.targets = {
            f"{p.proto} {p.host_address}": (
                _WILDCARD.get(p.host_ip, p.host_ip),
                p.host_port,
            )
            for p in self.proxies
            if p.proto == "tcp"
        }

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    def _run(self) -> None:
        down_since: dict[str, float | None] = dict.fromkeys(self.targets)
        self.refused_ms.update(dict.fromkeys(self.targets, 0.0))
        while not self._stop.is_set():
            for k, (host, port) in self.targets.items():
                ok = connects(host, port)
                now = time.monotonic()
                since = down_since[k]
                if not ok and since is None:
                    down_since[k] = now
                elif ok and since is not None:
                    self.refused_ms[k] += (now - since) * 1000
                    down_since[k] = None
            self._stop.wait(INTERVAL)
        for k, since in down_since.items():
            if since is not None:
                self.refused_ms[k] += (time.monotonic() - since) * 1000

    def wait_open(self, timeout: float) -> bool:
        """Until every probed port accepts connections again (docker-proxy respawned)."""
        targets = self.targets.values()
        return daemon.wait_until(
            lambda: all(connects(host, port) for host, port in targets), timeout, interval=0.05
        )


def connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False
