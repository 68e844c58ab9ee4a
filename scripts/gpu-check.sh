#!/usr/bin/env bash
# The GPU check: nst on CUDA against the CPU and against PyTorch on the same card.
#
#   scripts/gpu-check.sh prepare   here (with Rust): fills .gpu/ (ONNX Runtime's CUDA provider
#                                  packed for sm_90, a stripped loss_bench, the PyTorch peer, all
#                                  but the peer xz-compressed), 60 MB of the 64 MiB a device call
#                                  carries with the checkout
#                                  and .gpu-photo/ (the nst binary, the real VGG16 weights and a
#                                  painting, 58 MB: too much to travel beside .gpu)
#   scripts/gpu-check.sh [PART...] on the GPU machine (carry .gpu), from the project root:
#                                  about 7 minutes, 4 without tiles; PARTs (default all but
#                                  photo): parity speed tiles profile lbfgs peer photo (4 minutes)
#   scripts/gpu-check.sh stash     on the GPU machine (carry .gpu-photo), a call of its own just
#                                  before the one that runs `photo` (within the machine's 30 s
#                                  warm): keeps what .gpu-photo holds in /tmp/nst-photo
#
# What it runs, with random weights of VGG16's real shapes (timing does not depend on them):
# - parity: the same loss graph at 256² on CUDA (TF32, plain fp32, and the fp16 trunk of
#   --precision fp16) against the CPU;
# - ms per loss+gradient at 512², 1024² and 2048², each with its peak GPU memory above
#   idle, the same with --precision fp16, and NHWC convolutions at 512² and 2048²; how long
#   after a stop an evaluation at 2048² ends;
# - tiles: 4096² whole and in tiles of 2048² cores, 8192² in tiles (what nst plans for an
#   80 GB card), each with its peak GPU memory;
# - an L-BFGS-B run (60 evaluations, 100 pairs, strong Wolfe) at 512² and 2048²: ms per evaluation, the
#   optimizer included (its correction pairs on the GPU from 40 on, as in nst, and in host
#   memory only), the loss reached (at 512² also without TF32 and in fp16), and
#   without bounds (at 2048² also in fp16) and with --bounds active-set and sigmoid; the loss
#   after 500 evaluations at 512², TF32 against fp16, active-set and sigmoid;
# - ONNX Runtime's profile by operator at 512² and 2048² (and 2048² in fp16), and PyTorch's
#   time for the same convolutions alone (scripts/torch-convs.py);
# - the PyTorch peer (../shared/tools/gpu/torch_peer.py) on the same card, then the ratios;
# - photo (after `stash`): scripts/against-torch.sh, the nst command itself on CUDA with the real
#   weights against PyTorch's Gatys on the same photograph, painting (The Starry Night where
#   prepare found it) and weights: 500 evaluations at 512² in one stage and nst's defaults at
#   1024 px (coarse to fine), each in TF32, fp16 and with --bounds active-set and sigmoid; the losses, times and
#   ratios, and every picture in $OUT/photo.
# Needs from the machine: nvidia-smi, python3 with torch (the peer), the CUDA 13 and cuDNN 9
# libraries of that torch (.gpu/activate.sh finds them).
set -uo pipefail
tools="${NST_GPU_TOOLS:-../shared/tools/gpu}"

if [ "${1:-}" = prepare ]; then
  set -e
  [ -x "$tools/pack-ort-cuda" ] || { echo "gpu-check: no $tools/pack-ort-cuda (set NST_GPU_TOOLS)" >&2; exit 1; }
  "$tools/pack-ort-cuda" .gpu >/dev/null
  cargo build -q --release -p nst-features --example loss_bench
  strip -o .gpu/loss_bench target/release/examples/loss_bench && xz -9f .gpu/loss_bench
  cp "$tools/torch_peer.py" .gpu/
  cache="${NST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/nst}"
  [ -f "$cache/vgg16_conv.safetensors" ] || { echo "gpu-check: no VGG16 weights in $cache: run scripts/demo.sh once (it fetches them)" >&2; exit 1; }
  rm -rf .gpu-photo && mkdir .gpu-photo
  cargo build -q --release -p nst-cli
  strip -o .gpu-photo/nst target/release/nst && xz -9f .gpu-photo/nst
  # xz takes 8 % off the weights, what it takes for .gpu-photo and the checkout to travel.
  xz -6 -T2 -c "$cache/vgg16_conv.safetensors" >.gpu-photo/vgg16_conv.safetensors.xz
  painting="$tools/../../images/style/starry_night.jpg"
  if [ -f "$painting" ]; then cp "$painting" .gpu-photo/painting.jpg; fi
  echo ".gpu is $(du -sm .gpu | cut -f1) MB and .gpu-photo $(du -sm .gpu-photo | cut -f1) MB (a device call carries 64 MiB);"
  echo "there, run scripts/gpu-check.sh carrying .gpu; for the photo part first scripts/gpu-check.sh stash carrying .gpu-photo"
  exit 0
fi

if [ "${1:-}" = stash ]; then
  [ -f .gpu-photo/nst.xz ] || { echo "gpu-check: no .gpu-photo/ here: run 'scripts/gpu-check.sh prepare' first and carry .gpu-photo" >&2; exit 1; }
  rm -rf /tmp/nst-photo && mkdir -p -m 700 /tmp/nst-photo/cache
  unxz() { python3 -c 'import lzma, sys; open(sys.argv[2], "wb").write(lzma.open(sys.argv[1]).read())' "$@"; }
  unxz .gpu-photo/nst.xz /tmp/nst-photo/nst
  chmod +x /tmp/nst-photo/nst
  unxz .gpu-photo/vgg16_conv.safetensors.xz /tmp/nst-photo/cache/vgg16_conv.safetensors
  if [ -f .gpu-photo/painting.jpg ]; then cp .gpu-photo/painting.jpg /tmp/nst-photo/; fi
  echo "gpu-check: stashed in /tmp/nst-photo; now, within 30 s, scripts/gpu-check.sh photo (or all parts) carrying .gpu"
  exit 0
fi

[ -f .gpu/activate.sh ] || { echo "gpu-check: no .gpu/ here: run 'scripts/gpu-check.sh prepare' first and carry .gpu" >&2; exit 1; }
# shellcheck disable=SC1091
source .gpu/activate.sh >/dev/null
log="${OUT:-/tmp}/gpu-check.log"
: >"$log"
scratch="$(mktemp -d)"
bench="$scratch/loss_bench"
python3 -c 'import lzma, sys; open(sys.argv[2], "wb").write(lzma.open(sys.argv[1]).read())' .gpu/loss_bench.xz "$bench"
chmod +x "$bench"

say() { echo "$*" | tee -a "$log"; }
want() { [ $# -eq 0 ] || [ -z "$parts" ] || [[ " $parts " == *" $1 "* ]]; }
parts="$*"

# Runs "$@", logging its output, while sampling the GPU's used memory every 50 ms; then
# logs the peak above what was used before it started.
peak() {
  local idle mon
  idle=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 50 >"$scratch/mem" &
  mon=$!
  "$@" 2>&1 | grep -v '^running on\|^ONNX Runtime on' | tee -a "$log"
  kill "$mon"; wait "$mon" 2>/dev/null
  say "  peak GPU memory: $(( $(sort -n "$scratch/mem" | tail -1) - idle )) MiB above idle ($*)"
}

say "# $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader), $(nproc) CPU cores"
if want parity; then
say "## parity at 256² (the same graph; CPU fp32 is the reference)"
$bench --device cpu --save "$scratch/cpu" 256 >/dev/null 2>&1 || say "CPU run failed"
$bench --device cpu --weights-times 1e-8 --save "$scratch/cpu-small" 256 >/dev/null 2>&1 || say "CPU run failed"
# label|flags|reference
for run in "no-tf32|--no-tf32|cpu" "tf32|--tf32|cpu" "fp16|--precision fp16|cpu" \
  "fp16, weights ×1e-8|--precision fp16 --weights-times 1e-8|cpu-small"; do
  IFS='|' read -r label flags reference <<<"$run"
  # shellcheck disable=SC2086
  out=$($bench --device cuda $flags --compare "$scratch/$reference" 256 2>&1)
  grep against <<<"$out" | sed "s/^/$label on CUDA: /" | tee -a "$log"
  grep -q against <<<"$out" || { say "CUDA run failed: $(tail -3 <<<"$out")"; exit 1; }
done
fi

if want speed; then
say "## nst: ms per loss+gradient on CUDA (TF32)"
for s in 512 1024 2048; do peak $bench --device cuda "$s"; done
say "## nst fp16: ms per loss+gradient on CUDA, --precision fp16"
for s in 512 1024 2048; do peak $bench --device cuda --precision fp16 "$s"; done
say "## NHWC convolutions"
peak $bench --device cuda --nhwc 512 2048
say "## a stop (Ctrl-C, a web cancel) during an evaluation on CUDA: how long after it the evaluation ends"
$bench --device cuda --interrupt-after 20 2048 2>&1 | grep -i 'trip\|reset\|failed' | tee -a "$log"
fi

if want tiles; then
say "## large images: whole, and in tiles (--tile: the core's side)"
peak $bench --device cuda 4096
peak $bench --device cuda --tile 2048 4096
peak $bench --device cuda --tile 2048 8192
fi

if want profile; then
say "## where the time goes (ONNX Runtime's profiler; at 2048² kernels made synchronous: GPU time per op)"
mkdir -p "$scratch/prof512" "$scratch/prof2048"
$bench --device cuda --profile "$scratch/prof512/p" 512 >/dev/null 2>&1
python3 scripts/profile-summary.py "$(ls -S "$scratch"/prof512/*.json | head -1)" 2>&1 | sed 's/^/512²: /' | tee -a "$log"
CUDA_LAUNCH_BLOCKING=1 $bench --device cuda --profile "$scratch/prof2048/p" 2048 >/dev/null 2>&1
python3 scripts/profile-summary.py "$(ls -S "$scratch"/prof2048/*.json | head -1)" 2>&1 | sed 's/^/2048²: /' | tee -a "$log"
mkdir -p "$scratch/prof2048h"
CUDA_LAUNCH_BLOCKING=1 $bench --device cuda --precision fp16 --profile "$scratch/prof2048h/p" 2048 >/dev/null 2>&1
python3 scripts/profile-summary.py "$(ls -S "$scratch"/prof2048h/*.json | head -1)" 2>&1 | sed 's/^/2048² fp16: /' | tee -a "$log"
python3 scripts/torch-convs.py 512,2048 2>&1 | tee -a "$log"
fi

if want lbfgs; then
say "## nst: L-BFGS-B on CUDA, 60 evaluations, the optimizer on the CPU, its pairs on the GPU from 40 on"
lbfgs() { local s=$1; shift; timeout 150 $bench --device cuda "$@" --lbfgs 60 "$s" 2>&1; }
for s in 512 2048; do peak lbfgs "$s"; done
for s in 512 2048; do lbfgs "$s" --host-pairs | grep L-BFGS | sed 's/^/pairs in host memory only: /' | tee -a "$log"; done
lbfgs 512 --no-tf32 | grep L-BFGS | sed 's/^/fp32 (no TF32): /' | tee -a "$log"
lbfgs 512 --precision fp16 | grep L-BFGS | sed 's/^/fp16: /' | tee -a "$log"
for s in 512 2048; do lbfgs "$s" --no-bounds | grep L-BFGS | sed 's/^/no bounds (plain L-BFGS): /' | tee -a "$log"; done
for s in 512 2048; do lbfgs "$s" --active-set | grep L-BFGS | sed 's/^/active-set (the projected L-BFGS step of the free pixels): /' | tee -a "$log"; done
for s in 512 2048; do lbfgs "$s" --sigmoid | grep L-BFGS | sed 's/^/sigmoid (plain L-BFGS over σ(z), in [0, 1]): /' | tee -a "$log"; done
lbfgs 2048 --no-bounds --host-pairs | grep L-BFGS | sed 's/^/no bounds, pairs in host memory only: /' | tee -a "$log"
lbfgs 2048 --no-bounds --precision fp16 | grep L-BFGS | sed 's/^/no bounds, fp16: /' | tee -a "$log"
say "## the loss after 500 L-BFGS-B evaluations at 512² (the history full), TF32 and fp16 (fp16 becomes the default only within 0.5 %), active-set and sigmoid"
for p in fp32 fp16; do
  timeout 100 $bench --device cuda --precision $p --lbfgs 500 512 2>&1 | grep L-BFGS | sed "s/^/${p/fp32/TF32}: /" | tee -a "$log"
done
for b in active-set sigmoid; do
  timeout 100 $bench --device cuda --$b --lbfgs 500 512 2>&1 | grep L-BFGS | sed "s/^/TF32, $b: /" | tee -a "$log"
done
timeout 100 $bench --device cuda --host-pairs --lbfgs 500 512 2>&1 | grep L-BFGS | sed "s/^/TF32, pairs in host memory only: /" | tee -a "$log"
fi

if want peer; then
say "## PyTorch peer, same card"
peak python3 .gpu/torch_peer.py 512,1024,2048
fi

# Only when named: with it, every part would pass a device call's 10 minutes.
if [[ " $parts " == *" photo "* ]]; then
say "## photo: the nst command on CUDA with the real weights, and PyTorch's Gatys on the same pixels"
if [ ! -x /tmp/nst-photo/nst ]; then
  say "photo: skipped: nothing stashed (call scripts/gpu-check.sh stash, carrying .gpu-photo, just before)"
else
  # One stage at 512² and nst's defaults at 1024 px: TF32, fp16, and TF32 with --bounds active-set and sigmoid.
  against() { DEVICE=cuda NST=/tmp/nst-photo/nst NST_CACHE_DIR=/tmp/nst-photo/cache PAINTING=/tmp/nst-photo/painting.jpg \
    OUT="${OUT:-$scratch}/photo" bash scripts/against-torch.sh "$@" 2>&1 | tee -a "$log"; }
  against 512 tf32=--no-multiscale fp16="--no-multiscale --precision fp16" active="--no-multiscale --bounds active-set" \
    sigmoid="--no-multiscale --bounds sigmoid"
  against 1024 tf32= fp16="--precision fp16" active="--bounds active-set" sigmoid="--bounds sigmoid"
  say "photo: the pictures are nst-*.png and torch-*.png in ${OUT:-$scratch}/photo"
fi
fi

say "## ratios (PyTorch ms / nst ms: above 1, nst is faster)"
python3 - "$log" <<'PY' | tee -a "$log"
import json, re, sys
nst, peer, section = {}, {}, ''
for line in open(sys.argv[1]):
    if line.startswith('## '):
        section = line
    elif line.startswith('{'):
        j = json.loads(line)
        if j.get('tf32'): peer[j['size']] = j
    elif (m := re.match(r'(\d+)×\d+: ([\d.]+) ms per loss\+gradient', line)) and 'NHWC' not in section:
        key = 'grad fp16' if 'fp16' in section else 'grad'
        nst.setdefault(int(m[1]), {}).setdefault(key, float(m[2]))
    elif (m := re.match(r'(\d+)×\d+: L-BFGS \d+ evaluations: ([\d.]+) ms per evaluation', line)):
        nst.setdefault(int(m[1]), {}).setdefault('lbfgs', float(m[2]))
    elif (m := re.match(r'(active-set|sigmoid) \(.*\): (\d+)×\d+: L-BFGS \d+ evaluations: ([\d.]+) ms per evaluation', line)):
        nst.setdefault(int(m[2]), {}).setdefault(m[1], float(m[3]))
for s in sorted(peer):
    p, n = peer[s], nst.get(s, {})
    g = f"loss+gradient {p['ms_per_loss_and_grad']:.1f} / {n['grad']:.1f} = {p['ms_per_loss_and_grad'] / n['grad']:.2f}×" if 'grad' in n else ''
    if 'grad fp16' in n:
        g += f" (fp16: {p['ms_per_loss_and_grad'] / n['grad fp16']:.2f}×)"
    l = f"L-BFGS evaluation {p['ms_per_lbfgs_eval']:.1f} / {n['lbfgs']:.1f} = {p['ms_per_lbfgs_eval'] / n['lbfgs']:.2f}× (L-BFGS-B)" if 'lbfgs' in n else ''
    for b in ('active-set', 'sigmoid'):
        if b in n:
            l += f"; / {n[b]:.1f} = {p['ms_per_lbfgs_eval'] / n[b]:.2f}× (--bounds {b})"
    print(f"{s}²: {g}; {l}")
PY
rm -rf "$scratch"
