#!/usr/bin/env bash
# Install crowguard and its dependencies into the environment of PYTHON, from requirements/cpu.lock.
#   scripts/install.sh PYTHON          # a regular install (the Dockerfile, the GitHub Action)
#   scripts/install.sh PYTHON -e       # editable, for a checkout (scripts/setup.sh)
# Locked (the default): every dependency at the exact version and sha256 in the lock (pip --require-hashes),
# then crowguard itself with --no-deps and no build isolation, so nothing else is resolved.
#   CROWGUARD_TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128": install this torch first
#     (a CUDA build) and take everything but torch from the lock.
#   CROWGUARD_FLOAT=1: ignore the lock and resolve pyproject.toml's ranges (torch still pinned first).
# The lock's torch is the +cpu build of PyTorch's CPU index; where pip is not already configured with a
# source for it, set PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu.
set -euo pipefail
py=$1
editable=()
[ "${2:-}" = "-e" ] && editable=(-e)
root=$(cd "$(dirname "$0")/.." && pwd)
pip=("$py" -m pip install -q)
if [ "${CROWGUARD_FLOAT:-0}" = 1 ]; then
  # shellcheck disable=SC2086
  "${pip[@]}" ${CROWGUARD_TORCH:-torch==2.13.0}
  if [ ${#editable[@]} -gt 0 ]; then "${pip[@]}" -e "$root[test]"; else "${pip[@]}" "$root"; fi
  exit 0
fi
lock=$root/requirements/cpu.lock
if [ -n "${CROWGUARD_TORCH:-}" ]; then
  # shellcheck disable=SC2086
  "${pip[@]}" $CROWGUARD_TORCH
  without_torch=$(mktemp)
  trap 'rm -f "$without_torch"' EXIT
  # drop the torch entry (its line and the indented hash/comment lines under it); torch's own
  # dependencies stay locked
  awk '/^torch==/ {skip = 1; next} skip && /^[^ ]/ {skip = 0} !skip' "$lock" > "$without_torch"
  lock=$without_torch
fi
"${pip[@]}" --require-hashes -r "$lock"
"${pip[@]}" --no-deps --no-build-isolation "${editable[@]}" "$root"
