#!/usr/bin/env bash
# Set up (if needed) and run the whole gate on the embedded demo model: a small Llama with a planted
# backdoor, built offline on the CPU (cached in ~/.cache/crowguard), gated under policies/default.yaml,
# signed with a key made for the demo, and verified. No hub, no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/crowguard demo --out "${1:-crowguard-demo}" --force
