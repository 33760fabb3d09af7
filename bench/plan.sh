#!/usr/bin/env bash
# bench/plan.sh — measure `privsync plan` on generated nightly exports.
#
# For each size (default: 1M and 10M rows) it generates, into bench/out/
# (git-ignored), a night and the same night with 1% of its rows changed,
# builds privsync, makes a ledger that holds the night as settled, and
# measures with /usr/bin/time -v the whole `privsync plan` of:
#   (a) the night against an empty ledger (a first run),
#   (b) the same night again against the ledger holding it (nothing to send),
#   (c) the next night, 1% changed, against that ledger.
# It prints rows/s and peak RSS (Maximum resident set size) per case, and
# writes them to bench/out/plan-results.txt. Beside (b) and (c), in the
# same run, DuckDB (@duckdb/node-api) answers the same question on the same
# files: tonight's export left-joined on (vendor, id_type, subject_id) to
# last night's, keeping the rows where anything differs (bench/duckdb/diff.cjs).
#
# Usage: bench/plan.sh [SIZE...]        e.g. bench/plan.sh 1000000
# Env:   KEEP=1 reuses generated inputs and ledgers of an earlier run.
#        SIZES="10000000 30000000" instead of arguments.
#        NO_DUCKDB=1 skips DuckDB.
#        DUCKDB_DIR where @duckdb/node-api is installed with npm (default
#        ~/.cache/privsync-bench/duckdb; installed there when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/timelog.sh

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || read -r -a sizes <<<"${SIZES:-1000000 10000000}"
out=bench/out
mkdir -p "$out"

if [ ! -x /usr/bin/time ]; then
	echo "installing GNU time (apt-get install time)" >&2
	apt-get install -y time >/dev/null || { apt-get update >/dev/null && apt-get install -y time >/dev/null; }
fi

duck=
if [ -z "${NO_DUCKDB:-}" ]; then
	duck=${DUCKDB_DIR:-$HOME/.cache/privsync-bench/duckdb}
	if [ ! -d "$duck/node_modules/@duckdb/node-api" ]; then
		command -v npm >/dev/null || { echo "DuckDB needs node and npm (apt-get install nodejs npm), or set NO_DUCKDB=1" >&2; exit 2; }
		echo "installing @duckdb/node-api@1.5.6-r.1 into $duck (npm)" >&2
		mkdir -p "$duck"
		npm install --prefix "$duck" --no-audit --no-fund --silent @duckdb/node-api@1.5.6-r.1 >&2
	fi
fi

echo "building privsync and the generator" >&2
go build -o "$out/privsync-bench" ./cmd/privsync
go build -o "$out/gen-bench" ./bench/gen

name() { # 1000000 -> 1m
	case $1 in
	*000000) echo "$(($1 / 1000000))m" ;;
	*000) echo "$(($1 / 1000))k" ;;
	*) echo "$1" ;;
	esac
}

results="$out/plan-results.txt"
: >"$results"
printf '%-6s %-26s %10s %9s %12s %11s %s\n' rows case seconds ops rows/s peak-RSS-MiB "" | tee -a "$results"

# measure LABEL ROWS LEDGER INPUT: one `privsync plan --format json`.
measure() {
	local label=$1 rows=$2 ledger=$3 input=$4 tlog="$out/time.log" json="$out/plan.json"
	/usr/bin/time -v "$out/privsync-bench" plan --config testdata/demo.toml --ledger "$ledger" \
		--format json --quiet "$input" >"$json" 2>"$tlog" || {
		cat "$tlog" >&2
		echo "privsync plan failed" >&2
		exit 1
	}
	local wall rss ops
	wall=$(wall_seconds "$tlog")
	rss=$(peak_rss_mib "$tlog")
	ops=$(awk -F': ' '/"operations"/ {f = 1; next} f && /^  }/ {f = 0} f && /: [0-9]+/ {s += $2 + 0} END {print s + 0}' "$json")
	printf '%-6s %-26s %10.2f %9s %12.0f %11s\n' "$(name "$rows")" "$label" "$wall" "$ops" "$(awk -v r="$rows" -v w="$wall" 'BEGIN {print r / w}')" "$rss" | tee -a "$results"
}

# duckdb LABEL ROWS TONIGHT LASTNIGHT: the reference query, whole process.
duckdb() {
	[ -n "$duck" ] || return 0
	local label=$1 rows=$2 tlog="$out/time.log" json="$out/duckdb.json"
	DUCKDB_DIR="$duck" /usr/bin/time -v node bench/duckdb/diff.cjs "$3" "$4" >"$json" 2>"$tlog" || {
		cat "$tlog" >&2
		echo "DuckDB failed" >&2
		exit 1
	}
	local wall rss ops
	wall=$(wall_seconds "$tlog")
	rss=$(peak_rss_mib "$tlog")
	ops=$(sed 's/.*"changed":\([0-9]*\).*/\1/' "$json")
	printf '%-6s %-26s %10.2f %9s %12.0f %11s\n' "$(name "$rows")" "$label" "$wall" "$ops" "$(awk -v r="$rows" -v w="$wall" 'BEGIN {print r / w}')" "$rss" | tee -a "$results"
}

for n in "${sizes[@]}"; do
	s=$(name "$n")
	night="$out/plan-$s.csv" next="$out/plan-$s-changed.csv" led="$out/plan-$s-night.db"
	if [ -z "${KEEP:-}" ] || [ ! -s "$next" ]; then
		echo "generating $n rows into $night and $next" >&2
		"$out/gen-bench" rows -n "$n" -o "$night"
		"$out/gen-bench" rows -o "$next" -base "$night" -changed-pct 1
	fi
	if [ -z "${KEEP:-}" ] || [ ! -s "$led" ]; then
		# The previous night, fully settled, made by the ledger's test helper:
		# the night planned into a new ledger with every decision recorded as
		# confirmed by the vendor (see bench/README.md).
		echo "seeding $led with the settled night" >&2
		rm -f "$led" "$led-wal" "$led-shm" "$led.lock"
		PRIVSYNC_SEED_INPUT="$PWD/$night" PRIVSYNC_SEED_LEDGER="$PWD/$led" \
			go test -count=1 -timeout 60m -run '^TestSeedSettledLedger$' -v ./ledger/ | grep -E 'seeded|^(ok|FAIL|---)' >&2
	fi
	rm -f "$out/plan-none.db"
	measure "(a) empty ledger" "$n" "$out/plan-none.db" "$night"
	measure "(b) same night, settled" "$n" "$led" "$night"
	duckdb "(b) DuckDB, same night" "$n" "$night" "$night"
	measure "(c) next night, 1% changed" "$n" "$led" "$next"
	duckdb "(c) DuckDB, next night" "$n" "$next" "$night"
done
echo "results in $results" >&2
