#!/usr/bin/env bash
# The API is what the document says: schemathesis (`--checks all`) against
# `GET /api/openapi.json` of a real `ham`.
#
#   scripts/schemathesis.sh [extra schemathesis arguments]
#
# Starts `target/debug/ham` (build it first: `cargo build -p ham-host`) on a fresh
# SQLite data directory under target/tmp, with the bundled plugins configured: the
# coach against `ham fake-llm`, the Strava sync against a loopback address that
# answers 404 to everything (the fake LLM's, under /strava: no run reaches Strava,
# since no user is ever connected). Registers the first user (an admin) and runs
# signed in with its session cookie. The server, the fake and the data directory
# go at the end, whatever happens (a trap).
#
# The virtualenv target/schemathesis-venv comes from `.ci/run`. Time is bounded by
# SCHEMATHESIS_MAX_EXAMPLES (cases per operation and phase, default 100: about a
# minute and a half on 2 cores), and the whole run is stopped after
# SCHEMATHESIS_TIMEOUT seconds (default 900); the seed is fixed (SCHEMATHESIS_SEED)
# so a failure reproduces. Ends with one line `schemathesis: N passed, M failed`:
# the run counts as one test.
set -uo pipefail
cd "$(dirname "$0")/.."

fail() {
    echo "schemathesis.sh: $*" >&2
    echo "schemathesis: 0 passed, 1 failed"
    exit 1
}

st=target/schemathesis-venv/bin/schemathesis
[ -x "$st" ] || fail "$st is missing; run .ci/run, or: python3 -m venv target/schemathesis-venv && target/schemathesis-venv/bin/pip install -r scripts/schemathesis-requirements.txt"
ham=target/debug/ham
[ -x "$ham" ] || fail "$ham is missing; run cargo build -p ham-host"

mkdir -p target/tmp
work=$(mktemp -d target/tmp/schemathesis.XXXXXX) || fail "cannot create a temporary directory"
pids=()
cleanup() {
    # The newest first: schemathesis (when interrupted), then ham, then the fake.
    local i
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        kill "${pids[i]}" 2>/dev/null
        wait "${pids[i]}" 2>/dev/null
    done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits (up to 60 s) for a line matching $2 in file $1 and prints it.
await_line() {
    local deadline=$((SECONDS + 60)) line
    while [ "$SECONDS" -lt "$deadline" ]; do
        line=$(grep -m 1 -E "$2" "$1" 2>/dev/null) && {
            echo "$line"
            return 0
        }
        sleep 0.2
    done
    return 1
}

# The fake model: prints its base URL once it listens.
"$ham" fake-llm --addr 127.0.0.1:0 --delay-ms 1 >"$work/fake-llm.out" 2>"$work/fake-llm.err" &
pids+=($!)
llm_url=$(await_line "$work/fake-llm.out" '^http://') || fail "the fake LLM did not start: $(cat "$work/fake-llm.err")"

export HAM_ADDR=127.0.0.1:0
export HAM_DATA_DIR="$work/data"
export HAM_LOG_FORMAT=json
export HAM_LOG="${HAM_LOG:-info}"
export HAM_SECRET_KEY=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
export HAM_LLM_PROVIDER=anthropic ANTHROPIC_BASE_URL="$llm_url" ANTHROPIC_API_KEY=fake
export HAM_PLUGIN_STRAVA_SYNC_CLIENT_ID=12345
export HAM_PLUGIN_STRAVA_SYNC_CLIENT_SECRET=fake-secret
export HAM_PLUGIN_STRAVA_SYNC_VERIFY_TOKEN=fake-verify-token
export HAM_PLUGIN_STRAVA_SYNC_API_BASE_URL="$llm_url/strava/api/v3"
export HAM_PLUGIN_STRAVA_SYNC_OAUTH_BASE_URL="$llm_url/strava/oauth"
unset HAM_ADMIN_TOKEN HAM_DATABASE_URL DATABASE_URL HAM_CONFIG HAM_AUTH HAM_PLUGINS_DIR

"$ham" serve >"$work/ham.log" 2>&1 &
pids+=($!)
addr=$(await_line "$work/ham.log" '"message":"ham serving"' | sed -n 's/.*"addr":"\([^"]*\)".*/\1/p')
[ -n "$addr" ] || fail "ham did not start: $(tail -n 20 "$work/ham.log")"
base="http://$addr"

# The first account is the admin, signed in by its registration.
cookie=$(curl -sS -D - -o /dev/null -H 'content-type: application/json' \
    -d '{"username": "schemathesis", "password": "correct horse battery"}' \
    "$base/api/auth/register" | tr -d '\r' | sed -n 's/^set-cookie: \(ham_session=[^;]*\).*/\1/Ip')
[ -n "$cookie" ] || fail "registering the first user gave no session cookie"

# Where a request the schema admits may still be refused, and why. JSON Schema
# cannot say these rules, so `positive_data_acceptance` also takes the refusal
# the document describes for them; every other check stays as it is.
# - Cross-field and lookup rules: a habit's kind decides its target and entries,
#   `times` <= `days`, a time zone must be in the IANA database, a `from` after
#   `to` or a range over 3660 days, a rule's `habit_id` must name a habit, an
#   import's `format` and `version` are fixed, a Strava `state` is one the server
#   issued, an upload's component must be a plugin.
# - Whole floats: since OpenAPI 3.1 (JSON Schema 2020-12) `2.0` is an integer, and
#   schemathesis sends it where an integer goes; serde reads integers only as
#   `2` and refuses `2.0` (400/422). Every integer in a JSON body is affected.
accept_also() { # METHOD PATH STATUS...
    local method=$1 path=$2
    shift 2
    local statuses='"2xx", "3xx", "401", "403", "404", "409", "429", "5xx"'
    for status in "$@"; do statuses="$statuses, \"$status\""; done
    # One filter: separate method and path filters would match either.
    printf '[[operations]]\ninclude-name = "%s %s"\nchecks.positive_data_acceptance.expected-statuses = [%s]\n\n' \
        "$method" "$path" "$statuses"
}
{
    accept_also POST /api/auth/register 422            # username and password rules
    accept_also POST /api/auth/login 422               # over-long credentials
    accept_also PATCH /api/me 422                      # an IANA time zone
    accept_also POST /api/me/password 422              # the password rules
    accept_also POST /api/admin/users 422              # username and password rules
    accept_also PATCH '/api/admin/users/{id}' 422      # the password rules
    accept_also POST /api/habits 422                   # habit rules; whole floats
    accept_also PATCH '/api/habits/{id}' 422           # habit rules; whole floats
    accept_also PUT '/api/habits/{id}/entries/{date}' 422 # the habit's kind
    accept_also GET '/api/habits/{id}/stats' 422       # from <= to, 3660 days
    accept_also POST /api/import 400 422               # format, version; whole floats
    accept_also PUT '/api/admin/plugins/{name}' 400 422 # no generated body is a plugin
    accept_also GET /api/strava/callback 400           # the state the server issued
    accept_also POST /api/strava/webhook 400           # whole floats
    accept_also POST /api/strava/rules 400             # habit_id names a habit; whole floats
    accept_also PATCH '/api/strava/rules/{id}' 400     # the same
} >"$work/schemathesis.toml"

echo "schemathesis $("$st" --version | sed 's/.* //') against $base"
# Logging out would end the session the run uses: that route is tested by
# host/tests. Everything else runs, with every check. From the work directory:
# schemathesis keeps its crash cache there. In the background, so a signal to
# this script reaches the trap at once (`timeout` passes it on).
# One worker: schemathesis' workers are threads, and CPython 3.11 (3.11.7 here)
# keeps the AST constructor's recursion depth in state all threads share, so two
# threads in `ast.parse` at once (hypothesis reads lambdas' source to describe
# them) can fail the run with "AST constructor recursion depth mismatch" (CPython
# gh-106905; a CI run failed so). One worker costs about 15 s.
st=$PWD/$st
(cd "$work" && exec timeout "${SCHEMATHESIS_TIMEOUT:-900}" "$st" --no-color \
    --config-file schemathesis.toml run "$base/api/openapi.json" \
    --checks all \
    -H "Cookie: $cookie" \
    --exclude-path /api/auth/logout \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-100}" \
    --seed "${SCHEMATHESIS_SEED:-20261130}" \
    --workers 1 \
    --request-timeout 30 \
    --max-redirects 0 \
    --generation-database none \
    "$@") &
pids+=($!)
wait "${pids[-1]}"
status=$?
unset 'pids[-1]' # reaped: its id may be reused

if grep -q '"level":"ERROR"' "$work/ham.log"; then
    echo "ham logged errors during the run:" >&2
    grep '"level":"ERROR"' "$work/ham.log" | head -n 20 >&2
fi
if [ "$status" -eq 0 ]; then
    echo "schemathesis: 1 passed, 0 failed"
else
    echo "schemathesis: 0 passed, 1 failed"
fi
exit "$status"
