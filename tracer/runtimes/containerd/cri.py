"""Kubernetes pods on containerd (CRI): one shim per pod, its containers told apart by their
bundles.

containerd's CRI plugin (containerd namespace `k8s.io` by default) runs each pod's sandbox, the
pause container that holds the pod's namespaces, under a shim whose `-id` is the sandbox's id;
the runc v2 shim groups the pod's other containers by their OCI annotation
`io.kubernetes.cri.sandbox-id`, so they are that same shim's children. Each container has a
bundle beside the sandbox's (`<state>/io.containerd.runtime.v2.task/<ns>/<id>/`): its
`init.pid` names its init, its `config.json` carries `io.kubernetes.cri.container-type`
(sandbox|container), `…sandbox-id`, `…sandbox-name`, `…sandbox-namespace`, `…sandbox-uid`,
`…container-name` and `…image-name` (containerd pkg/cri/annotations). kubelet, when it runs,
is the client (`--container-runtime-endpoint`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from tracer.kernel.root import HostRoot, normalize
from tracer.model.topology import ApiView, Container, Edge, Engine, Kubelet, Pod
from tracer.runtimes.base import Found, Look, RuntimeBase, shared_by_default
from tracer.runtimes.containerd import shim as sh
from tracer.runtimes.flags import flag_value
from tracer.snapshot.host import Host, Proc
from tracer.snapshot.walk import Reader
from tracer.untrusted import number

PREFIX = "io.kubernetes.cri."
TYPE = PREFIX + "container-type"
SANDBOX_ID = PREFIX + "sandbox-id"
SANDBOX_NAME = PREFIX + "sandbox-name"
SANDBOX_NAMESPACE = PREFIX + "sandbox-namespace"
SANDBOX_UID = PREFIX + "sandbox-uid"
CONTAINER_NAME = PREFIX + "container-name"
IMAGE_NAME = PREFIX + "image-name"
# kubelet's default since Kubernetes 1.27 (before, dockershim's)
KUBELET_ENDPOINT = "unix:///run/containerd/containerd.sock"


def is_pod_shim(host: Host, shim: Proc) -> bool:
    return sh.oci_annotations(host, host.cwd.get(shim.pid)).get(TYPE) == "sandbox"


def members(host: Host, shim: Proc, sandbox_id: str) -> list[tuple[str, str, dict[str, str]]]:
    """The pod's containers as (id, bundle, annotations): the sandbox first, then the bundles
    beside it that name this sandbox, in the order of their ids."""
    bundle = host.cwd.get(shim.pid) or ""
    out = [(sandbox_id, bundle, sh.oci_annotations(host, bundle))]
    parent = os.path.dirname(bundle)
    for name in host.dirs.get(parent, ()):
        if name == os.path.basename(bundle):
            continue
        ann = sh.oci_annotations(host, f"{parent}/{name}")
        if ann.get(SANDBOX_ID) == sandbox_id and ann.get(TYPE) == "container":
            out.append((name, f"{parent}/{name}", ann))
    return out


def pod_containers(host: Host, proc: Proc, shim: sh.ShimArgs) -> tuple[list[Container], list[str]]:
    """The containers one pod's shim holds, and notes on what could not be placed."""
    kids = [k for k in host.children(proc.pid) if not sh.is_runtime(k, proc)]
    by_pid = {k.pid: k for k in kids}
    monitor = sh.monitor(host, proc, shim)
    out: list[Container] = []
    inits: set[int] = set()
    for cid, bundle, ann in members(host, proc, shim.id):
        init = by_pid.get(number(host.files.get(f"{bundle}/init.pid", "").strip()) or -1)
        sandbox = ann.get(TYPE) == "sandbox"
        if init is not None:
            inits.add(init.pid)
        out.append(
            Container(
                id=cid,
                name=ann.get(SANDBOX_NAME) if sandbox else ann.get(CONTAINER_NAME),
                image=None if sandbox else ann.get(IMAGE_NAME),
                state="running" if init else "not running",
                init_pid=init.pid if init else None,
                shim_pid=proc.pid,
                monitor=monitor,
                processes=sh.init_tree(host, init),
                namespaces=dict(init.namespaces) if init else {},
                pod=Pod(
                    id=shim.id,
                    name=ann.get(SANDBOX_NAME),
                    namespace=ann.get(SANDBOX_NAMESPACE),
                    uid=ann.get(SANDBOX_UID),
                    sandbox=sandbox,
                ),
            )
        )
    notes = []
    for k in kids:  # `crictl exec`: a child of the shim in one container's namespaces
        if k.pid in inits:
            continue
        mnt = k.namespaces.get("mnt")
        home = next((c for c in out if mnt and c.namespaces.get("mnt") == mnt), None)
        if home is None:
            pod = out[0].name or shim.id[:12]
            notes.append(f"process {k.pid} under pod {pod}'s shim is in no container's mounts")
        else:
            home.processes += sh.exec_tree(host, k)
    return out, notes


def kubelet_of(host: Host, socket: str) -> Proc | None:
    """The running kubelet whose --container-runtime-endpoint is this containerd's socket."""
    from tracer.runtimes.flags import unix_path

    for k in host.running("kubelet"):
        endpoint = flag_value(k.cmdline, "--container-runtime-endpoint") or KUBELET_ENDPOINT
        path = unix_path(endpoint) if "://" in endpoint else endpoint
        if path and normalize(path) == socket:
            return k
    return None


class CriRuntime(RuntimeBase):
    """Reads nothing of kubelet's own (its sockets, read by the walk, prove its link to
    containerd) and draws nothing (containerd's runtime draws every shim's descendants);
    no storage root: snapshots are shown as the container's mount says (runtimes/storage.py)."""

    name = "cri"
    daemons = frozenset({"kubelet"})
    look = Look(
        chain=("kubelet", "containerd"),  # kubelet only when it runs: nothing said when not
        missing={"containerd": "containerd not found"},
        tag="CRI",
        monitor_parent="containerd",
        edges={"socket": "kubelet -> containerd (CRI over gRPC)", **sh.SHIM_EDGES},
        cli=frozenset({"crictl"}),
    )
    # What CRI pods share with the host by default (host-network pods share net and uts).
    usually_shared = shared_by_default(
        "CRI",
        user="CRI pods share the host's user namespace unless the pod asks for one",
        cgroup="containerd's CRI plugin leaves the cgroup namespace to the runtime default",
    )

    def read_state(self, host: Host, read: Reader) -> None:
        """Each non-Docker shim's OCI spec; for a pod's shim, the bundles beside it."""
        for proc, shim in sh.shims(host):
            bundle = read.cwd(proc.pid)
            if not bundle or sh.docker_namespace(shim.namespace):
                continue
            sh.read_config(read, bundle)
            if not is_pod_shim(host, proc):
                continue
            parent = os.path.dirname(bundle)
            for name in read.listdir(parent) or ():
                if f"{parent}/{name}" == bundle:
                    continue
                sh.read_config(read, f"{parent}/{name}")
                if sh.oci_annotations(host, f"{parent}/{name}").get(SANDBOX_ID) == shim.id:
                    read.file(f"{parent}/{name}/init.pid")

    def endpoint(self, host: Host, daemon: Proc) -> str | None:
        return None  # CRI speaks gRPC; the bundles say what dtrace-tree needs

    def ask(self, endpoint: str) -> ApiView:
        return ApiView(error="not asked")

    def build(self, host: Host, answers: Mapping[int, ApiView], found: Found) -> None:
        """An engine per containerd and namespace whose shims hold pods."""
        engines: dict[tuple[int, str | None], Engine] = {}
        for proc, shim in sh.shims(host):
            if proc.pid in found.claimed or not is_pod_shim(host, proc):
                continue
            cd = sh.serving(host, shim.address)
            if cd is None:
                continue  # its containerd is not running: an orphan (engine.py)
            engine = engines.get((cd.pid, shim.namespace))
            if engine is None:
                engine = engines[(cd.pid, shim.namespace)] = self._engine(host, cd, shim.namespace)
            made, notes = pod_containers(host, proc, shim)
            engine.containers += made
            engine.notes += notes
            sh.monitor_edges(engine, proc, made[0].monitor)
            for c in made:
                engine.edges += [Edge(p.ppid, p.pid, "parent", "ppid") for p in c.processes]
            found.claimed.add(proc.pid)
        for engine in engines.values():
            engine.containers.sort(key=_pod_order)
            found.engines.append(engine)

    def _engine(self, host: Host, cd: Proc, namespace: str | None) -> Engine:
        daemon = sh.daemon(host, cd)
        engine = Engine(runtime=self.name, daemons=[daemon], namespace=namespace)
        kubelet = kubelet_of(host, daemon.socket)
        if kubelet is None:
            engine.notes.append(
                "no kubelet runs for this containerd: pods made by another CRI client"
            )
            return engine
        connected = sh.connected(host, kubelet.pid, cd.pid)
        endpoint = flag_value(kubelet.cmdline, "--container-runtime-endpoint")
        engine.daemons.insert(
            0,
            Kubelet(pid=kubelet.pid, cmdline=list(kubelet.cmdline), endpoint=endpoint,
                    connected=connected),
        )  # fmt: skip
        if connected:
            how = "--container-runtime-endpoint" if endpoint else "kubelet's default endpoint"
            engine.edges.append(
                Edge(kubelet.pid, cd.pid, "socket", f"{daemon.socket} ({how}, connected)")
            )
        return engine

    def explain(
        self, engine: Engine, container: Container, names: Mapping[str, str], root: HostRoot
    ) -> dict[str, str]:
        """A pod's containers join its sandbox's namespaces (the sandbox named by names)."""
        if container.pod is None or container.pod.sandbox:
            return {}
        sandbox = names.get(container.pod.id, container.pod.id[:12])
        out = {}
        for kind in ("net", "ipc", "uts", "pid"):
            mine = container.namespaces.get(kind)
            theirs = next((c.namespaces.get(kind) for c in engine.containers
                           if c.id == container.pod.id), None)  # fmt: skip
            if mine and mine == theirs:
                out[kind] = f"pod {container.pod.name or '?'}: joins its sandbox {sandbox}"
        return out


def _pod_order(c: Container) -> tuple[str, str, bool, str, str]:
    """Pods by namespace and name; in a pod, its sandbox first, then its containers by name."""
    pod = c.pod
    assert pod is not None
    return (pod.namespace or "", pod.name or pod.id, not pod.sandbox, c.name or "", c.id)


RUNTIME = CriRuntime()
