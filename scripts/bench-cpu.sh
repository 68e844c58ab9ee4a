#!/usr/bin/env bash
# nst's CPU speed against PyTorch's on the same cores, in one run: ms per loss + gradient of the
# gatys objective at 256² and 512²: nst fp32 (ONNX Runtime, the default), nst fp32 on OpenVINO,
# nst bf16 (OpenVINO, on CPUs with bf16 units), PyTorch fp32 and PyTorch bf16 autocast, with ratios.
# PyTorch goes into a virtual environment (5.6 GB): TORCH_VENV (default /tmp/torch).
#   ./scripts/bench-cpu.sh [SIZES, default 256,512]
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${1:-256,512}
venv=${TORCH_VENV:-/tmp/torch}
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --disable-pip-version-check -q torch==2.15.0 numpy
fi
cargo build --release -q -p nst-features --example loss_bench
bench() { ./target/release/examples/loss_bench "$@" ${sizes//,/ } | grep per; }
declare -A rows
rows["nst fp32"]=$(bench)
rows["nst fp32 OpenVINO"]=$(bench --openvino)
if grep -qw avx512_bf16 /proc/cpuinfo; then
  rows["nst bf16"]=$(bench --precision bf16)
else
  echo "nst bf16: this CPU has no bf16 units (nst runs fp32 there)"
fi
torch=$("$venv/bin/python" scripts/torch_cpu_peer.py "$sizes")
for name in "nst fp32" "nst fp32 OpenVINO" "nst bf16"; do
  [ -n "${rows[$name]:-}" ] && echo "${rows[$name]}" | sed "s/^/$name /"
done
echo "$torch"
ms() { echo "$1" | grep "^${2}×${2}" | sed 's/.*: \([0-9.]*\) ms.*/\1/'; }
for s in ${sizes//,/ }; do
  for p in fp32 bf16; do
    t=$(echo "$torch" | grep " $p ${s}x${s}" | sed 's/.*: \([0-9.]*\) ms.*/\1/')
    for name in "nst fp32" "nst fp32 OpenVINO" "nst bf16"; do
      [ -n "${rows[$name]:-}" ] || continue
      n=$(ms "${rows[$name]}" "$s")
      echo "${s}²: PyTorch $p / $name = $(python3 -c "print(f'{$t / $n:.2f}')") (above 1: nst faster)"
    done
  done
done
