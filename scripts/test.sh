#!/usr/bin/env bash
# The README's test command: set up, then build and run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo test --workspace --release
