#!/bin/sh
# Reads a warehouse-style export from Azure Blob Storage as emulated by
# Azurite (npm "azurite"), and checks that privsync plans it exactly as it
# plans the same files read locally.
#
#   bench/azurite.sh [CSV-FILE]
#
# Needs Node.js (npx fetches azurite) and Go. The account is Azurite's
# well-known development account; nothing leaves the machine.
set -eu
cd "$(dirname "$0")/.."
input=${1:-testdata/sample.csv}
work=$(mktemp -d)
trap 'kill $azurite 2>/dev/null; rm -rf "$work"' EXIT

npx --yes azurite@3 azurite-blob --silent --skipApiVersionCheck --location "$work/azurite" \
	--blobHost 127.0.0.1 --blobPort 10000 >"$work/azurite.log" 2>&1 &
azurite=$!
for _ in $(seq 1 120); do
	nc -z 127.0.0.1 10000 2>/dev/null && break
	sleep 0.5 # waiting for an external server to listen, not synchronising tests
done

export AZURE_STORAGE_ACCOUNT=devstoreaccount1
export AZURE_STORAGE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
opts='?localemu=true&protocol=http&domain=127.0.0.1:10000'

# A Spark-like export: three part files, _SUCCESS, a checksum.
mkdir -p "$work/export"
head -1 "$input" >"$work/header"
tail -n +2 "$input" >"$work/body"
split -n l/3 -d -a 5 "$work/body" "$work/body-"
for b in "$work"/body-*; do
	n=${b##*-}
	cat "$work/header" "$b" >"$work/export/part-$n.csv"
done
: >"$work/export/_SUCCESS"
echo crc >"$work/export/.part-00000.csv.crc"

go build -o "$work/privsync" ./cmd/privsync
go run ./bench/objput "azblob://privsync/export/$opts" "$work/export"

cfg=testdata/demo.toml
"$work/privsync" plan --config $cfg --ledger "$work/l.db" --format json --snapshot "$work/export" >"$work/local.json"
start=$(date +%s.%N)
"$work/privsync" plan --config $cfg --ledger "$work/l.db" --format json --snapshot "azblob://privsync/export/$opts" >"$work/azure.json"
end=$(date +%s.%N)
if cmp -s "$work/local.json" "$work/azure.json"; then
	echo "azblob plan equals the local plan ($(echo "$end - $start" | bc) s)"
else
	echo "azblob plan differs from the local plan:" >&2
	diff "$work/local.json" "$work/azure.json" >&2
	exit 1
fi
