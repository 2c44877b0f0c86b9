"""The backup upload and retention script (manifests/base/backup/s3-backup.py):
its selection of what to keep, its request signatures, and whole runs against a
local S3-compatible server (moto's server mode, on 127.0.0.1).

    bash manifests/tests/run.sh -k backup_retention
"""

from __future__ import annotations

import datetime as dt
import gzip
import importlib.util
import os
import subprocess
import sys
import urllib.request

import boto3
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from moto.server import ThreadedMotoServer

from conftest import BASE

SCRIPT = BASE / "backup" / "s3-backup.py"
PREFIX = "postgres-backups/ham/"
ACCESS_KEY = "ham-backup"
SECRET_KEY = "a-secret-that-must-never-be-printed"


def load_script():
    spec = importlib.util.spec_from_file_location("s3_backup", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["s3_backup"] = module
    spec.loader.exec_module(module)
    return module


s3b = load_script()


def name(day: str, time: str = "031500") -> str:
    return f"ham-{day.replace('-', '')}T{time}Z.sql.gz"


def daily(first: dt.date, last: dt.date) -> list[str]:
    """A backup at 03:15 UTC every day from first to last."""
    days = (last - first).days + 1
    return [name((first + dt.timedelta(days=n)).isoformat()) for n in range(days)]


def timed(names: list[str]) -> list[tuple[str, dt.datetime]]:
    return [(n, s3b.backup_time(n)) for n in names]


# Daily backups from 2025-10-01 to 2026-11-24 (a Tuesday), and what 7 daily, 4
# weekly and 12 monthly keep of them, worked out by hand:
HISTORY = daily(dt.date(2025, 10, 1), dt.date(2026, 11, 24))
KEPT = {
    # the 7 most recent days
    name("2026-11-24"): ["daily 2026-11-24", "weekly 2026-W48", "monthly 2026-11", "newest"],
    name("2026-11-23"): ["daily 2026-11-23"],
    name("2026-11-22"): ["daily 2026-11-22", "weekly 2026-W47"],
    name("2026-11-21"): ["daily 2026-11-21"],
    name("2026-11-20"): ["daily 2026-11-20"],
    name("2026-11-19"): ["daily 2026-11-19"],
    name("2026-11-18"): ["daily 2026-11-18"],
    # Sundays, the last day of ISO weeks 46 and 45
    name("2026-11-15"): ["weekly 2026-W46"],
    name("2026-11-08"): ["weekly 2026-W45"],
    # the last day of the 11 months before November
    name("2026-10-31"): ["monthly 2026-10"],
    name("2026-09-30"): ["monthly 2026-09"],
    name("2026-08-31"): ["monthly 2026-08"],
    name("2026-07-31"): ["monthly 2026-07"],
    name("2026-06-30"): ["monthly 2026-06"],
    name("2026-05-31"): ["monthly 2026-05"],
    name("2026-04-30"): ["monthly 2026-04"],
    name("2026-03-31"): ["monthly 2026-03"],
    name("2026-02-28"): ["monthly 2026-02"],
    name("2026-01-31"): ["monthly 2026-01"],
    name("2025-12-31"): ["monthly 2025-12"],
}


# --- Selection ---------------------------------------------------------------------


def test_a_year_of_daily_backups_keeps_7_daily_4_weekly_12_monthly():
    keep, delete = s3b.select(timed(HISTORY), s3b.Retention())
    assert keep == KEPT
    assert len(keep) == 20
    assert sorted(delete) == sorted(set(HISTORY) - set(KEPT))
    assert delete == sorted(delete, reverse=True), "newest first"


def test_the_newest_of_a_day_week_and_month_is_kept():
    # A pre-upgrade backup in the afternoon beside the nightly one.
    backups = [name("2026-11-24"), name("2026-11-24", "140000"), name("2026-11-23")]
    keep, delete = s3b.select(timed(backups), s3b.Retention(daily=7, weekly=4, monthly=12))
    assert set(keep) == {name("2026-11-24", "140000"), name("2026-11-23")}
    assert delete == [name("2026-11-24")]


def test_iso_weeks_cross_the_new_year():
    # 2026-12-30 (Wednesday) and 2027-01-02 (Saturday) are both in ISO week 2026-W53.
    backups = [name("2026-12-30"), name("2027-01-02")]
    keep, delete = s3b.select(timed(backups), s3b.Retention(daily=0, weekly=2, monthly=0))
    assert keep == {name("2027-01-02"): ["weekly 2026-W53", "newest"]}
    assert delete == [name("2026-12-30")]
    # The months differ, so 12 monthly keep both.
    keep, delete = s3b.select(timed(backups), s3b.Retention(daily=0, weekly=0, monthly=12))
    assert set(keep) == set(backups) and delete == []


def test_days_without_a_backup_do_not_count():
    """After a three-week outage the last 7 good days are still there."""
    before = daily(dt.date(2026, 10, 1), dt.date(2026, 10, 10))
    backups = before + [name("2026-11-01")]
    keep, _ = s3b.select(timed(backups), s3b.Retention(daily=7, weekly=0, monthly=0))
    assert set(keep) == {name("2026-11-01")} | set(before[-6:])


def test_the_newest_backup_is_never_deleted():
    backups = daily(dt.date(2026, 11, 1), dt.date(2026, 11, 24))
    keep, delete = s3b.select(timed(backups), s3b.Retention(daily=0, weekly=0, monthly=0))
    assert keep == {name("2026-11-24"): ["newest"]}
    assert len(delete) == len(backups) - 1
    assert s3b.select([], s3b.Retention()) == ({}, [])


@pytest.mark.parametrize(
    "other",
    [
        "ham-20261124T031500Z.sql.gz.partial",
        "ham-20261124T031500Z.sql.gz.dumped",
        "ham-latest.sql.gz",
        "ham-20261124.sql.gz",
        "notes.txt",
        "old/ham-20261124T031500Z.sql.gz",
    ],
)
def test_only_backup_names_are_backups(other):
    assert s3b.backup_time(other) is None
    assert s3b.backup_time("ham-20261124T031500Z.sql.gz") == dt.datetime(2026, 11, 24, 3, 15, tzinfo=dt.timezone.utc)


# --- Signatures --------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, url, body",
    [
        ("PUT", "https://s3.eu-central-1.amazonaws.com/ham-backups/postgres-backups/ham/ham-20261124T031500Z.sql.gz", b"dump"),
        ("GET", "http://minio.lan:9000/ham-backups/?continuation-token=a%2Bb%3D&list-type=2&prefix=postgres-backups%2Fham%2F", b""),
        ("HEAD", "http://127.0.0.1:9000/ham-backups/odd%20name%2Bplus.sql.gz", b""),
        ("DELETE", "https://s3.example.com:8443/ham-backups/postgres-backups/ham/ham-20250101T031500Z.sql.gz", b""),
    ],
)
def test_signatures_match_botocore(method, url, body):
    """The script signs as AWS' own SDK does (Signature Version 4, service s3)."""
    import hashlib

    when = dt.datetime(2026, 11, 24, 3, 15, 7, tzinfo=dt.timezone.utc)
    payload = hashlib.sha256(body).hexdigest()
    ours = s3b.signed_headers(method, url, payload, ACCESS_KEY, SECRET_KEY, "eu-central-1", when)

    request = AWSRequest(method=method, url=url, data=body)
    request.headers["X-Amz-Content-SHA256"] = payload
    request.headers["X-Amz-Date"] = when.strftime("%Y%m%dT%H%M%SZ")
    request.context["timestamp"] = when.strftime("%Y%m%dT%H%M%SZ")
    auth = S3SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "eu-central-1")
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    assert ours["Authorization"].endswith(f"Signature={signature}"), canonical
    assert ours["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20261124/eu-central-1/s3/aws4_request")


# --- Whole runs against a local S3-compatible server ---------------------------------


@pytest.fixture()
def store():
    """A fresh moto S3 server on 127.0.0.1 and a client for it."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto keeps its buckets in the process, across servers: start empty.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).close()
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="ham-backups")
    try:
        yield endpoint, client
    finally:
        server.stop()


# Objects the retention must never touch: under the prefix but not backups, in a
# "folder" below it, or outside it.
UNTOUCHED = [
    PREFIX + "notes.txt",
    PREFIX + "ham-20200101T031500Z.sql.gz.partial",
    PREFIX + "old/ham-20200101T031500Z.sql.gz",
    "postgres-backups/hamster/ham-20200101T031500Z.sql.gz",
    "postgres-backups/ham-20200101T031500Z.sql.gz",
    "ham/ham-20200101T030000Z.sql.gz",
]


def keys(client) -> set[str]:
    found = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="ham-backups"):
        found |= {o["Key"] for o in page.get("Contents", [])}
    return found


def run_script(endpoint: str, directory, *args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "S3_ENDPOINT": endpoint,
        "S3_BUCKET": "ham-backups",
        "S3_ACCESS_KEY": ACCESS_KEY,
        "S3_SECRET_KEY": SECRET_KEY,
    }
    environment.update(env)
    done = subprocess.run(
        [sys.executable, "-B", str(SCRIPT), *args, str(directory)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert SECRET_KEY not in done.stdout + done.stderr, "the secret key was printed"
    return done


@pytest.fixture()
def seeded(store, tmp_path):
    """The bucket holds a year of nightly backups up to 2026-11-23 and the
    untouchable objects; the local directory holds tonight's backup."""
    endpoint, client = store
    for key in [PREFIX + n for n in HISTORY[:-1]] + UNTOUCHED:
        client.put_object(Bucket="ham-backups", Key=key, Body=b"old")
    tonight = tmp_path / "backup"
    tonight.mkdir()
    (tonight / HISTORY[-1]).write_bytes(gzip.compress(b"-- PostgreSQL database dump\n" * 1000))
    (tonight / (HISTORY[-1] + ".partial")).write_bytes(b"an unfinished dump is never uploaded")
    return endpoint, client, tonight


def test_a_run_uploads_tonight_and_prunes_only_backups_under_the_prefix(seeded):
    endpoint, client, tonight = seeded
    done = run_script(endpoint, tonight)
    assert done.returncode == 0, done.stderr
    assert keys(client) == {PREFIX + n for n in KEPT} | set(UNTOUCHED)
    stored = client.get_object(Bucket="ham-backups", Key=PREFIX + HISTORY[-1])["Body"].read()
    assert stored == (tonight / HISTORY[-1]).read_bytes()
    assert f"uploaded {HISTORY[-1]}" in done.stdout
    assert f"deleted {PREFIX}{name('2026-11-17')}" in done.stdout
    assert f"keep {PREFIX}{name('2026-11-15')} (weekly 2026-W46)" in done.stdout

    # Again: tonight's file is already there, and nothing more is deleted.
    again = run_script(endpoint, tonight)
    assert again.returncode == 0, again.stderr
    assert "is already stored" in again.stdout
    assert "deleted" not in again.stdout
    assert keys(client) == {PREFIX + n for n in KEPT} | set(UNTOUCHED)


def test_the_prefix_and_the_counts_are_settings(seeded):
    endpoint, client, tonight = seeded
    client.put_object(Bucket="ham-backups", Key="elsewhere/" + name("2026-11-01"), Body=b"old")
    client.put_object(Bucket="ham-backups", Key="elsewhere/" + name("2026-11-02"), Body=b"old")
    done = run_script(endpoint, tonight, S3_PREFIX="elsewhere/", KEEP_DAILY="1", KEEP_WEEKLY="0", KEEP_MONTHLY="0")
    assert done.returncode == 0, done.stderr
    assert {k for k in keys(client) if k.startswith("elsewhere/")} == {"elsewhere/" + HISTORY[-1]}
    assert {k for k in keys(client) if k.startswith(PREFIX)} == {PREFIX + n for n in HISTORY[:-1]} | {
        k for k in UNTOUCHED if k.startswith(PREFIX)
    }


def test_a_dry_run_deletes_nothing(seeded):
    endpoint, client, tonight = seeded
    before = keys(client)
    done = run_script(endpoint, tonight, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert f"would delete {PREFIX}{name('2026-11-17')}" in done.stdout
    assert keys(client) == before | {PREFIX + HISTORY[-1]}


def test_remove_uploaded_empties_the_local_directory(seeded):
    endpoint, client, tonight = seeded
    done = run_script(endpoint, tonight, "--remove-uploaded")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tonight.iterdir()) == [HISTORY[-1] + ".partial"]
    assert PREFIX + HISTORY[-1] in keys(client)


def test_no_backup_to_upload_deletes_nothing(seeded):
    endpoint, client, tonight = seeded
    (tonight / HISTORY[-1]).unlink()
    before = keys(client)
    done = run_script(endpoint, tonight)
    assert done.returncode == 1
    assert "no ham-*.sql.gz backup in" in done.stderr
    assert keys(client) == before


def test_a_failed_upload_deletes_nothing(seeded):
    endpoint, client, tonight = seeded
    before = keys(client)
    done = run_script(endpoint, tonight, S3_BUCKET="no-such-bucket")
    assert done.returncode == 1
    assert "s3://no-such-bucket/" in done.stderr and "nothing was deleted" in done.stderr
    assert "NoSuchBucket" in done.stderr
    assert keys(client) == before


def test_missing_settings_are_named(tmp_path):
    done = subprocess.run(
        [sys.executable, "-B", str(SCRIPT), str(tmp_path)],
        env={"PATH": os.environ.get("PATH", ""), "S3_BUCKET": "b"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY not set" in done.stderr
