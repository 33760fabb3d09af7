#!/usr/bin/env bash
# Renders the HTML summary of the demo run with headless Chromium, as a
# person sees it (docs/summary-example.png) and as it prints (a PDF, and
# its first page as a PNG when poppler-utils is installed), to look at.
# Not part of CI. Needs Debian's chromium (apt-get install chromium
# poppler-utils). Usage: docs/render-summary.sh [OUTDIR]  (default: a
# temporary directory; docs/summary-example.png is always refreshed).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out=${1:-$(mktemp -d)}
mkdir -p "$out"
work=$(mktemp -d)
profile=$(mktemp -d)
trap 'rm -rf "$work" "$profile"' EXIT

chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium" ]; then
  echo "chromium is not installed: apt-get install chromium" >&2; exit 1
fi

# The demo run, signed with a throwaway key so the page shows a signature.
ssh-keygen -q -t ed25519 -N '' -C privacy@company -f "$work/key"
{ echo 'signing_key_env = "DEMO_SIGNING_KEY"'; cat testdata/demo.toml; } > "$work/demo.toml"
go build -o "$work/privsync" ./cmd/privsync
set +e
DEMO_SIGNING_KEY=$(cat "$work/key") "$work/privsync" run --config "$work/demo.toml" --ledger "$work/demo.db" \
  --report-dir "$work/reports" --wait 3s --quiet testdata/sample.csv
code=$?
set -e
if [ "$code" -ne 3 ]; then echo "the demo run exited $code, not 3" >&2; exit 1; fi
html=$(ls "$work"/reports/*.summary.html)
cp "$html" "$out/summary-example.html"

flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
  --disable-component-update --disable-sync --user-data-dir="$profile" --hide-scrollbars)
"$chromium" "${flags[@]}" --window-size=1000,2900 --screenshot="$out/summary-example.png" "file://$out/summary-example.html" 2>/dev/null
"$chromium" "${flags[@]}" --no-pdf-header-footer --print-to-pdf="$out/summary-example.pdf" "file://$out/summary-example.html" 2>/dev/null
if command -v pdftoppm >/dev/null; then
  pdftoppm -png -r 60 "$out/summary-example.pdf" "$out/summary-print"
fi
cp "$out/summary-example.png" "$root/docs/summary-example.png"
ls -l "$out"
