#!/usr/bin/env bash
# Offline checks of the Kubernetes manifests and the Dockerfile:
#
#   bash manifests/tests/run.sh [pytest arguments]
#
# Keeps a virtualenv in target/manifests-venv, rebuilt only when
# requirements.txt changes, and ends with one line `manifests: N passed, M failed`.
# Needs python3 (with venv) and kubectl on PATH.
set -uo pipefail
cd "$(dirname "$0")/../.."

venv=target/manifests-venv
requirements=manifests/tests/requirements.txt
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$requirements" | cut -d ' ' -f 1)

if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    rm -rf "$venv"
    mkdir -p target
    if ! python3 -m venv "$venv" ||
        ! "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"; then
        echo "could not create $venv with $requirements" >&2
        echo "manifests: 0 passed, 1 failed"
        exit 1
    fi
    echo "$want" >"$stamp"
fi

junit=target/manifests-junit.xml
rm -f "$junit"
# No .pyc or .pytest_cache in the source tree.
PYTHONDONTWRITEBYTECODE=1 "$venv/bin/python" -m pytest -p no:cacheprovider -q -rfE \
    --junitxml="$junit" manifests/tests "$@"
status=$?

counts=$("$venv/bin/python" - "$junit" <<'PY'
import sys
import xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("0 1 0")
    sys.exit()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
total = failed = skipped = 0
for s in suites:
    total += int(s.get("tests", 0))
    failed += int(s.get("failures", 0)) + int(s.get("errors", 0))
    skipped += int(s.get("skipped", 0))
print(total - failed - skipped, failed, skipped)
PY
)
read -r passed failed skipped <<<"$counts"
# pytest exits 5 when it collected nothing: that is a failure here too.
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
    failed=1
fi
if [ "$skipped" -gt 0 ]; then
    echo "manifests: $passed passed, $failed failed, $skipped skipped"
else
    echo "manifests: $passed passed, $failed failed"
fi
exit "$status"
