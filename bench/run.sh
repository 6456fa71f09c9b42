#!/usr/bin/env bash
# Builds cairn in release mode, prepares the Python peers in a venv, and runs
# the benchmarks. Usage: bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}"
venv="${BENCH_VENV:-$HOME/.cache/cairn/bench-venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q openai langgraph langchain-openai
cargo build --release --locked -p cairn-cli -p cairn-bench
BENCH_PYTHON="$venv/bin/python" "$CARGO_TARGET_DIR/release/cairn-bench"
