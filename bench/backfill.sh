#!/usr/bin/env bash
# bench/backfill.sh — measure a one-time backfill: the whole `privsync run`
# of rows the ledger has never seen, against `vendorsim` with its rate limits
# off, so privsync is the only bottleneck.
#
# Cases:
#   (1) N rows (default 1M), half SFMC (restrictions, a tenth each delete and
#       suppress), half Bloomreach anonymizations, into an empty ledger;
#   (1r) with RANDOM_IDS=1, the same with subject ids in no order (as UUIDs
#       and hashed e-mails are; case (1)'s ids begin with the row number);
#   (2) BATCH_USERS (default 5,000) Batch.com removals, one user per request,
#       into another empty ledger.
# For each it prints the wall time, items/s per vendor (final items in the
# report / wall time), requests/s (vendorsim's count / wall time) and the
# peak RSS of privsync (GNU time's "Maximum resident set size"). Beside case
# (1) it times `sqlite3 .import` of the same CSV into an empty database, for
# reference. Results go to bench/out/backfill-results.txt.
#
# Usage: bench/backfill.sh [N]            e.g. bench/backfill.sh 10000000
# Env:   KEEP=1            reuse generated inputs
#        BATCH_USERS=N     size of case (2); 0 skips it
#        RANDOM_IDS=1      add case (1r)
#        PROFILE=1         write CPU profiles of privsync to bench/out/backfill-*.pprof
#        MEMPROFILE=1      write heap profiles of privsync to bench/out/backfill-*.heap
#                          (at the end; .heap.peak near the peak RSS) and its
#                          memory a second to backfill-*.heap.tsv
#        PORT=18080        vendorsim's port
#        PRIVSYNC_BIN=path measure this privsync binary (e.g. one built from
#                          an earlier commit) instead of building it
# Needs: go, GNU time (/usr/bin/time: apt-get install time), sqlite3
# (apt-get install sqlite3) and python3; it says what is missing and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-1000000}
batch_users=${BATCH_USERS:-5000}
port=${PORT:-18080}
out=bench/out
mkdir -p "$out"

missing=()
[ -x /usr/bin/time ] || missing+=("GNU time (apt-get install time)")
command -v sqlite3 >/dev/null || missing+=("sqlite3 (apt-get install sqlite3)")
command -v python3 >/dev/null || missing+=("python3 (apt-get install python3)")
if [ ${#missing[@]} -gt 0 ]; then
	printf 'bench/backfill.sh needs: %s\n' "${missing[@]}" >&2
	exit 2
fi

echo "building privsync, vendorsim and the generator" >&2
bin=${PRIVSYNC_BIN:-$out/privsync-bench}
[ -n "${PRIVSYNC_BIN:-}" ] || go build -o "$bin" ./cmd/privsync
go build -o "$out/vendorsim-bench" ./cmd/vendorsim
go build -o "$out/gen-bench" ./bench/gen

name() { # 1000000 -> 1m
	case $1 in
	*000000) echo "$(($1 / 1000000))m" ;;
	*000) echo "$(($1 / 1000))k" ;;
	*) echo "$1" ;;
	esac
}

sim_pid=
cleanup() {
	[ -n "$sim_pid" ] || return 0
	kill "$sim_pid" 2>/dev/null || true
	wait "$sim_pid" 2>/dev/null || true
	sim_pid=
}
trap cleanup EXIT

# start_sim: a fresh vendorsim with every rate limit off.
start_sim() {
	cleanup
	"$out/vendorsim-bench" --addr "127.0.0.1:$port" --sfmc-rps 0 --batch-rps 0 --bloomreach-rps 0 --log-level warn \
		2>"$out/vendorsim.log" &
	sim_pid=$!
	for _ in $(seq 100); do
		curl -sf "http://127.0.0.1:$port/_sim/stats" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "vendorsim did not start: see $out/vendorsim.log" >&2
	exit 1
}

# config FILE LEDGER: vendors on vendorsim; privsync's own limits far above
# what it reaches, so they never wait.
config() {
	cat >"$1" <<EOF
ledger = "$2"
report_dir = "$out/backfill-reports"

[vendors.sfmc]
kind = "sfmc"
base_url = "http://127.0.0.1:$port"
customer_mid = "12345678"
api_key_env = "BENCH_SECRET"
requests_per_second = 10000
burst = 1000
max_in_flight = 8
batch_size = 1000
poll_interval = "1s"

[vendors.batch-ios]
kind = "batch"
base_url = "http://127.0.0.1:$port"
app_api_key = "BENCH_IOS"
rest_api_key_env = "BENCH_SECRET"
requests_per_second = 10000
burst = 1000
max_in_flight = 32
poll_interval = "1s"

[vendors.bloomreach]
kind = "bloomreach"
base_url = "http://127.0.0.1:$port"
project_token = "bench-project"
api_key_id_env = "BENCH_SECRET"
api_secret_env = "BENCH_SECRET"
requests_per_second = 10000
burst = 1000
max_in_flight = 8
batch_size = 1000
EOF
}

# vendorsim started without VENDORSIM_* credentials accepts any non-empty one.
export BENCH_SECRET=bench-not-a-secret
results="$out/backfill-results.txt"
: >"$results"
echo "privsync: $bin" | tee -a "$results"
printf '%-28s %9s %9s %12s %12s %12s %12s %10s %9s %8s %9s\n' case rows seconds items/s sfmc/s bloomreach/s batch/s requests/s RSS-MiB CPU-s us/item | tee -a "$results"

# measure LABEL ROWS INPUT: one `privsync run` into an empty ledger.
measure() {
	local label=$1 rows=$2 input=$3 tlog="$out/time.log" led="$out/backfill.db" cfg="$out/backfill.toml"
	rm -rf "$led" "$led-wal" "$led-shm" "$led.lock" "$out/backfill-reports"
	config "$cfg" "$led"
	start_sim
	local prof=()
	[ -z "${PROFILE:-}" ] || prof=(env "PRIVSYNC_CPUPROFILE=$PWD/$out/backfill-$(name "$rows").pprof")
	[ -z "${MEMPROFILE:-}" ] || prof+=(env "PRIVSYNC_MEMPROFILE=$PWD/$out/backfill-$(name "$rows").heap")
	set +e
	"${prof[@]}" /usr/bin/time -v "$bin" run --config "$cfg" --wait 30m --quiet --log-level warn "$input" \
		2>"$tlog" >/dev/null
	local code=$?
	set -e
	if [ $code -ne 0 ] && [ $code -ne 3 ]; then
		cat "$tlog" >&2
		echo "privsync run failed (exit $code)" >&2
		exit 1
	fi
	curl -sf "http://127.0.0.1:$port/_sim/stats" >"$out/sim-stats.json"
	python3 - "$label" "$rows" "$tlog" "$out/sim-stats.json" "$out/backfill-reports" <<'PY' | tee -a "$results"
import csv, glob, json, sys
label, rows, tlog, stats, reports = sys.argv[1:]
wall = rss = cpu = 0.0
for line in open(tlog):
    k, _, v = line.strip().rpartition(': ')
    if k in ('User time (seconds)', 'System time (seconds)'):
        cpu += float(v)
    if k.startswith('Elapsed (wall clock)'):
        for p in v.split(':'):
            wall = wall * 60 + float(p)
    elif k == 'Maximum resident set size (kbytes)':
        rss = int(v) / 1024
items = {}
final = ('completed', 'accepted')
for path in glob.glob(reports + '/*.csv'):
    for r in csv.DictReader(open(path, newline='')):
        if r['outcome'] in final:
            items[r['vendor']] = items.get(r['vendor'], 0) + 1
        else:
            items['other:' + r['outcome']] = items.get('other:' + r['outcome'], 0) + 1
st = json.load(open(stats))
reqs = sum(v.get('requests', 0) for v in st.values() if isinstance(v, dict))
done = sum(v for k, v in items.items() if not k.startswith('other:'))
rate = lambda v: '%.0f' % (items.get(v, 0) / wall) if items.get(v) else '-'
print('%-28s %9s %9.2f %12.0f %12s %12s %12s %10.0f %9.0f %8.1f %9.1f' % (label, rows, wall, done / wall, rate('sfmc'),
      rate('bloomreach'), rate('batch-ios'), reqs / wall, rss, cpu, cpu / max(done, 1) * 1e6))
others = {k[6:]: v for k, v in items.items() if k.startswith('other:')}
if others:
    print('  (not final in the report: %s)' % others, file=sys.stderr)
PY
}

s=$(name "$n")
input="$out/backfill-$s.csv"
if [ -z "${KEEP:-}" ] || [ ! -s "$input" ]; then
	echo "generating $n backfill rows (SFMC and Bloomreach) into $input" >&2
	"$out/gen-bench" rows -backfill -n "$n" -vendors sfmc,bloomreach -o "$input"
fi
measure "(1) sfmc+bloomreach backfill" "$n" "$input"
if [ -n "${RANDOM_IDS:-}" ]; then
	rinput="$out/backfill-$s-random.csv"
	if [ -z "${KEEP:-}" ] || [ ! -s "$rinput" ]; then
		echo "generating $n backfill rows with random ids into $rinput" >&2
		"$out/gen-bench" rows -backfill -random-ids -n "$n" -vendors sfmc,bloomreach -o "$rinput"
	fi
	measure "(1r) the same, random ids" "$n" "$rinput"
fi

# The same file through sqlite3's CSV import into an empty database.
ref="$out/backfill-import.db"
rm -f "$ref"
start=$(date +%s.%N)
sqlite3 "$ref" ".import --csv $input rows"
end=$(date +%s.%N)
printf '%-28s %9s %9.2f %12.0f\n' "sqlite3 .import (same file)" "$n" "$(python3 -c "print($end - $start)")" \
	"$(python3 -c "print($n / ($end - $start))")" | tee -a "$results"
rm -f "$ref"

if [ "$batch_users" -gt 0 ]; then
	binput="$out/backfill-batch-$(name "$batch_users").csv"
	if [ -z "${KEEP:-}" ] || [ ! -s "$binput" ]; then
		"$out/gen-bench" rows -backfill -n "$batch_users" -vendors batch-ios -o "$binput"
	fi
	measure "(2) batch.com removals" "$batch_users" "$binput"
fi
echo "results in $results" >&2
