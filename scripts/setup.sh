#!/usr/bin/env bash
# Installs the system packages nst builds against (OpenBLAS for LAPACK, pkg-config,
# Python's pip for first-use provisioning); with --tests also what the tests need (Debian's
# Chromium and ChromeDriver, for the browser test of nst serve). Idempotent; needs root or
# sudo for apt.
set -euo pipefail
need=()
packages=(libopenblas-dev pkg-config)
[ "${1:-}" = "--tests" ] && packages+=(chromium chromium-driver)
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else
    echo "nst needs these Debian packages: ${need[*]} — install them as root (apt-get install ${need[*]})" >&2
    exit 1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "nst needs Rust's cargo: see https://rustup.rs" >&2; exit 1; }
