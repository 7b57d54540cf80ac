"""A real headless Chromium, driven through chromedriver's WebDriver protocol."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.support.waiting import wait_for


class Browser:
    """Headless Chromium driven through chromedriver's WebDriver protocol (W3C, JSON over
    HTTP: the standard library is enough). A fresh profile, no network but what it is sent to,
    and the flags a root user in a container needs."""

    FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             "--disable-dev-shm-usage")  # fmt: skip

    def __init__(self, profile: Path, width: int = 1280, height: int = 800) -> None:
        import shutil
        import socket

        driver, chromium = shutil.which("chromedriver"), shutil.which("chromium")
        if not driver or not chromium:
            raise FileNotFoundError("chromium and chromium-driver (Debian packages) are needed")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.driver = subprocess.Popen([driver, f"--port={port}"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)  # fmt: skip
        self.base = f"http://127.0.0.1:{port}"
        wait_for(lambda: self._call("GET", "/status"), 30, "chromedriver to answer",
                 every=0.1, ignoring=(OSError,))  # fmt: skip
        args = [*self.FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]
        caps = {"browserName": "chrome", "goog:chromeOptions": {"binary": chromium, "args": args}}
        self.session = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}})[
            "sessionId"
        ]
        self.viewport(width, height)

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=120) as answer:
            return json.loads(answer.read())["value"]

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return self._call(method, f"/session/{self.session}{path}", body)

    def viewport(self, width: int, height: int, mobile: bool = False) -> None:
        """The page's viewport exactly (the window also has room for what headless keeps)."""
        params = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}
        self.call("POST", "/goog/cdp/execute",
                  {"cmd": "Emulation.setDeviceMetricsOverride", "params": params})  # fmt: skip

    def go(self, url: str) -> None:
        self.call("POST", "/url", {"url": url})

    def js(self, script: str, *args: Any) -> Any:
        return self.call("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait(self, script: str, *args: Any, timeout: float = 30, what: str = "") -> Any:
        """Poll a script until it returns something true; its value."""
        return wait_for(
            lambda: self.js(script, *args), timeout, f"the page to show {what or script}"
        )

    def painted(self) -> None:
        """Return once the page has painted what it holds now (two animation frames)."""
        script = ("const done = arguments[arguments.length - 1];"
                  "requestAnimationFrame(() => requestAnimationFrame(() => done(1)));")  # fmt: skip
        self.call("POST", "/execute/async", {"script": script, "args": []})

    def click(self, css: str) -> None:
        """A real click (pointer events) on the first element css selects."""
        found = self.call("POST", "/element", {"using": "css selector", "value": css})
        self.call("POST", f"/element/{next(iter(found.values()))}/click", {})

    def screenshot(self, path: Path) -> Path:
        import base64

        path.write_bytes(base64.b64decode(self.call("GET", "/screenshot")))
        return path

    def close(self) -> None:
        import contextlib

        with contextlib.suppress(Exception):
            self.call("DELETE", "")
        self.driver.terminate()
        try:
            self.driver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.driver.kill()
