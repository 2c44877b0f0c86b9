"""The PrometheusRule `ham` (manifests/base/prometheusrule.yaml): promtool's
checks and unit tests, and the rules an operator relies on.

    bash manifests/tests/run.sh -k alerts

The rule groups are taken from the rendered base (what Prometheus would load) and
written as `rules.yaml` into a temporary directory, beside a copy of each unit
test file of alerts/ (`promtool test rules` reads `rule_files` relative to the
test file). promtool comes from Debian's `prometheus` package (.ci/run installs
it); without it these tests skip, and under CI=true they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import BASE, REPO, render

ALERT_TESTS = Path(__file__).resolve().parent / "alerts"
OPERATIONS = REPO / "docs" / "operations.md"
TELEMETRY = REPO / "host" / "src" / "telemetry.rs"
RUNBOOK_BASE = "https://github.com/ham-app/ham/blob/main/docs/operations.md"
SEVERITIES = {"critical", "warning"}

# kube-state-metrics (v2) series the rules may use besides HAM's own.
KUBE_STATE_METRICS = {
    "kube_cronjob_created",
    "kube_cronjob_status_last_successful_time",
    "kube_deployment_spec_replicas",
    "kube_deployment_status_replicas_available",
    "kube_pod_container_status_last_terminated_reason",
    "kube_pod_container_status_ready",
    "kube_pod_container_status_restarts_total",
}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        message = (
            "promtool is not on PATH: it checks and unit-tests the alert rules. "
            "Install it with `apt-get install prometheus` (Debian ships promtool in that package)."
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def rule() -> dict:
    (found,) = [o for o in render(BASE) if o["kind"] == "PrometheusRule"]
    return found


def alerting_rules(rule: dict) -> list[dict]:
    return [r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r]


def alert_names_in_source() -> list[str]:
    """Alert names straight from the manifest, for parametrizing at collection."""
    source = yaml.safe_load((BASE / "prometheusrule.yaml").read_text())
    return [r["alert"] for g in source["spec"]["groups"] for r in g["rules"] if "alert" in r]


@pytest.fixture(scope="module")
def rules_dir(rule, tmp_path_factory) -> Path:
    """rules.yaml (the rendered rule's groups) beside a copy of every unit test."""
    directory = tmp_path_factory.mktemp("alerts")
    (directory / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    for test in ALERT_TESTS.glob("*.yaml"):
        shutil.copy(test, directory / test.name)
    return directory


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False, timeout=300)


def test_promtool_check_rules(rules_dir):
    done = run([promtool(), "check", "rules", "rules.yaml"], rules_dir)
    assert done.returncode == 0, f"promtool check rules:\n{done.stdout}{done.stderr}"


@pytest.mark.parametrize("alert", alert_names_in_source())
def test_promtool_unit_test(alert, rules_dir):
    """alerts/<alert>.yaml: `promtool test rules`, which fails on any expected
    alert (labels and rendered annotations) that is not exactly what fires."""
    test = rules_dir / f"{alert}.yaml"
    assert test.is_file(), f"no unit test for {alert}: write manifests/tests/alerts/{alert}.yaml"
    done = run([promtool(), "test", "rules", test.name], rules_dir)
    assert done.returncode == 0, f"promtool test rules {alert}.yaml:\n{done.stdout}{done.stderr}"


@pytest.mark.parametrize("alert", alert_names_in_source())
def test_each_unit_test_fires_and_stays_quiet(alert):
    """Each alert's file tests that alert alone, at least once firing and at
    least once not."""
    test = yaml.safe_load((ALERT_TESTS / f"{alert}.yaml").read_text())
    assert test["rule_files"] == ["rules.yaml"]
    cases = [case for t in test["tests"] for case in t.get("alert_rule_test", [])]
    assert {case["alertname"] for case in cases} == {alert}
    assert any(case.get("exp_alerts") for case in cases), f"{alert}.yaml never expects the alert to fire"
    assert any(not case.get("exp_alerts") for case in cases), f"{alert}.yaml never expects it to stay quiet"


def test_no_unit_test_for_an_alert_that_does_not_exist(rule):
    names = {r["alert"] for r in alerting_rules(rule)}
    files = {p.stem for p in ALERT_TESTS.glob("*.yaml")}
    assert files == names, f"unit tests without an alert: {sorted(files - names)}; alerts without one: {sorted(names - files)}"


def test_the_alerts_the_operations_promise(rule):
    """Issue 20's list: dead jobs, queue age, backups, a silent Strava webhook,
    plugin errors by plugin and after a swap, a rollout rolled back, restarts, OOM
    kills, /readyz."""
    assert {r["alert"] for r in alerting_rules(rule)} == {
        "HamJobsDead",
        "HamJobQueueStalled",
        "HamBackupMissing",
        "HamStravaWebhookSilent",
        "HamPluginErrorRateHigh",
        "HamPluginErrorsAfterSwap",
        "HamPluginRolloutRolledBack",
        "HamContainerRestarting",
        "HamContainerOOMKilled",
        "HamNotReady",
        "HamDown",
        "HamMetricsMissing",
    }


def heading_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    anchors = set()
    in_code = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = re.match(r"#{1,6}\s+(.*)", line)
        if match and not in_code:
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(text.replace(" ", "-"))
    return anchors


def test_every_alert_has_a_severity_a_summary_and_a_runbook(rule):
    anchors = heading_anchors(OPERATIONS.read_text())
    bad = []
    for r in alerting_rules(rule):
        name = r["alert"]
        if r.get("labels", {}).get("severity") not in SEVERITIES:
            bad.append(f"{name}: severity {r.get('labels', {}).get('severity')!r} not in {sorted(SEVERITIES)}")
        annotations = r.get("annotations", {})
        if not annotations.get("summary", "").strip():
            bad.append(f"{name}: no summary")
        url = annotations.get("runbook_url", "")
        if url != f"{RUNBOOK_BASE}#{name.lower()}":
            bad.append(f"{name}: runbook_url {url!r} is not {RUNBOOK_BASE}#{name.lower()}")
        if name.lower() not in anchors:
            bad.append(f"{name}: docs/operations.md has no section headed {name} (anchor #{name.lower()})")
    assert not bad, "\n".join(bad)


def test_runbook_sections_say_what_how_to_check_and_how_to_fix(rule):
    text = OPERATIONS.read_text()
    bad = []
    for r in alerting_rules(rule):
        match = re.search(rf"^#+ {r['alert']}\n(.*?)(?=^#|\Z)", text, re.MULTILINE | re.DOTALL)
        if match is None:
            bad.append(f"{r['alert']}: no section")
            continue
        for part in ("**Means:**", "**Check:**", "**Fix:**"):
            if part not in match.group(1):
                bad.append(f"{r['alert']}: no {part} paragraph")
    assert not bad, "\n".join(bad)


def exported_metrics() -> set[str]:
    """Series names `ham` exports, from the HELP table of host/src/telemetry.rs
    (histograms as their _bucket, _sum and _count series)."""
    families = re.findall(r'\(\s*"(ham_[a-z0-9_]+)",\s*Kind::(\w+)', TELEMETRY.read_text())
    assert families, "no metric families found in host/src/telemetry.rs"
    names = set()
    for name, kind in families:
        if kind == "Histogram":
            names |= {name + suffix for suffix in ("_bucket", "_sum", "_count")}
        else:
            names.add(name)
    return names


def test_rules_use_only_metrics_that_exist_in_their_namespace(rule):
    """Every series a rule reads is one `ham` exports or a kube-state-metrics
    one, selected with the namespace the manifests deploy to."""
    namespace = rule["metadata"]["namespace"]
    known = exported_metrics() | KUBE_STATE_METRICS
    bad = []
    for r in rule["spec"]["groups"]:
        for item in r["rules"]:
            expr = item["expr"]
            for metric, matchers in re.findall(r"\b((?:ham|kube)_[a-z0-9_]+)\s*(\{[^}]*\})?", expr):
                if metric not in known:
                    bad.append(f"{item.get('alert')}: {metric} is neither exported by ham nor a kube-state-metrics series we list")
                if f'namespace="{namespace}"' not in matchers:
                    bad.append(f"{item.get('alert')}: {metric}{matchers} does not select namespace=\"{namespace}\"")
    assert not bad, "\n".join(bad)


def test_prometheus_selects_the_rule_as_it_does_the_service_monitor(rule):
    monitor = [o for o in render(BASE) if o["kind"] == "ServiceMonitor"][0]
    assert rule["metadata"]["labels"]["release"] == monitor["metadata"]["labels"]["release"]


STRAVA_SILENCE_PATCH = """\
  - target: {kind: PrometheusRule, name: ham}
    patch: |-
      - op: test
        path: /spec/groups/2/rules/0/alert
        value: HamStravaWebhookSilent
      - op: replace
        path: /spec/groups/2/rules/0/for
        value: 6d
"""


def test_strava_silence_is_configurable_as_documented(tmp_path):
    """The overlay patch docs/operations.md gives for the Strava silence renders,
    and changes that alert's `for` only."""
    assert STRAVA_SILENCE_PATCH in OPERATIONS.read_text(), "docs/operations.md shows another patch than this test applies"
    overlay = REPO / "target" / "strava-silence-overlay"
    shutil.rmtree(overlay, ignore_errors=True)
    overlay.mkdir(parents=True)
    try:
        (overlay / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            "resources:\n  - ../../manifests/base\npatches:\n" + STRAVA_SILENCE_PATCH
        )
        (patched,) = [o for o in render(overlay) if o["kind"] == "PrometheusRule"]
    finally:
        shutil.rmtree(overlay, ignore_errors=True)
    rules = {r["alert"]: r for r in alerting_rules(patched)}
    assert rules["HamStravaWebhookSilent"]["for"] == "6d"
    (original,) = [o for o in render(BASE) if o["kind"] == "PrometheusRule"]
    before = {r["alert"]: r for r in alerting_rules(original)}
    assert before["HamStravaWebhookSilent"]["for"] == "2d"
    del rules["HamStravaWebhookSilent"], before["HamStravaWebhookSilent"]
    assert rules == before
