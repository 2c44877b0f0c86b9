#!/usr/bin/env bash
# The same component on HAM and on `wasmtime serve`, loaded by `wrk` from a
# process of its own, in interleaved rounds (docs/benchmarks.md).
#
#   WASMTIME=/path/to/wasmtime scripts/compare-wasmtime-serve.sh
#
# Builds `target/release/ham` and `examples/wasi-proxy` (wasm32-wasip2, the
# `plugin` profile the bench uses) if they are stale, starts `ham serve` on a
# fresh SQLite data directory with the component installed, and `wasmtime serve
# -Scli -O pooling-allocator=y --max-instance-reuse-count 1000` on the same
# file. Then, ROUNDS times (default 7), loads each of HAM's `/healthz`, HAM's
# `/plugins/wasi-proxy/`, the bundled `/plugins/hello/` (HAM's own imports:
# a config read) and `wasmtime serve` for ROUND_SECONDS (default 3)
# with `wrk -t1 -c16`, one after the other, and reads each server's CPU time
# from /proc around its load. Prints every round, then the median (and
# quartiles) of the rounds' own ratios: requests per second, and server CPU per
# request, which a busy machine moves less than throughput. HAM_LOG passes
# through (default `info`, as `ham serve` runs). The servers and the data
# directory go at the end, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

WASMTIME=${WASMTIME:-wasmtime}
ROUNDS=${ROUNDS:-7}
SECONDS_PER_ROUND=${ROUND_SECONDS:-3}
HAM_PORT=${HAM_PORT:-18480}
WASMTIME_PORT=${WASMTIME_PORT:-18481}

command -v wrk > /dev/null || { echo "needs wrk (apt-get install -y wrk)" >&2; exit 1; }
command -v "$WASMTIME" > /dev/null || {
    echo "needs the wasmtime CLI: cargo install wasmtime-cli --version 48.0.8 --locked; set WASMTIME" >&2
    exit 1
}

cargo build --release --locked -p ham-host
# The build the bench and the tests use (`plugin` profile, its own target dir).
cargo build --locked --profile plugin --target wasm32-wasip2 --target-dir target/wasm -p wasi-proxy
component=target/wasm/wasm32-wasip2/plugin/wasi_proxy.wasm

data=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
    wait 2> /dev/null || true
    rm -rf "$data"
}
trap cleanup EXIT

HAM_DATA_DIR="$data" HAM_ADDR="127.0.0.1:$HAM_PORT" HAM_ADMIN_TOKEN=compare \
    target/release/ham serve > "$data/ham.log" 2>&1 &
ham_pid=$!
pids+=("$ham_pid")
"$WASMTIME" serve -Scli -O pooling-allocator=y --max-instance-reuse-count 1000 \
    --addr "127.0.0.1:$WASMTIME_PORT" "$component" > "$data/wasmtime.log" 2>&1 &
wasmtime_pid=$!
pids+=("$wasmtime_pid")

for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$HAM_PORT/healthz" > /dev/null \
        && curl -sf "http://127.0.0.1:$WASMTIME_PORT/" > /dev/null && break
    sleep 0.1
done
target/release/ham plugin install --manifest examples/wasi-proxy/plugin.toml \
    --component "$component" --url "http://127.0.0.1:$HAM_PORT" --token compare
curl -sf "http://127.0.0.1:$HAM_PORT/plugins/wasi-proxy/" > /dev/null

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# One load: prints "requests/s cpu-us-per-request".
load() {
    local pid=$1 url=$2 before after out
    before=$(cpu_ticks "$pid")
    out=$(wrk -t1 -c16 -d"${SECONDS_PER_ROUND}s" "$url")
    after=$(cpu_ticks "$pid")
    echo "$out" | awk -v ticks=$((after - before)) -v hz="$(getconf CLK_TCK)" '
        /requests in/ { requests = $1 }
        /Requests\/sec/ { rps = $2 }
        END { printf "%.0f %.2f\n", rps, ticks / hz * 1e6 / requests }'
}

routes=(
    "ham /healthz|$ham_pid|http://127.0.0.1:$HAM_PORT/healthz"
    "ham wasi-proxy|$ham_pid|http://127.0.0.1:$HAM_PORT/plugins/wasi-proxy/"
    "ham hello|$ham_pid|http://127.0.0.1:$HAM_PORT/plugins/hello/"
    "wasmtime serve|$wasmtime_pid|http://127.0.0.1:$WASMTIME_PORT/"
)
for route in "${routes[@]}"; do # warm up
    IFS='|' read -r _ _ url <<< "$route"
    wrk -t1 -c16 -d1s "$url" > /dev/null
done

results=$data/results
printf '%-6s %-16s %12s %14s\n' round route "requests/s" "CPU us/req"
for round in $(seq "$ROUNDS"); do
    for route in "${routes[@]}"; do
        IFS='|' read -r name pid url <<< "$route"
        read -r rps cpu <<< "$(load "$pid" "$url")"
        printf '%-6s %-16s %12s %14s\n' "$round" "$name" "$rps" "$cpu"
        echo "$round|$name|$rps|$cpu" >> "$results"
    done
done

# Median and quartiles of the rounds' own ratios a/b of field f (3: requests/s, 4: CPU).
ratios() {
    awk -F'|' -v a="$1" -v b="$2" -v f="$3" '
        $2 == a { x[$1] = $f } $2 == b { y[$1] = $f }
        END { for (r in x) print x[r] / y[r] }' "$results" | sort -g | awk '
        { v[NR] = $1 }
        END {
            printf "%.2f (quartiles %.2f-%.2f)\n", v[int((NR - 1) * 0.5 + 1.5)], v[int((NR - 1) * 0.25 + 1.5)], v[int((NR - 1) * 0.75 + 1.5)]
        }'
}
echo
echo "ham wasi-proxy / wasmtime serve, requests/s:  $(ratios 'ham wasi-proxy' 'wasmtime serve' 3)"
echo "ham wasi-proxy / wasmtime serve, CPU per req: $(ratios 'ham wasi-proxy' 'wasmtime serve' 4)"
echo "ham wasi-proxy / ham /healthz, requests/s:    $(ratios 'ham wasi-proxy' 'ham /healthz' 3)"
echo "ham hello / ham /healthz, requests/s:         $(ratios 'ham hello' 'ham /healthz' 3)"
