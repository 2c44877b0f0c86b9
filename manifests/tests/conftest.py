"""Shared fixtures: the rendered manifests, their workloads, and the schemas.

    bash manifests/tests/run.sh        # creates the venv, runs every check

Everything here works offline: `kubectl kustomize` renders (kubectl bundles
kustomize), kubernetes-validate ships the Kubernetes API schemas, and the CRD
schemas are vendored under crd-schemas/ (see its README).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
BASE = MANIFESTS / "base"
OVERLAY = MANIFESTS / "overlays" / "k3s"
LAN_OVERLAY = MANIFESTS / "overlays" / "k3s-lan"
CRD_SCHEMAS = Path(__file__).resolve().parent / "crd-schemas"

# The Kubernetes version the manifests target: k3s v1.32. kubernetes-validate
# 1.37.0 bundles schemas for 1.25 to 1.37.
KUBERNETES_VERSION = "1.32.0"

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "CronJob")

# Custom resources and the vendored schema each is checked against.
CRD_SCHEMA_FILES = {
    ("traefik.io/v1alpha1", "IngressRoute"): "traefik.io_ingressroute_v1alpha1.json",
    ("traefik.io/v1alpha1", "Middleware"): "traefik.io_middleware_v1alpha1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_servicemonitor_v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_prometheusrule_v1.json",
    ("cert-manager.io/v1", "Certificate"): "cert-manager.io_certificate_v1.json",
}


def render(directory: Path) -> list[dict]:
    """`kubectl kustomize DIRECTORY`, parsed. Fails the test (never skips) when
    kubectl is missing or the kustomization does not build."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail(
            "kubectl is not on PATH: it renders the kustomizations (kubectl kustomize), "
            "so these checks cannot run without it. Install kubectl 1.32 or later.",
            pytrace=False,
        )
    done = subprocess.run(
        [kubectl, "kustomize", str(directory.relative_to(REPO))],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.fail(
            f"kubectl kustomize {directory.relative_to(REPO)} failed:\n{done.stderr}",
            pytrace=False,
        )
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="session")
def overlay() -> list[dict]:
    """The k3s overlay as operators apply it."""
    return render(OVERLAY)


@pytest.fixture(scope="session")
def base() -> list[dict]:
    return render(BASE)


@pytest.fixture(scope="session")
def lan_overlay() -> list[dict]:
    """The k3s overlay with the LAN component (components/lan)."""
    return render(LAN_OVERLAY)


@pytest.fixture(scope="session", params=["base", "overlays/k3s", "overlays/k3s-longhorn", "overlays/k3s-lan"])
def rendered(request) -> tuple[str, list[dict]]:
    """Every render (the base, the k3s overlay, the node-affinity example, the LAN
    route), for checks that hold for each."""
    return request.param, render(MANIFESTS / request.param)


def name_of(obj: dict) -> str:
    """How messages name an object: Kind namespace/name."""
    meta = obj.get("metadata", {})
    return f"{obj.get('kind')} {meta.get('namespace', '-')}/{meta.get('name')}"


def find(objs: list[dict], kind: str, name: str) -> dict:
    for obj in objs:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"no {kind} named {name} in the rendered manifests")


def find_prefixed(objs: list[dict], kind: str, prefix: str) -> dict:
    """An object whose name is PREFIX or PREFIX-<kustomize hash>."""
    found = [
        obj
        for obj in objs
        if obj["kind"] == kind
        and (obj["metadata"]["name"] == prefix or obj["metadata"]["name"].startswith(prefix + "-"))
    ]
    assert len(found) == 1, f"expected one {kind} named {prefix}(-hash), found {[name_of(o) for o in found]}"
    return found[0]


def pod_template(obj: dict) -> dict:
    """The pod template (metadata and spec) of a workload."""
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]
    return obj["spec"]["template"]


def workloads(objs: list[dict]):
    """(workload, pod spec) for every Deployment, StatefulSet, Job and CronJob."""
    for obj in objs:
        if obj["kind"] in WORKLOAD_KINDS:
            yield obj, pod_template(obj)["spec"]


def containers(pod_spec: dict):
    """(kind, container) for init containers and containers."""
    for c in pod_spec.get("initContainers", []):
        yield "initContainer", c
    for c in pod_spec.get("containers", []):
        yield "container", c


# --- CRD schemas -----------------------------------------------------------------


def kubernetes_structural(schema):
    """A CRD's openAPIV3Schema with Kubernetes' rules made explicit for a JSON
    Schema validator:
    - unknown fields are errors (as `kubectl apply --validate=strict` reports
      them): an object with `properties` and no `additionalProperties` gets
      `additionalProperties: false`, unless it preserves unknown fields;
    - `nullable: true` admits null.
    An object with neither `properties` nor `additionalProperties` (such as
    `metadata`) stays free-form: metadata is checked against ObjectMeta instead.
    """
    if isinstance(schema, list):
        return [kubernetes_structural(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: kubernetes_structural(v) for name, v in value.items()}
        elif key in ("items", "additionalProperties", "not") and isinstance(value, dict):
            out[key] = kubernetes_structural(value)
        elif key in ("anyOf", "allOf", "oneOf"):
            out[key] = [kubernetes_structural(v) for v in value]
        else:
            out[key] = value
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    if out.get("nullable") is True and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def crd_schema(api_version: str, kind: str) -> dict:
    """The vendored schema for a custom resource, ready for jsonschema."""
    path = CRD_SCHEMAS / CRD_SCHEMA_FILES[(api_version, kind)]
    schema = kubernetes_structural(json.loads(path.read_text()))
    # apiVersion and kind must be these exactly; metadata is an ObjectMeta.
    schema.setdefault("properties", {})
    schema["properties"]["apiVersion"] = {"const": api_version}
    schema["properties"]["kind"] = {"const": kind}
    schema["properties"]["metadata"] = {
        "$ref": "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    }
    return schema


def kubernetes_definitions() -> dict:
    """kubernetes-validate's strict definitions for KUBERNETES_VERSION (ObjectMeta...)."""
    package = Path(kubernetes_validate.__file__).resolve().parent
    path = package / "kubernetes-json-schema" / f"v{KUBERNETES_VERSION}-local-strict" / "_definitions.json"
    return json.loads(path.read_text())


def crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    registry = Registry().with_resource(
        "https://kubernetes.io/api/_definitions.json",
        Resource.from_contents(kubernetes_definitions()),
    )
    return jsonschema.Draft202012Validator(crd_schema(api_version, kind), registry=registry)
