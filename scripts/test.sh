#!/usr/bin/env bash
# The README's test command: set up, then build and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --tests
# ONNX Runtime's telemetry off in the test processes too (nst's binaries turn it off themselves).
export ORT_DISABLE_TELEMETRY=1
cargo test --workspace --release
