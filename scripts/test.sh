#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, slow tests included; GPU tests skip without CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
