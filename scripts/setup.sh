#!/usr/bin/env bash
# Create .venv and install crowguard with its test extras. Idempotent: reruns are quick.
# torch is installed first and pinned: on a CPU-only machine an unpinned torch pulls a multi-GB CUDA
# build. GPU users: set CROWGUARD_TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128".
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.crowguard-installed
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # shellcheck disable=SC2086
  .venv/bin/python -m pip install -q ${CROWGUARD_TORCH:-torch==2.13.0}
  .venv/bin/python -m pip install -q -e '.[test]'
  echo "$want" > "$stamp"
fi
