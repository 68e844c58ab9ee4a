#!/usr/bin/env bash
# nst against PyTorch on a photograph, the whole job: the nst command (with --report) and
# PyTorch's Gatys (scripts/torch-photo.py: torch.optim.LBFGS with 100 pairs, fixed step and strong
# Wolfe) on the same pixels (scikit-image's Chelsea and a painting, both written at the size they
# run at), the same VGG16 weights (nst's) and the same objective; then scripts/photo-summary.py:
# each run's loss, ms per evaluation, the ratios, and after how many evaluations each reaches the
# other's loss. The pictures and reports go to $OUT.
#
#   scripts/against-torch.sh SIZE [NAME=NST_FLAGS ...]     default runs: default=--no-multiscale
#
# Environment: DEVICE cpu|cuda (default cpu), EVALUATIONS (default 500), OUT (default
# out/against-torch), NST (the binary; default target/release/nst, built), NST_CACHE_DIR (where
# nst's weights are), PAINTING (default ../shared/images/style/starry_night.jpg where it is, else
# scikit-image's coffee), PYTHON (one with torch, Pillow, scikit-image and safetensors; on the CPU
# by default a virtual environment, TORCH_VENV (default /tmp/torch), made on first use: 5.6 GB).
# On 2 cores, 256 px and 300 evaluations take about 6 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { sed -n 9p "$0" >&2; exit 2; }
size=$1
shift
runs=("$@")
[ ${#runs[@]} -gt 0 ] || runs=("default=--no-multiscale")
device=${DEVICE:-cpu}
evaluations=${EVALUATIONS:-500}
out=${OUT:-out/against-torch}
cache="${NST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nst}"
painting=${PAINTING:-../shared/images/style/starry_night.jpg}
if [ -z "${PYTHON:-}" ] && [ "$device" = cpu ]; then
  venv=${TORCH_VENV:-/tmp/torch}
  if ! "$venv/bin/python" -c "import torch, PIL, skimage, safetensors" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --disable-pip-version-check -q torch==2.15.0 numpy pillow scikit-image safetensors
  fi
  PYTHON="$venv/bin/python"
fi
python=${PYTHON:-python3}
if [ -z "${NST:-}" ]; then
  cargo build --release -q -p nst-cli
  NST=target/release/nst
fi
[ -f "$cache/vgg16_conv.safetensors" ] || { echo "against-torch: no VGG16 weights in $cache: run scripts/demo.sh once" >&2; exit 1; }
mkdir -p "$out"

# The same pixels for both: the photo and the painting at the size they run at.
"$python" - "$out" "$size" "$painting" <<'PY'
import os, sys, skimage.data
from PIL import Image
folder, size, painting = sys.argv[1], int(sys.argv[2]), sys.argv[3]
photo = Image.fromarray(skimage.data.chelsea())
style = Image.open(painting).convert('RGB') if os.path.exists(painting) else Image.fromarray(skimage.data.coffee())
print(f"against-torch: Chelsea and {os.path.basename(painting) if os.path.exists(painting) else 'coffee'} at {size} px")
for name, im in (('content', photo), ('style', style)):
    scale = size / max(im.size)
    im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS).save(f'{folder}/{name}_{size}.png')
PY
# A command's seconds, into FILE: seconds FILE COMMAND…
seconds() {
  local file=$1 start=$EPOCHREALTIME
  shift
  "$@"
  awk "BEGIN { print $EPOCHREALTIME - $start }" >"$file"
}
for run in "${runs[@]}"; do
  name=$size-${run%%=*}
  read -r -a flags <<<"${run#*=}"
  echo "against-torch: nst ${flags[*]}"
  seconds "$out/nst-$name.s" timeout 900 "$NST" "$out/content_$size.png" "$out/style_$size.png" -o "$out/nst-$name.png" \
    --size "$size" --iterations "$evaluations" --device "$device" --report "$out/nst-$name.json" -q "${flags[@]}" ||
    echo "against-torch: nst ${flags[*]} failed"
done
echo "against-torch: PyTorch"
torch_flags=()
[ "$device" = cuda ] || torch_flags=(--cpu)
seconds "$out/torch-$size.s" timeout 900 "$python" scripts/torch-photo.py "$cache/vgg16_conv.safetensors" \
  "$out/content_$size.png" "$out/style_$size.png" "$out/torch-$size" "$evaluations" "${torch_flags[@]}" >"$out/torch-$size.jsonl" ||
  echo "against-torch: PyTorch failed"
"$python" scripts/photo-summary.py "$out" "$size"
