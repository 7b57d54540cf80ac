"""What ships for running dtrace-tree in a container: the DaemonSet validates against the
Kubernetes schema, offline (kubernetes-validate carries it), and grants what the tool needs and
nothing more; the Dockerfile installs the package as a wheel would."""

from __future__ import annotations

import kubernetes_validate
import pytest
import yaml

from tests.support.cli import ROOT

MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
CAPABILITIES = {"SYS_PTRACE", "DAC_READ_SEARCH", "NET_ADMIN"}  # docs/deploy.md


def documents() -> list[dict]:
    return [d for path in MANIFESTS for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("doc", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_each_manifest_validates_strictly(doc: dict) -> None:
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_the_daemonset_runs_everywhere_with_the_hosts_view_and_least_privilege() -> None:
    (ds,) = [d for d in documents() if d["kind"] == "DaemonSet"]
    pod = ds["spec"]["template"]["spec"]
    assert pod["hostPID"] is True and pod["hostNetwork"] is True
    assert pod["automountServiceAccountToken"] is False
    assert {"operator": "Exists"} in pod["tolerations"]
    (box,) = pod["containers"]
    sec = box["securityContext"]
    assert sec["privileged"] is False and sec["allowPrivilegeEscalation"] is False
    assert sec["readOnlyRootFilesystem"] is True
    assert sec["capabilities"]["drop"] == ["ALL"]
    assert set(sec["capabilities"]["add"]) == CAPABILITIES
    assert box["resources"]["requests"] and box["resources"]["limits"]
    (host,) = [m for m in box["volumeMounts"] if m["mountPath"] == "/host"]
    assert host["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == host["name"]]
    assert volume["hostPath"]["path"] == "/"
    assert {"name": "DTRACE_HOST_ROOT", "value": "/host"} in box["env"]


def test_the_dockerfile_installs_the_package_not_a_checkout() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "pip install --no-cache-dir /src" in text and " -e " not in text
    assert 'ENTRYPOINT ["dtrace-tree"]' in text and "graphviz" in text
    assert "ENV DTRACE_HOST_ROOT=/host" in text


def test_the_image_and_the_daemonset_name_the_same_capabilities() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    assert {c for c in CAPABILITIES if f"--cap-add {c}" in text} == CAPABILITIES
    assert (ROOT / "docs" / "deploy.md").read_text().count("--cap-add SYS_PTRACE") >= 1
