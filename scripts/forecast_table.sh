#!/usr/bin/env bash
# The forecast against the differential it forecasts (issue 24): for the README's quick
# start and each workload pattern, at each size, `status --json` then `backup --diff
# --json` on the same database, as a Markdown table.
#
#   scripts/forecast_table.sh [SIZE...]      default: 256MiB 1GiB
#   PAGEVAULT=path/to/pagevault scripts/forecast_table.sh
#
# Quick start: a fresh database, a full, 10,000 writes. Patterns: a database whose pages
# were all written once (a prefill as large as the database), a full, 10,000 writes of
# the pattern. Everything happens in a temporary folder, removed at the end.
set -euo pipefail
pv="${PAGEVAULT:-$(dirname "$0")/../target/release/pagevault}"
sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(256MiB 1GiB)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
row() { # name size prefill pattern
    local name="$1" size="$2" prefill="$3" pattern="$4"
    rm -rf "$work/db" "$work/repo"
    "$pv" init "$work/db" --size "$size" >/dev/null
    "$pv" repo init "$work/repo" >/dev/null
    if [[ "$prefill" == yes ]]; then
        local pages
        pages=$("$pv" status "$work/db" --json | field 'd["total_pages"]')
        "$pv" workload "$work/db" --writes "$pages" --pattern sequential --seed 1 >/dev/null
    fi
    "$pv" backup "$work/db" -r "$work/repo" --full >/dev/null
    "$pv" workload "$work/db" --writes 10000 --pattern "$pattern" --seed 2 >/dev/null
    local fc
    fc=$("$pv" status "$work/db" -r "$work/repo" --json)
    local forecast basis at_most stored
    forecast=$(echo "$fc" | field 'd["forecast"]["differential_bytes"]')
    at_most=$(echo "$fc" | field 'd["forecast"]["differential_bytes_at_most"]')
    basis=$(echo "$fc" | field 'd["forecast"]["basis"].split(":")[0]')
    stored=$("$pv" backup "$work/db" -r "$work/repo" --diff --json | field 'd["backup"]["bytes_stored"]')
    python3 - "$name" "$size" "$forecast" "$stored" "$at_most" "$basis" <<'PY'
import sys
name, size, f, s, m, basis = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
mib = lambda b: f"{b / 2**20:.2f} MiB"
print(f"| {name} | {size} | {mib(f)} ({basis}) | {mib(s)} | {f / s:.3f} | {mib(m)} |")
PY
}
echo "| case | size | forecast | differential stored | forecast / stored | bound (at most) |"
echo "|---|---|---|---|---|---|"
for size in "${sizes[@]}"; do
    row "quick start (fresh, uniform)" "$size" no uniform
    for pattern in uniform hot sequential; do
        row "$pattern (prefilled)" "$size" yes "$pattern"
    done
done
