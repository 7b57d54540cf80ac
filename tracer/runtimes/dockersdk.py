"""The docker SDK, for what the lab creates: the only module that imports it.

Reading never comes here: tracer/runtimes/dockerapi.py makes the read-only GET requests with
the standard library. The lab imports images, creates, starts, waits for and removes
containers, and starts an exec: that is what the SDK is for.
"""

from __future__ import annotations

import io
from typing import Any

import docker
import docker.errors
import requests.exceptions

from tracer.errors import EngineError

TIMEOUT = 60


class Api:
    """A connection to one engine's API socket, for the lab's changes."""

    def __init__(self, base_url: str, timeout: int = TIMEOUT) -> None:
        self.base_url = base_url
        try:
            # A fixed API version saves the negotiation request; 1.41 (Docker 20.10) is served
            # by every daemon from 20.10 to today.
            self._client = docker.DockerClient(base_url=base_url, timeout=timeout, version="1.41")
        except docker.errors.DockerException as exc:
            raise EngineError(f"cannot reach the Docker API at {base_url}: {_reason(exc)}") from exc

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise EngineError(f"Docker API at {self.base_url}: {_reason(exc)}") from exc

    # -- writes (lab only) -----------------------------------------------------------
    def import_image(self, tar_bytes: bytes, repository: str, tag: str) -> None:
        self._call(
            self._client.api.import_image_from_data,
            tar_bytes,
            repository=repository,
            tag=tag,
        )

    def has_image(self, ref: str) -> bool:
        try:
            self._client.api.inspect_image(ref)
            return True
        except docker.errors.ImageNotFound:
            return False
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise EngineError(f"Docker API at {self.base_url}: {_reason(exc)}") from exc

    def inspect(self, ref: str) -> dict[str, Any] | None:
        try:
            return dict(self._client.api.inspect_container(ref))
        except docker.errors.NotFound:
            return None
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise EngineError(f"Docker API at {self.base_url}: {_reason(exc)}") from exc

    def run(self, image: str, command: list[str], name: str, **kwargs: Any) -> str:
        container = self._call(
            self._client.containers.run, image, command, name=name, detach=True, **kwargs
        )
        return str(container.id)

    def start(self, ref: str) -> None:
        self._call(self._client.api.start, ref)

    def wait(self, ref: str, timeout: int = 30) -> None:
        self._call(self._client.api.wait, ref, timeout=timeout)

    def exec_detached(self, ref: str, command: list[str]) -> str:
        exec_id = self._call(self._client.api.exec_create, ref, command)["Id"]
        self._call(self._client.api.exec_start, exec_id, detach=True)
        return str(exec_id)

    def remove(self, ref: str) -> None:
        try:
            self._client.api.remove_container(ref, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise EngineError(f"Docker API at {self.base_url}: {_reason(exc)}") from exc


def tar_image(files: dict[str, bytes | str], modes: dict[str, int] | None = None) -> bytes:
    """Build a rootfs tar in memory: bytes are files, str values are symlink targets."""
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs: set[str] = set()
        for path in sorted(files):
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d and d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tar.addfile(info)
            value = files[path]
            info = tarfile.TarInfo(path)
            if isinstance(value, str):
                info.type = tarfile.SYMTYPE
                info.linkname = value
                tar.addfile(info)
            else:
                info.size = len(value)
                info.mode = (modes or {}).get(path, 0o755)
                tar.addfile(info, io.BytesIO(value))
    return buf.getvalue()


def _reason(exc: BaseException) -> str:
    """The last, most specific line of a docker/requests error."""
    text = str(exc).strip() or type(exc).__name__
    for marker in ("Permission denied", "No such file or directory", "Connection refused"):
        if marker in text:
            return marker.lower()
    return text.splitlines()[-1][:200]
