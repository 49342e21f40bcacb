#!/usr/bin/env bash
# Regenerate requirements/cpu.lock: the exact versions, with sha256 hashes, that ./scripts/setup.sh and the
# Dockerfile install (CPU torch, pyproject's dependencies and its test extra), for CPython 3.11 on Linux x86_64.
# Needs pip-tools in .venv (.venv/bin/python -m pip install pip-tools). Run it after changing pyproject.toml's
# dependencies; tests/test_lock.py fails until the lock satisfies pyproject.toml again.
# The torch+cpu wheel is resolved from the CPU wheel index configured for pip here (a find-links folder or
# PyTorch's CPU index: PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m piptools compile --quiet --generate-hashes --extra test --strip-extras --allow-unsafe \
  --no-emit-index-url --no-emit-find-links --output-file requirements/cpu.lock pyproject.toml requirements/cpu.in
