"""A minimal CRI client for the engine tests: RunPodSandbox, CreateContainer, StartContainer,
StopPodSandbox, RemovePodSandbox over a containerd's gRPC socket (grpcio, a dev dependency).

Messages are encoded by hand with the field numbers of k8s.io/cri-api runtime/v1 api.proto:
the few the tests send are strings, maps, enums and nested messages, and the answers read
are one string each; no generated code or protoc is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SERVICE = "/runtime.v1.RuntimeService/"
NODE = 2  # NamespaceMode NODE: the host's namespace (host network: no CNI needed)
POD = 0


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num: int, value: Any) -> bytes:
    """One field: bytes/str/nested (wire type 2), int/bool (wire type 0)."""
    if isinstance(value, bool | int):
        return _varint(num << 3) + _varint(int(value))
    data = value.encode() if isinstance(value, str) else value
    return _varint(num << 3 | 2) + _varint(len(data)) + data


def msg(*fields: tuple[int, Any]) -> bytes:
    """A message from (field number, value) pairs; None and empty values are left out."""
    out = b""
    for num, value in fields:
        if value is None or value == "" or value == b"":
            continue
        if isinstance(value, list):
            out += b"".join(_field(num, v) for v in value)
        elif isinstance(value, Mapping):  # map<string, string>: repeated entries (1: key, 2: value)
            out += b"".join(_field(num, msg((1, k), (2, v))) for k, v in value.items())
        else:
            out += _field(num, value)
    return out


def first_string(data: bytes) -> str:
    """Field 1 of a response whose field 1 is a string (pod_sandbox_id, container_id)."""
    i, out = 0, ""
    while i < len(data):
        key, i = _read_varint(data, i)
        wire = key & 7
        if wire == 0:
            _, i = _read_varint(data, i)
        elif wire == 2:
            n, i = _read_varint(data, i)
            if key >> 3 == 1:
                out = data[i : i + n].decode()
            i += n
        else:
            raise ValueError(f"unexpected wire type {wire}")
    return out


def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def sandbox_config(name: str, namespace: str, uid: str, log_dir: str) -> bytes:
    """PodSandboxConfig: metadata, hostname, log directory, labels, Linux host namespaces for
    the network (NODE: no CNI), the pod's own pid and ipc."""
    ns = msg((1, NODE), (2, POD), (3, POD))
    linux = msg((2, msg((1, ns))))
    return msg(
        (1, msg((1, name), (2, uid), (3, namespace), (4, 0))),
        (3, log_dir),
        (6, {"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": namespace}),
        (8, linux),
    )


class Cri:
    """The CRI RuntimeService of a containerd, at a unix socket."""

    def __init__(self, socket: str, timeout: float = 60) -> None:
        import grpc

        self._channel = grpc.insecure_channel(f"unix://{socket}")
        self.timeout = timeout

    def call(self, method: str, request: bytes) -> bytes:
        rpc = self._channel.unary_unary(
            SERVICE + method, request_serializer=None, response_deserializer=None
        )
        return bytes(rpc(request, timeout=self.timeout))

    def run_pod(self, config: bytes) -> str:
        return first_string(self.call("RunPodSandbox", msg((1, config))))

    def create(self, pod: str, config: bytes, name: str, image: str, argv: list[str]) -> str:
        container = msg(
            (1, msg((1, name))),
            (2, msg((1, image))),
            (3, argv[:1]),
            (4, argv[1:]),
            (11, f"{name}.log"),
        )
        return first_string(
            self.call("CreateContainer", msg((1, pod), (2, container), (3, config)))
        )

    def start(self, container: str) -> None:
        self.call("StartContainer", msg((1, container)))

    def stop_pod(self, pod: str) -> None:
        self.call("StopPodSandbox", msg((1, pod)))

    def remove_pod(self, pod: str) -> None:
        self.call("RemovePodSandbox", msg((1, pod)))

    def close(self) -> None:
        self._channel.close()
