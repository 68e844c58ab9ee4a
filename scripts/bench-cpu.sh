#!/usr/bin/env bash
# nst's CPU speed against PyTorch's on the same cores, in one run: ms per loss + gradient of the
# gatys objective at 256² and 512², nst fp32 (ONNX Runtime), PyTorch fp32, PyTorch bf16 autocast.
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
nst=$(./target/release/examples/loss_bench ${sizes//,/ } | grep per)
torch=$("$venv/bin/python" scripts/torch_cpu_peer.py "$sizes")
echo "$nst" | sed 's/^/nst fp32 /'
echo "$torch"
echo "nst bf16: not yet (issue 16: ONNX Runtime's CPU provider has no bf16 convolutions)"
for s in ${sizes//,/ }; do
  n=$(echo "$nst" | grep "^${s}×${s}" | sed 's/.*: \([0-9.]*\) ms.*/\1/')
  for p in fp32 bf16; do
    t=$(echo "$torch" | grep " $p ${s}x${s}" | sed 's/.*: \([0-9.]*\) ms.*/\1/')
    echo "${s}²: nst fp32 / PyTorch $p = $(python3 -c "print(f'{$n / $t:.2f}')") (above 1: nst slower)"
  done
done
