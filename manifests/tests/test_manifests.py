"""The Kubernetes manifests, checked offline: schemas, hardening, routes, secrets,
monitoring, backups.

    bash manifests/tests/run.sh

Each test states one rule and names every object that breaks it. What is not
checked here: that the manifests work on a cluster. No cluster is available to
these tests; docs/operations.md says what has and has not been verified.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import kubernetes_validate
import pytest

from conftest import (
    BASE,
    CRD_SCHEMA_FILES,
    CRD_SCHEMAS,
    KUBERNETES_VERSION,
    containers,
    crd_validator,
    find,
    find_prefixed,
    name_of,
    pod_template,
    workloads,
)

HOST_WEBHOOK_PATH = "/api/strava/webhook"
AUTHENTIK_OUTPOST = "http://ak-outpost-authentik-embedded-outpost.authentik.svc:9000/outpost.goauthentik.io/auth/traefik"
AUTHENTIK_HEADERS = [
    "X-authentik-username",
    "X-authentik-groups",
    "X-authentik-email",
    "X-authentik-name",
    "X-authentik-uid",
]

# Containers allowed a writable root file system, by (workload, container), each
# with the reason. Empty: PostgreSQL too runs read-only, with emptyDir volumes
# for the places it writes besides its data (/var/run/postgresql, /tmp).
READ_WRITE_ROOT_ALLOWED: dict[tuple[str, str], str] = {}

SECRET_LIKE = re.compile(r"PASSWORD|SECRET|TOKEN|KEY", re.IGNORECASE)

# The metrics `ham` exports (docs/operations.md, "Metrics"); the dashboard may use
# these and no others. Histograms also expose _bucket, _sum and _count series.
COUNTERS_AND_GAUGES = {
    "ham_http_requests_total",
    "ham_plugin_invocations_total",
    "ham_plugin_errors_total",
    "ham_plugin_active",
    "ham_plugin_swaps_total",
    "ham_jobs",
    "ham_plugin_jobs_enqueued_total",
    "ham_llm_tokens_total",
    "ham_process_resident_memory_bytes",
}
HISTOGRAMS = {
    "ham_http_request_duration_seconds",
    "ham_plugin_invocation_duration_seconds",
    "ham_job_run_duration_seconds",
}


def is_core_api(api_version: str) -> bool:
    """Kubernetes' own API groups (core, apps, batch, *.k8s.io), which
    kubernetes-validate knows; anything else is a custom resource."""
    if "/" not in api_version:
        return True
    group = api_version.split("/")[0]
    return "." not in group or group.endswith(".k8s.io")


# --- Schemas ----------------------------------------------------------------------


def test_every_object_has_a_schema(rendered):
    which, objs = rendered
    unknown = [
        f"{name_of(o)} ({o['apiVersion']})"
        for o in objs
        if not is_core_api(o["apiVersion"]) and (o["apiVersion"], o["kind"]) not in CRD_SCHEMA_FILES
    ]
    assert not unknown, (
        f"{which}: no schema to check these against; vendor the CRD's schema "
        f"(crd-schemas/README.md) and list it in CRD_SCHEMA_FILES: {unknown}"
    )


def test_core_objects_match_kubernetes_schemas(rendered):
    """Strict: an unknown or misspelt field is an error, as with
    `kubectl apply --validate=strict`."""
    which, objs = rendered
    errors = []
    for obj in objs:
        if not is_core_api(obj["apiVersion"]):
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            errors.append(f"{name_of(obj)}: {path}: {e.message}")
        except kubernetes_validate.SchemaNotFoundError as e:
            errors.append(f"{name_of(obj)}: {e.message}")
    assert not errors, f"{which} against Kubernetes {KUBERNETES_VERSION}:\n" + "\n".join(errors)


def test_custom_resources_match_crd_schemas(rendered):
    which, objs = rendered
    errors = []
    checked = 0
    for obj in objs:
        key = (obj["apiVersion"], obj["kind"])
        if key not in CRD_SCHEMA_FILES:
            continue
        checked += 1
        for e in crd_validator(*key).iter_errors(obj):
            path = ".".join(str(p) for p in e.absolute_path)
            errors.append(f"{name_of(obj)}: {path}: {e.message}")
    assert not errors, f"{which}:\n" + "\n".join(errors)
    assert checked > 0, f"{which}: no custom resource was checked"


def test_the_validators_reject_unknown_fields(overlay):
    """The schema checks above are not vacuous: a misspelt field fails each."""
    deployment = json.loads(json.dumps(find(overlay, "Deployment", "ham")))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)

    route = json.loads(json.dumps(find(overlay, "IngressRoute", "ham")))
    route["spec"]["routes"][0]["middleware"] = [{"name": "authentik"}]
    assert list(crd_validator("traefik.io/v1alpha1", "IngressRoute").iter_errors(route))

    middleware = json.loads(json.dumps(find(overlay, "Middleware", "authentik")))
    middleware["spec"]["forwardAuth"]["trustForwardHeaders"] = True
    assert list(crd_validator("traefik.io/v1alpha1", "Middleware").iter_errors(middleware))

    monitor = json.loads(json.dumps(find(overlay, "ServiceMonitor", "ham")))
    monitor["spec"]["endpoints"][0]["interval"] = "thirty seconds"
    assert list(crd_validator("monitoring.coreos.com/v1", "ServiceMonitor").iter_errors(monitor))

    certificate = json.loads(json.dumps(find(overlay, "Certificate", "ham-tls")))
    del certificate["spec"]["secretName"]
    assert list(crd_validator("cert-manager.io/v1", "Certificate").iter_errors(certificate))


def test_crd_schema_sources_are_recorded():
    readme = (CRD_SCHEMAS / "README.md").read_text()
    vendored = sorted(p.name for p in CRD_SCHEMAS.glob("*.json"))
    assert sorted(CRD_SCHEMA_FILES.values()) == vendored, "every vendored schema is used, and only those"
    missing = [name for name in vendored if name not in readme]
    assert not missing, f"crd-schemas/README.md does not say where these come from: {missing}"


def test_schema_conversion_drops_only_description_annotations():
    sys.path.insert(0, str(CRD_SCHEMAS))
    try:
        from convert import strip_descriptions
    finally:
        sys.path.pop(0)
    schema = {
        "description": "annotation",
        "type": "object",
        "properties": {
            "description": {"description": "a field named description", "type": "string"},
            "items": {"type": "array", "items": {"description": "x", "type": "string"}},
            "port": {"anyOf": [{"type": "integer", "description": "x"}, {"type": "string"}]},
            "labels": {"type": "object", "additionalProperties": {"type": "string", "description": "x"}},
        },
    }
    assert strip_descriptions(schema) == {
        "type": "object",
        "properties": {
            "description": {"type": "string"},
            "items": {"type": "array", "items": {"type": "string"}},
            "port": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }


# --- Hardening of every workload -------------------------------------------------


def test_pods_use_the_runtime_default_seccomp_profile(overlay):
    bad = [
        name_of(w)
        for w, spec in workloads(overlay)
        if spec.get("securityContext", {}).get("seccompProfile", {}).get("type") != "RuntimeDefault"
    ]
    assert not bad, f"pod securityContext.seccompProfile.type is not RuntimeDefault: {bad}"


def test_pods_run_as_non_root(overlay):
    bad = []
    for w, spec in workloads(overlay):
        ctx = spec.get("securityContext", {})
        if ctx.get("runAsNonRoot") is not True:
            bad.append(f"{name_of(w)}: pod runAsNonRoot is not true")
        if ctx.get("runAsUser", 1) == 0:
            bad.append(f"{name_of(w)}: pod runAsUser is 0")
        for kind, c in containers(spec):
            cctx = c.get("securityContext", {})
            if cctx.get("runAsNonRoot") is False or cctx.get("runAsUser", 1) == 0:
                bad.append(f"{name_of(w)} {kind} {c['name']}: runs as root")
    assert not bad, "\n".join(bad)


def test_containers_have_a_read_only_root_file_system(overlay):
    bad = []
    for w, spec in workloads(overlay):
        for kind, c in containers(spec):
            if (w["metadata"]["name"], c["name"]) in READ_WRITE_ROOT_ALLOWED:
                continue
            if c.get("securityContext", {}).get("readOnlyRootFilesystem") is not True:
                bad.append(f"{name_of(w)} {kind} {c['name']}")
    assert not bad, f"readOnlyRootFilesystem is not true (allowlist: READ_WRITE_ROOT_ALLOWED): {bad}"


def test_containers_cannot_escalate_privileges(overlay):
    bad = [
        f"{name_of(w)} {kind} {c['name']}"
        for w, spec in workloads(overlay)
        for kind, c in containers(spec)
        if c.get("securityContext", {}).get("allowPrivilegeEscalation") is not False
    ]
    assert not bad, f"allowPrivilegeEscalation is not false: {bad}"


def test_containers_drop_all_capabilities(overlay):
    bad = []
    for w, spec in workloads(overlay):
        for kind, c in containers(spec):
            caps = c.get("securityContext", {}).get("capabilities", {})
            if caps.get("drop") != ["ALL"] or caps.get("add"):
                bad.append(f"{name_of(w)} {kind} {c['name']}: capabilities {caps}")
    assert not bad, "capabilities must be drop: [ALL] and add nothing:\n" + "\n".join(bad)


def test_containers_have_resource_requests_and_limits(overlay):
    bad = []
    for w, spec in workloads(overlay):
        for kind, c in containers(spec):
            res = c.get("resources", {})
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in res.get(section, {}):
                        bad.append(f"{name_of(w)} {kind} {c['name']}: no {section}.{resource}")
    assert not bad, "\n".join(bad)


def test_images_are_pinned_to_a_version(overlay):
    bad = []
    for w, spec in workloads(overlay):
        for kind, c in containers(spec):
            image = c.get("image", "")
            name, _, digest = image.partition("@")
            last = name.rsplit("/", 1)[-1]
            tag = last.split(":", 1)[1] if ":" in last else ""
            if not tag or tag == "latest" or not re.search(r"\d", tag):
                bad.append(f"{name_of(w)} {kind} {c['name']}: image {image!r}")
    assert not bad, f"images need an explicit version tag (not latest): {bad}"


def test_pods_mount_no_service_account_token(overlay):
    bad = [
        name_of(w)
        for w, spec in workloads(overlay)
        if spec.get("automountServiceAccountToken") is not False
    ]
    assert not bad, f"automountServiceAccountToken is not false: {bad}"
    account = find(overlay, "ServiceAccount", "ham")
    assert account.get("automountServiceAccountToken") is False


def test_pods_get_no_service_link_variables(overlay):
    """`ham` reads HAM_* settings; service links would add HAM_SERVICE_HOST,
    HAM_PORT... for the Service named ham."""
    bad = [name_of(w) for w, spec in workloads(overlay) if spec.get("enableServiceLinks") is not False]
    assert not bad, f"enableServiceLinks is not false: {bad}"


# --- The HAM servers -------------------------------------------------------------


def ham_container(objs: list[dict]) -> dict:
    spec = pod_template(find(objs, "Deployment", "ham"))["spec"]
    (container,) = [c for c in spec["containers"] if c["name"] == "ham"]
    return container


def test_ham_deployment_rolls_out_without_losing_capacity(overlay):
    deployment = find(overlay, "Deployment", "ham")
    assert deployment["spec"]["replicas"] == 2, "two replicas"
    strategy = deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0, "maxUnavailable must be 0"
    assert strategy["rollingUpdate"]["maxSurge"] == 1


def test_ham_deployment_probes_health_and_readiness(overlay):
    container = ham_container(overlay)
    assert {"name": "http", "containerPort": 3001, "protocol": "TCP"} in container["ports"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


def test_ham_deployment_spreads_across_nodes(overlay):
    spec = pod_template(find(overlay, "Deployment", "ham"))["spec"]
    spread = spec.get("topologySpreadConstraints", [])
    anti = spec.get("affinity", {}).get("podAntiAffinity")
    assert any(c["topologyKey"] == "kubernetes.io/hostname" for c in spread) or anti, (
        "Deployment ham: no topologySpreadConstraints or podAntiAffinity across nodes"
    )


def test_ham_settings(overlay):
    config = find_prefixed(overlay, "ConfigMap", "ham-config")["data"]
    assert config == {
        "HAM_ADDR": "0.0.0.0:3001",
        "HAM_PUBLIC_URL": "https://ham.example.com",
        "HAM_DATA_DIR": "/data",
        "HAM_AUTH": "forward-auth",
        "HAM_TRUSTED_PROXIES": "10.42.0.0/16",
        "HAM_ADMIN_GROUP": "ham-admins",
        "HAM_LOG_FORMAT": "json",
        "HAM_MIGRATE_ON_START": "false",
    }
    container = ham_container(overlay)
    assert container["envFrom"] == [{"configMapRef": {"name": find_prefixed(overlay, "ConfigMap", "ham-config")["metadata"]["name"]}}]
    env = {e["name"]: e for e in container["env"]}
    names = list(env)
    # Kubernetes expands $(VAR) only from variables defined earlier in the list.
    assert names.index("HAM_DATABASE_PASSWORD") < names.index("DATABASE_URL")
    assert env["DATABASE_URL"]["value"] == "postgres://ham:$(HAM_DATABASE_PASSWORD)@postgres.ham.svc:5432/ham"
    refs = {
        name: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for name, e in env.items()
        if "valueFrom" in e
    }
    assert refs == {
        "HAM_DATABASE_PASSWORD": ("ham-secrets", "database-password"),
        "HAM_SECRET_KEY": ("ham-secrets", "secret-key"),
        "HAM_ADMIN_TOKEN": ("ham-secrets", "admin-token"),
        "HAM_LLM_API_KEY": ("ham-secrets", "llm-api-key"),
        "ANTHROPIC_API_KEY": ("ham-secrets", "llm-api-key"),
        "HAM_PLUGIN_STRAVA_SYNC_CLIENT_ID": ("ham-strava", "client-id"),
        "HAM_PLUGIN_STRAVA_SYNC_CLIENT_SECRET": ("ham-strava", "client-secret"),
        "HAM_PLUGIN_STRAVA_SYNC_VERIFY_TOKEN": ("ham-strava", "verify-token"),
        "HAM_PLUGIN_STRAVA_SYNC_SUBSCRIPTION_ID": ("ham-strava", "subscription-id"),
    }


def test_ham_writes_only_to_its_volumes(overlay):
    spec = pod_template(find(overlay, "Deployment", "ham"))["spec"]
    mounts = {m["mountPath"]: m["name"] for m in ham_container(overlay)["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert set(mounts) == {"/data", "/tmp"}
    for path, volume in mounts.items():
        assert "emptyDir" in volumes[volume], f"{path} should be an emptyDir (cache and scratch only)"


def test_migrate_job_runs_the_same_image_with_the_database_only(overlay):
    job = find(overlay, "Job", "ham-migrate")
    (container,) = pod_template(job)["spec"]["containers"]
    assert container["image"] == ham_container(overlay)["image"]
    assert container["args"] == ["migrate"]
    assert job["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/force"] == "enabled"
    assert "ttlSecondsAfterFinished" in job["spec"]
    env = {e["name"]: e for e in container["env"]}
    assert set(env) == {"HAM_DATABASE_PASSWORD", "DATABASE_URL"}
    server_env = {e["name"]: e for e in ham_container(overlay)["env"]}
    assert env["DATABASE_URL"] == server_env["DATABASE_URL"]


def test_services_select_existing_pods(overlay):
    templates = [(name_of(w), pod_template(w)["metadata"].get("labels", {})) for w, _ in workloads(overlay)]
    bad = []
    for svc in (o for o in overlay if o["kind"] == "Service"):
        selector = svc["spec"]["selector"]
        hits = [n for n, labels in templates if selector.items() <= labels.items()]
        if len(hits) != 1:
            bad.append(f"{name_of(svc)} selects {hits}")
    assert not bad, "each Service selects exactly one workload's pods:\n" + "\n".join(bad)
    ham = find(overlay, "Service", "ham")
    assert ham["spec"]["type"] == "ClusterIP"
    assert ham["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]


def test_pod_disruption_budget_keeps_one_server(overlay):
    pdb = find(overlay, "PodDisruptionBudget", "ham")
    assert pdb["spec"]["minAvailable"] == 1
    labels = pod_template(find(overlay, "Deployment", "ham"))["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()


# --- PostgreSQL and backups ------------------------------------------------------


def test_postgres_statefulset(overlay):
    sts = find(overlay, "StatefulSet", "postgres")
    spec = pod_template(sts)["spec"]
    (container,) = spec["containers"]
    assert sts["spec"]["replicas"] == 1
    assert container["image"] == "postgres:16.6-bookworm"
    env = {e["name"]: e for e in container["env"]}
    assert env["POSTGRES_USER"]["value"] == "ham"
    assert env["POSTGRES_DB"]["value"] == "ham"
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "ham-secrets", "key": "database-password"}
    assert env["PGDATA"]["value"].startswith("/var/lib/postgresql/data/"), "PGDATA in a subdirectory of the volume"
    assert spec["securityContext"]["runAsUser"] == 999
    assert "pg_isready" in container["readinessProbe"]["exec"]["command"]
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"


def test_backup_cronjob(overlay):
    cron = find(overlay, "CronJob", "postgres-backup")
    assert cron["spec"]["schedule"] == "15 3 * * *", "nightly at 03:15"
    assert cron["spec"]["timeZone"] == "Etc/UTC"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    spec = pod_template(cron)["spec"]
    (dump,) = spec["initContainers"]
    (upload,) = spec["containers"]
    assert dump["image"].startswith("postgres:16."), "pg_dump of the server's major version"
    assert dump["command"] == ["sh", "/scripts/pg-backup.sh"]
    # The upload and retention run only after the dump succeeded (an init container).
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-bookworm", upload["image"])
    assert upload["command"] == ["python3", "-B", "/scripts/s3-backup.py", "/backup"]
    s3 = {
        e["name"]: (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in upload["env"]
    }
    assert s3 == {
        "S3_ENDPOINT": ("ham-backup-s3", "endpoint"),
        "S3_BUCKET": ("ham-backup-s3", "bucket"),
        "S3_ACCESS_KEY": ("ham-backup-s3", "access-key"),
        "S3_SECRET_KEY": ("ham-backup-s3", "secret-key"),
    }
    settings = find_prefixed(overlay, "ConfigMap", "postgres-backup-settings")
    assert upload["envFrom"] == [{"configMapRef": {"name": settings["metadata"]["name"]}}]
    assert settings["data"] == {
        "S3_PREFIX": "postgres-backups/ham/",
        "S3_REGION": "us-east-1",
        "KEEP_DAILY": "7",
        "KEEP_WEEKLY": "4",
        "KEEP_MONTHLY": "12",
    }
    mounts = {m["mountPath"]: m for m in upload["volumeMounts"]}
    assert mounts["/backup"]["readOnly"] is True


def test_backup_scripts_shipped_are_the_tested_ones(overlay):
    scripts = find_prefixed(overlay, "ConfigMap", "postgres-backup-scripts")
    for script in ("pg-backup.sh", "s3-backup.py"):
        assert scripts["data"][script] == (BASE / "backup" / script).read_text()
    volumes = pod_template(find(overlay, "CronJob", "postgres-backup"))["spec"]["volumes"]
    assert {"name": "scripts", "configMap": {"name": scripts["metadata"]["name"], "defaultMode": 0o555}} in volumes


@pytest.mark.parametrize("script", ["pg-backup.sh", "pg-restore.sh"])
def test_backup_scripts_are_posix_sh(script):
    """Syntax under dash, the strictest POSIX sh at hand (the scripts' behaviour
    against a real PostgreSQL is tested by the Rust suite)."""
    path = BASE / "backup" / script
    text = path.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert "\nset -eu\n" in text
    assert not re.search(r"^\s*set\s.*pipefail", text, re.MULTILINE), "pipefail is not POSIX"
    shell = shutil.which("dash") or shutil.which("sh")
    assert shell, "no sh to check the syntax with"
    done = subprocess.run([shell, "-n", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{shell} -n {script}: {done.stderr}"


# --- Network policies ------------------------------------------------------------


def policies(objs):
    return [o for o in objs if o["kind"] == "NetworkPolicy"]


def selects(selector: dict, labels: dict) -> bool:
    assert not selector.get("matchExpressions"), "these tests read matchLabels only"
    return selector.get("matchLabels", {}).items() <= labels.items()


def test_default_deny_network_policy(overlay):
    deny = [
        p
        for p in policies(overlay)
        if p["spec"]["podSelector"] == {}
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert deny, "no NetworkPolicy denying all ingress and egress to every pod of the namespace"


def test_every_pod_has_a_network_policy_of_its_own(overlay):
    """With default deny, a pod no policy selects can do nothing: a label typo."""
    specific = [p for p in policies(overlay) if p["spec"]["podSelector"] != {}]
    bad = []
    for w, _ in workloads(overlay):
        labels = pod_template(w)["metadata"]["labels"]
        if not any(selects(p["spec"]["podSelector"], labels) for p in specific):
            bad.append(name_of(w))
    for p in specific:
        if not any(selects(p["spec"]["podSelector"], pod_template(w)["metadata"]["labels"]) for w, _ in workloads(overlay)):
            bad.append(f"{name_of(p)} selects no pod")
    assert not bad, "\n".join(bad)


def namespace_peer(peer: dict) -> tuple[str | None, dict]:
    ns = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
    return ns, peer.get("podSelector", {}).get("matchLabels", {})


def test_ham_is_reached_only_by_traefik_and_prometheus(overlay):
    """Traefik on the app's port, Prometheus on the metrics port only: Prometheus
    is no trusted proxy, and cannot send identity headers to 3001."""
    policy = find(overlay, "NetworkPolicy", "ham")
    peers = []
    for rule in policy["spec"]["ingress"]:
        for peer in rule["from"]:
            peers.append((namespace_peer(peer), rule["ports"]))
    assert sorted(peers, key=str) == sorted(
        [
            (("kube-system", {"app.kubernetes.io/name": "traefik"}), [{"port": 3001, "protocol": "TCP"}]),
            (("monitoring", {"app.kubernetes.io/name": "prometheus"}), [{"port": 9464, "protocol": "TCP"}]),
        ],
        key=str,
    )


def test_ham_reaches_postgres_dns_and_public_https(overlay):
    egress = find(overlay, "NetworkPolicy", "ham")["spec"]["egress"]
    ports = [sorted((p["port"], p["protocol"]) for p in rule["ports"]) for rule in egress]
    assert [(5432, "TCP")] in ports
    assert [(53, "TCP"), (53, "UDP")] in ports
    (https,) = [rule for rule in egress if rule["ports"] == [{"port": 443, "protocol": "TCP"}]]
    (block,) = https["to"]
    assert block["ipBlock"]["cidr"] == "0.0.0.0/0"
    for private in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"):
        assert private in block["ipBlock"]["except"]


def test_postgres_is_reached_only_by_ham_migrate_and_backup(overlay):
    policy = find(overlay, "NetworkPolicy", "postgres")
    assert not policy["spec"].get("egress"), "postgres reaches nothing"
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": 5432, "protocol": "TCP"}]
    allowed = [p["podSelector"]["matchLabels"] for p in rule["from"]]
    assert all(set(p) == {"podSelector"} for p in rule["from"]), "same-namespace pods only"
    reached_by = sorted(
        w["metadata"]["name"]
        for w, _ in workloads(overlay)
        if any(selects({"matchLabels": a}, pod_template(w)["metadata"]["labels"]) for a in allowed)
    )
    assert reached_by == ["ham", "ham-migrate", "postgres-backup"]


def test_namespace_selectors_use_the_metadata_name_label(overlay):
    bad = []
    for p in policies(overlay):
        for direction in ("ingress", "egress"):
            for rule in p["spec"].get(direction, []):
                for peer in rule.get("from", []) + rule.get("to", []):
                    sel = peer.get("namespaceSelector")
                    if sel is not None and set(sel.get("matchLabels", {})) != {"kubernetes.io/metadata.name"}:
                        bad.append(f"{name_of(p)}: {sel}")
    assert not bad, "\n".join(bad)


# --- Traefik routes --------------------------------------------------------------


def routes(objs):
    for route in (o for o in objs if o["kind"] == "IngressRoute"):
        for r in route["spec"]["routes"]:
            yield route, r


def host(objs) -> str:
    (name,) = find(objs, "Certificate", "ham-tls")["spec"]["dnsNames"]
    return name


def test_webhook_route_skips_authentik_for_one_path(overlay):
    route = find(overlay, "IngressRoute", "ham-strava-webhook")
    (r,) = route["spec"]["routes"]
    assert r["match"] == f"Host(`{host(overlay)}`) && Path(`{HOST_WEBHOOK_PATH}`)", "the webhook path exactly"
    assert r["priority"] == 200
    # No authentication middleware: Strava cannot sign in. The one middleware
    # removes identity headers a client might send (see test below).
    assert [m["name"] for m in r.get("middlewares", [])] == ["strip-identity-headers"]
    assert r["services"] == [{"kind": "Service", "name": "ham", "port": "http"}]


def test_webhook_route_drops_client_identity_headers(overlay):
    strip = find(overlay, "Middleware", "strip-identity-headers")["spec"]
    assert set(strip) == {"headers"}
    assert strip["headers"] == {"customRequestHeaders": {h: "" for h in AUTHENTIK_HEADERS}}


def test_app_route_is_behind_authentik(overlay):
    route = find(overlay, "IngressRoute", "ham")
    (r,) = route["spec"]["routes"]
    assert r["match"] == f"Host(`{host(overlay)}`)"
    assert r["priority"] == 100
    assert r["middlewares"] == [{"name": "authentik"}]
    assert r["services"] == [{"kind": "Service", "name": "ham", "port": "http"}]
    assert route["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt"


def test_authentik_middleware_forwards_to_the_embedded_outpost(overlay):
    forward = find(overlay, "Middleware", "authentik")["spec"]["forwardAuth"]
    assert forward["address"] == AUTHENTIK_OUTPOST
    assert forward["trustForwardHeader"] is True
    assert forward["authResponseHeaders"] == AUTHENTIK_HEADERS


def test_every_route_to_ham_is_authenticated_or_the_webhook(overlay):
    """Only the webhook reaches HAM without Authentik; the outpost route goes to
    Authentik itself."""
    bad = []
    for route, r in routes(overlay):
        names = [m["name"] for m in r.get("middlewares", [])]
        to_ham = any(s.get("name") == "ham" and "namespace" not in s for s in r["services"])
        if "authentik" in names:
            continue
        if route["metadata"]["name"] == "ham-strava-webhook":
            continue
        if route["metadata"]["name"] == "ham-authentik-outpost" and not to_ham:
            assert r["match"] == f"Host(`{host(overlay)}`) && PathPrefix(`/outpost.goauthentik.io/`)"
            assert r["services"][0]["namespace"] == "authentik"
            continue
        bad.append(f"{name_of(route)}: {r['match']}")
    assert not bad, f"routes without the authentik middleware: {bad}"


def test_routes_are_https_with_the_certificate(overlay):
    certificate = find(overlay, "Certificate", "ham-tls")
    assert certificate["spec"]["issuerRef"] == {"group": "cert-manager.io", "kind": "ClusterIssuer", "name": "letsencrypt"}
    bad = []
    for route in (o for o in overlay if o["kind"] == "IngressRoute"):
        if route["spec"].get("entryPoints") != ["websecure"]:
            bad.append(f"{name_of(route)}: entryPoints {route['spec'].get('entryPoints')}")
        if route["spec"].get("tls", {}).get("secretName") != certificate["spec"]["secretName"]:
            bad.append(f"{name_of(route)}: tls {route['spec'].get('tls')}")
        for r in route["spec"]["routes"]:
            if f"Host(`{host(overlay)}`)" not in r["match"]:
                bad.append(f"{name_of(route)}: {r['match']} is not for {host(overlay)}")
    assert not bad, "\n".join(bad)


# --- Secrets ---------------------------------------------------------------------


def test_no_secret_objects(rendered):
    which, objs = rendered
    secrets = [name_of(o) for o in objs if o["kind"] in ("Secret", "SealedSecret")]
    assert not secrets, f"{which}: secrets are created with kubectl/kubeseal, never committed: {secrets}"


def test_secret_like_variables_come_from_secrets(overlay):
    bad = []
    for w, spec in workloads(overlay):
        for kind, c in containers(spec):
            for e in c.get("env", []):
                if SECRET_LIKE.search(e["name"]) and "secretKeyRef" not in e.get("valueFrom", {}):
                    bad.append(f"{name_of(w)} {kind} {c['name']}: {e['name']}")
                value = e.get("value", "")
                # Credentials inside a URL must be a $(VAR) reference.
                for userinfo in re.findall(r"://([^/@\s]+)@", value):
                    if ":" in userinfo and not re.fullmatch(r"[^:]+:\$\([A-Z0-9_]+\)", userinfo):
                        bad.append(f"{name_of(w)} {kind} {c['name']}: {e['name']} holds a literal password")
    assert not bad, "secret-like environment variables must use secretKeyRef:\n" + "\n".join(bad)


def test_config_maps_hold_no_secret_like_settings(overlay):
    config = find_prefixed(overlay, "ConfigMap", "ham-config")
    bad = [key for key in config["data"] if SECRET_LIKE.search(key)]
    assert not bad, f"{name_of(config)}: secret-like keys belong in a Secret: {bad}"


# --- Monitoring ------------------------------------------------------------------


def test_service_monitor_scrapes_the_metrics_listener(overlay):
    monitor = find(overlay, "ServiceMonitor", "ham")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    selected = [
        svc["metadata"]["name"]
        for svc in overlay
        if svc["kind"] == "Service"
        and monitor["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    ]
    assert selected == ["ham-metrics"], "the ServiceMonitor selects the metrics Service only"


def test_metrics_listen_on_a_port_no_route_reaches(rendered):
    """HAM serves /metrics on HAM_METRICS_ADDR only (its main port answers 404):
    the container opens that port, the Service `ham-metrics` carries it, and the
    Service `ham`, which every IngressRoute names, has no way to it."""
    which, objs = rendered
    container = ham_container(objs)
    assert {"name": "metrics", "containerPort": 9464, "protocol": "TCP"} in container["ports"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HAM_METRICS_ADDR"] == "0.0.0.0:9464"
    metrics = find(objs, "Service", "ham-metrics")
    assert metrics["spec"]["ports"] == [{"name": "metrics", "port": 9464, "targetPort": "metrics", "protocol": "TCP"}]
    assert find(objs, "Service", "ham")["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    bad = [
        f"{name_of(route)}: {s}"
        for route, r in routes(objs)
        for s in r["services"]
        if s.get("name") == "ham-metrics" or s.get("port") in ("metrics", 9464)
    ]
    assert not bad, f"{which}: routes to the metrics port: {bad}"


def dashboard(objs) -> tuple[dict, dict]:
    config = find(objs, "ConfigMap", "ham-grafana-dashboard")
    (text,) = config["data"].values()
    return config, json.loads(text)


def dashboard_queries(board: dict) -> list[str]:
    queries = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for var in board["templating"]["list"]:
        q = var.get("query")
        if isinstance(q, dict):
            q = q.get("query")
        if var["type"] == "query" and q:
            queries.append(q)
    return queries


def test_dashboard_config_map_is_found_by_grafana(overlay):
    config, board = dashboard(overlay)
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert board["uid"] and board["title"]
    assert config["data"]["ham-dashboard.json"] == (BASE / "grafana" / "ham-dashboard.json").read_text()


def test_dashboard_uses_only_metrics_ham_exports(overlay):
    _, board = dashboard(overlay)
    allowed = COUNTERS_AND_GAUGES | {h + suffix for h in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
    used = {m for q in dashboard_queries(board) for m in re.findall(r"\bham_[a-z0-9_]+", q)}
    unknown = sorted(used - allowed)
    assert not unknown, f"the dashboard queries metrics ham does not export: {unknown}"
    # Every metric appears in some panel: nothing listed is left out.
    shown = {m for m in used if m in COUNTERS_AND_GAUGES}
    shown |= {h for h in HISTOGRAMS if any(m.startswith(h + "_") for m in used)}
    missing = sorted((COUNTERS_AND_GAUGES | HISTOGRAMS) - shown)
    assert not missing, f"metrics no panel shows: {missing}"


def test_dashboard_panels(overlay):
    _, board = dashboard(overlay)
    panels = [p for p in board["panels"] if p["type"] != "row"]
    titles = [p["title"] for p in panels]
    assert len(set(p["id"] for p in board["panels"])) == len(board["panels"]), "panel ids are unique"
    for p in panels:
        assert p["targets"], f"panel {p['title']!r} has no query"
        assert p["datasource"]["uid"] == "${datasource}", f"panel {p['title']!r} ignores the datasource variable"
    tables = [p["title"] for p in panels if p["type"] == "table"]
    assert tables == ["Active plugin versions per pod"], titles
    expected = [
        "Requests per second by route",
        "p95 latency by route",
        "Error ratio (5xx)",
        "Invocations per second by plugin",
        "Plugin errors per second by kind",
        "p95 invocation latency by plugin",
        "Active plugin versions per pod",
        "Plugin swaps",
        "Job queue by state",
        "p95 job run duration by plugin",
        "Job runs per second by outcome",
        "Strava webhook events",
        "LLM tokens per second",
        "Resident memory per pod",
    ]
    assert titles == expected
    strava = panels[titles.index("Strava webhook events")]["targets"][0]["expr"]
    assert 'plugin="strava-sync", kind="event"' in strava


# --- The LAN route (components/lan, overlays/k3s-lan) ----------------------------

LAN_HOST = "ham.home.arpa"


def test_lan_route_skips_authentik_on_the_lan_entry_point_only(lan_overlay):
    route = find(lan_overlay, "IngressRoute", "ham-lan")
    assert route["spec"]["entryPoints"] == ["lan"], "the LAN-only entry point, never websecure"
    (r,) = route["spec"]["routes"]
    assert r["match"] == f"Host(`{LAN_HOST}`)", "its own host, not the public one"
    # No Authentik: local sign-in. Clients off the LAN are refused, and identity
    # headers a client sends are removed (Traefik is a trusted proxy).
    assert [m["name"] for m in r["middlewares"]] == ["lan-only", "strip-identity-headers"]
    assert r["services"] == [{"kind": "Service", "name": "ham", "port": "http"}]
    allow = find(lan_overlay, "Middleware", "lan-only")["spec"]
    assert set(allow) == {"ipAllowList"}
    ranges = allow["ipAllowList"]["sourceRange"]
    assert ranges and "10.42.0.0/16" not in ranges and "0.0.0.0/0" not in ranges, (
        "the pod CIDR (or everything) would let any SNAT-ed client through"
    )
    strip = find(lan_overlay, "Middleware", "strip-identity-headers")["spec"]
    assert strip["headers"] == {"customRequestHeaders": {h: "" for h in AUTHENTIK_HEADERS}}


def test_lan_overlay_runs_mixed_identity_and_keeps_the_public_routes(overlay, lan_overlay):
    config = find_prefixed(lan_overlay, "ConfigMap", "ham-config")["data"]
    assert config["HAM_AUTH"] == "forward-auth,local"
    public = find_prefixed(overlay, "ConfigMap", "ham-config")["data"]
    assert {k: v for k, v in config.items() if k != "HAM_AUTH"} == {k: v for k, v in public.items() if k != "HAM_AUTH"}
    assert public["HAM_AUTH"] == "forward-auth", "without the component, forward-auth alone"
    # The settings change rolls the pods: the Deployment names the merged ConfigMap.
    assert ham_container(lan_overlay)["envFrom"] == [
        {"configMapRef": {"name": find_prefixed(lan_overlay, "ConfigMap", "ham-config")["metadata"]["name"]}}
    ]
    # The public routes are the k3s overlay's, unchanged.
    for name in ("ham", "ham-strava-webhook", "ham-authentik-outpost"):
        assert find(lan_overlay, "IngressRoute", name) == find(overlay, "IngressRoute", name), name
    assert not [r for r in overlay if r["kind"] == "IngressRoute" and r["metadata"]["name"] == "ham-lan"]


def test_every_lan_overlay_route_to_ham_is_authenticated_or_strips_identity(lan_overlay):
    """Without Authentik, a route must remove the identity headers: the webhook
    and the LAN route, nothing else."""
    bad = []
    for route, r in routes(lan_overlay):
        names = [m["name"] for m in r.get("middlewares", [])]
        to_ham = any(s.get("name") == "ham" and "namespace" not in s for s in r["services"])
        if not to_ham or "authentik" in names:
            continue
        if "strip-identity-headers" in names and route["metadata"]["name"] in ("ham-strava-webhook", "ham-lan"):
            continue
        bad.append(f"{name_of(route)}: {r['match']} {names}")
    assert not bad, f"routes to ham without authentik that keep client identity headers: {bad}"
