#!/usr/bin/env python3
"""s3-backup.py: upload HAM's PostgreSQL backups to S3-compatible storage, then
keep 7 daily, 4 weekly and 12 monthly backups there and delete the rest.

    S3_ENDPOINT=https://s3.example.com S3_BUCKET=ham-backups \\
    S3_ACCESS_KEY=... S3_SECRET_KEY=... python3 s3-backup.py /backup

DIR holds the `ham-<UTC %Y%m%dT%H%M%SZ>.sql.gz` files pg-backup.sh writes. Each
is uploaded to `s3://$S3_BUCKET/$S3_PREFIX<name>` unless an object of the same
name and size is there already, and checked (HEAD: the stored size is the
file's). Only when every upload checked out are the backups under the prefix
pruned (`select`, below). Objects under the prefix whose names are not
backups, and everything outside the prefix, are never touched. A failed upload
or check exits non-zero before anything is deleted.

Settings (environment):
  S3_ENDPOINT    the store's URL, e.g. https://s3.eu-central-1.amazonaws.com or
                 http://minio.lan:9000 (requests are path-style: ENDPOINT/BUCKET/KEY)
  S3_BUCKET      the bucket, which must exist
  S3_ACCESS_KEY, S3_SECRET_KEY
  S3_REGION      for the signature (AWS Signature Version 4); default us-east-1,
                 which MinIO and most other stores accept
  S3_PREFIX      default postgres-backups/ham/ ("" for the bucket's root)
  KEEP_DAILY, KEEP_WEEKLY, KEEP_MONTHLY   default 7, 4 and 12

Options:
  --dry-run          upload, then print what pruning would delete, delete nothing
  --remove-uploaded  delete each local file once its upload checked out
  --every SECONDS    run again every SECONDS, forever (Docker Compose); a failed
                     round is reported and retried in the next one

Only the Python standard library: the script runs in a plain `python` image.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

BACKUP_NAME = re.compile(r"ham-(\d{8}T\d{6}Z)\.sql\.gz")
DEFAULT_PREFIX = "postgres-backups/ham/"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class BackupError(Exception):
    """A failure the operator must see; the message names what failed."""


# --- Retention: which backups to keep ---------------------------------------------


@dataclass(frozen=True)
class Retention:
    daily: int = 7
    weekly: int = 4
    monthly: int = 12


def backup_time(name: str) -> dt.datetime | None:
    """The UTC time in a backup's file name, or None for any other name."""
    match = BACKUP_NAME.fullmatch(name)
    if match is None:
        return None
    return dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)


def select(backups: Iterable[tuple[str, dt.datetime]], retention: Retention) -> tuple[dict[str, list[str]], list[str]]:
    """Splits backups (name, UTC time) into those to keep, each with the reasons
    it is kept, and those to delete (newest first).

    Kept: the newest backup of each of the `daily` most recent days that have a
    backup, of each of the `weekly` most recent ISO weeks that have one, and of
    each of the `monthly` most recent months that have one (UTC; a backup may
    be kept for several reasons), and always the newest backup of all. Days
    without a backup do not count: after an outage the last good backups stay.
    """
    ordered = sorted(backups, key=lambda b: (b[1], b[0]), reverse=True)
    keep: dict[str, list[str]] = {}
    rules = (
        ("daily", retention.daily, lambda t: t.strftime("%Y-%m-%d")),
        ("weekly", retention.weekly, lambda t: "{}-W{:02d}".format(*t.isocalendar()[:2])),
        ("monthly", retention.monthly, lambda t: t.strftime("%Y-%m")),
    )
    for rule, count, period_of in rules:
        seen: set[str] = set()
        for name, when in ordered:
            period = period_of(when)
            if period in seen:
                continue
            if len(seen) == count:
                break
            seen.add(period)
            keep.setdefault(name, []).append(f"{rule} {period}")
    if ordered:
        keep.setdefault(ordered[0][0], []).append("newest")
    delete = [name for name, _ in ordered if name not in keep]
    return keep, delete


# --- S3: path-style requests signed with AWS Signature Version 4 -------------------


def quote(text: str, safe: str = "-_.~") -> str:
    return urllib.parse.quote(text, safe=safe)


def signed_headers(
    method: str,
    url: str,
    payload_sha256: str,
    access_key: str,
    secret_key: str,
    region: str,
    now: dt.datetime,
) -> dict[str, str]:
    """The headers that authenticate one request (AWS Signature Version 4,
    service s3). `url` is already encoded as it will be sent."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
        host = f"{host}:{parts.port}"
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    query = sorted(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    canonical_query = "&".join(f"{quote(k)}={quote(v)}" for k, v in query)
    headers = {"host": host, "x-amz-content-sha256": payload_sha256, "x-amz-date": amz_date}
    names = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            method,
            parts.path or "/",
            canonical_query,
            "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
            names,
            payload_sha256,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return {
        "Host": host,
        "x-amz-content-sha256": payload_sha256,
        "x-amz-date": amz_date,
        "Authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={names}, Signature={signature}",
    }


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int


class Bucket:
    """The few S3 calls a backup needs: list, head, put, delete."""

    def __init__(self, endpoint: str, bucket: str, access_key: str, secret_key: str, region: str, timeout: float = 120):
        if not re.match(r"https?://[^/]+", endpoint):
            raise BackupError(f"S3_ENDPOINT {endpoint!r} is not an http:// or https:// URL")
        self.base = endpoint.rstrip("/") + "/" + quote(bucket)
        self.bucket = bucket
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.timeout = timeout

    def _request(self, method: str, key: str = "", query: dict[str, str] | None = None, body: Path | None = None):
        url = self.base + "/" + quote(key, safe="-_.~/") if key else self.base + "/"
        if query:
            url += "?" + "&".join(f"{quote(k)}={quote(v)}" for k, v in sorted(query.items()))
        payload = EMPTY_SHA256
        data = None
        headers = {}
        if body is not None:
            digest = hashlib.sha256()
            with body.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            payload = digest.hexdigest()
            headers["Content-Length"] = str(body.stat().st_size)
            # Without it urllib sends application/x-www-form-urlencoded.
            headers["Content-Type"] = "application/gzip"
            data = body.open("rb")
        now = dt.datetime.now(dt.timezone.utc)
        headers.update(signed_headers(method, url, payload, self.access_key, self.secret_key, self.region, now))
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        what = f"{method} s3://{self.bucket}/{key}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.headers, response.read()
        except urllib.error.HTTPError as e:
            if method == "HEAD" and e.code == 404:
                return None, b""
            raise BackupError(f"{what}: HTTP {e.code}{s3_error(e.read())}") from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise BackupError(f"{what}: {reason}") from None
        finally:
            if data is not None:
                data.close()

    def list(self, prefix: str) -> list[StoredObject]:
        """Every object whose key starts with `prefix`, in pages of up to 1000."""
        objects: list[StoredObject] = []
        token = None
        while True:
            query = {"list-type": "2", "prefix": prefix}
            if token:
                query["continuation-token"] = token
            _, body = self._request("GET", query=query)
            try:
                root = ET.fromstring(body)
            except ET.ParseError as e:
                raise BackupError(f"listing s3://{self.bucket}/{prefix}: not an S3 answer ({e})") from None
            for item in root.findall("{*}Contents"):
                objects.append(StoredObject(item.findtext("{*}Key", ""), int(item.findtext("{*}Size", "0"))))
            token = root.findtext("{*}NextContinuationToken")
            if root.findtext("{*}IsTruncated") != "true" or not token:
                return objects

    def size(self, key: str) -> int | None:
        headers, _ = self._request("HEAD", key)
        return None if headers is None else int(headers.get("Content-Length", "-1"))

    def put(self, key: str, path: Path) -> None:
        self._request("PUT", key, body=path)

    def delete(self, key: str) -> None:
        self._request("DELETE", key)


def s3_error(body: bytes) -> str:
    """`: Code: Message` from an S3 error document, if it is one."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return ""
    code, message = root.findtext("Code"), root.findtext("Message")
    return f": {code}: {message}" if code else ""


# --- The run ----------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str
    prefix: str
    retention: Retention

    @staticmethod
    def from_env(env: dict[str, str]) -> Settings:
        missing = [k for k in ("S3_ENDPOINT", "S3_BUCKET", "S3_ACCESS_KEY", "S3_SECRET_KEY") if not env.get(k)]
        if missing:
            raise BackupError(f"{', '.join(missing)} not set: name the S3-compatible store to upload to")
        prefix = env.get("S3_PREFIX", DEFAULT_PREFIX)
        if prefix.startswith("/") or (prefix and not prefix.endswith("/")):
            raise BackupError(f"S3_PREFIX {prefix!r} must end with / and not start with one (or be empty)")
        counts = []
        for name, default in (("KEEP_DAILY", 7), ("KEEP_WEEKLY", 4), ("KEEP_MONTHLY", 12)):
            value = env.get(name) or str(default)
            if not value.isdigit():
                raise BackupError(f"{name}={value!r} is not a whole number")
            counts.append(int(value))
        return Settings(
            env["S3_ENDPOINT"],
            env["S3_BUCKET"],
            env["S3_ACCESS_KEY"],
            env["S3_SECRET_KEY"],
            env.get("S3_REGION") or "us-east-1",
            prefix,
            Retention(*counts),
        )


def log(message: str) -> None:
    print(f"s3-backup: {message}", flush=True)


def upload(bucket: Bucket, prefix: str, directory: Path, remove_uploaded: bool) -> int:
    """Uploads every backup in `directory`; how many there were."""
    files = sorted(p for p in directory.iterdir() if p.is_file() and backup_time(p.name))
    for path in files:
        key = prefix + path.name
        size = path.stat().st_size
        if bucket.size(key) == size:
            log(f"{key} is already stored ({size} bytes)")
        else:
            bucket.put(key, path)
            stored = bucket.size(key)
            if stored != size:
                raise BackupError(f"s3://{bucket.bucket}/{key} holds {stored} bytes after the upload, not {size}")
            log(f"uploaded {path.name} to s3://{bucket.bucket}/{key} ({size} bytes)")
        if remove_uploaded:
            path.unlink()
    return len(files)


def prune(bucket: Bucket, prefix: str, retention: Retention, dry_run: bool) -> list[str]:
    """Deletes the backups under `prefix` that `select` does not keep; their keys."""
    stored = []
    for obj in bucket.list(prefix):
        name = obj.key[len(prefix) :]
        when = backup_time(name)
        if when is not None:  # a backup directly under the prefix; nothing else
            stored.append((name, when))
    keep, delete = select(stored, retention)
    for name, reasons in sorted(keep.items(), reverse=True):
        log(f"keep {prefix}{name} ({', '.join(reasons)})")
    for name in delete:
        if dry_run:
            log(f"would delete {prefix}{name}")
        else:
            bucket.delete(prefix + name)
            log(f"deleted {prefix}{name}")
    return [prefix + name for name in delete]


def run_once(settings: Settings, directory: Path, dry_run: bool, remove_uploaded: bool, require_backup: bool) -> None:
    bucket = Bucket(settings.endpoint, settings.bucket, settings.access_key, settings.secret_key, settings.region)
    try:
        count = upload(bucket, settings.prefix, directory, remove_uploaded)
    except BackupError as e:
        raise BackupError(f"{e}; nothing was deleted") from None
    if count == 0:
        if require_backup:
            raise BackupError(f"no ham-*.sql.gz backup in {directory}: nothing uploaded, nothing pruned")
        return
    prune(bucket, settings.prefix, settings.retention, dry_run)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="where pg-backup.sh wrote the backups")
    parser.add_argument("--dry-run", action="store_true", help="delete nothing, print what pruning would delete")
    parser.add_argument("--remove-uploaded", action="store_true", help="delete local files once uploaded")
    parser.add_argument("--every", type=int, metavar="SECONDS", help="repeat forever every SECONDS")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(dict(os.environ))
        if not args.directory.is_dir():
            raise BackupError(f"{args.directory} is not a directory")
    except BackupError as e:
        print(f"s3-backup: {e}", file=sys.stderr)
        return 2
    if args.every is None:
        try:
            run_once(settings, args.directory, args.dry_run, args.remove_uploaded, require_backup=True)
        except BackupError as e:
            print(f"s3-backup: {e}", file=sys.stderr)
            return 1
        return 0
    log(f"watching {args.directory} every {args.every} s")
    while True:
        try:
            run_once(settings, args.directory, args.dry_run, args.remove_uploaded, require_backup=False)
        except BackupError as e:
            print(f"s3-backup: {e}; trying again in {args.every} s", file=sys.stderr)
        time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
