#!/usr/bin/env bash
# Times Gatys (default budget 500), style swap (100) and Deep Image Analogy (800) on the same
# pair, size and machine, from nst's own reports: bench-methods.sh CONTENT STYLE [SIZE]
set -euo pipefail
cd "$(dirname "$0")/.."
content=$1 style=$2 size=${3:-256}
cargo build --release -q -p nst-cli
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for method in gatys swap analogy; do
  ./target/release/nst "$content" "$style" -o "$out/$method.png" --size "$size" --method "$method" -q --report "$out/$method.json"
  python3 - "$out/$method.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r["timings"]
method = "swap" if r["settings"]["swap"] else "analogy" if r["settings"]["analogy"] else "gatys"
print(f'{method:7} {r["output_size"][0]}×{r["output_size"][1]} {r["device"]}: '
      f'{len(r["evaluations"])} evaluations, {t["ms_per_evaluation"]:.0f} ms each, '
      f'targets {t["targets_s"]:.1f} s, total {t["total_s"]:.1f} s')
PY
done
