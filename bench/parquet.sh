#!/usr/bin/env bash
# bench/parquet.sh — `privsync plan` on the same rows as CSV and as snappy
# Parquet, whole process under /usr/bin/time -v, against an empty ledger
# (case (a) of plan.sh: every row is read, validated and planned).
#
# Usage: bench/parquet.sh [ROWS] [RUNS]     default 10000000 rows, 2 runs each
# Env:   KEEP=1 reuses bench/out/parquet-<rows>.{csv,parquet} of an earlier run.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/timelog.sh
n=${1:-10000000} runs=${2:-2} out=bench/out
mkdir -p "$out"
go build -o "$out/privsync-bench" ./cmd/privsync
go build -o "$out/gen-bench" ./bench/gen
csv="$out/parquet-$n.csv" pq="$out/parquet-$n.parquet"
if [ -z "${KEEP:-}" ] || [ ! -s "$pq" ]; then
	"$out/gen-bench" rows -n "$n" -o "$csv"
	"$out/gen-bench" convert -in "$csv" -out "$pq" -compression snappy
fi
ls -l "$csv" "$pq" | awk '{printf "%s: %.0f MB\n", $NF, $5 / 1e6}'
printf '%-8s %4s %9s %9s %13s\n' input run seconds cpu-s peak-RSS-MiB
for r in $(seq "$runs"); do
	for in in "$csv" "$pq"; do
		rm -f "$out/parquet-none.db"*
		/usr/bin/time -v "$out/privsync-bench" plan --config testdata/demo.toml --ledger "$out/parquet-none.db" \
			--format json --quiet "$in" >/dev/null 2>"$out/time.log" || { cat "$out/time.log" >&2; exit 1; }
		wall=$(wall_seconds "$out/time.log")
		rss=$(peak_rss_mib "$out/time.log")
		cpu=$(cpu_seconds "$out/time.log")
		printf '%-8s %4s %9.2f %9.2f %13s\n' "${in##*.}" "$r" "$wall" "$cpu" "$rss"
	done
done
