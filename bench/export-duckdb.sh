#!/usr/bin/env bash
# bench/export-duckdb.sh — check `privsync report export --format parquet`
# with DuckDB: run the demo (in-process simulators) on testdata/parquet/rows.csv,
# export its run as CSV and as Parquet, and have DuckDB (npm @duckdb/node-api,
# installed in testdata/parquet/gen) compare them. Needs node and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
go build -o "$out/privsync" ./cmd/privsync
(cd testdata/parquet/gen && { [ -d node_modules/@duckdb ] || npm ci --no-audit --no-fund >/dev/null; })
cd "$out"
rc=0
./privsync run --config "$root/testdata/demo.toml" --ledger demo.db --quiet "$root/testdata/parquet/rows.csv" 2>/dev/null || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || { echo "privsync run: exit $rc" >&2; exit 1; }
run=$(basename "$(ls reports/*.summary.json | tail -1)" .summary.json) # reports/RUN.csv
./privsync report export --ledger demo.db --run "$run" --format csv >export.csv
./privsync report export --ledger demo.db --run "$run" --format parquet >export.parquet
echo "run $run: $(($(wc -l <export.csv) - 1)) events, CSV $(wc -c <export.csv) bytes, Parquet $(wc -c <export.parquet) bytes"
node "$root/testdata/parquet/gen/check-export.mjs" "$out/export.csv" "$out/export.parquet"
