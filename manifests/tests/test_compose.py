"""HAM without Kubernetes: docker-compose.yml, .env.example and ham.example.toml.

    bash manifests/tests/run.sh -k compose

The Compose file is checked against the Compose Specification's JSON schema
(vendored in compose-schema/), and against what the Kubernetes manifests run
(the same backup scripts and images). .env.example must name every setting
host/src/settings.rs has, with a comment each and the defaults ham.example.toml
shows. `ham` itself loads both examples: the binary is target/debug/ham (built
by `cargo test`, which scripts/test runs first) or $HAM_BIN; without it these
tests skip, and under CI=true they fail.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import BASE, REPO

COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
TOML_EXAMPLE = REPO / "ham.example.toml"
SETTINGS = REPO / "host" / "src" / "settings.rs"
SCHEMA = Path(__file__).resolve().parent / "compose-schema" / "compose-spec.json"

VARIABLE_LINE = re.compile(r"^(#\s?)?([A-Z][A-Z0-9_]*)=(.*)$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def cargo_version() -> str:
    return tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["package"]["version"]


# --- docker-compose.yml ------------------------------------------------------------


def test_compose_file_matches_the_compose_specification(compose):
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = [f"{'.'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, "docker-compose.yml against the Compose Specification:\n" + "\n".join(errors)
    # The check is not vacuous: a misspelt key fails it.
    broken = json.loads(json.dumps(compose))
    broken["services"]["ham"]["restrat"] = "always"
    assert list(validator.iter_errors(broken))


def test_default_is_ham_on_sqlite_and_the_postgres_profile_adds_the_database_and_backup(compose):
    services = compose["services"]
    default = sorted(name for name, s in services.items() if not s.get("profiles"))
    assert default == ["ham"], "`docker compose up` starts HAM alone"
    postgres = sorted(name for name, s in services.items() if "postgres" in s.get("profiles", []))
    assert postgres == ["backup-dump", "backup-upload", "postgres"]
    ham = services["ham"]
    assert "ham-data:/data" in ham["volumes"], "the SQLite database lives in a named volume"
    assert "HAM_DATABASE_URL" not in json.dumps(ham.get("environment", {})), "SQLite unless .env says otherwise"
    assert ham["depends_on"]["postgres"] == {"condition": "service_healthy", "required": False}
    assert ham["ports"] == ["${PUBLISH_ADDR:-127.0.0.1:3001}:3001"], "published on loopback unless PUBLISH_ADDR says otherwise"
    assert ham["env_file"] == [{"path": ".env", "required": False}], "runs without a .env"


def test_ham_image_is_this_version(compose):
    assert compose["services"]["ham"]["image"] == f"ghcr.io/ham-app/ham:{cargo_version()}"
    assert compose["services"]["ham"]["build"] == "."


def test_containers_are_locked_down(compose):
    for name in ("ham", "backup-dump", "backup-upload"):
        service = compose["services"][name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name


def kustomize_image(name: str) -> str:
    images = yaml.safe_load((BASE / "kustomization.yaml").read_text())["images"]
    (tag,) = [i["newTag"] for i in images if i["name"] == name]
    return f"{name}:{tag}"


def test_backup_runs_the_cronjob_scripts_and_images(compose):
    services = compose["services"]
    assert services["postgres"]["image"] == kustomize_image("postgres")
    assert services["backup-dump"]["image"] == kustomize_image("postgres")
    assert services["backup-upload"]["image"] == kustomize_image("python")
    for name in ("backup-dump", "backup-upload"):
        assert "./manifests/base/backup:/scripts:ro" in services[name]["volumes"]
        assert "backups:/backup" in services[name]["volumes"]
    assert "sh /scripts/pg-backup.sh" in services["backup-dump"]["command"][0]
    upload = services["backup-upload"]
    assert upload["command"][:3] == ["python3", "-B", "/scripts/s3-backup.py"]
    assert upload["environment"]["S3_PREFIX"] == "${S3_PREFIX-postgres-backups/ham/}"
    assert services["backup-dump"]["environment"]["BACKUP_AT"] == "${BACKUP_AT:-03:15}"


def test_the_backup_waits_until_backup_at(compose, tmp_path):
    """The dump loop, run for real under dash with `sleep` stubbed: it waits until
    the next BACKUP_AT in UTC (today or tomorrow), then dumps."""
    script = compose["services"]["backup-dump"]["command"][0].replace("$$", "$")
    stubs = tmp_path / "bin"
    stubs.mkdir()
    (stubs / "sleep").write_text('#!/bin/sh\necho "$1" > "$SLEPT"\nexit 0\n')
    (stubs / "pg_dump").write_text("#!/bin/sh\nexit 1\n")
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    shell = shutil.which("dash") or shutil.which("sh")
    now = dt.datetime.now(dt.timezone.utc)
    at = (now + dt.timedelta(hours=5)).strftime("%H:%M")
    # One round: the loop's `sh /scripts/pg-backup.sh` is replaced by a marker that stops it.
    script = script.replace("sh /scripts/pg-backup.sh >/dev/null", "{ echo dumped; exit 0; }")
    done = subprocess.run(
        [shell, "-c", script],
        env={"PATH": f"{stubs}:/usr/bin:/bin", "BACKUP_AT": at, "SLEPT": str(tmp_path / "slept")},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "dumped" in done.stdout
    slept = int((tmp_path / "slept").read_text())
    target = now.replace(hour=int(at[:2]), minute=int(at[3:]), second=0, microsecond=0)
    if target <= now:
        target += dt.timedelta(days=1)
    assert abs(slept - (target - now).total_seconds()) < 5, (slept, target, now)
    assert f"next backup at {target:%Y-%m-%dT%H:%MZ}" in done.stdout


def interpolated(compose_text: str) -> set[str]:
    return set(re.findall(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)", compose_text))


def test_every_compose_variable_is_in_env_example():
    documented = {m.group(2) for m in map(VARIABLE_LINE.match, ENV_EXAMPLE.read_text().splitlines()) if m}
    missing = sorted(interpolated(COMPOSE.read_text()) - documented)
    assert not missing, f".env.example does not show {missing}, which docker-compose.yml reads"


# --- .env.example and ham.example.toml -------------------------------------------


def settings_keys() -> dict[str, str]:
    """key -> environment variable, from the `settings!` list of host/src/settings.rs."""
    text = SETTINGS.read_text()
    block = text[text.index("settings! {") :]
    block = block[: block.index("\n}\n")]
    entries = re.findall(r"^\s*([a-z_]+):[^;]*?\"(HAM_[A-Z0-9_]+)\"", block, re.MULTILINE | re.DOTALL)
    assert len(entries) > 30, f"found only {len(entries)} settings in host/src/settings.rs"
    return dict(entries)


def env_example() -> dict[str, str]:
    """Every VARIABLE=value line of .env.example, commented or not."""
    return {m.group(2): m.group(3) for m in map(VARIABLE_LINE.match, ENV_EXAMPLE.read_text().splitlines()) if m}


def bundled_plugin_variables() -> set[str]:
    names = set()
    for manifest in (REPO / "plugins").glob("*/plugin.toml"):
        plugin = tomllib.loads(manifest.read_text())
        for variable in plugin.get("variables", {}):
            names.add(f"HAM_PLUGIN_{plugin['name']}_{variable}".upper().replace("-", "_"))
    assert names, "no plugin variables found"
    return names


def test_settings_keys_and_variables_agree():
    bad = {k: v for k, v in settings_keys().items() if v != "HAM_" + k.upper()}
    assert not bad, f"a key's variable is not HAM_<KEY>: {bad}"


def test_env_example_names_every_setting_and_plugin_variable():
    shown = env_example()
    missing = sorted(set(settings_keys().values()) - set(shown))
    assert not missing, f".env.example does not show these settings of host/src/settings.rs: {missing}"
    plugins = sorted(bundled_plugin_variables() - set(shown))
    assert not plugins, f".env.example does not show these variables of the bundled plugins: {plugins}"
    unknown = sorted(
        v for v in shown if v.startswith("HAM_") and v not in settings_keys().values() and v not in bundled_plugin_variables()
    )
    assert not unknown, f".env.example shows variables HAM does not read: {unknown}"


def test_env_example_has_a_comment_for_each_variable():
    lines = ENV_EXAMPLE.read_text().splitlines()
    bad = []
    for n, line in enumerate(lines):
        if VARIABLE_LINE.match(line):
            before = lines[n - 1] if n else ""
            if not before.startswith("#") or VARIABLE_LINE.match(before) or before.strip() == "#":
                bad.append(line)
    assert not bad, f"variables without a comment line just above: {bad}"


def toml_defaults() -> dict[str, object]:
    """The keys ham.example.toml sets (its uncommented lines: the defaults)."""
    return {k: v for k, v in tomllib.loads(TOML_EXAMPLE.read_text()).items() if k != "plugin"}


def as_env(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


def dockerfile_env() -> dict[str, str]:
    text = (REPO / "Dockerfile").read_text()
    runtime = text[text.rindex("\nFROM ") :]
    return dict(re.findall(r"\b(HAM_[A-Z_]+)=(\S+)", runtime))


def test_env_example_shows_the_defaults_the_container_runs_with():
    """A commented line shows the value in effect when it is unset: the image's
    ENV where the Dockerfile sets one, else the default ham.example.toml shows."""
    shown = env_example()
    image = dockerfile_env()
    keys = settings_keys()
    bad = []
    for key, default in toml_defaults().items():
        variable = keys[key]
        expected = image.get(variable, as_env(default))
        if shown.get(variable) != expected:
            bad.append(f"{variable}={shown.get(variable)!r}, not {expected!r}")
    for variable, value in image.items():
        if shown.get(variable) != value:
            bad.append(f"{variable}={shown.get(variable)!r}, not the image's {value!r}")
    assert not bad, "\n".join(bad)


def test_ham_example_toml_names_every_setting():
    text = TOML_EXAMPLE.read_text()
    missing = [k for k in settings_keys() if not re.search(rf"^#? ?{k} = ", text, re.MULTILINE)]
    assert not missing, f"ham.example.toml does not show {missing}"


# --- `ham` loads the examples ----------------------------------------------------


def ham_binary() -> Path:
    path = Path(os.environ.get("HAM_BIN") or REPO / "target" / "debug" / "ham")
    if not path.is_file():
        message = f"{path} does not exist: build it (`cargo build -p ham-host`) or set HAM_BIN"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAM_") and k not in ("DATABASE_URL",) and not k.startswith("ANTHROPIC_")}
    env.update(extra)
    return env


def test_ham_loads_ham_example_toml(tmp_path):
    done = subprocess.run(
        [str(ham_binary()), "--config", str(TOML_EXAMPLE), "config"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    effective = tomllib.loads(done.stdout)
    for key, default in toml_defaults().items():
        assert comparable(effective.get(key)) == comparable(default), (
            f"{key}: ham runs with {effective.get(key)!r}, the example says {default!r}"
        )


def comparable(value: object) -> object:
    """Durations as seconds (`ham config` writes 60s as 1m and 7d as 7days),
    anything else as is."""
    units = {"s": 1, "sec": 1, "secs": 1, "m": 60, "min": 60, "mins": 60, "h": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400}
    if not isinstance(value, str) or not re.fullmatch(r"(\s*\d+\s*[a-z]+)+", value):
        return value
    parts = re.findall(r"(\d+)\s*([a-z]+)", value)
    if not all(unit in units for _, unit in parts):
        return value
    return sum(int(n) * units[unit] for n, unit in parts)


def test_ham_accepts_every_example_value_of_env_example(tmp_path):
    """All of .env.example uncommented at once (HAM_* lines with a value) is a
    configuration `ham config` accepts."""
    values = {k: v for k, v in env_example().items() if k.startswith("HAM_") and v}
    done = subprocess.run(
        [str(ham_binary()), "config"],
        cwd=tmp_path,
        env=clean_env(**values),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert 'addr = "0.0.0.0:3001"' in done.stdout
    assert "change-me" not in done.stdout, "the database password is shown"
