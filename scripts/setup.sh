#!/usr/bin/env bash
# Create .venv and install crowguard (editable) with its test extras. Idempotent: reruns are quick.
# By default every dependency comes from requirements/cpu.lock: exact versions with sha256 hashes, CPU torch
# (see scripts/install.sh; on a machine whose pip has no source for torch+cpu, set
# PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu).
# GPU users: CROWGUARD_TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" (that torch,
# the rest from the lock). CROWGUARD_FLOAT=1 resolves pyproject.toml's ranges instead of the lock.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.crowguard-installed
# reinstall when the dependencies, the lock or the way of installing change
want=$( (cat pyproject.toml requirements/cpu.lock; echo "float=${CROWGUARD_FLOAT:-0} torch=${CROWGUARD_TORCH:-}") \
  | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  ./scripts/install.sh .venv/bin/python -e
  echo "$want" > "$stamp"
fi
