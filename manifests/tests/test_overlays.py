"""What every render shares (the version label), and the node-affinity example
overlay (manifests/overlays/k3s-longhorn) against the k3s overlay it builds on.

    bash manifests/tests/run.sh -k overlays

The schema checks of test_manifests.py run on this overlay too (the `rendered`
fixture).
"""

from __future__ import annotations

import copy
import tomllib

import pytest
import yaml

from conftest import BASE, MANIFESTS, REPO, find, name_of, pod_template, render

LONGHORN = MANIFESTS / "overlays" / "k3s-longhorn"
STORAGE_NODES = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": "node.longhorn.io/create-default-disk", "operator": "In", "values": ["true"]}]}
            ]
        }
    }
}


def cargo_version() -> str:
    return tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["package"]["version"]


def test_every_object_carries_the_version_of_cargo_toml(rendered):
    which, objs = rendered
    version = cargo_version()
    bad = [
        f"{name_of(o)}: {o['metadata'].get('labels', {}).get('app.kubernetes.io/version')!r}"
        for o in objs
        if o["metadata"].get("labels", {}).get("app.kubernetes.io/version") != version
    ]
    assert not bad, f"{which}: app.kubernetes.io/version is not {version} (Cargo.toml):\n" + "\n".join(bad)


def test_the_version_label_stays_out_of_selectors_and_pod_templates(rendered):
    """Selectors are immutable, and a label on PostgreSQL's pod template would
    restart it on every HAM release."""
    which, objs = rendered
    bad = []
    for o in objs:
        spec = o.get("spec", {})
        selector = spec.get("selector", {})
        selector = selector.get("matchLabels", selector) if isinstance(selector, dict) else {}
        if "app.kubernetes.io/version" in selector:
            bad.append(f"{name_of(o)}: selector")
        if o["kind"] in ("Deployment", "StatefulSet", "Job", "CronJob"):
            if "app.kubernetes.io/version" in pod_template(o)["metadata"].get("labels", {}):
                bad.append(f"{name_of(o)}: pod template")
    assert not bad, f"{which}: {bad}"


def test_the_base_deploys_the_image_of_this_version():
    images = yaml.safe_load((BASE / "kustomization.yaml").read_text())["images"]
    (ham,) = [i for i in images if i["name"] == "ghcr.io/ham-app/ham"]
    assert ham["newTag"] == cargo_version()


@pytest.fixture(scope="module")
def longhorn() -> list[dict]:
    return render(LONGHORN)


def test_postgres_and_ham_run_only_on_longhorn_nodes(longhorn):
    for kind, name in (("Deployment", "ham"), ("StatefulSet", "postgres")):
        spec = pod_template(find(longhorn, kind, name))["spec"]
        assert spec["affinity"]["nodeAffinity"] == STORAGE_NODES["nodeAffinity"], f"{kind} {name}"
    (claim,) = find(longhorn, "StatefulSet", "postgres")["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "longhorn"


def test_the_example_changes_nothing_else(longhorn, overlay):
    """Everything but the affinity and the storage class is the k3s overlay's."""
    changed = copy.deepcopy(longhorn)
    for o in changed:
        if (o["kind"], o["metadata"]["name"]) in (("Deployment", "ham"), ("StatefulSet", "postgres")):
            del pod_template(o)["spec"]["affinity"]["nodeAffinity"]
            if not pod_template(o)["spec"]["affinity"]:
                del pod_template(o)["spec"]["affinity"]
        if o["kind"] == "StatefulSet":
            del o["spec"]["volumeClaimTemplates"][0]["spec"]["storageClassName"]
    key = lambda o: (o["kind"], o["metadata"]["name"])  # noqa: E731
    assert sorted(changed, key=key) == sorted(overlay, key=key)
