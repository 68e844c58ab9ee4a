#!/usr/bin/env bash
# The README's first command: set up, fetch sample images, stylize one into out/demo.png.
# Sample images come from scikit-image's wheel (CC0 / public domain), fetched from PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release -p nst-cli
samples=out/samples
mkdir -p "$samples"
if [ ! -f "$samples/chelsea.png" ] || [ ! -f "$samples/coffee.png" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  wheel=scikit_image-0.25.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
  python3 -m pip download --no-deps --disable-pip-version-check --only-binary=:all: \
    --platform manylinux_2_17_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
    -d "$tmp" scikit-image==0.25.2
  echo "24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641  $tmp/$wheel" | sha256sum -c --quiet
  python3 - "$tmp/$wheel" "$samples" <<'PY'
import sys, zipfile, os
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in ("chelsea.png", "coffee.png"):
        with open(os.path.join(dest, name), "wb") as f:
            f.write(z.read("skimage/data/" + name))
PY
fi
./target/release/nst "$samples/chelsea.png" "$samples/coffee.png" -o out/demo.png --size 320 --iterations 300 --report out/demo.json
echo "wrote out/demo.png"
